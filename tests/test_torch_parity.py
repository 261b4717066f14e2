"""Parity of numbaspike's kernels and hand-written BPTT with the PyTorch autograd oracle.

DESIGN.md §4.1: for every surrogate, reset mode, detach flag, feed-forward/recurrent layer
and scalar/per-neuron parameters, in float64 and float32,

* the spikes are bit-identical to ``tests/reference_torch.py`` (same rounding);
* every gradient (input, recurrent weights, v_th, v_leak, tau_mem_inv, tau_syn_inv and the
  initial state v0, i0, z0) agrees with autograd: float64 to 1e-9, float32 to 1e-4,
  norm-relative, under a random upstream gradient;
* the spike rate of each case is checked to lie in [1 %, 50 %], so the cases are neither
  silent nor saturated.

Norse's feed-forward ``lif_feed_forward_step`` is the ``detach_reset=False`` case and its
recurrent ``lif_step`` the ``detach_reset=True`` case of this grid (the oracle implements
both from the equations; no Norse install is needed).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from _helpers_torch import (
    ALPHAS,
    RATE_MAX,
    RATE_MIN,
    TOLERANCES,
    assert_grads_close,
    make_li_case,
    make_lif_case,
    rel_err,
    run_li_numbaspike,
    run_li_torch,
    run_lif_numbaspike,
    run_lif_torch,
)

import numbaspike
from numbaspike.surrogates import SURROGATE_KINKS
from numbaspike.torch_reference import SURROGATES, smooth_fn, spike_fn, surrogate_F, surrogate_s

SURROGATE_LIST = list(SURROGATES)
RESETS = ["zero", "subtract"]
DTYPES = [np.float64, np.float32]


def _seed(*parts) -> int:
    """A deterministic seed per test case."""
    return zlib.crc32(repr(parts).encode())


def _dtype_id(dtype) -> str:
    return np.dtype(dtype).name


def _assert_rate(z: np.ndarray, context: str) -> float:
    rate = float(np.mean(z != 0))
    assert RATE_MIN <= rate <= RATE_MAX, f"{context}: spike rate {rate:.3f} outside window"
    return rate


def _assert_scalar_types(grads: dict, per_neuron: bool, context: str) -> None:
    for key in ("tau_mem_inv", "tau_syn_inv", "v_th", "v_leak"):
        if per_neuron:
            assert isinstance(grads[key], np.ndarray), f"{context}: {key} grad should be an array"
        else:
            assert isinstance(grads[key], float), (
                f"{context}: {key} grad should be a Python float for a scalar parameter, "
                f"got {type(grads[key]).__name__}"
            )


# --------------------------------------------------------------------------------------
# The oracle's surrogates agree with numbaspike's table and with themselves (F' = s).
# --------------------------------------------------------------------------------------


def _grid_away_from_kinks(name: str, alpha: float) -> np.ndarray:
    u = np.linspace(-3.0, 3.0, 601) + 1e-3  # offset: never exactly on 0, +-1, +-alpha
    kinks = np.asarray(SURROGATE_KINKS[name](alpha), dtype=np.float64)
    if kinks.size:
        u = u[np.min(np.abs(u[:, None] - kinks[None, :]), axis=1) > 1e-2]
    return u


@pytest.mark.parametrize("surrogate", SURROGATE_LIST)
def test_reference_surrogates_match_table(surrogate):
    """The oracle's s and F equal numbaspike's scalar functions (float64)."""
    alpha = ALPHAS[surrogate]
    u = _grid_away_from_kinks(surrogate, alpha)
    ut = torch.as_tensor(u)
    np.testing.assert_allclose(
        surrogate_s(surrogate, ut, alpha).numpy(),
        numbaspike.surrogate_derivative(surrogate, u, alpha),
        rtol=1e-12,
        atol=1e-15,
    )
    np.testing.assert_allclose(
        surrogate_F(surrogate, ut, alpha).numpy(),
        numbaspike.surrogate_forward(surrogate, u, alpha),
        rtol=1e-12,
        atol=1e-15,
    )


@pytest.mark.parametrize("surrogate", SURROGATE_LIST)
def test_reference_smooth_derivative_is_surrogate(surrogate):
    """Oracle self-check: autograd of F equals the explicit s, and the spike Function's
    backward is s while its forward is the Heaviside step."""
    alpha = ALPHAS[surrogate]
    u = torch.as_tensor(_grid_away_from_kinks(surrogate, alpha)).requires_grad_(True)
    (g_auto,) = torch.autograd.grad(smooth_fn(surrogate, u, alpha).sum(), u)
    (g_expl,) = torch.autograd.grad(smooth_fn(surrogate, u, alpha, explicit=True).sum(), u)
    s = surrogate_s(surrogate, u.detach(), alpha)
    np.testing.assert_allclose(g_auto.numpy(), s.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(g_expl.numpy(), s.numpy())

    z = spike_fn(surrogate, u, alpha)
    np.testing.assert_array_equal(z.detach().numpy(), (u.detach().numpy() > 0).astype(float))
    (g_spike,) = torch.autograd.grad(z.sum(), u)
    np.testing.assert_array_equal(g_spike.numpy(), s.numpy())


# --------------------------------------------------------------------------------------
# LIF, spiking forward: identical spikes, gradients within tolerance.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("explicit_state", [True, False], ids=["state", "nostate"])
@pytest.mark.parametrize("per_neuron", [False, True], ids=["scalar", "perneuron"])
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("detach", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("surrogate", SURROGATE_LIST)
def test_lif_parity(surrogate, reset, detach, recurrent, per_neuron, explicit_state, dtype):
    ctx = f"{surrogate}/{reset}/detach={detach}/rec={recurrent}/pn={per_neuron}/state={explicit_state}/{_dtype_id(dtype)}"
    case = make_lif_case(
        _seed("lif", surrogate, reset, detach, recurrent, per_neuron, explicit_state),
        dtype,
        per_neuron,
        recurrent,
        explicit_state,
    )
    z, final, grads = run_lif_numbaspike(case, surrogate, reset, detach, smooth=False)
    z_ref, final_ref, grads_ref = run_lif_torch(case, surrogate, reset, detach, smooth=False)

    assert z.dtype == np.dtype(dtype)
    _assert_rate(z_ref.numpy(), ctx)
    mismatch = np.argwhere(z != z_ref.numpy())
    assert mismatch.size == 0, f"{ctx}: spikes differ from torch at (t, b, n) {mismatch[:5]}"
    for got, want, name in ((final.v, final_ref[0], "v"), (final.i, final_ref[1], "i")):
        if recurrent:  # the recurrent product may sum in another order than torch's matmul
            tol = 1e-12 if dtype == np.float64 else 1e-5
            np.testing.assert_allclose(got, want.numpy(), rtol=tol, atol=tol, err_msg=name)
        else:  # same elementwise operations in the same dtype: bit-identical
            np.testing.assert_array_equal(got, want.numpy(), err_msg=f"{ctx}: final {name}")

    # The check is not degenerate: the surrogate carries gradient to the inputs and v_th.
    assert torch.linalg.norm(grads_ref["x"]) > 0, f"{ctx}: zero reference input gradient"
    assert torch.linalg.norm(grads_ref["v_th"]) > 0, f"{ctx}: zero reference v_th gradient"
    _assert_scalar_types(grads, per_neuron, ctx)
    assert_grads_close(grads, grads_ref, TOLERANCES[dtype], ctx)


# --------------------------------------------------------------------------------------
# LIF, smooth forward z = F(h - v_th): the same BPTT gives the exact gradient.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("explicit_state", [True, False], ids=["state", "nostate"])
@pytest.mark.parametrize("per_neuron", [False, True], ids=["scalar", "perneuron"])
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("detach", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("surrogate", SURROGATE_LIST)
def test_lif_smooth_parity(surrogate, reset, detach, recurrent, per_neuron, explicit_state):
    ctx = f"smooth {surrogate}/{reset}/detach={detach}/rec={recurrent}/pn={per_neuron}/state={explicit_state}"
    case = make_lif_case(
        _seed("smooth", surrogate, reset, detach, recurrent, per_neuron, explicit_state),
        np.float64,
        per_neuron,
        recurrent,
        explicit_state,
    )
    z, final, grads = run_lif_numbaspike(case, surrogate, reset, detach, smooth=True)
    z_ref, final_ref, grads_ref = run_lif_torch(case, surrogate, reset, detach, smooth=True)
    # F is evaluated by numba's libm and by torch, which may differ in the last ulp; the
    # recurrence amplifies that over T steps, so the forward values match to ~1e-12.
    close = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(z, z_ref.numpy(), **close, err_msg=f"{ctx}: z")
    np.testing.assert_allclose(final.v, final_ref[0].numpy(), **close, err_msg=f"{ctx}: v")
    np.testing.assert_allclose(final.i, final_ref[1].numpy(), **close, err_msg=f"{ctx}: i")
    assert torch.linalg.norm(grads_ref["v_th"]) > 0, f"{ctx}: zero reference v_th gradient"
    assert_grads_close(grads, grads_ref, TOLERANCES[np.float64], ctx)


@pytest.mark.parametrize("surrogate", SURROGATE_LIST)
def test_lif_smooth_reference_explicit_vs_autograd(surrogate):
    """The oracle's two smooth variants (autograd F' vs explicit s) give the same gradients."""
    case = make_lif_case(_seed("smooth-ref", surrogate), np.float64, True, True, True)
    _, _, g_auto = run_lif_torch(case, surrogate, "zero", False, smooth=True)
    _, _, g_expl = run_lif_torch(
        case, surrogate, "zero", False, smooth=True, explicit_smooth_grad=True
    )
    for key in g_auto:
        assert rel_err(g_expl[key], g_auto[key]) <= 1e-12, key


# --------------------------------------------------------------------------------------
# LIF with a loss on the final state (grad_final_state).
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("smooth", "dtype"),
    [(False, np.float64), (False, np.float32), (True, np.float64)],
    ids=["spiking-float64", "spiking-float32", "smooth-float64"],
)
@pytest.mark.parametrize("explicit_state", [True, False], ids=["state", "nostate"])
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("detach", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("surrogate", ["superspike", "triangle"])
def test_lif_final_state_grad(surrogate, reset, detach, recurrent, explicit_state, smooth, dtype):
    """A loss with a term on the final v and i (grad_final_state) against torch."""
    ctx = f"final {surrogate}/{reset}/detach={detach}/rec={recurrent}/state={explicit_state}/smooth={smooth}/{_dtype_id(dtype)}"
    case = make_lif_case(
        _seed("final", surrogate, reset, detach, recurrent, explicit_state, smooth),
        dtype,
        True,
        recurrent,
        explicit_state,
        final_grad=True,
    )
    z, _, grads = run_lif_numbaspike(case, surrogate, reset, detach, smooth)
    z_ref, _, grads_ref = run_lif_torch(case, surrogate, reset, detach, smooth)
    if not smooth:
        _assert_rate(z_ref.numpy(), ctx)
        np.testing.assert_array_equal(z, z_ref.numpy(), err_msg=ctx)
    assert_grads_close(grads, grads_ref, TOLERANCES[dtype], ctx)


# --------------------------------------------------------------------------------------
# The detach flag matters (so the detach half of the grid tests something).
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_detach_reset_changes_gradients(reset, recurrent):
    """Norse feed-forward (attached reset) and Norse recurrent (detached reset) gradients
    differ; numbaspike reproduces each of them (checked in test_lif_parity)."""
    case = make_lif_case(_seed("detach", reset, recurrent), np.float64, True, recurrent, True)
    _, _, attached = run_lif_torch(case, "superspike", reset, False, smooth=False)
    _, _, detached = run_lif_torch(case, "superspike", reset, True, smooth=False)
    assert rel_err(attached["x"], detached["x"]) > 1e-3
    _, _, ours_attached = run_lif_numbaspike(case, "superspike", reset, False, smooth=False)
    _, _, ours_detached = run_lif_numbaspike(case, "superspike", reset, True, smooth=False)
    assert rel_err(ours_attached["x"], attached["x"]) <= 1e-9
    assert rel_err(ours_detached["x"], detached["x"]) <= 1e-9


# --------------------------------------------------------------------------------------
# LI readout.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("final_grad", [False, True], ids=["nofinal", "final"])
@pytest.mark.parametrize("explicit_state", [True, False], ids=["state", "nostate"])
@pytest.mark.parametrize("per_neuron", [False, True], ids=["scalar", "perneuron"])
def test_li_parity(per_neuron, explicit_state, final_grad, dtype):
    ctx = f"li pn={per_neuron}/state={explicit_state}/final={final_grad}/{_dtype_id(dtype)}"
    case = make_li_case(
        _seed("li", per_neuron, explicit_state, final_grad), dtype, per_neuron, explicit_state,
        final_grad,
    )  # fmt: skip
    v, final, grads = run_li_numbaspike(case)
    v_ref, final_ref, grads_ref = run_li_torch(case)
    assert v.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(v, v_ref.numpy(), err_msg=f"{ctx}: membrane trace")
    np.testing.assert_array_equal(final.v, final_ref[0].numpy(), err_msg=f"{ctx}: final v")
    np.testing.assert_array_equal(final.i, final_ref[1].numpy(), err_msg=f"{ctx}: final i")
    for key in ("tau_mem_inv", "tau_syn_inv", "v_leak"):
        expected_type = np.ndarray if per_neuron else float
        assert isinstance(grads[key], expected_type), f"{ctx}: {key} {type(grads[key])}"
    assert_grads_close(grads, grads_ref, TOLERANCES[dtype], ctx)


def test_grid_covers_every_surrogate():
    """The parity grid runs every surrogate numbaspike offers (new ones must be added here)."""
    assert set(SURROGATE_LIST) == set(numbaspike.SURROGATE_NAMES)
    assert set(ALPHAS) == set(SURROGATE_LIST)
