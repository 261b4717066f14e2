"""Work items called by address (numbaspike/compiler/parallel_runner.py): the records that carry
a kernel's arguments, the adapters' type check, the per-type entries, and the kernels built
on them."""

import numpy as np
import pytest
from numba import njit, types

from numbaspike.compiler.mode_pruning import njit as kernel_njit
from numbaspike.compiler.parallel_runner import (
    ItemKernel,
    WorkItem,
    item_ranges,
    raise_for_codes,
    run_entry,
)
from numbaspike.kernels import cpu


def _scale_item(e0, e1, x, out, factor):
    for k in range(e0, e1):
        out[k] = x[k] * factor


def _raising_item(e0, e1, x, out, factor):
    if e1 > e0 and x[e0] < 0:
        raise ValueError("negative input")
    for k in range(e0, e1):
        out[k] = x[k]


def test_entries_are_per_argument_types_and_reused():
    item = WorkItem(_scale_item)
    a32 = (np.ones(4, np.float32), np.zeros(4, np.float32), np.float32(1))
    a64 = (np.ones(4), np.zeros(4), 1.0)
    first = item.entry(a32)
    assert item.entry((np.ones(9, np.float32), np.zeros(9, np.float32), np.float32(3))) is first
    assert item.entry(a64) is not first
    assert item.entry(a64).address != first.address
    assert len(item.dispatcher.overloads) == 2
    readonly = np.ones(4)
    readonly.flags.writeable = False  # another Numba type: its own compilation
    assert item.entry((readonly, np.zeros(4), 1.0)) is not item.entry(a64)
    assert len(item.dispatcher.overloads) == 3
    # each adapter lives in its item's library (compiled and cached with it)
    libraries = {id(compiled.library) for compiled in item.dispatcher.overloads.values()}
    assert id(first._library) in libraries and id(item.entry(a64)._library) in libraries


def _echo_item(lo, hi, out, i32, u8, i64, flag, f32, f64, nothing, a2, a0, strided):
    """Writes back what it received, so that the record's packing can be checked."""
    out[0] = i32
    out[1] = u8
    out[2] = i64
    out[3] = 1.0 if flag else -1.0
    out[4] = f32
    out[5] = f64
    out[6] = 1.0 if nothing is None else -1.0
    out[7] = a2[1, 2]
    out[8] = a2.shape[0] * 100 + a2.shape[1]
    out[9] = a0[()]
    out[10] = strided.sum()
    out[11] = strided.shape[0]
    out[12] = hi - lo


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_a_record_carries_every_kind_of_argument(parallel):
    """Integers of several widths, booleans, floats, None and arrays of any dimension
    (0-d, readonly, strided) reach the item unchanged."""
    kernel = ItemKernel(_echo_item, lambda args: item_ranges(1, 1), None)
    a2 = np.arange(12.0).reshape(3, 4)
    a2.flags.writeable = False
    strided = np.arange(10.0)[::3]  # 0, 3, 6, 9: not contiguous
    out = np.zeros(13)
    args = (np.int32(-7), np.uint8(200), -(2**40), True, np.float32(0.1), 1e300, None)
    kernel.run(parallel, out, *args, a2, np.array(2.5), strided)
    np.testing.assert_array_equal(
        out, [-7, 200, -(2**40), 1, np.float32(0.1), 1e300, 1, 6, 304, 2.5, 18, 4, 1]
    )
    out[:] = 0
    kernel.run(parallel, out, np.int32(3), np.uint8(0), 5, False, np.float32(-2), -0.0, None,
               a2, np.array(-1.0), strided)  # fmt: skip
    assert out[:6].tolist() == [3, 0, 5, -1, -2, 0] and out[9] == -1.0


def test_an_argument_of_another_kind_is_refused_by_name():
    kernel = ItemKernel(_scale_item, lambda args: item_ranges(args[0].size, 2), None)
    with pytest.raises(TypeError, match="argument 2 of a work item kernel has the type"):
        kernel.run(False, np.ones(4), np.zeros(4), (1.0, 2.0))


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_a_record_of_other_types_calls_nothing_and_raises(parallel):
    item = WorkItem(_scale_item)
    entry32 = item.entry((np.ones(4, np.float32), np.zeros(4, np.float32), 1.0))
    x = np.arange(8.0)
    out = np.full(8, -1.0)
    record64 = item.entry((x, out, 1.0)).layout.pack((x, out, 1.0))
    with pytest.raises(RuntimeError, match="other types than the item was compiled for"):
        raise_for_codes(run_entry(parallel, entry32, record64, item_ranges(8, 2)))
    assert (out == -1.0).all()  # no item ran


