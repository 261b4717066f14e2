"""Spike events as a network input: SpikeDataset.batch_events, events_from_coordinates,
Linear.forward on events, iterate_batches(events=True) and fit's choice of them."""

import numpy as np
import pytest

from numbaspike.data import SpikeDataset, iterate_batches, make_randman
from numbaspike.kernels import projection
from numbaspike.layers import LI, LIF, LIFRecurrent, Linear
from numbaspike.network import Sequential


def _dataset(rng, samples=9, steps=13, n_inputs=70, p=0.05):
    x = rng.random((samples, steps, n_inputs)) < p
    return SpikeDataset.from_dense(x, rng.integers(0, 3, samples), n_classes=3)


def _same_events(a, b):
    return (
        np.array_equal(a.row_ptr, b.row_ptr)
        and np.array_equal(a.cols, b.cols)
        and a.shape == b.shape
        and (a.values is None) == (b.values is None)
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_events_are_the_events_of_the_dense_batch(dtype):
    rng = np.random.default_rng(0)
    ds = _dataset(rng)
    for idx in ([3, 0, 7], np.arange(9), [5, 5, 1]):
        ev = ds.batch_events(idx, dtype)
        ref = projection.spike_events(ds.dense(idx, dtype=dtype).reshape(-1, ds.n_inputs))
        assert _same_events(ev, ref)
        assert ev.steps == ds.steps and ev.dtype == np.dtype(dtype) and ev.values is None
        np.testing.assert_array_equal(ev.to_dense(), ds.dense(idx, dtype=dtype).reshape(ev.shape))


def test_batch_events_merge_repeats_and_sort_unordered_events():
    # events out of order, and the same (time, unit) twice in sample 0
    ds = SpikeDataset([0, 5, 7], [3, 1, 3, 0, 1, 2, 0], [2, 4, 2, 9, 0, 1, 1], [1, 0], 4, 10)
    ev = ds.batch_events()
    ref = projection.spike_events(ds.dense().reshape(-1, 10))
    assert _same_events(ev, ref)
    assert ev.nnz == 6  # sample 0: 5 events, one (time, unit) pair twice; sample 1: 2


def test_events_from_coordinates_against_a_dense_raster():
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 50, 400)
    cols = rng.integers(0, 130, 400)  # more than two 64-bit words per row, with repeats
    dense = np.zeros((50, 130))
    dense[rows, cols] = 1
    ev = projection.events_from_coordinates(rows, cols, (50, 130), np.float64, steps=5)
    assert _same_events(ev, projection.spike_events(dense))
    assert ev.steps == 5
    empty = projection.events_from_coordinates(np.zeros(0, int), np.zeros(0, int), (4, 3))
    assert empty.nnz == 0 and np.array_equal(empty.row_ptr, np.zeros(5))


def test_batch_events_bad_dtype_is_named():
    ds = _dataset(np.random.default_rng(2))
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        ds.batch_events([0], np.int32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [False, True])
def test_linear_on_events_equals_linear_on_the_dense_input(dtype, bias, monkeypatch):
    rng = np.random.default_rng(3)
    ds = _dataset(rng)
    idx = [4, 1, 8, 2]
    x = ds.dense(idx, dtype=dtype)
    monkeypatch.setattr(projection, "use_sparse_path", lambda density, n_out: True)
    a, b = (
        Linear(70, 11, bias=bias, seed=0, dtype=dtype),
        Linear(70, 11, bias=bias, seed=0, dtype=dtype),
    )
    ya, ta = a.forward(x)
    yb, tb = b.forward(ds.batch_events(idx, dtype))
    np.testing.assert_array_equal(ya, yb)
    g = rng.normal(size=ya.shape).astype(dtype)
    a.backward(g, ta, need_input_grad=False)
    gx = b.backward(g, tb, need_input_grad=True)
    for name in a.gradients():
        np.testing.assert_array_equal(a.gradients()[name], b.gradients()[name])
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-14}
    np.testing.assert_allclose(gx, g @ b.weight, **tol)


