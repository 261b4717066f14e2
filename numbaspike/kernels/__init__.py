"""Numba kernels: scalar maths (:mod:`.math`) compiled for the CPU (:mod:`.cpu`) and CUDA.

Importing this package makes Numba's on-disk cache of numbaspike's kernels depend on the
whole package's source (:mod:`numbaspike.compiler.cache_stamp`), before any kernel is defined."""

from ..compiler.cache_stamp import install as _install_cache_stamp

_install_cache_stamp()
