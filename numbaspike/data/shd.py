"""Spiking Heidelberg Digits (SHD) / Spiking Speech Commands (SSC) HDF5 files.

Layout (Cramer et al. 2020, https://zenkelab.org/datasets): one HDF5 file per split with

* ``spikes/times`` — (S,) variable-length float arrays, spike times in seconds,
* ``spikes/units`` — (S,) variable-length integer arrays (uint16), the channel of each spike,
* ``labels`` — (S,) integer class labels (20 classes for SHD, 35 for SSC).

:func:`load_shd` bins the spikes of ``[0, max_time)`` into ``steps`` equal bins and returns a
sparse :class:`~numbaspike.data.SpikeDataset`. :func:`write_shd_like` writes the same layout
(for tests and for converting other event data). Both need ``h5py``
(``pip install numbaspike[data]``). The files are not downloaded here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ._checks import finite_float, labels_array, positive_int, require_module
from .dataset import SpikeDataset

__all__ = ["load_shd", "write_shd_like", "bin_spike_times"]

TIMES_KEY = "spikes/times"
UNITS_KEY = "spikes/units"
LABELS_KEY = "labels"
#: Samples converted at a time (bounds the temporary memory of the conversion).
CHUNK = 512


def bin_spike_times(times, steps: int, max_time: float) -> np.ndarray:
    """Bin indices of spike times: bin ``b`` holds ``[edge_b, edge_{b+1})``.

    Edges are ``edge_b = b * max_time / steps`` computed in float64, so a time exactly on an
    edge lands in the bin that starts there. Times ``>= max_time`` get the index ``steps``
    (callers drop them).

    Parameters
    ----------
    times : array_like of float, shape (E,)
        Non-negative spike times (seconds).
    steps : int
    max_time : float

    Returns
    -------
    ndarray of int64, shape (E,)
        Values in ``[0, steps]``.
    """
    t = np.asarray(times, dtype=np.float64)
    edges = np.arange(steps + 1, dtype=np.float64) * max_time / steps
    bins = np.searchsorted(edges, t, side="right") - 1
    bins[t >= max_time] = steps
    return bins


def _open(h5py, path) -> object:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"SHD/SSC file not found: {path!r}")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"path {path!r} is not a readable HDF5 file ({err})") from None


def _dataset(handle, key: str, path: str):
    try:
        node = handle[key]
    except (KeyError, TypeError, ValueError):
        node = None
    if node is None or not hasattr(node, "shape"):
        raise ValueError(
            f"{path!r} has no dataset {key!r}; expected the SHD/SSC layout with datasets "
            f"{TIMES_KEY!r}, {UNITS_KEY!r} and {LABELS_KEY!r}"
        )
    return node


def _ragged_dtype(h5py, node, key: str, path: str, kinds: str, what: str) -> np.dtype:
    """Element dtype of ``node``, which must be a 1-D dataset of variable-length arrays."""
    expected = f"expected a 1-D dataset of variable-length arrays of {what}, one per sample"
    if h5py.check_string_dtype(node.dtype) is not None:
        raise ValueError(f"{path!r}: dataset {key!r} holds strings; {expected}")
    base = h5py.check_vlen_dtype(node.dtype)
    if base is None:
        raise ValueError(
            f"{path!r}: dataset {key!r} holds flat (non-ragged) data of dtype {node.dtype} "
            f"and shape {node.shape}; {expected}"
        )
    if node.ndim != 1:
        raise ValueError(f"{path!r}: dataset {key!r} has shape {node.shape}; {expected}")
    base = np.dtype(base)
    if base.kind not in kinds:
        raise ValueError(
            f"{path!r}: dataset {key!r} holds variable-length arrays of dtype {base}; {expected}"
        )
    return base


def _check_labels_node(h5py, node, path: str) -> None:
    """``node`` must be a 1-D numeric dataset (the values are checked by ``labels_array``)."""
    if h5py.check_string_dtype(node.dtype) is not None or node.dtype.kind not in "iuf":
        got = "strings" if node.dtype.kind in "OSU" else f"dtype {node.dtype}"
    elif node.ndim != 1:
        got = "a scalar" if node.ndim == 0 else f"shape {node.shape}"
    else:
        return
    raise ValueError(
        f"{path!r}: dataset {LABELS_KEY!r} must be a 1-D array of integer class labels, one "
        f"per sample, got {got}"
    )


def _first_sample(lengths: np.ndarray, start: int, position: int) -> int:
    """Index of the sample that owns event ``position`` of a chunk starting at ``start``."""
    return start + int(np.searchsorted(np.cumsum(lengths), position, side="right"))


def load_shd(
    path: str | os.PathLike,
    steps: int = 100,
    max_time: float = 1.4,
    n_units: int = 700,
    n_classes: int | None = None,
) -> SpikeDataset:
    """Load an SHD or SSC HDF5 file as a binned, sparse spike dataset.

    Parameters
    ----------
    path : str or os.PathLike
        An ``shd_train.h5``/``shd_test.h5``/``ssc_*.h5`` file (uncompressed).
    steps : int
        Number of time bins ``T`` covering ``[0, max_time)``; bin ``b`` holds the spikes
        with ``b * max_time / steps <= t < (b + 1) * max_time / steps``.
    max_time : float
        Length of the window in seconds; later spikes (``t >= max_time``) are dropped.
        1.4 s keeps nearly all of SHD (its recordings are ~1 s long).
    n_units : int
        Number of input channels ``N`` (700 for SHD/SSC); unit indices must be below it.
    n_classes : int, optional
        Default ``labels.max() + 1`` (20 for SHD, 35 for SSC).

    Returns
    -------
    SpikeDataset
        ``S`` samples of ``steps`` bins by ``n_units`` inputs. Several spikes of one
        channel in one bin are kept as repeated events (see ``SpikeDataset.dense``).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Not an HDF5 file, a dataset of the layout is missing or of the wrong kind (flat
        instead of variable-length arrays, strings, scalar labels), the arrays disagree in
        length, a time is negative or not finite, or a unit index is not an integer or
        ``>= n_units``; the message names the file and the dataset.
    ImportError
        h5py is not installed.
    """
    h5py = require_module("h5py", "load_shd")
    steps = positive_int("steps", steps)
    max_time = finite_float("max_time", max_time, 0.0, low_open=True)
    n_units = positive_int("n_units", n_units)
    path_str = os.fspath(path)
    with _open(h5py, path_str) as handle:
        times_ds = _dataset(handle, TIMES_KEY, path_str)
        units_ds = _dataset(handle, UNITS_KEY, path_str)
        labels_ds = _dataset(handle, LABELS_KEY, path_str)
        _ragged_dtype(h5py, times_ds, TIMES_KEY, path_str, "fiu", "spike times (seconds)")
        _ragged_dtype(h5py, units_ds, UNITS_KEY, path_str, "fiu", "integer unit indices")
        _check_labels_node(h5py, labels_ds, path_str)
        n_samples = len(labels_ds)
        if len(times_ds) != n_samples or len(units_ds) != n_samples:
            raise ValueError(
                f"{path_str!r}: {TIMES_KEY!r}, {UNITS_KEY!r} and {LABELS_KEY!r} must have "
                f"the same length, got {len(times_ds)}, {len(units_ds)} and {n_samples}"
            )
        labels, n_classes = labels_array(f"{LABELS_KEY!r} in {path_str!r}", labels_ds[()],
                                         n_classes)  # fmt: skip
        if n_samples == 0:
            raise ValueError(f"{path_str!r} holds no sample")
        counts = np.zeros(n_samples, np.int64)
        time_parts: list[np.ndarray] = []
        unit_parts: list[np.ndarray] = []
        for start in range(0, n_samples, CHUNK):
            stop = min(start + CHUNK, n_samples)
            t_chunk = times_ds[start:stop]
            u_chunk = units_ds[start:stop]
            lengths = np.array([len(t) for t in t_chunk], dtype=np.int64)
            u_lengths = np.array([len(u) for u in u_chunk], dtype=np.int64)
            bad = np.flatnonzero(lengths != u_lengths)
            if bad.size:
                s = start + int(bad[0])
                raise ValueError(
                    f"{path_str!r}: sample {s} has {lengths[bad[0]]} spike times but "
                    f"{u_lengths[bad[0]]} units"
                )
            if lengths.sum() == 0:
                continue
            t = np.concatenate([np.asarray(a, dtype=np.float64) for a in t_chunk])
            u = np.concatenate([np.asarray(a) for a in u_chunk])
            bad_t = ~np.isfinite(t) | (t < 0)
            if bad_t.any():
                k = int(np.argmax(bad_t))
                raise ValueError(
                    f"{path_str!r}: dataset {TIMES_KEY!r} must hold finite spike times >= 0, "
                    f"got {t[k]} (sample {_first_sample(lengths, start, k)})"
                )
            if u.dtype.kind == "f":
                bad_u = ~np.isfinite(u) | (u != np.round(u))
                if bad_u.any():
                    k = int(np.argmax(bad_u))
                    raise ValueError(
                        f"{path_str!r}: dataset {UNITS_KEY!r} must hold integer unit indices, "
                        f"got {u[k]} (sample {_first_sample(lengths, start, k)})"
                    )
            if u.min() < 0 or u.max() >= n_units:
                raise ValueError(
                    f"{path_str!r}: dataset {UNITS_KEY!r}: unit indices must lie in "
                    f"[0, n_units) = [0, {n_units}), got min {int(u.min())} and max "
                    f"{int(u.max())}; pass a larger n_units"
                )
            u = u.astype(np.int64)
            bins = bin_spike_times(t, steps, max_time)
            keep = bins < steps
            sample = np.repeat(np.arange(start, stop, dtype=np.int64), lengths)
            counts += np.bincount(sample[keep], minlength=n_samples)
            time_parts.append(bins[keep].astype(np.int32))
            unit_parts.append(u[keep].astype(np.int32))
    offsets = np.zeros(n_samples + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    times = np.concatenate(time_parts) if time_parts else np.zeros(0, np.int32)
    units = np.concatenate(unit_parts) if unit_parts else np.zeros(0, np.int32)
    return SpikeDataset._trusted(offsets, times, units, labels, steps, n_units, n_classes)


def write_shd_like(
    path: str | os.PathLike,
    times_list: Sequence,
    units_list: Sequence,
    labels,
    times_dtype=np.float32,
) -> None:
    """Write spike data in the SHD/SSC HDF5 layout (readable by :func:`load_shd`).

    Parameters
    ----------
    path : str or os.PathLike
        File to create (overwritten if it exists).
    times_list : sequence of S float arrays
        Spike times in seconds of each sample.
    units_list : sequence of S integer arrays
        Channel of each spike (stored as uint16), same lengths as ``times_list``.
    labels : array_like of int, shape (S,)
    times_dtype : numpy float dtype
        Storage dtype of the times (float32 by default; the published files use a
        lower-precision float).
    """
    h5py = require_module("h5py", "write_shd_like")
    if len(times_list) != len(units_list):
        raise ValueError(
            f"times_list and units_list must hold one array per sample, got "
            f"{len(times_list)} and {len(units_list)}"
        )
    labels, _ = labels_array("labels", labels, None)
    if labels.shape[0] != len(times_list):
        raise ValueError(
            f"labels must have shape (S,) = ({len(times_list)},), got shape {labels.shape}"
        )
    times_dtype = np.dtype(times_dtype)
    if times_dtype.kind != "f":
        raise TypeError(f"times_dtype must be a float dtype, got {times_dtype}")
    times_arrays, units_arrays = [], []
    for s, (t, u) in enumerate(zip(times_list, units_list, strict=True)):
        t = np.asarray(t, dtype=np.float64)
        u = np.asarray(u)
        if t.ndim != 1 or u.ndim != 1 or t.shape != u.shape:
            raise ValueError(
                f"times_list[{s}] and units_list[{s}] must be 1-D arrays of equal length, "
                f"got shapes {t.shape} and {u.shape}"
            )
        if u.size and (u.dtype.kind not in "iu" or u.min() < 0 or u.max() > 65535):
            raise ValueError(f"units_list[{s}] must hold integers in [0, 65535]")
        times_arrays.append(t.astype(times_dtype))
        units_arrays.append(u.astype(np.uint16))
    with h5py.File(os.fspath(path), "w") as handle:
        spikes = handle.create_group("spikes")
        t_ds = spikes.create_dataset(
            "times", (len(times_arrays),), dtype=h5py.vlen_dtype(times_dtype)
        )
        u_ds = spikes.create_dataset(
            "units", (len(units_arrays),), dtype=h5py.vlen_dtype(np.dtype(np.uint16))
        )
        for s, (t, u) in enumerate(zip(times_arrays, units_arrays, strict=True)):
            t_ds[s] = t
            u_ds[s] = u
        handle.create_dataset(LABELS_KEY, data=labels.astype(np.uint16))
