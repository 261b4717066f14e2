"""What finite differences can resolve: rounding, truncation, and wrong gradients still fail.

A central difference of a loss ``L`` with step ``h`` cannot resolve less than about
``eps * |L| / h`` (rounding), nor, on a stiff function, be closer than its truncation error.
check_gradients / check_network must accept a correct gradient whose error is within those
bounds (no false alarms), and must still fail, naming the input, when the gradient is
wrong by 2 % (or by far less where the function is well resolved).
"""

from __future__ import annotations

import numpy as np
import pytest

import numbaspike.gradcheck as gc
from numbaspike.layers import LI, LIFRecurrent, Linear
from numbaspike.losses import MaxOverTimeCrossEntropy, MeanOverTimeCrossEntropy
from numbaspike.network import Sequential
from numbaspike.params import LIFParameters

pytestmark = pytest.mark.usefixtures("single_numba_thread")


def _default_network(seed: int) -> tuple[Sequential, np.ndarray, np.ndarray]:
    """The network of the report: default neuron parameters (superspike, alpha = 100),
    default initial weights, Linear -> LIFRecurrent -> Linear -> LI."""
    rng = np.random.default_rng(seed)
    f64 = np.float64
    net = Sequential(
        Linear(3, 5, seed=rng, dtype=f64),
        LIFRecurrent(5, LIFParameters(), seed=rng, dtype=f64),
        Linear(5, 3, seed=rng, dtype=f64),
        LI(3, dtype=f64),
    )
    x = rng.uniform(0.0, 10.0, (12, 2, 3))
    labels = rng.integers(0, 3, 2)
    return net, x, labels


def test_a_correct_recurrent_gradient_below_the_old_resolution_passes():
    """The recurrent weights' gradient is ~1e-8 and its FD error ~1e-12, the rounding of the
    loss divided by the step: within the resolution the row reports."""
    net, x, labels = _default_network(0)
    result = gc.check_network(net, x, MaxOverTimeCrossEntropy(), labels)
    assert result.ok, str(result)
    row = result["1.w_rec"]
    scale = float(np.max(np.abs(gc.smooth_copy(net).parameters()["1.w_rec"])))
    assert scale > 0
    assert 0 < row.max_abs_err <= row.resolution  # rounding, and the report says so
    assert row.resolution >= gc.ROUNDING_SAFETY * 1.5 * np.finfo(float).eps * 0.5 / row.step
    assert result.checked == result.checks - result.excluded > 0
    text = str(result)
    assert "resolution" in text and "excluded" in text
    assert f"{result.checked} of {result.checks} checks measured" in text


@pytest.mark.parametrize("name", ["0.weight", "1.w_rec", "2.weight"])
@pytest.mark.parametrize("loss", [MaxOverTimeCrossEntropy(), MeanOverTimeCrossEntropy()])
def test_check_network_fails_on_a_weight_gradient_scaled_by_1_02(monkeypatch, name, loss):
    """A 2 % error in one weight gradient fails that row (and only that row), even for the
    recurrent weights whose whole gradient is a few 1e-8."""
    layer_index, param = name.split(".")
    original = Sequential.backward

    def scaled(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        self.layers[int(layer_index)]._grads[param] *= 1.02
        return out

    net, x, labels = _default_network(1)
    assert gc.check_network(net, x, loss, labels).ok
    monkeypatch.setattr(Sequential, "backward", scaled)
    result = gc.check_network(net, x, loss, labels)
    assert not result.ok
    failed = [r.name for r in result.rows if not r.ok]
    assert failed == [name], str(result)
    assert f"{name} " in str(result) and "FAIL" in str(result)


# --------------------------------------------------------------------------------------------
# check_gradients on functions with known rounding and truncation
# --------------------------------------------------------------------------------------------


def _noisy(d) -> float:
    """sum(sin(a)), computed as a small difference of large numbers: its rounding is
    ~1e8 * eps, far above eps * |L|, so only a measured noise level explains it."""
    big = 1e8
    return float((big + np.sum(np.sin(d["a"]))) - big)


def test_rounding_noise_far_above_eps_times_the_loss_is_measured():
    a = np.linspace(-1.0, 1.0, 6)
    good = gc.check_gradients(_noisy, {"a": a}, {"a": np.cos(a)})
    assert good.ok, str(good)
    row = good["a"]
    # the a-priori term alone (eps |L| / h ~ 1e-11) would call this a failure
    assert row.max_abs_err > 1e3 * gc._rounding_resolution(1.0, row.step, 4)
    assert row.max_abs_err <= row.resolution < 1e-2
    bad = gc.check_gradients(_noisy, {"a": a}, {"a": 1.02 * np.cos(a)})
    assert not bad.ok and not bad["a"].ok, str(bad)


def _stiff(d) -> float:
    """A sharp step: at the default step the fourth-order stencil is off by ~1e-4."""
    return float(np.sum(np.tanh(2000.0 * d["a"])))


def _stiff_grad(a: np.ndarray) -> np.ndarray:
    return 2000.0 / np.cosh(2000.0 * a) ** 2


def test_truncation_is_removed_by_halving_the_step():
    a = np.array([3e-4, -5e-4, 8e-4])
    h = 1e-4
    coarse = gc.finite_difference(_stiff, {"a": a}, "a", np.eye(3)[0], h, order=4)
    assert abs(coarse / _stiff_grad(a)[0] - 1.0) > 1e-5  # the first stencil alone fails
    good = gc.check_gradients(_stiff, {"a": a}, {"a": _stiff_grad(a)})
    assert good.ok, str(good)
    assert good.max_rel_err <= 1e-6
    for factor in (1.02, 1.0 + 1e-4):
        bad = gc.check_gradients(_stiff, {"a": a}, {"a": factor * _stiff_grad(a)})
        assert not bad.ok, (factor, str(bad))


def test_a_tiny_relative_error_still_fails_where_the_function_is_resolved():
    """The resolution is a floor, not a looser tolerance: on a well-scaled function a
    1e-5 relative error is still caught at tol 1e-6."""
    a = np.linspace(0.1, 1.0, 5)

    def f(d):
        return float(np.sum(np.sin(d["a"])))

    assert gc.check_gradients(f, {"a": a}, {"a": np.cos(a)}).ok
    bad = gc.check_gradients(f, {"a": a}, {"a": (1.0 + 1e-5) * np.cos(a)})
    assert not bad.ok
    assert bad["a"].resolution < 1e-9
