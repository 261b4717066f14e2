"""Event lists of sparse inputs and the event-driven projection kernels."""

import os
import subprocess
import sys

import numba
import numpy as np
import pytest

from numbaspike.kernels import cpu
from numbaspike.kernels import projection as P

DTYPES = [np.float32, np.float64]


def _tolerance(dtype):
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-12


def _assert_close(actual, expected, dtype):
    """Relative to the largest entry (outputs are sums of signed terms and can cancel)."""
    tol = _tolerance(dtype)
    scale = float(np.abs(expected).max()) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * max(scale, 1e-30))


def _inputs(rng, dtype):
    """Named 2-D inputs covering the edge cases of the event list."""
    spikes = (rng.random((203, 150)) < 0.05).astype(dtype)
    spikes[[0, 7, 8, 9, 202]] = 0  # empty rows, at both ends too
    spikes[3, [0, 63, 64, 127, 128, 149]] = 1  # mask-word boundaries, first and last column
    spikes[4] = 1  # a full row
    currents = (rng.random((203, 150)) < 0.1) * rng.normal(size=(203, 150))
    return {
        "spikes": spikes,  # 203 rows: not a multiple of the chunk count
        "currents": currents.astype(dtype),
        "counts": ((rng.random((37, 64)) < 0.3) * rng.integers(1, 4, (37, 64))).astype(dtype),
        "all zero": np.zeros((13, 70), dtype),
        "fully dense": rng.normal(size=(11, 129)).astype(dtype) + dtype(10),
        "dense ones": np.ones((5, 65), dtype),
        "one row": (rng.random((1, 700)) < 0.02).astype(dtype),
        "one entry": np.full((1, 1), 2.5, dtype),
        "no rows": np.zeros((0, 40), dtype),
    }


CASES = list(_inputs(np.random.default_rng(0), np.float32))


