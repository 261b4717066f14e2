"""The count of non-finite entries (exponent bits) against np.isfinite, and the finiteness
checks that use it for large arrays."""

import numpy as np
import pytest

from numbaspike.kernels import finite
from numbaspike.validation import COUNT_MIN_SIZE, all_finite, check_all_finite

UNSIGNED = {np.float32: np.uint32, np.float64: np.uint64}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_count_matches_isfinite_on_random_bit_patterns(dtype):
    rng = np.random.default_rng(3)
    info = np.iinfo(UNSIGNED[dtype])
    bits = rng.integers(0, info.max, 50_001, dtype=UNSIGNED[dtype], endpoint=True)
    x = bits.view(dtype)  # every kind of float: NaN payloads, ±inf, subnormals, ±0
    special = np.array([np.nan, np.inf, -np.inf, np.finfo(dtype).max, -np.finfo(dtype).max,
                        np.finfo(dtype).tiny, np.finfo(dtype).smallest_subnormal, 0.0, -0.0],
                       dtype)  # fmt: skip
    x = np.concatenate([x, special])
    expected = int(np.count_nonzero(~np.isfinite(x)))
    assert expected > 0
    assert finite.count_non_finite(x) == expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_count_over_many_blocks_on_both_threads(dtype):
    """Arrays from PARALLEL_MIN_SIZE entries are counted in blocks, in a parallel region:
    every block's count reaches the sum, whatever the thread count."""
    import numbaspike

    size = 3 * finite.BLOCK + 123  # three full blocks and a short one
    assert size >= finite.PARALLEL_MIN_SIZE
    x = np.ones(size, dtype)
    bad = np.array([0, finite.BLOCK - 1, finite.BLOCK, 2 * finite.BLOCK + 7, size - 1])
    x[bad] = [np.nan, np.inf, -np.inf, np.nan, np.inf]
    before = numbaspike.get_num_threads()
    try:
        for threads in (1, before):
            numbaspike.set_num_threads(threads)
            assert finite.count_non_finite(x) == len(bad)
    finally:
        numbaspike.set_num_threads(before)


@pytest.mark.parametrize("size", [0, 1, 15, 17, 1000])
def test_count_handles_any_size(size):
    x = np.ones(size, np.float32)
    assert finite.count_non_finite(x) == 0
    if size:
        x[-1] = np.inf
        assert finite.count_non_finite(x) == 1


def test_count_refuses_other_arrays():
    with pytest.raises(ValueError, match="C-contiguous float32 or float64"):
        finite.count_non_finite(np.ones((4, 4), np.float32)[:, ::2])
    with pytest.raises(ValueError, match="C-contiguous float32 or float64"):
        finite.count_non_finite(np.ones(4, np.int32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_large_array_checks_name_the_first_bad_entry(dtype, bad):
    x = np.full((8, 16, 1024), 0.5, dtype)
    assert x.size >= COUNT_MIN_SIZE
    assert all_finite(x)
    check_all_finite("x", x)
    x[5, 3, 700] = bad
    x[6, 0, 0] = bad
    assert not all_finite(x)
    kind = "NaN" if np.isnan(bad) else "inf"
    with pytest.raises(ValueError, match=rf"x contains {kind} \(first at index \(5, 3, 700\)\)"):
        check_all_finite("x", x)


def test_large_finite_values_whose_sum_overflows_are_finite():
    x = np.full(COUNT_MIN_SIZE, np.finfo(np.float32).max, np.float32)
    assert all_finite(x)
    check_all_finite("x", x)
