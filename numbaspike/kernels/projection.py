"""Event-driven projections for sparse (spike) inputs on the CPU.

A dense projection ``Y = X @ W.T`` costs ``2·M·n_in·n_out`` flops whatever ``X`` holds.
When ``X`` is a spike raster most entries are 0; summing only the rows of ``W.T`` of the
inputs that are non-zero costs ``nnz(X)·n_out`` additions. The kernels multiply by the
input value, so they are exact for any input (spikes, counts or currents); only their
speed depends on the density. :mod:`numbaspike.layers` picks the path by measured density.
"""

from __future__ import annotations

from numba import njit, prange

#: Output rows per parallel work item of :func:`sparse_input_matmul`.
ROW_BLOCK = 8
#: Input columns per parallel work item of :func:`sparse_input_weight_grad`.
COL_BLOCK = 16


@njit(parallel=True)
def sparse_input_matmul(x, w_t, out):
    """``out = x @ w_t`` for a sparse ``x`` (M, n_in); ``w_t`` is ``W.T`` (n_in, n_out)."""
    m_rows, n_in = x.shape
    n_out = w_t.shape[1]
    n_blocks = (m_rows + ROW_BLOCK - 1) // ROW_BLOCK
    for blk in prange(n_blocks):
        for m in range(blk * ROW_BLOCK, min((blk + 1) * ROW_BLOCK, m_rows)):
            for k in range(n_out):
                out[m, k] = 0.0
            for j in range(n_in):
                xj = x[m, j]
                if xj != 0.0:
                    for k in range(n_out):
                        out[m, k] += xj * w_t[j, k]


@njit(parallel=True)
def sparse_input_weight_grad(x, grad_y, grad_w_t):
    """``grad_w_t += x.T @ grad_y`` for a sparse ``x`` (M, n_in); ``grad_y`` is (M, n_out).

    Each work item owns a block of input columns, so no two threads write the same row of
    ``grad_w_t`` (n_in, n_out) and the result does not depend on the thread count.
    """
    m_rows, n_in = x.shape
    n_out = grad_y.shape[1]
    n_blocks = (n_in + COL_BLOCK - 1) // COL_BLOCK
    for blk in prange(n_blocks):
        j0 = blk * COL_BLOCK
        j1 = min(j0 + COL_BLOCK, n_in)
        for m in range(m_rows):
            for j in range(j0, j1):
                xj = x[m, j]
                if xj != 0.0:
                    for k in range(n_out):
                        grad_w_t[j, k] += xj * grad_y[m, k]
