r"""Where the smooth model is not smooth, and the detached models that finite differences need.

Smooth mode replaces the step by :math:`F` with :math:`F' = s`, but some :math:`F` have kinks
(:data:`numbaspike.surrogates.SURROGATE_KINKS`) and some models keep discrete parts (the
refractory mask of :mod:`numbaspike.models.lif_refrac`). A finite-difference stencil that
moves the argument :math:`u` of the spike function across a kink, or changes a discrete
value, measures the jump, not the gradient; the checkers detect it from the tapes:

* LIF tapes (:class:`~numbaspike.functional.LIFTape`): :math:`u = h - v_{th}`;
* the tapes of the registered models (:class:`~numbaspike.neuron.NeuronTape`): the model's
  :attr:`~numbaspike.models.base.NeuronModel.kink_arguments` and
  :attr:`~numbaspike.models.base.NeuronModel.discrete_signature` hooks.

``detach_reset`` makes the backward pass compute the gradient of the model in which the
spikes of the reset (and of LSNN's threshold jump) are constants. Finite differences need
that model's forward: :func:`lif_replay` for LIF, the model's
:attr:`~numbaspike.models.base.NeuronModel.replay` hook for the others (:func:`replay_of`).
"""

from __future__ import annotations

import math

import numpy as np

from .. import functional as _functional
from ..neuron import NeuronTape
from ..params import LIFParameters
from ..surrogates import SURROGATE_KINKS, surrogate_forward

__all__ = [
    "kink_points",
    "kink_distance",
    "kink_signature",
    "same_signature",
    "lif_replay",
    "replay_of",
    "points_of_replay",
]


def _kinks(p) -> tuple[float, ...]:
    """The kinks of the smooth function ``F`` of ``p``'s surrogate."""
    return tuple(SURROGATE_KINKS[p.surrogate](p.alpha))


def points_of_replay(p, u: np.ndarray, discrete: np.ndarray | None) -> list[tuple]:
    """The kink points (see :func:`kink_points`) of one replayed layer."""
    kinks = _kinks(p)
    return [(u, kinks, discrete)] if kinks or discrete is not None else []


def kink_points(tapes) -> list[tuple[np.ndarray, tuple[float, ...], np.ndarray | None]]:
    """``(u, kinks, discrete)`` for every tape whose forward is not smooth everywhere.

    ``u`` (T, B, N) is the argument of the spike function at every step, ``kinks`` the points
    where the surrogate's ``F`` has a kink, ``discrete`` the model's discrete signature (e.g.
    refractory masks) or None. Tapes without either (LI, smooth ``F``, compact LIF tapes,
    models without a :attr:`~numbaspike.models.base.NeuronModel.kink_arguments` hook) give
    nothing.
    """
    out = []
    for t in tapes:
        if isinstance(t, NeuronTape):
            model = t.model
            hook = getattr(model, "kink_arguments", None)
            signature = getattr(model, "discrete_signature", None)
            discrete = None if signature is None else signature(t)
            kinks = _kinks(t.p) if hook is not None else ()
            if kinks or discrete is not None:
                u = hook(t) if hook is not None else np.zeros(t.tape.shape[1:])
                out.append((u, kinks, discrete))
        elif isinstance(t, _functional.LIFTape) and t.h is not None:  # not compact tapes
            kinks = _kinks(t.p)
            if kinks:
                out.append((t.h - t.coeffs.v_th, kinks, None))
    return out


def kink_distance(points) -> float:
    """Smallest distance of any ``u`` to a kink of its ``F`` (inf if there are no kinks)."""
    best = math.inf
    for u, kinks, _ in points:
        for k in kinks:
            best = min(best, float(np.min(np.abs(u - k))))
    return best


def kink_signature(points) -> list[np.ndarray]:
    """Which side of each kink every ``u`` lies on, and the discrete signatures (to detect a
    stencil that crosses a kink or changes a discrete value)."""
    out = []
    for u, kinks, discrete in points:
        if kinks:
            out.append(np.stack([u > k for k in kinks]))
        if discrete is not None:
            out.append(np.array(discrete, copy=True))
    return out


def same_signature(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    """Whether two signatures of :func:`kink_signature` are equal."""
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def lif_replay(x, p: LIFParameters, dt: float, w_rec=None, state=None, held=None):
    """Smooth-mode LIF forward in NumPy with the spikes of the reset term held at ``held``.

    With ``detach_reset=True`` the backward pass computes the gradient of the model in which
    the reset sees the spikes as constants; this is that model, for finite differences.
    At the point where ``held`` was recorded it reproduces the kernel's forward; with
    ``held=None`` the reset uses the computed spikes (the attached model). The signature is
    that of the :attr:`~numbaspike.models.base.NeuronModel.replay` hook.

    Returns
    -------
    z : ndarray (T, B, N)
    u : ndarray (T, B, N)
        ``h - v_th``.
    final_state : dict
        ``v``, ``i`` and (recurrent) ``z``, each (B, N).
    discrete : None
    """
    n_steps, batch, n = x.shape
    a_m = dt * np.broadcast_to(np.asarray(p.tau_mem_inv, np.float64), (n,))
    decay = 1.0 - dt * np.broadcast_to(np.asarray(p.tau_syn_inv, np.float64), (n,))
    v_leak = np.broadcast_to(np.asarray(p.v_leak, np.float64), (n,))
    v_th = np.broadcast_to(np.asarray(p.v_th, np.float64), (n,))
    state = {} if state is None else state
    v = np.broadcast_to(state.get("v", v_leak), (batch, n)).astype(np.float64)
    i = np.broadcast_to(state.get("i", 0.0), (batch, n)).astype(np.float64)
    z = np.broadcast_to(state.get("z", 0.0), (batch, n)).astype(np.float64)
    zs, us = np.empty((n_steps, batch, n)), np.empty((n_steps, batch, n))
    for t in range(n_steps):
        xt = x[t] if w_rec is None else x[t] + z @ w_rec.T
        i1 = i + xt
        h = v + a_m * ((v_leak - v) + i1)
        i = i1 * decay
        us[t] = h - v_th
        zs[t] = z = surrogate_forward(p.surrogate, us[t], p.alpha)  # the kernels' F
        zr = z if held is None else held[t]
        v = (1.0 - zr) * h + zr * p.v_reset if p.reset == "zero" else h - zr * (v_th - p.v_reset)
    final = {"v": v, "i": i}
    if w_rec is not None:
        final["z"] = z
    return zs, us, final, None


def replay_of(layer):
    """The NumPy replay (``replay(x, p, dt, w_rec, state, held)``) of a layer's model, or
    None: the model's :attr:`~numbaspike.models.base.NeuronModel.replay` hook, or
    :func:`lif_replay` for LIF parameters."""
    model = getattr(layer, "model", None)
    hook = getattr(model, "replay", None)
    if hook is not None:
        return hook
    if isinstance(getattr(layer, "p", None), LIFParameters):
        return lif_replay
    return None
