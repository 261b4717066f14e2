"""Analog input: :class:`CurrentDataset` of real-valued input currents with class labels.

A network whose first layer is a :class:`~numbaspike.layers.Linear` (or a neuron layer) takes
any real input, not only spikes: feeding the currents directly skips a spike encoder. The
dataset stores the currents densely, either per time step ``(S, T, N)`` or as one constant
value per input ``(S, N)`` held for ``steps`` time steps (then ``T`` times smaller), and gives
the same time-major ``(T, B, N)`` batches as :class:`~numbaspike.data.SpikeDataset`.
"""

from __future__ import annotations

import numpy as np

from ..validation import FLOAT_DTYPES, check_all_finite
from ._checks import numeric_dtype, positive_int, sample_labels
from .dataset import IndexLike, LabeledDataset, _readonly

__all__ = ["CurrentDataset"]


class CurrentDataset(LabeledDataset):
    """Real-valued input currents of ``S`` samples with class labels.

    Parameters
    ----------
    currents : array_like of float, shape (S, T, N) or (S, N)
        Input of every sample, time step and input unit; a 2-D array is a constant current
        per sample and input, held for ``steps`` time steps. Finite values of a real
        numeric dtype (integers are converted to float).
    labels : array_like of int, shape (S,)
        Class of each sample, in ``[0, n_classes)``.
    steps : int, optional
        Number of time steps ``T``: required for 2-D ``currents``; for 3-D ones it
        defaults to (and must equal) ``currents.shape[1]``.
    n_classes : int, optional
        Number of classes; default ``labels.max() + 1``.

    Notes
    -----
    The currents are copied and made read-only (float32 and float64 keep their dtype, other
    real dtypes become float64); batches are cast to the dtype asked for, the network's
    in :func:`~numbaspike.train.fit`. Batches are always dense: there are no spike events
    to exploit.

    Examples
    --------
    Two classes told apart by the level of a constant current:

    >>> import numpy as np
    >>> from numbaspike.data import CurrentDataset, iterate_batches
    >>> levels = np.array([[0.2], [0.9], [0.3], [1.1]])  # (S, N) = (4, 1)
    >>> ds = CurrentDataset(levels, [0, 1, 0, 1], steps=20)
    >>> ds
    CurrentDataset(samples=4, steps=20, n_inputs=1, n_classes=2, constant over time)
    >>> x, labels = next(iterate_batches(ds, 2, shuffle=False, dtype=np.float64))
    >>> x.shape, x.dtype, labels.tolist()
    ((20, 2, 1), dtype('float64'), [0, 1])
    """

    def __init__(self, currents, labels, steps: int | None = None, n_classes: int | None = None):
        try:
            arr = np.asarray(currents)
        except ValueError:  # a ragged nested list
            raise ValueError(
                "currents must be a rectangular array of shape (S, T, N) or (S, N)"
            ) from None
        if arr.dtype == object or arr.dtype.kind not in "iuf":
            raise TypeError(
                f"currents must be a real numeric (float) array, got dtype {arr.dtype}"
            )
        if arr.ndim not in (2, 3):
            raise ValueError(
                f"currents must have shape (S, T, N) or (S, N) (constant over time), "
                f"got shape {arr.shape}"
            )
        if arr.shape[0] == 0:
            raise ValueError("currents holds no sample: a CurrentDataset needs at least one")
        positive_int("n_inputs (currents.shape[-1])", arr.shape[-1])
        if arr.ndim == 2:
            if steps is None:
                raise ValueError(
                    "steps is required for constant currents of shape (S, N): the number "
                    "of time steps to hold them for"
                )
            steps = positive_int("steps", steps)
        else:
            positive_int("steps (currents.shape[1])", arr.shape[1])
            if steps is not None and positive_int("steps", steps) != arr.shape[1]:
                raise ValueError(
                    f"steps must equal currents.shape[1] = {arr.shape[1]} for currents of "
                    f"shape (S, T, N), got {steps}"
                )
            steps = arr.shape[1]
        labels, n_classes = sample_labels(labels, arr.shape[0], n_classes)
        store = arr.dtype if arr.dtype in FLOAT_DTYPES else np.dtype(np.float64)
        stored = np.array(arr, dtype=store, order="C")
        check_all_finite("currents", stored)
        self._init(stored, labels, int(steps), n_classes)

    def _init(self, currents: np.ndarray, labels: np.ndarray, steps: int, n_classes: int):
        self._currents = _readonly(currents)
        self._init_common(labels, steps, currents.shape[-1], n_classes)

    @classmethod
    def _trusted(cls, currents, labels, steps, n_classes) -> CurrentDataset:
        """Build without copies or checks (arrays already have the right dtypes and shapes)."""
        out = cls.__new__(cls)
        out._init(currents, labels, steps, n_classes)
        return out

    # ------------------------------------------------------------------ attributes
    @property
    def currents(self) -> np.ndarray:
        """(S, T, N), or (S, N) if constant over time: the stored currents, read-only."""
        return self._currents

    @property
    def constant(self) -> bool:
        """Whether each sample's current is constant over its ``steps`` time steps."""
        return self._currents.ndim == 2

    @property
    def nbytes(self) -> int:
        """Bytes held by the current and label arrays."""
        return self._currents.nbytes + self._labels.nbytes

    def __repr__(self) -> str:
        kind = ", constant over time" if self.constant else ""
        return (
            f"CurrentDataset(samples={len(self)}, steps={self._steps}, "
            f"n_inputs={self._n_inputs}, n_classes={self._n_classes}{kind})"
        )

    # ------------------------------------------------------------------ selection
    def _take(self, idx: np.ndarray) -> CurrentDataset:
        return CurrentDataset._trusted(
            _readonly(self._currents[idx]), self._labels[idx], self._steps, self._n_classes
        )

    def _batch_dtype(self, dtype) -> np.dtype:
        out = numeric_dtype("dtype", dtype)
        if out.kind != "f":
            raise TypeError(f"dtype must be a float dtype for currents, got {out}")
        return out

    def dense(self, indices: IndexLike = None, dtype=np.float32) -> np.ndarray:
        """Time-major currents of the samples ``indices``.

        Parameters
        ----------
        indices : sequence of int, int array, boolean mask (S,) or slice, optional
            Samples to return, in that order; default all.
        dtype : numpy float dtype
            Output dtype; default float32.

        Returns
        -------
        ndarray, shape (T, B, N), C-contiguous
            ``B = len(indices)``, ``T = steps``, ``N = n_inputs``; a constant current is
            repeated at every time step.
        """
        dtype = self._batch_dtype(dtype)
        idx = self._indices(indices)
        out = np.empty((self._steps, idx.shape[0], self._n_inputs), dtype=dtype)
        picked = self._currents[idx]
        out[...] = picked if self.constant else picked.transpose(1, 0, 2)
        return out
