"""The vectorisable exponential of the CPU kernels and the surrogate derivatives built on it,
against float64 NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from reference_numpy import SURROGATES, surrogate_s

from numbaspike.kernels import cpu
from numbaspike.kernels.vector_math import exp_nonpositive
from numbaspike.surrogates import SURROGATE_CODES

LOWEST = {np.float64: -708.0, np.float32: -87.0}
MAX_ULP = {np.float64: 1.0, np.float32: 1.5}  # measured: 1.0 and 1.19


@njit(error_model="numpy")
def _exp_all(x, out):
    for k in range(x.size):
        out[k] = exp_nonpositive(x[k])


def _ulp_error(got: np.ndarray, exact: np.ndarray, dtype) -> np.ndarray:
    return np.abs(got.astype(np.float64) - exact) / np.spacing(exact.astype(dtype)).astype(
        np.float64
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exp_nonpositive_is_within_an_ulp_or_so_of_numpy(dtype):
    lowest = LOWEST[dtype]
    x = np.concatenate(
        [np.linspace(lowest, 0.0, 400_001), -np.logspace(-40, np.log10(-lowest), 20_001)]
    ).astype(dtype)
    x = x[x >= lowest]
    out = np.empty_like(x)
    _exp_all(x, out)
    exact = np.exp(x.astype(np.float64))
    assert _ulp_error(out, exact, dtype).max() <= MAX_ULP[dtype]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exp_nonpositive_special_values(dtype):
    lowest = LOWEST[dtype]
    x = np.array([0.0, -0.0, np.nan, -np.inf, -1e30, lowest - 1.0, lowest], dtype)
    out = np.empty_like(x)
    _exp_all(x, out)
    assert out[0] == 1.0 and out[1] == 1.0
    assert np.isnan(out[2])
    assert np.all(out[3:6] == 0.0)  # results that would be subnormal are 0
    exact = np.exp(np.float64(lowest))
    assert _ulp_error(out[6:], np.array([exact]), dtype)[0] <= MAX_ULP[dtype]


@njit
def _surrogate_all(h, th, code, alpha, out):
    cpu._surrogate_grad_block(h, th, h.size, code, alpha, out)


def _reference(name: str, y: np.ndarray, alpha: float) -> np.ndarray:
    """``s(u)`` at ``u = y / alpha`` in float64; sigmoid and tanh as 1/cosh^2 (no
    cancellation where the sigmoid or tanh is close to 1)."""
    if name == "sigmoid":
        return alpha / (4.0 * np.cosh(y / 2) ** 2)
    if name == "tanh":
        return 1.0 / np.cosh(y) ** 2
    return surrogate_s(name, y / alpha, alpha)


#: How much a relative error of ``y`` is amplified in ``s``: |d ln s / d ln y|.
CONDITION = {"sigmoid": lambda y: np.abs(y), "tanh": lambda y: 2 * np.abs(y),
             "erfc": lambda y: 2 * y * y}  # fmt: skip


@pytest.mark.parametrize("name", SURROGATES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("alpha", [0.5, 2.0, 128.0])  # powers of 2: alpha * u is exact
def test_surrogate_derivative_block_matches_the_float64_formula(name, dtype, alpha):
    u = np.concatenate([np.linspace(-3.0, 3.0, 20_001), [0.0, -0.0]]).astype(dtype)
    if name in ("triangle", "boxcar"):
        u = u[np.abs(np.abs(u) - {"triangle": 1.0, "boxcar": alpha}[name]) > 1e-3]
    u = u[np.abs(u.astype(np.float64) * alpha) < 300]  # cosh stays finite in the reference
    y = u.astype(np.float64) * alpha
    out = np.empty_like(u)
    _surrogate_all(u, np.zeros_like(u), SURROGATE_CODES[name], dtype(alpha), out)
    exact = _reference(name, y, alpha)
    eps = np.finfo(dtype).eps
    # a few roundings, each amplified by the condition number of s at y (y * y rounds once)
    rtol = 8 * eps * (1 + CONDITION.get(name, lambda y: 0 * y)(y))
    tiny = np.finfo(dtype).tiny / eps
    err = np.abs(out.astype(np.float64) - exact)
    worst = np.argmax(err - rtol * exact)
    assert np.all(err <= rtol * exact + tiny), (name, y[worst], out[worst], exact[worst])
