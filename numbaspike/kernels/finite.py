"""Count of the NaN and inf entries of a float array, from their exponent bits.

A float32 (float64) entry is NaN or inf exactly when its 8 (11) exponent bits are all set.
Counting those entries is an integer loop that vectorises with no fast-math flag, and it
runs parallel over a fixed number of chunks (:data:`CHUNKS`). NumPy's float reduction
(``np.add.reduce``, which :func:`numbaspike.validation.sum_is_finite` uses) took 0.9-1.1 ms
for the (500, 16, 512) float32 input of a ``Linear`` layer on the 2-core reference machine.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .cpu import _pair

__all__ = ["count_non_finite"]

#: Fixed number of chunks (the count does not depend on the thread count in any case).
CHUNKS = 16

#: Exponent masks, by the unsigned view of the float dtype.
_EXPONENT = {
    np.dtype(np.float32): (np.uint32, np.uint32(0x7F800000)),
    np.dtype(np.float64): (np.uint64, np.uint64(0x7FF0000000000000)),
}


def _count_exponent_all_ones(bits, exponent, counts):
    """``counts[c]``: entries of chunk ``c`` of ``bits`` whose ``exponent`` bits are all set."""
    n = bits.shape[0]
    chunks = counts.shape[0]
    per_chunk = (n + chunks - 1) // chunks
    for c in prange(chunks):
        part = bits[c * per_chunk : min(n, (c + 1) * per_chunk)]
        count = 0
        for k in range(part.shape[0]):
            count += (part[k] & exponent) == exponent
        counts[c] = count


def _work(args) -> int:
    return args[0].shape[0]


_count_exponent_all_ones = _pair(_count_exponent_all_ones, _work)


def count_non_finite(arr: np.ndarray) -> int:
    """Number of NaN and inf entries of ``arr``, a C-contiguous float32 or float64 array.

    Parameters
    ----------
    arr : ndarray, any shape
        C-contiguous, float32 or float64.

    Returns
    -------
    int
    """
    if arr.dtype not in _EXPONENT or not arr.flags.c_contiguous:
        raise ValueError(
            f"arr must be a C-contiguous float32 or float64 array, got {arr.dtype} "
            f"(C-contiguous: {arr.flags.c_contiguous})"
        )
    unsigned, exponent = _EXPONENT[arr.dtype]
    counts = np.zeros(CHUNKS, np.int64)
    _count_exponent_all_ones(arr.reshape(-1).view(unsigned), exponent, counts)
    return int(counts.sum())
