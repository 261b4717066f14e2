"""Hand-written BPTT against central finite differences in smooth mode (DESIGN.md §4.2).

With ``smooth=True`` the forward pass uses ``z = F(h - v_th)`` with ``F' = s``, so the
model is differentiable and the analytic gradient of ``lif_backward`` must be its exact
gradient. In float64, central differences of the scalar loss

    L = sum(grad_z * z) + sum(grad_v_T * v_T) + sum(grad_i_T * i_T)

agree with it to a relative error < 1e-6, both along random directions (directional
derivatives) and for a handful of individual entries, for every input, weight, neuron
parameter and initial state; for every surrogate x reset x detach_reset x
feed-forward/recurrent.

``detach_reset=True`` is *defined* as a gradient that is not the gradient of the forward
function: it treats the ``z`` in the reset term as a constant. Its exact counterpart is the
function of the parameters in which that ``z`` is frozen at its base-point values; the FD
check of the detached gradient therefore differentiates the NumPy oracle
(tests/reference_numpy.py) run with ``reset_z = z(base point)``. That oracle is checked
against numbaspike's forward in test_numpy_reference.py; here we also check that it
reproduces numbaspike's loss at the base point.

Kinks: F is not three times differentiable at the points in ``SURROGATE_KINKS`` (F'' jumps
at 0 for superspike and at 0, +-1 for triangle; F' itself jumps at +-alpha for boxcar). A
central difference whose stencil straddles such a point has an error O(step) (or O(1))
instead of O(step^2), which would fail the 1e-6 tolerance for reasons that have nothing to
do with the backward pass. The data below were chosen (seed, input scale) so that at the
base point every sampled ``u = h - v_th`` lies at least ``KINK_MARGIN`` away from every
kink, which the tests assert, and every perturbed evaluation is checked to keep each ``u``
on the same side of each kink as at the base point.
"""

from __future__ import annotations

import numpy as np
import pytest
from reference_numpy import lif_reference

import numbaspike as ns
from numbaspike.surrogates import SURROGATE_KINKS

pytestmark = pytest.mark.usefixtures("single_numba_thread")

DT = 1e-3
T, B, N = 25, 2, 4
SEED = 0
RTOL = 1e-6
KINK_MARGIN = 1e-4
#: relative step along a random direction: eps = REL_STEP * max(1, max |param|)
REL_STEP = 1e-6
#: relative step for one entry: a single entry moves L (and u) much less than a random
#: direction, so a larger step keeps the roundoff (~1e-16 |L| / eps) well below 1e-6 of
#: its (smaller) derivative while the truncation error (~eps^2) stays ~1e-10
REL_STEP_ENTRY = 1e-5
#: individual entries checked per array-valued argument
N_ENTRIES = 3

#: moderate sharpness so that F is a soft step over the range of u (|u| <~ 1).
#: triangle's kinks are at 0, +-1 whatever alpha; boxcar's at +-alpha (inside that range).
ALPHAS = {
    "superspike": 2.0,
    "sigmoid": 2.0,
    "atan": 2.0,
    "tanh": 2.0,
    "erfc": 2.0,
    "triangle": 1.0,
    "boxcar": 0.5,
}
#: surrogates whose F goes from 0 to 1 (a soft spike): the zero reset then pulls v down a
#: lot, so they get a stronger input to keep u around 0.
STEP_LIKE = ("sigmoid", "atan", "boxcar")

LIF_ARGS = ("x", "w_rec", "v0", "i0", "z0", "tau_mem_inv", "tau_syn_inv", "v_th", "v_leak")
LIF_PARAMS = ("tau_mem_inv", "tau_syn_inv", "v_th", "v_leak")
LI_ARGS = ("x", "v0", "i0", "tau_mem_inv", "tau_syn_inv", "v_leak")
LI_PARAMS = ("tau_mem_inv", "tau_syn_inv", "v_leak")

#: scalar: every parameter a scalar, default initial state (v0 = v_leak, so the v_leak
#: gradient includes the initial-state path); per_neuron: (N,) parameters and a given
#: initial state (v, i[, z]); per_neuron_default_state: (N,) parameters, default state.
VARIANTS = ("scalar", "per_neuron", "per_neuron_default_state")
#: data seed per variant, chosen so that no u comes within KINK_MARGIN of a kink in any
#: surrogate x reset x ff/rec configuration (with seed 0, triangle's u in the
#: per_neuron_default_state variant comes within 4e-5 of its kink at 0)
SEEDS = {"scalar": 0, "per_neuron": 0, "per_neuron_default_state": 1}


