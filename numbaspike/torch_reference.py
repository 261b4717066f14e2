r"""Independent PyTorch-autograd oracle of every neuron model of numbaspike.

Written from the equations only: it imports nothing from numbaspike (no kernels, no
functional API, no parameter classes) and takes plain numbers, arrays and tensors. The time
loop runs in Python, every step is a handful of elementwise tensor operations, and the
gradients come from ``torch.autograd``. The only hand-written derivatives are the surrogate
derivatives ``s(u)`` of the Heaviside step, which is what a surrogate *is*; every model
shares one definition of each surrogate.

Used by the tests (the exact oracle of docs/design.md §4) and by
:func:`numbaspike.gradcheck.run_gradcheck_suite` with ``torch=True`` (``numbaspike gradcheck
--torch``). PyTorch is an optional dependency: import this module lazily; without PyTorch the
import fails with an ImportError that says so.

Models: :func:`lif_forward_torch` and :func:`li_forward_torch` (docs/design.md §1),
:func:`lif_box_forward_torch`, :func:`lsnn_forward_torch` and :func:`lif_refrac_forward_torch`
(:data:`MODELS`, by registry name, with their defaults).

Rounding mirrors an elementwise implementation in the working dtype (the dtype of ``x``) so
that float32 spikes can be compared bit for bit with numbaspike:

* ``a_m = (dt * tau_mem_inv)`` is computed in float64 and then cast to the working dtype,
  likewise ``a_s``; ``decay_s = 1 - a_s`` is computed in the working dtype;
* ``v_leak``, ``v_th`` (float64 leaves) are cast to the working dtype;
* parameters are broadcast to (T, B, N) in float64 before the cast, so autograd sums
  their per-element gradients in float64 (see :class:`_StepParams`).

**LIF** (Norse ``lif_feed_forward_step`` / ``lif_step``), per step, in this order::

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

**LIFBox** (Norse ``lif_box_feed_forward_step``; no synaptic current), per step:

.. math::

    h_t = v_{t-1} + \Delta t\,\tau_m^{-1}\bigl((v_\text{leak} - v_{t-1}) + x_t\bigr),\qquad
    z_t = H(h_t - v_\text{th}),

    v_t = (1 - z_t)\,h_t + z_t\,v_\text{reset} \;\;\text{(zero)}\qquad
    v_t = h_t - z_t\,(v_\text{th} - v_\text{reset}) \;\;\text{(subtract)}.

**LSNN** (adaptive threshold; Bellec et al. 2018, "Long short-term memory and
learning-to-learn in networks of spiking neurons", NeurIPS; Norse ``lsnn_feed_forward_step``
/ ``lsnn_step``), in Norse's order (the input jumps the current *after* the spike, so
``x_t`` first reaches ``v`` at step ``t + 1``):

.. math::

    v^d &= v + \Delta t\,\tau_m^{-1}\bigl((v_\text{leak} - v) + i\bigr),\quad
    i^d = (1 - \Delta t\,\tau_s^{-1})\,i,\quad
    b^d = b + \Delta t\,\tau_a^{-1}(v_\text{th} - b),

    z &= H(v^d - b^d),\quad
    v = (1 - z)\,v^d + z\,v_\text{reset}\ \text{(zero)}\ \text{or}\
        v^d - z\,(b^d - v_\text{reset})\ \text{(subtract)},

    b &= b^d + \beta z,\quad i = i^d + x_t.

**LIFRefrac** (absolute refractory period, e.g. Gerstner, Kistler, Naud & Paninski 2014,
*Neuronal Dynamics*, Cambridge University Press, §1.3; Norse ``lif_refrac_feed_forward_step``
/ ``lif_refrac_step``): the current-based LIF step of docs/design.md §1 gives
:math:`(v^\text{new}, z^\text{new}, i)`; then, with the refractory mask
:math:`m = [\rho > 0]` (a plain step: :math:`\rho` is a discrete counter and carries no
gradient here, whereas Norse passes a surrogate through :math:`m`),

.. math::

    v = (1 - m)\,v^\text{new} + m\,v_{t-1},\quad z = (1 - m)\,z^\text{new},\quad
    \rho = (1 - z)\max(\rho - m, 0) + z\,\rho_\text{reset}.

Recurrent forms add :math:`W_\text{rec} z_{t-1}` to :math:`x_t` (``z_prev @ w_rec.T``, weights
``(N_out, N_in)``), with :math:`z_{t-1}` the previous step's output spikes (masked ones for
LIFRefrac) and :math:`z_{-1}` = ``state["z"]`` (default 0). ``detach_reset`` detaches
:math:`z` where it *changes the state*: the reset (all models) and LSNN's adaptation jump
:math:`\beta z`; the threshold keeps its gradient through the subtracted amount.

Default initial state: ``v = v_leak`` (kept in the graph, so ``v_leak`` also gets the gradient
through ``v0``, as numbaspike's LIF does), ``i = 0``, ``rho = 0``, ``z = 0`` and for LSNN
``b = v_th`` *detached*: a state value whose gradient belongs to the initial state (pass
``state={"b": ...}`` with ``requires_grad`` to read it), not to ``v_th``.
"""

