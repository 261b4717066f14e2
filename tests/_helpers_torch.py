"""Shared helpers for the PyTorch parity tests (tests/test_torch_parity.py).

A *case* is a dict of NumPy arrays (inputs, parameters, initial state, upstream gradients)
built from a seed; :func:`run_lif_numbaspike` / :func:`run_lif_torch` (and the LI
counterparts) run it through numbaspike's hand-written BPTT and through the autograd
oracle of ``reference_torch.py`` and return the same set of named results.
"""

from __future__ import annotations

import numpy as np
import torch

import numbaspike
from numbaspike.torch_reference import li_forward_torch, lif_forward_torch

DT = 1e-3
T, B, N = 40, 3, 7

#: Surrogate sharpness used by the parity tests: moderate, so that surrogate gradients are
#: not vanishingly small. Triangle's support is |u| < 1 whatever alpha (alpha scales the
#: height); boxcar's support is |u| < alpha with height 1 / (2 alpha).
ALPHAS = {
    "superspike": 5.0,
    "sigmoid": 5.0,
    "atan": 2.0,
    "tanh": 3.0,
    "erfc": 3.0,
    "triangle": 1.0,
    "boxcar": 0.5,
}

#: Norm-relative tolerances of the gradient comparison.
TOLERANCES = {np.float64: 1e-9, np.float32: 1e-4}

#: Spike-rate window every spiking case must fall in (checked, not assumed).
RATE_MIN, RATE_MAX = 0.01, 0.50

TINY = 1e-30


def rel_err(a, b) -> float:
    """``||a - b|| / max(||b||, tiny)`` in float64 (a, b: arrays, tensors or floats)."""
    a = np.asarray(a.detach().numpy() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
    b = np.asarray(b.detach().numpy() if isinstance(b, torch.Tensor) else b, dtype=np.float64)
    assert a.shape == b.shape, f"shape mismatch {a.shape} vs {b.shape}"
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), TINY))


def make_lif_case(
    seed: int,
    dtype,
    per_neuron: bool,
    recurrent: bool,
    explicit_state: bool,
    final_grad: bool = False,
    input_scale: float = 1.0,
) -> dict:
    """Random inputs, parameters, state and upstream gradients for one LIF case.

    The input drives each neuron with a per-neuron mean and Gaussian noise; the steady
    membrane is about ``v_leak + mean / a_s``, so means of 0.04-0.6 with a_s ~ 0.2 put the
    neurons below and above threshold (1); spike rates come out around 5-15 %.
    """
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if per_neuron:
        params = dict(
            tau_mem_inv=rng.uniform(60.0, 150.0, N),
            tau_syn_inv=rng.uniform(120.0, 300.0, N),
            v_leak=rng.uniform(-0.2, 0.2, N),
            v_th=rng.uniform(0.7, 1.3, N),
        )
    else:
        params = dict(tau_mem_inv=100.0, tau_syn_inv=200.0, v_leak=0.1, v_th=1.0)
    mean = rng.uniform(0.04, 0.6, N)
    x = input_scale * (mean + 0.5 * rng.standard_normal((T, B, N)))
    case = dict(
        x=x.astype(dtype),
        params=params,
        v_reset=-0.1,
        # Random upstream gradient with a positive mean: with a zero mean, sums such as the
        # scalar v_th gradient can cancel to ~1e-5 of their terms' magnitude, which float32
        # arithmetic (in the oracle as much as in numbaspike) cannot resolve to 1e-4.
        grad_z=(0.5 + rng.standard_normal((T, B, N))).astype(dtype),
        w_rec=None,
        state=None,
        grad_final=None,
    )
    if recurrent:
        case["w_rec"] = (0.6 / np.sqrt(N) * rng.standard_normal((N, N))).astype(dtype)
    if explicit_state:
        v0 = rng.uniform(-0.3, 1.1, (B, N)).astype(dtype)
        i0 = (0.5 * rng.standard_normal((B, N))).astype(dtype)
        z0 = (rng.random((B, N)) < 0.3).astype(dtype)
        case["state"] = (v0, i0, z0)
    if final_grad:
        gv = rng.standard_normal((B, N)).astype(dtype)
        gi = rng.standard_normal((B, N)).astype(dtype)
        case["grad_final"] = (gv, gi)
    return case


