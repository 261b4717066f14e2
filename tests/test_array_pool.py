"""Recycled large arrays (numbaspike.runtime.array_pool): reused only once nothing refers to them."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
from numba import njit

from numbaspike.layers import LI, LIFRecurrent, Linear
from numbaspike.losses import MaxOverTimeCrossEntropy
from numbaspike.network import Sequential
from numbaspike.optim import Adam
from numbaspike.runtime import array_pool

BIG = (64, 1024)  # 256 KiB of float32: recycled
SMALL = (16, 16)


@pytest.fixture(autouse=True)
def _fresh_pool():
    limit = array_pool.get_limit()
    array_pool.set_limit(array_pool.DEFAULT_LIMIT)
    array_pool.release()
    yield
    array_pool.set_limit(limit)
    array_pool.release()


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def test_dropped_array_is_recycled_for_the_same_size():
    a = array_pool.empty(BIG, np.float32)
    address = _address(a)
    del a
    b = array_pool.empty(BIG, np.float32)
    assert _address(b) == address
    # another shape and dtype of the same size reuse it too
    del b
    c = array_pool.empty((BIG[0] * BIG[1] // 2,), np.float64)
    assert _address(c) == address


@pytest.mark.parametrize(
    "keep",
    [
        lambda a: a,
        lambda a: a[1:],
        lambda a: a.T,
        lambda a: a.reshape(-1)[::2],
        lambda a: memoryview(a),
        lambda a: np.lib.stride_tricks.as_strided(a, shape=(2, 2), strides=(8, 4)),
        lambda a: njit(lambda x: x[3:])(a),
        lambda a: [a],
    ],
    ids=["array", "slice", "transpose", "strided", "memoryview", "as_strided", "numba", "list"],
)
def test_array_still_referred_to_is_not_recycled(keep):
    a = array_pool.empty(BIG, np.float32)
    a.fill(7.0)
    kept = keep(a)
    del a
    b = array_pool.empty(BIG, np.float32)
    b.fill(-1.0)
    values = np.asarray(kept[0] if isinstance(kept, list) else kept)
    assert np.all(values == 7.0)
    del kept, values
    c = array_pool.empty(BIG, np.float32)
    assert _address(c) != _address(b)  # the first buffer, now free, is the one reused


def test_torch_tensor_keeps_its_buffer():
    torch = pytest.importorskip("torch")
    a = array_pool.empty(BIG, np.float32)
    a.fill(3.0)
    t = torch.from_numpy(a)
    del a
    b = array_pool.empty(BIG, np.float32)
    b.fill(0.0)
    assert bool((t == 3.0).all())


def test_small_arrays_and_zero_limit_are_plain_numpy():
    a = array_pool.empty(SMALL, np.float32)
    assert a.base is None and a.shape == SMALL and a.dtype == np.float32
    array_pool.set_limit(0)
    b = array_pool.empty(BIG, np.float64)
    assert b.base is None and b.flags.c_contiguous and b.shape == BIG
    assert array_pool.cached_bytes() == (0, 0)


def test_object_arrays_and_bad_shapes_behave_as_numpy():
    a = array_pool.empty(BIG, object)  # Python references are never recycled memory
    assert a.base is None and a.dtype == object and a[0, 0] is None
    with pytest.raises(ValueError, match="negative"):
        array_pool.empty((-1, BIG[1]), np.float32)


def test_shape_dtype_contiguity_and_zeros():
    a = array_pool.empty((3, BIG[0], BIG[1]), np.float64)
    assert a.shape == (3, *BIG) and a.dtype == np.float64 and a.flags.c_contiguous
    assert a.flags.writeable and a.flags.aligned
    a.fill(5.0)
    del a
    z = array_pool.zeros((3, *BIG), np.float64)
    assert not z.any()
    assert array_pool.empty(BIG[0] * BIG[1], np.float32).shape == (BIG[0] * BIG[1],)


def test_limit_counts_buffers_in_use_and_release_returns_unused():
    nbytes = BIG[0] * BIG[1] * 4
    array_pool.set_limit(2 * nbytes)
    a = array_pool.empty(BIG, np.float32)
    b = array_pool.empty(BIG, np.float32)
    c = array_pool.empty(BIG, np.float32)  # over the limit: a plain array
    assert c.base is None and a.base is not None and b.base is not None
    assert array_pool.cached_bytes() == (2 * nbytes, 0)
    del a
    assert array_pool.cached_bytes() == (nbytes, nbytes)
    assert array_pool.release() == nbytes
    assert array_pool.cached_bytes() == (nbytes, 0)
    del b, c


def test_unused_buffers_of_other_sizes_make_room():
    nbytes = BIG[0] * BIG[1] * 4
    array_pool.set_limit(2 * nbytes)
    a = array_pool.empty(BIG, np.float32)
    b = array_pool.empty(BIG, np.float32)
    del a, b
    d = array_pool.empty((2 * BIG[0], BIG[1]), np.float32)  # needs both unused buffers' room
    assert d.base is not None
    assert array_pool.cached_bytes() == (2 * nbytes, 0)


def test_at_most_max_per_size_buffers_are_tracked():
    kept = [array_pool.empty(BIG, np.float32) for _ in range(array_pool.MAX_PER_SIZE + 2)]
    tracked = [a for a in kept if a.base is not None]
    assert len(tracked) == array_pool.MAX_PER_SIZE
    assert len({_address(a) for a in kept}) == len(kept)


def test_concurrent_requests_never_share_a_buffer():
    errors = []

    def work(value: float) -> None:
        for _ in range(200):
            a = array_pool.empty(BIG, np.float64)
            a.fill(value)
            if not np.all(a == value):
                errors.append(value)
            del a

    threads = [threading.Thread(target=work, args=(float(k),)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.parametrize("bad", [-1, 1.5, "1", True])
def test_set_limit_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="nbytes must be an integer >= 0"):
        array_pool.set_limit(bad)


@pytest.mark.parametrize(
    "value, message",
    [("lots", "NUMBASPIKE_BUFFER_LIMIT must be a whole number"), ("-5", "must be >= 0")],
)
def test_bad_environment_limit_is_named(value, message):
    proc = subprocess.run(
        [sys.executable, "-c", "import numbaspike.runtime.array_pool"],
        env={**__import__("os").environ, "NUMBASPIKE_BUFFER_LIMIT": value},
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert message in proc.stderr


def _train(steps: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    x = (rng.random((40, 8, 120)) < 0.05).astype(np.float32)
    labels = rng.integers(0, 5, 8)
    net = Sequential(
        Linear(120, 64, seed=1, scale=20),
        LIFRecurrent(64, seed=2, scale=2),
        Linear(64, 5, seed=3),
        LI(5),
    )
    loss_fn = MaxOverTimeCrossEntropy()
    opt = Adam(net.parameters(), lr=1e-2)
    kept = []
    for _ in range(steps):
        net.zero_grad()
        y, tape = net.forward(x)
        _, g = loss_fn(y, labels)
        net.backward(g, tape)
        opt.step(net.gradients())
        kept.append(tape.outputs[1].copy())  # the hidden spikes, as a user might record
    return {**net.parameters(), "hidden": np.stack(kept)}


def test_training_is_bit_identical_with_and_without_recycling(monkeypatch):
    # every array of this small network is recycled: no lower bound on the size
    monkeypatch.setattr(array_pool, "MIN_BYTES", 0)
    with_pool = _train(6)
    assert array_pool.cached_bytes()[1] > 0  # buffers were recycled
    array_pool.set_limit(0)
    without = _train(6)
    assert with_pool.keys() == without.keys()
    for name in with_pool:
        np.testing.assert_array_equal(with_pool[name], without[name], err_msg=name)


def _allocate_in_child(conn):
    a = array_pool.empty(BIG, np.float32)
    a.fill(1.0)
    conn.send(float(a.sum()))


def test_fork_while_another_thread_holds_the_lock_does_not_deadlock_the_child():
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    held, release = threading.Event(), threading.Event()

    def hold():
        with array_pool._lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    parent_end, child_end = ctx.Pipe()
    child = ctx.Process(target=_allocate_in_child, args=(child_end,), daemon=True)
    try:
        child.start()
        assert parent_end.poll(60), "the forked child deadlocked on the buffer pool's lock"
        assert parent_end.recv() == BIG[0] * BIG[1]
        child.join(30)
        assert child.exitcode == 0
    finally:
        if child.is_alive():
            child.kill()
        release.set()
        holder.join()


def test_dense_weight_gradient_accumulates_through_the_pooled_product():
    """Linear's dense path adds ``g.T @ x`` (a pooled product) to the gradient."""
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


def test_weight_gradient_partials_are_recycled_from_call_to_call():
    """The recurrent weight gradient's per-chunk partials come from the pool: a second call
    of the same size takes no new memory."""
    from numbaspike.kernels import projection

    rng = np.random.default_rng(2)
    n = 256  # partials of (chunks, 256, 256) float32: above the pool's minimum size
    gx = rng.standard_normal((40, n)).astype(np.float32)
    z = (rng.random((40, n)) < 0.2).astype(np.float32)

    def weight_grad():
        grad = np.zeros((n, n), np.float32)
        return projection.events_weight_grad(projection.spike_events(z), gx, grad)

    first = weight_grad()
    in_use, unused = array_pool.cached_bytes()
    second = weight_grad()
    assert array_pool.cached_bytes() == (in_use, unused)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, gx.T.astype(np.float64) @ z, rtol=1e-5, atol=1e-4)