from __future__ import annotations

import math

try:
    import torch
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "numbaspike.torch_reference needs PyTorch, which is not installed (pip install torch)"
    ) from err

__all__ = [
    "SURROGATES",
    "SPIKE_FUNCTIONS",
    "SMOOTH_SPIKE_FUNCTIONS",
    "BandSpike",
    "surrogate_s",
    "surrogate_F",
    "spike_fn",
    "smooth_fn",
    "lif_forward_torch",
    "li_forward_torch",
    "LIF_BOX_DEFAULTS",
    "LSNN_DEFAULTS",
    "LIF_REFRAC_DEFAULTS",
    "lif_box_forward_torch",
    "lsnn_forward_torch",
    "lif_refrac_forward_torch",
    "MODELS",
]

SURROGATES = ("superspike", "sigmoid", "atan", "tanh", "erfc", "triangle", "boxcar")


# --------------------------------------------------------------------------------------
# Surrogate derivatives s(u) and smooth forwards F(u), written as torch expressions.
# --------------------------------------------------------------------------------------


def surrogate_s(name: str, u: torch.Tensor, alpha: float) -> torch.Tensor:
    """The surrogate derivative ``s(u)`` (docs/design.md §1 table)."""
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


# --------------------------------------------------------------------------------------
# Models beyond LIF/LI.
# --------------------------------------------------------------------------------------


#: Norse 1.1.0 ``LIFBoxParameters`` defaults.
LIF_BOX_DEFAULTS = {"tau_mem_inv": 100.0, "v_leak": 0.0, "v_th": 1.0, "v_reset": 0.0}
#: Norse 1.1.0 ``LSNNParameters`` defaults.
LSNN_DEFAULTS = {
    "tau_syn_inv": 200.0,
    "tau_mem_inv": 100.0,
    "tau_adapt_inv": 1.0 / 800.0,
    "v_leak": 0.0,
    "v_th": 1.0,
    "v_reset": 0.0,
    "beta": 1.8,
}
#: Norse 1.1.0 ``LIFRefracParameters`` defaults (``LIFParameters`` plus ``rho_reset``).
LIF_REFRAC_DEFAULTS = {
    "tau_syn_inv": 200.0,
    "tau_mem_inv": 100.0,
    "v_leak": 0.0,
    "v_th": 1.0,
    "v_reset": 0.0,
    "rho_reset": 5.0,
}


def _as_float64(value) -> torch.Tensor:
    """A tensor as given (graph kept), or a number/array as float64 (never float32 first)."""
    if isinstance(value, torch.Tensor):
        return value
    return torch.as_tensor(value, dtype=torch.float64)


class _Params:
    """Per-step ``(B, N)`` views of a model's parameters in the working dtype.

    Every parameter is broadcast to ``(T, B, N)`` in float64 and each step casts its own
    slice (as :class:`_StepParams`): the forward values are the same
    at every step, but autograd sums a parameter's per-element gradients in float64.
    """

    def __init__(self, p: dict | None, defaults: dict, shape, dtype, dt: float):
        p = {} if p is None else dict(p)
        unknown = set(p) - set(defaults)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}; known {sorted(defaults)}")
        n = shape[-1]
        self.dtype, self.dt = dtype, dt
        self._wide = {}
        for name, default in defaults.items():
            value = p.get(name, default)
            t = _as_float64(value)
            if t.dim() > 1 or (t.dim() == 1 and t.shape[0] != n):
                raise ValueError(f"parameter {name} must be a scalar or ({n},), got {t.shape}")
            self._wide[name] = t.to(torch.float64).expand(shape)

    def value(self, name: str, t: int) -> torch.Tensor:
        return self._wide[name][t].to(self.dtype)

    def rate(self, name: str, t: int) -> torch.Tensor:
        """``dt * name`` rounded once from float64 into the working dtype."""
        return (self.dt * self._wide[name][t]).to(self.dtype)

    def initial(self, name: str, detach: bool = False) -> torch.Tensor:
        """A (B, N) initial state equal to a parameter (its own graph branch unless detached)."""
        wide = self._wide[name][0]
        return (wide.detach() if detach else wide).to(self.dtype).clone()


