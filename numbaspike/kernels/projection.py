"""Event-driven projections for sparse (spike) inputs on the CPU.

A dense projection ``Y = X @ W.T`` costs ``2·M·n_in·n_out`` flops whatever ``X`` holds.
When ``X`` is a spike raster most entries are 0; summing only the rows of ``W.T`` of the
inputs that are non-zero costs ``nnz(X)·n_out`` additions. :func:`spike_events` lists the
non-zero entries of ``X`` once (a CSR event list, :class:`SpikeEvents`); the forward
product (:func:`events_matmul`) and the weight gradient (:func:`events_weight_grad`) then
touch only the events, never the dense matrix again. The kernels multiply by the input
value, so they are exact for any input (spikes, counts or currents); only their speed
depends on the density. :mod:`numbaspike.layers` picks the path by measured density
(:func:`use_sparse_path`). :func:`narrow_matmul` is the same loop for a dense product with
a narrow inner dimension, so that a training step need not call BLAS for it.

Every kernel splits its work into a fixed number of items (row chunks, row blocks or column
blocks) that does not depend on the thread count, and no two items write the same memory, so
every result is the same bit for bit whatever the number of threads.
"""

from __future__ import annotations

import numpy as np

from ..compiler.intrinsics import WORD as _WORD
from ..compiler.intrinsics import popcount as _popcount
from ..compiler.intrinsics import trailing_zeros as _trailing_zeros
from ..compiler.mode_pruning import njit
from ..compiler.parallel_runner import ItemKernel, blocks_of, one_item_each
from ..runtime import array_pool
from ..runtime.threads import parallel_allowed
from ..spike_events import SpikeEvents
from ..validation import FLOAT_DTYPES
from .cpu import _zero_partial, sum_partials

__all__ = [
    "SpikeEvents",
    "spike_events",
    "events_from_coordinates",
    "events_matmul",
    "events_weight_grad",
    "narrow_matmul",
    "density",
    "use_sparse_path",
]

#: Fixed number of row chunks (parallel work items) of :func:`spike_events`.
EVENT_CHUNKS = 64
#: Output rows per parallel work item of :func:`events_matmul`.
ROW_BLOCK = 8
#: Fixed number of row chunks of :func:`events_weight_grad` (independent of the thread
#: count, so the summation order, and thus the result, is too).
ROW_CHUNKS = 8
#: Largest total size in bytes of the per-chunk partial gradients of
#: :func:`events_weight_grad`; above it, work items own blocks of input columns instead.
PARTIALS_BUDGET = 64 << 20
#: Input columns per parallel work item of the column-blocked weight gradient.
COL_BLOCK = 16


# --------------------------------------------------------------------------------------
# Event list
# --------------------------------------------------------------------------------------


