r"""A compact PyTorch-autograd implementation of the model (DESIGN.md §1).

Used by :func:`numbaspike.gradcheck.run_gradcheck_suite` with ``torch=True`` as a second,
independent opinion on the hand-written BPTT: here the time loop runs in Python, every step
is a few elementwise tensor operations and the gradients come from ``torch.autograd``. The
only hand-written derivative is the surrogate :math:`s(u)` of the Heaviside step in
:class:`SurrogateSpike`, which is what a surrogate *is*. In smooth mode the spike is the
plain torch expression :math:`F(u)`, so autograd differentiates :math:`F` itself (this also
checks :math:`F' = s`).

Per step, with :math:`a_m = dt\,\tau_{mem}^{-1}`, :math:`a_s = dt\,\tau_{syn}^{-1}`::

    x_t = x[t] + z_prev @ w_rec.T                       (recurrent only)
    i1  = i + x_t
    h   = v + a_m * ((v_leak - v) + i1)
    i   = i1 * (1 - a_s)
    z   = H(h - v_th)   or F(h - v_th) when smooth
    v   = (1 - z) * h + z * v_reset                     reset="zero"
    v   = h - z * (v_th - v_reset)                      reset="subtract"

``detach_reset`` detaches ``z`` in the reset term only. The leaky integrator is the same
without spike and reset; its output is ``v``.

This module imports :mod:`torch` at import time; import it lazily
(``numbaspike.gradcheck`` does) so that numbaspike itself never needs PyTorch.
"""

from __future__ import annotations

import math

import torch

from .params import LIFParameters, LIParameters

__all__ = [
    "SurrogateSpike",
    "surrogate_derivative",
    "smooth_spike",
    "spike",
    "lif_forward",
    "li_forward",
    "network_forward",
]


def surrogate_derivative(name: str, u: torch.Tensor, alpha: float) -> torch.Tensor:
    """The surrogate derivative :math:`s(u)` of the DESIGN.md table, as a torch expression."""
    if name in ("superspike", "fast_sigmoid"):
        return 1.0 / (alpha * u.abs() + 1.0) ** 2
    if name == "sigmoid":
        sig = torch.sigmoid(alpha * u)
        return alpha * sig * (1.0 - sig)
    if name == "atan":
        return (0.5 * alpha) / (1.0 + (0.5 * math.pi * alpha * u) ** 2)
    if name == "tanh":
        return 1.0 - torch.tanh(alpha * u) ** 2
    if name == "erfc":
        return (2.0 / math.sqrt(math.pi)) * torch.exp(-((alpha * u) ** 2))
    if name == "triangle":
        return alpha * torch.clamp(1.0 - u.abs(), min=0.0)
    if name == "boxcar":
        return (u.abs() < alpha).to(u.dtype) * (0.5 / alpha)
    raise ValueError(f"unknown surrogate {name!r}")


def smooth_spike(name: str, u: torch.Tensor, alpha: float) -> torch.Tensor:
    """The smooth forward :math:`F(u)` (differentiated by autograd, so :math:`F'` should be s)."""
    if name in ("superspike", "fast_sigmoid"):
        return u / (1.0 + alpha * u.abs())
    if name == "sigmoid":
        return torch.sigmoid(alpha * u)
    if name == "atan":
        return torch.atan(0.5 * math.pi * alpha * u) / math.pi + 0.5
    if name == "tanh":
        return torch.tanh(alpha * u) / alpha
    if name == "erfc":
        return torch.erf(alpha * u) / alpha
    if name == "triangle":
        inside = alpha * (u - 0.5 * u * u.abs())
        return torch.where(u.abs() < 1.0, inside, 0.5 * alpha * torch.sign(u))
    if name == "boxcar":
        return torch.clamp(0.5 + u / (2.0 * alpha), 0.0, 1.0)
    raise ValueError(f"unknown surrogate {name!r}")


class SurrogateSpike(torch.autograd.Function):
    """Heaviside forward ``(u > 0)``, surrogate backward ``s(u) * grad``."""

    @staticmethod
    def forward(ctx, u, name, alpha):
        ctx.save_for_backward(u)
        ctx.name = name
        ctx.alpha = alpha
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return grad * surrogate_derivative(ctx.name, u, ctx.alpha), None, None


def spike(u: torch.Tensor, name: str, alpha: float, smooth: bool) -> torch.Tensor:
    """:math:`F(u)` if ``smooth`` else :math:`H(u)` with the surrogate backward."""
    if smooth:
        return smooth_spike(name, u, alpha)
    return SurrogateSpike.apply(u, name, alpha)


def _tensor(value, like: torch.Tensor, n: int) -> torch.Tensor:
    """A (N,) tensor in the dtype of ``like`` (tensors are used as given, keeping autograd)."""
    if isinstance(value, torch.Tensor):
        return value.to(like.dtype).expand(n)
    return torch.as_tensor(value, dtype=like.dtype).expand(n)


