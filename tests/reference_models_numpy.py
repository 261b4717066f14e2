r"""Independent plain-NumPy forward oracles for LIFBox, LSNN and LIFRefrac.

The NumPy twins of ``reference_models_torch.py`` (forward only), written separately from
the same equations so that each checks the other; the module docstring there states the
models (Norse 1.1.0 semantics). Rounding mirrors an elementwise implementation in the
working dtype (the dtype of ``x``): ``a = dt * tau_inv`` in float64 cast to the working
dtype, ``decay = 1 - a_s`` in the working dtype, parameters cast to the working dtype.

Two keyword-only extras serve the kernel and gradient tests:

* ``trace`` (a dict) receives the per-step ``(T, B, N)`` intermediates that a kernel's tape
  or state holds (e.g. the pre-reset membrane ``h``, LSNN's ``b_d``, the refractory mask
  ``m``), so a kernel can be checked value by value;
* ``reset_z`` ``(T, B, N)`` replaces ``z`` by these constants wherever ``detach_reset``
  detaches it (the reset, and LSNN's adaptation jump ``beta * z``). Evaluated with
  ``reset_z`` = the ``z`` of a base point, this is the function whose derivative at that
  point ``detach_reset=True`` computes, which makes the detached gradient checkable by
  finite differences.

``detach_reset`` itself does not change a forward pass; it is accepted so that the NumPy
and torch twins take the same arguments.
"""

from __future__ import annotations

import numpy as np
from reference_numpy import surrogate_F

__all__ = [
    "LIF_BOX_DEFAULTS",
    "LSNN_DEFAULTS",
    "LIF_REFRAC_DEFAULTS",
    "lif_box_forward_numpy",
    "lsnn_forward_numpy",
    "lif_refrac_forward_numpy",
]

# Written out again rather than imported from the torch twin, so that this module does not
# need torch; a test checks that both sets of defaults agree.
LIF_BOX_DEFAULTS = {"tau_mem_inv": 100.0, "v_leak": 0.0, "v_th": 1.0, "v_reset": 0.0}
LSNN_DEFAULTS = {
    "tau_syn_inv": 200.0,
    "tau_mem_inv": 100.0,
    "tau_adapt_inv": 1.0 / 800.0,
    "v_leak": 0.0,
    "v_th": 1.0,
    "v_reset": 0.0,
    "beta": 1.8,
}
LIF_REFRAC_DEFAULTS = {
    "tau_syn_inv": 200.0,
    "tau_mem_inv": 100.0,
    "v_leak": 0.0,
    "v_th": 1.0,
    "v_reset": 0.0,
    "rho_reset": 5.0,
}

_SURROGATES = ("superspike", "fast_sigmoid", "sigmoid", "atan", "tanh", "erfc", "triangle")
_SURROGATES += ("boxcar",)


def _params(p: dict | None, defaults: dict, n: int, dtype) -> dict:
    """Each parameter as an (N,) float64 array (the caller casts to the working dtype)."""
    p = {} if p is None else dict(p)
    unknown = set(p) - set(defaults)
    if unknown:
        raise ValueError(f"unknown parameters {sorted(unknown)}; known {sorted(defaults)}")
    out = {}
    for name, default in defaults.items():
        value = np.asarray(p.get(name, default), dtype=np.float64)
        if value.ndim > 1 or (value.ndim == 1 and value.shape[0] != n):
            raise ValueError(f"parameter {name} must be a scalar or ({n},), got {value.shape}")
        out[name] = np.broadcast_to(value, (n,))
    return out


def _rate(prm: dict, name: str, dt: float, dtype) -> np.ndarray:
    # dt * tau_inv in float64, rounded once into the working dtype (as numbaspike does)
    return (dt * prm[name]).astype(dtype)


def _check(x, surrogate: str, reset: str, state, keys: tuple, w_rec) -> None:
    if x.ndim != 3:
        raise ValueError(f"x must be (T, B, N), got shape {x.shape}")
    if surrogate not in _SURROGATES:
        raise ValueError(f"unknown surrogate {surrogate!r}")
    if reset not in ("zero", "subtract"):
        raise ValueError(f"reset must be 'zero' or 'subtract', got {reset!r}")
    allowed = set(keys) | ({"z"} if w_rec is not None else set())
    unknown = set(state or {}) - allowed
    if unknown:
        raise ValueError(
            f"unknown state keys {sorted(unknown)}; this model takes {sorted(allowed)}"
        )


