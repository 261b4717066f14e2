"""Shared pytest fixtures."""

from __future__ import annotations

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
