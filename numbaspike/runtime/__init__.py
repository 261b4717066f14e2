"""Run-time tuning of the process the kernels run in.

* :mod:`.threads`: the thread count and Numba's threading layer;
* :mod:`.openblas_spinning`: shorter spinning of OpenBLAS's idle threads;
* :mod:`.array_pool`: large arrays recycled from one call to the next.
"""