def _state(state, key: str, default, b: int, n: int, dtype) -> np.ndarray:
    value = default if state is None or state.get(key) is None else state[key]
    return np.broadcast_to(np.asarray(value, dtype=dtype), (b, n)).astype(dtype)


def _spike(u, surrogate: str, alpha: float, smooth: bool, dtype) -> np.ndarray:
    if smooth:
        return surrogate_F(surrogate, u, alpha).astype(dtype)
    return (u > 0).astype(dtype)


def _reset(reset: str, h, z, threshold, v_reset, exact_where: bool) -> np.ndarray:
    if reset == "zero":
        if exact_where:  # binary z: select, so no 0 * inf can appear
            return np.where(z != 0, v_reset, h)
        return (1 - z) * h + z * v_reset
    return h - z * (threshold - v_reset)


def _record(trace: dict | None, t: int, shape, dtype, **values) -> None:
    if trace is None:
        return
    for key, val in values.items():
        if t == 0:
            trace[key] = np.empty(shape, dtype=dtype)
        trace[key][t] = val


def _prepare(x, w_rec):
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    w = None if w_rec is None else np.asarray(w_rec, dtype=x.dtype)
    return x, w


def lif_box_forward_numpy(
    x,
    p: dict | None = None,
    dt: float = 1e-3,
    w_rec=None,
    state: dict | None = None,
    surrogate: str = "superspike",
    alpha: float = 100.0,
    reset: str = "zero",
    detach_reset: bool = False,
    smooth: bool = False,
    *,
    trace: dict | None = None,
    reset_z=None,
):
    r"""Forward pass of a LIFBox layer (no synaptic current; Norse ``lif_box_feed_forward_step``).

    .. math::

        h_t = v_{t-1} + \Delta t\,\tau_m^{-1}\bigl((v_\text{leak} - v_{t-1}) + x_t
              [+ W_\text{rec} z_{t-1}]\bigr),\quad z_t = H(h_t - v_\text{th}),

        v_t = (1 - z_t) h_t + z_t v_\text{reset}\ \text{(zero)}\quad\text{or}\quad
        h_t - z_t (v_\text{th} - v_\text{reset})\ \text{(subtract)}.

    Parameters
    ----------
    x : array (T, B, N)
        Input current; its dtype is the working dtype.
    p : dict, optional
        Any of ``tau_mem_inv, v_leak, v_th, v_reset``; scalars or (N,) arrays.
    dt, w_rec, state, surrogate, alpha, reset, detach_reset, smooth
        As in ``reference_models_torch.lif_box_forward_torch``; ``state`` keys ``v``
        (default ``v_leak``) and, recurrent only, ``z`` (default 0).
    trace : dict, optional
        Receives (T, B, N) arrays ``h`` (pre-reset membrane) and ``v`` (after reset).
    reset_z : array (T, B, N), optional
        Constants replacing ``z`` in the reset term.

    Returns
    -------
    z : ndarray (T, B, N)
    final_state : dict
        ``v`` and, recurrent only, ``z``.
    """
    x, w = _prepare(x, w_rec)
    _check(x, surrogate, reset, state, ("v",), w_rec)
    dtype = x.dtype
    n_steps, b, n = x.shape
    prm = _params(p, LIF_BOX_DEFAULTS, n, dtype)
    a_m = _rate(prm, "tau_mem_inv", dt, dtype)
    v_leak, v_th, v_reset = (prm[k].astype(dtype) for k in ("v_leak", "v_th", "v_reset"))
    v = _state(state, "v", v_leak, b, n, dtype)
    z_prev = _state(state, "z", 0.0, b, n, dtype)
    zs = np.empty_like(x)
    for t in range(n_steps):
        x_t = x[t] if w is None else x[t] + z_prev @ w.T
        h = v + a_m * ((v_leak - v) + x_t)
        z = _spike(h - v_th, surrogate, alpha, smooth, dtype)
        zr = z if reset_z is None else np.asarray(reset_z[t], dtype=dtype)
        v = _reset(reset, h, zr, v_th, v_reset, exact_where=not smooth and reset_z is None)
        zs[t] = z
        z_prev = z
        _record(trace, t, x.shape, dtype, h=h, v=v)
    final = {"v": v}
    if w is not None:
        final["z"] = z_prev
    return zs, final


