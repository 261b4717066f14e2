"""Numba kernels: scalar maths (:mod:`.math`) compiled for the CPU (:mod:`.cpu`) and CUDA."""
