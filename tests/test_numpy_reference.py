"""numbaspike's forward kernels against the plain-NumPy oracle of reference_numpy.py.

Float64: spikes identical and every float trace (output, tape ``h``/``i1``, final state)
equal to ~1e-12. Smooth mode is checked for every surrogate (the surrogate then shapes
the forward), step mode for a few (there the surrogate must not change the forward).
"""

from __future__ import annotations

import numpy as np
import pytest
from reference_numpy import (
    li_reference_params,
    lif_reference_params,
    surrogate_F,
    surrogate_s,
)

import numbaspike as ns

#: Most tests run the kernels on one thread (tiny arrays; see conftest); the
#: parallel block decomposition is checked by test_parallel_blocks_match_reference.
pytestmark = pytest.mark.usefixtures("single_numba_thread")

DT = 1e-3
T, B, N = 60, 3, 9
TOL = 1e-12

#: alpha per surrogate for smooth mode: F is then a soft step over the range of u.
ALPHAS = {
    "superspike": 5.0,
    "sigmoid": 5.0,
    "atan": 2.0,
    "tanh": 3.0,
    "erfc": 3.0,
    "triangle": 1.0,
    "boxcar": 0.5,
}


def make_case(seed: int, dtype=np.float64, per_neuron: bool = True, recurrent: bool = False):
    """Inputs that make every neuron cross threshold a few times in T steps."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.35, 0.6, size=(T, B, N)).astype(dtype)
    params = {}
    if per_neuron:
        params = dict(
            tau_mem_inv=rng.uniform(70.0, 150.0, N),
            tau_syn_inv=rng.uniform(150.0, 300.0, N),
            v_leak=rng.uniform(-0.1, 0.1, N),
            v_th=rng.uniform(0.8, 1.2, N),
        )
    w_rec = rng.normal(0.0, 0.4, size=(N, N)).astype(dtype) if recurrent else None
    state = (
        rng.uniform(0.0, 1.2, (B, N)).astype(dtype),
        rng.uniform(0.0, 1.5, (B, N)).astype(dtype),
        (rng.random((B, N)) < 0.3).astype(dtype),
    )
    return x, params, w_rec, state


def assert_close(actual, expected, tol=TOL, what=""):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, what
    scale = max(1.0, float(np.max(np.abs(expected))))
    err = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    assert err <= tol * scale, f"{what}: max abs error {err:.3e} (scale {scale:.3g})"


def check_lif(x, p, w_rec=None, state=None, tol=TOL, exact_spikes=True):
    z, tape = ns.lif_forward(x, p, DT, w_rec=w_rec, state=state)
    ref = lif_reference_params(x, p, DT, w_rec=w_rec, state=state)
    assert z.dtype == x.dtype and z.shape == x.shape
    if exact_spikes and not p.smooth:
        np.testing.assert_array_equal(z, ref.z)
        assert set(np.unique(z)) <= {0.0, 1.0}
    else:
        assert_close(z, ref.z, tol, "z")
    assert_close(tape.h, ref.h, tol, "tape.h")
    assert_close(tape.i1, ref.i1, tol, "tape.i1")
    v_f, i_f, z_f = tape.final_state
    assert_close(v_f, ref.v_final, tol, "final v")
    assert_close(i_f, ref.i_final, tol, "final i")
    assert_close(z_f, ref.z_final, tol, "final z")
    return z, ref


@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("surrogate", ns.SURROGATE_NAMES)
def test_lif_smooth_matches_reference(surrogate, reset, recurrent):
    x, params, w_rec, state = make_case(1, recurrent=recurrent)
    p = ns.LIFParameters(
        **params, surrogate=surrogate, alpha=ALPHAS[surrogate], reset=reset, smooth=True
    )
    z, ref = check_lif(x, p, w_rec=w_rec, state=state)
    # smooth mode: the output is F(h - v_th), not a spike
    assert np.unique(z).size > 10
    # and from the default initial state
    check_lif(x, p, w_rec=w_rec, state=None)


@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("surrogate", ["superspike", "sigmoid", "boxcar"])
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("per_neuron", [False, True], ids=["scalar", "per_neuron"])
def test_lif_step_matches_reference(per_neuron, reset, recurrent, surrogate, detach_reset):
    x, params, w_rec, state = make_case(2, per_neuron=per_neuron, recurrent=recurrent)
    p = ns.LIFParameters(
        **params, surrogate=surrogate, reset=reset, detach_reset=detach_reset, alpha=10.0
    )
    z, ref = check_lif(x, p, w_rec=w_rec, state=state)
    rate = z.mean()
    assert 0.05 < rate < 0.6, f"test data should spike sometimes, rate {rate}"
    check_lif(x, p, w_rec=w_rec, state=state[:2])
    check_lif(x, p, w_rec=w_rec, state=None)


@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_lif_step_float32_matches_reference(reset, recurrent):
    """Float32 rounds like an elementwise float32 implementation: identical spikes."""
    x, params, w_rec, state = make_case(3, dtype=np.float32, recurrent=recurrent)
    p = ns.LIFParameters(**params, reset=reset)
    z, tape = ns.lif_forward(x, p, DT, w_rec=w_rec, state=state)
    ref = lif_reference_params(x, p, DT, w_rec=w_rec, state=state)
    assert z.dtype == np.float32 and tape.h.dtype == np.float32
    np.testing.assert_array_equal(z, ref.z)
    np.testing.assert_allclose(tape.h, ref.h, rtol=0, atol=1e-5)
    np.testing.assert_allclose(tape.final_state.v, ref.v_final, rtol=0, atol=1e-5)


def test_surrogate_choice_does_not_change_step_forward():
    x, params, w_rec, state = make_case(4, recurrent=True)
    outs = [
        ns.lif_forward(x, ns.LIFParameters(**params, surrogate=s), DT, w_rec, state)[0]
        for s in ns.SURROGATE_NAMES
    ]
    for z in outs[1:]:
        np.testing.assert_array_equal(z, outs[0])


@pytest.mark.parametrize("per_neuron", [False, True], ids=["scalar", "per_neuron"])
@pytest.mark.parametrize("given_state", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_li_matches_reference(per_neuron, given_state, dtype):
    x, params, _, state = make_case(5, dtype=dtype, per_neuron=per_neuron)
    params.pop("v_th", None)
    p = ns.LIParameters(**params)
    state = state[:2] if given_state else None
    v, tape = ns.li_forward(x, p, DT, state=state)
    ref = li_reference_params(x, p, DT, state=state)
    tol = TOL if dtype == np.float64 else 1e-6
    assert v.dtype == dtype
    assert_close(v, ref.v, tol, "v")
    assert_close(tape.i1, ref.i1, tol, "tape.i1")
    assert_close(tape.final_state.v, ref.v_final, tol, "final v")
    assert_close(tape.final_state.i, ref.i_final, tol, "final i")


@pytest.fixture
def all_numba_threads(single_numba_thread):
    """Undo the module's single-thread setting (set up first): use every Numba thread."""
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


