"""The spike-event list: the non-zero entries of a (M, n_in) array, row by row (CSR).

:func:`numbaspike.kernels.projection.spike_events` builds it from a dense array; the
event-driven products of :mod:`numbaspike.kernels.projection` and the
:class:`~numbaspike.layers.Linear` layer take it as input
(:meth:`numbaspike.data.SpikeDataset.batch_events` gives one per batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SpikeEvents"]


@dataclass(frozen=True, eq=False)
class SpikeEvents:
    """The non-zero entries of a 2-D array ``x`` (M, n_in), row by row (CSR).

    Attributes
    ----------
    row_ptr : ndarray of int64, shape (M + 1,)
        The events of row ``m`` are ``row_ptr[m]:row_ptr[m + 1]``; ``row_ptr[M]`` is ``nnz``.
    cols : ndarray of int32, shape (nnz,)
        Column (input index) of each event, increasing within a row.
    values : ndarray of ``dtype``, shape (nnz,), or None
        Value of each event; None when every non-zero value is exactly 1 (spikes).
    shape : tuple of int
        ``(M, n_in)``, the shape of ``x``.
    dtype : numpy.dtype
        The dtype of ``x``.
    steps : int or None
        For the events of a time-major batch (T, B, n_in) seen as ``M = T·B`` rows: ``T``
        (row ``t·B + b`` is step ``t`` of sample ``b``). A :class:`~numbaspike.layers.Linear`
        layer takes such events as its input (see
        :meth:`numbaspike.data.SpikeDataset.batch_events`).
    """

    row_ptr: np.ndarray
    cols: np.ndarray
    values: np.ndarray | None
    shape: tuple[int, int]
    dtype: np.dtype
    steps: int | None = None

    @property
    def nnz(self) -> int:
        """Number of events (non-zero entries)."""
        return int(self.cols.shape[0])

    @property
    def density(self) -> float:
        """Fraction of the entries of ``x`` that are events."""
        return self.nnz / max(1, self.shape[0] * self.shape[1])

    def to_dense(self) -> np.ndarray:
        """The dense array (M, n_in) that the events describe (``-0.0`` reads back as ``0.0``)."""
        out = np.zeros(self.shape, self.dtype)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.row_ptr))
        out[rows, self.cols] = 1 if self.values is None else self.values
        return out
