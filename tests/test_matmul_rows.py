"""The register tiles of the recurrent backward product (compiler.intrinsics.matmul_rows)
against NumPy, and the property both recurrent kernels rely on: however the product is
split into tiles, every entry has the same bits."""

import numpy as np
import pytest
from numba import njit

from numbaspike.compiler import intrinsics
from numbaspike.kernels.cpu import _recurrent_grad, _rows_times_matrix


@njit
def _by_pieces(a, t, b0, rows, w, widths, out):
    """The product of ``rows`` rows, one row at a time and in column pieces of ``widths``."""
    for r in range(rows):
        col = 0
        for width in widths:
            _rows_times_matrix(a, t, b0 + r, 1, w, col, width, out, r, col)
            col += width


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "rows, k, n",
    [(8, 256, 256), (13, 37, 70), (4, 5, 33), (3, 1, 17), (1, 40, 1), (9, 16, 48)],
)
def test_rows_times_matrix_equals_numpy(rows, k, n, dtype):
    rng = np.random.default_rng(rows * 1000 + n)
    a = rng.normal(size=(3, rows + 2, k)).astype(dtype)
    w = rng.normal(size=(k, n + 5)).astype(dtype)
    out = np.full((rows + 1, n + 3), np.nan, dtype)
    # rows 1..rows of a at step 2, columns 5.. of w, into out[1:, 3:]
    _rows_times_matrix(a, 2, 1, rows, w, 5, n, out, 1, 3)
    expected = a[2, 1 : rows + 1].astype(np.float64) @ w[:, 5:].astype(np.float64)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    scale = np.abs(a).max() * np.abs(w).max() * k
    np.testing.assert_allclose(out[1:, 3:], expected, rtol=0, atol=tol * scale)
    assert np.isnan(out[0]).all() and np.isnan(out[:, :3]).all()  # nothing else written


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_tiling_gives_the_same_bits(dtype):
    rng = np.random.default_rng(1)
    rows, k, n = 13, 50, 71  # 8 + 4 + 1 rows; vector, single-vector and column tails
    a = rng.normal(size=(2, rows, k)).astype(dtype)
    w = rng.normal(size=(k, n)).astype(dtype)
    whole = np.empty((rows, n), dtype)
    _rows_times_matrix(a, 1, 0, rows, w, 0, n, whole, 0, 0)
    for widths in ([n], [1] * n, [7, 32, 16, 16], [40, 31]):
        pieces = np.empty((rows, n), dtype)
        _by_pieces(a, 1, 0, rows, w, np.array(widths), pieces)
        np.testing.assert_array_equal(pieces, whole, err_msg=str(widths))
    acc = np.zeros((rows, n), np.float64)  # the same terms summed in float64
    for j in range(k):
        acc = acc + a[1, :, j : j + 1].astype(np.float64) * w[j].astype(np.float64)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(whole, acc, rtol=0, atol=tol * np.abs(acc).max())


def test_recurrent_grad_is_zero_past_the_last_step():
    a = np.ones((4, 3, 5))
    w = np.ones((5, 6))
    out = np.full((3, 6), np.nan)
    _recurrent_grad(a, 4, 0, 3, w, 0, 6, out, 0, 0)
    assert not out.any()
    _recurrent_grad(a, 3, 0, 3, w, 0, 6, out, 0, 0)
    np.testing.assert_array_equal(out, 5.0)


def test_the_tile_shape_follows_the_widest_vectors_of_the_target():
    assert intrinsics.tile_shape("+avx2,+fma,+avx512f,+avx512bw") == (64, 2, 8)
    assert intrinsics.tile_shape("+avx2,+fma,-avx512f,-avx512bw") == (32, 2, 4)
    assert intrinsics.tile_shape("+sse4.2,-avx2,-avx512f") == (32, 2, 4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape", [(64, 2, 8), (32, 2, 4), (32, 1, 8), (32, 2, 8), (16, 1, 8), (32, 3, 3), (32, 1, 1)]
)
def test_every_tile_shape_gives_the_same_bits(monkeypatch, dtype, shape):
    """The tiles of either target (and others) give the bits of this machine's tiles: a
    cache or a result from another CPU cannot differ by the tiling."""
    monkeypatch.setattr(intrinsics, "_target_tile_shape", lambda context: shape)
    eight_rows, one_row = intrinsics.matmul_rows(8), intrinsics.matmul_rows(1)

    @njit
    def product(a, w, out):
        eight_rows(out, 0, 0, a, 1, 0, w, 0, w.shape[1])
        for r in range(8, a.shape[1]):
            one_row(out, r, 0, a, 1, r, w, 0, w.shape[1])

    rng = np.random.default_rng(5)
    a = rng.normal(size=(2, 11, 45)).astype(dtype)
    w = rng.normal(size=(45, 83)).astype(dtype)  # vector tiles, a single vector, columns
    tiled = np.empty((11, 83), dtype)
    product(a, w, tiled)
    here = np.empty((11, 83), dtype)
    monkeypatch.undo()
    _rows_times_matrix(a, 1, 0, 11, w, 0, 83, here, 0, 0)
    np.testing.assert_array_equal(tiled, here)