@pytest.mark.usefixtures("all_numba_threads")
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_parallel_blocks_match_reference(recurrent):
    """N > cpu.BLOCK: several neuron blocks (the last one partial) per batch row, and
    B*N > 2 cpu.FLAT_CHUNK_MIN: chunks of the flattened (B*N) axis ending inside batch rows,
    run by all Numba threads; LIF forward, simulate and LI agree with the oracle."""
    import numba

    from numbaspike.kernels import cpu

    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    n, b = cpu.BLOCK + 44, 7
    assert b * n > 2 * cpu.FLAT_CHUNK_MIN and cpu.FLAT_CHUNK_MIN % n != 0
    rng = np.random.default_rng(8)
    x = rng.normal(0.35, 0.6, size=(20, b, n))
    w_rec = rng.normal(0.0, 0.1, size=(n, n)) if recurrent else None
    state = (rng.uniform(0.0, 1.0, (b, n)), 0.0)
    p = ns.LIFParameters(
        tau_mem_inv=rng.uniform(70.0, 150.0, n),
        tau_syn_inv=rng.uniform(150.0, 300.0, n),
        v_leak=rng.uniform(-0.1, 0.1, n),
        v_th=rng.uniform(0.8, 1.2, n),
        reset="subtract",
    )
    z, ref = check_lif(x, p, w_rec=w_rec, state=state)
    assert 0.05 < z.mean() < 0.6
    sim = ns.lif_simulate(x, p, DT, w_rec=w_rec, state=state, record=("spikes", "v"), chunk=8)
    np.testing.assert_array_equal(sim.spike_raster(), ref.z)
    assert_close(sim.v, ref.v, TOL, "simulate v")
    check_lif(x, p.replace(smooth=True, surrogate="atan", alpha=2.0), w_rec=w_rec)
    p_li = ns.LIParameters(
        tau_mem_inv=rng.uniform(80.0, 150.0, n),
        tau_syn_inv=rng.uniform(150.0, 300.0, n),
        v_leak=rng.uniform(-0.1, 0.1, n),
    )
    v, _ = ns.li_forward(x, p_li, DT)
    assert_close(v, li_reference_params(x, p_li, DT).v, TOL, "li v")


