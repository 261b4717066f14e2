"""The LSNN model file (:mod:`numbaspike.models.lsnn`) on the generic driver.

* Parity with the PyTorch-autograd oracle ``lsnn_forward_torch`` in float64: spikes and final
  state exactly / to 1e-12, every gradient (x, w_rec, v0/i0/b0/z0, all six parameters,
  per-neuron and scalar) to 1e-10 of its largest magnitude, over feed-forward/recurrent x
  zero/subtract reset x detach_reset x (spike mode, smooth mode) x 2 surrogates x
  (scalar parameters, default state / per-neuron parameters, given state).
* Smooth mode: central finite differences of a scalar loss of ``neuron_forward`` agree with
  ``neuron_backward`` (relative 1e-6).
* float32 runs close to float64; results do not depend on the Numba thread count.
* Bad parameters and states are refused with an error naming the argument.
"""

from __future__ import annotations

import zlib

import numba
import numpy as np
import pytest
import torch

import numbaspike
from numbaspike.functional import LIFState
from numbaspike.models import LSNN, LSNNParameters, model_named
from numbaspike.neuron import neuron_backward, neuron_forward
from numbaspike.torch_reference import lsnn_forward_torch

DT = 1e-3
T, B, N = 40, 3, 6
GRAD_TOL = 1e-10
PARAMS = ("tau_mem_inv", "tau_syn_inv", "tau_adapt_inv", "v_leak", "v_th", "beta")
#: Smooth mode's alpha: moderate, as a sharper F makes the attached reset expand errors.
SMOOTH_ALPHA = 3.0
#: (smooth, surrogate, alpha): the spike mode with a sharp surrogate, smooth with a moderate one.
MODES = {
    "spike-superspike": (False, "superspike", 100.0),
    "spike-sigmoid": (False, "sigmoid", 20.0),
    "smooth-atan": (True, "atan", SMOOTH_ALPHA),
    "smooth-sigmoid": (True, "sigmoid", SMOOTH_ALPHA),
}


def _seed(*parts) -> int:
    return zlib.crc32(repr(parts).encode())


def _case(seed: int, per_neuron: bool, recurrent: bool, smooth: bool, shape=(T, B, N)):
    """Input, parameter values, recurrent weights and initial state (float64 NumPy)."""
    rng = np.random.default_rng(seed)
    n_steps, batch, n = shape
    # smooth mode raises b by beta * F(u) > 0 at every step: a steadier drive keeps its mean
    # z (the expected spike count) in the range of the spike mode's firing rate
    x = rng.normal(0.9, 2.4, shape) if not smooth else rng.normal(1.2, 1.5, shape)
    if per_neuron:
        p = {
            "tau_mem_inv": rng.uniform(70.0, 150.0, n),
            "tau_syn_inv": rng.uniform(150.0, 300.0, n),
            # much faster than Norse's 1/800 so that b visibly relaxes within T steps
            "tau_adapt_inv": rng.uniform(5.0, 50.0, n),
            "v_leak": rng.uniform(-0.1, 0.1, n),
            "v_th": rng.uniform(0.8, 1.2, n),
            # smooth mode: a smaller jump, since a high b makes dv/dv_d = 1 - s (b - v_reset)
            # of the attached subtractive reset < -1, which amplifies every rounding error
            "beta": rng.uniform(0.3, 2.0, n) * (0.3 if smooth else 1.0),
        }
        v_reset = -0.1
    else:
        p = {
            "tau_mem_inv": 110.0,
            "tau_syn_inv": 220.0,
            "tau_adapt_inv": 20.0,
            "v_leak": 0.05,
            "v_th": 1.0,
            "beta": 0.3 if smooth else 0.9,
        }
        v_reset = 0.0
    w_rec = rng.normal(0.0, 1.0 / np.sqrt(n), (n, n)) if recurrent else None
    state = None
    if per_neuron:
        state = {
            "v": rng.uniform(-0.2, 0.8, (batch, n)),
            "i": rng.normal(0.0, 1.0, (batch, n)),
            "b": rng.uniform(1.0, 2.0, (batch, n)),
        }
        if recurrent:
            state["z"] = (rng.random((batch, n)) < 0.3).astype(np.float64)
    return x, p, v_reset, w_rec, state


def _leaf(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a, np.float64), dtype=torch.float64, requires_grad=True)


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return float(np.max(np.abs(a - b))) / scale if scale > 0 else float(np.max(np.abs(a)))