def _check(x, surrogate: str, reset: str, state: dict | None, keys: tuple, w_rec) -> None:
    if x.dim() != 3:
        raise ValueError(f"x must be (T, B, N), got shape {tuple(x.shape)}")
    if surrogate not in SPIKE_FUNCTIONS:
        raise ValueError(f"unknown surrogate {surrogate!r}")
    if reset not in ("zero", "subtract"):
        raise ValueError(f"reset must be 'zero' or 'subtract', got {reset!r}")
    allowed = set(keys) | ({"z"} if w_rec is not None else set())
    unknown = set(state or {}) - allowed
    if unknown:
        raise ValueError(
            f"unknown state keys {sorted(unknown)}; this model takes {sorted(allowed)}"
        )


def _state(state: dict | None, key: str, default, batch: int, n: int, dtype) -> torch.Tensor:
    """``state[key]`` (broadcast to (B, N), cast) or ``default()`` if absent."""
    if state is not None and state.get(key) is not None:
        return _as_float64(state[key]).to(dtype).expand(batch, n)
    return default()


def _spike(u: torch.Tensor, surrogate: str, alpha: float, smooth: bool) -> torch.Tensor:
    # Smooth mode differentiates F by autograd: an independent check of the surrogate's s.
    return smooth_fn(surrogate, u, alpha) if smooth else spike_fn(surrogate, u, alpha)


def _reset(reset: str, h, z, threshold, v_reset) -> torch.Tensor:
    if reset == "zero":
        return (1 - z) * h + z * v_reset
    return h - z * (threshold - v_reset)


def _recurrent_input(x_t, z_prev, w) -> torch.Tensor:
    return x_t if w is None else x_t + z_prev @ w.T


def _final(out: dict, z_prev, w) -> dict:
    if w is not None:
        out["z"] = z_prev
    return out


def lif_box_forward_torch(
    x: torch.Tensor,
    p: dict | None = None,
    dt: float = 1e-3,
    w_rec: torch.Tensor | None = None,
    state: dict | None = None,
    surrogate: str = "superspike",
    alpha: float = 100.0,
    reset: str = "zero",
    detach_reset: bool = False,
    smooth: bool = False,
):
    r"""Simulate a LIFBox layer (LIF without synaptic current) with autograd.

    .. math::

        h_t = v_{t-1} + \Delta t\,\tau_m^{-1}\bigl((v_\text{leak} - v_{t-1}) + x_t
              [+ W_\text{rec} z_{t-1}]\bigr),\quad z_t = H(h_t - v_\text{th}),

    then the zero or subtractive reset of the module docstring. Norse 1.1.0:
    ``lif_box_feed_forward_step`` (no detach; Norse has no recurrent LIFBox step).

    Parameters
    ----------
    x : Tensor (T, B, N)
        Input current; its dtype is the working dtype.
    p : dict, optional
        Any of ``tau_mem_inv, v_leak, v_th, v_reset`` (:data:`LIF_BOX_DEFAULTS`), each a
        number or a 0-d / (N,) tensor (``requires_grad`` allowed).
    dt : float
        Time step.
    w_rec : Tensor (N, N), optional
        Recurrent weights ``(N_out, N_in)``; makes the layer recurrent.
    state : dict, optional
        Initial ``v`` (default ``v_leak``) and, recurrent only, ``z`` (default 0); each
        broadcastable to (B, N).
    surrogate, alpha : str, float
        Surrogate derivative of the spike (backward), or its ``F`` (``smooth``).
    reset : {"zero", "subtract"}
    detach_reset : bool
        Stop the gradient through ``z`` in the reset.
    smooth : bool
        Use ``z = F(h - v_th)`` in the forward.

    Returns
    -------
    z : Tensor (T, B, N)
    final_state : dict
        ``v`` and, recurrent only, ``z``, each (B, N).
    """
    _check(x, surrogate, reset, state, ("v",), w_rec)
    dtype = x.dtype
    n_steps, batch, n = x.shape
    prm = _Params(p, LIF_BOX_DEFAULTS, x.shape, dtype, dt)
    w = None if w_rec is None else w_rec.to(dtype)
    v = _state(state, "v", lambda: prm.initial("v_leak"), batch, n, dtype)
    z_prev = _state(state, "z", lambda: torch.zeros(batch, n, dtype=dtype), batch, n, dtype)
    spikes = []
    for t in range(n_steps):
        x_t = _recurrent_input(x[t], z_prev, w)
        v_th = prm.value("v_th", t)
        h = v + prm.rate("tau_mem_inv", t) * ((prm.value("v_leak", t) - v) + x_t)
        z = _spike(h - v_th, surrogate, alpha, smooth)
        z_r = z.detach() if detach_reset else z
        v = _reset(reset, h, z_r, v_th, prm.value("v_reset", t))
        spikes.append(z)
        z_prev = z
    return torch.stack(spikes), _final({"v": v}, z_prev, w)


