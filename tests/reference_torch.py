r"""Independent PyTorch-autograd oracle for the model of DESIGN.md §1.

Written from the equations only (it does not import :mod:`numbaspike`): the time loop runs
in Python, every step is a handful of elementwise tensor operations, and the gradients
come from ``torch.autograd``. The only hand-written derivatives are the surrogate
derivatives ``s(u)`` of the Heaviside step, which is what a surrogate *is*.

Rounding mirrors an elementwise implementation in the working dtype so that float32
spikes can be compared bit for bit with numbaspike:

* ``a_m = (dt * tau_mem_inv)`` is computed in float64 and then cast to the working dtype,
  likewise ``a_s``; ``decay_s = 1 - a_s`` is computed in the working dtype;
* ``v_leak``, ``v_th`` (float64 leaves) are cast to the working dtype;
* parameters are broadcast to (T, B, N) in float64 before the cast, so autograd sums
  their per-element gradients in float64 (see :class:`_StepParams`);
* per step, in this order::

      x_t   = x[t] + z_prev @ w_rec.T          (recurrent only)
      i1    = i + x_t
      h     = v + a_m * ((v_leak - v) + i1)
      i     = i1 * decay_s
      u     = h - v_th
      z     = H(u)            (or F(u) when smooth)
      v     = (1 - z) * h + z * v_reset        reset="zero"
      v     = h - z * (v_th - v_reset)         reset="subtract"

``detach_reset`` detaches ``z`` in the reset term only (``v_th`` keeps its gradient through
``v_th - v_reset``). Norse's ``lif_feed_forward_step`` corresponds to
``detach_reset=False`` and its recurrent ``lif_step`` to ``detach_reset=True``.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "SURROGATES",
    "SPIKE_FUNCTIONS",
    "SMOOTH_SPIKE_FUNCTIONS",
    "surrogate_s",
    "surrogate_F",
    "spike_fn",
    "smooth_fn",
    "lif_forward_torch",
    "li_forward_torch",
]

SURROGATES = ("superspike", "sigmoid", "atan", "tanh", "erfc", "triangle", "boxcar")


# --------------------------------------------------------------------------------------
# Surrogate derivatives s(u) and smooth forwards F(u), written as torch expressions.
# --------------------------------------------------------------------------------------


def surrogate_s(name: str, u: torch.Tensor, alpha: float) -> torch.Tensor:
    """The surrogate derivative ``s(u)`` (DESIGN.md §1 table)."""
    if name in ("superspike", "fast_sigmoid"):
        return 1.0 / (alpha * u.abs() + 1.0) ** 2
    if name == "sigmoid":
        sig = torch.sigmoid(alpha * u)
        return alpha * sig * (1.0 - sig)
    if name == "atan":
        return (alpha / 2.0) / (1.0 + (math.pi / 2.0 * alpha * u) ** 2)
    if name == "tanh":
        return 1.0 - torch.tanh(alpha * u) ** 2
    if name == "erfc":
        return (2.0 / math.sqrt(math.pi)) * torch.exp(-((alpha * u) ** 2))
    if name == "triangle":
        return alpha * torch.clamp(1.0 - u.abs(), min=0.0)
    if name == "boxcar":
        height = torch.full_like(u, 1.0 / (2.0 * alpha))
        return torch.where(u.abs() < alpha, height, torch.zeros_like(u))
    raise ValueError(f"unknown surrogate {name!r}")


def surrogate_F(name: str, u: torch.Tensor, alpha: float) -> torch.Tensor:
    """The smooth forward ``F(u)`` with ``F' = s`` (plain torch ops: autograd gives ``F'``)."""
    if name in ("superspike", "fast_sigmoid"):
        return u / (1.0 + alpha * u.abs())
    if name == "sigmoid":
        return torch.sigmoid(alpha * u)
    if name == "atan":
        return torch.atan(math.pi / 2.0 * alpha * u) / math.pi + 0.5
    if name == "tanh":
        return torch.tanh(alpha * u) / alpha
    if name == "erfc":
        return torch.erf(alpha * u) / alpha
    if name == "triangle":
        inside = alpha * (u - 0.5 * u * u.abs())
        outside = torch.sign(u) * (0.5 * alpha)
        return torch.where(u.abs() < 1.0, inside, outside)
    if name == "boxcar":
        return torch.clamp(0.5 + u / (2.0 * alpha), 0.0, 1.0)
    raise ValueError(f"unknown surrogate {name!r}")


def _make_spike_function(name: str) -> type[torch.autograd.Function]:
    class Spike(torch.autograd.Function):
        """Heaviside forward ``(u > 0)``; backward ``s(u) * grad``."""

        @staticmethod
        def forward(ctx, u, alpha):
            ctx.save_for_backward(u)
            ctx.alpha = alpha
            return (u > 0).to(u.dtype)

        @staticmethod
        def backward(ctx, grad):
            (u,) = ctx.saved_tensors
            return grad * surrogate_s(name, u, ctx.alpha), None

    Spike.__name__ = Spike.__qualname__ = f"{name.capitalize()}Spike"
    return Spike


class BandSpike(torch.autograd.Function):
    """Heaviside forward; backward ``s(u) * [|u| < band] * grad`` (the sparse backward of
    Perez-Nieves & Goodman 2021: surrogate derivatives outside a band around threshold are 0)."""

    @staticmethod
    def forward(ctx, u, name, alpha, band):
        ctx.save_for_backward(u)
        ctx.name, ctx.alpha, ctx.band = name, alpha, band
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        mask = (u.abs() < ctx.band).to(u.dtype)
        return grad * surrogate_s(ctx.name, u, ctx.alpha) * mask, None, None, None


def _make_smooth_function(name: str) -> type[torch.autograd.Function]:
    class SmoothSpike(torch.autograd.Function):
        """Smooth forward ``F(u)``; backward the explicit ``s(u) * grad``."""

        @staticmethod
        def forward(ctx, u, alpha):
            ctx.save_for_backward(u)
            ctx.alpha = alpha
            return surrogate_F(name, u, alpha)

        @staticmethod
        def backward(ctx, grad):
            (u,) = ctx.saved_tensors
            return grad * surrogate_s(name, u, ctx.alpha), None

    SmoothSpike.__name__ = SmoothSpike.__qualname__ = f"{name.capitalize()}SmoothSpike"
    return SmoothSpike


#: One ``torch.autograd.Function`` per surrogate: Heaviside forward, surrogate backward.
SPIKE_FUNCTIONS = {name: _make_spike_function(name) for name in SURROGATES}
SPIKE_FUNCTIONS["fast_sigmoid"] = SPIKE_FUNCTIONS["superspike"]
#: Smooth variant with the explicit ``s`` as backward (``smooth_fn(..., explicit=False)``
#: differentiates ``F`` with autograd instead).
SMOOTH_SPIKE_FUNCTIONS = {name: _make_smooth_function(name) for name in SURROGATES}
SMOOTH_SPIKE_FUNCTIONS["fast_sigmoid"] = SMOOTH_SPIKE_FUNCTIONS["superspike"]


def spike_fn(name: str, u: torch.Tensor, alpha: float) -> torch.Tensor:
    """Heaviside step of ``u`` with the surrogate ``name`` in the backward pass."""
    return SPIKE_FUNCTIONS[name].apply(u, alpha)


def smooth_fn(name: str, u: torch.Tensor, alpha: float, explicit: bool = False) -> torch.Tensor:
    """``F(u)``; its gradient from autograd (default) or from the explicit ``s(u)``."""
    if explicit:
        return SMOOTH_SPIKE_FUNCTIONS[name].apply(u, alpha)
    return surrogate_F(name, u, alpha)


# --------------------------------------------------------------------------------------
# Neuron dynamics.
# --------------------------------------------------------------------------------------


def _param(value, dtype) -> torch.Tensor:
    """A tensor (or number/array, taken as float64) cast to the working dtype."""
    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(value, dtype=torch.float64)
    return t.to(dtype)


class _StepParams:
    """Per-step (B, N) views of the neuron parameters in the working dtype.

    Each parameter (0-d or (N,), typically a float64 leaf) is broadcast to (T, B, N) in
    float64 and every step casts its own slice to the working dtype. The values are the
    same at every step (``a_m = (dt * tau_mem_inv)`` rounded once from float64, and so on),
    so the forward pass is unchanged; but autograd then sums the per-element parameter
    gradients in float64 instead of reducing each step to a float32 scalar, the way an
    accumulator in float64 would. Without this, a float32 oracle's gradient of a scalar
    parameter that is a cancelling sum (v_th typically) is itself off by ~1e-3.
    """

    def __init__(self, shape, dtype, dt: float, tau_mem_inv, tau_syn_inv, v_leak, v_th=None):
        def wide(value):
            if value is None:
                return None
            t = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
            return t.to(torch.float64).expand(shape)

        self.dtype = dtype
        self.dt = dt
        self._tau_mem_inv = wide(tau_mem_inv)
        self._tau_syn_inv = wide(tau_syn_inv)
        self._v_leak = wide(v_leak)
        self._v_th = wide(v_th)

    def at(self, t: int):
        """``(a_m, decay_s, v_leak, v_th)`` for step ``t``, each (B, N) in the working dtype."""
        a_m = (self.dt * self._tau_mem_inv[t]).to(self.dtype)
        a_s = (self.dt * self._tau_syn_inv[t]).to(self.dtype)
        decay_s = 1 - a_s  # in the working dtype
        v_leak = self._v_leak[t].to(self.dtype)
        v_th = None if self._v_th is None else self._v_th[t].to(self.dtype)
        return a_m, decay_s, v_leak, v_th

    def v_leak_state(self) -> torch.Tensor:
        """The default initial membrane ``v0 = v_leak`` (B, N), its own graph branch."""
        return self._v_leak[0].to(self.dtype).clone()


def lif_forward_torch(
    x: torch.Tensor,
    tau_mem_inv,
    tau_syn_inv,
    v_leak,
    v_th,
    v_reset: float,
    dt: float,
    surrogate: str,
    alpha: float,
    reset: str,
    detach_reset: bool,
    smooth: bool,
    w_rec: torch.Tensor | None = None,
    v0: torch.Tensor | None = None,
    i0: torch.Tensor | None = None,
    z0: torch.Tensor | None = None,
    *,
    explicit_smooth_grad: bool = False,
    initial_state_out: dict | None = None,
    surrogate_band: float | None = None,
):
    """Simulate a (recurrent) LIF layer step by step; autograd gives every gradient.

    Parameters
    ----------
    x : Tensor (T, B, N)
        Input current per step; its dtype is the working dtype.
    tau_mem_inv, tau_syn_inv, v_leak, v_th : Tensor (0-d or (N,)) or number
        Neuron parameters (float64 leaves requiring grad to get their gradients).
    w_rec : Tensor (N, N), optional
        Recurrent weights ``(N_out, N_in)``; the jump is ``x[t] + z_prev @ w_rec.T``.
    v0, i0, z0 : Tensor broadcastable to (B, N), optional
        Initial state; default ``v0 = v_leak`` (so ``v_leak`` also gets the gradient through
        ``v0``), ``i0 = 0``, ``z0 = 0``.
    surrogate_band : float, optional
        Sparse backward: the surrogate derivative is 0 where ``|h - v_th| >= surrogate_band``.
    initial_state_out : dict, optional
        Receives the (B, N) initial-state tensors actually used under keys ``"v"``, ``"i"``,
        ``"z"``; non-leaf ones have ``retain_grad()`` so their ``.grad`` can be read.

    Returns
    -------
    z : Tensor (T, B, N)
        Spikes (or ``F(h - v_th)`` when ``smooth``).
    final_state : tuple (v, i, z)
        State after the last step.
    """
    if reset not in ("zero", "subtract"):
        raise ValueError(f"reset must be 'zero' or 'subtract', got {reset!r}")
    dtype = x.dtype
    n_steps, batch, n = x.shape
    params = _StepParams(x.shape, dtype, dt, tau_mem_inv, tau_syn_inv, v_leak, v_th)
    v_reset_w = torch.as_tensor(v_reset, dtype=torch.float64).to(dtype)

    if v0 is None:
        v = params.v_leak_state()
    else:
        v = _param(v0, dtype).expand(batch, n)
    if i0 is None:
        i = torch.zeros(batch, n, dtype=dtype)
    else:
        i = _param(i0, dtype).expand(batch, n)
    if z0 is None:
        z_prev = torch.zeros(batch, n, dtype=dtype)
    else:
        z_prev = _param(z0, dtype).expand(batch, n)
    if initial_state_out is not None:
        for key, tensor in (("v", v), ("i", i), ("z", z_prev)):
            if tensor.requires_grad and not tensor.is_leaf:
                tensor.retain_grad()
            initial_state_out[key] = tensor

    w = None if w_rec is None else _param(w_rec, dtype)
    spikes = []
    for t in range(n_steps):
        x_t = x[t] if w is None else x[t] + z_prev @ w.T
        a_m, decay_s, v_leak_w, v_th_w = params.at(t)
        i1 = i + x_t
        h = v + a_m * ((v_leak_w - v) + i1)
        i = i1 * decay_s
        u = h - v_th_w
        if smooth:
            z = smooth_fn(surrogate, u, alpha, explicit=explicit_smooth_grad)
        elif surrogate_band is not None:
            z = BandSpike.apply(u, surrogate, alpha, surrogate_band)
        else:
            z = spike_fn(surrogate, u, alpha)
        z_r = z.detach() if detach_reset else z
        if reset == "zero":
            v = (1 - z_r) * h + z_r * v_reset_w
        else:
            v = h - z_r * (v_th_w - v_reset_w)
        spikes.append(z)
        z_prev = z
    return torch.stack(spikes), (v, i, z_prev)


def li_forward_torch(
    x: torch.Tensor,
    tau_mem_inv,
    tau_syn_inv,
    v_leak,
    dt: float,
    v0: torch.Tensor | None = None,
    i0: torch.Tensor | None = None,
    *,
    initial_state_out: dict | None = None,
):
    """Leaky-integrator readout: ``i1 = i + x_t; v = v + a_m((v_leak - v) + i1); i = i1 (1 - a_s)``.

    Returns the membrane of every step (T, B, N) and the final state ``(v, i)``. Defaults
    and rounding as in :func:`lif_forward_torch`.
    """
    dtype = x.dtype
    n_steps, batch, n = x.shape
    params = _StepParams(x.shape, dtype, dt, tau_mem_inv, tau_syn_inv, v_leak)
    v = params.v_leak_state() if v0 is None else _param(v0, dtype).expand(batch, n)
    i = torch.zeros(batch, n, dtype=dtype) if i0 is None else _param(i0, dtype).expand(batch, n)
    if initial_state_out is not None:
        for key, tensor in (("v", v), ("i", i)):
            if tensor.requires_grad and not tensor.is_leaf:
                tensor.retain_grad()
            initial_state_out[key] = tensor
    out = []
    for t in range(n_steps):
        a_m, decay_s, v_leak_w, _ = params.at(t)
        i1 = i + x[t]
        v = v + a_m * ((v_leak_w - v) + i1)
        i = i1 * decay_s
        out.append(v)
    return torch.stack(out), (v, i)
