r"""Encoders from analog values in [0, 1] to time-major spike trains ``(T, B, F)``.

* :func:`rate_encode` — Bernoulli (Poisson-like) rate code: in every step, input ``f`` of
  sample ``b`` spikes with probability ``max_prob * x[b, f]``, independently.
* :func:`latency_encode` — time-to-first-spike code: at most one spike per input, earlier
  for larger values, none below ``threshold``.

A 1-D input ``x`` of shape (F,) is treated as a batch of one, so the output is always
``(T, B, F)``.
"""

from __future__ import annotations

import numpy as np

from ._checks import (
    SeedLike,
    finite_float,
    make_rng,
    numeric_dtype,
    positive_int,
    unit_interval_values,
)

__all__ = ["rate_encode", "latency_encode", "latency_times"]


def _as_batch(x) -> np.ndarray:
    arr = unit_interval_values("x", x)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"x must have shape (B, F) or (F,), got shape {np.shape(x)}")
    return arr


def rate_encode(
    x,
    steps: int,
    max_prob: float = 0.2,
    seed: SeedLike = None,
    dtype=np.float32,
) -> np.ndarray:
    """Bernoulli rate code.

    In every step ``t`` (independently), ``out[t, b, f] = 1`` with probability
    ``max_prob * x[b, f]``. The expected spike count of an input is therefore
    ``steps * max_prob * x``.

    Parameters
    ----------
    x : array_like, shape (B, F) or (F,)
        Values in [0, 1] (NaN is rejected).
    steps : int
        Number of time steps ``T``.
    max_prob : float
        Spike probability per step of an input at value 1, in (0, 1].
    seed : int, numpy.random.Generator or None
        Randomness; an int makes the result reproducible.
    dtype : numpy dtype
        Output dtype (default float32; bool or integer types also work).

    Returns
    -------
    ndarray, shape (T, B, F), C-contiguous
        Spikes (0/1).
    """
    arr = _as_batch(x)
    steps = positive_int("steps", steps)
    max_prob = finite_float("max_prob", max_prob, 0.0, 1.0, low_open=True)
    dtype = numeric_dtype("dtype", dtype)
    rng = make_rng("seed", seed)
    prob = arr * max_prob
    spikes = rng.random((steps, *arr.shape)) < prob[None]
    return spikes.astype(dtype, copy=False)


def latency_times(
    x,
    steps: int,
    tau: float = 5.0,
    threshold: float = 0.01,
    normalize: bool = True,
    linear: bool = False,
) -> np.ndarray:
    r"""Real-valued spike times of :func:`latency_encode` (``inf`` where no spike).

    Parameters and formulas as in :func:`latency_encode`; returns float64 of the shape of
    ``x`` (``(F,)`` stays ``(F,)``). Times are in steps (not yet binned or cut at ``steps``).
    """
    arr = unit_interval_values("x", x)
    steps = positive_int("steps", steps)
    tau = finite_float("tau", tau, 0.0, low_open=True)
    if linear:
        threshold = finite_float("threshold", threshold, 0.0, 1.0, high_open=True)
    else:
        threshold = finite_float("threshold", threshold, 0.0, 1.0, low_open=True, high_open=True)
    last = float(steps - 1)
    fires = arr >= threshold
    with np.errstate(divide="ignore", invalid="ignore"):
        if linear:
            t = last * (1.0 - arr) / (1.0 - threshold) if normalize else tau * (1.0 - arr)
        elif normalize:
            t = last * np.log(arr) / np.log(threshold)
        else:
            fires &= arr > threshold
            t = tau * np.log(arr / (arr - threshold))
    t = np.where(fires, t, np.inf)
    return np.maximum(t, 0.0)


def latency_encode(
    x,
    steps: int,
    tau: float = 5.0,
    threshold: float = 0.01,
    normalize: bool = True,
    linear: bool = False,
    dtype=np.float32,
) -> np.ndarray:
    r"""Time-to-first-spike (latency) code: one spike per input at most, earlier if larger.

    Each input value :math:`x \in [0, 1]` gets a real spike time :math:`t(x)` in steps and
    spikes once, in bin :math:`\lfloor t \rfloor`, if :math:`t < T` (``T = steps``). Values
    below ``threshold`` never spike. With :math:`\theta` = ``threshold``:

    * ``linear=False, normalize=False``: :math:`t = \tau \ln\frac{x}{x - \theta}` for
      :math:`x > \theta` — the time an RC membrane driven by a constant input :math:`x`
      needs to reach :math:`\theta` (snnTorch's ``spikegen.latency``; :math:`\tau` in steps).
    * ``linear=False, normalize=True`` (default): :math:`t = (T - 1)\,\ln x / \ln\theta` —
      logarithmic latency stretched over the window: :math:`x = 1` fires at step 0,
      :math:`x = \theta` at step :math:`T - 1`, and each halving of :math:`x` delays the spike
      by the same number of steps. (The RC formula diverges at :math:`\theta`, so it cannot
      be stretched to the window; ``tau`` is unused here.)
    * ``linear=True, normalize=False``: :math:`t = \tau (1 - x)` (snnTorch's linear latency).
    * ``linear=True, normalize=True``: :math:`t = (T - 1)\,\frac{1 - x}{1 - \theta}` —
      :math:`x = 1` at step 0, :math:`x = \theta` at step :math:`T - 1`.

    Parameters
    ----------
    x : array_like, shape (B, F) or (F,)
        Values in [0, 1] (NaN is rejected).
    steps : int
        Number of time steps ``T``.
    tau : float
        Time constant in steps (only used with ``normalize=False``).
    threshold : float
        Smallest value that spikes; in (0, 1), or [0, 1) with ``linear=True``.
    normalize : bool
        Stretch the spike times over the whole window (see the list above).
    linear : bool
        Linear instead of logarithmic dependence of the time on ``x``.
    dtype : numpy dtype
        Output dtype (default float32).

    Returns
    -------
    ndarray, shape (T, B, F), C-contiguous
        Spikes (0/1), at most one per input.
    """
    arr = _as_batch(x)
    steps = positive_int("steps", steps)
    dtype = numeric_dtype("dtype", dtype)
    t = latency_times(arr, steps, tau, threshold, normalize, linear)
    # The small tolerance keeps values that land on a bin edge up to rounding in that bin.
    bins = np.floor(t + 1e-9)
    fires = bins < steps
    out = np.zeros((steps, *arr.shape), dtype=dtype)
    b, f = np.nonzero(fires)
    out[bins[b, f].astype(np.int64), b, f] = 1
    return out