@pytest.mark.slow  # an exhaustive matrix; tests/test_models.py checks every model in CI
@pytest.mark.parametrize(
    "per_neuron", [False, True], ids=["scalar_default_state", "per_neuron_given_state"]
)
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("detach", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_matches_torch_oracle(recurrent, reset, detach, mode, per_neuron):
    smooth, surrogate, alpha = MODES[mode]
    seed = _seed("lsnn", recurrent, reset, detach, mode, per_neuron)
    x, pv, v_reset, w_rec, state = _case(seed, per_neuron, recurrent, smooth)
    p = LSNNParameters(
        **pv, v_reset=v_reset, surrogate=surrogate, alpha=alpha, reset=reset,
        detach_reset=detach, smooth=smooth,
    )  # fmt: skip
    z, tape = neuron_forward(x, p, DT, w_rec=w_rec, state=state)
    rng = np.random.default_rng(seed + 1)
    gy = rng.normal(size=x.shape)
    g_final = {k: rng.normal(size=(B, N)) for k in ("v", "i", "b")}
    grads = neuron_backward(gy, tape, grad_final_state=g_final)

    xt, wt = _leaf(x), None if w_rec is None else _leaf(w_rec)
    pt = {k: _leaf(v) for k, v in pv.items()}
    pt["v_reset"] = v_reset
    if state is not None:
        st = {k: _leaf(v) for k, v in state.items()}
    else:
        # the oracle's defaults, as leaves so that i0, b0 (and z0) can be read; b0 = v_th is
        # detached there as in numbaspike, and v0 = v_leak stays in v_leak's graph
        st = {"i": _leaf(np.zeros((B, N))), "b": _leaf(np.broadcast_to(pv["v_th"], (B, N)))}
        if recurrent:
            st["z"] = _leaf(np.zeros((B, N)))
    zt, ft = lsnn_forward_torch(
        xt, pt, DT, wt, st, surrogate=surrogate, alpha=alpha, reset=reset,
        detach_reset=detach, smooth=smooth,
    )  # fmt: skip
    loss = (zt * torch.from_numpy(gy)).sum()
    loss = loss + sum((ft[k] * torch.from_numpy(g_final[k])).sum() for k in g_final)
    loss.backward()

    # the case exercises spikes (smooth mode: their expectation) and an adapting threshold
    fired = z.mean()
    assert 0.05 <= fired <= 0.4, fired
    assert np.max(tape.final_state["b"]) > np.max(pv["v_th"]) + 0.3
    if smooth:
        assert _rel(z, zt.detach()) < 1e-12
    else:
        np.testing.assert_array_equal(z, zt.detach().numpy())
    for k in ("v", "i", "b"):
        assert _rel(tape.final_state[k], ft[k].detach()) < 1e-12, k

    errors = {"x": _rel(grads["x"], xt.grad)}
    if recurrent:
        errors["w_rec"] = _rel(grads["w_rec"], wt.grad)
        errors["z0"] = _rel(grads["z0"], st["z"].grad)
    errors["i0"] = _rel(grads["i0"], st["i"].grad)
    errors["b0"] = _rel(grads["b0"], st["b"].grad)
    if state is not None:
        errors["v0"] = _rel(grads["v0"], st["v"].grad)
    for name in PARAMS:
        assert np.shape(grads[name]) == np.shape(pv[name]), name
        errors[name] = _rel(grads[name], pt[name].grad)
    worst = max(errors, key=errors.get)
    assert errors[worst] < GRAD_TOL, errors
    # every gradient is a real signal, not a zero that matches a zero
    for name in ("x", "b0", *PARAMS):
        assert np.max(np.abs(grads[name])) > 0, name


def test_default_state_and_ownership():
    """b0 = v_th is a constant (no gradient to v_th through it); v0 = v_leak passes it on."""
    x, pv, v_reset, _, _ = _case(_seed("own"), False, False, False)
    p = LSNNParameters(**pv, v_reset=v_reset)
    gy = np.random.default_rng(3).normal(size=x.shape)
    _, tape = neuron_forward(x, p, DT)
    g = neuron_backward(gy, tape)
    _, tape_given = neuron_forward(x, p, DT, state={"v": pv["v_leak"], "b": pv["v_th"]})
    np.testing.assert_array_equal(tape.state0, tape_given.state0)
    g_given = neuron_backward(gy, tape_given)
    assert g["v_th"] == g_given["v_th"]
    np.testing.assert_allclose(g["v_leak"], g_given["v_leak"] + g_given["v0"].sum(), rtol=1e-13)
    assert LSNN.initial_state_owner == {"v": "v_leak"}
    assert model_named("lsnn") is LSNN
    assert LSNN.state == ("v", "i", "b")
    assert set(LSNN.learnable) == set(PARAMS)


# --------------------------------------------------------------------------------------
# Smooth mode: finite differences of neuron_forward against neuron_backward
# --------------------------------------------------------------------------------------

FD_SHAPE = (20, 2, 4)


def _fd_setup(recurrent: bool, reset: str):
    seed = _seed("fd", recurrent, reset)
    x, pv, v_reset, w_rec, state = _case(seed, True, recurrent, True, FD_SHAPE)
    rng = np.random.default_rng(seed + 7)
    gy = rng.normal(size=x.shape)
    gv = rng.normal(size=FD_SHAPE[1:])
    base = dict(surrogate="atan", alpha=SMOOTH_ALPHA, reset=reset, smooth=True, v_reset=v_reset)

    def loss(x=x, pv=pv, w_rec=w_rec, state=state):
        z, tape = neuron_forward(x, LSNNParameters(**pv, **base), DT, w_rec=w_rec, state=state)
        return float(np.sum(z * gy) + np.sum(tape.final_state["v"] * gv))

    z, tape = neuron_forward(x, LSNNParameters(**pv, **base), DT, w_rec=w_rec, state=state)
    grads = neuron_backward(gy, tape, grad_final_state={"v": gv})
    return x, pv, w_rec, state, loss, grads


def _central(f, value, index):
    # a step relative to the value: the rates (~100/s) take dt-scaled, hence small, gradients
    h = 1e-6 * max(1.0, abs(float(value[index])))
    plus, minus = value.copy(), value.copy()
    plus[index] += h
    minus[index] -= h
    return (f(plus) - f(minus)) / (2 * h)


@pytest.mark.slow  # an exhaustive matrix; tests/test_models.py checks every model in CI
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_smooth_finite_differences(recurrent, reset, single_numba_thread):
    x, pv, w_rec, state, loss, grads = _fd_setup(recurrent, reset)
    rng = np.random.default_rng(_seed("fd-pick", recurrent, reset))
    checks = []  # (name, analytic gradient, index, central difference)
    for _ in range(6):
        idx = tuple(int(rng.integers(s)) for s in x.shape)
        checks.append(("x", grads["x"], idx, _central(lambda a: loss(x=a), x, idx)))
    for name in PARAMS:
        for k in range(FD_SHAPE[2]):

            def f(a, name=name):
                return loss(pv={**pv, name: a})

            checks.append((name, grads[name], k, _central(f, pv[name], k)))
    for key in state:  # v, i, b and, recurrent, z
        idx = (int(rng.integers(FD_SHAPE[1])), int(rng.integers(FD_SHAPE[2])))

        def f(a, key=key):
            return loss(state={**state, key: a})

        checks.append((f"{key}0", grads[f"{key}0"], idx, _central(f, state[key], idx)))
    if recurrent:
        for _ in range(4):
            idx = tuple(int(rng.integers(FD_SHAPE[2])) for _ in range(2))
            fd = _central(lambda a: loss(w_rec=a), w_rec, idx)
            checks.append(("w_rec", grads["w_rec"], idx, fd))
    for name, analytic, idx, fd in checks:
        scale = max(float(np.max(np.abs(analytic))), 1e-12)
        err = abs(float(np.asarray(analytic)[idx]) - fd) / scale
        assert err < 1e-6, (name, idx, float(np.asarray(analytic)[idx]), fd, err)


# --------------------------------------------------------------------------------------
# float32, threads
# --------------------------------------------------------------------------------------


@pytest.mark.slow  # an exhaustive matrix; tests/test_models.py checks every model in CI
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_float32_close_to_float64(recurrent):
    seed = _seed("f32", recurrent)
    x, pv, v_reset, w_rec, state = _case(seed, True, recurrent, False)
    w32 = None if w_rec is None else w_rec.astype(np.float32)
    for smooth in (False, True):
        p = LSNNParameters(
            **pv, v_reset=v_reset, smooth=smooth, surrogate="atan", alpha=SMOOTH_ALPHA
        )
        z64, t64 = neuron_forward(x, p, DT, w_rec=w_rec, state=state)
        z32, t32 = neuron_forward(x.astype(np.float32), p, DT, w_rec=w32, state=state)
        assert z32.dtype == np.float32 and t32.final_state["b"].dtype == np.float32
        g32 = neuron_backward(np.ones_like(z32), t32)
        assert g32["x"].dtype == np.float32
        if smooth:
            np.testing.assert_allclose(z32, z64, rtol=0, atol=1e-4)
            for k in ("v", "i", "b"):
                np.testing.assert_allclose(
                    t32.final_state[k], t64.final_state[k], rtol=0, atol=1e-3
                )
            g64 = neuron_backward(np.ones_like(z64), t64)
            assert _rel(g32["x"], g64["x"]) < 1e-3
            assert _rel(g32["tau_adapt_inv"], g64["tau_adapt_inv"]) < 1e-3
        else:
            # a spike within float32 rounding of the threshold may flip, rarely
            assert np.mean(z32 != z64) < 0.01


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_thread_count_independent(recurrent):
    x, pv, v_reset, w_rec, state = _case(_seed("threads", recurrent), True, recurrent, False)
    x = np.concatenate([x] * 3, axis=1)  # more batch rows than threads
    state = {k: np.concatenate([v] * 3, axis=0) for k, v in state.items()}
    p = LSNNParameters(**pv, v_reset=v_reset, reset="subtract")
    gy = np.random.default_rng(5).normal(size=x.shape)
    previous = numbaspike.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            numbaspike.set_num_threads(threads)
            z, tape = neuron_forward(x, p, DT, w_rec=w_rec, state=state)
            results.append((z, tape.final_state, neuron_backward(gy, tape)))
    finally:
        numbaspike.set_num_threads(previous)
    (z1, f1, g1), (z2, f2, g2) = results
    np.testing.assert_array_equal(z1, z2)
    for k in f1:
        np.testing.assert_array_equal(f1[k], f2[k])
    assert set(g1) == set(g2)
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k])


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tau_syn_inv", "tau_mem_inv", "tau_adapt_inv"])
def test_refuses_non_positive_time_constants(name):
    with pytest.raises(ValueError, match=name):
        LSNNParameters(**{name: -1.0})
    with pytest.raises(ValueError, match=name):
        LSNNParameters(**{name: np.array([100.0, 0.0, 50.0])})
    with pytest.raises(ValueError, match=name):  # an unstable Euler step
        neuron_forward(np.ones((3, 1, 2)), LSNNParameters(**{name: 1000.0}), DT)


