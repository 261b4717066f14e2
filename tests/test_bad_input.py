"""Bad input at the public boundary: it either works correctly or raises a clear
``TypeError``/``ValueError`` whose message names the offending argument — never a Numba
typing error, an ``IndexError`` from deep inside, or silently wrong numbers."""

from __future__ import annotations

import re

import numpy as np
import pytest

import numbaspike as ns

pytestmark = pytest.mark.usefixtures("single_numba_thread")

T, B, N = 6, 2, 3
DT = 1e-3
P = ns.LIFParameters(alpha=5.0)


def raises_naming(name: str, exc=(TypeError, ValueError)):
    """``pytest.raises`` for a ``TypeError``/``ValueError`` whose message names ``name``.

    Numba's ``TypingError`` is neither, so a kernel that chokes on an unchecked input
    fails these tests.
    """
    return pytest.raises(exc, match=rf"(?<!\w){re.escape(name)}(?!\w)")


@pytest.fixture
def x(rng):
    return rng.uniform(0.0, 1.0, (T, B, N))


@pytest.fixture
def w_rec(rng):
    return rng.normal(0.0, 0.3, (N, N))


# --------------------------------------------------------------------------------------
# x
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(B, N), (N,), (), (1, T, B, N)], ids=["2d", "1d", "0d", "4d"])
def test_x_wrong_rank(shape):
    bad = np.ones(shape)
    with raises_naming("x", ValueError):
        ns.lif_forward(bad, P, DT)
    with raises_naming("x", ValueError):
        ns.li_forward(bad, ns.LIParameters(), DT)
    with raises_naming("x", ValueError):
        ns.lif_forward(bad, P, DT, w_rec=np.zeros((N, N)))


@pytest.mark.parametrize("shape", [(0, B, N), (T, 0, N), (T, B, 0), (0, 0, 0)])
def test_x_zero_size(shape):
    bad = np.ones(shape)
    with raises_naming("x", ValueError):
        ns.lif_forward(bad, P, DT)
    with raises_naming("x", ValueError):
        ns.li_forward(bad, ns.LIParameters(), DT)
    with raises_naming("x", ValueError):
        ns.lif_simulate(bad, P, DT)


@pytest.mark.parametrize(
    "dtype",
    [np.int64, np.int32, np.uint8, np.bool_, np.float16, np.complex128, np.complex64, object],
)
def test_x_bad_dtype(x, dtype):
    bad = x.astype(dtype)
    with raises_naming("x", TypeError):
        ns.lif_forward(bad, P, DT)
    with raises_naming("x", TypeError):
        ns.li_forward(bad, ns.LIParameters(), DT)
    with raises_naming("x", TypeError):
        ns.lif_simulate(bad, P, DT)


def test_x_other_non_numeric():
    with raises_naming("x", TypeError):
        ns.lif_forward("not an array", P, DT)
    with raises_naming("x", TypeError):
        ns.lif_forward(None, P, DT)


def test_x_nested_list_works(x):
    z, _ = ns.lif_forward(x.tolist(), P, DT)
    np.testing.assert_array_equal(z, ns.lif_forward(x, P, DT)[0])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_x_not_finite(x, value, dtype):
    bad = x.astype(dtype)
    bad[2, 1, 0] = value
    kind = "NaN" if np.isnan(value) else "inf"
    with pytest.raises(ValueError, match=rf"\bx\b.*{kind}"):
        ns.lif_forward(bad, P, DT)
    with pytest.raises(ValueError, match=rf"\bx\b.*{kind}"):
        ns.li_forward(bad, ns.LIParameters(), DT)
    with pytest.raises(ValueError, match=rf"\bx\b.*{kind}"):
        ns.lif_simulate(bad, P, DT)