def lsnn_forward_torch(
    x: torch.Tensor,
    p: dict | None = None,
    dt: float = 1e-3,
    w_rec: torch.Tensor | None = None,
    state: dict | None = None,
    surrogate: str = "superspike",
    alpha: float = 100.0,
    reset: str = "zero",
    detach_reset: bool = False,
    smooth: bool = False,
):
    r"""Simulate an LSNN layer (LIF with adaptive threshold) with autograd.

    Per step, in Norse's order (Bellec et al. 2018, NeurIPS)::

        v_d = v + a_m * ((v_leak - v) + i)        a_m = dt * tau_mem_inv
        i_d = i * (1 - a_s)                       a_s = dt * tau_syn_inv
        b_d = b + a_a * (v_th - b)                a_a = dt * tau_adapt_inv
        z   = H(v_d - b_d)                        (or F(v_d - b_d) when smooth)
        v   = (1 - z) * v_d + z * v_reset         reset="zero"
        v   = v_d - z * (b_d - v_reset)           reset="subtract": the threshold crossed
        b   = b_d + beta * z
        i   = i_d + x_t [+ z_prev @ w_rec.T]

    .. math::

        z_t = H(v^d_t - b^d_t),\qquad b_t = b^d_t + \beta z_t,\qquad
        i_t = (1 - \Delta t\,\tau_s^{-1})\,i_{t-1} + x_t + W_\text{rec} z_{t-1}.

    Norse 1.1.0: ``lsnn_feed_forward_step`` is ``detach_reset=False``, the recurrent
    ``lsnn_step`` is ``detach_reset=True`` (it detaches ``z`` in the reset and in
    ``beta * z``); Norse has the zero reset only.

    Parameters
    ----------
    x : Tensor (T, B, N)
        Input current.
    p : dict, optional
        Any of :data:`LSNN_DEFAULTS` (``tau_syn_inv, tau_mem_inv, tau_adapt_inv, v_leak,
        v_th, v_reset, beta``), numbers or 0-d / (N,) tensors.
    dt, w_rec, surrogate, alpha, reset, smooth
        As in :func:`lif_box_forward_torch`.
    state : dict, optional
        Initial ``v`` (default ``v_leak``), ``i`` (0), ``b`` (``v_th``, detached) and,
        recurrent only, ``z`` (0).
    detach_reset : bool
        Stop the gradient through ``z`` in the reset and in the adaptation jump.

    Returns
    -------
    z : Tensor (T, B, N)
    final_state : dict
        ``v, i, b`` and, recurrent only, ``z``.
    """
    _check(x, surrogate, reset, state, ("v", "i", "b"), w_rec)
    dtype = x.dtype
    n_steps, batch, n = x.shape
    prm = _Params(p, LSNN_DEFAULTS, x.shape, dtype, dt)
    w = None if w_rec is None else w_rec.to(dtype)
    zeros = lambda: torch.zeros(batch, n, dtype=dtype)  # noqa: E731
    v = _state(state, "v", lambda: prm.initial("v_leak"), batch, n, dtype)
    i = _state(state, "i", zeros, batch, n, dtype)
    b = _state(state, "b", lambda: prm.initial("v_th", detach=True), batch, n, dtype)
    z_prev = _state(state, "z", zeros, batch, n, dtype)
    spikes = []
    for t in range(n_steps):
        x_t = _recurrent_input(x[t], z_prev, w)
        decay_s = 1 - prm.rate("tau_syn_inv", t)  # in the working dtype
        v_d = v + prm.rate("tau_mem_inv", t) * ((prm.value("v_leak", t) - v) + i)
        i_d = i * decay_s
        b_d = b + prm.rate("tau_adapt_inv", t) * (prm.value("v_th", t) - b)
        z = _spike(v_d - b_d, surrogate, alpha, smooth)
        z_r = z.detach() if detach_reset else z
        v = _reset(reset, v_d, z_r, b_d, prm.value("v_reset", t))
        b = b_d + prm.value("beta", t) * z_r
        i = i_d + x_t
        spikes.append(z)
        z_prev = z
    return torch.stack(spikes), _final({"v": v, "i": i, "b": b}, z_prev, w)