def test_kernel_run_rejects_an_entry_of_other_types():
    """A real kernel (the leaky integrator) given the float32 entry with float64 data."""
    rng = np.random.default_rng(0)

    def li_args(dtype):  # (T, B*N) and (B*N,), as cpu.li_forward passes them
        x = rng.normal(size=(5, 12)).astype(dtype)
        p = [np.full(12, v, dtype) for v in (0.1, 0.8, 0.0)]
        state = [np.zeros(12, dtype) for _ in range(2)]
        outs = [np.empty((5, 12), dtype), np.empty((0, 0), dtype), np.empty((0, 0), dtype)]
        return (x, *p, *state, *outs, True, False, False)

    kernel = cpu.li_forward_flat
    args32, args64 = li_args(np.float32), li_args(np.float64)
    entry32 = kernel.item.entry(args32)
    record64 = kernel.item.entry(args64).layout.pack(args64)
    bounds = kernel.bounds(args64)
    for parallel in (False, True):
        with pytest.raises(RuntimeError, match="other types"):
            raise_for_codes(run_entry(parallel, entry32, record64, bounds))
    kernel(*args64)  # the kernel finds the float64 entry itself
    assert np.isfinite(args64[6]).all() and np.abs(args64[6]).sum() > 0  # v_out


def test_items_are_cached_on_disk(tmp_path):
    """The items have their own on-disk cache entries, which carry their adapters."""
    import os
    import subprocess
    import sys

    snippet = (
        "import numpy as np, numbaspike as ns\n"
        "from numbaspike.compiler import parallel_runner as wi\n"
        "built = []\n"
        "wi._build_adapter = lambda *args: built.append(args)\n"
        "x = np.ones((20, 8, 64), np.float32)\n"
        "w = np.eye(64, dtype=np.float32)\n"
        "for w_rec in (None, w):\n"
        "    z, t = ns.lif_forward(x, w_rec=w_rec)\n"
        "    ns.lif_backward(np.ones_like(z), t)\n"
        "print(len(built))\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    for _ in ("cold", "warm"):  # the adapters come from the items' libraries, cached with them
        out = subprocess.run(
            [sys.executable, "-c", snippet], env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["0"]
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


@njit(inline="always")
def _generator(x):  # Numba refuses to inline a generator
    yield x


@njit(inline="always")
def _step_of_mode(x, mode):
    if mode == 0:
        return x + 1.0
    return _generator(x)  # only in the branch of another mode


def _top(x):
    return _step_of_mode(x, 0)  # a constant mode, as the literal modes of a kernel item


def test_the_callees_of_pruned_branches_are_not_inlined():
    """The kernel pipeline inlines one call level at a time and prunes in between
    (:class:`~numbaspike.compiler.mode_pruning.InlineInlinablesByLevel`): a callee reached only
    through another mode's branch is never inlined. Numba's own pass inlines every level
    of a callee before pruning, which fails here."""
    assert kernel_njit(_top)(1.0) == 2.0
    with pytest.raises(Exception, match="(?i)yield|generator"):
        njit(_top)(1.0)  # Numba's pipeline


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
        (cpu.lif_feed_forward_forward_flat, 2 + 6),  # item locals, then x .. v_reset
        (cpu.lif_feed_forward_backward_flat, 2 + 9),  # grad_z .. v_reset
    ):
        found = [
            sig
            for sig in kernel.item.dispatcher.signatures
            if sig[2] == types.float64[:, ::1] and sig[first_mode] == types.literal(0)
        ]
        assert found, kernel.item.dispatcher.signatures


def test_an_item_without_its_adapter_gets_one_built():
    """An item loaded from an on-disk cache written before items carried their adapter
    (simulated: compiled by the plain kernel pipeline) is called through an adapter
    compiled on its own."""
    item = WorkItem(_scale_item)
    item.dispatcher = kernel_njit(no_cpython_wrapper=True)(_scale_item)
    entry = item.entry((np.ones(4), np.zeros(4), 1.0))
    (compiled,) = item.dispatcher.overloads.values()
    assert entry._library is not compiled.library  # the adapter has a library of its own
    x = np.arange(6.0)
    out = np.zeros(6)
    for parallel in (False, True):
        out[:] = 0
        raise_for_codes(
            run_entry(parallel, entry, entry.layout.pack((x, out, 2.0)), item_ranges(6, 4))
        )
        np.testing.assert_array_equal(out, 2 * x)


def test_li_kernel_views_never_copy():
    """cpu.li_forward / li_backward flatten (T, B, N) and (B, N) arrays to views the kernel
    writes through; an array that could only be flattened by a copy is refused."""
    state = np.zeros((4, 6))
    flat = cpu._elements(state)
    flat[3] = 1.0
    assert state[0, 3] == 1.0
    assert cpu._steps_by_elements(np.empty((0, 0, 0))).shape == (0, 0)
    with pytest.raises(AttributeError):
        cpu._elements(state.T)
