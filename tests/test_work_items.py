"""Work items called by address (numbaspike/kernels/work_items.py): the call, its type
check, the per-type addresses, and the kernels built on them."""

import numpy as np
import pytest
from numba import njit, types

from numbaspike.kernels import cpu
from numbaspike.kernels.jit import njit as kernel_njit
from numbaspike.kernels.work_items import (
    ItemKernel,
    WorkItem,
    _launch,
    item_ranges,
    raise_for_codes,
    runner_address,
)


def _scale_item(e0, e1, x, out, factor):
    for k in range(e0, e1):
        out[k] = x[k] * factor


def _raising_item(e0, e1, x, out, factor):
    if e1 > e0 and x[e0] < 0:
        raise ValueError("negative input")
    for k in range(e0, e1):
        out[k] = x[k]


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


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_mismatched_argument_types_call_nothing_and_raise(parallel):
    item = WorkItem(_scale_item)
    address32, key32 = item.address((np.ones(4, np.float32), np.zeros(4, np.float32), 1.0))
    x = np.arange(8.0)
    out = np.full(8, -1.0)
    bounds = item_ranges(8, 2)
    with pytest.raises(RuntimeError, match="other types than the item was compiled for"):
        raise_for_codes(_launch(runner_address(parallel), address32, key32, bounds, x, out, 1.0))
    assert (out == -1.0).all()  # no item ran


def test_kernel_launch_rejects_an_item_of_other_types():
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
    bounds = cpu.li_forward.bounds(args64)
    for parallel in (False, True):
        with pytest.raises(RuntimeError, match="other types"):
            raise_for_codes(_launch(runner_address(parallel), address32, key32, bounds, *args64))
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


# --- the shared runner and kernels made of items (ItemKernel) ------------------------------


def _ranges_item(lo, hi, x, out, factor):
    for k in range(lo, hi):
        out[k] = x[k] * factor + lo


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_item_kernel_runs_every_item_once(parallel, dtype):
    kernel = ItemKernel(_ranges_item, lambda args: item_ranges(args[0].size, 7), None)
    x = np.arange(50, dtype=dtype)
    out = np.full_like(x, -1)
    kernel.run(parallel, x, out, dtype(3))
    lo = np.arange(50) // 7 * 7
    np.testing.assert_array_equal(out, x * dtype(3) + lo)


def test_item_kernel_asks_whether_to_run_in_parallel():
    asked = []

    def parallel(args):
        asked.append(args[0].size)
        return True

    kernel = ItemKernel(_ranges_item, lambda args: item_ranges(args[0].size, 4), parallel)
    x = np.ones(10)
    out = np.zeros(10)
    kernel(x, out, 2.0)
    assert asked == [10]
    np.testing.assert_array_equal(out, 2.0 + np.arange(10) // 4 * 4)


def test_item_ranges_cover_the_axis_in_order():
    np.testing.assert_array_equal(item_ranges(10, 4), [[0, 4], [4, 8], [8, 10]])
    assert item_ranges(0, 3).shape == (0, 2)
    bounds = item_ranges(7, 1)
    assert bounds.dtype == np.int64 and bounds.flags.c_contiguous


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_an_exception_in_an_item_of_an_item_kernel_reaches_the_caller(parallel):
    kernel = ItemKernel(_raising_item, lambda args: item_ranges(args[0].size, 2), None)
    x = np.arange(8.0)
    x[4] = -1.0
    with pytest.raises(RuntimeError, match="raised an exception"):
        kernel.run(parallel, x, np.zeros(8), 1.0)


# --- constant (literal) mode arguments -----------------------------------------------------


@njit(inline="always")
def _scaled(x, k, mode):
    if mode == 0:
        return x[k] * 2.0
    if mode == 1:
        return x[k] + 1.0
    return x.no_such_attribute  # fails to type unless pruned


@kernel_njit
def _shifted(value, mode):  # not inlined: pruned in its own compilation
    if mode == 1:
        return value - 1.0
    if mode == 0:
        return value
    return value.no_such_attribute  # fails to type unless pruned


def _mode_item(lo, hi, x, out, mode, negate):
    for k in range(lo, hi):
        value = _shifted(_scaled(x, k, mode), mode)
        if negate:
            value = -value
        elif mode == 7:
            value = out.no_such_attribute  # fails to type unless pruned
        out[k] = value


def test_constant_arguments_compile_one_variant_per_value_with_other_modes_pruned():
    """Branches that cannot be typed compile away when the mode is a constant (in the item
    itself, an inlined function and a function it calls): the modes are pruned before
    typing."""
    kernel = ItemKernel(
        _mode_item,
        lambda args: item_ranges(args[0].size, 3),
        None,
        {"mode": (0, 1, 2, 7), "negate": (False, True)},
    )
    x = np.arange(10.0)
    for mode, negate, expected in [
        (0, False, x * 2.0),
        (1, False, x),
        (0, True, -x * 2.0),
        (1, True, -x),
    ]:
        for parallel in (False, True):
            out = np.zeros(10)
            kernel.run(parallel, x, out, mode, negate)
            np.testing.assert_array_equal(out, expected)
    signatures = [str(sig) for sig in kernel.item.dispatcher.signatures]
    assert len(signatures) == 4
    assert all("Literal[int]" in s and "Literal[bool]" in s for s in signatures), signatures
    with pytest.raises(Exception, match="no_such_attribute"):  # mode 2 is not pruned
        kernel.run(False, x, np.zeros(10), 2, False)


def _general_item(lo, hi, x, out, mode, negate):
    for k in range(lo, hi):
        value = x[k] * mode
        out[k] = -value if negate else value


def test_modes_outside_the_specialised_values_share_one_general_compilation():
    kernel = ItemKernel(
        _general_item, lambda args: item_ranges(args[0].size, 4), None, {"mode": (0, 1)}
    )
    x = np.arange(9.0)
    for mode, negate in [(1, False), (2, False), (3, True), (5, False), (1, False)]:
        out = np.zeros(9)
        kernel.run(True, x, out, mode, negate)
        np.testing.assert_array_equal(out, -x * mode if negate else x * mode)
    signatures = kernel.item.dispatcher.signatures
    assert len(signatures) == 2, signatures  # mode 1 (literal) and the general one
    assert sum(sig[4] == types.int64 for sig in signatures) == 1


def test_a_constant_argument_must_be_an_integer_or_a_boolean():
    kernel = ItemKernel(
        _mode_item, lambda args: item_ranges(args[0].size, 3), None, {"mode": (0.5,)}
    )
    with pytest.raises(TypeError, match="must be an int64 or a boolean"):
        kernel.run(False, np.arange(4.0), np.zeros(4), 0.5, False)


def test_kernel_items_are_compiled_for_their_modes_as_literals():
    """The LIF items receive their mode arguments as literal types (one compilation per
    combination of modes in use), so their branches on modes are pruned."""
    import numbaspike as ns

    x = np.random.default_rng(1).normal(1.0, 2.0, (6, 3, 5))
    z, tape = ns.lif_forward(x, param_grads=False)  # the defaults of the layers
    ns.lif_backward(np.ones_like(z), tape)
    for kernel, first_mode in (
        (cpu.lif_feed_forward_forward, 2 + 6),  # item locals, then x .. v_reset
        (cpu.lif_feed_forward_backward, 2 + 9),  # grad_z .. v_reset
    ):
        found = [
            sig
            for sig in kernel.item.dispatcher.signatures
            if sig[2] == types.float64[:, :, ::1] and sig[first_mode] == types.literal(0)
        ]
        assert found, kernel.item.dispatcher.signatures