def lif_parameters(case: dict, surrogate: str, reset: str, detach: bool, smooth: bool):
    return numbaspike.LIFParameters(
        **case["params"],
        v_reset=case["v_reset"],
        surrogate=surrogate,
        alpha=ALPHAS[surrogate],
        reset=reset,
        detach_reset=detach,
        smooth=smooth,
    )


def run_lif_numbaspike(case: dict, surrogate: str, reset: str, detach: bool, smooth: bool):
    """Forward and backward through numbaspike; returns (z, final_state, gradients dict)."""
    p = lif_parameters(case, surrogate, reset, detach, smooth)
    state = None
    if case["state"] is not None:
        v0, i0, z0 = case["state"]
        state = numbaspike.LIFState(v0, i0, z0 if case["w_rec"] is not None else None)
    z, tape = numbaspike.lif_forward(case["x"], p, DT, w_rec=case["w_rec"], state=state)
    g = numbaspike.lif_backward(case["grad_z"], tape, grad_final_state=case["grad_final"])
    grads = dict(
        x=g.x,
        v0=g.v0,
        i0=g.i0,
        tau_mem_inv=g.tau_mem_inv,
        tau_syn_inv=g.tau_syn_inv,
        v_th=g.v_th,
        v_leak=g.v_leak,
    )
    if case["w_rec"] is not None:
        grads["w_rec"] = g.w_rec
        grads["z0"] = g.z0
    return z, tape.final_state, grads


def _leaf(value, dtype=None) -> torch.Tensor:
    t = torch.as_tensor(np.array(value, dtype=dtype))
    return t.requires_grad_(True)


def run_lif_torch(
    case: dict,
    surrogate: str,
    reset: str,
    detach: bool,
    smooth: bool,
    explicit_smooth_grad: bool = False,
):
    """Forward and autograd backward through the oracle; same outputs as the numbaspike run.

    Parameters are float64 leaves (0-d for scalars); the oracle casts them to the working
    dtype. The initial state is a leaf in the working dtype when given; otherwise ``i0``
    and ``z0`` are zero leaves (numbaspike's defaults) and ``v0`` is the oracle's own
    default ``v_leak`` broadcast, whose gradient is read through ``retain_grad``.
    """
    dtype = case["x"].dtype
    x = _leaf(case["x"])
    params = {k: _leaf(v, np.float64) for k, v in case["params"].items()}
    w_rec = None if case["w_rec"] is None else _leaf(case["w_rec"])
    if case["state"] is not None:
        v0, i0, z0 = (_leaf(s) for s in case["state"])
    else:
        v0 = None
        i0 = _leaf(np.zeros((B, N), dtype))
        z0 = _leaf(np.zeros((B, N), dtype))
    if w_rec is None:
        z0_arg = None
    else:
        z0_arg = z0
    used: dict = {}
    z, (v_f, i_f, _) = lif_forward_torch(
        x,
        params["tau_mem_inv"],
        params["tau_syn_inv"],
        params["v_leak"],
        params["v_th"],
        case["v_reset"],
        DT,
        surrogate,
        ALPHAS[surrogate],
        reset,
        detach,
        smooth,
        w_rec=w_rec,
        v0=v0,
        i0=i0,
        z0=z0_arg,
        explicit_smooth_grad=explicit_smooth_grad,
        initial_state_out=used,
    )
    loss = (z * torch.as_tensor(case["grad_z"])).sum()
    if case["grad_final"] is not None:
        gv, gi = (torch.as_tensor(g) for g in case["grad_final"])
        loss = loss + (v_f * gv).sum() + (i_f * gi).sum()
    loss.backward()
    grads = dict(
        x=x.grad,
        v0=used["v"].grad if v0 is None else v0.grad,
        i0=i0.grad,
        **{k: v.grad for k, v in params.items()},
    )
    if w_rec is not None:
        grads["w_rec"] = w_rec.grad
        grads["z0"] = z0.grad
    return z.detach(), (v_f.detach(), i_f.detach()), grads


