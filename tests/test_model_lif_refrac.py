"""The LIFRefrac model file (:mod:`numbaspike.models.lif_refrac`) on the generic driver.

* Parity with the PyTorch-autograd oracle ``lif_refrac_forward_torch`` in float64: spikes
  exactly and final state to 1e-12, every gradient (x, w_rec, v0/i0/z0, tau_mem_inv,
  tau_syn_inv, v_th, v_leak; per-neuron and scalar) to 1e-10 relative, over
  feed-forward/recurrent x zero/subtract x detach_reset x rho_reset in {0, 2, 5, per neuron}
  x (scalar parameters + default state, per-neuron + default state, per-neuron + given
  state); and in smooth mode with surrogates whose F can be <= 0 (superspike, tanh),
  where the refractory mask still switches on. A refractory period must block spikes.
* ``rho_reset = 0`` is the LIF model (:func:`numbaspike.lif_forward`): bit for bit
  feed-forward; recurrent, the tuned kernel sums :math:`W_{rec} z` in another order (the
  same spikes, states and gradients to 1e-12).
* Smooth mode: central finite differences of a scalar loss of ``neuron_forward`` agree with
  ``neuron_backward`` (relative 1e-6) away from the jumps of the mask.
* float32 runs close to float64 (and, feed-forward, bit for bit like the float32 oracle);
  results do not depend on the Numba thread count.
* Bad parameters and states are refused with an error naming the argument.
"""

from __future__ import annotations

import zlib

import numba
import numpy as np
import pytest
import torch

import numbaspike
from numbaspike.models import LIF_REFRAC, LIFRefracParameters, model_named, model_of
from numbaspike.neuron import neuron_backward, neuron_forward
from numbaspike.params import LIFParameters
from numbaspike.torch_reference import lif_refrac_forward_torch

DT = 1e-3
T, B, N = 40, 3, 5
STATE_TOL = 1e-12
GRAD_TOL = 1e-10
PARAMS = ("tau_mem_inv", "tau_syn_inv", "v_th", "v_leak")
RHO_RESETS = ["0", "2", "5", "per_neuron"]
#: (per-neuron parameters, given initial state)
SETUPS = {
    "scalar-default": (False, False),
    "neuron-default": (True, False),
    "neuron-given": (True, True),
}
#: Smooth mode needs an F that can be <= 0 below threshold: with F > 0 (sigmoid, atan)
#: rho = z * rho_reset > 0 after every free step and the neuron stays refractory for ever.
SMOOTH_SURROGATES = {"superspike": 5.0, "tanh": 3.0}


def _seed(*parts) -> int:
    return zlib.crc32(repr(parts).encode())


def _rho_reset(kind: str, rng, n: int):
    if kind == "per_neuron":
        return rng.choice([0.0, 1.0, 2.0, 2.5, 3.0, 5.0], n)
    return float(kind)


def _case(seed, per_neuron, given_state, recurrent, rho_kind="2", shape=(T, B, N), smooth=False):
    """Input, LIF parameter values, rho_reset, w_rec, initial state and upstream gradients."""
    rng = np.random.default_rng(seed)
    n_steps, batch, n = shape
    x = rng.normal(0.9, 2.4, shape) if not smooth else rng.normal(1.0, 1.5, shape)
    if per_neuron:
        lif = {
            "tau_mem_inv": rng.uniform(70.0, 150.0, n),
            "tau_syn_inv": rng.uniform(150.0, 300.0, n),
            "v_leak": rng.uniform(-0.1, 0.1, n),
            "v_th": rng.uniform(0.8, 1.2, n),
            "v_reset": -0.1,
        }
    else:
        lif = {
            "tau_mem_inv": 110.0,
            "tau_syn_inv": 220.0,
            "v_leak": 0.05,
            "v_th": 1.0,
            "v_reset": 0.0,
        }
    rho_reset = _rho_reset(rho_kind, rng, n)
    w_rec = rng.normal(0.0, 1.0 / np.sqrt(n), (n, n)) if recurrent else None
    state = None
    if given_state:
        state = {
            "v": rng.uniform(-0.2, 0.8, (batch, n)),
            "i": rng.normal(0.0, 1.0, (batch, n)),
            "rho": rng.choice([0.0, 0.0, 1.0, 3.0], (batch, n)),
        }
        if recurrent:
            state["z"] = (rng.random((batch, n)) < 0.3).astype(np.float64)
    grads = {
        "y": rng.normal(size=shape),
        "v": rng.normal(size=(batch, n)),
        "i": rng.normal(size=(batch, n)),
    }
    if recurrent:
        grads["z"] = rng.normal(size=(batch, n))
    return x, lif, rho_reset, w_rec, state, grads