# --------------------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------------------


def lif_case(surrogate, recurrent, variant, seed=None):
    """theta (dict of float64 arrays, 0-d for scalars) and the upstream gradients.

    Inputs are mostly positive so that h stays positive: with the odd F's (superspike,
    tanh, erfc, triangle) z < 0 below threshold, and the smooth zero reset
    v = (1 - z) h would amplify a negative h without bound.
    """
    seed = SEEDS[variant] if seed is None else seed
    rng = np.random.default_rng(seed)
    hi = 1.6 if surrogate in STEP_LIKE else 0.8
    theta = {"x": rng.uniform(-0.1, hi, (T, B, N))}
    if recurrent:
        theta["w_rec"] = rng.normal(0.0, 0.15, (N, N))
    if variant == "scalar":
        theta.update(
            tau_mem_inv=np.array(100.0),
            tau_syn_inv=np.array(200.0),
            v_th=np.array(1.0),
            v_leak=np.array(0.3),
        )
    else:
        theta.update(
            tau_mem_inv=rng.uniform(80.0, 150.0, N),
            tau_syn_inv=rng.uniform(150.0, 300.0, N),
            v_leak=rng.uniform(0.2, 0.4, N),
            v_th=rng.uniform(0.8, 1.2, N),
        )
    if variant == "per_neuron":
        theta["v0"] = rng.uniform(0.3, 1.5, (B, N))
        theta["i0"] = rng.uniform(0.0, 2.0, (B, N))
        if recurrent:
            theta["z0"] = rng.uniform(0.0, 1.0, (B, N))
    g_rng = np.random.default_rng(seed + 1000)
    upstream = (
        g_rng.normal(size=(T, B, N)),
        g_rng.normal(size=(B, N)),
        g_rng.normal(size=(B, N)),
    )
    return theta, upstream


def lif_params(theta, base: ns.LIFParameters) -> ns.LIFParameters:
    return base.replace(**{k: theta[k] for k in LIF_PARAMS})


def lif_state(theta):
    if "v0" not in theta:
        return None
    if "z0" in theta:
        return (theta["v0"], theta["i0"], theta["z0"])
    return (theta["v0"], theta["i0"])


def lif_loss_numbaspike(theta, base, upstream):
    """(L, u) from numbaspike's forward; u = h - v_th (T, B, N)."""
    gz, gv, gi = upstream
    p = lif_params(theta, base)
    z, tape = ns.lif_forward(theta["x"], p, DT, w_rec=theta.get("w_rec"), state=lif_state(theta))
    v_f, i_f, _ = tape.final_state
    loss = np.sum(gz * z) + np.sum(gv * v_f) + np.sum(gi * i_f)
    return float(loss), tape.h - np.asarray(p.v_th)


def lif_loss_reference(theta, base, upstream, reset_z=None):
    """(L, u, z) from the NumPy oracle, optionally with the reset's z frozen."""
    gz, gv, gi = upstream
    ref = lif_reference(
        theta["x"],
        dt=DT,
        tau_mem_inv=theta["tau_mem_inv"],
        tau_syn_inv=theta["tau_syn_inv"],
        v_th=theta["v_th"],
        v_leak=theta["v_leak"],
        v_reset=base.v_reset,
        reset=base.reset,
        smooth=True,
        surrogate=base.surrogate,
        alpha=base.alpha,
        w_rec=theta.get("w_rec"),
        v0=theta.get("v0"),
        i0=theta.get("i0"),
        z0=theta.get("z0"),
        reset_z=reset_z,
    )
    loss = np.sum(gz * ref.z) + np.sum(gv * ref.v_final) + np.sum(gi * ref.i_final)
    return float(loss), ref.h - theta["v_th"], ref.z


# --------------------------------------------------------------------------------------
# finite differences
# --------------------------------------------------------------------------------------


def rel_err(fd: float, an: float, floor: float = 0.0) -> float:
    return abs(fd - an) / max(abs(fd), abs(an), floor)


def kinks_of(base) -> np.ndarray:
    return np.asarray(SURROGATE_KINKS[base.surrogate](base.alpha), dtype=np.float64)


