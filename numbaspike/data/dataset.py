"""Labelled datasets: :class:`SpikeDataset`, :func:`train_test_split`, :func:`iterate_batches`.

A dataset holds ``S`` samples, each a set of spike *events* ``(time_bin, unit)`` on a grid of
``steps`` time bins by ``n_inputs`` units, plus one integer label per sample. Events are
stored CSR-like: ``offsets`` (S + 1,) int64 indexes into two flat int32 arrays ``times`` and
``units``, so sample ``s`` owns ``times[offsets[s]:offsets[s+1]]``. An event may repeat
(several spikes of one unit in one bin); :meth:`SpikeDataset.dense` clips to 1 unless asked
to keep the counts. SHD (8 156 samples, 100 bins, 700 units) then needs 8 bytes per spike
instead of the 2.3 GB of a dense float32 array.

Batches are time-major ``(T, B, N)`` float32 and C-contiguous, ready for the functional API.

:class:`LabeledDataset` is the base of :class:`SpikeDataset` and of
:class:`~numbaspike.data.CurrentDataset` (analog input currents): labels, shape, selection,
splitting and batching are shared.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

import numpy as np

from ._checks import (
    SeedLike,
    finite_float,
    labels_array,
    make_rng,
    numeric_dtype,
    positive_int,
    sample_labels,
)

__all__ = ["LabeledDataset", "SpikeDataset", "train_test_split", "iterate_batches"]

IndexLike = None | slice | Sequence[int] | np.ndarray


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


def _event_array(name: str, value, length: int | None = None) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"{name} must have length {length}, got {arr.shape[0]}")
    return arr


class LabeledDataset:
    """Base class: ``S`` labelled samples of ``steps`` time steps by ``n_inputs`` inputs.

    Subclasses store the inputs, set the common fields with :meth:`_init_common` and define
    :meth:`_take` (the samples ``idx`` as a new dataset), :meth:`dense` and :attr:`nbytes`;
    :meth:`_batch` gives what :func:`iterate_batches` yields. Not instantiated directly.
    """

    _labels: np.ndarray
    _steps: int
    _n_inputs: int
    _n_classes: int

    def __init__(self) -> None:
        raise TypeError("LabeledDataset is a base class: build a SpikeDataset or CurrentDataset")

    def _init_common(self, labels: np.ndarray, steps: int, n_inputs: int, n_classes: int) -> None:
        self._labels = _readonly(labels)
        self._steps = steps
        self._n_inputs = n_inputs
        self._n_classes = n_classes

    # ------------------------------------------------------------------ attributes
    def __len__(self) -> int:
        return self._labels.shape[0]

    @property
    def labels(self) -> np.ndarray:
        """(S,) int64, read-only."""
        return self._labels

    @property
    def steps(self) -> int:
        """Number of time steps ``T``."""
        return self._steps

    @property
    def n_inputs(self) -> int:
        """Number of inputs ``N``."""
        return self._n_inputs

    @property
    def n_classes(self) -> int:
        """Number of classes (labels lie in ``[0, n_classes)``)."""
        return self._n_classes

    @property
    def nbytes(self) -> int:
        """Bytes held by the dataset's arrays."""
        raise NotImplementedError

    def class_counts(self) -> np.ndarray:
        """(n_classes,) int64: number of samples of each class."""
        return np.bincount(self._labels, minlength=self._n_classes)

    # ------------------------------------------------------------------ selection
    def _indices(self, indices: IndexLike, name: str = "indices") -> np.ndarray:
        """``indices`` as an int64 array in [0, S) (negative values count from the end)."""
        n = len(self)
        if indices is None:
            return np.arange(n, dtype=np.int64)
        if isinstance(indices, slice):
            return np.arange(n, dtype=np.int64)[indices]
        arr = np.asarray(indices)
        if arr.dtype.kind == "b":
            if arr.shape != (n,):
                raise ValueError(f"a boolean {name} mask must have shape ({n},), got {arr.shape}")
            return np.flatnonzero(arr).astype(np.int64)
        if arr.ndim != 1:
            raise ValueError(
                f"{name} must be a 1-D array of sample indices, got shape {arr.shape}"
            )
        if arr.size == 0:
            return np.zeros(0, np.int64)
        if arr.dtype.kind not in "iu":
            raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
        if arr.min() < -n or arr.max() >= n:
            raise IndexError(
                f"{name} must lie in [-{n}, {n}) for a dataset of {n} samples, "
                f"got min {int(arr.min())} and max {int(arr.max())}"
            )
        return np.where(arr < 0, arr + n, arr)

    def _take(self: _D, idx: np.ndarray) -> _D:
        """A new dataset of the samples ``idx`` (a non-empty int64 array in [0, S))."""
        raise NotImplementedError

    def subset(self: _D, indices: IndexLike) -> _D:
        """A new dataset of the same type holding the samples ``indices`` in that order.

        Parameters
        ----------
        indices : sequence of int, int array, boolean mask (S,) or slice
            At least one sample; repeats are allowed.
        """
        idx = self._indices(indices)
        if idx.shape[0] == 0:
            raise ValueError(
                f"indices selects no sample: a {type(self).__name__} needs at least one"
            )
        return self._take(idx)

    def dense(self, indices: IndexLike = None, dtype=np.float32) -> np.ndarray:
        """Time-major inputs ``(T, B, N)`` of the samples ``indices`` (default all)."""
        raise NotImplementedError

    def _batch_dtype(self, dtype) -> np.dtype:
        """``dtype`` as the dtype of this dataset's batches, or an error naming ``dtype``."""
        return numeric_dtype("dtype", dtype)

    def _batch(self, idx: np.ndarray, dtype: np.dtype, events: bool):
        """The input of a batch of the samples ``idx``, as :func:`iterate_batches` yields it."""
        return self.dense(idx, dtype=dtype)


