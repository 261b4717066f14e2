r"""Independent plain-NumPy forward oracle for the model of DESIGN.md §1.

Written from the equations only (it does not import :mod:`numbaspike`): a Python loop over
time, every step a handful of elementwise NumPy operations over ``(B, N)``. It is used to
check the values (spikes, membrane, tape) that the Numba kernels compute, and — with
``reset_z`` — to build the function whose exact derivative ``detach_reset=True`` computes.

Rounding mirrors an elementwise implementation in the working dtype (the dtype of ``x``),
so float64 results agree with numbaspike to ~1e-15 and step-mode float32 spikes agree bit
for bit:

* ``a_m = dt * tau_mem_inv`` and ``a_s = dt * tau_syn_inv`` are computed in float64 and then
  cast to the working dtype; ``decay_s = 1 - a_s`` is computed in the working dtype;
* ``v_leak``, ``v_th``, ``v_reset`` are cast to the working dtype;
* per step, in this order::

      x_t   = x[t] + z_prev @ w_rec.T          (recurrent only)
      i1    = i + x_t
      h     = v + a_m * ((v_leak - v) + i1)
      i     = i1 * decay_s
      u     = h - v_th
      z     = H(u) = (u > 0)     (or F(u) when smooth)
      v     = (1 - z) * h + z * v_reset        reset="zero"
      v     = h - z * (v_th - v_reset)         reset="subtract"

LI readout: ``i1 = i + x_t; v = v + a_m * ((v_leak - v) + i1); i = i1 * decay_s``, output v.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import erf

__all__ = [
    "SURROGATES",
    "surrogate_F",
    "surrogate_s",
    "RefLIFResult",
    "RefLIResult",
    "lif_reference",
    "lif_reference_params",
    "li_reference",
    "li_reference_params",
]

SURROGATES = ("superspike", "sigmoid", "atan", "tanh", "erfc", "triangle", "boxcar")


def _sigmoid(y: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    out = np.empty_like(y)
    pos = y >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-y[pos]))
    e = np.exp(y[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def surrogate_F(name: str, u, alpha: float) -> np.ndarray:
    """The smooth forward ``F(u)`` of DESIGN.md §1 (float64 NumPy, elementwise)."""
    u = np.asarray(u, dtype=np.float64)
    a = float(alpha)
    if name in ("superspike", "fast_sigmoid"):
        return u / (1.0 + a * np.abs(u))
    if name == "sigmoid":
        return _sigmoid(a * u)
    if name == "atan":
        return np.arctan(np.pi / 2 * a * u) / np.pi + 0.5
    if name == "tanh":
        return np.tanh(a * u) / a
    if name == "erfc":
        return erf(a * u) / a
    if name == "triangle":
        # integral of a * max(0, 1 - |u|) with F(0) = 0
        inner = a * (u - 0.5 * u * np.abs(u))
        return np.where(u >= 1.0, 0.5 * a, np.where(u <= -1.0, -0.5 * a, inner))
    if name == "boxcar":
        # integral of 1/(2a) on |u| < a with F(-inf) = 0
        return np.clip(0.5 + 0.5 * u / a, 0.0, 1.0)
    raise ValueError(f"unknown surrogate {name!r}")


def surrogate_s(name: str, u, alpha: float) -> np.ndarray:
    """The surrogate derivative ``s(u)`` of DESIGN.md §1 (float64 NumPy, elementwise)."""
    u = np.asarray(u, dtype=np.float64)
    a = float(alpha)
    if name in ("superspike", "fast_sigmoid"):
        return 1.0 / (a * np.abs(u) + 1.0) ** 2
    if name == "sigmoid":
        sig = _sigmoid(a * u)
        return a * sig * (1.0 - sig)
    if name == "atan":
        return (a / 2) / (1.0 + (np.pi / 2 * a * u) ** 2)
    if name == "tanh":
        return 1.0 - np.tanh(a * u) ** 2
    if name == "erfc":
        return 2.0 / np.sqrt(np.pi) * np.exp(-((a * u) ** 2))
    if name == "triangle":
        return a * np.maximum(0.0, 1.0 - np.abs(u))
    if name == "boxcar":
        return np.where(np.abs(u) < a, 0.5 / a, 0.0)
    raise ValueError(f"unknown surrogate {name!r}")


def _neuron(value, n: int, dtype) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).astype(dtype)


def _state(value, b: int, n: int, dtype) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=dtype), (b, n)).astype(dtype)


@dataclass
class RefLIFResult:
    """Everything the reference LIF run computes, each (T, B, N) unless noted.

    ``z`` output (spikes or F(u)); ``h`` membrane before reset; ``i1`` current after the
    jump; ``v`` membrane after reset; ``i`` current after decay; ``v_final``, ``i_final``,
    ``z_final`` (B, N) the final state.
    """

    z: np.ndarray
    h: np.ndarray
    i1: np.ndarray
    v: np.ndarray
    i: np.ndarray
    v_final: np.ndarray
    i_final: np.ndarray
    z_final: np.ndarray


def lif_reference(
    x,
    *,
    dt: float = 1e-3,
    tau_syn_inv=200.0,
    tau_mem_inv=100.0,
    v_leak=0.0,
    v_th=1.0,
    v_reset: float = 0.0,
    reset: str = "zero",
    smooth: bool = False,
    surrogate: str = "superspike",
    alpha: float = 100.0,
    w_rec=None,
    v0=None,
    i0=None,
    z0=None,
    reset_z=None,
) -> RefLIFResult:
    """Run the LIF layer of DESIGN.md §1 over ``x`` (T, B, N); dtype follows ``x``.

    ``w_rec`` (N, N) makes it recurrent: ``x_t = x[t] + z_{t-1} @ w_rec.T`` with
    ``z_{-1} = z0`` (default 0). Default initial state ``v = v_leak``, ``i = 0``.

    ``reset_z`` (T, B, N), if given, replaces ``z`` *in the reset term only* by these
    constants. Evaluated with ``reset_z`` = the ``z`` of a base point, this is the function
    whose derivative at that base point is what ``detach_reset=True`` computes.
    """
    x = np.asarray(x)
    dtype = x.dtype
    n_steps, b, n = x.shape
    a_m = (dt * np.broadcast_to(np.asarray(tau_mem_inv, np.float64), (n,))).astype(dtype)
    a_s = (dt * np.broadcast_to(np.asarray(tau_syn_inv, np.float64), (n,))).astype(dtype)
    decay_s = dtype.type(1) - a_s
    v_leak_ = _neuron(v_leak, n, dtype)
    v_th_ = _neuron(v_th, n, dtype)
    v_reset_ = dtype.type(v_reset)
    v = _state(v_leak_ if v0 is None else v0, b, n, dtype)
    i = _state(0.0 if i0 is None else i0, b, n, dtype)
    z_prev = _state(0.0 if z0 is None else z0, b, n, dtype)
    w = None if w_rec is None else np.asarray(w_rec, dtype=dtype)
    out = {key: np.empty_like(x) for key in ("z", "h", "i1", "v", "i")}
    for t in range(n_steps):
        x_t = x[t] if w is None else x[t] + z_prev @ w.T
        i1 = i + x_t
        h = v + a_m * ((v_leak_ - v) + i1)
        i = i1 * decay_s
        u = h - v_th_
        if smooth:
            z = surrogate_F(surrogate, u, alpha).astype(dtype)
        else:
            z = (u > 0).astype(dtype)
        zr = z if reset_z is None else np.asarray(reset_z[t], dtype=dtype)
        if reset == "zero":
            if smooth or reset_z is not None:
                v = (1 - zr) * h + zr * v_reset_
            else:
                v = np.where(zr != 0, v_reset_, h)
        elif reset == "subtract":
            v = h - zr * (v_th_ - v_reset_)
        else:
            raise ValueError(f"unknown reset {reset!r}")
        z_prev = z
        for key, val in (("z", z), ("h", h), ("i1", i1), ("v", v), ("i", i)):
            out[key][t] = val
    return RefLIFResult(v_final=v, i_final=i, z_final=z_prev, **out)


@dataclass
class RefLIResult:
    """Reference LI run: ``v`` (T, B, N) the readout, ``i1``, ``i`` (T, B, N), final state."""

    v: np.ndarray
    i1: np.ndarray
    i: np.ndarray
    v_final: np.ndarray
    i_final: np.ndarray


def li_reference(
    x,
    *,
    dt: float = 1e-3,
    tau_syn_inv=200.0,
    tau_mem_inv=100.0,
    v_leak=0.0,
    v0=None,
    i0=None,
) -> RefLIResult:
    """Run the leaky-integrator readout of DESIGN.md §1 over ``x`` (T, B, N)."""
    x = np.asarray(x)
    dtype = x.dtype
    n_steps, b, n = x.shape
    a_m = (dt * np.broadcast_to(np.asarray(tau_mem_inv, np.float64), (n,))).astype(dtype)
    a_s = (dt * np.broadcast_to(np.asarray(tau_syn_inv, np.float64), (n,))).astype(dtype)
    decay_s = dtype.type(1) - a_s
    v_leak_ = _neuron(v_leak, n, dtype)
    v = _state(v_leak_ if v0 is None else v0, b, n, dtype)
    i = _state(0.0 if i0 is None else i0, b, n, dtype)
    out = {key: np.empty_like(x) for key in ("v", "i1", "i")}
    for t in range(n_steps):
        i1 = i + x[t]
        v = v + a_m * ((v_leak_ - v) + i1)
        i = i1 * decay_s
        for key, val in (("v", v), ("i1", i1), ("i", i)):
            out[key][t] = val
    return RefLIResult(v_final=v, i_final=i, **out)


def lif_reference_params(x, p, dt: float = 1e-3, w_rec=None, state=None, reset_z=None):
    """:func:`lif_reference` driven by an ``LIFParameters``-like object and a state tuple."""
    v0 = i0 = z0 = None
    if state is not None:
        v0, i0 = state[0], state[1]
        if len(state) > 2:
            z0 = state[2]
    return lif_reference(
        x,
        dt=dt,
        tau_syn_inv=p.tau_syn_inv,
        tau_mem_inv=p.tau_mem_inv,
        v_leak=p.v_leak,
        v_th=p.v_th,
        v_reset=p.v_reset,
        reset=p.reset,
        smooth=p.smooth,
        surrogate=p.surrogate,
        alpha=p.alpha,
        w_rec=w_rec,
        v0=v0,
        i0=i0,
        z0=z0,
        reset_z=reset_z,
    )


def li_reference_params(x, p, dt: float = 1e-3, state=None):
    """:func:`li_reference` driven by an ``LIParameters``-like object and a state tuple."""
    v0 = i0 = None
    if state is not None:
        v0, i0 = state[0], state[1]
    return li_reference(
        x,
        dt=dt,
        tau_syn_inv=p.tau_syn_inv,
        tau_mem_inv=p.tau_mem_inv,
        v_leak=p.v_leak,
        v0=v0,
        i0=i0,
    )
