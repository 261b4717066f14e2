"""Shorter spinning of OpenBLAS's idle threads, also when NumPy was imported first.

After every BLAS call OpenBLAS's idle threads spin for ``2^OPENBLAS_THREAD_TIMEOUT`` cycles
(2^28, about 0.1 s, by default) before they sleep, and meanwhile take the cores from the
Numba kernels that follow. OpenBLAS reads the variable when it starts its threads. So
``import numbaspike`` sets ``OPENBLAS_THREAD_TIMEOUT`` (to :data:`THREAD_TIMEOUT`, unless
the user set it) before NumPy loads OpenBLAS; when NumPy is already loaded, which is the
usual ``import numpy as np`` first, :func:`shorten_loaded_openblas_spinning` has each
loaded OpenBLAS (pthreads build) read its environment again and stop its thread pool,
which it restarts, with the shorter timeout, at its next multi-threaded call.

Only Linux is handled (the loaded libraries are read from ``/proc/self/maps``); only while
the importing thread is the process's only Python thread (stopping the pool under a
running BLAS call would not be safe); only for a library exporting the entry points used.
Anywhere else nothing happens and ``OPENBLAS_THREAD_TIMEOUT`` stays unset (it would claim
a timeout that the loaded library does not use).
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading

__all__ = ["THREAD_TIMEOUT", "loaded_openblas_paths", "shorten_loaded_openblas_spinning"]

#: ``OPENBLAS_THREAD_TIMEOUT`` set by ``import numbaspike``: 2^16 cycles of spinning.
THREAD_TIMEOUT = "16"

#: OpenBLAS's ``openblas_get_parallel`` under the names its builds export (``1`` = pthreads).
_GET_PARALLEL = (
    "openblas_get_parallel",
    "openblas_get_parallel64_",
    "scipy_openblas_get_parallel",
    "scipy_openblas_get_parallel64_",
)


def loaded_openblas_paths() -> list[str]:
    """Paths of the OpenBLAS libraries mapped into this process (Linux; else empty)."""
    try:
        with open("/proc/self/maps") as maps:
            lines = maps.read().splitlines()
    except OSError:
        return []
    paths: list[str] = []
    for line in lines:
        fields = line.split(maxsplit=5)
        path = fields[5] if len(fields) == 6 else ""
        name = os.path.basename(path)
        if "openblas" in name and ".so" in name and path not in paths:
            paths.append(path)
    return paths


def _restart_with_environment(path: str) -> bool:
    """Have the OpenBLAS at ``path`` re-read its environment and stop its pthreads pool."""
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return False
    get_parallel = next((getattr(lib, n) for n in _GET_PARALLEL if hasattr(lib, n)), None)
    needed = ("openblas_read_env", "blas_thread_shutdown_", "openblas_thread_timeout")
    if get_parallel is None or not all(hasattr(lib, n) for n in needed):
        return False
    if get_parallel() != 1:  # an OpenMP or single-threaded build: no pool of its own
        return False
    lib.openblas_read_env()
    lib.blas_thread_shutdown_()  # restarted by the next threaded call, with the new timeout
    return lib.openblas_thread_timeout() == int(os.environ["OPENBLAS_THREAD_TIMEOUT"])


def shorten_loaded_openblas_spinning() -> bool:
    """Set ``OPENBLAS_THREAD_TIMEOUT`` (unless set) and apply it to OpenBLAS already loaded.

    Returns
    -------
    bool
        Whether every loaded OpenBLAS now uses :data:`THREAD_TIMEOUT`. When the user set
        the variable, or a library could not be restarted, the environment is left as it
        was and the answer is False.
    """
    if "OPENBLAS_THREAD_TIMEOUT" in os.environ:
        return False
    if "numpy" not in sys.modules:  # OpenBLAS will read the variable when it loads
        os.environ["OPENBLAS_THREAD_TIMEOUT"] = THREAD_TIMEOUT
        return True
    if threading.active_count() != 1:
        return False
    paths = loaded_openblas_paths()
    if not paths:
        return False
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = THREAD_TIMEOUT
    restarted = [_restart_with_environment(path) for path in paths]
    if not all(restarted):
        # A library kept its long spinning: the variable would claim otherwise. The
        # libraries that did restart keep the short timeout, which only frees cores sooner.
        del os.environ["OPENBLAS_THREAD_TIMEOUT"]
        return False
    return True