@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("smooth", [False, True])
def test_lif_simulate_matches_reference(recurrent, smooth):
    x, params, w_rec, state = make_case(6, recurrent=recurrent)
    p = ns.LIFParameters(**params, reset="subtract", smooth=smooth, surrogate="sigmoid", alpha=5.0)
    sim = ns.lif_simulate(x, p, DT, w_rec=w_rec, state=state, record=("spikes", "v", "i"), chunk=7)
    ref = lif_reference_params(x, p, DT, w_rec=w_rec, state=state)
    assert_close(sim.v, ref.v, TOL, "v trace")
    assert_close(sim.i, ref.i, TOL, "i trace")
    assert_close(sim.final_state.v, ref.v_final, TOL, "final v")
    assert_close(sim.final_state.i, ref.i_final, TOL, "final i")
    if not smooth:
        np.testing.assert_array_equal(sim.spike_raster(), ref.z)
        np.testing.assert_array_equal(sim.spike_counts, ref.z.sum(axis=0))


@pytest.mark.parametrize("surrogate", ns.SURROGATE_NAMES)
def test_reference_surrogates_match_numbaspike(surrogate):
    """The oracle's own F and s agree with numbaspike's (both written from the table)."""
    u = np.linspace(-3.0, 3.0, 1201)
    alpha = ALPHAS[surrogate]
    np.testing.assert_allclose(
        ns.surrogate_forward(surrogate, u, alpha), surrogate_F(surrogate, u, alpha), atol=1e-14
    )
    np.testing.assert_allclose(
        ns.surrogate_derivative(surrogate, u, alpha), surrogate_s(surrogate, u, alpha), atol=1e-14
    )


def test_reset_z_reproduces_base_point():
    """``reset_z`` set to the base-point z reproduces the base run (used for detach FD)."""
    x, params, w_rec, state = make_case(7, recurrent=True)
    for reset in ("zero", "subtract"):
        p = ns.LIFParameters(**params, smooth=True, surrogate="atan", alpha=2.0, reset=reset)
        base = lif_reference_params(x, p, DT, w_rec=w_rec, state=state)
        frozen = lif_reference_params(x, p, DT, w_rec=w_rec, state=state, reset_z=base.z)
        np.testing.assert_array_equal(frozen.z, base.z)
        np.testing.assert_array_equal(frozen.v, base.v)