def lsnn_forward_numpy(
    x,
    p: dict | None = None,
    dt: float = 1e-3,
    w_rec=None,
    state: dict | None = None,
    surrogate: str = "superspike",
    alpha: float = 100.0,
    reset: str = "zero",
    detach_reset: bool = False,
    smooth: bool = False,
    *,
    trace: dict | None = None,
    reset_z=None,
):
    r"""Forward pass of an LSNN layer (adaptive threshold; Bellec et al. 2018, NeurIPS).

    In Norse's order (``lsnn_feed_forward_step`` / ``lsnn_step``):

    .. math::

        v^d &= v + \Delta t\,\tau_m^{-1}\bigl((v_\text{leak} - v) + i\bigr),\quad
        i^d = (1 - \Delta t\,\tau_s^{-1})\, i,\quad
        b^d = b + \Delta t\,\tau_a^{-1}(v_\text{th} - b),

        z &= H(v^d - b^d),\quad
        v = (1 - z) v^d + z v_\text{reset}\ \text{or}\ v^d - z (b^d - v_\text{reset}),

        b &= b^d + \beta z,\quad i = i^d + x_t\ [+ W_\text{rec} z_{t-1}].

    Parameters
    ----------
    x : array (T, B, N)
    p : dict, optional
        Any of ``tau_syn_inv, tau_mem_inv, tau_adapt_inv, v_leak, v_th, v_reset, beta``.
    dt, w_rec, surrogate, alpha, reset, detach_reset, smooth
        As in ``reference_models_torch.lsnn_forward_torch``.
    state : dict, optional
        ``v`` (default ``v_leak``), ``i`` (0), ``b`` (``v_th``), recurrent ``z`` (0).
    trace : dict, optional
        Receives (T, B, N) ``v_d, i_d, b_d`` (decayed, before the spike) and ``v, i, b``.
    reset_z : array (T, B, N), optional
        Constants replacing ``z`` in the reset and in ``beta * z``.

    Returns
    -------
    z : ndarray (T, B, N)
    final_state : dict
        ``v, i, b`` and, recurrent only, ``z``.
    """
    x, w = _prepare(x, w_rec)
    _check(x, surrogate, reset, state, ("v", "i", "b"), w_rec)
    dtype = x.dtype
    n_steps, nb, n = x.shape
    prm = _params(p, LSNN_DEFAULTS, n, dtype)
    a_m = _rate(prm, "tau_mem_inv", dt, dtype)
    decay_s = dtype.type(1) - _rate(prm, "tau_syn_inv", dt, dtype)
    a_a = _rate(prm, "tau_adapt_inv", dt, dtype)
    v_leak, v_th, v_reset, beta = (
        prm[k].astype(dtype) for k in ("v_leak", "v_th", "v_reset", "beta")
    )
    v = _state(state, "v", v_leak, nb, n, dtype)
    i = _state(state, "i", 0.0, nb, n, dtype)
    b = _state(state, "b", v_th, nb, n, dtype)
    z_prev = _state(state, "z", 0.0, nb, n, dtype)
    zs = np.empty_like(x)
    for t in range(n_steps):
        x_t = x[t] if w is None else x[t] + z_prev @ w.T
        v_d = v + a_m * ((v_leak - v) + i)
        i_d = i * decay_s
        b_d = b + a_a * (v_th - b)
        z = _spike(v_d - b_d, surrogate, alpha, smooth, dtype)
        zr = z if reset_z is None else np.asarray(reset_z[t], dtype=dtype)
        v = _reset(reset, v_d, zr, b_d, v_reset, exact_where=not smooth and reset_z is None)
        b = b_d + beta * zr
        i = i_d + x_t
        zs[t] = z
        z_prev = z
        _record(trace, t, x.shape, dtype, v_d=v_d, i_d=i_d, b_d=b_d, v=v, i=i, b=b)
    final = {"v": v, "i": i, "b": b}
    if w is not None:
        final["z"] = z_prev
    return zs, final


