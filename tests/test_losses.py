"""Losses and regularisers: value and gradient against PyTorch autograd and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from numbaspike.losses import (
    FiringRateRegularizer,
    MaxOverTimeCrossEntropy,
    MeanOverTimeCrossEntropy,
    MembraneMSE,
    SpikeCountCrossEntropy,
    SpikeCountL1,
    SpikeCountL2,
    SpikeCountMSE,
    VanRossumDistance,
    accuracy,
    cross_entropy,
)

T, B, C = 6, 4, 5
RTOL = 1e-10


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def torch_value_and_grad(fn, output: np.ndarray) -> tuple[float, np.ndarray]:
    """Value of ``fn(output)`` and its autograd gradient, in float64."""
    x = torch.tensor(output, dtype=torch.float64, requires_grad=True)
    value = fn(x)
    value.backward()
    return float(value.detach()), x.grad.numpy()


def assert_matches(value, grad, ref_value, ref_grad, rtol=RTOL):
    assert np.isfinite(value)
    assert abs(value - ref_value) <= rtol * max(abs(ref_value), 1e-300), (value, ref_value)
    scale = np.abs(ref_grad).max()
    np.testing.assert_allclose(grad, ref_grad, rtol=rtol, atol=rtol * scale)


def finite_difference(fn, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``fn`` w.r.t. every element of ``x`` (float64)."""
    grad = np.empty_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + h
        up = fn(x)
        flat[k] = old - h
        down = fn(x)
        flat[k] = old
        gflat[k] = (up - down) / (2 * h)
    return grad


def check_fd(fn_value_grad, x: np.ndarray, rtol: float = 1e-6):
    _, grad = fn_value_grad(x)
    fd = finite_difference(lambda y: fn_value_grad(y)[0], x.copy())
    np.testing.assert_allclose(grad, fd, rtol=rtol, atol=rtol * np.abs(fd).max())


def untied_membrane(rng, shape=(T, B, C)) -> np.ndarray:
    """Random membrane whose values along time are at least 0.05 apart (no ties, FD-safe)."""
    levels = np.argsort(rng.random(shape), axis=0).astype(np.float64)  # permutation of 0..T-1
    return 0.05 * levels * rng.choice([1.0, 1.3], size=shape[1:]) + rng.normal(size=shape[1:])


@pytest.fixture
def labels(rng) -> np.ndarray:
    return rng.integers(0, C, size=B)


# --------------------------------------------------------------------------------------------
# cross-entropy family
# --------------------------------------------------------------------------------------------

CE_CASES = [
    (MaxOverTimeCrossEntropy, lambda x: x.max(dim=0).values),
    (MeanOverTimeCrossEntropy, lambda x: x.mean(dim=0)),
    (SpikeCountCrossEntropy, lambda x: x.sum(dim=0)),
]