def _params(lif, rho_reset, surrogate, alpha, reset, detach, smooth) -> LIFRefracParameters:
    return LIFRefracParameters(
        LIFParameters(
            **lif,
            surrogate=surrogate,
            alpha=alpha,
            reset=reset,
            detach_reset=detach,
            smooth=smooth,
        ),
        rho_reset=rho_reset,
    )


def _run_ours(x, p, w_rec, state, grads, dtype=np.float64):
    z, tape = neuron_forward(x.astype(dtype), p, DT, w_rec, state)
    gfs = {k: v for k, v in grads.items() if k != "y"}
    g = neuron_backward(grads["y"].astype(dtype), tape, gfs)
    return z, tape, g


def _run_torch(x, lif, rho_reset, w_rec, state, grads, surrogate, alpha, reset, detach, smooth):
    leaf = lambda a: torch.tensor(a, dtype=torch.float64).requires_grad_(True)  # noqa: E731
    xt = leaf(x)
    pt = {k: (leaf(v) if k in PARAMS else v) for k, v in lif.items()}
    pt["rho_reset"] = torch.as_tensor(rho_reset, dtype=torch.float64)
    wt = None if w_rec is None else leaf(w_rec)
    st = None
    if state is not None:
        st = {k: (torch.tensor(v) if k == "rho" else leaf(v)) for k, v in state.items()}
    z, final = lif_refrac_forward_torch(
        xt, pt, DT, wt, st, surrogate, alpha, reset=reset, detach_reset=detach, smooth=smooth
    )
    loss = (z * torch.tensor(grads["y"])).sum()
    for k in ("v", "i", "z"):
        if k in grads:
            loss = loss + (final[k] * torch.tensor(grads[k])).sum()
    loss.backward()
    out = {"x": xt.grad, **{k: pt[k].grad for k in PARAMS}}
    if wt is not None:
        out["w_rec"] = wt.grad
    if st is not None:
        for k in ("v", "i", "z"):
            if k in st:
                out[f"{k}0"] = st[k].grad
    final = {k: v.detach().numpy() for k, v in final.items()}
    return z.detach().numpy(), final, {k: v.numpy() for k, v in out.items()}


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def _blocked(tape, p) -> int:
    """Step-neurons where the mask silenced a would-be spike (z_new != 0, or > 0 smooth)."""
    h, m = tape.tape[0], tape.tape[3]
    v_th = np.broadcast_to(np.asarray(p.v_th), h.shape[-1:])
    return int(((m != 0) & (h > v_th)).sum())


