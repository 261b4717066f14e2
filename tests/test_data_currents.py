"""CurrentDataset: analog input currents, their checks, batches, splitting and selection."""

from __future__ import annotations

import numpy as np
import pytest

from numbaspike.data import (
    CurrentDataset,
    LabeledDataset,
    SpikeDataset,
    iterate_batches,
    train_test_split,
)


def _varying(rng, samples=10, steps=6, n_in=4):
    return rng.normal(size=(samples, steps, n_in)), np.arange(samples) % 3


class TestConstruction:
    def test_time_varying(self, rng):
        x, labels = _varying(rng)
        ds = CurrentDataset(x, labels)
        assert isinstance(ds, LabeledDataset) and not isinstance(ds, SpikeDataset)
        assert (len(ds), ds.steps, ds.n_inputs, ds.n_classes) == (10, 6, 4, 3)
        assert not ds.constant and ds.currents.shape == (10, 6, 4)
        assert ds.currents.dtype == np.float64 and ds.labels.dtype == np.int64
        np.testing.assert_array_equal(ds.currents, x)
        np.testing.assert_array_equal(ds.class_counts(), [4, 3, 3])
        assert ds.nbytes == x.nbytes + labels.size * 8
        assert repr(ds) == "CurrentDataset(samples=10, steps=6, n_inputs=4, n_classes=3)"
        assert CurrentDataset(x, labels, steps=6).steps == 6

    def test_constant(self):
        ds = CurrentDataset(np.array([[0.5, 1.0], [2.0, 3.0]], np.float32), [1, 0], steps=7,
                            n_classes=4)  # fmt: skip
        assert ds.constant and ds.steps == 7 and ds.n_inputs == 2 and ds.n_classes == 4
        assert ds.currents.dtype == np.float32
        assert "constant over time" in repr(ds)

    def test_copied_and_read_only(self, rng):
        x, labels = _varying(rng)
        ds = CurrentDataset(x, labels)
        x[0, 0, 0] = 99.0
        assert ds.currents[0, 0, 0] != 99.0
        with pytest.raises(ValueError):
            ds.currents[0, 0, 0] = 1.0
        with pytest.raises(ValueError):
            ds.labels[0] = 1

    def test_integer_currents_become_float64(self):
        ds = CurrentDataset(np.ones((2, 3), np.int16), [0, 1], steps=2)
        assert ds.currents.dtype == np.float64

    @pytest.mark.parametrize(
        "currents, error, match",
        [
            (np.zeros(5), ValueError, r"currents must have shape \(S, T, N\) or \(S, N\)"),
            (np.zeros((2, 2, 2, 2)), ValueError, r"got shape \(2, 2, 2, 2\)"),
            (np.zeros((0, 3, 2)), ValueError, "currents holds no sample"),
            (np.zeros((2, 3, 0)), ValueError, r"n_inputs \(currents.shape\[-1\]\)"),
            (np.zeros((2, 0, 3)), ValueError, r"steps \(currents.shape\[1\]\)"),
            (np.ones((2, 3, 2), bool), TypeError, "currents must be a real numeric"),
            (np.array([["a", "b"], ["c", "d"]]), TypeError, "currents must be a real numeric"),
            (np.ones((2, 3, 2), complex), TypeError, "currents must be a real numeric"),
            ([[1.0, 2.0], [3.0]], ValueError, "currents must be a rectangular array"),
        ],
    )
    def test_bad_currents_are_named(self, currents, error, match):
        with pytest.raises(error, match=match):
            CurrentDataset(currents, [0, 1], steps=3)

    @pytest.mark.parametrize("bad, kind", [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "inf")])
    def test_non_finite_currents(self, rng, bad, kind):
        x, labels = _varying(rng)
        x[3, 2, 1] = bad
        with pytest.raises(
            ValueError, match=rf"currents contains {kind} \(first at index \(3, 2, 1\)\)"
        ):
            CurrentDataset(x, labels)

    def test_steps(self, rng):
        with pytest.raises(ValueError, match="steps is required for constant currents"):
            CurrentDataset(np.ones((2, 3)), [0, 1])
        with pytest.raises(ValueError, match="steps must be a positive integer"):
            CurrentDataset(np.ones((2, 3)), [0, 1], steps=0)
        with pytest.raises(ValueError, match="steps must be a positive integer"):
            CurrentDataset(np.ones((2, 3)), [0, 1], steps=2.5)
        x, labels = _varying(rng)
        with pytest.raises(ValueError, match=r"steps must equal currents.shape\[1\] = 6"):
            CurrentDataset(x, labels, steps=5)

    @pytest.mark.parametrize(
        "labels, match",
        [
            ([0, -1], r"labels must lie in \[0, n_classes\)"),
            ([0, 1.5], "labels must hold integer class indices"),
            ([0, 1, 1], r"labels must have shape \(S,\) = \(2,\)"),
            ([[0, 1]], r"labels must have shape \(S,\)"),
            (["a", "b"], "labels must hold integer class indices"),
        ],
    )
    def test_bad_labels_are_named(self, labels, match):
        with pytest.raises(ValueError, match=match):
            CurrentDataset(np.ones((2, 3)), labels, steps=4)
        with pytest.raises(ValueError, match=r"labels must lie in \[0, n_classes\) = \[0, 2\)"):
            CurrentDataset(np.ones((2, 3)), [0, 2], steps=4, n_classes=2)