@pytest.mark.parametrize(("cls", "reduce"), CE_CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_cross_entropy_losses_match_torch(cls, reduce, rng, labels):
    out = 3.0 * rng.normal(size=(T, B, C))
    loss = cls()
    value, grad = loss(out, labels)
    ref_value, ref_grad = torch_value_and_grad(
        lambda x: F.cross_entropy(reduce(x), torch.tensor(labels)), out
    )
    assert_matches(value, grad, ref_value, ref_grad)
    assert grad.shape == out.shape and grad.dtype == out.dtype
    ref_logits = reduce(torch.tensor(out)).numpy()
    np.testing.assert_allclose(loss.logits(out), ref_logits, rtol=1e-13)
    pred = loss.predict(out)
    assert pred.dtype == np.int64 and pred.shape == (B,)
    np.testing.assert_array_equal(pred, np.argmax(ref_logits, axis=1))


@pytest.mark.parametrize("cls", [c for c, _ in CE_CASES], ids=lambda c: c.__name__)
def test_cross_entropy_losses_finite_differences(cls, rng, labels):
    out = untied_membrane(rng)
    check_fd(lambda x: cls()(x, labels), out)


def test_max_over_time_ties_go_to_first_step_like_torch(labels):
    out = np.zeros((T, B, C))
    out[1] = 1.0
    out[3] = 1.0  # tie between steps 1 and 3 everywhere
    out[4, 0, 0] = 1.0
    value, grad = MaxOverTimeCrossEntropy()(out, labels)
    ref_value, ref_grad = torch_value_and_grad(
        lambda x: F.cross_entropy(x.max(dim=0).values, torch.tensor(labels)), out
    )
    assert_matches(value, grad, ref_value, ref_grad)
    assert np.all(grad[1] != 0) and not grad[3].any()


def test_max_over_time_gradient_is_sparse(rng, labels):
    out = untied_membrane(rng)
    _, grad = MaxOverTimeCrossEntropy()(out, labels)
    assert np.count_nonzero(grad) == B * C
    np.testing.assert_array_equal(np.argmax(np.abs(grad), axis=0), np.argmax(out, axis=0))


def test_cross_entropy_is_stable_for_huge_logits(labels):
    logits = np.array([[1e4, -1e4, 0.0, 5e3, 1e4]] * B)
    value, grad = cross_entropy(logits, labels)
    ref_value, ref_grad = torch_value_and_grad(
        lambda x: F.cross_entropy(x, torch.tensor(labels)), logits
    )
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert_matches(value, grad, ref_value, ref_grad)


def test_cross_entropy_helper_matches_torch_and_fd(rng, labels):
    logits = rng.normal(size=(B, C))
    value, grad = cross_entropy(logits, labels)
    ref_value, ref_grad = torch_value_and_grad(
        lambda x: F.cross_entropy(x, torch.tensor(labels)), logits
    )
    assert_matches(value, grad, ref_value, ref_grad)
    check_fd(lambda x: cross_entropy(x, labels), logits)


@pytest.mark.parametrize("label_dtype", [np.int8, np.uint8, np.int32, np.int64])
def test_any_integer_label_dtype(rng, label_dtype):
    out = rng.normal(size=(T, B, C))
    lab = rng.integers(0, C, size=B)
    v1, g1 = MaxOverTimeCrossEntropy()(out, lab.astype(label_dtype))
    v2, g2 = MaxOverTimeCrossEntropy()(out, lab)
    assert v1 == v2 and np.array_equal(g1, g2)


def test_float32_output_gives_float32_gradient(rng, labels):
    out = rng.normal(size=(T, B, C))
    for cls, _ in CE_CASES:
        v64, g64 = cls()(out, labels)
        v32, g32 = cls()(out.astype(np.float32), labels)
        assert g32.dtype == np.float32
        assert abs(v32 - v64) < 1e-5 * abs(v64)
        np.testing.assert_allclose(g32, g64, rtol=1e-5, atol=1e-7)


def test_accuracy(rng):
    logits = rng.normal(size=(10, C))
    lab = rng.integers(0, C, size=10)
    pred = np.argmax(logits, axis=1)
    expected = float(np.mean(pred == lab))
    assert accuracy(logits, lab) == expected
    assert accuracy(pred, lab) == expected
    assert accuracy(lab, lab) == 1.0
    out = rng.normal(size=(T, 10, C))
    loss = MaxOverTimeCrossEntropy()
    assert accuracy(loss.logits(out), lab) == accuracy(loss.predict(out), lab)


def test_spike_count_ties_predict_lowest_class():
    out = np.zeros((T, 2, C))
    out[0, :, 2] = out[0, :, 4] = 1.0
    np.testing.assert_array_equal(SpikeCountCrossEntropy().predict(out), [2, 2])


# --------------------------------------------------------------------------------------------
# regression losses
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "batchmean", "sum"])
def test_membrane_mse_matches_torch(rng, reduction):
    out, tgt = rng.normal(size=(T, B, C)), rng.normal(size=(T, B, C))
    value, grad = MembraneMSE(reduction)(out, tgt)

    def ref(x):
        if reduction == "batchmean":
            return F.mse_loss(x, torch.tensor(tgt), reduction="sum") / B
        return F.mse_loss(x, torch.tensor(tgt), reduction=reduction)

    assert_matches(value, grad, *torch_value_and_grad(ref, out))
    check_fd(lambda x: MembraneMSE(reduction)(x, tgt), out)