def _compare(ours, ref, recurrent, given_state, exact_spikes=True):
    z, tape, g = ours
    z_ref, final_ref, g_ref = ref
    if exact_spikes:
        np.testing.assert_array_equal(z, z_ref)
    else:
        np.testing.assert_allclose(z, z_ref, rtol=STATE_TOL, atol=STATE_TOL)
    for k, v in final_ref.items():
        np.testing.assert_allclose(
            tape.final_state[k], v, rtol=STATE_TOL, atol=STATE_TOL, err_msg=k
        )
    expected = {"x", "v0", "i0", "rho0", *PARAMS} | ({"w_rec", "z0"} if recurrent else set())
    assert set(g) == expected
    np.testing.assert_array_equal(g.rho0, 0.0)  # the counter carries no gradient
    errors = {}
    for name, value in g_ref.items():
        assert np.shape(g[name]) == np.shape(value), name
        errors[name] = _rel(g[name], value)
    bad = {k: e for k, e in errors.items() if not e <= GRAD_TOL}
    assert not bad, f"gradient mismatch (relative): {bad}"
    if not given_state:
        assert set(g_ref) == {"x", *PARAMS} | ({"w_rec"} if recurrent else set())
    state_err = max(
        float(np.max(np.abs(tape.final_state[k] - v), initial=0.0)) for k, v in final_ref.items()
    )
    print(
        f"max |state diff| {state_err:.2e}, max relative gradient error {max(errors.values()):.2e}"
    )
    return max(errors.values())


# --------------------------------------------------------------------------------------
# parity with the torch oracle
# --------------------------------------------------------------------------------------


@pytest.mark.slow  # an exhaustive matrix; tests/test_models.py checks every model in CI
@pytest.mark.parametrize("setup", list(SETUPS))
@pytest.mark.parametrize("rho_kind", RHO_RESETS)
@pytest.mark.parametrize("detach", [False, True], ids=["attached", "detach"])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_matches_torch_spike_mode(recurrent, reset, detach, rho_kind, setup):
    per_neuron, given = SETUPS[setup]
    seed = _seed("spike", recurrent, reset, detach, rho_kind, setup)
    x, lif, rho_reset, w_rec, state, grads = _case(seed, per_neuron, given, recurrent, rho_kind)
    surrogate, alpha = "superspike", 5.0  # one surrogate: each mode is a compiled kernel
    p = _params(lif, rho_reset, surrogate, alpha, reset, detach, False)
    ours = _run_ours(x, p, w_rec, state, grads)
    ref = _run_torch(
        x, lif, rho_reset, w_rec, state, grads, surrogate, alpha, reset, detach, False
    )
    rate = float(ours[0].mean())
    assert 0.01 <= rate <= 0.7, f"spike rate {rate:.3f}"
    blocked = _blocked(ours[1], p)
    if np.all(p.rho_reset == 0):  # refractory only while a given initial rho (<= 3) runs out
        assert not ours[1].tape[3][3:].any()
        assert given or (blocked == 0 and not ours[1].tape[3].any())
    else:
        assert blocked > 0, "no spike was blocked by the refractory period"
    _compare(ours, ref, recurrent, given)


#: smooth-mode cases: every surrogate attached, detach_reset with superspike (each
#: (surrogate, reset, detach) combination compiles its own kernels)
SMOOTH_CASES = [(s, False) for s in SMOOTH_SURROGATES] + [("superspike", True)]


@pytest.mark.slow  # an exhaustive matrix; tests/test_models.py checks every model in CI
@pytest.mark.parametrize("rho_kind", ["2", "per_neuron"])
@pytest.mark.parametrize(
    ("surrogate", "detach"),
    SMOOTH_CASES,
    ids=[f"{s}-{'detach' if d else 'attached'}" for s, d in SMOOTH_CASES],
)
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_matches_torch_smooth_mode(recurrent, reset, surrogate, detach, rho_kind):
    alpha = SMOOTH_SURROGATES[surrogate]
    given = rho_kind == "per_neuron"
    seed = _seed("smooth", recurrent, reset, detach, rho_kind, surrogate)
    x, lif, rho_reset, w_rec, state, grads = _case(
        seed, True, given, recurrent, rho_kind, smooth=True
    )
    p = _params(lif, rho_reset, surrogate, alpha, reset, detach, True)
    ours = _run_ours(x, p, w_rec, state, grads)
    ref = _run_torch(x, lif, rho_reset, w_rec, state, grads, surrogate, alpha, reset, detach, True)
    m = ours[1].tape[3]
    assert 0.02 < m.mean() < 0.7, f"refractory fraction {m.mean():.3f}"
    assert _blocked(ours[1], p) > 0, "no would-be spike (F > 0) was blocked"
    _compare(ours, ref, recurrent, given, exact_spikes=False)