_D = TypeVar("_D", bound=LabeledDataset)


class SpikeDataset(LabeledDataset):
    """Spike trains of ``S`` samples on a ``steps`` x ``n_inputs`` grid, with class labels.

    Parameters
    ----------
    offsets : array_like of int, shape (S + 1,)
        Non-decreasing, ``offsets[0] == 0`` and ``offsets[-1] == len(times)``; sample ``s``
        owns events ``offsets[s]:offsets[s + 1]``.
    times : array_like of int, shape (E,)
        Time bin of each event, in ``[0, steps)``.
    units : array_like of int, shape (E,)
        Input unit of each event, in ``[0, n_inputs)``.
    labels : array_like of int, shape (S,)
        Class of each sample, in ``[0, n_classes)``.
    steps : int
        Number of time bins ``T``.
    n_inputs : int
        Number of input units ``N``.
    n_classes : int, optional
        Number of classes; default ``labels.max() + 1``.

    Notes
    -----
    The arrays are copied and made read-only, so datasets can share them safely
    (:meth:`subset` gathers new arrays). Build datasets more conveniently with
    :meth:`from_dense` or :meth:`from_events`.
    """

    def __init__(
        self,
        offsets,
        times,
        units,
        labels,
        steps: int,
        n_inputs: int,
        n_classes: int | None = None,
    ) -> None:
        steps = positive_int("steps", steps)
        n_inputs = positive_int("n_inputs", n_inputs)
        labels, n_classes = labels_array("labels", labels, n_classes)
        n_samples = labels.shape[0]
        if n_samples == 0:
            raise ValueError("labels is empty: a SpikeDataset needs at least one sample")
        offsets = _event_array("offsets", offsets, n_samples + 1)
        times = _event_array("times", times)
        units = _event_array("units", units, times.shape[0])
        if offsets[0] != 0 or offsets[-1] != times.shape[0]:
            raise ValueError(
                f"offsets must start at 0 and end at len(times) = {times.shape[0]}, "
                f"got {int(offsets[0])} and {int(offsets[-1])}"
            )
        if (np.diff(offsets) < 0).any():
            raise ValueError("offsets must be non-decreasing")
        if times.size:
            if times.min() < 0 or times.max() >= steps:
                raise ValueError(
                    f"times must lie in [0, steps) = [0, {steps}), "
                    f"got min {int(times.min())} and max {int(times.max())}"
                )
            if units.min() < 0 or units.max() >= n_inputs:
                raise ValueError(
                    f"units must lie in [0, n_inputs) = [0, {n_inputs}), "
                    f"got min {int(units.min())} and max {int(units.max())}"
                )
        self._init(
            np.array(offsets, dtype=np.int64),
            np.array(times, dtype=np.int32),
            np.array(units, dtype=np.int32),
            labels,
            steps,
            n_inputs,
            n_classes,
        )

    def _init(self, offsets, times, units, labels, steps, n_inputs, n_classes) -> None:
        self._offsets = _readonly(offsets)
        self._times = _readonly(times)
        self._units = _readonly(units)
        self._init_common(labels, steps, n_inputs, n_classes)

    @classmethod
    def _trusted(cls, offsets, times, units, labels, steps, n_inputs, n_classes) -> SpikeDataset:
        """Build without copies or checks (arrays already have the right dtypes and ranges)."""
        out = cls.__new__(cls)
        out._init(offsets, times, units, labels, steps, n_inputs, n_classes)
        return out

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_dense(cls, x, labels, n_classes: int | None = None) -> SpikeDataset:
        """Build a dataset from a dense spike array.

        Parameters
        ----------
        x : array_like, shape (S, T, N)
            Sample-major spikes: bool, or non-negative integer counts (ints or integral
            floats). A value ``k`` becomes ``k`` events in that bin.
        labels : array_like of int, shape (S,)
        n_classes : int, optional
            Default ``labels.max() + 1``.

        Returns
        -------
        SpikeDataset
        """
        arr = np.asarray(x)
        if arr.ndim != 3:
            raise ValueError(f"x must have shape (S, T, N), got shape {arr.shape}")
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise TypeError(f"x must be a bool or numeric array, got dtype {arr.dtype}")
        n_samples, steps, n_inputs = arr.shape
        if n_samples == 0:
            raise ValueError("x is empty: a SpikeDataset needs at least one sample")
        positive_int("steps (x.shape[1])", steps)
        positive_int("n_inputs (x.shape[2])", n_inputs)
        labels, n_classes = sample_labels(labels, n_samples, n_classes)
        sample, time, unit = np.nonzero(arr)
        if arr.dtype.kind != "b":
            values = arr[sample, time, unit]
            if arr.dtype.kind == "f" and (
                not np.isfinite(values).all() or (values != np.round(values)).any()
            ):
                raise ValueError("x must hold spike counts (non-negative integers or bools)")
            if (values < 0).any():
                raise ValueError("x must hold spike counts (non-negative integers or bools)")
            counts = values.astype(np.int64)
            if (counts > 1).any():
                sample, time, unit = (np.repeat(a, counts) for a in (sample, time, unit))
        offsets = np.zeros(n_samples + 1, np.int64)
        np.cumsum(np.bincount(sample, minlength=n_samples), out=offsets[1:])
        return cls._trusted(
            offsets,
            time.astype(np.int32),
            unit.astype(np.int32),
            labels,
            int(steps),
            int(n_inputs),
            n_classes,
        )

    @classmethod
    def from_events(
        cls,
        times: Sequence,
        units: Sequence,
        labels,
        steps: int,
        n_inputs: int,
        n_classes: int | None = None,
    ) -> SpikeDataset:
        """Build a dataset from per-sample event lists.

        Parameters
        ----------
        times, units : sequence of S integer arrays
            ``times[s]`` and ``units[s]`` (same length) are the time bins and units of the
            events of sample ``s``.
        labels : array_like of int, shape (S,)
        steps, n_inputs, n_classes : int
            As in :class:`SpikeDataset`.
        """
        if len(times) != len(units):
            raise ValueError(
                f"times and units must hold one array per sample, got {len(times)} and "
                f"{len(units)}"
            )
        time_arrays, unit_arrays = [], []
        for s, (t, u) in enumerate(zip(times, units, strict=True)):
            t, u = np.asarray(t), np.asarray(u)
            if t.ndim != 1 or u.ndim != 1 or t.shape != u.shape:
                raise ValueError(
                    f"times[{s}] and units[{s}] must be 1-D arrays of equal length, got "
                    f"shapes {t.shape} and {u.shape}"
                )
            # an empty list becomes a float array; give it an integer dtype
            time_arrays.append(t if t.size else t.astype(np.int32))
            unit_arrays.append(u if u.size else u.astype(np.int32))
        offsets = np.zeros(len(time_arrays) + 1, np.int64)
        np.cumsum([len(t) for t in time_arrays], out=offsets[1:])
        flat_t = np.concatenate(time_arrays) if time_arrays else np.zeros(0, np.int32)
        flat_u = np.concatenate(unit_arrays) if unit_arrays else np.zeros(0, np.int32)
        return cls(offsets, flat_t, flat_u, labels, steps, n_inputs, n_classes)

    # ------------------------------------------------------------------ attributes
    @property
    def offsets(self) -> np.ndarray:
        """(S + 1,) int64 event offsets, read-only."""
        return self._offsets

    @property
    def times(self) -> np.ndarray:
        """(E,) int32 time bin of every event, read-only."""
        return self._times

    @property
    def units(self) -> np.ndarray:
        """(E,) int32 unit of every event, read-only."""
        return self._units

    @property
    def n_events(self) -> int:
        """Total number of events ``E`` (spikes, counting repeats)."""
        return self._times.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes held by the event, offset and label arrays."""
        return sum(a.nbytes for a in (self._offsets, self._times, self._units, self._labels))

    def events(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(times, units)`` of sample ``index``: two read-only int32 views."""
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an integer, got {type(index).__name__}")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for a dataset of {n} samples")
        index = int(index) % n
        lo, hi = self._offsets[index], self._offsets[index + 1]
        return self._times[lo:hi], self._units[lo:hi]

    def __repr__(self) -> str:
        return (
            f"SpikeDataset(samples={len(self)}, steps={self._steps}, n_inputs={self._n_inputs}, "
            f"n_classes={self._n_classes}, events={self.n_events}, "
            f"{self.nbytes / 2**20:.1f} MiB)"
        )

    # ------------------------------------------------------------------ selection
    def _gather(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New offsets (B + 1,) and the positions (E_b,) of the events of samples ``idx``."""
        starts = self._offsets[idx]
        lengths = self._offsets[idx + 1] - starts
        offsets = np.zeros(idx.shape[0] + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        positions = np.arange(offsets[-1], dtype=np.int64)
        positions += np.repeat(starts - offsets[:-1], lengths)
        return offsets, positions

    def _batch_rows(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The row ``t·B + b`` (int64, a fresh array) of each event of the time-major batch of
        samples ``idx``, and the events' positions in the storage."""
        offsets, positions = self._gather(idx)
        rows = self._times[positions].astype(np.int64)
        rows *= idx.shape[0]
        rows += np.repeat(np.arange(idx.shape[0], dtype=np.int64), np.diff(offsets))
        return rows, positions

    def _take(self, idx: np.ndarray) -> SpikeDataset:
        offsets, positions = self._gather(idx)
        return SpikeDataset._trusted(
            offsets,
            self._times[positions],
            self._units[positions],
            self._labels[idx],
            self._steps,
            self._n_inputs,
            self._n_classes,
        )

    def dense(
        self, indices: IndexLike = None, dtype=np.float32, keep_counts: bool = False
    ) -> np.ndarray:
        """Dense time-major spikes of the samples ``indices``.

        Parameters
        ----------
        indices : sequence of int, int array, boolean mask (S,) or slice, optional
            Samples to return, in that order; default all.
        dtype : numpy dtype
            Output dtype (bool, integer or float); default float32.
        keep_counts : bool
            Return the number of spikes per bin instead of clipping it to 1.

        Returns
        -------
        ndarray, shape (T, B, N), C-contiguous
            ``B = len(indices)``, ``T = steps``, ``N = n_inputs``.
        """
        dtype = numeric_dtype("dtype", dtype)
        if keep_counts and dtype.kind == "b":
            raise ValueError("dtype bool cannot hold spike counts; use keep_counts=False")
        idx = self._indices(indices)
        batch = idx.shape[0]
        out = np.zeros(self._steps * batch * self._n_inputs, dtype=dtype)
        if batch:
            flat, positions = self._batch_rows(idx)
            flat *= self._n_inputs
            flat += self._units[positions]
            if keep_counts:
                np.add.at(out, flat, 1)
            else:
                out[flat] = 1
        return out.reshape(self._steps, batch, self._n_inputs)

    def batch_events(self, indices: IndexLike = None, dtype=np.float32):
        """The spikes of the samples ``indices`` as the events of a time-major batch, for a
        :class:`~numbaspike.layers.Linear` first layer: what :meth:`dense` would return,
        without building it (or scanning it for its spikes in the layer).

        Parameters
        ----------
        indices : sequence of int, int array, boolean mask (S,) or slice, optional
            Samples of the batch, in that order; default all.
        dtype : float32 or float64
            dtype of the layer input the events stand for.

        Returns
        -------
        numbaspike.spike_events.SpikeEvents
            Of shape ``(T·B, N)`` with ``steps = T``: row ``t·B + b`` holds the inputs that
            spiked at step ``t`` of sample ``b`` (several spikes in one bin count once, as
            in :meth:`dense`); ``values`` is None (all spikes are 1).
        """
        from ..kernels.projection import events_from_coordinates
        from ..validation import FLOAT_DTYPES

        dtype = np.dtype(dtype)
        if dtype not in FLOAT_DTYPES:
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        idx = self._indices(indices)
        batch = idx.shape[0]
        if batch == 0:
            raise ValueError("indices selects no sample")
        rows, positions = self._batch_rows(idx)
        return events_from_coordinates(
            rows, self._units[positions], (self._steps * batch, self._n_inputs), dtype,
            steps=self._steps,
        )  # fmt: skip

    def _batch(self, idx: np.ndarray, dtype: np.dtype, events: bool):
        return self.batch_events(idx, dtype) if events else self.dense(idx, dtype=dtype)


# ---------------------------------------------------------------------- splitting and batching
def _check_dataset(dataset: _D) -> _D:
    if not isinstance(dataset, LabeledDataset):
        raise TypeError(
            f"dataset must be a SpikeDataset or CurrentDataset, got {type(dataset).__name__}"
        )
    return dataset


def _round_half_up(value: float) -> int:
    return int(np.floor(value + 0.5))


def train_test_split(
    dataset: _D,
    test_fraction: float = 0.2,
    seed: SeedLike = 0,
    stratify: bool = True,
) -> tuple[_D, _D]:
    """Split a dataset at random into a training and a test part.

    Parameters
    ----------
    dataset : SpikeDataset or CurrentDataset
    test_fraction : float
        Fraction of the samples that go to the test part, in (0, 1).
    seed : int, numpy.random.Generator or None
        The same seed gives the same split.
    stratify : bool
        Split each class separately, so both parts keep the class proportions (each
        class contributes ``round(test_fraction * n_c)`` test samples).

    Returns
    -------
    train, test : same type as ``dataset``
        Samples in their original order; the two parts are disjoint and cover the dataset.
    """
    dataset = _check_dataset(dataset)
    frac = finite_float("test_fraction", test_fraction, 0.0, 1.0, low_open=True, high_open=True)
    rng = make_rng("seed", seed)
    labels = dataset.labels
    test_mask = np.zeros(len(dataset), dtype=bool)
    if stratify:
        for c in range(dataset.n_classes):
            members = np.flatnonzero(labels == c)
            if members.size:
                n_test = _round_half_up(frac * members.size)
                test_mask[rng.permutation(members)[:n_test]] = True
    else:
        n_test = _round_half_up(frac * len(dataset))
        test_mask[rng.permutation(len(dataset))[:n_test]] = True
    n_test = int(test_mask.sum())
    if n_test == 0 or n_test == len(dataset):
        raise ValueError(
            f"test_fraction={frac} leaves {'no test' if n_test == 0 else 'no training'} "
            f"sample out of {len(dataset)}"
        )
    return dataset.subset(~test_mask), dataset.subset(test_mask)


def iterate_batches(
    dataset: LabeledDataset,
    batch_size: int,
    shuffle: bool = True,
    seed: SeedLike = None,
    drop_last: bool = False,
    *,
    dtype=np.float32,
    events: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Iterate once over a dataset in mini-batches (one epoch).

    Parameters
    ----------
    dataset : SpikeDataset or CurrentDataset
    batch_size : int
        Samples per batch (the last one may be smaller unless ``drop_last``).
    shuffle : bool
        Visit the samples in a random order; otherwise in dataset order.
    seed : int, numpy.random.Generator or None
        Order of the samples when shuffling: an int gives the same order every time, a
        Generator is advanced (pass the same one each epoch for fresh orders that are
        reproducible as a whole), None draws fresh entropy.
    drop_last : bool
        Skip the final batch if it has fewer than ``batch_size`` samples.
    dtype : numpy dtype
        dtype of ``x`` (default float32; a float dtype for a CurrentDataset).
    events : bool
        Yield each batch as :meth:`SpikeDataset.batch_events` (for a network whose first
        layer is a :class:`~numbaspike.layers.Linear`) instead of a dense array; a
        SpikeDataset only.

    Yields
    ------
    x : ndarray, shape (T, B, N), C-contiguous, or SpikeEvents
        Time-major inputs: spikes (0/1) of a SpikeDataset, currents of a CurrentDataset.
    labels : ndarray, shape (B,), int64
    """
    dataset = _check_dataset(dataset)
    batch_size = positive_int("batch_size", batch_size)
    dtype = dataset._batch_dtype(dtype)
    if events and not isinstance(dataset, SpikeDataset):
        raise ValueError(
            f"events=True needs a SpikeDataset; a {type(dataset).__name__} gives dense batches"
        )
    order = (
        make_rng("seed", seed).permutation(len(dataset))
        if shuffle
        else np.arange(len(dataset), dtype=np.int64)
    )
    stop = len(order) - len(order) % batch_size if drop_last else len(order)

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, stop, batch_size):
            idx = order[start : start + batch_size]
            yield dataset._batch(idx, dtype, events), dataset.labels[idx].copy()

    return batches()