def test_a_network_trains_the_same_on_events_and_on_dense_batches(monkeypatch):
    rng = np.random.default_rng(4)
    ds = _dataset(rng, samples=12)
    monkeypatch.setattr(projection, "use_sparse_path", lambda density, n_out: True)

    def net():
        r = np.random.default_rng(0)
        return Sequential(
            Linear(70, 16, seed=r, scale=5.0),
            LIFRecurrent(16, seed=r),
            Linear(16, 3, seed=r),
            LI(3),
        )

    results = []
    for events in (False, True):
        n = net()
        for x, _labels in iterate_batches(ds, 4, seed=0, events=events):
            y, tape = n.forward(x)
            n.backward(np.ones_like(y), tape)
        results.append(n.gradients())
    for name in results[0]:
        np.testing.assert_array_equal(results[0][name], results[1][name])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e.__class__(e.row_ptr, e.cols, None, e.shape, e.dtype, None), "need steps"),
        (lambda e: e.__class__(e.row_ptr, e.cols, None, e.shape, e.dtype, 7), "need steps"),
        (lambda e: e.__class__(e.row_ptr, e.cols + 70, None, e.shape, e.dtype, 13), "columns"),
        (
            lambda e: e.__class__(e.row_ptr[:-1], e.cols, None, e.shape, e.dtype, 13),
            "inconsistent",
        ),
        (lambda e: e.__class__(e.row_ptr, e.cols, None, (e.shape[0], 9), e.dtype, 13), "shape"),
        (
            lambda e: e.__class__(
                e.row_ptr, e.cols, np.full(e.nnz, np.nan, np.float32), e.shape, e.dtype, 13
            ),
            "NaN or inf",
        ),
    ],
)
def test_bad_events_are_named(mutate, message):
    ev = _dataset(np.random.default_rng(5)).batch_events([0, 1])
    with pytest.raises(ValueError, match=message) as info:
        Linear(70, 4).forward(mutate(ev))
    assert "x" in str(info.value)


@pytest.mark.parametrize(
    "layer", [LIF(70), LIFRecurrent(70), LI(70)], ids=["LIF", "LIFRecurrent", "LI"]
)
def test_neuron_layers_refuse_events_with_a_clear_error(layer):
    ev = _dataset(np.random.default_rng(6)).batch_events([0])
    with pytest.raises(TypeError, match="only a Linear layer takes events"):
        layer.forward(ev)


def test_fit_feeds_events_to_a_sparse_linear_first_layer(monkeypatch):
    from numbaspike import train

    ds = make_randman(n_classes=3, n_units=30, steps=20, n_samples_per_class=6, seed=0)
    sparse_net = Sequential(Linear(30, 8), LIF(8), Linear(8, 3), LI(3))
    no_linear = Sequential(LIF(30), Linear(30, 3), LI(3))
    density = ds.n_events / (len(ds) * ds.steps * ds.n_inputs)
    assert train._use_events(sparse_net, ds) == projection.use_sparse_path(density, 8)
    assert not train._use_events(no_linear, ds)
    seen = []
    monkeypatch.setattr(train, "_use_events", lambda net, data: True)
    original = Linear.forward

    def spy(self, x):
        seen.append(type(x).__name__)
        return original(self, x)

    monkeypatch.setattr(Linear, "forward", spy)
    train.evaluate(
        sparse_net, ds, __import__("numbaspike.losses").losses.MaxOverTimeCrossEntropy()
    )
    assert seen and seen[0] == "SpikeEvents"


def test_iterate_batches_yields_events_when_asked():
    ds = _dataset(np.random.default_rng(7))
    dense = list(iterate_batches(ds, 4, shuffle=False))
    events = list(iterate_batches(ds, 4, shuffle=False, events=True))
    assert len(dense) == len(events) == 3
    for (x, lx), (e, le) in zip(dense, events, strict=True):
        np.testing.assert_array_equal(lx, le)
        np.testing.assert_array_equal(e.to_dense().reshape(x.shape), x)
