"""Thread count of the CPU kernels.

The kernels use Numba's thread pool: ``NUMBA_NUM_THREADS`` (read when numba is first
imported) fixes its size, and :func:`set_num_threads` lowers the number used from then on.
Results do not depend on the thread count: no kernel reduces across threads.

Unless ``NUMBA_THREADING_LAYER`` is set, numbaspike selects Numba's ``workqueue``
threading layer. With the OpenMP layer, idle worker threads spin between parallel regions
and compete for the cores with OpenBLAS's threads (used by the projections) and with the
next kernel's threads; on a 2-core machine a training step was measured 2-3x slower that
way. ``workqueue`` must not be used from several Python threads at once; set
``NUMBA_THREADING_LAYER=omp`` (or ``tbb``) to run numbaspike from concurrent threads.

OpenBLAS's idle threads spin for about 2^28 cycles (~0.1 s) after every BLAS call before they
sleep, and meanwhile take the cores from the next Numba kernel: an SHD-sized training step
with one small BLAS product per step was measured 83 ms with the default and 64 ms with
``OPENBLAS_THREAD_TIMEOUT=16`` (2^16 cycles). OpenBLAS reads this variable once, when NumPy
loads it, so ``import numbaspike`` sets it (unless already set) only when NumPy is not yet
imported; otherwise set it in the environment yourself. Spiking networks mostly avoid the
question: event-driven and narrow projections call no BLAS, and while the spinning is long
narrow layers keep the event path (:func:`numbaspike.kernels.projection.use_sparse_path`),
so the SHD step no longer depends on the import order.
"""

from __future__ import annotations

import os

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

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
