"""Thread count of the CPU kernels.

The kernels use Numba's thread pool: ``NUMBA_NUM_THREADS`` (read when numba is first
imported) fixes its size, and :func:`set_num_threads` lowers the number used from then on.
Results do not depend on the thread count: no kernel reduces across threads.
"""

from __future__ import annotations

import numba

__all__ = ["get_num_threads", "set_num_threads"]


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (1 ≤ n ≤ ``NUMBA_NUM_THREADS``) in the CPU kernels."""
    if (
        isinstance(n, bool)
        or not isinstance(n, int)
        or not 1 <= n <= numba.config.NUMBA_NUM_THREADS
    ):
        raise ValueError(
            f"n must be an integer from 1 to NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}, got {n!r}"
        )
    numba.set_num_threads(n)


def get_num_threads() -> int:
    """Number of threads the CPU kernels use."""
    return numba.get_num_threads()