@pytest.mark.parametrize("reduction", ["mean", "batchmean", "sum"])
def test_spike_count_mse_matches_torch(rng, reduction):
    out = rng.random(size=(T, B, C))
    tgt = rng.integers(0, T, size=(B, C))
    value, grad = SpikeCountMSE(reduction)(out, tgt)

    def ref(x):
        counts = x.sum(dim=0)
        target = torch.tensor(tgt, dtype=torch.float64)
        if reduction == "batchmean":
            return F.mse_loss(counts, target, reduction="sum") / B
        return F.mse_loss(counts, target, reduction=reduction)

    assert_matches(value, grad, *torch_value_and_grad(ref, out))
    check_fd(lambda x: SpikeCountMSE(reduction)(x, tgt), out)


def van_rossum_torch(x, target, decay, dt, batch_mean=True):
    e = torch.zeros_like(x[0])
    total = torch.zeros((), dtype=x.dtype)
    for t in range(x.shape[0]):
        e = e * decay + (x[t] - target[t])
        total = total + (e * e).sum()
    return total * dt / (x.shape[1] if batch_mean else 1)


@pytest.mark.parametrize("per_neuron", [False, True])
@pytest.mark.parametrize("reduction", ["batchmean", "sum"])
def test_van_rossum_matches_torch_and_fd(rng, per_neuron, reduction):
    steps, n, dt = 30, 5, 1e-3
    tau_inv = rng.uniform(20.0, 200.0, size=n) if per_neuron else 50.0
    out = (rng.random((steps, B, n)) < 0.2).astype(np.float64) + 0.1 * rng.normal(
        size=(steps, B, n)
    )
    tgt = (rng.random((steps, B, n)) < 0.2).astype(np.float64)
    loss = VanRossumDistance(tau_inv, dt, reduction=reduction)
    value, grad = loss(out, tgt)
    decay = torch.tensor(1.0 - dt * np.asarray(tau_inv))
    ref = torch_value_and_grad(
        lambda x: van_rossum_torch(x, torch.tensor(tgt), decay, dt, reduction == "batchmean"),
        out,
    )
    assert_matches(value, grad, *ref)
    check_fd(lambda x: loss(x, tgt[:8]), out[:8])


def test_van_rossum_zero_for_identical_trains_and_input_unchanged(rng):
    s = (rng.random((20, B, 3)) < 0.3).astype(np.float32)
    copy = s.copy()
    value, grad = VanRossumDistance(100.0, 1e-3)(s, s)
    assert value == 0.0 and not grad.any() and grad.dtype == np.float32
    np.testing.assert_array_equal(s, copy)


def test_van_rossum_single_spike_closed_form():
    # one extra spike at t=0 in one neuron: e_t = a^t, value = dt * sum a^(2t) / B
    steps, dt, tau_inv = 50, 1e-3, 100.0
    out = np.zeros((steps, 2, 1))
    out[0, 0, 0] = 1.0
    value, _ = VanRossumDistance(tau_inv, dt)(out, np.zeros_like(out))
    a = 1.0 - dt * tau_inv
    assert value == pytest.approx(dt * (1 - a ** (2 * steps)) / (1 - a**2) / 2, rel=1e-12)


# --------------------------------------------------------------------------------------------
# regularisers
# --------------------------------------------------------------------------------------------


def rate_reg_torch(x, lower, upper, sl, su, mode):
    counts = x.sum(dim=0)
    value = torch.zeros((), dtype=x.dtype)
    if lower is not None:
        value = value + sl * torch.relu(torch.as_tensor(lower) - counts).pow(2).mean()
    if upper is not None:
        if mode == "neuron":
            value = value + su * torch.relu(counts - torch.as_tensor(upper)).pow(2).mean()
        else:
            value = value + su * torch.relu(counts.mean(dim=1) - upper).pow(2).mean()
    return value


