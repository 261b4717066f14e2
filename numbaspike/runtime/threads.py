"""Thread count and threading layer of the CPU kernels.

The kernels use Numba's thread pool: ``NUMBA_NUM_THREADS`` (read when numba is first
imported) fixes its size, and :func:`set_num_threads` lowers the number used from then on.
Results do not depend on the thread count: no kernel reduces across threads.

Unless ``NUMBA_THREADING_LAYER`` is set, numbaspike selects Numba's OpenMP (``omp``)
threading layer where its library loads, else ``workqueue``. In ``workqueue`` the calling
thread only waits while two fresh worker threads are woken for every parallel region; in
OpenMP it works as one of the threads, which makes steps with many parallel regions
faster (the SHD-sized training step by about a fifth).

After a parallel region GNU OpenMP's idle threads spin for ``GOMP_SPINCOUNT`` iterations
(300 000 by default, a few milliseconds) before they sleep, and meanwhile take the cores
from whatever runs next (such as a BLAS product). Unless ``GOMP_SPINCOUNT`` or
``OMP_WAIT_POLICY`` is set, numbaspike sets ``GOMP_SPINCOUNT=30000`` before Numba loads
OpenMP: much shorter spinning would cost a wake-up per parallel region instead.

GNU OpenMP does not survive ``fork()``: Numba terminates a forked child that opens a
parallel region after its parent had used OpenMP. numbaspike registers a fork handler so
that in such a child the kernels run single-threaded instead (same results; a
``RuntimeWarning`` says so once). To keep threads in worker processes, start them with
the ``"spawn"`` or ``"forkserver"`` method of :mod:`multiprocessing`, or set
``NUMBA_THREADING_LAYER=workqueue``.

OpenBLAS's idle threads spin for about 2^28 cycles (~0.1 s) after every BLAS call before they
sleep, and meanwhile take the cores from the next Numba kernel. ``import numbaspike`` sets
``OPENBLAS_THREAD_TIMEOUT=16`` (2^16 cycles)
(unless set) and, when NumPy had already loaded OpenBLAS, restarts OpenBLAS's thread pool so
that it applies (:mod:`numbaspike.runtime.openblas_spinning`). Where that cannot be done the variable stays
unset. Either way narrow layers keep the event path, which calls no BLAS, up to a density
of 0.25 (:func:`numbaspike.kernels.projection.use_sparse_path`).
"""

from __future__ import annotations

import os
import sys
import warnings

import numba

__all__ = ["get_num_threads", "set_num_threads"]


def _openmp_loads() -> bool:
    try:
        from numba.np.ufunc import omppool  # noqa: F401
    except ImportError:  # no OpenMP runtime library on this system
        return False
    return True


#: Spin iterations of an idle OpenMP thread before it sleeps (GNU OpenMP's ``GOMP_SPINCOUNT``),
#: set unless the user set it or ``OMP_WAIT_POLICY``. See the module's description.
GOMP_SPINCOUNT = "30000"


def _shorten_openmp_spinning() -> None:
    """``GOMP_SPINCOUNT`` for GNU OpenMP, read once when its library loads: only useful (and
    only set) before Numba's OpenMP layer, which loads it, has been imported."""
    if "numba.np.ufunc.omppool" in sys.modules:
        return
    if "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        return
    os.environ["GOMP_SPINCOUNT"] = GOMP_SPINCOUNT


if "NUMBA_THREADING_LAYER" not in os.environ:
    _shorten_openmp_spinning()
    numba.config.THREADING_LAYER = "omp" if _openmp_loads() else "workqueue"

#: True in a process forked from one whose kernels had started OpenMP's threads.
_forked_from_openmp = False
_warned_fork = False


def _after_fork_in_child() -> None:
    global _forked_from_openmp
    pool = sys.modules.get("numba.np.ufunc.parallel")
    if pool is not None and getattr(pool, "_is_initialized", False):
        if getattr(pool, "_threading_layer", None) == "omp":
            _forked_from_openmp = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def parallel_allowed() -> bool:
    """Whether the kernels may open parallel regions: not in a process forked from one that
    had started OpenMP's threads (see the module's description)."""
    global _warned_fork
    if not _forked_from_openmp:
        return True
    if not _warned_fork:
        _warned_fork = True
        warnings.warn(
            "numbaspike: this process was forked from one whose kernels used OpenMP threads, "
            "which do not survive fork(); its kernels run single-threaded (same results). "
            "Start worker processes with multiprocessing's 'spawn' or 'forkserver' method, "
            "or set NUMBA_THREADING_LAYER=workqueue, to keep them multi-threaded.",
            RuntimeWarning,
            stacklevel=3,
        )
    return False


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
