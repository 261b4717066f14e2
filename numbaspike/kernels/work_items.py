"""Parallel kernels made of work items: functions compiled on their own and called by
address, by one parallel runner shared by every kernel.

A kernel here is a *work-item* function (one batch row, one chunk of neurons, all steps)
and a table of work-item bounds. Three costs of Numba's compiler shaped this module,
measured on the SHD-sized training step (cold cache, 2-core reference machine):

* **Re-optimisation of callees.** A ``parallel=True`` shell that called its item as an
  ordinary ``njit`` function linked the item's module into its own, and LLVM optimised the
  whole item again (the recurrent backward shell took 5.8 s, as long as its item). Items
  are therefore compiled (and cached on disk) once by their own dispatcher and called
  through their address, following Numba's calling convention as Numba does for
  first-class functions; no address is compiled into cached code.
* **Parfor lowering.** Each ``parallel=True`` function costs about 1.2 s of parfor lowering,
  however small its loop: nine shells were 9-10 s of a 29-32 s cold start. The kernels
  now share one parallel function, the *runner* (:func:`_run_items`), compiled once for
  integer arguments only: it calls an *adapter* for each row of the bounds table. A small
  serial *launcher* (:func:`_launch`), compiled per kernel argument types, stores the
  kernel's arguments in a stack record and hands the runner the record's address and the
  address of the adapter, which it generates in its own module: the adapter reads the
  arguments back and calls the item. A serial runner (the same loop, not parallel) runs
  problems too small for a parallel region; both give the same bits.
* **Every mode compiled.** Items branch on mode arguments (reset, surrogate, flags) outside
  their loops; compiled for plain integers, every mode's branch is typed and optimised.
  :class:`WorkItem` compiles the default modes as Numba literals, whose branches
  :mod:`.jit` prunes before typing (the backward item: 8-10 s before, 3-4 s after).

Safety: the item is compiled for the argument types the kernel is called with (``int64``
for each of the leading item-local arguments, then the kernel's arguments in order).
Every call checks this: the call site compares a key of the argument types it was
compiled with against the key of the types the item was compiled for, and calls only
when they agree; otherwise it returns a code that becomes an error (never a call through
a mismatched signature). An item that raises (it can only run out of memory) also comes
back as a code and an error, from a parallel region as from a serial one.
"""

from __future__ import annotations

import functools
import inspect
import threading
import types as pytypes
import zlib

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.core.typing import signature
from numba.core.typing.typeof import Purpose, typeof
from numba.extending import intrinsic

from .jit import njit as kernel_njit

try:  # Numba's own fast type fingerprint of an argument (the key of its dispatch cache)
    from numba._dispatcher import compute_fingerprint as _fingerprint
except ImportError:  # pragma: no cover - a Numba without it: slower keys, same results

    def _fingerprint(value):
        return typeof(value, Purpose.argument)


__all__ = [
    "ItemKernel",
    "WorkItem",
    "raise_for_codes",
    "item_ranges",
    "one_item_each",
    "blocks_of",
    "parts_of",
    "runner_address",
    "types_key",
]


#: Result code of a call of an item whose argument types do not match the call's.
MISMATCH = 1
#: Result code of a call of an item that raised (above any sum of mismatches).
FAILED = 1 << 32


def types_key(argtypes) -> int:
    """A 31-bit key of a tuple of Numba types (their ``repr``, stable across processes)."""
    return zlib.crc32(repr(tuple(argtypes)).encode()) & 0x7FFFFFFF


def raise_for_codes(codes: int) -> None:
    """Raise if any call of a work item failed (``codes``: the sum of their result codes).
    Checked in Python, after the launcher returns: raising from compiled code would add
    exception machinery to the module of every launcher (about 0.1 s of compile each)."""
    if codes >= FAILED:
        raise RuntimeError(
            "a work item of a numbaspike kernel raised an exception (out of memory?); "
            "its results are incomplete"
        )
    if codes != 0:
        raise RuntimeError(
            "numbaspike internal error: a parallel kernel passed its work item arguments of "
            "other types than the item was compiled for (no item was called with them)"
        )