def assert_away_from_kinks(u, kinks):
    """Base point: every u at least KINK_MARGIN from every kink of F (see module doc)."""
    for k in kinks:
        closest = float(np.min(np.abs(u - k)))
        assert closest > KINK_MARGIN, (
            f"u = h - v_th comes within {closest:.2e} of the kink at {k}: "
            "choose other data, the FD stencil would cross the kink"
        )


def assert_same_side(u, u_base, kinks):
    """A perturbed evaluation keeps every u on the base point's side of every kink."""
    for k in kinks:
        assert np.array_equal(u > k, u_base > k), f"FD stencil crossed the kink at {k}"


class FDChecker:
    """Central differences of ``loss(theta) -> (L, u)`` against an analytic gradient."""

    def __init__(self, loss, theta, grads, kinks, u_base):
        self.loss, self.theta, self.grads = loss, theta, grads
        self.kinks, self.u_base = kinks, u_base

    def _eval(self, name, delta):
        theta = dict(self.theta)
        theta[name] = self.theta[name] + delta
        loss, u = self.loss(theta)
        if u is not None:
            assert_same_side(u, self.u_base, self.kinks)
        return loss

    def central(self, name, direction, rel_step=REL_STEP) -> float:
        eps = rel_step * max(1.0, float(np.max(np.abs(self.theta[name]))))
        return (self._eval(name, eps * direction) - self._eval(name, -eps * direction)) / (2 * eps)

    def check_direction(self, name, rng):
        value = self.theta[name]
        grad = np.asarray(self.grads[name], dtype=np.float64)
        assert grad.shape == value.shape, f"gradient of {name} has shape {grad.shape}"
        direction = rng.normal(size=value.shape)
        fd = self.central(name, direction)
        terms = grad * direction
        an = float(np.sum(terms))
        # relative to the size of the terms: a direction almost orthogonal to the gradient
        # cancels them to a small sum whose FD estimate keeps the roundoff of the terms
        err = rel_err(fd, an, floor=float(np.sum(np.abs(terms))))
        assert err < RTOL, f"d/d{name} along a random direction: fd {fd!r} vs {an!r} ({err:.2e})"
        return err

    def check_entries(self, name, rng, n_entries=N_ENTRIES):
        value = self.theta[name]
        grad = np.asarray(self.grads[name], dtype=np.float64)
        if value.ndim == 0:
            return 0.0
        # the largest entry plus random ones; an entry whose gradient is much smaller
        # than the largest is compared with an absolute floor (FD roundoff ~ 1e-16 L/eps)
        flat = [int(np.argmax(np.abs(grad)))]
        flat += list(rng.choice(value.size, size=min(n_entries, value.size), replace=False))
        floor = 1e-3 * float(np.max(np.abs(grad)))
        worst = 0.0
        for k in flat:
            idx = np.unravel_index(k, value.shape)
            e = np.zeros_like(value)
            e[idx] = 1.0
            fd = self.central(name, e, REL_STEP_ENTRY)
            an = float(grad[idx])
            err = rel_err(fd, an, floor)
            assert err < RTOL, f"d/d{name}{list(idx)}: fd {fd!r} vs analytic {an!r} ({err:.2e})"
            worst = max(worst, err)
        return worst


