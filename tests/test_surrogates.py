"""Surrogate derivatives s and smooth forwards F: F' = s numerically, plus known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numbaspike as ns
from numbaspike.surrogates import SURROGATE_KINKS

NAMES = (*ns.SURROGATE_NAMES, "fast_sigmoid")
ALPHAS = (0.5, 2.0, 10.0)


def central_difference(name: str, u: np.ndarray, alpha: float):
    """(F(u + e) - F(u - e)) / 2e with e scaled to |u| and to the width 1/alpha of F."""
    step = 1e-6 * np.maximum(1.0, np.abs(u)) * min(1.0, 1.0 / alpha)
    up = u + step
    down = u - step
    step = (up - down) / 2  # the step actually taken after rounding
    fd = (ns.surrogate_forward(name, up, alpha) - ns.surrogate_forward(name, down, alpha)) / (
        2 * step
    )
    return fd, step


def grid(name: str, alpha: float) -> np.ndarray:
    """u over the interesting range of F (a few widths 1/alpha, the kinks and beyond)."""
    half = max(4.0 / alpha, 2.0, 2.0 * alpha)
    return np.linspace(-half, half, 4001)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("name", NAMES)
def test_derivative_of_smooth_forward_is_surrogate(name, alpha):
    u = grid(name, alpha)
    fd, step = central_difference(name, u, alpha)
    # the stencil must not straddle a kink of F or F' (F'' jumps there and the central
    # difference error becomes O(step) instead of O(step^2); at a jump of F' it is O(1))
    kinks = np.asarray(SURROGATE_KINKS[name](alpha), dtype=np.float64)
    keep = np.ones(u.shape, bool)
    for k in kinks:
        keep &= np.abs(u - k) > 5 * step
    assert keep.sum() > 0.99 * u.size
    s = ns.surrogate_derivative(name, u, alpha)
    peak = float(np.max(s))
    err = np.abs(fd - s)[keep]
    assert np.max(err) <= 1e-6 * peak, f"max |F' - s| = {np.max(err):.3e}, peak s {peak:.3g}"


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("name", NAMES)
def test_kinks_are_where_the_table_says(name, alpha):
    """Away from the listed kinks F' = s to O(step^2); at a listed kink of F'' (or F') the
    two one-sided derivatives of s (or F) differ, i.e. the kink list is not empty for nothing."""
    for k in SURROGATE_KINKS[name](alpha):
        e = 1e-4 * min(1.0, 1.0 / alpha)
        s = ns.surrogate_derivative(name, np.array([k - 2 * e, k - e, k, k + e, k + 2 * e]), alpha)
        left = (s[1] - s[0]) / e
        right = (s[4] - s[3]) / e
        jump_s = abs(s[3] - s[1])
        assert abs(right - left) > 1e-3 or jump_s > 1e-3, f"no kink at {k}"


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("name", NAMES)
def test_smooth_forward_is_monotone_and_surrogate_nonnegative(name, alpha):
    u = grid(name, alpha)
    f = ns.surrogate_forward(name, u, alpha)
    s = ns.surrogate_derivative(name, u, alpha)
    assert np.all(np.isfinite(f)) and np.all(np.isfinite(s))
    assert np.all(np.diff(f) >= 0.0)
    assert np.all(s >= 0.0)
    # s is even, F - F(0) is odd
    peak = float(np.max(s))
    np.testing.assert_allclose(
        ns.surrogate_derivative(name, -u, alpha), s, rtol=1e-12, atol=1e-14 * peak
    )
    f0 = ns.surrogate_forward(name, np.zeros(1), alpha)[0]
    np.testing.assert_allclose(
        ns.surrogate_forward(name, -u, alpha) - f0, -(f - f0), rtol=1e-12, atol=1e-14
    )


def test_fast_sigmoid_is_superspike():
    u = np.linspace(-2, 2, 101)
    for alpha in ALPHAS:
        np.testing.assert_array_equal(
            ns.surrogate_derivative("fast_sigmoid", u, alpha),
            ns.surrogate_derivative("superspike", u, alpha),
        )
        np.testing.assert_array_equal(
            ns.surrogate_forward("fast_sigmoid", u, alpha),
            ns.surrogate_forward("superspike", u, alpha),
        )


@pytest.mark.parametrize("alpha", ALPHAS)
def test_known_values(alpha):
    def s(name, u):
        return float(ns.surrogate_derivative(name, np.array([u]), alpha)[0])

    def F(name, u):
        return float(ns.surrogate_forward(name, np.array([u]), alpha)[0])

    # values at u = 0 (DESIGN.md §1 table)
    assert s("superspike", 0.0) == 1.0
    assert s("sigmoid", 0.0) == pytest.approx(alpha / 4, rel=1e-15)
    assert s("atan", 0.0) == pytest.approx(alpha / 2, rel=1e-15)
    assert s("tanh", 0.0) == 1.0
    assert s("erfc", 0.0) == pytest.approx(2 / math.sqrt(math.pi), rel=1e-15)
    assert s("triangle", 0.0) == pytest.approx(alpha, rel=1e-15)
    assert s("boxcar", 0.0) == pytest.approx(1 / (2 * alpha), rel=1e-15)
    for name in ("superspike", "tanh", "erfc", "triangle"):
        assert F(name, 0.0) == 0.0
    for name in ("sigmoid", "atan", "boxcar"):
        assert F(name, 0.0) == pytest.approx(0.5, rel=1e-15)
    # values away from 0
    assert s("superspike", 1.0) == pytest.approx(1 / (alpha + 1) ** 2, rel=1e-14)
    assert F("superspike", 1.0) == pytest.approx(1 / (1 + alpha), rel=1e-14)
    sig = 1 / (1 + math.exp(-alpha))
    assert s("sigmoid", 1.0) == pytest.approx(alpha * sig * (1 - sig), rel=1e-12)
    assert F("sigmoid", 1.0) == pytest.approx(sig, rel=1e-14)
    # atan: half height at u = 2 / (pi alpha)
    assert s("atan", 2 / (math.pi * alpha)) == pytest.approx(alpha / 4, rel=1e-14)
    assert F("atan", 2 / (math.pi * alpha)) == pytest.approx(0.75, rel=1e-14)
    assert s("tanh", 0.5) == pytest.approx(1 - math.tanh(alpha / 2) ** 2, rel=1e-12, abs=1e-300)
    assert F("erfc", 0.5) == pytest.approx(math.erf(alpha / 2) / alpha, rel=1e-14)
    assert s("triangle", 0.5) == pytest.approx(alpha / 2, rel=1e-15)
    assert s("triangle", 1.5) == 0.0 and s("triangle", -1.0) == 0.0
    assert F("triangle", 0.5) == pytest.approx(alpha * 3 / 8, rel=1e-15)
    assert F("triangle", 5.0) == pytest.approx(alpha / 2, rel=1e-15)
    assert F("triangle", -5.0) == pytest.approx(-alpha / 2, rel=1e-15)
    assert s("boxcar", 1.5 * alpha) == 0.0
    assert F("boxcar", alpha / 2) == pytest.approx(0.75, rel=1e-15)
    assert F("boxcar", 2 * alpha) == 1.0 and F("boxcar", -2 * alpha) == 0.0


@pytest.mark.parametrize("name", ["sigmoid", "atan", "boxcar"])
@pytest.mark.parametrize("alpha", ALPHAS)
def test_normalised_surrogates_integrate_to_one(name, alpha):
    """F(+inf) - F(-inf) = integral of s = 1 for the step-like surrogates."""
    far = np.array([-1e9, 1e9])
    f = ns.surrogate_forward(name, far, alpha)
    assert f[1] - f[0] == pytest.approx(1.0, abs=1e-8)


def test_output_shape_and_dtype():
    u = np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 4)
    for fn in (ns.surrogate_forward, ns.surrogate_derivative):
        out = fn("sigmoid", u, 3.0)
        assert out.shape == u.shape and out.dtype == np.float64
        np.testing.assert_allclose(out.ravel(), fn("sigmoid", u.ravel().astype(np.float64), 3.0))
        # strided / transposed input, scalar input, list input
        np.testing.assert_array_equal(fn("atan", u.T, 2.0), fn("atan", u.T.copy(), 2.0))
        np.testing.assert_array_equal(
            fn("erfc", [0.0, 0.5], 2.0), fn("erfc", np.array([0, 0.5]), 2.0)
        )


def test_scalar_input_gives_scalar_output():
    for fn in (ns.surrogate_forward, ns.surrogate_derivative):
        assert np.shape(fn("tanh", 0.25, 2.0)) == ()


@pytest.mark.parametrize("bad", ["nope", "SuperSpike", "", None, 3, ["sigmoid"]])
def test_unknown_surrogate_name(bad):
    for fn in (ns.surrogate_forward, ns.surrogate_derivative):
        with pytest.raises(ValueError, match="surrogate"):
            fn(bad, np.zeros(3), 1.0)
    with pytest.raises(ValueError, match="surrogate"):
        ns.LIFParameters(surrogate=bad)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    alpha=st.floats(0.3, 20.0),
    w=st.floats(-3.0, 3.0),
)
def test_derivative_property(name, alpha, w):
    """F' = s at random points (u = w / alpha, i.e. in units of the width of F)."""
    u = np.array([w / alpha if name not in ("triangle",) else w / 2])
    fd, step = central_difference(name, u, alpha)
    kinks = SURROGATE_KINKS[name](alpha)
    if any(abs(u[0] - k) <= 5 * step[0] for k in kinks):
        return
    s = ns.surrogate_derivative(name, u, alpha)
    peak = float(ns.surrogate_derivative(name, np.zeros(1), alpha)[0])
    assert abs(fd[0] - s[0]) <= 1e-6 * peak


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("nan"), "sharp"])
def test_surrogate_functions_reject_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        ns.surrogate_forward("tanh", 0.1, alpha)
    with pytest.raises(ValueError, match="alpha"):
        ns.surrogate_derivative("tanh", 0.1, alpha)
