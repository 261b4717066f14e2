"""The Numba machinery under the kernels, which builds on Numba internals.

* :mod:`.numba_version`: the Numba versions this machinery is tested on, checked at import;
* :mod:`.mode_pruning`: ``njit`` whose pipeline drops the branches of modes a kernel is not
  compiled for, before they are typed;
* :mod:`.parallel_runner`: kernels made of work items, run by one parallel runner;
* :mod:`.intrinsics`: LLVM intrinsics (bit counts, prefetch, register tiles);
* :mod:`.cache_stamp`: Numba's disk cache keyed by the whole package's source.

Nothing here is imported by ``numbaspike/compiler/__init__.py`` itself, so that
:mod:`.numba_version` can run before any module that needs a supported Numba.
"""
