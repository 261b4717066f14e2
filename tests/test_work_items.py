"""Work items called by address (numbaspike/kernels/work_items.py): the call, its type
check, the per-type addresses, and the kernels built on them."""

import numpy as np
import pytest
from numba import njit, prange

from numbaspike.kernels import cpu
from numbaspike.kernels.work_items import WorkItem, call_at, check_calls


def _scale_item(e0, e1, x, out, factor):
    for k in range(e0, e1):
        out[k] = x[k] * factor


def _raising_item(e0, e1, x, out, factor):
    if e1 > e0 and x[e0] < 0:
        raise ValueError("negative input")
    for k in range(e0, e1):
        out[k] = x[k]


def _shell(item, key, x, out, factor):
    n = x.size
    codes = 0
    for c in prange(4):
        e0 = np.int64(c) * n // 4
        codes += call_at(item, key, e0, np.int64(c + 1) * n // 4, x, out, factor)
    check_calls(codes)


parallel_shell = njit(parallel=True)(_shell)
serial_shell = njit(_shell)


@pytest.mark.parametrize("shell", [parallel_shell, serial_shell], ids=["parallel", "serial"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_call_by_address_computes_what_a_direct_call_does(shell, dtype):
    item = WorkItem(_scale_item)
    x = np.arange(101, dtype=dtype)
    out = np.zeros_like(x)
    args = (x, out, dtype(2.5))
    shell(*item.address(args), *args)
    np.testing.assert_array_equal(out, x * dtype(2.5))


def test_addresses_are_per_argument_types_and_reused():
    item = WorkItem(_scale_item)
    a32 = (np.ones(4, np.float32), np.zeros(4, np.float32), np.float32(1))
    a64 = (np.ones(4), np.zeros(4), 1.0)
    first = item.address(a32)
    assert item.address((np.ones(9, np.float32), np.zeros(9, np.float32), np.float32(3))) == first
    assert item.address(a64) != first
    assert len(item.dispatcher.overloads) == 2
    readonly = np.ones(4)
    readonly.flags.writeable = False  # another Numba type: its own compilation
    assert item.address((readonly, np.zeros(4), 1.0)) != item.address(a64)


@pytest.mark.parametrize("shell", [parallel_shell, serial_shell], ids=["parallel", "serial"])
def test_mismatched_argument_types_call_nothing_and_raise(shell):
    item = WorkItem(_scale_item)
    address32, key32 = item.address((np.ones(4, np.float32), np.zeros(4, np.float32), 1.0))
    x = np.arange(8.0)
    out = np.full(8, -1.0)
    with pytest.raises(RuntimeError, match="other types than the item was compiled for"):
        shell(address32, key32, x, out, 1.0)  # float64 arrays, float32 item
    assert (out == -1.0).all()  # no item ran


@pytest.mark.parametrize("shell", [parallel_shell, serial_shell], ids=["parallel", "serial"])
def test_an_exception_in_the_item_reaches_the_caller(shell):
    item = WorkItem(_raising_item)
    x = np.arange(8.0)
    x[4] = -1.0
    args = (x, np.zeros(8), 1.0)
    with pytest.raises(RuntimeError, match="raised an exception"):
        shell(*item.address(args), *args)


def test_kernel_shell_rejects_an_item_of_other_types():
    """A real kernel (the leaky integrator) given the float32 item with float64 data."""
    rng = np.random.default_rng(0)

    def li_args(dtype):
        x = rng.normal(size=(5, 4, 3)).astype(dtype)
        p = [np.full(3, v, dtype) for v in (0.1, 0.8, 0.0)]
        state = [np.zeros((4, 3), dtype) for _ in range(2)]
        outs = [np.empty((5, 4, 3), dtype), np.empty((0, 0, 0), dtype), np.empty((0, 0, 0), dtype)]
        return (x, *p, *state, *outs, True, False, False)

    args32, args64 = li_args(np.float32), li_args(np.float64)
    address32, key32 = cpu.li_forward.item.address(args32)
    with pytest.raises(RuntimeError, match="other types"):
        cpu.li_forward.serial(address32, key32, *args64)
    cpu.li_forward(*args64)  # the dispatcher finds the float64 item itself
    assert np.isfinite(args64[6]).all() and np.abs(args64[6]).sum() > 0  # v_out


def test_items_are_cached_on_disk(tmp_path):
    """The items have their own on-disk cache entries (the shells no longer contain them)."""
    import os
    import subprocess
    import sys

    snippet = (
        "import numpy as np, numbaspike as ns\n"
        "x = np.ones((20, 8, 64), np.float32)\n"
        "w = np.eye(64, dtype=np.float32)\n"
        "for w_rec in (None, w):\n"
        "    z, t = ns.lif_forward(x, w_rec=w_rec)\n"
        "    ns.lif_backward(np.ones_like(z), t)\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", snippet], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    index_files = {f for _, _, files in os.walk(tmp_path) for f in files if f.endswith(".nbi")}
    for item in (
        "_lif_feed_forward_forward_item",
        "_lif_feed_forward_backward_item",
        "_lif_recurrent_forward_row",
        "_lif_recurrent_backward_group",
    ):
        assert any(f.startswith(f"cpu.{item}-") for f in index_files), sorted(index_files)