def lif_refrac_forward_torch(
    x: torch.Tensor,
    p: dict | None = None,
    dt: float = 1e-3,
    w_rec: torch.Tensor | None = None,
    state: dict | None = None,
    surrogate: str = "superspike",
    alpha: float = 100.0,
    reset: str = "zero",
    detach_reset: bool = False,
    smooth: bool = False,
):
    r"""Simulate a LIF layer with an absolute refractory period with autograd.

    Per step: the LIF step of docs/design.md §1, then the refractory update::

        i1    = i + x_t [+ z_prev @ w_rec.T]
        h     = v + a_m * ((v_leak - v) + i1)
        i     = i1 * (1 - a_s)
        z_new = H(h - v_th)                       (or F(h - v_th) when smooth)
        v_new = reset of h (zero or subtract, z_new detached if detach_reset)
        m     = [rho > 0]                         plain step, no derivative
        v     = (1 - m) * v_new + m * v           hold the membrane while refractory
        z     = (1 - m) * z_new                   the output (and recurrent) spikes
        rho   = (1 - z) * max(rho - m, 0) + z * rho_reset

    .. math::

        m_t = [\rho_{t-1} > 0],\quad z_t = (1 - m_t)\,H(h_t - v_\text{th}),\quad
        \rho_t = (1 - z_t)\max(\rho_{t-1} - m_t, 0) + z_t\,\rho_\text{reset}.

    A spike at step ``t`` therefore silences the neuron for ``rho_reset`` steps (rounded up)
    while its current keeps integrating. Differences from Norse 1.1.0
    (``lif_refrac_feed_forward_step`` / ``lif_refrac_step``): Norse computes
    ``m = threshold(rho, method, alpha)``, whose surrogate backward sends gradient into
    ``rho`` and from there into ``z`` and ``v``; here ``m`` and ``rho`` carry no gradient
    (a counter is not a membrane). The forward values agree.

    Parameters
    ----------
    x : Tensor (T, B, N)
        Input current.
    p : dict, optional
        Any of :data:`LIF_REFRAC_DEFAULTS`; ``rho_reset`` is a value only (no gradient).
    dt, w_rec, surrogate, alpha, reset, smooth
        As in :func:`lif_box_forward_torch`.
    state : dict, optional
        Initial ``v`` (default ``v_leak``), ``i`` (0), ``rho`` (0) and, recurrent only,
        ``z`` (0).
    detach_reset : bool
        Stop the gradient through ``z_new`` in the reset (Norse's ``lif_refrac_step``).

    Returns
    -------
    z : Tensor (T, B, N)
        The masked spikes.
    final_state : dict
        ``v, i, rho`` and, recurrent only, ``z``.
    """
    _check(x, surrogate, reset, state, ("v", "i", "rho"), w_rec)
    dtype = x.dtype
    n_steps, batch, n = x.shape
    prm = _Params(p, LIF_REFRAC_DEFAULTS, x.shape, dtype, dt)
    w = None if w_rec is None else w_rec.to(dtype)
    zeros = lambda: torch.zeros(batch, n, dtype=dtype)  # noqa: E731
    v = _state(state, "v", lambda: prm.initial("v_leak"), batch, n, dtype)
    i = _state(state, "i", zeros, batch, n, dtype)
    rho = _state(state, "rho", zeros, batch, n, dtype).detach()
    z_prev = _state(state, "z", zeros, batch, n, dtype)
    spikes = []
    for t in range(n_steps):
        x_t = _recurrent_input(x[t], z_prev, w)
        v_th = prm.value("v_th", t)
        i1 = i + x_t
        h = v + prm.rate("tau_mem_inv", t) * ((prm.value("v_leak", t) - v) + i1)
        i = i1 * (1 - prm.rate("tau_syn_inv", t))
        z_new = _spike(h - v_th, surrogate, alpha, smooth)
        z_r = z_new.detach() if detach_reset else z_new
        v_new = _reset(reset, h, z_r, v_th, prm.value("v_reset", t))
        m = (rho > 0).to(dtype)  # a constant to autograd: the mask has no derivative
        v = (1 - m) * v_new + m * v
        z = (1 - m) * z_new
        with torch.no_grad():  # rho only ever enters through m, which has no derivative
            zd = z.detach()
            rho_reset = prm.value("rho_reset", t).detach()
            rho = (1 - zd) * torch.clamp(rho - m, min=0) + zd * rho_reset
        spikes.append(z)
        z_prev = z
    return torch.stack(spikes), _final({"v": v, "i": i, "rho": rho}, z_prev, w)


