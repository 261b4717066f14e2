"""Tests of numbaspike.data: sparse datasets, batching, encoders, Randman, SHD and digits."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from numbaspike.data import (
    SpikeDataset,
    bin_spike_times,
    iterate_batches,
    latency_encode,
    latency_times,
    load_digits_spikes,
    load_shd,
    make_randman,
    rate_encode,
    train_test_split,
    write_shd_like,
)
from numbaspike.data._checks import require_module


# ---------------------------------------------------------------------------- helpers
def random_dense(rng, shape=(12, 7, 5), p=0.3, counts=False):
    x = rng.random(shape) < p
    if counts:
        return x * rng.integers(1, 4, size=shape)
    return x


def identity_dataset(n_samples=23, n_classes=3, steps=4):
    """Sample s has exactly one spike, at unit s: its events reveal its index."""
    labels = np.arange(n_samples) % n_classes
    x = np.zeros((n_samples, steps, n_samples), dtype=bool)
    x[np.arange(n_samples), np.arange(n_samples) % steps, np.arange(n_samples)] = True
    return SpikeDataset.from_dense(x, labels, n_classes)


def sample_ids(x):
    """Sample ids of an identity_dataset batch x (T, B, N)."""
    per_sample = x.sum(axis=0)  # (B, N)
    assert np.all(per_sample.sum(axis=1) == 1)
    return per_sample.argmax(axis=1)


# ---------------------------------------------------------------------------- SpikeDataset
class TestSpikeDataset:
    def test_dense_round_trip(self, rng):
        x = random_dense(rng)
        labels = rng.integers(0, 4, size=x.shape[0])
        ds = SpikeDataset.from_dense(x, labels, n_classes=4)
        assert len(ds) == 12 and ds.steps == 7 and ds.n_inputs == 5 and ds.n_classes == 4
        assert ds.n_events == x.sum()
        dense = ds.dense()
        assert dense.shape == (7, 12, 5) and dense.dtype == np.float32
        assert dense.flags.c_contiguous
        np.testing.assert_array_equal(dense, x.transpose(1, 0, 2))
        again = SpikeDataset.from_dense(dense.transpose(1, 0, 2), ds.labels, 4)
        np.testing.assert_array_equal(again.dense(), dense)
        np.testing.assert_array_equal(ds.labels, labels)
        assert ds.labels.dtype == np.int64

    def test_counts_kept_or_clipped(self, rng):
        x = random_dense(rng, counts=True)
        ds = SpikeDataset.from_dense(x, np.zeros(12, int))
        assert ds.n_events == x.sum()
        np.testing.assert_array_equal(ds.dense(keep_counts=True), x.transpose(1, 0, 2))
        np.testing.assert_array_equal(ds.dense(), (x > 0).transpose(1, 0, 2))
        assert ds.dense(dtype=np.int16, keep_counts=True).dtype == np.int16
        with pytest.raises(ValueError, match="bool"):
            ds.dense(dtype=bool, keep_counts=True)

    def test_dense_indices_and_subset(self, rng):
        x = random_dense(rng)
        ds = SpikeDataset.from_dense(x, np.arange(12) % 3)
        idx = [5, 0, 11, 5]
        np.testing.assert_array_equal(ds.dense(idx), x[idx].transpose(1, 0, 2))
        np.testing.assert_array_equal(ds.dense([-1]), x[[11]].transpose(1, 0, 2))
        np.testing.assert_array_equal(ds.dense(slice(2, 6)), x[2:6].transpose(1, 0, 2))
        mask = np.arange(12) % 2 == 0
        np.testing.assert_array_equal(ds.dense(mask), x[mask].transpose(1, 0, 2))
        assert ds.dense([]).shape == (7, 0, 5)
        sub = ds.subset(idx)
        assert len(sub) == 4 and sub.n_classes == ds.n_classes
        np.testing.assert_array_equal(sub.dense(), x[idx].transpose(1, 0, 2))
        np.testing.assert_array_equal(sub.labels, np.array(idx) % 3)
        with pytest.raises(IndexError, match="indices"):
            ds.dense([12])
        with pytest.raises(ValueError, match="indices"):
            ds.subset([])
        with pytest.raises(ValueError, match="indices"):
            ds.dense([[0, 1]])

    def test_events_and_from_events(self):
        ds = SpikeDataset.from_events(
            [[0, 2, 2], [], [1]], [[3, 0, 0], [], [4]], [0, 1, 1], steps=3, n_inputs=5
        )
        assert ds.n_classes == 2 and ds.n_events == 4
        t, u = ds.events(0)
        np.testing.assert_array_equal(t, [0, 2, 2])
        np.testing.assert_array_equal(u, [3, 0, 0])
        assert ds.events(1)[0].size == 0
        assert ds.dense(keep_counts=True)[2, 0, 0] == 2
        assert not ds.times.flags.writeable and not ds.labels.flags.writeable
        with pytest.raises(IndexError):
            ds.events(3)

    def test_validation_names_the_argument(self):
        good = dict(offsets=[0, 1, 2], times=[0, 1], units=[0, 1], steps=2, n_inputs=2)
        with pytest.raises(ValueError, match="labels"):
            SpikeDataset(labels=[0, 3], n_classes=3, **good)
        with pytest.raises(ValueError, match="labels"):
            SpikeDataset(labels=[0, -1], **good)
        with pytest.raises(ValueError, match="labels"):
            SpikeDataset(labels=[0.5, 1], **good)
        with pytest.raises(ValueError, match="labels is empty"):
            SpikeDataset([0], [], [], [], steps=2, n_inputs=2)
        with pytest.raises(ValueError, match="times"):
            SpikeDataset([0, 1, 2], [0, 2], [0, 1], [0, 1], steps=2, n_inputs=2)
        with pytest.raises(ValueError, match="units"):
            SpikeDataset([0, 1, 2], [0, 1], [0, 2], [0, 1], steps=2, n_inputs=2)
        with pytest.raises(ValueError, match="offsets"):
            SpikeDataset([0, 2, 1], [0, 1], [0, 1], [0, 1], steps=2, n_inputs=2)
        with pytest.raises(ValueError, match="steps"):
            SpikeDataset(labels=[0, 1], **{**good, "steps": 0})
        with pytest.raises(ValueError, match="x is empty"):
            SpikeDataset.from_dense(np.zeros((0, 3, 2)), [])
        with pytest.raises(ValueError, match="x must have shape"):
            SpikeDataset.from_dense(np.zeros((3, 2)), [0, 0, 0])
        with pytest.raises(ValueError, match="x must hold spike counts"):
            SpikeDataset.from_dense(np.full((1, 2, 2), 0.5), [0])
        with pytest.raises(ValueError, match="x must hold spike counts"):
            SpikeDataset.from_dense(-np.ones((1, 2, 2)), [0])
        with pytest.raises(ValueError, match="labels must have shape"):
            SpikeDataset.from_dense(np.zeros((2, 2, 2)), [0])

    def test_shd_sized_storage_is_small(self, rng):
        # SHD-like: 8 000 samples x 100 bins x 700 units at ~1 500 spikes per sample would be
        # 2.2 GB dense in float32; stored sparsely it is 8 bytes per event.
        n_samples, events_per_sample = 8000, 1500
        e = n_samples * events_per_sample
        offsets = np.arange(n_samples + 1, dtype=np.int64) * events_per_sample
        times = rng.integers(0, 100, e, dtype=np.int32)
        units = rng.integers(0, 700, e, dtype=np.int32)
        labels = rng.integers(0, 20, n_samples)
        ds = SpikeDataset(offsets, times, units, labels, steps=100, n_inputs=700)
        assert ds.nbytes == 8 * e + 8 * (n_samples + 1) + 8 * n_samples
        assert ds.nbytes < 0.05 * (n_samples * 100 * 700 * 4)
        batch = ds.dense(np.arange(64))
        assert batch.shape == (100, 64, 700)
        assert "samples=8000" in repr(ds)


# ---------------------------------------------------------------------------- split and batches
class TestSplitAndBatches:
    def test_split_is_disjoint_covering_and_deterministic(self):
        ds = identity_dataset(50, n_classes=5)
        train, test = train_test_split(ds, 0.2, seed=3)
        ids_train = sample_ids(train.dense())
        ids_test = sample_ids(test.dense())
        assert len(test) == 10 and len(train) == 40
        assert set(ids_train).isdisjoint(ids_test)
        assert sorted([*ids_train, *ids_test]) == list(range(50))
        np.testing.assert_array_equal(ds.labels[ids_test], test.labels)
        train2, test2 = train_test_split(ds, 0.2, seed=3)
        np.testing.assert_array_equal(sample_ids(test2.dense()), ids_test)
        _, test3 = train_test_split(ds, 0.2, seed=4)
        assert not np.array_equal(sample_ids(test3.dense()), ids_test)

    def test_split_stratifies(self):
        labels = np.repeat([0, 1, 2], [60, 30, 10])
        ds = SpikeDataset.from_dense(np.ones((100, 2, 1), bool), labels)
        train, test = train_test_split(ds, 0.3, seed=0)
        np.testing.assert_array_equal(test.class_counts(), [18, 9, 3])
        np.testing.assert_array_equal(train.class_counts(), [42, 21, 7])
        _, test = train_test_split(ds, 0.3, seed=0, stratify=False)
        assert len(test) == 30

    def test_split_errors(self):
        ds = identity_dataset(4)
        for bad in (0.0, 1.0, -0.1, float("nan")):
            with pytest.raises(ValueError, match="test_fraction"):
                train_test_split(ds, bad)
        with pytest.raises(ValueError, match="test_fraction"):
            train_test_split(ds, 0.01)  # rounds to no test sample
        with pytest.raises(TypeError, match="dataset"):
            train_test_split(np.zeros((4, 2, 2)))

    @pytest.mark.parametrize("batch_size", [1, 5, 23, 100])
    def test_epoch_covers_every_sample_once(self, batch_size):
        ds = identity_dataset(23)
        seen, sizes = [], []
        for x, y in iterate_batches(ds, batch_size, seed=0):
            assert x.dtype == np.float32 and x.flags.c_contiguous
            assert x.shape == (ds.steps, len(y), ds.n_inputs)
            assert y.dtype == np.int64
            ids = sample_ids(x)
            np.testing.assert_array_equal(ds.labels[ids], y)
            seen.extend(ids)
            sizes.append(len(y))
        assert sorted(seen) == list(range(23))
        assert all(s == batch_size for s in sizes[:-1])

    def test_drop_last_and_order(self):
        ds = identity_dataset(23)
        sizes = [len(y) for _, y in iterate_batches(ds, 5, drop_last=True, seed=1)]
        assert sizes == [5, 5, 5, 5]
        assert list(iterate_batches(ds, 30, drop_last=True)) == []
        ordered = [sample_ids(x) for x, _ in iterate_batches(ds, 10, shuffle=False)]
        np.testing.assert_array_equal(np.concatenate(ordered), np.arange(23))

    def test_shuffle_is_deterministic_under_seed(self):
        ds = identity_dataset(23)

        def order(seed):
            return np.concatenate([sample_ids(x) for x, _ in iterate_batches(ds, 4, seed=seed)])

        np.testing.assert_array_equal(order(7), order(7))
        assert not np.array_equal(order(7), order(8))
        gen = np.random.default_rng(7)
        first, second = order(gen), order(gen)
        assert not np.array_equal(first, second)  # a Generator advances between epochs
        gen = np.random.default_rng(7)
        np.testing.assert_array_equal(order(gen), first)

    def test_batch_errors_are_eager(self):
        ds = identity_dataset(5)
        for bad in (0, -1, 2.0, True, None):
            with pytest.raises(ValueError, match="batch_size"):
                iterate_batches(ds, bad)
        with pytest.raises(TypeError, match="seed"):
            iterate_batches(ds, 2, seed="abc")


# ---------------------------------------------------------------------------- encoders
class TestRateEncode:
    def test_shape_dtype_and_rate(self):
        x = np.array([[0.0, 0.25, 0.5, 1.0]])
        out = rate_encode(x, steps=4000, max_prob=0.2, seed=0)
        assert out.shape == (4000, 1, 4) and out.dtype == np.float32
        rates = out.mean(axis=0)[0]
        np.testing.assert_allclose(rates, 0.2 * x[0], atol=0.02)
        assert rates[0] == 0.0
        assert rate_encode(x, 3, dtype=bool, seed=0).dtype == np.bool_

    def test_determinism_and_1d(self):
        x = np.linspace(0, 1, 10)
        a = rate_encode(x, 50, seed=1)
        assert a.shape == (50, 1, 10)
        np.testing.assert_array_equal(a, rate_encode(x[None], 50, seed=1))
        assert not np.array_equal(a, rate_encode(x, 50, seed=2))
        full = rate_encode(np.ones(3), 10, max_prob=1.0, seed=0)
        assert full.all()

    @pytest.mark.parametrize("bad", [[1.5], [-0.1], [np.nan], np.zeros((2, 2, 2))])
    def test_bad_x(self, bad):
        with pytest.raises(ValueError, match="x"):
            rate_encode(bad, 5)

    def test_bad_parameters(self):
        with pytest.raises(ValueError, match="max_prob"):
            rate_encode([0.5], 5, max_prob=0.0)
        with pytest.raises(ValueError, match="max_prob"):
            rate_encode([0.5], 5, max_prob=1.5)
        with pytest.raises(ValueError, match="steps"):
            rate_encode([0.5], 0)


class TestLatencyEncode:
    @pytest.mark.parametrize("linear", [False, True])
    @pytest.mark.parametrize("normalize", [False, True])
    def test_one_spike_larger_earlier(self, linear, normalize):
        x = np.array([[0.0, 0.005, 0.05, 0.1, 0.3, 0.6, 1.0]])
        steps = 200 if normalize else 1000
        out = latency_encode(x, steps, tau=50.0, linear=linear, normalize=normalize)
        assert out.shape == (steps, 1, 7) and out.dtype == np.float32
        counts = out.sum(axis=0)[0]
        np.testing.assert_array_equal(counts, [0, 0, 1, 1, 1, 1, 1])  # below threshold: none
        first = out[:, 0, 2:].argmax(axis=0)
        assert np.all(np.diff(first) <= 0) and first[0] > first[-1]

    def test_normalized_window(self):
        x = np.array([1.0, 0.01, 0.5])
        for linear in (False, True):
            out = latency_encode(x, 10, threshold=0.01, linear=linear)[:, 0]
            assert out[0, 0] == 1 and out[9, 1] == 1  # x = 1 first bin, x = threshold last
        t = latency_times(x, 10)
        np.testing.assert_allclose(t, 9 * np.log(x) / np.log(0.01))
        t_lin = latency_times(x, 10, linear=True)
        np.testing.assert_allclose(t_lin, 9 * (1 - x) / 0.99)

    def test_unnormalized_formulas(self):
        x = np.array([0.02, 0.1, 1.0, 0.01])
        t = latency_times(x, 100, tau=5.0, threshold=0.01, normalize=False)
        np.testing.assert_allclose(t[:3], 5.0 * np.log(x[:3] / (x[:3] - 0.01)))
        assert np.isinf(t[3])  # RC time diverges at the threshold
        t = latency_times(x, 100, tau=5.0, normalize=False, linear=True)
        np.testing.assert_allclose(t, 5.0 * (1 - x))
        # a spike time beyond the window is dropped
        out = latency_encode([0.0101], 20, tau=5.0, normalize=False)
        assert out.sum() == 0

    def test_bad_input(self):
        with pytest.raises(ValueError, match="x"):
            latency_encode([[0.5, 2.0]], 5)
        with pytest.raises(ValueError, match="x"):
            latency_encode([np.nan], 5)
        with pytest.raises(ValueError, match="threshold"):
            latency_encode([0.5], 5, threshold=0.0)
        with pytest.raises(ValueError, match="tau"):
            latency_encode([0.5], 5, tau=-1.0)
        assert latency_encode([0.0], 5, threshold=0.0, linear=True)[4, 0, 0] == 1


# ---------------------------------------------------------------------------- Randman
class TestRandman:
    def test_shape_and_one_spike_per_unit(self):
        ds = make_randman(n_classes=3, n_units=20, steps=30, n_samples_per_class=10, seed=0)
        assert len(ds) == 30 and ds.steps == 30 and ds.n_inputs == 20 and ds.n_classes == 3
        np.testing.assert_array_equal(ds.class_counts(), [10, 10, 10])
        dense = ds.dense(keep_counts=True)
        np.testing.assert_array_equal(dense.sum(axis=0), np.ones((30, 20)))
        two = make_randman(n_classes=2, n_units=5, n_samples_per_class=4, n_spikes_per_unit=2)
        np.testing.assert_array_equal(two.dense(keep_counts=True).sum(axis=0), 2)

    def test_deterministic_under_seed(self):
        kw = dict(n_classes=3, n_units=15, steps=20, n_samples_per_class=8)
        a, b, c = (
            make_randman(seed=5, **kw),
            make_randman(seed=5, **kw),
            make_randman(seed=6, **kw),
        )
        np.testing.assert_array_equal(a.dense(), b.dense())
        np.testing.assert_array_equal(a.labels, b.labels)
        assert not np.array_equal(a.dense(), c.dense())

    def test_times_span_window(self):
        ds = make_randman(n_classes=2, n_units=10, steps=40, n_samples_per_class=50, seed=2)
        times = ds.times.reshape(len(ds), -1)
        for c in range(2):
            per_unit = times[ds.labels == c]
            assert np.all(per_unit.min(axis=0) == 0) and np.all(per_unit.max(axis=0) == 39)

    def test_classes_are_distinguishable(self):
        ds = make_randman(n_classes=5, n_units=40, steps=50, n_samples_per_class=60, seed=1)
        train, test = train_test_split(ds, 0.25, seed=0)

        def features(d):
            return d.times.reshape(len(d), -1).astype(float)  # spike time of each unit

        centroids = np.stack([features(train)[train.labels == c].mean(0) for c in range(5)])
        dist = ((features(test)[:, None, :] - centroids[None]) ** 2).sum(-1)
        accuracy = (dist.argmin(axis=1) == test.labels).mean()
        assert accuracy > 0.5  # chance is 0.2

    def test_errors(self):
        with pytest.raises(ValueError, match="n_classes"):
            make_randman(n_classes=0)
        with pytest.raises(ValueError, match="alpha"):
            make_randman(alpha=0.0)
        with pytest.raises(ValueError, match="dim_manifold"):
            make_randman(dim_manifold=1.5)


# ---------------------------------------------------------------------------- SHD
class TestSHD:
    def test_round_trip_and_binning(self, tmp_path):
        steps, max_time = 10, 1.0
        edge = [k * max_time / steps for k in range(steps)]
        times = [
            np.array([0.0, edge[1], edge[3], 0.35, edge[9], 0.9999, 1.0, 1.3]),
            np.array([0.55, 0.55, 2.0]),
            np.array([]),
        ]
        units = [np.array([0, 1, 2, 3, 4, 5, 6, 7]), np.array([9, 9, 1]), np.array([])]
        path = tmp_path / "shd_like.h5"
        write_shd_like(path, times, units, [2, 0, 1], times_dtype=np.float64)
        ds = load_shd(path, steps=steps, max_time=max_time, n_units=10)
        assert len(ds) == 3 and ds.steps == 10 and ds.n_inputs == 10 and ds.n_classes == 3
        np.testing.assert_array_equal(ds.labels, [2, 0, 1])
        t, u = ds.events(0)
        np.testing.assert_array_equal(t, [0, 1, 3, 3, 9, 9])  # t >= max_time dropped
        np.testing.assert_array_equal(u, [0, 1, 2, 3, 4, 5])
        assert ds.dense(keep_counts=True)[5, 1, 9] == 2
        assert ds.events(1)[0].tolist() == [5, 5] and ds.events(2)[0].size == 0
        assert load_shd(path, steps=5, max_time=2.0, n_units=10, n_classes=20).n_classes == 20

    def test_bin_edges(self):
        steps, max_time = 100, 1.4
        edges = np.arange(steps + 1) * max_time / steps
        bins = bin_spike_times(edges, steps, max_time)
        np.testing.assert_array_equal(bins, np.arange(steps + 1))  # edge b starts bin b
        below = bin_spike_times(np.nextafter(edges[1:], 0), steps, max_time)
        np.testing.assert_array_equal(below, np.arange(steps))

    def test_default_float32_file(self, tmp_path, rng):
        n = 20
        times = [np.sort(rng.random(30) * 1.6) for _ in range(n)]
        units = [rng.integers(0, 700, 30) for _ in range(n)]
        labels = rng.integers(0, 20, n)
        path = tmp_path / "f32.h5"
        write_shd_like(path, times, units, labels)
        ds = load_shd(path)
        assert ds.steps == 100 and ds.n_inputs == 700
        kept = sum(int((t.astype(np.float32) < 1.4).sum()) for t in times)
        assert ds.n_events == kept
        x = ds.dense()
        assert x.shape == (100, n, 700) and x.dtype == np.float32

    def test_missing_file(self, tmp_path):
        path = tmp_path / "nope.h5"
        with pytest.raises(FileNotFoundError, match="nope.h5"):
            load_shd(path)

    @pytest.mark.parametrize("missing", ["spikes/times", "spikes/units", "labels"])
    def test_bad_layout(self, tmp_path, missing):
        h5py = pytest.importorskip("h5py")
        path = tmp_path / "bad.h5"
        with h5py.File(path, "w") as f:
            vlen = h5py.vlen_dtype(np.dtype(np.float32))
            for key in ("spikes/times", "spikes/units"):
                if key != missing:
                    ds = f.create_dataset(key, (1,), dtype=vlen)
                    ds[0] = np.array([0.1], np.float32)
            if missing != "labels":
                f.create_dataset("labels", data=np.array([0]))
        with pytest.raises(ValueError, match=missing):
            load_shd(path)

    def test_not_hdf5_and_bad_content(self, tmp_path):
        path = tmp_path / "text.h5"
        path.write_text("not hdf5")
        with pytest.raises(ValueError, match="HDF5"):
            load_shd(path)
        path = tmp_path / "units.h5"
        write_shd_like(path, [np.array([0.1])], [np.array([700])], [0])
        with pytest.raises(ValueError, match="n_units"):
            load_shd(path)
        with pytest.raises(ValueError, match="labels"):
            write_shd_like(tmp_path / "x.h5", [np.array([0.1])], [np.array([1])], [0, 1])
        with pytest.raises(ValueError, match="steps"):
            load_shd(path, steps=0)
        with pytest.raises(ValueError, match="max_time"):
            load_shd(path, max_time=0.0)

    @staticmethod
    def _write_layout(path, **override):
        """A one-sample SHD file; ``override[key](f)`` writes dataset ``key`` instead."""
        h5py = pytest.importorskip("h5py")
        with h5py.File(path, "w") as f:
            for key, dtype, value in [
                ("spikes/times", np.float32, [0.1, 0.5]),
                ("spikes/units", np.uint16, [3, 4]),
            ]:
                if key in override:
                    override[key](f)
                else:
                    ds = f.create_dataset(key, (1,), dtype=h5py.vlen_dtype(np.dtype(dtype)))
                    ds[0] = np.array(value, dtype)
            if "labels" in override:
                override["labels"](f)
            else:
                f.create_dataset("labels", data=np.array([1], np.uint16))
        return path

    @staticmethod
    def _vlen(key, dtype, value):
        def write(f):
            import h5py

            ds = f.create_dataset(key, (1,), dtype=h5py.vlen_dtype(np.dtype(dtype)))
            ds[0] = np.array(value, dtype)

        return write

    def test_non_integer_units_are_rejected_not_truncated(self, tmp_path):
        bad = self._write_layout(
            tmp_path / "frac.h5", **{"spikes/units": self._vlen("spikes/units", np.float32,
                                                                [3.0, 3.7])}
        )  # fmt: skip
        with pytest.raises(ValueError, match=r"frac\.h5.*'spikes/units'.*integer.*3\.7"):
            load_shd(bad, n_units=10)
        nan = self._write_layout(
            tmp_path / "nan.h5", **{"spikes/units": self._vlen("spikes/units", np.float64,
                                                               [1.0, np.nan])}
        )  # fmt: skip
        with pytest.raises(ValueError, match=r"nan\.h5.*'spikes/units'.*integer"):
            load_shd(nan, n_units=10)
        whole = self._write_layout(
            tmp_path / "whole.h5", **{"spikes/units": self._vlen("spikes/units", np.float32,
                                                                 [3.0, 4.0])}
        )  # fmt: skip
        np.testing.assert_array_equal(load_shd(whole, n_units=10).units, [3, 4])

    @pytest.mark.parametrize(
        "key, write, expected",
        [
            ("spikes/times", lambda f: f.create_dataset("spikes/times", data=np.array([0.1])),
             "flat"),
            ("spikes/times", lambda f: f.create_dataset("spikes/times", data=np.ones((1, 2))),
             "flat"),
            ("spikes/units", lambda f: f.create_dataset("spikes/units", data=np.array([[3, 4]])),
             "flat"),
            ("spikes/times", lambda f: f.create_dataset("spikes/times", data=np.array(["0.1"],
             dtype=object), dtype=__import__("h5py").string_dtype()), "strings"),
            ("spikes/units", lambda f: f.create_dataset("spikes/units", data=np.array([b"ab"])),
             "strings"),
            ("labels", lambda f: f.create_dataset("labels", data=1), "scalar"),
            ("labels", lambda f: f.create_dataset("labels", data=np.array([b"one"])), "strings"),
            ("labels", lambda f: f.create_dataset("labels", data=np.array(["one"], dtype=object),
             dtype=__import__("h5py").string_dtype()), "strings"),
            ("labels", lambda f: f.create_dataset("labels", data=np.ones((1, 1))), "shape"),
        ],
    )  # fmt: skip
    def test_wrong_kind_of_dataset_names_file_and_dataset(self, tmp_path, key, write, expected):
        pytest.importorskip("h5py")
        path = self._write_layout(tmp_path / "odd.h5", **{key: write})
        with pytest.raises(ValueError, match=rf"odd\.h5.*'{key}'.*{expected}"):
            load_shd(path, n_units=10)

    def test_bad_times_name_the_dataset(self, tmp_path):
        path = self._write_layout(
            tmp_path / "neg.h5", **{"spikes/times": self._vlen("spikes/times", np.float32,
                                                               [0.1, -0.5])}
        )  # fmt: skip
        with pytest.raises(ValueError, match=r"neg\.h5.*'spikes/times'.*-0\.5.*sample 0"):
            load_shd(path, n_units=10)

    def test_missing_h5py_names_the_extra(self, tmp_path, monkeypatch):
        monkeypatch.setitem(sys.modules, "h5py", None)
        with pytest.raises(ImportError, match=r"numbaspike\[data\]"):
            load_shd(tmp_path / "x.h5")
        with pytest.raises(ImportError, match=r"numbaspike\[data\]"):
            require_module("numbaspike_no_such_module", "feature")


# ---------------------------------------------------------------------------- digits
class TestDigits:
    def test_latency(self):
        pytest.importorskip("sklearn")
        ds = load_digits_spikes()
        assert len(ds) == 1797 and ds.n_inputs == 64 and ds.n_classes == 10 and ds.steps == 20
        np.testing.assert_array_equal(np.unique(ds.labels), np.arange(10))
        counts = ds.dense(keep_counts=True).sum(axis=0)  # (S, 64)
        assert counts.max() == 1  # at most one spike per pixel
        from sklearn.datasets import load_digits

        np.testing.assert_array_equal(counts > 0, load_digits().data > 0)

    def test_rate_deterministic(self):
        pytest.importorskip("sklearn")
        a = load_digits_spikes(steps=8, encoding="rate", seed=3)
        b = load_digits_spikes(steps=8, encoding="rate", seed=3)
        np.testing.assert_array_equal(a.times, b.times)
        np.testing.assert_array_equal(a.units, b.units)
        assert a.dense(keep_counts=True).max() == 1 and a.steps == 8
        with pytest.raises(ValueError, match="encoding"):
            load_digits_spikes(encoding="phase")
