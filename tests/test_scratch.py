"""Scratch arrays of the weight-gradient kernels: reused per thread, zeroed, bounded; the
gradients do not depend on whether a scratch array was reused."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import numbaspike as ns
from numbaspike.kernels import scratch
from numbaspike.layers import Linear


@pytest.fixture(autouse=True)
def empty_scratch():
    scratch.release()
    yield
    scratch.release()


def test_reused_zeroed_and_keyed_by_name_shape_and_dtype():
    a = scratch.zeros("k", (3, 4), np.float32)
    a += 7
    b = scratch.zeros("k", (3, 4), np.float32)
    assert b is a and not b.any()
    assert scratch.zeros("k", (3, 5), np.float32) is not a
    assert scratch.zeros("k", (3, 4), np.float64) is not a
    assert scratch.zeros("other", (3, 4), np.float32) is not a
    assert scratch.zeros("k", (3, 4), np.float32) is a  # still kept (4 keys < KEEP)


def test_empty_is_reused_without_zeroing():
    a = scratch.empty("k", (3, 4), np.float32)
    a[...] = 7
    b = scratch.empty("k", (3, 4), np.float32)
    assert b is a and (b == 7).all()  # not zeroed: the caller overwrites it
    assert scratch.zeros("k", (3, 4), np.float32) is a and not a.any()  # one key space


def test_dense_weight_gradient_accumulates_through_the_scratch_product():
    """Linear's dense path adds ``g.T @ x`` (a reused scratch product) to the gradient."""
    rng = np.random.default_rng(1)
    lin = Linear(40, 50, seed=0)
    x = rng.standard_normal((7, 3, 40)).astype(np.float32)
    grads = [rng.standard_normal((7, 3, 50)).astype(np.float32) for _ in range(2)]
    _, tape = lin.forward(x)
    assert not tape.sparse
    for g in grads:
        lin.backward(g, tape, need_input_grad=False)
    expected = sum(g.reshape(-1, 50).T.astype(np.float64) @ x.reshape(-1, 40) for g in grads)
    np.testing.assert_allclose(lin.gradients()["weight"], expected, rtol=1e-5, atol=1e-5)


def test_least_recently_used_is_dropped_beyond_keep():
    first = scratch.zeros("k", (1,), np.float32)
    for size in range(2, scratch.KEEP + 2):
        scratch.zeros("k", (size,), np.float32)
    assert scratch.zeros("k", (1,), np.float32) is not first


def test_large_arrays_are_not_kept(monkeypatch):
    monkeypatch.setattr(scratch, "MAX_BYTES", 64)
    a = scratch.zeros("k", (16,), np.float32)  # 64 bytes: kept
    assert scratch.zeros("k", (16,), np.float32) is a
    b = scratch.zeros("k", (17,), np.float32)
    assert scratch.zeros("k", (17,), np.float32) is not b and not b.any()


def test_threads_get_their_own_arrays():
    mine = scratch.zeros("k", (8,), np.float32)
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(scratch.zeros("k", (8,), np.float32)))
    thread.start()
    thread.join()
    assert theirs[0] is not mine


def test_weight_gradients_repeat_exactly_with_reused_scratch():
    """Calls that reuse the partial sums (dirty from the call before) give the same
    gradients as the first call, for the event-driven Linear and the recurrent layer."""
    rng = np.random.default_rng(0)
    x = (rng.random((40, 6, 90)) < 0.05).astype(np.float32)
    lin = Linear(90, 70, seed=1, scale=4.0)
    y, tape = lin.forward(x)
    assert tape.sparse
    grad = rng.standard_normal(y.shape).astype(np.float32)
    results = []
    for _ in range(3):
        lin.zero_grad()
        lin.backward(grad, tape, need_input_grad=False)
        results.append(lin.gradients()["weight"].copy())
    z, lif_tape = ns.lif_forward(3 * y, w_rec=rng.normal(0, 0.1, (70, 70)).astype(np.float32))
    assert 0.01 < z.mean() < 0.5
    for _ in range(3):
        results.append(ns.lif_backward(grad, lif_tape).w_rec)
    for a, b in ((results[0], results[1]), (results[1], results[2])):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(results[3], results[4])
    np.testing.assert_array_equal(results[4], results[5])
    dense = grad.reshape(-1, 70).T @ x.reshape(-1, 90)
    np.testing.assert_allclose(results[0], dense, rtol=1e-5, atol=1e-5)