# --------------------------------------------------------------------------------------
# the model's semantics
# --------------------------------------------------------------------------------------


def test_refractory_period_spot():
    """A saturating input fires once every rho_reset + 1 steps (rho_reset rounded up)."""
    x = np.full((12, 1, 3), 1e4)
    p = LIFRefracParameters(LIFParameters(), rho_reset=np.array([0.0, 2.0, 2.5]))
    z, tape = neuron_forward(x, p, DT)
    np.testing.assert_array_equal(z[:, 0, 0], 1.0)
    np.testing.assert_array_equal(np.flatnonzero(z[:, 0, 1]), [0, 3, 6, 9])
    np.testing.assert_array_equal(np.flatnonzero(z[:, 0, 2]), [0, 4, 8])
    # steps 10 and 11 are refractory for neuron 1: its membrane stays at the reset value of
    # step 9 although h (the membrane it would have had) is far above threshold
    assert tape.final_state.v[0, 1] == 0.0 and tape.tape[0, 11, 0, 1] > 1.0
    assert np.all(tape.final_state.i > 0)  # the current keeps integrating
    rho = 0.0  # neuron 2 by hand
    for _ in range(12):
        m = float(rho > 0)
        zt = 1.0 - m
        rho = (1 - zt) * max(rho - m, 0.0) + zt * 2.5
    assert tape.final_state.rho[0, 2] == rho


@pytest.mark.slow  # an exhaustive matrix; tests/test_models.py checks every model in CI
@pytest.mark.parametrize("smooth", [False, True], ids=["spike", "smooth"])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_rho_reset_zero_is_lif(recurrent, reset, smooth):
    """rho_reset = 0: the counter stays 0 and the model is numbaspike's LIF, bit for bit
    feed-forward (recurrent: the same spikes, the state to a few ulp)."""
    seed = _seed("lif", recurrent, reset, smooth)
    x, lif, _, w_rec, state, grads = _case(seed, True, True, recurrent, "0", smooth=smooth)
    surrogate, alpha = ("superspike", 5.0)
    lif_p = LIFParameters(**lif, surrogate=surrogate, alpha=alpha, reset=reset, smooth=smooth)
    state.pop("rho")
    z, tape, g = _run_ours(x, LIFRefracParameters(lif_p, rho_reset=0.0), w_rec, state, grads)
    lif_state = (state["v"], state["i"], state.get("z"))
    z_lif, tape_lif = neuron_forward(x, lif_p, DT, w_rec, lif_state, param_grads=True)
    # the LIF path of neuron_backward ignores grad_final_state["z"]: pass it through y
    gy_lif = grads["y"].copy()
    if recurrent:
        gy_lif[-1] += grads["z"]
    g_lif = neuron_backward(gy_lif, tape_lif, {"v": grads["v"], "i": grads["i"]})
    if not smooth:
        assert 0.01 <= z.mean() <= 0.5
    assert not tape.tape[3].any()
    if recurrent and smooth:
        np.testing.assert_allclose(z, z_lif, rtol=1e-13, atol=1e-14)
    else:
        np.testing.assert_array_equal(z, z_lif)
    for k in ("v", "i"):
        if recurrent:  # the tuned LIF kernel sums W_rec z in another order: a few ulp
            np.testing.assert_allclose(
                tape.final_state[k], getattr(tape_lif.final_state, k), rtol=1e-13, atol=1e-14
            )
        else:
            np.testing.assert_array_equal(tape.final_state[k], getattr(tape_lif.final_state, k))
    np.testing.assert_array_equal(tape.final_state.rho, 0.0)
    for name in ("x", "v0", "i0", *PARAMS, *(("w_rec", "z0") if recurrent else ())):
        assert _rel(g[name], g_lif[name]) <= (1e-12 if recurrent else 1e-13), name


