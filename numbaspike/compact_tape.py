r"""Sparse backward option of the LIF layer: a compact tape and the BPTT that reads it.

``lif_forward(..., sparse_tol=tol)`` (and ``LIF``/``LIFRecurrent(sparse_tol=tol)``) implements
the sparse gradient of Perez-Nieves & Goodman (2021), "Sparse Spiking Gradient Descent",
NeurIPS 34: the surrogate derivative is taken as zero where it is below ``tol`` times its
peak,

.. math::

    \tilde s(u) = s(u)\,[\,s(u) > \text{tol}\cdot s(0)\,] = s(u)\,[\,|u| < u_{band}\,],
    \qquad u = h_t - v_{th},

and the backward pass skips the work of the neuron-steps where :math:`\tilde s = 0`. The
gradient is then the exact gradient of the model with :math:`\tilde s` as surrogate (with
``tol = 0`` and a surrogate of bounded support, ``"triangle"`` or ``"boxcar"``, it is the exact
BPTT gradient). The tape keeps the spikes as bits and the membrane of the active
neuron-steps only (:class:`CompactTape`); see :mod:`numbaspike.kernels.sparse_tape`.

Not available with ``smooth=True`` (the forward output is not binary) nor with gradients of
the neuron parameters (they need every membrane).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from .kernels import sparse_tape
from .surrogates import surrogate_derivative

#: Neuron-steps per chunk of the forward pass: the dense membrane of one chunk is the only
#: (T, B, N)-sized scratch the compact tape needs.
CHUNK_ELEMENTS = 1 << 20


@dataclass(eq=False)
class CompactTape:
    """Spikes as bits and the membranes of the active neuron-steps (rows ``t * B + b``).

    Attributes
    ----------
    bits : ndarray (T, B, ceil(N / 8)) uint8
        Bit ``j % 8`` of byte ``j // 8`` is the spike of neuron ``j``.
    row_ptr : ndarray (T * B + 1,) int64
    cols : ndarray (nnz,) int32
    h : ndarray (nnz,)
        The active neuron-steps of row ``r`` are ``cols[row_ptr[r]:row_ptr[r + 1]]`` with
        membranes ``h[row_ptr[r]:row_ptr[r + 1]]``.
    tol : float
        Relative tolerance: active means :math:`s(h - v_{th}) > \\text{tol}\\cdot s(0)`, i.e.
        ``|h - v_th| < band``.
    band : float
        ``activity_band(surrogate, alpha, tol)``.
    n_neurons : int
        N.
    """

    bits: np.ndarray
    row_ptr: np.ndarray
    cols: np.ndarray
    h: np.ndarray
    tol: float
    band: float
    n_neurons: int

    @property
    def nbytes(self) -> int:
        return self.bits.nbytes + self.row_ptr.nbytes + self.cols.nbytes + self.h.nbytes

    @property
    def active_fraction(self) -> float:
        """Fraction of neuron-steps whose surrogate derivative was kept."""
        n_steps, batch, _ = self.bits.shape
        return self.h.size / max(1, n_steps * batch * self.n_neurons)


def check_sparse_tol(sparse_tol) -> float | None:
    """``None`` or a finite float ``>= 0``; a clear ``ValueError`` otherwise."""
    if sparse_tol is None:
        return None
    if isinstance(sparse_tol, bool) or not isinstance(sparse_tol, int | float | np.floating):
        raise TypeError(f"sparse_tol must be None or a float >= 0, got {sparse_tol!r}")
    tol = float(sparse_tol)
    if not math.isfinite(tol) or tol < 0.0:
        raise ValueError(f"sparse_tol must be a finite float >= 0, got {sparse_tol!r}")
    return tol


def activity_band(surrogate: str, alpha: float, tol: float) -> float:
    """Half-width of the band ``|h - v_th| < band`` where ``s(h - v_th) > tol * s(0)``.

    Computed once per ``(surrogate, alpha, tol)`` (every forward pass asks for it).
    """
    return _band(surrogate, float(alpha), float(tol))


@functools.lru_cache(maxsize=256)
def _band(surrogate: str, alpha: float, tol: float) -> float:
    """:func:`activity_band` for float arguments.

    Every surrogate is even and non-increasing in ``|u|``, so the active set is such a band;
    its edge is found by doubling and bisection on ``s`` in float64 (``inf`` when ``s`` never
    falls to the threshold, e.g. ``tol = 0`` with a surrogate of unbounded support).
    """
    threshold = tol * float(surrogate_derivative(surrogate, 0.0, alpha))

    def below(u: float) -> bool:  # both signs: s is even, its rounding need not be
        return (
            float(np.max(surrogate_derivative(surrogate, np.array([u, -u]), alpha))) <= threshold
        )

    hi = 1.0
    while not below(hi):
        hi *= 2.0
        if hi > 1e30:
            return math.inf
    lo = 0.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if below(mid):
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-15 * hi:
            break
    return hi


def chunk_steps(batch: int, n: int) -> int:
    """Steps per forward chunk: about :data:`CHUNK_ELEMENTS` neuron-steps."""
    return max(1, CHUNK_ELEMENTS // max(1, batch * n))


class CompactTapeBuilder:
    """Collects the compact tape of a forward pass run in chunks of steps."""

    def __init__(self, n_steps, batch, n, surrogate, alpha, tol, v_th, chunk_shape) -> None:
        self.batch, self.n, self.tol, self.v_th = batch, n, tol, v_th
        self.band = activity_band(surrogate, alpha, tol)
        self.bits = np.zeros((n_steps, batch, (n + 7) // 8), np.uint8)
        self.row_ptr = np.zeros(n_steps * batch + 1, np.int64)
        chunk_rows = chunk_shape[0] * batch
        self._masks = np.empty((chunk_rows, (n + 63) // 64), np.uint64)
        self._counts = np.empty(chunk_rows, np.int64)
        self._cols: list[np.ndarray] = []
        self._h: list[np.ndarray] = []

    def add(self, t0: int, h_chunk: np.ndarray) -> None:
        """Record the membranes ``h_chunk`` (Tc, B, N) of steps ``t0 .. t0 + Tc - 1``."""
        n_rows = h_chunk.shape[0] * self.batch
        first = t0 * self.batch
        masks, counts = self._masks[:n_rows], self._counts[:n_rows]
        sparse_tape.pack_rows(h_chunk, self.v_th, self.band, t0, self.bits, masks, counts)
        ends = self.row_ptr[first + 1 : first + n_rows + 1]
        np.cumsum(counts, out=ends)
        ends += self.row_ptr[first]
        nnz = int(self.row_ptr[first + n_rows] - self.row_ptr[first])
        cols = np.empty(nnz, np.int32)
        values = np.empty(nnz, h_chunk.dtype)
        sparse_tape.fill_active(h_chunk, masks, self.row_ptr, first, cols, values)
        self._cols.append(cols)
        self._h.append(values)

    def finish(self) -> CompactTape:
        cols = np.concatenate(self._cols) if len(self._cols) > 1 else self._cols[0]
        h = np.concatenate(self._h) if len(self._h) > 1 else self._h[0]
        return CompactTape(self.bits, self.row_ptr, cols, h, self.tol, self.band, self.n)
