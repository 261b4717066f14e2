r"""The benchmark networks written the way a PyTorch user writes them.

Same equations as DESIGN.md §1 (Norse's ``lif_feed_forward_step`` / ``lif_step`` /
``li_feed_forward_step``), adapted from ``tests/reference_torch.py`` but stripped of what
only an exactness oracle needs (float64 parameter broadcasting, every surrogate, smooth
mode): scalar neuron parameters, the SuperSpike surrogate, a Python loop over time steps
with a handful of elementwise tensor operations per step, and ``torch.autograd`` for the
backward pass. The only hand-written derivative is the surrogate's, in a custom
``torch.autograd.Function``. This file does not import numbaspike.

The loops take the steps with ``x.unbind(0)``, not ``x[t]``: when ``x`` requires a gradient
(the output of a ``Linear``), each ``x[t]`` adds a ``SelectBackward`` node that builds a
zero tensor of the full ``(T, B, N)`` shape, so the backward pass of ``x[t]`` costs
O(T^2 B N) (measured: 30x slower for T=500, n=512); ``unbind`` stacks the T step gradients
once. Both are common in SNN code; the benchmark uses the fast one.

Per step (``a_m = dt * tau_mem_inv``, ``decay_s = 1 - dt * tau_syn_inv``)::

    x_t = x[t] (+ z_prev @ w_rec.T)        # recurrent only
    i1  = i + x_t
    h   = v + a_m * ((v_leak - v) + i1)
    i   = i1 * decay_s
    z   = SuperSpike(h - v_th)             # Heaviside forward, 1/(alpha|u|+1)^2 backward
    v   = (1 - z) * h + z * v_reset        # reset="zero"
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Neuron", "SuperSpike", "lif_feed_forward", "lif_recurrent", "li_readout"]


@dataclass(frozen=True)
class Neuron:
    """Scalar neuron constants (Norse's defaults), rounded to float32 like numbaspike does:
    ``a_m`` and ``a_s`` computed in float64 then cast, ``decay_s = 1 - a_s`` in float32."""

    dt: float = 1e-3
    tau_syn_inv: float = 200.0
    tau_mem_inv: float = 100.0
    v_leak: float = 0.0
    v_th: float = 1.0
    v_reset: float = 0.0
    alpha: float = 100.0
    detach_reset: bool = False

    @property
    def a_m(self) -> float:
        return float(np.float32(self.dt * self.tau_mem_inv))

    @property
    def decay_s(self) -> float:
        return float(np.float32(1) - np.float32(self.dt * self.tau_syn_inv))


class SuperSpike(torch.autograd.Function):
    """Heaviside step ``u > 0`` with the SuperSpike surrogate ``1 / (alpha |u| + 1)^2``."""

    @staticmethod
    def forward(ctx, u, alpha):
        ctx.save_for_backward(u)
        ctx.alpha = alpha
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return grad / (ctx.alpha * u.abs() + 1.0) ** 2, None


def _lif_loop(x: torch.Tensor, p: Neuron, w_rec: torch.Tensor | None) -> torch.Tensor:
    _, batch, n = x.shape
    a_m, decay_s = p.a_m, p.decay_s
    v = torch.full((batch, n), p.v_leak, dtype=x.dtype)
    i = torch.zeros(batch, n, dtype=x.dtype)
    z = torch.zeros(batch, n, dtype=x.dtype)
    spikes = []
    for x_t in x.unbind(0):
        if w_rec is not None:
            x_t = x_t + z @ w_rec.T
        i1 = i + x_t
        h = v + a_m * ((p.v_leak - v) + i1)
        i = i1 * decay_s
        z = SuperSpike.apply(h - p.v_th, p.alpha)
        z_r = z.detach() if p.detach_reset else z
        v = (1 - z_r) * h + z_r * p.v_reset
        spikes.append(z)
    return torch.stack(spikes)


def lif_feed_forward(x: torch.Tensor, p: Neuron = Neuron()) -> torch.Tensor:
    """Feed-forward LIF layer on currents ``x`` (T, B, N); returns the spikes (T, B, N)."""
    return _lif_loop(x, p, None)


def lif_recurrent(x: torch.Tensor, w_rec: torch.Tensor, p: Neuron = Neuron()) -> torch.Tensor:
    """Recurrent LIF layer: the current jump is ``x[t] + z_{t-1} @ w_rec.T``."""
    return _lif_loop(x, p, w_rec)


def li_readout(x: torch.Tensor, p: Neuron = Neuron()) -> torch.Tensor:
    """Leaky-integrator readout; returns the membrane of every step (T, B, N)."""
    _, batch, n = x.shape
    a_m, decay_s = p.a_m, p.decay_s
    v = torch.full((batch, n), p.v_leak, dtype=x.dtype)
    i = torch.zeros(batch, n, dtype=x.dtype)
    out = []
    for x_t in x.unbind(0):
        i1 = i + x_t
        v = v + a_m * ((p.v_leak - v) + i1)
        i = i1 * decay_s
        out.append(v)
    return torch.stack(out)