#: Norse 1.1.0 ``LIFParameters`` defaults (the LI readout's are the same, less the spike's).
LIF_DEFAULTS = {
    "tau_syn_inv": 200.0,
    "tau_mem_inv": 100.0,
    "v_leak": 0.0,
    "v_th": 1.0,
    "v_reset": 0.0,
}
LI_DEFAULTS = {"tau_syn_inv": 200.0, "tau_mem_inv": 100.0, "v_leak": 0.0}


def lif_model_forward_torch(
    x: torch.Tensor,
    p: dict | None = None,
    dt: float = 1e-3,
    w_rec: torch.Tensor | None = None,
    state: dict | None = None,
    surrogate: str = "superspike",
    alpha: float = 100.0,
    reset: str = "zero",
    detach_reset: bool = False,
    smooth: bool = False,
):
    """:func:`lif_forward_torch` in the form of the other models' oracles (``p`` and
    ``state`` by name, the final state as a dict)."""
    p = {**LIF_DEFAULTS, **(p or {})}
    state = state or {}
    z, (v, i, z_last) = lif_forward_torch(
        x, p["tau_mem_inv"], p["tau_syn_inv"], p["v_leak"], p["v_th"], p["v_reset"], dt,
        surrogate, alpha, reset, detach_reset, smooth, w_rec=w_rec, v0=state.get("v"),
        i0=state.get("i"), z0=state.get("z"),
    )  # fmt: skip
    return z, _final({"v": v, "i": i}, z_last, w_rec)


def li_model_forward_torch(
    x: torch.Tensor,
    p: dict | None = None,
    dt: float = 1e-3,
    w_rec: torch.Tensor | None = None,
    state: dict | None = None,
    **spike_options,
):
    """:func:`li_forward_torch` in the form of the other models' oracles (the readout emits
    no spikes: ``spike_options`` are ignored and ``w_rec`` must be None)."""
    if w_rec is not None:
        raise ValueError("w_rec: the LI readout has no recurrent form")
    p = {**LI_DEFAULTS, **(p or {})}
    state = state or {}
    v_all, (v, i) = li_forward_torch(
        x, p["tau_mem_inv"], p["tau_syn_inv"], p["v_leak"], dt, state.get("v"), state.get("i")
    )
    return v_all, {"v": v, "i": i}


#: The oracle of each registered model on numbaspike's generic driver, by registry name:
#: ``(forward, defaults)``, ``forward(x, p, dt, w_rec, state, surrogate, alpha, reset,
#: detach_reset, smooth) -> (z, final_state)`` with ``p`` any of ``defaults``' keys.
MODELS = {
    "lif": (lif_model_forward_torch, LIF_DEFAULTS),
    "li": (li_model_forward_torch, LI_DEFAULTS),
    "lif_box": (lif_box_forward_torch, LIF_BOX_DEFAULTS),
    "lsnn": (lsnn_forward_torch, LSNN_DEFAULTS),
    "lif_refrac": (lif_refrac_forward_torch, LIF_REFRAC_DEFAULTS),
}
