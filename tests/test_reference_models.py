"""The LIFBox, LSNN and LIFRefrac oracles checked against each other and against the maths.

* The torch (autograd) and NumPy (forward) twins agree: float64 to 1e-12 (spikes exactly)
  for every model x feed-forward/recurrent x reset x scalar/per-neuron parameters, smooth
  mode included; float32 bit for bit (feed-forward, where no matrix product reorders sums).
* Hand-computed 3-4 step examples pin the equations and their order (LSNN's input reaches
  ``v`` one step late; the refractory counter holds ``v`` and blocks ``z``).
* Limits that reduce a model to the LIF oracle of ``reference_torch.py`` /
  ``reference_numpy.py`` agree with it, gradients (spike mode, surrogate backward) included:
  LIFBox = LIF with ``tau_syn_inv = 1/dt``; LIFRefrac with ``rho_reset = 0`` = LIF;
  feed-forward LSNN with ``beta = 0`` = LIF delayed by one step.
* In smooth mode (``z = F(u)``) the autograd gradient of every input, weight, parameter and
  initial state equals central finite differences of the NumPy forward (relative 1e-6);
  with ``detach_reset`` the NumPy forward holds ``z`` fixed where the reset uses it.

Norse itself is not needed (the comparison with Norse 1.1.0 is a one-off script).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import reference_models_numpy as ref_np
import torch
from reference_numpy import lif_reference

import numbaspike.torch_reference as ref_t
from numbaspike.torch_reference import SURROGATES, lif_forward_torch

DT = 1e-3
T, B, N = 40, 3, 5
TOL = 1e-12
RESETS = ["zero", "subtract"]
MODEL_NAMES = ["lif_box", "lsnn", "lif_refrac"]

TORCH = {
    "lif_box": ref_t.lif_box_forward_torch,
    "lsnn": ref_t.lsnn_forward_torch,
    "lif_refrac": ref_t.lif_refrac_forward_torch,
}
NUMPY = {
    "lif_box": ref_np.lif_box_forward_numpy,
    "lsnn": ref_np.lsnn_forward_numpy,
    "lif_refrac": ref_np.lif_refrac_forward_numpy,
}
STATE_KEYS = {"lif_box": ("v",), "lsnn": ("v", "i", "b"), "lif_refrac": ("v", "i", "rho")}
#: Input scale per model: LIFBox feeds x straight into v; the others integrate it in i.
INPUT = {"lif_box": (1.0, 1.6), "lsnn": (0.9, 2.4), "lif_refrac": (0.9, 2.4)}


def _seed(*parts) -> int:
    return zlib.crc32(repr(parts).encode())


def _per_neuron_params(model: str, rng, n: int) -> dict:
    p = {
        "tau_mem_inv": rng.uniform(70.0, 150.0, n),
        "v_leak": rng.uniform(-0.1, 0.1, n),
        "v_th": rng.uniform(0.8, 1.2, n),
        "v_reset": rng.uniform(-0.2, 0.1, n),
    }
    if model in ("lsnn", "lif_refrac"):
        p["tau_syn_inv"] = rng.uniform(150.0, 300.0, n)
    if model == "lsnn":
        # much faster than Norse's 1/800 so that b visibly relaxes within T steps
        p["tau_adapt_inv"] = rng.uniform(5.0, 50.0, n)
        p["beta"] = rng.uniform(0.3, 2.0, n)
    if model == "lif_refrac":
        p["rho_reset"] = rng.choice([1.0, 2.0, 3.0, 2.5, 5.0], n)
    return p


def make_case(
    model: str, seed: int, per_neuron: bool, recurrent: bool, shape=(T, B, N), with_state=None
):
    """Inputs, parameters, recurrent weights and initial state (NumPy float64)."""
    rng = np.random.default_rng(seed)
    n_steps, batch, n = shape
    mean, std = INPUT[model]
    x = rng.normal(mean, std, size=shape)
    p = _per_neuron_params(model, rng, n) if per_neuron else {}
    w_rec = rng.normal(0.0, 1.0 / np.sqrt(n), size=(n, n)) if recurrent else None
    state = {}
    if per_neuron if with_state is None else with_state:
        state["v"] = rng.uniform(-0.2, 0.8, (batch, n))
        if model in ("lsnn", "lif_refrac"):
            state["i"] = rng.normal(0.0, 1.0, (batch, n))
        if model == "lsnn":
            state["b"] = rng.uniform(1.0, 2.0, (batch, n))
        if model == "lif_refrac":
            state["rho"] = rng.choice([0.0, 0.0, 1.0, 3.0], (batch, n))
        if recurrent:
            state["z"] = (rng.random((batch, n)) < 0.3).astype(np.float64)
    return x, p, w_rec, state


def _to_torch(x, p, w_rec, state, dtype=torch.float64, requires_grad=False):
    """Input and weights in the working dtype; parameters and state as float64 leaves (the
    references cast them, as numbaspike's float64 parameters are cast)."""

    def leaf(a, dt=torch.float64):
        return torch.tensor(a, dtype=dt).requires_grad_(requires_grad)

    wt = None if w_rec is None else leaf(w_rec, dtype)
    return (
        leaf(x, dtype),
        {k: leaf(v) for k, v in p.items()},
        wt,
        {k: leaf(v) for k, v in state.items()},
    )


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


# --------------------------------------------------------------------------------------
# torch twin == NumPy twin
# --------------------------------------------------------------------------------------


def test_defaults_agree():
    assert ref_t.LIF_BOX_DEFAULTS == ref_np.LIF_BOX_DEFAULTS
    assert ref_t.LSNN_DEFAULTS == ref_np.LSNN_DEFAULTS
    assert ref_t.LIF_REFRAC_DEFAULTS == ref_np.LIF_REFRAC_DEFAULTS


@pytest.mark.parametrize("per_neuron", [False, True], ids=["scalar", "per_neuron"])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("model", MODEL_NAMES)
def test_torch_matches_numpy(model, recurrent, reset, per_neuron):
    seed = _seed(model, recurrent, reset, per_neuron)
    x, p, w_rec, state = make_case(model, seed, per_neuron, recurrent)
    trace = {}
    z_np, s_np = NUMPY[model](x, p, DT, w_rec, state, reset=reset, trace=trace)
    xt, pt, wt, st = _to_torch(x, p, w_rec, state)
    z_t, s_t = TORCH[model](xt, pt, DT, wt, st, reset=reset)
    rate = float(z_np.mean())
    assert 0.01 <= rate <= 0.5, f"spike rate {rate:.3f}: the case does not exercise spiking"
    np.testing.assert_array_equal(_np(z_t), z_np)
    assert set(s_t) == set(s_np) == set(STATE_KEYS[model]) | ({"z"} if recurrent else set())
    for key in s_np:
        np.testing.assert_allclose(_np(s_t[key]), s_np[key], rtol=TOL, atol=TOL, err_msg=key)
    # the model-specific mechanism is actually exercised
    if model == "lsnn":
        assert np.ptp(trace["b_d"]) > 0.5, "the adaptive threshold never moved"
    if model == "lif_refrac":
        blocked = (trace["m"] * (trace["z_new"] != 0)).sum()
        assert blocked > 0, "no spike was ever blocked by the refractory period"


#: alpha per surrogate for smooth mode (as in test_numpy_reference.py): F is a soft step of
#: moderate slope, so the smooth recurrent dynamics do not amplify rounding differences.
SMOOTH_ALPHAS = {
    "superspike": 5.0,
    "sigmoid": 5.0,
    "atan": 2.0,
    "tanh": 3.0,
    "erfc": 3.0,
    "triangle": 1.0,
    "boxcar": 0.5,
}


@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("model", MODEL_NAMES)
def test_torch_matches_numpy_smooth(model, surrogate):
    x, p, w_rec, state = make_case(model, _seed(model, surrogate), True, True)
    alpha = SMOOTH_ALPHAS[surrogate]
    z_np, s_np = NUMPY[model](x, p, DT, w_rec, state, surrogate, alpha, smooth=True)
    xt, pt, wt, st = _to_torch(x, p, w_rec, state)
    z_t, s_t = TORCH[model](xt, pt, DT, wt, st, surrogate, alpha, smooth=True)
    np.testing.assert_allclose(_np(z_t), z_np, rtol=TOL, atol=TOL)
    for key in s_np:
        np.testing.assert_allclose(_np(s_t[key]), s_np[key], rtol=TOL, atol=TOL, err_msg=key)


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("model", MODEL_NAMES)
def test_torch_matches_numpy_float32(model, reset):
    """Same elementwise operations in the same order: float32 results are bit-identical."""
    x, p, _, state = make_case(model, _seed(model, reset, "f32"), True, False)
    x32 = x.astype(np.float32)
    z_np, s_np = NUMPY[model](x32, p, DT, None, state, reset=reset)
    assert z_np.dtype == np.float32
    xt, pt, _, st = _to_torch(x32, p, None, state, dtype=torch.float32)
    z_t, s_t = TORCH[model](xt, pt, DT, None, st, reset=reset)
    assert z_t.dtype == torch.float32
    np.testing.assert_array_equal(_np(z_t), z_np)
    for key in s_np:
        np.testing.assert_array_equal(_np(s_t[key]), s_np[key], err_msg=key)


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_rejects_bad_arguments(model):
    x = np.zeros((3, 1, 2))
    for fn, xx in ((NUMPY[model], x), (TORCH[model], torch.tensor(x))):
        with pytest.raises(ValueError, match="unknown parameters"):
            fn(xx, {"tau_mem": 1.0})
        with pytest.raises(ValueError, match="unknown state keys"):
            fn(xx, {}, state={"z": np.zeros((1, 2))})  # z only for a recurrent layer
        with pytest.raises(ValueError, match="reset"):
            fn(xx, reset="hard")
        with pytest.raises(ValueError, match="scalar or"):
            fn(xx, {"v_th": np.ones(3)})
        with pytest.raises(ValueError, match="surrogate"):
            fn(xx, surrogate="nope")


# --------------------------------------------------------------------------------------
# Hand-computed examples (dt = 1e-3, so a_m = 0.1, a_s = 0.2 with the defaults)
# --------------------------------------------------------------------------------------


def _run_both(model, x_seq, p, w_rec=None, reset="zero", state=None):
    """Run both twins on a single neuron; returns (z, {key: per-step values}) from NumPy,
    after checking that torch gives the same spikes and final state."""
    x = np.asarray(x_seq, dtype=np.float64).reshape(-1, 1, 1)
    w = None if w_rec is None else np.asarray(w_rec, dtype=np.float64).reshape(1, 1)
    trace = {}
    z, final = NUMPY[model](x, p, DT, w, state, reset=reset, trace=trace)
    z_t, final_t = TORCH[model](
        torch.tensor(x), p, DT, None if w is None else torch.tensor(w), state, reset=reset
    )
    np.testing.assert_array_equal(_np(z_t), z)
    for key in final:
        np.testing.assert_allclose(_np(final_t[key]), final[key], rtol=TOL, atol=TOL)
    return z.ravel(), {k: v.ravel() for k, v in trace.items()}


def test_spot_lif_box():
    # h = v + 0.1 * ((0 - v) + x); spike when h > 1
    z, tr = _run_both("lif_box", [5.0, 20.0, 0.0], {})
    np.testing.assert_array_equal(z, [0, 1, 0])
    np.testing.assert_allclose(tr["h"], [0.5, 2.45, 0.0], rtol=TOL)
    np.testing.assert_allclose(tr["v"], [0.5, 0.0, 0.0], rtol=TOL)
    # subtract: v = h - 1 after a spike, and the remainder spikes again at step 3
    z, tr = _run_both("lif_box", [5.0, 20.0, 0.0], {}, reset="subtract")
    np.testing.assert_array_equal(z, [0, 1, 1])
    np.testing.assert_allclose(tr["h"], [0.5, 2.45, 1.305], rtol=TOL)
    np.testing.assert_allclose(tr["v"], [0.5, 1.45, 0.305], rtol=TOL)
    # recurrent: the spike of step 2 adds w_rec = -5 to the input of step 3 (20 -> 15)
    z, tr = _run_both("lif_box", [5.0, 20.0, 20.0], {}, w_rec=[[-5.0]])
    np.testing.assert_array_equal(z, [0, 1, 1])
    np.testing.assert_allclose(tr["h"], [0.5, 2.45, 1.5], rtol=TOL)


def test_spot_lsnn():
    # a_a = dt * 100 = 0.1; the input of step 1 only reaches v at step 2
    p = {"tau_adapt_inv": 100.0, "beta": 1.8}
    z, tr = _run_both("lsnn", [12.0, 0.0, 0.0], p)
    np.testing.assert_array_equal(z, [0, 1, 0])
    np.testing.assert_allclose(tr["v_d"], [0.0, 1.2, 0.96], rtol=TOL)
    np.testing.assert_allclose(tr["v"], [0.0, 0.0, 0.96], rtol=TOL)
    np.testing.assert_allclose(tr["i"], [12.0, 9.6, 7.68], rtol=TOL)
    # b jumps by beta (not tau_adapt_inv * beta), then relaxes towards v_th = 1
    np.testing.assert_allclose(tr["b_d"], [1.0, 1.0, 2.62], rtol=TOL)
    np.testing.assert_allclose(tr["b"], [1.0, 2.8, 2.62], rtol=TOL)
    # subtract: v = v_d - z * (b_d - v_reset), the threshold actually crossed
    z, tr = _run_both("lsnn", [12.0, 0.0, 0.0], p, reset="subtract")
    np.testing.assert_array_equal(z, [0, 1, 0])
    np.testing.assert_allclose(tr["v"], [0.0, 0.2, 1.14], rtol=TOL)
    z, tr = _run_both("lsnn", [12.0, 0.0, 0.0], {**p, "v_reset": -0.5}, reset="subtract")
    np.testing.assert_allclose(tr["v"], [0.0, -0.3, 0.69], rtol=TOL)
    z, tr = _run_both("lsnn", [12.0, 0.0, 0.0], {**p, "v_reset": -0.5})
    np.testing.assert_allclose(tr["v"], [0.0, -0.5, -0.45 + 0.96], rtol=TOL)
    # recurrent: z_{t-1} joins the current at the end of step t (spike at 2 -> i at 3)
    z, tr = _run_both("lsnn", [12.0, 0.0, 0.0], p, w_rec=[[10.0]])
    np.testing.assert_array_equal(z, [0, 1, 0])
    np.testing.assert_allclose(tr["i"], [12.0, 9.6, 17.68], rtol=TOL)


def test_spot_lif_refrac():
    p = {"rho_reset": 2.0}
    z, tr = _run_both("lif_refrac", [15.0, 0.0, 0.0, 0.0], p)
    np.testing.assert_array_equal(z, [1, 0, 0, 0])
    np.testing.assert_allclose(tr["h"], [1.5, 1.2, 0.96, 0.768], rtol=TOL)
    np.testing.assert_array_equal(tr["z_new"], [1, 1, 0, 0])  # step 2 would spike: blocked
    np.testing.assert_array_equal(tr["m"], [0, 1, 1, 0])
    np.testing.assert_allclose(tr["v"], [0.0, 0.0, 0.0, 0.768], rtol=TOL)  # v held at 0
    np.testing.assert_allclose(tr["rho"], [2.0, 1.0, 0.0, 0.0], rtol=TOL)
    np.testing.assert_allclose(tr["i"], [12.0, 9.6, 7.68, 6.144], rtol=TOL)  # i runs on
    z, tr = _run_both("lif_refrac", [15.0, 0.0, 0.0, 0.0], p, reset="subtract")
    np.testing.assert_array_equal(z, [1, 0, 0, 1])
    np.testing.assert_allclose(tr["v"], [0.5, 0.5, 0.5, 0.218], rtol=TOL)
    np.testing.assert_allclose(tr["rho"], [2.0, 1.0, 0.0, 2.0], rtol=TOL)
    # a fractional rho_reset counts down like the next integer
    z, tr = _run_both("lif_refrac", [15.0, 0.0, 0.0, 0.0], {"rho_reset": 1.5})
    np.testing.assert_array_equal(tr["m"], [0, 1, 1, 0])
    # the masked spike is what recurs: step 2's blocked spike sends nothing at step 3
    z, tr = _run_both("lif_refrac", [15.0, 0.0, 0.0, 0.0], p, w_rec=[[4.0]])
    np.testing.assert_allclose(tr["i1"], [15.0, 12.0 + 4.0, 12.8, 10.24], rtol=TOL)


# --------------------------------------------------------------------------------------
# Limits that reduce to the LIF oracle (forward and surrogate gradients)
# --------------------------------------------------------------------------------------


def _lif_params(p: dict) -> dict:
    return {k: p[k] for k in ("tau_mem_inv", "tau_syn_inv", "v_leak", "v_th")}


def _grads(outputs, leaves: dict, upstream) -> dict:
    loss = sum((o * g).sum() for o, g in zip(outputs, upstream, strict=True))
    names = [k for k, v in leaves.items() if v is not None and v.requires_grad]
    grads = torch.autograd.grad(loss, [leaves[k] for k in names], allow_unused=True)
    return {
        k: (torch.zeros_like(leaves[k]) if g is None else g)
        for k, g in zip(names, grads, strict=True)
    }


def _assert_grads_equal(ours: dict, ref: dict, keys) -> None:
    for key in keys:
        np.testing.assert_allclose(
            _np(ours[key]), _np(ref[key]), rtol=1e-10, atol=1e-13, err_msg=key
        )


@pytest.mark.parametrize("detach_reset", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("surrogate", ["superspike", "atan", "triangle"])
@pytest.mark.parametrize("model", ["lif_box", "lif_refrac"])
def test_reduces_to_lif(model, surrogate, recurrent, reset, detach_reset):
    """LIFBox = LIF with tau_syn_inv = 1/dt (i1 = x_t, then i = 0); LIFRefrac with
    rho_reset = 0 never becomes refractory. Spikes, states and every gradient match."""
    x, p, w_rec, state = make_case(
        model, _seed(model, surrogate, recurrent, reset), True, recurrent, with_state=False
    )
    if model == "lif_box":
        p["tau_syn_inv"] = np.full(N, 1.0 / DT)
    else:
        p["rho_reset"] = np.zeros(N)
    v_reset = 0.1  # the LIF oracle takes a scalar v_reset
    p["v_reset"] = v_reset
    alpha = {"superspike": 5.0, "atan": 2.0, "triangle": 1.0}[surrogate]
    kw = dict(surrogate=surrogate, alpha=alpha, reset=reset, detach_reset=detach_reset)

    xt, pt, wt, _ = _to_torch(x, p, w_rec, {}, requires_grad=True)
    v0 = torch.tensor(np.random.default_rng(3).uniform(-0.2, 0.8, (B, N)), requires_grad=True)
    # LIFBox has no tau_syn_inv: the LIF oracle gets it, the LIFBox does not
    ours_p = {k: v for k, v in pt.items() if model == "lif_refrac" or k != "tau_syn_inv"}
    z, final = TORCH[model](xt, ours_p, DT, wt, {"v": v0}, **kw)
    lp = _lif_params(pt)
    z_ref, (v_ref, _, _) = lif_forward_torch(
        xt,
        lp["tau_mem_inv"],
        lp["tau_syn_inv"],
        lp["v_leak"],
        lp["v_th"],
        v_reset,
        DT,
        surrogate,
        alpha,
        reset,
        detach_reset,
        False,
        w_rec=wt,
        v0=v0,
    )
    np.testing.assert_array_equal(_np(z), _np(z_ref))
    assert 0.01 <= float(_np(z).mean()) <= 0.5
    np.testing.assert_allclose(_np(final["v"]), _np(v_ref), rtol=TOL, atol=TOL)

    rng = np.random.default_rng(7)
    upstream = [torch.tensor(rng.normal(size=(T, B, N))), torch.tensor(rng.normal(size=(B, N)))]
    leaves = {
        "x": xt,
        "w_rec": wt,
        "v0": v0,
        **{k: pt[k] for k in ("tau_mem_inv", "v_th", "v_leak")},
    }
    if model == "lif_refrac":
        leaves["tau_syn_inv"] = pt["tau_syn_inv"]
    ours = _grads([z, final["v"]], leaves, upstream)
    ref = _grads([z_ref, v_ref], leaves, upstream)
    _assert_grads_equal(ours, ref, ours)


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("surrogate", ["superspike", "sigmoid"])
def test_lsnn_without_adaptation_is_delayed_lif(surrogate, reset):
    """With beta = 0 the threshold stays at v_th, and the LSNN's v_d at step t + 1 is the
    LIF's h at step t (the LSNN adds x_t to i after the spike, LIF before it).

    The gradients are compared with ``detach_reset=True``: the LSNN's extra step 0 does not
    spike, but an attached reset would still send the surrogate derivative of its
    sub-threshold ``z`` into ``v_th``, a term the LIF run has no step for."""
    x, p, _, _ = make_case(
        "lsnn", _seed("delayed", surrogate, reset), True, False, with_state=False
    )
    p["beta"] = np.zeros(N)
    p["v_reset"] = 0.0
    xt, pt, _, _ = _to_torch(x, p, None, {}, requires_grad=True)
    kw = dict(surrogate=surrogate, alpha=5.0, reset=reset, detach_reset=True)
    # b0 = v_th *attached*: then b stays v_th in value and in gradient (the default b0 is
    # detached, and v_th would only reach b through the relaxation a_a * (v_th - b))
    z, final = ref_t.lsnn_forward_torch(xt, pt, DT, state={"b": pt["v_th"]}, **kw)
    lp = _lif_params(pt)
    z_ref, (v_ref, _, _) = lif_forward_torch(
        xt[:-1],
        lp["tau_mem_inv"],
        lp["tau_syn_inv"],
        lp["v_leak"],
        lp["v_th"],
        0.0,
        DT,
        surrogate,
        5.0,
        reset,
        True,  # detach_reset
        False,
    )
    assert not _np(z[0]).any()  # i starts at 0 and v at v_leak: nothing can happen at t = 0
    np.testing.assert_array_equal(_np(z[1:]), _np(z_ref))
    assert float(_np(z).mean()) > 0.01
    np.testing.assert_allclose(_np(final["v"]), _np(v_ref), rtol=TOL, atol=TOL)
    z_np, _ = ref_np.lsnn_forward_numpy(x, p, DT, reset=reset)
    lif_np = lif_reference(x[:-1], dt=DT, reset=reset, **_lif_params(p))
    np.testing.assert_array_equal(z_np[1:], lif_np.z)

    rng = np.random.default_rng(11)
    g = torch.tensor(rng.normal(size=(T - 1, B, N)))
    leaves = {"x": xt, **{k: pt[k] for k in ("tau_mem_inv", "tau_syn_inv", "v_th", "v_leak")}}
    ours = _grads([z[1:]], leaves, [g])
    ref = _grads([z_ref], leaves, [g])
    _assert_grads_equal(ours, ref, ours)


# --------------------------------------------------------------------------------------
# Smooth mode: autograd == finite differences of the NumPy forward
# --------------------------------------------------------------------------------------

FD_SHAPE = (8, 2, 3)
FD_TOL = 1e-6
#: (surrogate, alpha): F is a soft step over the range the membrane covers.
FD_SURROGATES = [("sigmoid", 5.0), ("tanh", 2.0)]


def _rel_err(a, b) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


@pytest.mark.parametrize("detach_reset", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("surrogate,alpha", FD_SURROGATES, ids=[s for s, _ in FD_SURROGATES])
@pytest.mark.parametrize("model", MODEL_NAMES)
def test_smooth_gradient_matches_finite_differences(
    model, surrogate, alpha, recurrent, reset, detach_reset
):
    x, p, w_rec, state = make_case(
        model, _seed("fd", model, surrogate, recurrent, reset), True, recurrent, shape=FD_SHAPE
    )
    kw = dict(surrogate=surrogate, alpha=alpha, reset=reset, smooth=True)
    rng = np.random.default_rng(_seed("upstream", model))
    g_z = rng.normal(size=FD_SHAPE)
    final_keys = [k for k in STATE_KEYS[model] if k != "rho"] + (["z"] if recurrent else [])
    g_s = {k: rng.normal(size=FD_SHAPE[1:]) for k in final_keys}

    # inputs: x, w_rec, every parameter but rho_reset, every initial state but rho
    arrays = {"x": x, **{f"p.{k}": v for k, v in p.items() if k != "rho_reset"}}
    arrays.update({f"s.{k}": v for k, v in state.items() if k != "rho"})
    if w_rec is not None:
        arrays["w_rec"] = w_rec
    fixed_p = {k: v for k, v in p.items() if k == "rho_reset"}
    fixed_s = {k: v for k, v in state.items() if k == "rho"}

    def split(a):
        pp = {**fixed_p, **{k[2:]: v for k, v in a.items() if k.startswith("p.")}}
        ss = {**fixed_s, **{k[2:]: v for k, v in a.items() if k.startswith("s.")}}
        return a["x"], pp, a.get("w_rec"), ss

    trace0 = {}
    x0, p0, w0, s0 = split(arrays)
    z0, _ = NUMPY[model](x0, p0, DT, w0, s0, **kw, trace=trace0)
    reset_z = z0 if model != "lif_refrac" else trace0["z_new"]

    def loss_np(a) -> float:
        trace = {}
        xx, pp, ww, ss = split(a)
        z, fin = NUMPY[model](
            xx, pp, DT, ww, ss, **kw, trace=trace, reset_z=reset_z if detach_reset else None
        )
        if model == "lif_refrac":  # the mask is piecewise constant: keep off its jumps
            np.testing.assert_array_equal(trace["m"], trace0["m"])
        return float((z * g_z).sum() + sum((fin[k] * g_s[k]).sum() for k in final_keys))

    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
    xx, pp, ww, ss = split(leaves)
    z, fin = TORCH[model](xx, pp, DT, ww, ss, **kw, detach_reset=detach_reset)
    loss = (z * torch.tensor(g_z)).sum()
    loss = loss + sum((fin[k] * torch.tensor(g_s[k])).sum() for k in final_keys)
    grads = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values())), strict=True))
    assert abs(loss.item() - loss_np(arrays)) < 1e-12 * max(1.0, abs(loss.item()))

    if model == "lif_refrac":
        assert trace0["m"].any(), "the refractory mask was never on"
    _assert_matches_finite_differences(grads, loss_np, arrays)