class WorkItem:
    """The work-item function of a parallel kernel, compiled on its own (``cache=True``)
    and called by address.

    Parameters
    ----------
    py_func : function
        The item. It takes ``n_local`` integers (its work item: a batch row, a range of
        neurons) followed by all of the kernel's arguments, in order, and returns None.
    n_local : int
        Number of leading item-local ``int64`` arguments.
    constants : dict of str to tuple
        Integer or boolean arguments (mode codes and flags), each with the values for
        which the item is specialised. When every one of them holds one of its values, the
        item is compiled for that combination with the values as Numba literal types, so
        that the branches of other modes are dropped before they are typed
        (:mod:`.jit`). Other combinations share one compilation for plain types, which
        serves every mode.
    **options
        ``njit`` options of the item (e.g. ``fastmath``).

    Notes
    -----
    A literal argument has the same machine representation as the plain integer or
    boolean, so the key that the call checks is that of the plain types, and the
    value passed at run time is the one the item was compiled for (it is part of the
    lookup). Compiling only the modes in use matters: the LIF backward item compiled
    for every reset mode, surrogate and flag took 8-10 s of the 25 s cold start of the
    SHD-sized training step. Specialising *every* combination, though, multiplies the
    compilations of a program that uses many modes (the test suite ran 4x longer): hence
    the listed values (the defaults), and one general compilation for the rest.
    """

    def __init__(self, py_func, n_local: int = 2, constants=None, **options):
        self.dispatcher = kernel_njit(cache=True, **options)(py_func)
        self.n_local = n_local
        names = list(inspect.signature(py_func).parameters)[n_local:]
        constants = constants or {}
        self._constant_positions = tuple(names.index(name) for name in constants)
        self._specialised_values = tuple(frozenset(values) for values in constants.values())
        self._by_fingerprint: dict[tuple, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self.__name__ = py_func.__name__
        self.__doc__ = py_func.__doc__

    def address(self, args) -> tuple[int, int]:
        """``(address, key)`` of the item compiled for a kernel called with ``args``;
        compiles (or loads from the on-disk cache) on the first call per argument types."""
        fingerprint = (*map(_fingerprint, args), *self._constant_values(args))
        found = self._by_fingerprint.get(fingerprint)
        if found is None:
            with self._lock:
                found = self._by_fingerprint.get(fingerprint)
                if found is None:
                    found = self._compile(args)
                    self._by_fingerprint[fingerprint] = found
        return found

    def _constant_values(self, args) -> tuple:
        """The values of the constant arguments if the item is specialised for them, else
        ``()`` (the general compilation)."""
        values = tuple(args[k] for k in self._constant_positions)
        for value, specialised in zip(values, self._specialised_values, strict=True):
            if value not in specialised:
                return ()
        return values

    def _compile(self, args) -> tuple[int, int]:
        plain = [typeof(a, Purpose.argument) for a in args]
        compiled = list(plain)
        for k in self._constant_positions if self._constant_values(args) else ():
            if plain[k] == types.boolean:
                compiled[k] = types.literal(bool(args[k]))
            elif plain[k] == types.int64:
                compiled[k] = types.literal(int(args[k]))
            else:
                raise TypeError(
                    f"numbaspike internal error: constant argument {k} of {self.__name__} "
                    f"must be an int64 or a boolean, got {plain[k]}"
                )
        local = (types.int64,) * self.n_local
        argtypes = (*local, *compiled)
        self.dispatcher.compile(argtypes)
        result = self.dispatcher.overloads[argtypes]
        address = result.library.get_pointer_to_function(result.fndesc.llvm_func_name)
        return address, types_key((*local, *plain))


# --- one parallel runner for every kernel (see the module's description) ---------------

_I64 = ir.IntType(64)
_BYTE_PTR = ir.IntType(8).as_pointer()
#: LLVM type of an adapter: ``code = adapter(lo, hi, record)``.
_ADAPTER_TYPE = ir.FunctionType(_I64, [_I64, _I64, _BYTE_PTR])


def _emit_item_call(context, builder, address, key, expected, argtypes, values):
    """Code that calls the Numba function at ``address`` (which returns None) with
    ``values`` (of ``argtypes``) if ``key == expected``; returns 0 after a successful call,
    :data:`MISMATCH` (having called nothing) on a mismatch, :data:`FAILED` if the function
    raised. An exception raised inside a parallel region does not reach the caller by
    itself: the runner sums the codes and the launcher returns them to :func:`raise_for_codes`."""
    result = cgutils.alloca_once_value(builder, ir.Constant(_I64, MISMATCH))
    matches = builder.icmp_signed("==", key, ir.Constant(key.type, expected))
    with builder.if_then(matches, likely=True):
        fnty = context.call_conv.get_function_type(types.none, argtypes)
        fn = builder.inttoptr(address, fnty.as_pointer())
        status, _ = context.call_conv.call_function(builder, fn, types.none, argtypes, values)
        code = builder.select(status.is_error, ir.Constant(_I64, FAILED), ir.Constant(_I64, 0))
        builder.store(code, result)
    return builder.load(result)


@intrinsic
def _call_adapter(typingctx, adapter, lo, hi, record):
    """``adapter(lo, hi, record)`` for an adapter made by :func:`_launch_items`."""
    sig = signature(types.int64, types.int64, types.int64, types.int64, types.int64)

    def codegen(context, builder, sig, llargs):
        adapter_value, lo_value, hi_value, record_value = llargs
        fn = builder.inttoptr(adapter_value, _ADAPTER_TYPE.as_pointer())
        return builder.call(fn, [lo_value, hi_value, builder.inttoptr(record_value, _BYTE_PTR)])

    return sig, codegen


def _run_items(adapter, record, bounds):
    """Call ``adapter(bounds[w, 0], bounds[w, 1], record)`` for every work item ``w``;
    returns the sum of their result codes."""
    codes = 0
    for w in prange(bounds.shape[0]):
        codes += _call_adapter(adapter, bounds[w, 0], bounds[w, 1], record)
    return codes


_BOUNDS_TYPE = types.Array(types.int64, 2, "C")
_RUNNER_TYPES = (types.int64, types.int64, _BOUNDS_TYPE)


def _renamed(fn, suffix: str):
    """A copy of the function ``fn`` named ``fn.__name__ + suffix``.

    Numba's on-disk cache keys a compilation by the function's qualified name and
    bytecode, not by the compiler flags: a serial and a parallel dispatcher of one Python
    function would share (and overwrite) one cache entry, so that the "serial" kernel
    loaded from the cache could be the parallel one. The serial variants are therefore
    compiled from a renamed copy, cached under their own name.
    """
    clone = pytypes.FunctionType(
        fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__, fn.__closure__
    )
    clone.__qualname__ = fn.__qualname__ + suffix
    clone.__module__ = fn.__module__
    clone.__doc__ = fn.__doc__
    return clone


_runners = {
    True: njit(parallel=True, cache=True)(_run_items),
    False: njit(cache=True)(_renamed(_run_items, "_serial")),
}
_runner_addresses: dict[bool, int] = {}


def runner_address(parallel: bool) -> int:
    """Address of the compiled parallel (or serial) runner; compiled on first use."""
    found = _runner_addresses.get(parallel)
    if found is None:
        dispatcher = _runners[parallel]
        dispatcher.compile(_RUNNER_TYPES)
        result = dispatcher.overloads[_RUNNER_TYPES]
        found = result.library.get_pointer_to_function(result.fndesc.llvm_func_name)
        _runner_addresses[parallel] = found
    return found


@intrinsic
def _launch_items(typingctx, runner, item, key, bounds, args):
    """Run the item at ``item`` (of key ``key``) over ``bounds`` with the arguments ``args``
    by the runner at ``runner``; returns the runner's sum of result codes (or
    :data:`FAILED` if the runner itself failed)."""
    if not isinstance(args, types.BaseTuple) or bounds != _BOUNDS_TYPE:
        return None
    argtypes = (types.int64, types.int64, *args.types)
    expected = types_key(argtypes)

    def codegen(context, builder, sig, llargs):
        runner_value, item_value, key_value, bounds_value, args_value = llargs
        record_type = ir.LiteralStructType([_I64, _I64, args_value.type])
        module = builder.module
        name = f"numbaspike_item_adapter_{expected:08x}"
        adapter = cgutils.get_or_insert_function(module, _ADAPTER_TYPE, name)
        if adapter.is_declaration:
            adapter.linkage = "internal"
            abuilder = ir.IRBuilder(adapter.append_basic_block("entry"))
            lo, hi, raw = adapter.args
            record = abuilder.load(abuilder.bitcast(raw, record_type.as_pointer()))
            packed = abuilder.extract_value(record, 2)
            values = [lo, hi, *(abuilder.extract_value(packed, k) for k in range(len(args)))]
            code = _emit_item_call(
                context, abuilder, abuilder.extract_value(record, 0),
                abuilder.extract_value(record, 1), expected, argtypes, values,
            )  # fmt: skip
            abuilder.ret(code)
        record = cgutils.alloca_once(builder, record_type)
        builder.store(item_value, cgutils.gep_inbounds(builder, record, 0, 0))
        builder.store(key_value, cgutils.gep_inbounds(builder, record, 0, 1))
        builder.store(args_value, cgutils.gep_inbounds(builder, record, 0, 2))
        fnty = context.call_conv.get_function_type(types.int64, _RUNNER_TYPES)
        fn = builder.inttoptr(runner_value, fnty.as_pointer())
        status, codes = context.call_conv.call_function(
            builder, fn, types.int64, _RUNNER_TYPES,
            (builder.ptrtoint(adapter, _I64), builder.ptrtoint(record, _I64), bounds_value),
        )  # fmt: skip
        return builder.select(status.is_error, ir.Constant(_I64, FAILED), codes)

    return signature(types.int64, runner, item, key, bounds, args), codegen


@njit(cache=True)
def _launch(runner, item, key, bounds, *args):
    """Run the item at ``item`` over ``bounds`` by the runner at ``runner``; returns the
    sum of the items' result codes (:func:`raise_for_codes` turns them into errors)."""
    return _launch_items(runner, item, key, bounds, args)


@functools.lru_cache(maxsize=1024)
def item_ranges(size: int, step: int) -> np.ndarray:
    """Work-item bounds ``(lo, hi)`` of the consecutive ranges of ``step`` (>= 1) in
    ``0 .. size``, as :class:`ItemKernel` takes them (cached: never write to the result)."""
    lo = np.arange(0, size, step, dtype=np.int64)
    return np.ascontiguousarray(np.stack([lo, np.minimum(lo + step, size)], axis=1))


def one_item_each(count):
    """``bounds(args)`` for :class:`ItemKernel`: one work item ``(c, c + 1)`` for each
    ``c < count(args)``."""
    return lambda args: item_ranges(count(args), 1)


def blocks_of(size, step):
    """``bounds(args)``: consecutive blocks of ``step`` of the ``size(args)`` entries."""
    return lambda args: item_ranges(size(args), step)


def parts_of(size, count):
    """``bounds(args)``: about ``count`` equal blocks of the ``size(args)`` entries."""

    def bounds(args):
        entries = size(args)
        return item_ranges(entries, max(1, -(-entries // count)))

    return bounds


class ItemKernel:
    """A parallel kernel made of a work-item function and a table of work-item bounds,
    run by the shared runner (parallel or serial).

    Parameters
    ----------
    py_func : function
        The item: ``py_func(lo, hi, *args)`` does work item ``(lo, hi)`` (a range of
        neurons, a batch row, a chunk index: whatever ``bounds`` lists) of a kernel called
        with ``args``, and returns None. Items must not write the same memory.
    bounds : callable
        ``bounds(args)``: a C-contiguous (n_items, 2) int64 array of ``(lo, hi)`` pairs,
        fixed by the shapes of ``args`` (never by the thread count, so that results do not
        depend on it).
    parallel : callable or None
        ``parallel(args)``: whether a call should open a parallel region (None for a kernel
        run only through :meth:`run`, which is told).
    constants : dict of str to tuple
        Arguments compiled in as constants for the listed values (:class:`WorkItem`).
    **options
        ``njit`` options of the item.
    """

    def __init__(self, py_func, bounds, parallel, constants=None, **options):
        self.item = WorkItem(py_func, n_local=2, constants=constants, **options)
        self.bounds = bounds
        self.parallel = parallel
        self.__name__ = py_func.__name__
        self.__doc__ = py_func.__doc__

    def __call__(self, *args):
        self.run(self.parallel(args), *args)

    def run(self, parallel: bool, *args) -> None:
        """Run every work item, on the calling thread unless ``parallel``."""
        bounds = self.bounds(args)
        address, key = self.item.address(args)
        runner = runner_address(parallel and bounds.shape[0] > 1)
        raise_for_codes(_launch(runner, address, key, bounds, *args))
