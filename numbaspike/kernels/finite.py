"""Count of the NaN and inf entries of a float array, from their exponent bits.

A float32 (float64) entry is NaN or inf exactly when its 8 (11) exponent bits are all set.
Counting those entries is an integer loop that vectorises with no fast-math flag, faster
than NumPy's float reduction (``np.add.reduce``, which
:func:`numbaspike.validation.sum_is_finite` uses). A ``prange`` loop would compile for
about a second at every cold start, so the count is made of work items
of the shared parallel runner (:mod:`~numbaspike.compiler.parallel_runner`), which compile like
any serial function: blocks of :data:`BLOCK` entries, each counted into its own slot and
summed after, on both threads from :data:`PARALLEL_MIN_SIZE` entries. Each block starts its
loop at index 0 of its slice: with a runtime start, Numba's negative-index wraparound keeps
the loop scalar.
"""

from __future__ import annotations

import numpy as np

from ..compiler.parallel_runner import ItemKernel, blocks_of, first_length, parallel_from

__all__ = ["count_non_finite", "BLOCK", "PARALLEL_MIN_SIZE"]

#: Entries per work item.
BLOCK = 1 << 18
#: From this many entries the count opens a parallel region.
PARALLEL_MIN_SIZE = 1 << 19

#: Exponent masks, by the unsigned view of the float dtype.
_EXPONENT = {
    np.dtype(np.float32): (np.uint32, np.uint32(0x7F800000)),
    np.dtype(np.float64): (np.uint64, np.uint64(0x7FF0000000000000)),
}


def _count_block(k0, k1, bits, exponent, counts):
    """``counts[k0 // BLOCK]`` = entries of ``bits[k0:k1]`` whose ``exponent`` bits are all
    set."""
    block = bits[k0:k1]  # indices from 0: no negative-index wraparound to keep it scalar
    count = 0
    for k in range(block.shape[0]):
        count += (block[k] & exponent) == exponent
    counts[k0 // BLOCK] = count


_count_blocks = ItemKernel(
    _count_block, blocks_of(first_length, BLOCK), parallel_from(first_length, PARALLEL_MIN_SIZE)
)


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
    bits = arr.reshape(-1).view(unsigned)
    bits.flags.writeable = False  # read-only whatever arr is: one compilation per dtype
    counts = np.empty(-(-bits.shape[0] // BLOCK), np.int64)
    _count_blocks(bits, exponent, counts)
    return int(counts.sum())