REG_CASES = [
    dict(lower=2.0),
    dict(upper=1.5, strength_upper=3.0),
    dict(lower=2.0, upper=1.5, strength_lower=0.5, strength_upper=2.0),
    dict(lower="vec", upper="vec", strength_lower=0.7),
    dict(lower=1.0, upper=1.2, upper_mode="population", strength_upper=4.0),
]


@pytest.mark.parametrize("case", REG_CASES)
def test_firing_rate_regularizer_matches_torch_and_fd(rng, case):
    n = 7
    case = dict(case)
    if case.get("lower") == "vec":
        case["lower"] = rng.uniform(0.5, 3.0, size=n)
    if case.get("upper") == "vec":
        case["upper"] = rng.uniform(0.5, 3.0, size=n)
    spikes = rng.uniform(0.0, 0.6, size=(T, B, n))  # counts spread around the bounds
    reg = FiringRateRegularizer(**case)
    value, grad = reg(spikes)
    ref = torch_value_and_grad(
        lambda x: rate_reg_torch(
            x,
            case.get("lower"),
            case.get("upper"),
            case.get("strength_lower", 1.0),
            case.get("strength_upper", 1.0),
            case.get("upper_mode", "neuron"),
        ),
        spikes,
    )
    assert value > 0
    assert_matches(value, grad, *ref)
    check_fd(reg, spikes)


def test_firing_rate_regularizer_zero_inside_bounds():
    spikes = np.zeros((T, B, 3))
    spikes[:2] = 1.0  # every count is 2
    value, grad = FiringRateRegularizer(lower=1.0, upper=3.0)(spikes)
    assert value == 0.0 and not grad.any()
    value, grad = FiringRateRegularizer()(spikes)
    assert value == 0.0 and not grad.any()


@pytest.mark.parametrize(
    ("cls", "ref"),
    [
        (SpikeCountL1, lambda x: x.sum(dim=0).abs().mean()),
        (SpikeCountL2, lambda x: x.sum(dim=0).pow(2).mean()),
    ],
    ids=["L1", "L2"],
)
def test_spike_count_penalties_match_torch_and_fd(rng, cls, ref):
    spikes = rng.uniform(-0.2, 1.0, size=(T, B, C))
    reg = cls(strength=0.3)
    value, grad = reg(spikes)
    assert_matches(value, grad, *torch_value_and_grad(lambda x: 0.3 * ref(x), spikes))
    check_fd(reg, spikes)
    v32, g32 = reg(spikes.astype(np.float32))
    assert g32.dtype == np.float32 and v32 == pytest.approx(value, rel=1e-5)


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [c for c, _ in CE_CASES], ids=lambda c: c.__name__)
def test_classification_bad_labels(cls, rng):
    out = rng.normal(size=(T, B, C))
    loss = cls()
    with pytest.raises(ValueError, match="labels"):
        loss(out, np.full(B, C))  # == C is out of range
    with pytest.raises(ValueError, match="labels"):
        loss(out, np.array([0, 1, -1, 0]))
    with pytest.raises(ValueError, match="labels"):
        loss(out, np.zeros(B))  # float labels
    with pytest.raises(ValueError, match="labels"):
        loss(out, np.zeros(B, dtype=bool))
    with pytest.raises(ValueError, match="labels"):
        loss(out, np.zeros(B + 1, dtype=int))
    with pytest.raises(ValueError, match="labels"):
        loss(out, np.zeros((B, 1), dtype=int))