def make_li_case(
    seed: int, dtype, per_neuron: bool, explicit_state: bool, final_grad: bool = False
) -> dict:
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if per_neuron:
        params = dict(
            tau_mem_inv=rng.uniform(60.0, 150.0, N),
            tau_syn_inv=rng.uniform(120.0, 300.0, N),
            v_leak=rng.uniform(-0.2, 0.2, N),
        )
    else:
        params = dict(tau_mem_inv=100.0, tau_syn_inv=200.0, v_leak=0.1)
    case = dict(
        x=rng.standard_normal((T, B, N)).astype(dtype),
        params=params,
        grad_v=rng.standard_normal((T, B, N)).astype(dtype),
        state=None,
        grad_final=None,
    )
    if explicit_state:
        case["state"] = (
            rng.uniform(-1.0, 1.0, (B, N)).astype(dtype),
            (0.5 * rng.standard_normal((B, N))).astype(dtype),
        )
    if final_grad:
        case["grad_final"] = (
            rng.standard_normal((B, N)).astype(dtype),
            rng.standard_normal((B, N)).astype(dtype),
        )
    return case


def run_li_numbaspike(case: dict):
    p = numbaspike.LIParameters(**case["params"])
    state = None if case["state"] is None else numbaspike.LIState(*case["state"])
    v, tape = numbaspike.li_forward(case["x"], p, DT, state=state)
    g = numbaspike.li_backward(case["grad_v"], tape, grad_final_state=case["grad_final"])
    grads = dict(
        x=g.x,
        v0=g.v0,
        i0=g.i0,
        tau_mem_inv=g.tau_mem_inv,
        tau_syn_inv=g.tau_syn_inv,
        v_leak=g.v_leak,
    )
    return v, tape.final_state, grads


def run_li_torch(case: dict):
    dtype = case["x"].dtype
    x = _leaf(case["x"])
    params = {k: _leaf(v, np.float64) for k, v in case["params"].items()}
    if case["state"] is not None:
        v0, i0 = (_leaf(s) for s in case["state"])
    else:
        v0, i0 = None, _leaf(np.zeros((B, N), dtype))
    used: dict = {}
    v, (v_f, i_f) = li_forward_torch(
        x,
        params["tau_mem_inv"],
        params["tau_syn_inv"],
        params["v_leak"],
        DT,
        v0=v0,
        i0=i0,
        initial_state_out=used,
    )
    loss = (v * torch.as_tensor(case["grad_v"])).sum()
    if case["grad_final"] is not None:
        gv, gi = (torch.as_tensor(g) for g in case["grad_final"])
        loss = loss + (v_f * gv).sum() + (i_f * gi).sum()
    loss.backward()
    grads = dict(
        x=x.grad,
        v0=used["v"].grad if v0 is None else v0.grad,
        i0=i0.grad,
        **{k: p.grad for k, p in params.items()},
    )
    return v.detach(), (v_f.detach(), i_f.detach()), grads


def assert_grads_close(ours: dict, ref: dict, tol: float, context: str = "") -> None:
    """Every gradient in ``ref`` has a counterpart in ``ours`` within ``tol`` (norm-relative)."""
    assert set(ours) == set(ref), f"{context}: gradient keys differ {set(ours) ^ set(ref)}"
    errors = {}
    for key, expected in ref.items():
        assert expected is not None, f"{context}: torch gave no gradient for {key}"
        got = ours[key]
        assert got is not None, f"{context}: numbaspike gave no gradient for {key}"
        exp_arr = expected.detach().numpy()
        got_arr = np.asarray(got)
        assert got_arr.shape == exp_arr.shape, (
            f"{context}: {key} shape {got_arr.shape} != torch {exp_arr.shape}"
        )
        errors[key] = rel_err(got_arr, exp_arr)
    bad = {k: e for k, e in errors.items() if not e <= tol}
    assert not bad, f"{context}: gradients differ from torch beyond {tol:g}: {bad} (all: {errors})"