def test_rho_gradient_is_zero_and_final_rho_gradient_ignored():
    x, lif, rho_reset, _, state, grads = _case(_seed("rho-grad"), True, True, False, "2")
    p = _params(lif, rho_reset, "superspike", 5.0, "zero", False, False)
    _, tape, g = _run_ours(x, p, None, state, grads)
    g2 = neuron_backward(grads["y"], tape, {"v": grads["v"], "i": grads["i"], "rho": 1.0})
    np.testing.assert_array_equal(g2.rho0, 0.0)
    for name in ("x", "v0", "i0", *PARAMS):
        np.testing.assert_array_equal(g2[name], g[name])


def test_registered():
    assert model_named("lif_refrac") is LIF_REFRAC
    assert model_of(LIFRefracParameters()) is LIF_REFRAC
    assert LIF_REFRAC.state == ("v", "i", "rho")
    assert set(LIF_REFRAC.learnable) == set(PARAMS)


# --------------------------------------------------------------------------------------
# finite differences (smooth mode)
# --------------------------------------------------------------------------------------


def _fd_check(x, lif, rho_reset, w_rec, state, grads, surrogate, alpha, reset, n_x=30, seed=0):
    """Central differences of L = <gy, z> + <gv, v_T> + <gi, i_T> (+ <gz, z_T>) against
    neuron_backward, skipping stencil points where the refractory mask differs from the
    base point's. Returns (max relative error per group, excluded, total)."""
    p0 = _params(lif, rho_reset, surrogate, alpha, reset, False, True)

    def run(x=x, lif=lif, w_rec=w_rec, state=state):
        p = _params(lif, rho_reset, surrogate, alpha, reset, False, True)
        z, tape = neuron_forward(x, p, DT, w_rec, state)
        loss = float(np.sum(grads["y"] * z))
        for k in ("v", "i", "z"):
            if k in grads:
                loss += float(np.sum(grads[k] * tape.final_state[k]))
        return loss, tape.tape[3].copy()

    _, mask0 = run()
    z0, tape0 = neuron_forward(x, p0, DT, w_rec, state)
    g = neuron_backward(grads["y"], tape0, {k: v for k, v in grads.items() if k != "y"})
    assert mask0.any(), "the refractory mask was never on"
    rng = np.random.default_rng(seed)
    excluded = total = 0

    def central(make, value):
        nonlocal excluded, total
        eps = 1e-6 * max(1.0, abs(value))
        lp, mp = make(value + eps)
        lm, mm = make(value - eps)
        total += 1
        if not (np.array_equal(mp, mask0) and np.array_equal(mm, mask0)):
            excluded += 1
            return None
        return (lp - lm) / (2 * eps)

    checks = {}  # group -> (numeric list, analytic list)

    def add(group, numeric, analytic):
        if numeric is not None:
            checks.setdefault(group, ([], []))
            checks[group][0].append(numeric)
            checks[group][1].append(float(analytic))

    for flat in rng.choice(x.size, n_x, replace=False):
        idx = np.unravel_index(flat, x.shape)

        def make(val, idx=idx):
            xx = x.copy()
            xx[idx] = val
            return run(x=xx)

        add("x", central(make, x[idx]), g.x[idx])
    if w_rec is not None:
        for idx in np.ndindex(w_rec.shape):

            def make(val, idx=idx):
                ww = w_rec.copy()
                ww[idx] = val
                return run(w_rec=ww)

            add("w_rec", central(make, w_rec[idx]), g.w_rec[idx])
    if state is not None:
        for key in ("v", "i", "z"):
            if key not in state:
                continue
            for idx in np.ndindex(state[key].shape):

                def make(val, idx=idx, key=key):
                    ss = {k: np.array(v, copy=True) for k, v in state.items()}
                    ss[key][idx] = val
                    return run(state=ss)

                add(f"{key}0", central(make, state[key][idx]), g[f"{key}0"][idx])
    for name in PARAMS:
        value = lif[name]
        if np.ndim(value) == 0:

            def make(val, name=name):
                return run(lif={**lif, name: val})

            add(name, central(make, value), g[name])
        else:
            for k in range(value.shape[0]):

                def make(val, name=name, k=k):
                    arr = np.array(lif[name], copy=True)
                    arr[k] = val
                    return run(lif={**lif, name: arr})

                add(name, central(make, value[k]), g[name][k])
    errors = {k: _rel(num, ana) for k, (num, ana) in checks.items()}
    return errors, excluded, total