@pytest.mark.parametrize("cls", [c for c, _ in CE_CASES], ids=lambda c: c.__name__)
def test_classification_bad_output(cls, rng, labels):
    loss = cls()
    bad = rng.normal(size=(T, B, C))
    bad[2, 1, 3] = np.nan
    with pytest.raises(ValueError, match=r"output contains NaN"):
        loss(bad, labels)
    bad[2, 1, 3] = np.inf
    with pytest.raises(ValueError, match="output"):
        loss.predict(bad)
    with pytest.raises(ValueError, match="output"):
        loss(rng.normal(size=(B, C)), labels)
    with pytest.raises(ValueError, match="output"):
        loss(np.zeros((0, B, C)), labels)
    with pytest.raises(TypeError, match="output"):
        loss(np.zeros((T, B, C), dtype=np.int64), labels)


def test_helpers_bad_input(rng):
    with pytest.raises(ValueError, match="logits"):
        cross_entropy(rng.normal(size=(T, B, C)), np.zeros(B, dtype=int))
    with pytest.raises(ValueError, match="labels"):
        cross_entropy(rng.normal(size=(B, C)), np.full(B, 7))
    with pytest.raises(ValueError, match="labels"):
        accuracy(rng.normal(size=(B, C)), np.zeros(B + 1, dtype=int))
    with pytest.raises(ValueError, match="logits_or_pred"):
        accuracy(np.zeros(B), np.zeros(B, dtype=int))  # 1-D floats are ambiguous
    with pytest.raises(ValueError, match="logits_or_pred"):
        accuracy(np.zeros((T, B, C)), np.zeros(B, dtype=int))


def test_regression_bad_input(rng):
    out = rng.normal(size=(T, B, C))
    for loss in (MembraneMSE(), VanRossumDistance()):
        with pytest.raises(ValueError, match="target"):
            loss(out, out[:-1])
        nan_target = out.copy()
        nan_target[0, 0, 0] = np.nan
        with pytest.raises(ValueError, match="target contains NaN"):
            loss(out, nan_target)
        with pytest.raises(ValueError, match="target"):
            loss(out, None)
    with pytest.raises(ValueError, match="target"):
        SpikeCountMSE()(out, out)
    with pytest.raises(ValueError, match="reduction"):
        MembraneMSE("avg")
    with pytest.raises(ValueError, match="reduction"):
        VanRossumDistance(reduction="mean")
    with pytest.raises(ValueError, match="tau_inv"):
        VanRossumDistance(tau_inv=-1.0)
    with pytest.raises(ValueError, match="tau_inv"):
        VanRossumDistance(tau_inv=0.0)
    with pytest.raises(ValueError, match="dt"):
        VanRossumDistance(tau_inv=100.0, dt=0.0)
    with pytest.raises(ValueError, match="dt \\* tau_inv"):
        VanRossumDistance(tau_inv=100.0, dt=0.1)
    with pytest.raises(ValueError, match="tau_inv"):
        VanRossumDistance(tau_inv=np.full(C + 1, 10.0))(out, out)


def test_regularizer_bad_input(rng):
    spikes = rng.random((T, B, C))
    with pytest.raises(ValueError, match="lower"):
        FiringRateRegularizer(lower=np.ones(C + 1))(spikes)
    with pytest.raises(ValueError, match="upper"):
        FiringRateRegularizer(upper=-1.0)
    with pytest.raises(ValueError, match="upper"):
        FiringRateRegularizer(upper=np.ones(C), upper_mode="population")
    with pytest.raises(ValueError, match="upper_mode"):
        FiringRateRegularizer(upper=1.0, upper_mode="layer")
    with pytest.raises(ValueError, match="strength_lower"):
        FiringRateRegularizer(lower=1.0, strength_lower=-1.0)
    with pytest.raises(ValueError, match="strength"):
        SpikeCountL1(strength=float("nan"))
    bad = spikes.copy()
    bad[0, 0, 0] = np.inf
    for reg in (FiringRateRegularizer(lower=1.0), SpikeCountL1(), SpikeCountL2()):
        with pytest.raises(ValueError, match="spikes contains inf"):
            reg(bad)
        with pytest.raises(ValueError, match="spikes"):
            reg(spikes[0])