@pytest.fixture
def two_threads():
    """Yields a function running ``f`` on ``n`` Numba threads."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs NUMBA_NUM_THREADS >= 2")
    previous = numba.get_num_threads()

    def run(n, f):
        numba.set_num_threads(n)
        try:
            return f()
        finally:
            numba.set_num_threads(previous)

    return run


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_events_round_trip_to_the_dense_input(case, dtype):
    x = _inputs(np.random.default_rng(1), dtype)[case]
    ev = P.spike_events(x)
    assert ev.shape == x.shape and ev.dtype == np.dtype(dtype)
    assert ev.row_ptr.dtype == np.int64 and ev.row_ptr.shape == (x.shape[0] + 1,)
    assert ev.cols.dtype == np.int32 and ev.nnz == np.count_nonzero(x)
    rows, cols = np.nonzero(x)  # row-major order: increasing columns within a row
    np.testing.assert_array_equal(np.diff(ev.row_ptr), np.count_nonzero(x, axis=1))
    np.testing.assert_array_equal(ev.cols, cols)
    spikes = bool(np.all(x[rows, cols] == 1))
    assert (ev.values is None) == spikes
    if not spikes:
        assert ev.values.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(ev.values, x[rows, cols])
    dense = ev.to_dense()
    assert dense.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(dense, x)
    assert ev.density == pytest.approx(np.count_nonzero(x) / max(1, x.size))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("column", [0, 63, 64, 129, 149])  # full words and the tail word
@pytest.mark.parametrize("value", [2.0, 0.5, -1.0, np.nan, 1.0 + 2.0**-20])
def test_one_event_other_than_1_keeps_all_values(dtype, column, value):
    """The first pass finds whether every event is exactly 1 (then no values are stored
    and the second pass does not read x): one other value anywhere must keep them all."""
    rng = np.random.default_rng(7)
    x = (rng.random((300, 150)) < 0.05).astype(dtype)
    x[217, column] = value
    ev = P.spike_events(x)
    assert ev.values is not None
    rows, cols = np.nonzero(x)
    np.testing.assert_array_equal(ev.cols, cols)
    np.testing.assert_array_equal(ev.values, x[rows, cols])
    x[217, column] = 1.0
    assert P.spike_events(x).values is None


def test_events_of_strided_input_and_special_values():
    x = np.zeros((6, 10))
    x[1, 2], x[2, 4], x[3, 6], x[4, 8] = np.nan, -0.0, np.inf, -3.0
    ev = P.spike_events(x[:, ::2])  # not contiguous
    np.testing.assert_array_equal(ev.cols, [1, 3, 4])  # -0.0 is not an event, NaN is
    np.testing.assert_array_equal(ev.values, [np.nan, np.inf, -3.0])
    np.testing.assert_array_equal(ev.to_dense(), x[:, ::2])


def test_events_reject_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        P.spike_events(np.zeros(5))
    with pytest.raises(ValueError, match="float32 or float64"):
        P.spike_events(np.zeros((2, 3), np.int64))
    ev = P.spike_events(np.eye(3))
    with pytest.raises(ValueError, match="w_t must have shape"):
        P.events_matmul(ev, np.zeros((4, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="out must have shape"):
        P.events_matmul(ev, np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="grad_y must have shape"):
        P.events_weight_grad(ev, np.zeros((4, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="grad_w must have shape"):
        P.events_weight_grad(ev, np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="C-contiguous"):
        P.events_weight_grad(ev, np.zeros((3, 2)), np.zeros((3, 2)).T)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_events_matmul_equals_dense_product(case, dtype):
    rng = np.random.default_rng(2)
    x = _inputs(rng, dtype)[case]
    w_t = rng.normal(size=(x.shape[1], 37)).astype(dtype)
    out = np.full((x.shape[0], 37), np.nan, dtype)  # must be overwritten
    assert P.events_matmul(P.spike_events(x), w_t, out) is out
    _assert_close(out, x.astype(np.float64) @ w_t.astype(np.float64), dtype)


@pytest.mark.parametrize("budget", [0, 1 << 30], ids=["column blocks", "row partials"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_events_weight_grad_equals_dense_product(case, dtype, budget, monkeypatch):
    monkeypatch.setattr(P, "PARTIALS_BUDGET", budget)
    rng = np.random.default_rng(3)
    x = _inputs(rng, dtype)[case]
    gy = rng.normal(size=(x.shape[0], 21)).astype(dtype)
    before = rng.normal(size=(21, x.shape[1])).astype(dtype)
    grad = before.copy()
    assert P.events_weight_grad(P.spike_events(x), gy, grad) is grad  # accumulates
    expected = before + gy.T.astype(np.float64) @ x.astype(np.float64)
    _assert_close(grad, expected, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape", [(8, 700, 256), (3, 37, 2 * cpu.SUM_TILE + 5), (1, 5, 3)], ids=str
)
def test_sum_partials_adds_the_transposed_chunk_sum(shape, dtype, two_threads):
    """``out += (p_0 + p_1 + ...).T`` exactly (the chunk order), for partial row counts that
    are not whole blocks and rows longer than a tile, with 1 and 2 threads."""
    rng = np.random.default_rng(7)
    partials = rng.normal(size=shape).astype(dtype)
    before = rng.normal(size=(shape[2], shape[1])).astype(dtype)
    total = partials[0].copy()
    for part in partials[1:]:
        total += part
    expected = before + total.T

    def run():
        out = before.copy()
        cpu.sum_partials(partials, out)
        return out

    for threads in (1, 2):
        np.testing.assert_array_equal(two_threads(threads, run), expected)


@pytest.mark.parametrize("budget", [0, 1 << 30], ids=["column blocks", "row partials"])
@pytest.mark.parametrize("spikes", [True, False], ids=["spikes", "values"])
def test_event_kernels_do_not_depend_on_thread_count(spikes, budget, two_threads, monkeypatch):
    monkeypatch.setattr(P, "PARTIALS_BUDGET", budget)
    rng = np.random.default_rng(4)
    x = (rng.random((1003, 150)) < 0.05).astype(np.float32)
    if not spikes:
        x *= rng.normal(size=x.shape).astype(np.float32)
    ev = P.spike_events(x)
    assert (ev.values is None) == spikes
    gy = rng.normal(size=(1003, 70)).astype(np.float32)
    w_t = rng.normal(size=(150, 70)).astype(np.float32)

    def run():
        grad = np.zeros((70, 150), np.float32)
        P.events_weight_grad(ev, gy, grad)
        out = np.empty((1003, 70), np.float32)
        P.events_matmul(ev, w_t, out)
        e = P.spike_events(x)
        return grad, out, e.row_ptr, e.cols, e.values

    one, two = two_threads(1, run), two_threads(2, run)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(one[0].view(np.uint32), two[0].view(np.uint32))  # bits


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m_rows", [0, 1, 203])
@pytest.mark.parametrize("k_in", [1, 3, 4, 7, 20, 32])
@pytest.mark.parametrize("n_out", [1, 37, 256])
def test_narrow_matmul_equals_dense_product(n_out, k_in, m_rows, dtype):
    rng = np.random.default_rng(5)
    a = rng.normal(size=(m_rows, k_in)).astype(dtype)
    b = rng.normal(size=(k_in, n_out)).astype(dtype)
    out = np.full((m_rows, n_out), np.nan, dtype)  # must be overwritten
    assert P.narrow_matmul(a, b, out) is out
    _assert_close(out, a.astype(np.float64) @ b.astype(np.float64), dtype)


def test_narrow_matmul_takes_strided_operands():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(40, 9))
    b = rng.normal(size=(30, 9))
    out = np.empty((40, 30))
    P.narrow_matmul(a, b.T, out)  # b.T is not C-contiguous
    _assert_close(out, a @ b.T, np.float64)
    P.narrow_matmul(a[::2], b.T, out[:20])
    _assert_close(out[:20], a[::2] @ b.T, np.float64)


def test_narrow_matmul_does_not_depend_on_thread_count(two_threads):
    rng = np.random.default_rng(7)
    a = rng.normal(size=(1003, 21)).astype(np.float32)
    b = rng.normal(size=(21, 70)).astype(np.float32)

    def run():
        return P.narrow_matmul(a, b, np.empty((1003, 70), np.float32))

    np.testing.assert_array_equal(
        two_threads(1, run).view(np.uint32), two_threads(2, run).view(np.uint32)
    )


def test_narrow_matmul_rejects_bad_operands():
    a, b = np.zeros((5, 3)), np.zeros((3, 4))
    with pytest.raises(ValueError, match="do not match"):
        P.narrow_matmul(a, np.zeros((2, 4)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="out must have shape"):
        P.narrow_matmul(a, b, np.zeros((4, 5)))
    with pytest.raises(ValueError, match="share one dtype"):
        P.narrow_matmul(a, b.astype(np.float32), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="share one dtype"):
        P.narrow_matmul(a.astype(int), b.astype(int), np.zeros((5, 4), int))
    with pytest.raises(ValueError, match="C-contiguous"):
        P.narrow_matmul(a, b, np.zeros((4, 5)).T)


CACHE_SNIPPET = r"""
import hashlib, numpy as np
from numbaspike.kernels import projection as P
rng = np.random.default_rng(0)
x = (rng.random((300, 200)) < 0.05).astype(np.float32)
ev = P.spike_events(x)
out = P.events_matmul(ev, rng.normal(size=(200, 30)).astype(np.float32), np.empty((300, 30), np.float32))
g = P.events_weight_grad(ev, rng.normal(size=(300, 30)).astype(np.float32), np.zeros((30, 200), np.float32))
h = hashlib.sha256()
for a in (ev.row_ptr, ev.cols, out, g):
    h.update(a.tobytes())
print(h.hexdigest())
"""


def test_event_kernels_load_from_the_cache(tmp_path):
    def run(**extra_env):
        env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), **extra_env)
        out = subprocess.run(
            [sys.executable, "-c", CACHE_SNIPPET], env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert "NumbaWarning" not in out.stderr, out.stderr
        return out.stdout.strip().splitlines()

    fresh = run()  # compiles and writes the cache
    kernels = ("_event_masks", "_compact_events", "_events_matmul", "_weight_grad_partials")
    index_files = {f for _, _, files in os.walk(tmp_path) for f in files if f.endswith(".nbi")}
    for kernel in kernels:
        assert any(kernel in f for f in index_files), (kernel, index_files)
    cached = run(NUMBA_DEBUG_CACHE="1")  # loads from the cache
    assert cached[-1] == fresh[-1]
    log = "\n".join(cached[:-1])
    assert "data saved" not in log, log
    for kernel in kernels:
        assert any("data loaded" in line and kernel in line for line in cached), (kernel, log)
