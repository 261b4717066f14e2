"""Checks at the public boundary: clear errors that name the argument, before any kernel runs.

Kernels trust their inputs; these helpers turn whatever the user passed into C-contiguous
float32/float64 arrays of the expected shape (or raise ``TypeError``/``ValueError``).
"""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_float_array(
    name: str,
    value,
    ndim: int | None = None,
    dtype=None,
    shape_doc: str = "",
    check_finite: bool = True,
) -> np.ndarray:
    """Return ``value`` as a C-contiguous float array, checking rank, dtype and finiteness.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    ndim : int, optional
        Required number of dimensions.
    dtype : numpy dtype, optional
        Cast to this dtype (used for arrays that must match ``x``). Without it the array
        must already be float32 or float64.
    shape_doc : str
        The expected shape in words, e.g. ``"(T, B, N)"``.
    """
    if value is None:
        raise TypeError(f"{name} must be an array{' of shape ' + shape_doc if shape_doc else ''}")
    if hasattr(value, "row_ptr") and hasattr(value, "cols"):  # SpikeEvents (not imported here)
        raise TypeError(
            f"{name} is SpikeEvents: only a Linear layer takes events as its input; "
            f"pass a dense array here ({name}.to_dense().reshape(T, B, -1))"
        )
    arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    if arr.dtype.kind not in "fiub" or arr.dtype == np.float16:
        raise TypeError(
            f"{name} must be a float32 or float64 array, got dtype {arr.dtype}"
            if dtype is None
            else f"{name} must be a real numeric array, got dtype {arr.dtype}"
        )
    if dtype is None:
        if arr.dtype not in FLOAT_DTYPES:
            raise TypeError(
                f"{name} must be a float32 or float64 array, got dtype {arr.dtype} "
                f"(convert it with {name}.astype(np.float32))"
            )
    elif arr.dtype != dtype:
        arr = arr.astype(dtype)
    if ndim is not None and arr.ndim != ndim:
        expected = shape_doc or f"{ndim} dimensions"
        raise ValueError(f"{name} must have shape {expected}, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr)
    if check_finite:
        check_all_finite(name, arr)
    return arr


def sum_is_finite(arr: np.ndarray) -> bool:
    """Whether the sum of ``arr`` is finite: one fast reduction that is True for every array
    without NaN or inf (an empty one too), and False for every array with one, or whose
    finite entries overflow the sum (callers then look for the bad entry)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.add.reduce(arr, axis=None)))


#: From this many entries a C-contiguous float array is checked by
#: :func:`~numbaspike.kernels.finite.count_non_finite` (an integer count, 1.6-3x faster
#: than NumPy's float reduction on large arrays) instead of :func:`sum_is_finite`.
COUNT_MIN_SIZE = 1 << 16


def _fast_all_finite(arr: np.ndarray) -> bool:
    """Whether ``arr`` holds no NaN or inf, by the fastest check for its size; False can
    also mean that the float sum overflowed (small arrays only)."""
    if arr.size >= COUNT_MIN_SIZE and arr.flags.c_contiguous and arr.dtype in FLOAT_DTYPES:
        from .kernels.finite import count_non_finite

        return count_non_finite(arr) == 0
    return sum_is_finite(arr)


def all_finite(arr: np.ndarray) -> bool:
    """Whether ``arr`` holds no NaN or inf (one fast pass in the common case)."""
    return arr.size == 0 or _fast_all_finite(arr) or bool(np.isfinite(arr).all())


def check_all_finite(name: str, arr: np.ndarray) -> None:
    """Raise ``ValueError`` if ``arr`` holds NaN or inf (one fast pass in the common case)."""
    if arr.size == 0 or _fast_all_finite(arr):
        return
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(k) for k in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(arr[first]) else "inf"
        raise ValueError(f"{name} contains {kind} (first at index {first})")


def broadcast_state(name: str, value, batch: int, n: int, dtype) -> np.ndarray:
    """A fresh (B, N) array from a scalar, (N,) or (B, N) state value."""
    arr = as_float_array(name, value, dtype=dtype)
    try:
        out = np.broadcast_to(arr, (batch, n))
    except ValueError:
        raise ValueError(
            f"{name} must broadcast to (B, N) = ({batch}, {n}), got shape {arr.shape}"
        ) from None
    return np.array(out, dtype=dtype, order="C")


def neuron_array(name: str, value, n: int, dtype) -> np.ndarray:
    """A per-neuron parameter as an (N,) array of ``dtype`` (a scalar is broadcast)."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 1 and arr.shape[0] != n:
        raise ValueError(f"{name} has shape {arr.shape} but the layer has N={n} neurons")
    # a fresh, writeable array: Numba types read-only arrays differently (a second compile)
    return np.array(np.broadcast_to(arr, (n,)), dtype=dtype, order="C")


def check_positive_int(name: str, value) -> int:
    """An integer > 0 or a ``ValueError`` naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)