def lif_refrac_forward_numpy(
    x,
    p: dict | None = None,
    dt: float = 1e-3,
    w_rec=None,
    state: dict | None = None,
    surrogate: str = "superspike",
    alpha: float = 100.0,
    reset: str = "zero",
    detach_reset: bool = False,
    smooth: bool = False,
    *,
    trace: dict | None = None,
    reset_z=None,
):
    r"""Forward pass of a LIF layer with an absolute refractory period (Norse ``lif_refrac_*``).

    Absolute refractoriness as in Gerstner, Kistler, Naud & Paninski (2014), *Neuronal
    Dynamics*, §1.3: the neuron cannot fire for ``rho_reset`` steps after a spike.

    The LIF step of DESIGN.md §1 gives :math:`(v^\text{new}, z^\text{new}, i)`; then

    .. math::

        m = [\rho > 0],\quad v = (1 - m) v^\text{new} + m\,v,\quad z = (1 - m) z^\text{new},
        \quad \rho = (1 - z)\max(\rho - m, 0) + z\,\rho_\text{reset}.

    Parameters
    ----------
    x : array (T, B, N)
    p : dict, optional
        Any of ``tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, rho_reset``.
    dt, w_rec, surrogate, alpha, reset, detach_reset, smooth
        As in ``reference_models_torch.lif_refrac_forward_torch``.
    state : dict, optional
        ``v`` (default ``v_leak``), ``i`` (0), ``rho`` (0), recurrent ``z`` (0).
    trace : dict, optional
        Receives (T, B, N) ``i1, h, z_new, m`` and ``v, i, rho``.
    reset_z : array (T, B, N), optional
        Constants replacing ``z_new`` in the reset term.

    Returns
    -------
    z : ndarray (T, B, N)
        The masked spikes.
    final_state : dict
        ``v, i, rho`` and, recurrent only, ``z``.
    """
    x, w = _prepare(x, w_rec)
    _check(x, surrogate, reset, state, ("v", "i", "rho"), w_rec)
    dtype = x.dtype
    n_steps, b, n = x.shape
    prm = _params(p, LIF_REFRAC_DEFAULTS, n, dtype)
    a_m = _rate(prm, "tau_mem_inv", dt, dtype)
    decay_s = dtype.type(1) - _rate(prm, "tau_syn_inv", dt, dtype)
    v_leak, v_th, v_reset, rho_reset = (
        prm[k].astype(dtype) for k in ("v_leak", "v_th", "v_reset", "rho_reset")
    )
    v = _state(state, "v", v_leak, b, n, dtype)
    i = _state(state, "i", 0.0, b, n, dtype)
    rho = _state(state, "rho", 0.0, b, n, dtype)
    z_prev = _state(state, "z", 0.0, b, n, dtype)
    zs = np.empty_like(x)
    for t in range(n_steps):
        x_t = x[t] if w is None else x[t] + z_prev @ w.T
        i1 = i + x_t
        h = v + a_m * ((v_leak - v) + i1)
        i = i1 * decay_s
        z_new = _spike(h - v_th, surrogate, alpha, smooth, dtype)
        zr = z_new if reset_z is None else np.asarray(reset_z[t], dtype=dtype)
        v_new = _reset(reset, h, zr, v_th, v_reset, exact_where=not smooth and reset_z is None)
        m = (rho > 0).astype(dtype)
        v = np.where(m != 0, v, v_new)  # m is exactly 0 or 1: select
        z = (1 - m) * z_new
        rho = (1 - z) * np.maximum(rho - m, 0) + z * rho_reset
        zs[t] = z
        z_prev = z
        _record(trace, t, x.shape, dtype, i1=i1, h=h, z_new=z_new, m=m, v=v, i=i, rho=rho)
    final = {"v": v, "i": i, "rho": rho}
    if w is not None:
        final["z"] = z_prev
    return zs, final
