"""The array pool: large arrays recycled from one training step to the next.

A training loop allocates the same large arrays every step: each layer's output, its tape,
the gradients flowing back. NumPy takes them from ``malloc``, which for large sizes maps
fresh pages from the operating system (or gives back freed ones, then maps them again);
the first write to each page then takes a page fault. Those faults land inside the kernels
that fill the arrays, and when two threads take them at once they serialise on the
process's memory map, which makes the kernels that fill fresh arrays several times slower.

:func:`empty` hands out such arrays from memory it keeps: a buffer is reused only when no
Python object refers to it any more (no array, view, memoryview, PyTorch tensor or Numba
array made from it), which CPython's reference count of the buffer says exactly; so an
array you keep is never overwritten, and one you drop is recycled for the next request of
the same size. Only arrays of at least :data:`MIN_BYTES` are recycled (smaller ones stay
in ``malloc``'s own free lists), at most :data:`MAX_PER_SIZE` buffers per size, and at most
the limit (:func:`set_limit`; default :data:`DEFAULT_LIMIT`, or the environment variable
``NUMBASPIKE_BUFFER_LIMIT`` in bytes, read at import) in all, in use or not. :func:`release`
returns the unused ones to the system. With ``NUMBASPIKE_BUFFER_LIMIT=0``, or on a Python
build without the global interpreter lock (where reference counts are not exact),
:func:`empty` is plain :func:`numpy.empty`.

It serves the arrays a call returns, whose lifetime only the caller knows, and the
temporaries that live within one call (the weight-gradient partials, summed and dropped at
its end, and the dense weight-gradient product of :class:`~numbaspike.layers.Linear`), which
a fresh array would map page by page, by several threads at once.
"""

from __future__ import annotations

import math
import os
import sys
import threading

import numpy as np

__all__ = ["empty", "zeros", "release", "set_limit", "get_limit", "cached_bytes"]

#: Smallest array recycled, in bytes.
MIN_BYTES = 256 << 10
#: Most buffers kept for one size (arrays kept alive beyond that are not tracked).
MAX_PER_SIZE = 8
#: Default limit on the bytes of all recycled buffers, in use or not.
DEFAULT_LIMIT = 2 << 30

_ENV = "NUMBASPIKE_BUFFER_LIMIT"


def _limit_from_env() -> int:
    text = os.environ.get(_ENV)
    if text is None or text.strip() == "":
        return DEFAULT_LIMIT
    try:
        value = int(text)
    except ValueError:
        raise ValueError(
            f"{_ENV} must be a whole number of bytes (0 disables recycling), got {text!r}"
        ) from None
    if value < 0:
        raise ValueError(f"{_ENV} must be >= 0 bytes, got {value}")
    return value


def _exact_refcounts() -> bool:
    is_gil_enabled = getattr(sys, "_is_gil_enabled", None)
    return is_gil_enabled is None or is_gil_enabled()


def _unused_refcount() -> int:
    # the count that _is_unused sees for a buffer referred to only by its bucket: measured
    # with the same expression, so that it holds whatever the interpreter's own references
    bucket = [np.empty(1, np.uint8)]
    return sys.getrefcount(bucket[0])


_lock = threading.Lock()

#: nbytes -> buffers (1-D uint8 arrays owning their memory) of that size
_buckets: dict[int, list[np.ndarray]] = {}
_tracked_bytes = 0
_limit = _limit_from_env()
_enabled = _exact_refcounts()
_UNUSED = _unused_refcount()


def _new_lock_after_fork() -> None:
    # a fork while another thread held the lock would leave the child's copy locked
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_after_fork)


def _is_unused(bucket: list, k: int) -> bool:
    return sys.getrefcount(bucket[k]) <= _UNUSED


def _drop_unused(target_bytes: int) -> None:
    """Forget unused buffers (oldest sizes first) until at most ``target_bytes`` are tracked."""
    global _tracked_bytes
    for nbytes in list(_buckets):
        bucket = _buckets[nbytes]
        k = 0
        while k < len(bucket) and _tracked_bytes > target_bytes:
            if _is_unused(bucket, k):
                del bucket[k]
                _tracked_bytes -= nbytes
            else:
                k += 1
        if not bucket:
            del _buckets[nbytes]
        if _tracked_bytes <= target_bytes:
            return


def _take(nbytes: int) -> np.ndarray | None:
    """An unused buffer of ``nbytes`` (a new one if none), or None if the limit is reached."""
    global _tracked_bytes
    bucket = _buckets.get(nbytes)
    if bucket is not None:
        for k in range(len(bucket)):
            if _is_unused(bucket, k):
                return bucket[k]
        if len(bucket) >= MAX_PER_SIZE:
            return None
    if _tracked_bytes + nbytes > _limit:
        _drop_unused(_limit - nbytes)
        if _tracked_bytes + nbytes > _limit:
            return None
    raw = np.empty(nbytes, np.uint8)
    _buckets.setdefault(nbytes, []).append(raw)
    _tracked_bytes += nbytes
    return raw


def empty(shape, dtype) -> np.ndarray:
    """A C-contiguous array of ``shape`` and ``dtype`` with arbitrary values, in recycled
    memory when it is large (see the module's description); as :func:`numpy.empty`."""
    dtype = np.dtype(dtype)
    shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < MIN_BYTES or not _enabled or _limit == 0 or dtype.hasobject:
        return np.empty(shape, dtype)
    with _lock:
        raw = _take(nbytes)
    if raw is None:
        return np.empty(shape, dtype)
    return raw.view(dtype).reshape(shape)


def zeros(shape, dtype) -> np.ndarray:
    """As :func:`empty`, filled with zeros."""
    out = empty(shape, dtype)
    out.fill(0)
    return out


def release() -> int:
    """Return the unused buffers to the system; returns the bytes released."""
    with _lock:
        before = _tracked_bytes
        _drop_unused(0)
        return before - _tracked_bytes


def set_limit(nbytes: int) -> None:
    """Recycle at most ``nbytes`` of buffers in all (0: never recycle, :func:`empty` is
    :func:`numpy.empty`); unused buffers over the new limit are released."""
    global _limit
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, np.integer)) or nbytes < 0:
        raise ValueError(f"nbytes must be an integer >= 0, got {nbytes!r}")
    with _lock:
        _limit = int(nbytes)
        _drop_unused(_limit)


def get_limit() -> int:
    """The current limit, in bytes."""
    return _limit


def cached_bytes() -> tuple[int, int]:
    """``(in_use, unused)``: bytes of the recycled buffers that arrays still refer to, and
    of those waiting for reuse."""
    with _lock:
        unused = sum(
            nbytes
            for nbytes, bucket in _buckets.items()
            for k in range(len(bucket))
            if _is_unused(bucket, k)
        )
        return _tracked_bytes - unused, unused
