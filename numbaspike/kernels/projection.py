"""Event-driven projections for sparse (spike) inputs on the CPU.

A dense projection ``Y = X @ W.T`` costs ``2·M·n_in·n_out`` flops whatever ``X`` holds.
When ``X`` is a spike raster most entries are 0; summing only the rows of ``W.T`` of the
inputs that are non-zero costs ``nnz(X)·n_out`` additions. The kernels multiply by the
input value, so they are exact for any input (spikes, counts or currents); only their
speed depends on the density. :mod:`numbaspike.layers` picks the path by measured density.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

#: Output rows per parallel work item of :func:`sparse_input_matmul`.
ROW_BLOCK = 8
#: Input columns per parallel work item of the column-blocked weight gradient.
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


#: Fixed number of row chunks of :func:`sparse_input_weight_grad` (independent of the
#: thread count, so the summation order, and thus the result, is too).
ROW_CHUNKS = 8
#: Largest total size in bytes of the per-chunk partial gradients.
PARTIALS_BUDGET = 64 << 20


def sparse_input_weight_grad(x, grad_y, grad_w_t):
    """``grad_w_t += x.T @ grad_y`` for a sparse ``x`` (M, n_in); ``grad_y`` is (M, n_out).

    The rows of ``x`` are split into :data:`ROW_CHUNKS` fixed chunks; each accumulates the
    events of its rows into a private partial gradient (read ``grad_y[m]`` once, add it to the
    rows of the inputs that fired), and the partials are summed in chunk order. When the
    partials would not fit :data:`PARTIALS_BUDGET`, work items own blocks of input columns
    instead. Either way no two threads write the same memory and the result does not depend
    on the thread count.
    """
    n_in, n_out = grad_w_t.shape
    chunks = min(ROW_CHUNKS, max(1, x.shape[0]))
    if chunks * n_in * n_out * grad_w_t.itemsize <= PARTIALS_BUDGET:
        partials = np.zeros((chunks, n_in, n_out), grad_w_t.dtype)
        _weight_grad_partials(x, grad_y, partials)
        _sum_partials(partials, grad_w_t)
    else:
        _weight_grad_by_columns(x, grad_y, grad_w_t)


@njit(parallel=True, fastmath={"contract"})
def _weight_grad_partials(x, grad_y, partials):
    m_rows, n_in = x.shape
    n_out = grad_y.shape[1]
    chunks = partials.shape[0]
    per_chunk = (m_rows + chunks - 1) // chunks
    for c in prange(chunks):
        part = partials[c]
        for m in range(c * per_chunk, min((c + 1) * per_chunk, m_rows)):
            gy = grad_y[m]
            for j in range(n_in):
                xj = x[m, j]
                if xj != 0.0:
                    row = part[j]
                    for k in range(n_out):
                        row[k] += xj * gy[k]


@njit(parallel=True)
def _sum_partials(partials, out):
    chunks, n_in, n_out = partials.shape
    for j in prange(n_in):
        for c in range(chunks):
            for k in range(n_out):
                out[j, k] += partials[c, j, k]


@njit(parallel=True)
def _weight_grad_by_columns(x, grad_y, grad_w_t):
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


#: Cost model of the path choice (seconds per operation, measured on the reference machine,
#: single thread): the event-driven kernels pay a scan of every input plus an add per event
#: and output; BLAS pays a multiply-add per input and output.
SCAN_COST = 1.0e-9
EVENT_COST = 5.0e-11
DENSE_COST = 8.0e-12


def density(x) -> float:
    """Fraction of non-zero entries of ``x``, estimated from at most ~65 000 evenly spaced ones."""
    flat = x.reshape(-1)
    step = max(1, flat.size // 65536)
    sample = flat[::step]
    return float(np.count_nonzero(sample)) / max(1, sample.size)


def use_sparse_path(x_density: float, n_out: int) -> bool:
    """Whether the event-driven projection beats the dense product for this density and width."""
    return SCAN_COST + EVENT_COST * x_density * n_out < DENSE_COST * n_out