@pytest.mark.slow  # an exhaustive matrix; tests/test_models.py checks every model in CI
@pytest.mark.parametrize("surrogate", list(SMOOTH_SURROGATES))
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_finite_differences_smooth(recurrent, reset, surrogate, single_numba_thread):
    alpha = SMOOTH_SURROGATES[surrogate]
    seed = _seed("fd", recurrent, reset, surrogate)
    x, lif, rho_reset, w_rec, state, grads = _case(
        seed, True, True, recurrent, "per_neuron", shape=(25, 2, 4), smooth=True
    )
    errors, excluded, total = _fd_check(
        x, lif, rho_reset, w_rec, state, grads, surrogate, alpha, reset, seed=seed
    )
    assert excluded <= max(2, total // 20), f"{excluded} of {total} stencil points excluded"
    expected = {"x", "v0", "i0", *PARAMS} | ({"w_rec", "z0"} if recurrent else set())
    assert set(errors) == expected
    print(f"FD: {excluded} of {total} excluded, max relative error {max(errors.values()):.2e}")
    bad = {k: e for k, e in errors.items() if not e <= 1e-6}
    assert not bad, f"finite differences disagree (relative): {bad}"


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_finite_differences_smooth_scalar_default_state(reset, single_numba_thread):
    """Scalar parameters and the default state (v0 = v_leak passes its gradient on)."""
    seed = _seed("fd-scalar", reset)
    x, lif, rho_reset, w_rec, _, grads = _case(
        seed, False, False, True, "5", shape=(25, 2, 4), smooth=True
    )
    grads.pop("z")
    errors, excluded, total = _fd_check(
        x, lif, rho_reset, w_rec, None, grads, "tanh", 3.0, reset, seed=seed
    )
    assert excluded <= max(2, total // 20), f"{excluded} of {total} stencil points excluded"
    assert set(errors) == {"x", "w_rec", *PARAMS}
    bad = {k: e for k, e in errors.items() if not e <= 1e-6}
    assert not bad, f"finite differences disagree (relative): {bad}"


# --------------------------------------------------------------------------------------
# float32, threads
# --------------------------------------------------------------------------------------


@pytest.mark.slow  # an exhaustive matrix; tests/test_models.py checks every model in CI
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_float32_close_to_float64(recurrent, reset="subtract"):
    seed = _seed("f32", recurrent, reset)
    x, lif, rho_reset, w_rec, state, grads = _case(seed, True, True, recurrent, "per_neuron")
    p = _params(lif, rho_reset, "superspike", 5.0, reset, False, False)
    z64, tape64, g64 = _run_ours(x, p, w_rec, state, grads)
    z32, tape32, g32 = _run_ours(x, p, w_rec, state, grads, dtype=np.float32)
    assert z32.dtype == np.float32 and g32.x.dtype == np.float32
    np.testing.assert_array_equal(z32, z64)
    for k in ("v", "i", "rho"):
        np.testing.assert_allclose(tape32.final_state[k], tape64.final_state[k], atol=1e-5)
    for name in g64:
        assert _rel(g32[name], g64[name]) < 1e-4, name
    if not recurrent:  # same elementwise operations: bit for bit like the float32 oracle
        leaf = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
        pt = {k: leaf(v) for k, v in lif.items()}
        pt["rho_reset"] = leaf(rho_reset)
        st = {k: leaf(v) for k, v in state.items()}
        z_t, f_t = lif_refrac_forward_torch(
            torch.tensor(x, dtype=torch.float32), pt, DT, None, st, "superspike", 5.0, reset
        )
        np.testing.assert_array_equal(z32, z_t.numpy())
        for k in ("v", "i", "rho"):
            np.testing.assert_array_equal(tape32.final_state[k], f_t[k].numpy(), err_msg=k)


@pytest.mark.parametrize("smooth", [False, True], ids=["spike", "smooth"])
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_thread_count_independent(recurrent, smooth):
    seed = _seed("threads", recurrent, smooth)
    x, lif, rho_reset, w_rec, state, grads = _case(
        seed, True, True, recurrent, "per_neuron", shape=(30, 8, 6), smooth=smooth
    )
    p = _params(lif, rho_reset, "superspike", 5.0, "subtract", False, smooth)
    previous = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numbaspike.set_num_threads(threads)
            results.append(_run_ours(x, p, w_rec, state, grads))
    finally:
        numbaspike.set_num_threads(previous)
    (z1, t1, g1), (z2, t2, g2) = results
    np.testing.assert_array_equal(z1, z2)
    for k in t1.final_state:
        np.testing.assert_array_equal(t1.final_state[k], t2.final_state[k])
    assert set(g1) == set(g2)
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k], err_msg=k)


