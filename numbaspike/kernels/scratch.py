"""Scratch arrays that a kernel reuses from one call to the next.

The weight-gradient kernels sum into private partial gradients (one (n_in, n_out) array
per fixed chunk of rows, a few MB) that are summed and dropped at the end of the call. A
fresh zeroed array is mapped by the kernel page by page on first touch, and those page
faults, taken by several threads at once, serialise on the process's memory map: on the
SHD-sized training step the recurrent weight gradient took 7.8–8.8 ms with fresh partials
and 2.6–3.4 ms with reused ones (the whole step 50–56 ms → 34–43 ms).

:func:`zeros` keeps, per thread (so two threads running the same kernel never share an
array), the last :data:`KEEP` arrays it handed out, by name, shape and dtype, and zeroes
one again when it is asked for again. A network's layers have a few fixed shapes, so in a
training loop every call after the first reuses an array. Arrays over :data:`MAX_BYTES`
are not kept (they are made fresh every time, as before), so what is kept is at most
``KEEP * MAX_BYTES`` per thread, and a few MB for layers of a few hundred neurons;
:func:`release` drops it. :func:`empty` is the same without the zeroing, for arrays the
kernel overwrites: the weight-gradient partials (each work item zeroes its own, in
parallel) and the dense weight-gradient product of :class:`~numbaspike.layers.Linear`.
Arrays that a call returns (outputs, tapes, gradients) are recycled by
:mod:`numbaspike.buffers` instead, once nothing refers to them.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

import numpy as np

__all__ = ["zeros", "empty", "release"]

#: Arrays kept per thread (least recently used dropped first).
KEEP = 8
#: Largest array kept, in bytes.
MAX_BYTES = 16 << 20

_local = threading.local()


def _arrays() -> OrderedDict:
    arrays = getattr(_local, "arrays", None)
    if arrays is None:
        arrays = _local.arrays = OrderedDict()
    return arrays


def zeros(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A zeroed array of ``shape`` and ``dtype``: the one this thread last got with the same
    name, shape and dtype, or a new one. Valid until the next call with the same key."""
    return _get(name, shape, dtype, zeroed=True)


def empty(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """As :func:`zeros`, for an output that will be overwritten: its values are arbitrary."""
    return _get(name, shape, dtype, zeroed=False)


def _get(name: str, shape: tuple[int, ...], dtype, zeroed: bool) -> np.ndarray:
    key = (name, tuple(int(s) for s in shape), np.dtype(dtype))
    if math.prod(key[1]) * key[2].itemsize > MAX_BYTES:
        return np.zeros(key[1], key[2]) if zeroed else np.empty(key[1], key[2])
    arrays = _arrays()
    arr = arrays.get(key)
    if arr is not None:
        arrays.move_to_end(key)
        if zeroed:
            arr.fill(0)
        return arr
    while len(arrays) >= KEEP:
        arrays.popitem(last=False)
    arr = arrays[key] = np.zeros(key[1], key[2])
    return arr


def release() -> None:
    """Drop this thread's scratch arrays."""
    _arrays().clear()