def _assert_matches_finite_differences(grads: dict, loss_np, arrays: dict) -> None:
    """Central differences of ``loss_np`` in every element of every array vs ``grads``."""
    errors = {}
    for name, value in arrays.items():
        fd = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            eps = 1e-6 * max(1.0, abs(value[idx]))  # relative step for tau_inv ~ 100
            plus, minus = value.copy(), value.copy()
            plus[idx] += eps
            minus[idx] -= eps
            fd[idx] = (loss_np({**arrays, name: plus}) - loss_np({**arrays, name: minus})) / (
                2 * eps
            )
        assert np.linalg.norm(fd) > 0, f"{name}: the loss does not depend on it"
        errors[name] = _rel_err(_np(grads[name]), fd)
    bad = {k: e for k, e in errors.items() if not e < FD_TOL}
    assert not bad, f"autograd vs finite differences: {bad} (all: {errors})"


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_default_initial_state_gradients(model):
    """With no ``state`` given, ``v0 = v_leak`` is part of ``v_leak``'s gradient, while
    LSNN's ``b0 = v_th`` is a detached value: ``v_th``'s gradient is that of the function
    in which ``b0`` stays at the base point's ``v_th``."""
    x, p, _, _ = make_case(model, _seed("default state", model), True, False, shape=FD_SHAPE)
    kw = dict(surrogate="sigmoid", alpha=5.0, smooth=True)
    g_z = np.random.default_rng(5).normal(size=FD_SHAPE)
    b0 = {"b": np.broadcast_to(p["v_th"], FD_SHAPE[1:])} if model == "lsnn" else None
    arrays = {k: v for k, v in p.items() if k != "rho_reset"}
    fixed = {k: v for k, v in p.items() if k == "rho_reset"}

    def loss_np(a) -> float:
        z, _ = NUMPY[model](x, {**fixed, **a}, DT, None, b0, **kw)
        return float((z * g_z).sum())

    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
    z, _ = TORCH[model](torch.tensor(x), {**fixed, **leaves}, DT, **kw)
    loss = (z * torch.tensor(g_z)).sum()
    grads = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values())), strict=True))
    _assert_matches_finite_differences(grads, loss_np, arrays)
    if model == "lsnn":  # and it does differ from letting b0 follow v_th
        with pytest.raises(AssertionError, match="autograd vs finite differences"):
            _assert_matches_finite_differences(
                {"v_th": grads["v_th"]},
                lambda a: float(
                    (NUMPY[model](x, {**p, **a}, DT, None, None, **kw)[0] * g_z).sum()
                ),
                {"v_th": arrays["v_th"]},
            )