# --------------------------------------------------------------------------------------
# parameters and bad input
# --------------------------------------------------------------------------------------


def test_parameters_delegate_and_replace():
    lif = LIFParameters(tau_mem_inv=np.full(4, 90.0), v_th=1.2, surrogate="tanh", alpha=3.0)
    p = LIFRefracParameters(lif, rho_reset=np.array([1.0, 2.0, 0.0, 3.5]))
    assert p.size == 4 and p.lif is lif
    for name in ("tau_mem_inv", "tau_syn_inv", "v_leak", "v_th", "v_reset", "surrogate"):
        assert np.array_equal(getattr(p, name), getattr(lif, name)), name
    assert (p.alpha, p.reset, p.detach_reset, p.smooth) == (3.0, "zero", False, False)
    assert (p.surrogate_code, p.reset_code) == (lif.surrogate_code, lif.reset_code)
    assert LIFRefracParameters().rho_reset == 5.0 and LIFRefracParameters().size is None
    q = p.replace(v_th=np.full(4, 1.5), reset="subtract")
    assert isinstance(q, LIFRefracParameters) and isinstance(q.lif, LIFParameters)
    np.testing.assert_array_equal(q.v_th, 1.5)
    assert q.reset == "subtract" and np.array_equal(q.rho_reset, p.rho_reset) and p.v_th == 1.2
    r = p.replace(rho_reset=2)
    assert r.rho_reset == 2.0 and r.lif is lif
    s = LIFRefracParameters().replace(lif=lif, v_leak=0.1)
    assert s.lif.v_leak == 0.1 and s.size == 4 and s.rho_reset == 5.0
    with pytest.raises(ValueError, match="bogus"):
        p.replace(bogus=1.0)
    with pytest.raises(ValueError, match="rho_reset"):
        p.replace(rho_reset=np.ones(5))
    with pytest.raises(ValueError, match="tau_mem_inv"):
        LIFRefracParameters().replace(tau_mem_inv=-1.0)


@pytest.mark.parametrize(
    "rho_reset",
    [-1.0, np.nan, np.inf, np.array([1.0, -0.5]), np.ones((2, 2)), np.array([]), True, "a"],
    ids=["negative", "nan", "inf", "negative-array", "2d", "empty", "bool", "str"],
)
def test_bad_rho_reset(rho_reset):
    with pytest.raises(ValueError, match="rho_reset"):
        LIFRefracParameters(rho_reset=rho_reset)