def test_refuses_bad_beta():
    with pytest.raises(ValueError, match="beta"):
        LSNNParameters(beta=np.ones((N, 1)))
    with pytest.raises(ValueError, match="beta"):
        LSNNParameters(beta=np.ones(N + 1), v_th=np.ones(N) * 1.1)
    with pytest.raises(ValueError, match="beta"):
        LSNNParameters(beta=float("nan"))
    with pytest.raises(ValueError, match=r"\bp\b|beta"):
        neuron_forward(np.ones((3, 1, N)), LSNNParameters(beta=np.ones(N + 1)), DT)
    LSNNParameters(beta=-0.5)  # a negative jump (a lowering threshold) is allowed


def test_refuses_reset_at_or_above_threshold():
    with pytest.raises(ValueError, match="v_reset"):
        LSNNParameters(v_reset=1.0)
    with pytest.raises(ValueError, match="v_reset"):
        LSNNParameters(v_reset=0.5, v_th=np.array([1.0, 0.4, 2.0]))
    with pytest.raises(ValueError, match="v_reset"):
        LSNNParameters().replace(v_reset=2.0)


def test_refuses_bad_state():
    x = np.ones((4, 2, N))
    p = LSNNParameters()
    with pytest.raises(ValueError, match=r"state.*rho"):
        neuron_forward(x, p, DT, state={"rho": np.zeros((2, N))})
    with pytest.raises(ValueError, match=r"state.*z"):  # z only for a recurrent layer
        neuron_forward(x, p, DT, state={"z": np.zeros((2, N))})
    lif_state = LIFState(np.zeros((2, N)), np.zeros((2, N)), np.zeros((2, N)))
    with pytest.raises(TypeError, match="state must be a mapping"):  # another model's state
        neuron_forward(x, p, DT, state=lif_state)
    with pytest.raises(ValueError, match=r"state\.v"):
        neuron_forward(x, p, DT, state={"v": np.zeros((2, N + 1))})
    with pytest.raises(ValueError, match=r"state\.b"):
        neuron_forward(x, p, DT, state={"b": np.zeros((3, N))})
    with pytest.raises(TypeError, match="state"):  # the kernels' packed array, not a mapping
        neuron_forward(x, p, DT, state=np.zeros((4, 2, N)))
    _, tape = neuron_forward(x, p, DT)
    with pytest.raises(ValueError, match=r"state.*rho"):
        neuron_backward(np.ones_like(x), tape, grad_final_state={"rho": np.zeros((2, N))})