def lif_forward(
    x: torch.Tensor,
    p: LIFParameters,
    dt: float = 1e-3,
    *,
    w_rec: torch.Tensor | None = None,
    state: tuple | None = None,
    tau_mem_inv=None,
    tau_syn_inv=None,
    v_th=None,
    v_leak=None,
):
    """LIF layer over all steps of ``x`` (T, B, N).

    Parameters
    ----------
    x : torch.Tensor (T, B, N)
    p : LIFParameters
        Supplies the surrogate, alpha, reset, detach_reset, smooth, v_reset and the neuron
        parameters that are not overridden.
    dt : float
    w_rec : torch.Tensor (N, N), optional
        Recurrent weights (Norse ``lif_step``).
    state : tuple (v0, i0) or (v0, i0, z0) of tensors (B, N), optional
        Initial state; default ``v = v_leak``, ``i = 0``, ``z = 0``.
    tau_mem_inv, tau_syn_inv, v_th, v_leak : torch.Tensor (N,), optional
        Tensors (e.g. with ``requires_grad``) replacing the values in ``p``.

    Returns
    -------
    z : torch.Tensor (T, B, N)
    final_state : tuple (v, i, z_last)
    """
    n_steps, batch, n = x.shape
    tmi = _tensor(p.tau_mem_inv if tau_mem_inv is None else tau_mem_inv, x, n)
    tsi = _tensor(p.tau_syn_inv if tau_syn_inv is None else tau_syn_inv, x, n)
    vth = _tensor(p.v_th if v_th is None else v_th, x, n)
    vleak = _tensor(p.v_leak if v_leak is None else v_leak, x, n)
    a_m, a_s = dt * tmi, dt * tsi
    if state is None:
        v = vleak.expand(batch, n)
        i = torch.zeros(batch, n, dtype=x.dtype)
        z = torch.zeros(batch, n, dtype=x.dtype)
    else:
        v, i = state[0], state[1]
        z = state[2] if len(state) > 2 and state[2] is not None else torch.zeros_like(v)
    out = []
    for t in range(n_steps):
        xt = x[t] if w_rec is None else x[t] + z @ w_rec.T
        i1 = i + xt
        h = v + a_m * ((vleak - v) + i1)
        i = i1 * (1.0 - a_s)
        z = spike(h - vth, p.surrogate, p.alpha, p.smooth)
        zr = z.detach() if p.detach_reset else z
        if p.reset == "zero":
            v = (1.0 - zr) * h + zr * p.v_reset
        else:
            v = h - zr * (vth - p.v_reset)
        out.append(z)
    return torch.stack(out), (v, i, z)


def li_forward(
    x: torch.Tensor,
    p: LIParameters,
    dt: float = 1e-3,
    *,
    state: tuple | None = None,
    tau_mem_inv=None,
    tau_syn_inv=None,
    v_leak=None,
):
    """Leaky integrator over all steps of ``x`` (T, B, N); returns ``(v (T, B, N), (v, i))``."""
    n_steps, batch, n = x.shape
    tmi = _tensor(p.tau_mem_inv if tau_mem_inv is None else tau_mem_inv, x, n)
    tsi = _tensor(p.tau_syn_inv if tau_syn_inv is None else tau_syn_inv, x, n)
    vleak = _tensor(p.v_leak if v_leak is None else v_leak, x, n)
    a_m, a_s = dt * tmi, dt * tsi
    if state is None:
        v = vleak.expand(batch, n)
        i = torch.zeros(batch, n, dtype=x.dtype)
    else:
        v, i = state[0], state[1]
    out = []
    for t in range(n_steps):
        i1 = i + x[t]
        v = v + a_m * ((vleak - v) + i1)
        i = i1 * (1.0 - a_s)
        out.append(v)
    return torch.stack(out), (v, i)


def network_forward(
    net, x: torch.Tensor, params: dict, smooth: bool | None = None
) -> torch.Tensor:
    """Run a :class:`numbaspike.network.Sequential` in PyTorch.

    Parameters
    ----------
    net : Sequential
        Supplies the architecture and the fixed neuron parameters.
    x : torch.Tensor (T, B, n_in)
    params : dict of str to torch.Tensor
        Every parameter of ``net`` by its name (``"<layer>.<name>"``), e.g. leaf tensors
        with ``requires_grad=True`` built from ``net.parameters()``.
    smooth : bool, optional
        Force the LIF layers into smooth (True) or step (False) mode; default as configured.

    Returns
    -------
    torch.Tensor
        The output of the last layer.
    """
    from .layers import LI, LIF, LIFRecurrent, Linear

    for k, layer in enumerate(net.layers):
        mine = {
            name.split(".", 1)[1]: v
            for name, v in params.items()
            if name.split(".", 1)[0] == str(k)
        }
        if isinstance(layer, Linear):
            x = x @ mine["weight"].T
            if "bias" in mine:
                x = x + mine["bias"]
        elif isinstance(layer, (LIF, LIFRecurrent)):
            p = layer.p if smooth is None else layer.p.replace(smooth=smooth)
            neuron = {name: mine[name] for name in layer.learn}
            w_rec = mine.get("w_rec") if isinstance(layer, LIFRecurrent) else None
            if w_rec is not None and not layer.autapses:
                w_rec = w_rec * (1.0 - torch.eye(w_rec.shape[0], dtype=w_rec.dtype))
            x, _ = lif_forward(x, p, layer.dt, w_rec=w_rec, **neuron)
        elif isinstance(layer, LI):
            neuron = {name: mine[name] for name in layer.learn}
            x, _ = li_forward(x, layer.p, layer.dt, **neuron)
        else:
            raise TypeError(f"layer {k}: unsupported type {type(layer).__name__}")
    return x