def test_bad_parameters():
    with pytest.raises(ValueError, match="rho_reset"):  # (3,) against lif's (4,)
        LIFRefracParameters(LIFParameters(v_th=np.ones(4)), rho_reset=np.ones(3))
    for lif in ({"v_th": 1.0}, None, 1.0):
        with pytest.raises(TypeError, match="lif"):
            LIFRefracParameters(lif=lif)
    with pytest.raises(TypeError, match="lif"):
        LIFRefracParameters().replace(lif={"v_th": 1.0}, v_leak=0.1)
    with pytest.raises(ValueError, match="v_reset"):
        LIFRefracParameters(LIFParameters(v_reset=1.0, v_th=1.0))
    with pytest.raises(ValueError, match="v_reset"):
        LIFRefracParameters().replace(v_th=-0.5)


def test_bad_input():
    x = np.ones((4, 2, 3))
    p = LIFRefracParameters()
    with pytest.raises(ValueError, match="state"):
        neuron_forward(x, p, DT, state={"b": np.zeros((2, 3))})
    with pytest.raises(ValueError, match="state"):  # z only for a recurrent layer
        neuron_forward(x, p, DT, state={"z": np.zeros((2, 3))})
    with pytest.raises(ValueError, match="tau_syn_inv"):
        neuron_forward(x, p, 0.005)
    with pytest.raises(ValueError, match="tau_mem_inv"):
        neuron_forward(x, p.replace(tau_mem_inv=2000.0), DT)
    with pytest.raises(ValueError, match="size 4"):
        neuron_forward(x, LIFRefracParameters(rho_reset=np.ones(4)), DT)
    with pytest.raises(ValueError, match="state.rho"):
        neuron_forward(x, p, DT, state={"rho": np.zeros((5, 3))})
    # distinct in float64, equal in float32
    close = LIFRefracParameters(LIFParameters(v_reset=1.0, v_th=1.0 + 1e-9))
    neuron_forward(x, close, DT)
    with pytest.raises(ValueError, match="v_reset"):
        neuron_forward(x.astype(np.float32), close, DT)
    _, tape = neuron_forward(x, p, DT)
    with pytest.raises(ValueError, match="unknown variables"):
        neuron_backward(np.ones_like(x), tape, {"b": 1.0})


def test_layer_learns_through_lif_fields():
    """The generic Neuron layer: learned LIF fields go through p.replace into p.lif, the
    configuration round-trips (the nested lif as a dict), gradients are neuron_backward's."""
    import json

    from numbaspike.neuron_layers import Neuron, parameters_config, parameters_from_config

    p = LIFRefracParameters(LIFParameters(v_th=np.full(4, 1.1)), np.array([0.0, 1.0, 2.0, 3.5]))
    cfg = json.loads(json.dumps(parameters_config(p)))
    q = parameters_from_config(LIFRefracParameters, cfg)
    assert isinstance(q.lif, LIFParameters)
    np.testing.assert_array_equal(q.v_th, p.v_th)
    np.testing.assert_array_equal(q.rho_reset, p.rho_reset)
    learn = ("tau_syn_inv", "v_th")
    layer = Neuron(4, p, learn=learn, recurrent=True, seed=0, dtype=np.float64)
    layer.parameters()["v_th"][:] = [0.9, 1.0, 1.2, 1.3]
    current = layer.current_parameters()
    assert isinstance(current, LIFRefracParameters)
    np.testing.assert_array_equal(current.v_th, [0.9, 1.0, 1.2, 1.3])
    np.testing.assert_array_equal(current.rho_reset, p.rho_reset)
    rng = np.random.default_rng(1)
    x = rng.normal(0.9, 2.4, (20, 2, 4))
    gy = rng.normal(size=x.shape)
    z, tape = layer.forward(x)
    layer.backward(gy, tape)
    z_ref, tape_ref = neuron_forward(x, current, DT, layer.parameters()["w_rec"])
    g_ref = neuron_backward(gy, tape_ref)
    np.testing.assert_array_equal(z, z_ref)
    for name in (*learn, "w_rec"):
        np.testing.assert_array_equal(layer.gradients()[name], g_ref[name])