def spike_events(x) -> SpikeEvents:
    """List the non-zero entries of ``x`` (M, n_in) as :class:`SpikeEvents`.

    Two passes over fixed row chunks (:data:`EVENT_CHUNKS`, run in parallel): the first
    reads ``x`` once, branch-free and vectorised, into one bit mask per 64 inputs, counts
    the events of every row (popcount) and finds whether they are all exactly 1; after a
    prefix sum of the counts, the second walks the set bits of the masks (one TZCNT per
    event, never the zero entries) to write the columns, and the values unless they are
    all 1. The cost is about one read of ``x`` (memory bound) plus a few nanoseconds per
    event; the values are not read again when they are all 1 (spikes), since each would be
    a cache miss.

    Parameters
    ----------
    x : ndarray of float32 or float64, shape (M, n_in)
        Made C-contiguous if it is not (a copy). NaN counts as non-zero; ``-0.0`` as zero.

    Returns
    -------
    SpikeEvents
        ``values`` is None when every non-zero entry is exactly 1.
    """
    x = np.ascontiguousarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (M, n_in), got shape {x.shape}")
    if x.dtype not in FLOAT_DTYPES:
        raise ValueError(f"x must be float32 or float64, got {x.dtype}")
    m_rows, n_in = x.shape
    if n_in > np.iinfo(np.int32).max:
        raise ValueError(f"x has {n_in} columns; event columns are int32")
    chunks = min(EVENT_CHUNKS, max(1, m_rows))
    masks = np.empty((m_rows, (n_in + _WORD - 1) // _WORD), np.uint64)
    row_ptr = np.empty(m_rows + 1, np.int64)
    row_ptr[0] = 0
    not_one = np.zeros(chunks, np.bool_)
    _event_masks(x, masks, row_ptr[1:], not_one)
    np.cumsum(row_ptr[1:], out=row_ptr[1:])
    nnz = int(row_ptr[-1])
    binary = not not_one.any()
    cols = np.empty(nnz, np.int32)
    values = np.empty(0 if binary else nnz, x.dtype)
    _compact_events(x, masks, row_ptr, cols, values, chunks)
    return SpikeEvents(
        row_ptr=row_ptr,
        cols=cols,
        values=None if binary else values,
        shape=(m_rows, n_in),
        dtype=x.dtype,
    )


def events_from_coordinates(rows, cols, shape, dtype=np.float32, steps=None) -> SpikeEvents:
    """Binary :class:`SpikeEvents` of the spikes at ``(rows[e], cols[e])``.

    The pairs may come in any order and repeat (a repeated pair is one spike, as in a
    raster clipped to 0/1). O(nnz + M·n_in/64): a bit mask per row is set from the pairs
    (serially), then its set bits are read back in column order by the second pass of
    :func:`spike_events`, with no values to write.

    Parameters
    ----------
    rows, cols : int arrays, shape (E,)
        Row in ``[0, M)`` and column in ``[0, n_in)`` of each spike (not checked: callers
        pass validated coordinates).
    shape : tuple of int
        ``(M, n_in)``.
    dtype : float32 or float64
        The dtype of the dense array the events stand for.
    steps : int, optional
        See :attr:`SpikeEvents.steps`.
    """
    m_rows, n_in = shape
    masks = np.zeros((m_rows, (n_in + _WORD - 1) // _WORD), np.uint64)
    row_ptr = np.empty(m_rows + 1, np.int64)
    row_ptr[0] = 0
    _coordinate_masks(
        np.ascontiguousarray(rows, np.int64), np.ascontiguousarray(cols, np.int64), masks,
        row_ptr[1:],
    )  # fmt: skip
    np.cumsum(row_ptr[1:], out=row_ptr[1:])
    out_cols = np.empty(int(row_ptr[-1]), np.int32)
    dtype = np.dtype(dtype)
    no_values = np.empty(0, dtype)  # all events are 1: the (empty) x below is not read
    _compact_events(
        np.empty((0, n_in), dtype), masks, row_ptr, out_cols, no_values,
        min(EVENT_CHUNKS, max(1, m_rows)),
    )  # fmt: skip
    return SpikeEvents(row_ptr, out_cols, None, (m_rows, n_in), dtype, steps)


@njit(cache=True)
def _coordinate_masks(rows, cols, masks, counts):
    """Set bit ``cols[e] % 64`` of ``masks[rows[e], cols[e] // 64]``; ``counts[m]``: the set
    bits of row ``m``."""
    for e in range(rows.shape[0]):
        j = cols[e]
        masks[rows[e], j >> 6] |= np.uint64(1) << np.uint64(j & 63)
    for m in range(masks.shape[0]):
        count = 0
        for w in range(masks.shape[1]):
            count += _popcount(masks[m, w])
        counts[m] = count


def _always_parallel(args) -> bool:
    """These kernels always open a parallel region (over a fixed number of work items),
    except where none may be opened."""
    return parallel_allowed()


def _event_masks(c, _c_end, x, masks, counts, not_one):
    """Chunk ``c`` (of ``not_one.shape[0]``, ``_c_end`` = c + 1) of the rows of ``x``:
    ``masks[m, w]`` bit ``b`` = ``x[m, 64·w + b] != 0``; ``counts[m]`` = events of row m;
    ``not_one[c]``: the chunk has an event other than 1."""
    m_rows, n_in = x.shape
    n_full = n_in // _WORD
    tail = n_in - n_full * _WORD
    chunks = not_one.shape[0]
    per_chunk = (m_rows + chunks - 1) // chunks
    other = np.uint64(0)  # bits of events that are not 1 (NaN included)
    for m in range(c * per_chunk, min((c + 1) * per_chunk, m_rows)):
        count = 0
        for w in range(n_full):  # a fixed trip count: unrolled and vectorised
            word, ones = _word_bits(x[m, w * _WORD : (w + 1) * _WORD], _WORD)
            masks[m, w] = word
            other |= word ^ ones
            count += _popcount(word)
        if tail:
            word, ones = _word_bits(x[m, n_full * _WORD :], tail)
            masks[m, n_full] = word
            other |= word ^ ones
            count += _popcount(word)
        counts[m] = count
    not_one[c] = other != 0


@njit(inline="always")
def _word_bits(xw, width):
    """``(word, ones)``: bit ``b`` of ``word`` is ``xw[b] != 0``, of ``ones`` ``xw[b] == 1``,
    for ``b < width`` (at most 64)."""
    word = np.uint64(0)
    ones = np.uint64(0)
    for b in range(width):
        word |= np.uint64(xw[b] != 0) << np.uint64(b)
        ones |= np.uint64(xw[b] == 1) << np.uint64(b)
    return word, ones


_event_masks = ItemKernel(
    _event_masks, one_item_each(lambda args: args[3].shape[0]), _always_parallel
)


def _compact_events(c, _c_end, x, masks, row_ptr, cols, values, chunks):
    """Chunk ``c`` (of ``chunks``; ``_c_end`` = c + 1) of the rows: write the columns of the
    events in the set bits of ``masks``, and their values unless ``values`` is empty (all
    events are 1: ``x`` is not read)."""
    m_rows = masks.shape[0]
    n_words = masks.shape[1]
    with_values = values.shape[0] > 0
    per_chunk = (m_rows + chunks - 1) // chunks
    for m in range(c * per_chunk, min((c + 1) * per_chunk, m_rows)):
        e = row_ptr[m]
        for w in range(n_words):
            word = masks[m, w]
            while word:
                j = w * _WORD + _trailing_zeros(word)
                cols[e] = j
                if with_values:
                    values[e] = x[m, j]
                e += 1
                word &= word - np.uint64(1)


_compact_events = ItemKernel(
    _compact_events, one_item_each(lambda args: args[5]), _always_parallel
)


@njit(inline="always")
def _value(values, e, like):
    """The value of event ``e`` (1 in the dtype of ``like`` when ``values`` is None)."""
    if values is None:  # pruned at compile time: None compiles its own specialisation
        return like.dtype.type(1)
    return values[e]


# --------------------------------------------------------------------------------------
# Forward: out = x @ w_t
# --------------------------------------------------------------------------------------


def events_matmul(events: SpikeEvents, w_t, out):
    """``out = x @ w_t`` from the events of ``x``.

    Parallel over blocks of :data:`ROW_BLOCK` output rows; each row adds, four events at a
    time, the rows of ``w_t`` of its events (times their values) in a vectorised loop over
    ``n_out``. Every row is computed by one work item in a fixed order: the result does not
    depend on the thread count.

    Parameters
    ----------
    events : SpikeEvents
        Events of ``x`` (M, n_in).
    w_t : ndarray, shape (n_in, n_out)
        ``W.T``, C-contiguous (made so if it is not), same dtype as ``out``.
    out : ndarray, shape (M, n_out)
        Overwritten with the product.

    Returns
    -------
    out : ndarray, shape (M, n_out)
    """
    m_rows, n_in = events.shape
    w_t = np.ascontiguousarray(w_t)
    if w_t.ndim != 2 or w_t.shape[0] != n_in:
        raise ValueError(f"w_t must have shape ({n_in}, n_out), got {w_t.shape}")
    if out.shape != (m_rows, w_t.shape[1]):
        raise ValueError(f"out must have shape {(m_rows, w_t.shape[1])}, got {out.shape}")
    _events_matmul(events.row_ptr, events.cols, events.values, w_t, out)
    return out


def _events_matmul(m0, m1, row_ptr, cols, values, w_t, out):
    """Rows ``m0 .. m1 - 1`` of :func:`events_matmul`."""
    n_out = out.shape[1]
    for m in range(m0, m1):
        for k in range(n_out):
            out[m, k] = 0
        e = row_ptr[m]
        end = row_ptr[m + 1]
        while e + 4 <= end:  # four events per pass over out[m]: a quarter of its traffic
            _add_four_rows(
                out, m, w_t, cols[e], cols[e + 1], cols[e + 2], cols[e + 3],
                _value(values, e, out), _value(values, e + 1, out),
                _value(values, e + 2, out), _value(values, e + 3, out),
            )  # fmt: skip
            e += 4
        while e < end:
            _add_row(out, m, w_t, cols[e], _value(values, e, out))
            e += 1


_events_matmul = ItemKernel(
    _events_matmul,
    blocks_of(lambda args: args[4].shape[0], ROW_BLOCK),
    _always_parallel,
    fastmath={"contract"},
)


@njit(inline="always", fastmath={"contract"})
def _add_four_rows(out, m, w, j0, j1, j2, j3, v0, v1, v2, v3):
    """``out[m] += v0 w[j0] + v1 w[j1] + v2 w[j2] + v3 w[j3]`` (one vectorised pass)."""
    for k in range(out.shape[1]):
        out[m, k] += (v0 * w[j0, k] + v1 * w[j1, k]) + (v2 * w[j2, k] + v3 * w[j3, k])


@njit(inline="always", fastmath={"contract"})
def _add_row(out, m, w, j, v):
    """``out[m] += v w[j]``."""
    for k in range(out.shape[1]):
        out[m, k] += v * w[j, k]


# --------------------------------------------------------------------------------------
# Dense product with a narrow inner dimension: out = a @ b
# --------------------------------------------------------------------------------------

#: Widest inner dimension ``K`` for which :class:`~numbaspike.layers.Linear` computes a
#: dense product with :func:`narrow_matmul` instead of BLAS.
NARROW_K = 32


def narrow_matmul(a, b, out):
    """``out = a @ b`` for ``a`` (M, K) with a small ``K``, without BLAS.

    The same loop as :func:`events_matmul` with every entry of ``a`` an event: parallel
    over blocks of :data:`ROW_BLOCK` output rows, each adding four rows of ``b`` per
    vectorised pass. It is a little slower than BLAS alone, but calls no BLAS, whose idle
    threads would spin and take the cores from the Numba kernels that follow.
    Every output row is computed by one work item in a fixed order, so the result does not
    depend on the thread count.

    Parameters
    ----------
    a : ndarray, shape (M, K)
    b : ndarray, shape (K, N)
    out : ndarray, shape (M, N)
        Overwritten. All three C-contiguous, of one dtype (float32 or float64).

    Returns
    -------
    out : ndarray, shape (M, N)
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"a (M, K) and b (K, N) do not match: {a.shape} and {b.shape}")
    if out.shape != (a.shape[0], b.shape[1]):
        raise ValueError(f"out must have shape {(a.shape[0], b.shape[1])}, got {out.shape}")
    if not a.dtype == b.dtype == out.dtype or a.dtype not in FLOAT_DTYPES:
        raise ValueError(
            f"a, b and out must share one dtype, float32 or float64; got {a.dtype}, "
            f"{b.dtype} and {out.dtype}"
        )
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be a writeable C-contiguous array")
    _narrow_matmul(np.ascontiguousarray(a), np.ascontiguousarray(b), out)
    return out


def _narrow_matmul(m0, m1, a, b, out):
    """Rows ``m0 .. m1 - 1`` of :func:`narrow_matmul`."""
    k_in = a.shape[1]
    for m in range(m0, m1):
        for k in range(out.shape[1]):
            out[m, k] = 0
        j = 0
        while j + 4 <= k_in:
            _add_four_rows(
                out, m, b, j, j + 1, j + 2, j + 3, a[m, j], a[m, j + 1], a[m, j + 2],
                a[m, j + 3],
            )  # fmt: skip
            j += 4
        while j < k_in:
            _add_row(out, m, b, j, a[m, j])
            j += 1


_narrow_matmul = ItemKernel(
    _narrow_matmul,
    blocks_of(lambda args: args[2].shape[0], ROW_BLOCK),
    _always_parallel,
    fastmath={"contract"},
)


# --------------------------------------------------------------------------------------
# Weight gradient: grad_w += grad_y.T @ x
# --------------------------------------------------------------------------------------


def events_weight_grad(events: SpikeEvents, grad_y, grad_w):
    """``grad_w += grad_y.T @ x`` from the events of ``x``.

    The rows of ``x`` are split into :data:`ROW_CHUNKS` fixed chunks; each adds the events
    of its rows into a private partial gradient of ``W.T`` (``partial[j] += x[m, j] ·
    grad_y[m]`` per event: one contiguous row of ``grad_y`` each), and the partials are
    summed in chunk order and transposed into ``grad_w`` (:data:`~.cpu.sum_partials`). When
    the partials would not fit :data:`PARTIALS_BUDGET`, the events are sorted by column
    instead and work items own blocks of :data:`COL_BLOCK` input columns (of a transposed
    temporary). Either way no two threads write the same memory and the result does not
    depend on the thread count.

    Parameters
    ----------
    events : SpikeEvents
        Events of ``x`` (M, n_in).
    grad_y : ndarray, shape (M, n_out)
        Made C-contiguous if it is not.
    grad_w : ndarray, shape (n_out, n_in)
        Accumulated into (the gradient of ``W``), C-contiguous.

    Returns
    -------
    grad_w : ndarray, shape (n_out, n_in)
    """
    m_rows, n_in = events.shape
    grad_y = np.ascontiguousarray(grad_y)
    if grad_y.ndim != 2 or grad_y.shape[0] != m_rows:
        raise ValueError(f"grad_y must have shape ({m_rows}, n_out), got {grad_y.shape}")
    n_out = grad_y.shape[1]
    if grad_w.shape != (n_out, n_in):
        raise ValueError(f"grad_w must have shape {(n_out, n_in)}, got {grad_w.shape}")
    if not grad_w.flags.c_contiguous or not grad_w.flags.writeable:
        raise ValueError("grad_w must be a writeable C-contiguous array")
    chunks = min(ROW_CHUNKS, max(1, m_rows))
    if chunks * n_in * n_out * grad_w.itemsize <= PARTIALS_BUDGET:
        partials = array_pool.empty((chunks, n_in, n_out), grad_w.dtype)
        _weight_grad_partials(events.row_ptr, events.cols, events.values, grad_y, partials)
        sum_partials(partials, grad_w)
    else:
        col_ptr = np.empty(n_in + 1, np.int64)
        rows = np.empty(events.nnz, np.int32)
        order = np.empty(events.nnz, np.int64)
        _events_by_column(events.row_ptr, events.cols, col_ptr, rows, order)
        grad_w_t = np.zeros((n_in, n_out), grad_w.dtype)
        _weight_grad_by_columns(col_ptr, rows, order, events.values, grad_y, grad_w_t)
        grad_w += grad_w_t.T
    return grad_w


def _weight_grad_partials(c, _c_end, row_ptr, cols, values, grad_y, partials):
    """Partial ``c`` (``_c_end`` = c + 1) of :func:`events_weight_grad`: the events of its
    chunk of rows."""
    m_rows, n_out = grad_y.shape
    chunks = partials.shape[0]
    per_chunk = (m_rows + chunks - 1) // chunks
    _zero_partial(partials, c)
    for m in range(c * per_chunk, min((c + 1) * per_chunk, m_rows)):
        for e in range(row_ptr[m], row_ptr[m + 1]):
            j = cols[e]
            v = _value(values, e, grad_y)
            for k in range(n_out):
                partials[c, j, k] += v * grad_y[m, k]


_weight_grad_partials = ItemKernel(
    _weight_grad_partials,
    one_item_each(lambda args: args[4].shape[0]),
    _always_parallel,
    fastmath={"contract"},
)


@njit(cache=True)
def _events_by_column(row_ptr, cols, col_ptr, rows, order):
    """Counting sort of the events by column: column ``j`` holds events
    ``col_ptr[j]:col_ptr[j + 1]``, of rows ``rows[...]`` (increasing) and CSR index ``order[...]``."""
    m_rows = row_ptr.shape[0] - 1
    n_in = col_ptr.shape[0] - 1
    for j in range(n_in + 1):
        col_ptr[j] = 0
    for e in range(cols.shape[0]):
        col_ptr[cols[e] + 1] += 1
    for j in range(n_in):
        col_ptr[j + 1] += col_ptr[j]
    fill = col_ptr[:-1].copy()
    for m in range(m_rows):
        for e in range(row_ptr[m], row_ptr[m + 1]):
            j = cols[e]
            rows[fill[j]] = m
            order[fill[j]] = e
            fill[j] += 1


def _weight_grad_by_columns(j0, j1, col_ptr, rows, order, values, grad_y, grad_w_t):
    """Input columns ``j0 .. j1 - 1`` of the column-blocked :func:`events_weight_grad`."""
    n_out = grad_w_t.shape[1]
    for j in range(j0, j1):
        for e in range(col_ptr[j], col_ptr[j + 1]):
            m = rows[e]
            v = _value(values, order[e], grad_y)
            for k in range(n_out):
                grad_w_t[j, k] += v * grad_y[m, k]


_weight_grad_by_columns = ItemKernel(
    _weight_grad_by_columns,
    blocks_of(lambda args: args[5].shape[0], COL_BLOCK),
    _always_parallel,
    fastmath={"contract"},
)


# --------------------------------------------------------------------------------------
# Path choice
# --------------------------------------------------------------------------------------

#: Cost model of the path choice, in seconds per input entry ``x[m, j]`` (and output), for a
#: forward product and a weight gradient together (the input gradient is the same on both
#: paths): the scan of :func:`spike_events`, the event kernels per event, and BLAS per
#: entry. Calibrated on the reference machine (benchmarks/results/calibration.md), so that
#: the break-even density is about 0.1-0.2 depending on ``n_out``.


SCAN_COST = 3.0e-10
EVENT_COST = 1.4e-10
DENSE_COST = 2.8e-11


#: :func:`density` reads this many runs of :data:`DENSITY_RUN` consecutive entries.
DENSITY_RUNS = 64
DENSITY_RUN = 1024


def density(x) -> float:
    """Fraction of non-zero entries of ``x``, estimated from :data:`DENSITY_RUNS` evenly
    spaced runs of :data:`DENSITY_RUN` consecutive entries (all of them when there are
    fewer): runs are read a cache line at a time, where single strided entries would each
    be a cache miss. The runs are cast to a contiguous boolean array before they are counted
    (NaN is non-zero, ``-0.0`` zero, as for ``np.count_nonzero``), which NumPy counts far
    faster than a strided view."""
    flat = x.reshape(-1)
    if flat.size <= DENSITY_RUNS * DENSITY_RUN:
        return float(np.count_nonzero(flat)) / max(1, flat.size)
    spacing = flat.size // DENSITY_RUNS
    runs = flat[: DENSITY_RUNS * spacing].reshape(DENSITY_RUNS, spacing)[:, :DENSITY_RUN]
    return float(np.count_nonzero(runs.astype(np.bool_))) / runs.size


#: Highest input density at which a narrow layer (``n_out`` at most :data:`NARROW_K`) keeps
#: the event-driven path: inside a training step BLAS's threads must wake up for every call,
#: which the cost model above does not price (calibration: benchmarks/results/calibration.md).
NARROW_SPARSE_MAX = 0.25


def use_sparse_path(x_density: float, n_out: int) -> bool:
    """Whether the event-driven projection beats the dense product for this density and width.

    The cost model above decides, except for narrow layers (``n_out`` at most
    :data:`NARROW_K`): they keep the event path, which calls no BLAS, up to a density of
    :data:`NARROW_SPARSE_MAX`.
    """
    if n_out <= NARROW_K and x_density <= NARROW_SPARSE_MAX:
        return True
    return SCAN_COST + EVENT_COST * x_density * n_out < DENSE_COST * n_out