def test_x_large_but_finite_float32_is_not_reported_as_inf():
    """A finite x whose currents overflow float32 is reported as an overflow, not as an inf
    in x (and never silently: the membrane would hold inf and NaN)."""
    x = np.full((T, B, N), 3e38, np.float32)
    x[:, :, 1] = 0.0
    with pytest.raises(ValueError, match="x is finite but the computation overflowed"):
        ns.lif_forward(x, P, DT)
    small = np.full((T, B, N), 3e37, np.float32)  # large, but i stays below float32's max
    small[1:] = 0.0
    z, _ = ns.lif_forward(small, P, DT)
    assert z.shape == x.shape


@pytest.mark.parametrize("where", [(0, 0, 0), (T - 1, B - 1, N - 1), (T // 2, 0, N - 1)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_output_gradient_is_named_wherever_it_is(where, bad):
    """Output gradients are checked through the initial-state gradients they flow into: a
    NaN/inf anywhere, even at the last step or where the surrogate is 0, is reported."""
    x = np.random.default_rng(0).normal(0.5, 2.0, (T, B, N))
    for surrogate in ("superspike", "boxcar"):
        for w_rec, sparse_tol in ((None, None), (np.eye(N), None), (None, 0.0)):
            p = ns.LIFParameters(
                surrogate=surrogate, alpha=0.01 if surrogate == "boxcar" else 100.0
            )
            z, tape = ns.lif_forward(x, p, DT, w_rec=w_rec, sparse_tol=sparse_tol)
            g = np.ones_like(z)
            g[where] = bad
            with pytest.raises(
                ValueError, match=f"grad_z contains {'NaN' if bad != bad else 'inf'}"
            ):
                ns.lif_backward(g, tape)
    v, li_tape = ns.li_forward(x)
    g = np.ones_like(v)
    g[where] = bad
    with pytest.raises(ValueError, match="grad_v contains"):
        ns.li_backward(g, li_tape)


def _views(x):
    """Non-contiguous views of a (T, B, N) array and the array each should equal."""
    big = np.zeros((2 * T, B + 1, 2 * N), x.dtype)
    big[::2, :B, ::2] = x
    xt = np.ascontiguousarray(np.transpose(x, (2, 1, 0)))  # (N, B, T)
    ro = x.copy()
    ro.setflags(write=False)
    return {
        "strided": big[::2, :B, ::2],
        "transposed": np.transpose(xt, (2, 1, 0)),
        "fortran": np.asfortranarray(x),
        "reversed_twice": x[::-1][::-1],
        "read_only": ro,
        "negative_strides": np.ascontiguousarray(x[::-1])[::-1],
    }


VIEW_KINDS = ["strided", "transposed", "fortran", "reversed_twice", "negative_strides"]


# a read-only array is a distinct Numba type (one more compile of every kernel), so it is
# checked in float64 only
@pytest.mark.parametrize(
    "dtype,kind",
    [(np.float64, k) for k in [*VIEW_KINDS, "read_only"]] + [(np.float32, k) for k in VIEW_KINDS],
)
def test_x_non_contiguous_works(x, w_rec, kind, dtype):
    x = x.astype(dtype)
    view = _views(x)[kind]
    np.testing.assert_array_equal(view, x)
    assert view.dtype == x.dtype
    for w in (None, w_rec):
        z_ref, tape_ref = ns.lif_forward(x, P, DT, w_rec=w)
        z, tape = ns.lif_forward(view, P, DT, w_rec=w)
        np.testing.assert_array_equal(z, z_ref)
        np.testing.assert_array_equal(tape.h, tape_ref.h)
        g_ref = ns.lif_backward(np.ones_like(x), tape_ref)
        g = ns.lif_backward(_views(np.ones_like(x))[kind], tape)
        np.testing.assert_array_equal(g.x, g_ref.x)
    v_ref, _ = ns.li_forward(x, ns.LIParameters(), DT)
    v, _ = ns.li_forward(view, ns.LIParameters(), DT)
    np.testing.assert_array_equal(v, v_ref)
    sim = ns.lif_simulate(view, P, DT, record=("spikes", "v"), chunk=4)
    np.testing.assert_array_equal(sim.spike_raster(), z_ref != 0)
    assert not np.shares_memory(z, view)


def test_non_contiguous_w_rec_state_and_grads_work(x, w_rec, rng):
    v0 = rng.uniform(0, 1, (B, N))
    i0 = rng.uniform(0, 1, (B, N))
    gz = rng.normal(size=(T, B, N))
    z_ref, tape_ref = ns.lif_forward(x, P, DT, w_rec=w_rec, state=(v0, i0))
    g_ref = ns.lif_backward(gz, tape_ref, grad_final_state=(v0, i0))
    w_t = np.ascontiguousarray(w_rec.T).T  # Fortran-ordered view equal to w_rec
    v0_t = np.ascontiguousarray(v0.T).T
    i0_s = np.repeat(i0, 2, axis=1)[:, ::2]
    z, tape = ns.lif_forward(x, P, DT, w_rec=w_t, state=(v0_t, i0_s))
    g = ns.lif_backward(gz, tape, grad_final_state=(v0_t, i0_s))
    np.testing.assert_array_equal(z, z_ref)
    for name in ("x", "w_rec", "v0", "i0", "z0", "tau_mem_inv", "v_th"):
        np.testing.assert_array_equal(getattr(g, name), getattr(g_ref, name))


def test_inputs_are_not_modified(x, w_rec, rng):
    state = (rng.uniform(0, 1, (B, N)), rng.uniform(0, 1, (B, N)), np.ones((B, N)))
    gz = rng.normal(size=(T, B, N))
    gfs = (rng.normal(size=(B, N)), rng.normal(size=(B, N)))
    copies = [a.copy() for a in (x, w_rec, *state, gz, *gfs)]
    z, tape = ns.lif_forward(x, P, DT, w_rec=w_rec, state=state)
    ns.lif_backward(gz, tape, grad_final_state=gfs)
    g2 = ns.lif_backward(gz, tape, grad_final_state=gfs)  # a tape can be used twice
    g1 = ns.lif_backward(gz, tape, grad_final_state=gfs)
    np.testing.assert_array_equal(g1.x, g2.x)
    ns.lif_simulate(x, P, DT, w_rec=w_rec, state=state)
    for before, after in zip(copies, (x, w_rec, *state, gz, *gfs), strict=True):
        np.testing.assert_array_equal(before, after)


# --------------------------------------------------------------------------------------
# w_rec, state, gradients, tapes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(N, N + 1), (N + 1, N), (1, N), (N,), (N * N,), (1, N, N), ()])
def test_w_rec_wrong_shape(x, shape):
    with raises_naming("w_rec", ValueError):
        ns.lif_forward(x, P, DT, w_rec=np.zeros(shape))
    with raises_naming("w_rec", ValueError):
        ns.lif_simulate(x, P, DT, w_rec=np.zeros(shape))


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_w_rec_not_finite(x, w_rec, value):
    w_rec[1, 2] = value
    with raises_naming("w_rec", ValueError):
        ns.lif_forward(x, P, DT, w_rec=w_rec)
    with raises_naming("w_rec", ValueError):
        ns.lif_simulate(x, P, DT, w_rec=w_rec)


@pytest.mark.parametrize("dtype", [np.complex128, object])
def test_w_rec_bad_dtype(x, dtype):
    with raises_naming("w_rec", TypeError):
        ns.lif_forward(x, P, DT, w_rec=np.zeros((N, N), dtype))


def test_w_rec_other_real_dtypes_are_cast(x, w_rec):
    """An int or float32 w_rec with float64 x is cast to the dtype of x."""
    w_int = np.round(w_rec * 3)
    z_ref, _ = ns.lif_forward(x, P, DT, w_rec=w_int)
    z, tape = ns.lif_forward(x, P, DT, w_rec=w_int.astype(np.int64))
    np.testing.assert_array_equal(z, z_ref)
    assert tape.w_rec.dtype == np.float64
    z32, tape32 = ns.lif_forward(x.astype(np.float32), P, DT, w_rec=w_rec)
    assert tape32.w_rec.dtype == np.float32 and z32.dtype == np.float32


@pytest.mark.parametrize("field,index", [("state.v", 0), ("state.i", 1), ("state.z", 2)])
@pytest.mark.parametrize("shape", [(B + 1, N), (N + 1,), (B, N, 1), (1, B, N), (B,)])
def test_state_wrong_shape(x, w_rec, field, index, shape):
    state = [np.zeros((B, N)), np.zeros((B, N)), np.zeros((B, N))]
    state[index] = np.zeros(shape)
    with raises_naming(field, ValueError):
        ns.lif_forward(x, P, DT, w_rec=w_rec, state=tuple(state))
    with raises_naming(field, ValueError):
        ns.lif_simulate(x, P, DT, w_rec=w_rec, state=tuple(state))
    if index < 2:
        with raises_naming(field, ValueError):
            ns.li_forward(x, ns.LIParameters(), DT, state=tuple(state[:2]))


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_state_not_finite(x, value):
    with raises_naming("state.v", ValueError):
        ns.lif_forward(x, P, DT, state=(np.full((B, N), value), 0.0))
    with raises_naming("state.i", ValueError):
        ns.li_forward(x, ns.LIParameters(), DT, state=(0.0, np.full((B, N), value)))


@pytest.mark.parametrize(
    "state", [(np.zeros((B, N)),), [np.zeros((B, N))] * 2, np.zeros((2, B, N)), "v", 0.0]
)
def test_state_wrong_container(x, state):
    with raises_naming("state", TypeError):
        ns.lif_forward(x, P, DT, state=state)


def test_state_broadcasts(x):
    """A scalar, an (N,) vector or a (B, N) array are all valid initial states."""
    z_full, _ = ns.lif_forward(x, P, DT, state=(np.full((B, N), 0.5), np.zeros((B, N))))
    z_vec, _ = ns.lif_forward(x, P, DT, state=(np.full(N, 0.5), 0))
    z_scalar, _ = ns.lif_forward(x, P, DT, state=(0.5, 0.0))
    np.testing.assert_array_equal(z_vec, z_full)
    np.testing.assert_array_equal(z_scalar, z_full)
    z_default, _ = ns.lif_forward(x, P, DT, state=ns.LIFState(0.0, 0.0, None))
    np.testing.assert_array_equal(z_default, ns.lif_forward(x, P, DT)[0])


@pytest.mark.parametrize("shape", [(T, B, N + 1), (T + 1, B, N), (T, B), (B, N), (1, T, B, N)])
def test_grad_wrong_shape(x, shape):
    _, tape = ns.lif_forward(x, P, DT)
    with raises_naming("grad_z", ValueError):
        ns.lif_backward(np.ones(shape), tape)
    _, li_tape = ns.li_forward(x, ns.LIParameters(), DT)
    with raises_naming("grad_v", ValueError):
        ns.li_backward(np.ones(shape), li_tape)


def test_grad_not_finite_or_bad_dtype(x):
    _, tape = ns.lif_forward(x, P, DT)
    bad = np.ones((T, B, N))
    bad[0, 0, 0] = np.nan
    with raises_naming("grad_z", ValueError):
        ns.lif_backward(bad, tape)
    with raises_naming("grad_z", TypeError):
        ns.lif_backward(np.ones((T, B, N), complex), tape)
    g_int = ns.lif_backward(np.ones((T, B, N), np.int64), tape)
    np.testing.assert_array_equal(g_int.x, ns.lif_backward(np.ones((T, B, N)), tape).x)


@pytest.mark.parametrize("shape", [(B + 1, N), (N + 1,), (T, B, N)])
def test_grad_final_state_wrong_shape(x, shape):
    _, tape = ns.lif_forward(x, P, DT)
    gz = np.ones((T, B, N))
    with raises_naming("grad_final_state.v", ValueError):
        ns.lif_backward(gz, tape, grad_final_state=(np.ones(shape), 0.0))
    with raises_naming("grad_final_state.i", ValueError):
        ns.lif_backward(gz, tape, grad_final_state=(0.0, np.ones(shape)))


def test_grad_final_state_wrong_length(x):
    _, tape = ns.lif_forward(x, P, DT)
    with raises_naming("grad_final_state"):
        ns.lif_backward(np.ones((T, B, N)), tape, grad_final_state=(np.zeros((B, N)),))


def test_wrong_tape(x):
    _, li_tape = ns.li_forward(x, ns.LIParameters(), DT)
    _, lif_tape = ns.lif_forward(x, P, DT)
    gz = np.ones((T, B, N))
    with raises_naming("tape", TypeError):
        ns.lif_backward(gz, li_tape)
    with raises_naming("tape", TypeError):
        ns.li_backward(gz, lif_tape)
    for bad in (None, (lif_tape.h, lif_tape.z), lif_tape.h):
        with raises_naming("tape", TypeError):
            ns.lif_backward(gz, bad)


def test_wrong_parameter_class(x):
    with raises_naming("p", TypeError):
        ns.lif_forward(x, ns.LIParameters(), DT)
    with raises_naming("p", TypeError):
        ns.li_forward(x, P, DT)
    with raises_naming("p", TypeError):
        ns.lif_simulate(x, ns.LIParameters(), DT)
    with raises_naming("p", TypeError):
        ns.lif_forward(x, {"tau_mem_inv": 100.0}, DT)


# --------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tau_mem_inv", "tau_syn_inv"])
@pytest.mark.parametrize("value", [0.0, -100.0, np.nan, np.inf, -np.inf, [100.0, 0.0, 50.0]])
def test_bad_time_constant(name, value):
    with raises_naming(name, ValueError):
        ns.LIFParameters(**{name: value})
    with raises_naming(name, ValueError):
        ns.LIParameters(**{name: value})


@pytest.mark.parametrize("name", ["v_th", "v_leak", "v_reset"])
@pytest.mark.parametrize("value", [np.nan, np.inf, [1.0, np.nan]])
def test_not_finite_potentials(name, value):
    with raises_naming(name, ValueError):
        ns.LIFParameters(**{name: value})


@pytest.mark.parametrize("name", ["tau_mem_inv", "tau_syn_inv", "v_th", "v_leak"])
@pytest.mark.parametrize("value", ["fast", None, [], np.ones((2, 2)), True, {"a": 1}])
def test_not_a_number(name, value):
    with raises_naming(name, ValueError):
        ns.LIFParameters(**{name: value})


def test_v_reset_must_be_scalar():
    with raises_naming("v_reset", ValueError):
        ns.LIFParameters(v_reset=np.zeros(3))


@pytest.mark.parametrize("value", ["nope", "", None, "Sigmoid", 1])
def test_unknown_surrogate(value):
    with raises_naming("surrogate", ValueError):
        ns.LIFParameters(surrogate=value)
    with raises_naming("surrogate", ValueError):
        P.replace(surrogate=value)


@pytest.mark.parametrize("value", ["reset", "hard", "", None, 0, "Zero"])
def test_unknown_reset(value):
    with raises_naming("reset", ValueError):
        ns.LIFParameters(reset=value)


def test_unhashable_reset():
    with raises_naming("reset"):
        ns.LIFParameters(reset=["zero"])


@pytest.mark.parametrize("value", [-1.0, 0.0, np.nan, np.inf, np.ones(2), True, "sharp"])
def test_bad_alpha(value):
    with raises_naming("alpha", ValueError):
        ns.LIFParameters(alpha=value)


@pytest.mark.parametrize("flag", ["smooth", "detach_reset"])
@pytest.mark.parametrize("value", [1, 0, "True", None, 1.0, np.array([True])])
def test_non_bool_flags(flag, value):
    with raises_naming(flag, ValueError):
        ns.LIFParameters(**{flag: value})


def test_numpy_bool_flags_work(x):
    p = ns.LIFParameters(smooth=np.bool_(True), detach_reset=np.bool_(False))
    z, _ = ns.lif_forward(x, p, DT)
    z_ref, _ = ns.lif_forward(x, ns.LIFParameters(smooth=True), DT)
    np.testing.assert_array_equal(z, z_ref)


def test_per_neuron_lengths_mismatch_between_fields():
    with raises_naming("tau_mem_inv", ValueError):
        ns.LIFParameters(tau_mem_inv=np.full(3, 100.0), v_th=np.ones(4))
    with raises_naming("v_leak", ValueError):
        ns.LIFParameters(v_leak=np.zeros(2), tau_syn_inv=np.full(3, 200.0))
    with raises_naming("tau_syn_inv", ValueError):
        ns.LIParameters(tau_syn_inv=np.full(3, 200.0), v_leak=np.zeros(2))
    with raises_naming("v_th", ValueError):
        P.replace(v_th=np.ones(5), v_leak=np.zeros(4))


@pytest.mark.parametrize("name", ["tau_mem_inv", "tau_syn_inv", "v_th", "v_leak"])
@pytest.mark.parametrize("length", [N - 1, N + 1, 1])
def test_per_neuron_length_mismatch_with_x(x, w_rec, name, length):
    value = np.full(length, {"tau_mem_inv": 100.0, "tau_syn_inv": 200.0}.get(name, 0.5))
    p = ns.LIFParameters(**{name: value})
    with raises_naming(name, ValueError):
        ns.lif_forward(x, p, DT)
    with raises_naming(name, ValueError):
        ns.lif_forward(x, p, DT, w_rec=w_rec)
    with raises_naming(name, ValueError):
        ns.lif_simulate(x, p, DT)
    if name != "v_th":
        with raises_naming(name, ValueError):
            ns.li_forward(x, ns.LIParameters(**{name: value}), DT)


def test_per_neuron_parameters_work(x):
    """Per-neuron arrays given as lists or float32 arrays are used per neuron."""
    v_th = [0.5, 1.0, 2.0]
    z_list, _ = ns.lif_forward(x, ns.LIFParameters(v_th=v_th), DT)
    z_f32, _ = ns.lif_forward(x, ns.LIFParameters(v_th=np.array(v_th, np.float32)), DT)
    np.testing.assert_array_equal(z_list, z_f32)
    for k, th in enumerate(v_th):
        z_k, _ = ns.lif_forward(x, ns.LIFParameters(v_th=th), DT)
        np.testing.assert_array_equal(z_list[:, :, k], z_k[:, :, k])


@pytest.mark.parametrize("dt", [0.0, -1e-3, np.nan, np.inf, "1ms", None])
def test_bad_dt(x, dt):
    with raises_naming("dt", ValueError):
        ns.lif_forward(x, P, dt)
    with raises_naming("dt", ValueError):
        ns.li_forward(x, ns.LIParameters(), dt)
    with raises_naming("dt", ValueError):
        ns.lif_simulate(x, P, dt)


@pytest.mark.parametrize(
    "params,dt,name",
    [
        (dict(tau_mem_inv=100.0), 0.01, "tau_mem_inv"),  # exactly 1
        (dict(tau_mem_inv=100.0), 0.02, "tau_mem_inv"),
        (dict(tau_mem_inv=[100.0, 1000.0, 10.0]), 1e-3, "tau_mem_inv"),
        (dict(tau_syn_inv=1000.0, tau_mem_inv=10.0), 1e-3, "tau_syn_inv"),
        (dict(tau_syn_inv=[200.0, 2000.0, 20.0]), 1e-3, "tau_syn_inv"),
    ],
)
def test_unstable_euler_step(x, params, dt, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b|\bdt\b"):
        ns.lif_forward(x, ns.LIFParameters(**params), dt)
    with pytest.raises(ValueError, match=rf"\b{name}\b|\bdt\b"):
        ns.lif_simulate(x, ns.LIFParameters(**params), dt)
    with pytest.raises(ValueError, match=rf"\b{name}\b|\bdt\b"):
        ns.li_forward(x, ns.LIParameters(**params), dt)


def test_stable_euler_step_just_below_one(x):
    z, _ = ns.lif_forward(x, ns.LIFParameters(tau_mem_inv=999.0, tau_syn_inv=999.0), DT)
    assert np.all(np.isfinite(z))


# --------------------------------------------------------------------------------------
# lif_simulate arguments
# --------------------------------------------------------------------------------------


def test_simulate_bad_arguments(x):
    with raises_naming("steps", ValueError):
        ns.lif_simulate(x[0], P, DT)  # constant current needs steps
    for steps in (0, -3, 2.5, True, "10"):
        with raises_naming("steps", ValueError):
            ns.lif_simulate(x[0], P, DT, steps=steps)
    with raises_naming("steps", ValueError):
        ns.lif_simulate(x, P, DT, steps=T + 1)
    for chunk in (0, -1, 1.5, None):
        with raises_naming("chunk", ValueError):
            ns.lif_simulate(x, P, DT, chunk=chunk)
    for record in (("spikes", "voltage"), ("count",), "raster", 3, (None,), (["v"],)):
        with raises_naming("record", ValueError):
            ns.lif_simulate(x, P, DT, record=record)
    with raises_naming("x", ValueError):
        ns.lif_simulate(np.ones(N), P, DT, steps=3)
    with raises_naming("x", ValueError):
        ns.lif_simulate(iter([]), P, DT)
    with raises_naming("x", ValueError):
        ns.lif_simulate(iter([x[:2], x[2:, :, :2]]), P, DT)  # chunks of different N
    with raises_naming("x", ValueError):
        ns.lif_simulate(iter([x[:2], x[2:].astype(np.float32)]), P, DT)  # mixed dtypes
    with raises_naming("x", TypeError):
        ns.lif_simulate(object(), P, DT)
    bad = x[0].copy()
    bad[0, 0] = np.nan
    with raises_naming("x", ValueError):
        ns.lif_simulate(bad, P, DT, steps=5)


# --------------------------------------------------------------------------------------
# Layer construction
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scale", [np.nan, np.inf, -np.inf, np.float32(np.nan), "2", None, True, [1.0, 2.0]]
)
def test_layer_scale_must_be_a_finite_number(scale):
    """Refused when the layer is built: NaN or inf weights would only be reported at the
    next forward pass, as NaN in its input."""
    from numbaspike import layers as L

    with raises_naming("scale", ValueError):
        L.Linear(3, 2, scale=scale)
    with raises_naming("scale", ValueError):
        L.Linear(3, 2, bias=True, scale=scale)
    with raises_naming("scale", ValueError):
        L.LIFRecurrent(3, scale=scale)


def test_layer_scale_must_not_overflow_the_weights():
    from numbaspike import layers as L

    with raises_naming("scale", ValueError):
        L.Linear(3, 2, scale=-1e300)
    with raises_naming("scale", ValueError):
        L.LIFRecurrent(3, scale=1e39)
    assert np.all(np.isfinite(L.Linear(3, 2, scale=1e300, dtype=np.float64).weight))


@pytest.mark.parametrize("scale", [0, 3, -2.5, np.float32(4.0), np.int64(2)])
def test_layer_scale_accepts_real_numbers(scale):
    from numbaspike import layers as L

    lin = L.Linear(3, 2, seed=0, scale=scale)
    expected = L.Linear(3, 2, seed=0).weight * float(scale)
    np.testing.assert_allclose(lin.weight, expected, rtol=1e-6)
    rec = L.LIFRecurrent(3, seed=0, scale=scale)
    base = L.LIFRecurrent(3, seed=0).parameters()["w_rec"]
    np.testing.assert_allclose(rec.parameters()["w_rec"], base * float(scale), rtol=1e-6)