class TestBatches:
    def test_dense_time_major(self, rng):
        x, labels = _varying(rng)
        ds = CurrentDataset(x, labels)
        out = ds.dense([4, 1], dtype=np.float64)
        assert out.shape == (6, 2, 4) and out.dtype == np.float64 and out.flags.c_contiguous
        np.testing.assert_array_equal(out[:, 0], x[4])
        np.testing.assert_array_equal(out[:, 1], x[1])
        out32 = ds.dense()
        assert out32.dtype == np.float32
        np.testing.assert_array_equal(out32, x.transpose(1, 0, 2).astype(np.float32))

    def test_dense_constant_repeats_over_time(self):
        levels = np.array([[0.5, 1.0], [2.0, 3.0], [4.0, 5.0]])
        ds = CurrentDataset(levels, [0, 1, 0], steps=5)
        out = ds.dense([2, 0], dtype=np.float64)
        assert out.shape == (5, 2, 2) and out.flags.c_contiguous
        np.testing.assert_array_equal(out, np.broadcast_to(levels[[2, 0]], (5, 2, 2)))
        out[0, 0, 0] = -1.0  # a fresh array: the dataset is untouched
        assert ds.currents[2, 0] == 4.0

    def test_dense_needs_a_float_dtype(self, rng):
        ds = CurrentDataset(*_varying(rng))
        with pytest.raises(TypeError, match="dtype must be a float dtype"):
            ds.dense(dtype=np.int32)
        with pytest.raises(TypeError, match="dtype must be a float dtype"):
            iterate_batches(ds, 4, dtype=bool)

    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    def test_iterate_batches(self, rng, dtype):
        x, labels = _varying(rng)
        ds = CurrentDataset(x, labels)
        batches = list(iterate_batches(ds, 4, shuffle=False, dtype=dtype))
        assert [b[0].shape for b in batches] == [(6, 4, 4), (6, 4, 4), (6, 2, 4)]
        assert all(b[0].dtype == dtype and b[0].flags.c_contiguous for b in batches)
        got = np.concatenate([b[0] for b in batches], axis=1)
        np.testing.assert_array_equal(got, x.transpose(1, 0, 2).astype(dtype))
        np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), labels)
        shuffled = list(iterate_batches(ds, 3, shuffle=True, seed=1, drop_last=True))
        assert len(shuffled) == 3
        for xb, lb in shuffled:  # every batch column is the sample its label belongs to
            for b in range(xb.shape[1]):
                matches = np.flatnonzero(
                    (np.abs(x.transpose(1, 0, 2).astype(np.float32) - xb[:, b : b + 1]) == 0).all(
                        axis=(0, 2)
                    )
                )
                assert matches.size == 1 and labels[matches[0]] == lb[b]

    def test_no_events_path(self, rng):
        ds = CurrentDataset(*_varying(rng))
        with pytest.raises(ValueError, match="events=True needs a SpikeDataset"):
            iterate_batches(ds, 4, events=True)  # eager, before the first batch


class TestSelection:
    def test_subset(self, rng):
        x, labels = _varying(rng)
        ds = CurrentDataset(x, labels, n_classes=5)
        sub = ds.subset([7, 2, 2])
        assert isinstance(sub, CurrentDataset) and len(sub) == 3 and sub.n_classes == 5
        np.testing.assert_array_equal(sub.currents, x[[7, 2, 2]])
        np.testing.assert_array_equal(sub.labels, labels[[7, 2, 2]])
        assert not sub.currents.flags.writeable
        np.testing.assert_array_equal(ds.subset(slice(None, None, 3)).labels, labels[::3])
        mask = np.zeros(10, bool)
        mask[[1, 9]] = True
        np.testing.assert_array_equal(ds.subset(mask).currents, x[[1, 9]])
        with pytest.raises(ValueError, match="indices selects no sample: a CurrentDataset"):
            ds.subset([])
        with pytest.raises(IndexError, match="indices must lie in"):
            ds.subset([10])

    def test_subset_constant(self):
        ds = CurrentDataset(np.arange(6.0).reshape(3, 2), [0, 1, 0], steps=4)
        sub = ds.subset([2])
        assert sub.constant and sub.steps == 4
        np.testing.assert_array_equal(sub.dense(dtype=np.float64)[:, 0], [[4.0, 5.0]] * 4)

    def test_train_test_split(self, rng):
        x = rng.normal(size=(40, 3, 2))
        labels = np.repeat([0, 1], 20)
        ds = CurrentDataset(x, labels)
        train, test = train_test_split(ds, test_fraction=0.25, seed=3)
        assert isinstance(train, CurrentDataset) and isinstance(test, CurrentDataset)
        assert (len(train), len(test)) == (30, 10)
        np.testing.assert_array_equal(test.class_counts(), [5, 5])
        both = np.concatenate([train.currents, test.currents])
        assert np.unique(both[:, 0, 0]).size == 40  # disjoint and covering
        again, _ = train_test_split(ds, test_fraction=0.25, seed=3)
        np.testing.assert_array_equal(again.currents, train.currents)


def test_base_class_is_not_a_dataset():
    with pytest.raises(TypeError, match="LabeledDataset is a base class"):
        LabeledDataset()
    with pytest.raises(TypeError, match="dataset must be a SpikeDataset or CurrentDataset"):
        iterate_batches(np.zeros((3, 4, 2)), 2)
