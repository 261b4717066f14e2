"""Shared pytest fixtures."""

from __future__ import annotations

import sys

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A freshly seeded generator, so every test sees the same data whatever the order."""
    return np.random.default_rng(12345)


@pytest.fixture
def single_numba_thread():
    """Run Numba's parallel kernels on one thread for the duration of a test.

    Tests that call a kernel hundreds of times on tiny arrays (finite differences) spend
    their time opening parallel regions, which on a loaded machine with few cores can cost
    milliseconds each; one thread makes them ~100x faster and changes no result.
    """
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


@pytest.fixture
def small_grid(monkeypatch):
    """CUDA tests: a tiny launch configuration, so that the simulator runs many blocks and
    grid-stride loops on small arrays (and a short GIL switch interval for it)."""
    from numbaspike.kernels import cuda as kernels

    monkeypatch.setattr(kernels, "THREADS_PER_BLOCK", 8)
    monkeypatch.setattr(kernels, "MAX_BLOCKS", 2)
    monkeypatch.setattr(kernels, "MATMUL_TILE", 4)
    monkeypatch.setattr(kernels, "MATMUL_MAX_GRID", 2)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(2e-4)  # the simulator's block manager busy-polls its threads
    yield kernels
    sys.setswitchinterval(interval)


def _serialise_simulator_shared_arrays() -> None:
    """Work around a race in Numba's CUDA simulator (numba 0.68).

    ``FakeCUDAShared.array`` creates a block's shared array on first use, keyed by the
    calling file and line, with an unlocked check-then-insert: two simulated threads of one
    block can each create their own array, and then they do not share it. A kernel that
    uses shared memory (the tiled matmul) then gives an intermittent wrong result that no
    GPU would give. This replacement does the same lookup under a lock.
    """
    import sys
    import threading
    import traceback

    from numba.core import types
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    original = kernelapi.FakeCUDAShared.array
    if getattr(original, "_numbaspike_locked", False):
        return
    lock = threading.Lock()

    def array(self, shape, dtype):
        if shape == 0:  # dynamic shared memory: one buffer, no per-line allocation
            return original(self, shape, dtype)
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        caller = traceback.extract_stack(sys._getframe())[-2][0:2]  # as the original
        with lock:
            res = self._allocations.get(caller)
            if res is None:
                res = np.empty(shape, dtype)
                self._allocations[caller] = res
        return res

    array._numbaspike_locked = True
    kernelapi.FakeCUDAShared.array = array


def pytest_configure(config) -> None:
    import numba

    if numba.config.ENABLE_CUDASIM:
        _serialise_simulator_shared_arrays()