# --------------------------------------------------------------------------------------
# LIF
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("detach_reset", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("surrogate", ns.SURROGATE_NAMES)
def test_lif_gradients_match_finite_differences(
    surrogate, reset, detach_reset, recurrent, variant
):
    theta, upstream = lif_case(surrogate, recurrent, variant)
    base = ns.LIFParameters(
        surrogate=surrogate,
        alpha=ALPHAS[surrogate],
        reset=reset,
        detach_reset=detach_reset,
        smooth=True,
    )
    p = lif_params(theta, base)
    state = lif_state(theta)
    z, tape = ns.lif_forward(theta["x"], p, DT, w_rec=theta.get("w_rec"), state=state)
    grads = ns.lif_backward(upstream[0], tape, grad_final_state=upstream[1:])
    u_base = tape.h - np.asarray(p.v_th)
    kinks = kinks_of(base)
    assert_away_from_kinks(u_base, kinks)
    # the data put many u near the steep part of F (|u| < 1 / alpha), i.e. the gradient
    # flows through the surrogate, not only through the linear dynamics
    assert np.mean(np.abs(u_base) < 1.0 / base.alpha) > 0.5
    assert np.all(np.abs(tape.h) < 5.0)  # bounded dynamics (see lif_case)

    # shapes: parameters keep the shape they were given with
    for name in LIF_PARAMS:
        given = getattr(p, name)
        assert np.shape(getattr(grads, name)) == np.shape(given), name
    assert grads.x.shape == (T, B, N)
    assert (grads.w_rec is None) == (not recurrent) and (grads.z0 is None) == (not recurrent)

    loss0, _ = lif_loss_numbaspike(theta, base, upstream)
    if detach_reset:
        _, _, z_base = lif_loss_reference(theta, base, upstream)
        ref_loss0, u_ref, _ = lif_loss_reference(theta, base, upstream, reset_z=z_base)
        assert abs(ref_loss0 - loss0) <= 1e-12 * max(1.0, abs(loss0))
        np.testing.assert_allclose(u_ref, u_base, rtol=0, atol=1e-12)

        def loss(th):
            value, u, _ = lif_loss_reference(th, base, upstream, reset_z=z_base)
            return value, u
    else:

        def loss(th):
            return lif_loss_numbaspike(th, base, upstream)

    grad_map = {name: getattr(grads, name) for name in LIF_ARGS}
    checker = FDChecker(loss, theta, grad_map, kinks, u_base)
    rng = np.random.default_rng(SEED + 7)
    checked = []
    for name in LIF_ARGS:
        if name not in theta:
            continue
        checker.check_direction(name, rng)
        checker.check_entries(name, rng)
        checked.append(name)
    expected = {"x", "tau_mem_inv", "tau_syn_inv", "v_th", "v_leak"}
    if recurrent:
        expected.add("w_rec")
    if variant == "per_neuron":
        expected |= {"v0", "i0"} | ({"z0"} if recurrent else set())
    assert set(checked) == expected

    if variant != "per_neuron":
        # default initial state: v0 = v_leak, and the v0/i0 gradients are still those of
        # the initial state (perturb it explicitly through `state`)
        v0 = np.broadcast_to(theta["v_leak"], (B, N)).copy()
        theta_s = {**theta, "v0": v0, "i0": np.zeros((B, N))}
        if recurrent:
            theta_s["z0"] = np.zeros((B, N))
        grad_map_s = {"v0": grads.v0, "i0": grads.i0, "z0": grads.z0}
        checker_s = FDChecker(loss, theta_s, grad_map_s, kinks, u_base)
        for name in ("v0", "i0", "z0") if recurrent else ("v0", "i0"):
            checker_s.check_direction(name, rng)
            checker_s.check_entries(name, rng)


def test_fast_sigmoid_alias_gradients_match_finite_differences():
    theta, upstream = lif_case("superspike", True, "per_neuron")
    base = ns.LIFParameters(surrogate="fast_sigmoid", alpha=2.0, smooth=True)
    z, tape = ns.lif_forward(
        theta["x"], lif_params(theta, base), DT, theta["w_rec"], lif_state(theta)
    )
    grads = ns.lif_backward(upstream[0], tape, grad_final_state=upstream[1:])
    u_base = tape.h - theta["v_th"]
    assert_away_from_kinks(u_base, kinks_of(base))

    def loss(th):
        return lif_loss_numbaspike(th, base, upstream)

    checker = FDChecker(
        loss, theta, {n: getattr(grads, n) for n in LIF_ARGS}, kinks_of(base), u_base
    )
    rng = np.random.default_rng(3)
    for name in LIF_ARGS:
        checker.check_direction(name, rng)


@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_gradients_without_final_state_term(recurrent):
    """grad_final_state=None means a loss on the outputs only (zero final adjoints)."""
    theta, upstream = lif_case("sigmoid", recurrent, "per_neuron")
    base = ns.LIFParameters(surrogate="sigmoid", alpha=2.0, smooth=True, reset="subtract")
    p = lif_params(theta, base)
    z, tape = ns.lif_forward(theta["x"], p, DT, theta.get("w_rec"), lif_state(theta))
    grads = ns.lif_backward(upstream[0], tape)
    zero = np.zeros((B, N))
    grads0 = ns.lif_backward(upstream[0], tape, grad_final_state=(zero, zero))
    for name in LIF_ARGS:
        a, b = getattr(grads, name), getattr(grads0, name)
        if a is None:
            assert b is None
        else:
            np.testing.assert_array_equal(a, b)
    no_final = (upstream[0], np.zeros((B, N)), np.zeros((B, N)))

    def loss(th):
        return lif_loss_numbaspike(th, base, no_final)

    checker = FDChecker(loss, theta, {n: getattr(grads, n) for n in LIF_ARGS}, (), None)
    rng = np.random.default_rng(5)
    for name in theta:
        checker.check_direction(name, rng)


@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_param_grads_false_gives_same_state_gradients(recurrent):
    theta, upstream = lif_case("atan", recurrent, "per_neuron")
    p = lif_params(theta, ns.LIFParameters(surrogate="atan", alpha=2.0, smooth=True))
    args = (theta["x"], p, DT, theta.get("w_rec"), lif_state(theta))
    _, tape = ns.lif_forward(*args)
    _, tape_np = ns.lif_forward(*args, param_grads=False)
    g = ns.lif_backward(upstream[0], tape, upstream[1:])
    g_np = ns.lif_backward(upstream[0], tape_np, upstream[1:])
    for name in ("x", "w_rec", "v0", "i0", "z0"):
        a, b = getattr(g, name), getattr(g_np, name)
        if a is None:
            assert b is None
        else:
            np.testing.assert_array_equal(a, b)
    for name in LIF_PARAMS:
        assert getattr(g_np, name) is None


# --------------------------------------------------------------------------------------
# LI readout
# --------------------------------------------------------------------------------------


def li_case(variant, seed=SEED):
    rng = np.random.default_rng(seed)
    theta = {"x": rng.normal(0.2, 0.5, (T, B, N))}
    if variant == "scalar":
        theta.update(
            tau_mem_inv=np.array(100.0), tau_syn_inv=np.array(200.0), v_leak=np.array(0.3)
        )
    else:
        theta.update(
            tau_mem_inv=rng.uniform(80.0, 150.0, N),
            tau_syn_inv=rng.uniform(150.0, 300.0, N),
            v_leak=rng.uniform(-0.5, 0.5, N),
        )
    if variant == "per_neuron":
        theta["v0"] = rng.normal(0.0, 1.0, (B, N))
        theta["i0"] = rng.normal(0.0, 1.0, (B, N))
    g_rng = np.random.default_rng(seed + 1000)
    upstream = (
        g_rng.normal(size=(T, B, N)),
        g_rng.normal(size=(B, N)),
        g_rng.normal(size=(B, N)),
    )
    return theta, upstream


def li_loss(theta, upstream):
    gv_out, gv, gi = upstream
    p = ns.LIParameters(**{k: theta[k] for k in LI_PARAMS})
    state = (theta["v0"], theta["i0"]) if "v0" in theta else None
    v, tape = ns.li_forward(theta["x"], p, DT, state=state)
    v_f, i_f = tape.final_state
    return float(np.sum(gv_out * v) + np.sum(gv * v_f) + np.sum(gi * i_f)), None


@pytest.mark.parametrize("variant", VARIANTS)
def test_li_gradients_match_finite_differences(variant):
    theta, upstream = li_case(variant)
    p = ns.LIParameters(**{k: theta[k] for k in LI_PARAMS})
    state = (theta["v0"], theta["i0"]) if "v0" in theta else None
    v, tape = ns.li_forward(theta["x"], p, DT, state=state)
    grads = ns.li_backward(upstream[0], tape, grad_final_state=upstream[1:])
    for name in LI_PARAMS:
        assert np.shape(getattr(grads, name)) == np.shape(getattr(p, name)), name

    def loss(th):
        return li_loss(th, upstream)

    grad_map = {name: getattr(grads, name) for name in LI_ARGS}
    checker = FDChecker(loss, theta, grad_map, (), None)
    rng = np.random.default_rng(SEED + 7)
    for name in theta:
        checker.check_direction(name, rng)
        checker.check_entries(name, rng)
    if variant != "per_neuron":
        theta_s = {**theta, "v0": np.broadcast_to(theta["v_leak"], (B, N)).copy()}
        theta_s["i0"] = np.zeros((B, N))
        checker_s = FDChecker(loss, theta_s, {"v0": grads.v0, "i0": grads.i0}, (), None)
        for name in ("v0", "i0"):
            checker_s.check_direction(name, rng)
            checker_s.check_entries(name, rng)
