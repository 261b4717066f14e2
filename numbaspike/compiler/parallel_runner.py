"""Parallel kernels made of work items: functions compiled on their own and called by
address, by one parallel runner shared by every kernel.

A kernel here is a *work-item* function (one batch row, one chunk of neurons, all steps)
and a table of work-item bounds. Three costs of Numba's compiler shaped this module (the
figures are in benchmarks/results/calibration.md):

* **Re-optimisation of callees.** A ``parallel=True`` shell that called its item as an
  ordinary ``njit`` function linked the item's module into its own, and LLVM optimised the
  whole item again, as long as compiling the item. Items
  are therefore compiled (and cached on disk) once by their own dispatcher, without a
  CPython wrapper, and called through their address, following Numba's calling
  convention as Numba does for first-class functions; no address is compiled into cached
  code.
* **Parfor lowering, and a compiled function per kernel signature.** Each
  ``parallel=True`` function costs about a second of parfor lowering, however small its
  loop. The kernels share one parallel
  function, the *runner* (:func:`_run_items`), compiled once: it calls an *adapter* for
  each row of a bounds table. The kernel's arguments reach the adapter in a *record* (an
  int64 array, :class:`_RecordLayout`) that Python packs: scalars by value, arrays as
  their objects, which the runner turns into Numba's array structures in place (Numba's
  own ``numba_adapt_ndarray``, under the GIL) before its parallel loop. The adapter, a few
  LLVM instructions made per item signature (:func:`_build_adapter`, milliseconds),
  reads the record and calls the item. This replaced a *launcher* compiled by Numba per
  kernel signature (with the CPython wrapper that unboxed its arguments), which cost
  compile time per kernel. A serial runner (the same loop, not parallel)
  runs problems too small for a parallel region; both give the same bits.
* **Every mode compiled.** Items branch on mode arguments (reset, surrogate, flags) outside
  their loops; compiled for plain integers, every mode's branch is typed and optimised.
  :class:`WorkItem` compiles the default modes as Numba literals, whose branches
  :mod:`.mode_pruning` prunes before typing (the backward item compiles in about a third of
  the time).

Safety: the item is compiled for the argument types the kernel is called with (``int64``
for each of the two leading item-local arguments, then the kernel's arguments in order),
and the record is packed for those types. Every call of an adapter compares the key of
the types its record was packed for against the key of the types the item was compiled
for, and calls the item only when they agree; otherwise it returns a code that becomes an
error (never a call through a mismatched signature). An item that raises (it can only run
out of memory) also comes back as a code and an error, from a parallel region as from a
serial one.
"""

from __future__ import annotations

import functools
import inspect
import struct
import threading
import types as pytypes
import zlib

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.core.compiler_lock import global_compiler_lock
from numba.core.compiler_machinery import register_pass
from numba.core.lowering import Lower
from numba.core.registry import cpu_target
from numba.core.typed_passes import NativeLowering
from numba.core.typing import signature
from numba.core.typing.typeof import Purpose, typeof
from numba.extending import intrinsic

from ..runtime.threads import parallel_allowed
from .mode_pruning import KernelCompiler, replace_pass
from .mode_pruning import njit as kernel_njit

try:  # Numba's own fast type fingerprint of an argument (the key of its dispatch cache)
    from numba._dispatcher import compute_fingerprint as _fingerprint
except ImportError:  # pragma: no cover - a Numba without it: slower keys, same results

    def _fingerprint(value):
        return typeof(value, Purpose.argument)


__all__ = [
    "ItemKernel",
    "WorkItem",
    "raise_for_codes",
    "run_entry",
    "item_ranges",
    "one_item_each",
    "blocks_of",
    "first_length",
    "parallel_from",
    "parts_of",
    "types_key",
]


#: Result code of a call of an adapter with a record of other argument types.
MISMATCH = 1
#: Result code of a call of an item that raised (above any sum of mismatches).
FAILED = 1 << 32


def types_key(argtypes) -> int:
    """A 31-bit key of a tuple of Numba types (their ``repr``, stable across processes)."""
    return zlib.crc32(repr(tuple(argtypes)).encode()) & 0x7FFFFFFF


def raise_for_codes(codes: int) -> None:
    """Raise if any call of a work item failed (``codes``: the sum of their result codes).
    Checked in Python, after the runner returns: the runner and the adapters carry no
    exception machinery."""
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


# --- records: a kernel's arguments in int64 words -----------------------------------------

_I64 = ir.IntType(64)
_BYTE_PTR = ir.IntType(8).as_pointer()
_INT_FORMATS = {(8, True): "b", (16, True): "h", (32, True): "i", (64, True): "q",
                (8, False): "B", (16, False): "H", (32, False): "I", (64, False): "Q"}  # fmt: skip


class _RecordLayout:
    """Where each argument of a kernel's argument types lies in its record, and how Python
    packs it.

    The record is a C-contiguous int64 array: ``[n_arrays, array_offsets...]`` (the header,
    read by the runner), then the *payload*, which the adapter reads: the key of the argument
    types, then one slot per argument at a word offset into the payload. An array's slot
    is Numba's array structure (``meminfo, parent, nitems, itemsize, data, shape,
    strides``: ``5 + 2 ndim`` words); Python writes the array object's address as its
    ``parent`` and the runner fills the rest from the object before any item runs (which
    leaves the parent as it is: a record can be run again).
    An integer, float or boolean takes one word, stored as its own data type; None a word
    that is not read (its type says all).
    """

    def __init__(self, argtypes):
        self.argtypes = tuple(argtypes)
        self.key = types_key((types.int64, types.int64, *self.argtypes))
        offsets, formats, packed, arrays = [], [], [], []
        word = 1  # the key
        for k, argtype in enumerate(self.argtypes):
            words, fmt = _slot(k, argtype)
            offsets.append(word)
            formats.append(fmt)
            if isinstance(argtype, types.Array):
                arrays.append(k)
            if argtype != types.none:  # a null pointer: nothing to pack
                packed.append(k)
            word += words
        self.offsets = tuple(offsets)
        self.header = (len(arrays), *(offsets[k] for k in arrays))
        self.words = len(self.header) + word
        self._packed = tuple(packed)
        self._array_values = tuple(packed.index(k) for k in arrays)
        self._struct = struct.Struct("=" + "q" * (len(self.header) + 1) + "".join(formats))
        assert self._struct.size == 8 * self.words

    def pack(self, args) -> np.ndarray:
        """The record of a call with ``args`` (of this layout's types). The arrays are
        referred to by address: keep ``args`` alive until the runner returns."""
        values = [args[k] for k in self._packed]
        for k in self._array_values:
            values[k] = id(values[k])
        record = np.empty(self.words, np.int64)
        self._struct.pack_into(record, 0, *self.header, self.key, *values)
        return record


def _slot(position: int, argtype) -> tuple[int, str]:
    """Words and ``struct`` format of an argument's slot in a record."""
    if isinstance(argtype, types.Array):  # the object's address as the parent, room around
        words = 5 + 2 * argtype.ndim
        return words, f"8xq{8 * (words - 2)}x"
    if isinstance(argtype, types.Boolean):
        return 1, "?7x"
    if isinstance(argtype, types.Integer):
        code = _INT_FORMATS[(argtype.bitwidth, argtype.signed)]
        return 1, code + (f"{8 - argtype.bitwidth // 8}x" if argtype.bitwidth < 64 else "")
    if isinstance(argtype, types.Float) and argtype.bitwidth in (32, 64):
        return 1, "f4x" if argtype.bitwidth == 32 else "d"
    if argtype == types.none:
        return 1, "8x"
    raise TypeError(
        f"numbaspike internal error: argument {position} of a work item kernel has the type "
        f"{argtype}; expected an array, an integer, a float, a boolean or None"
    )


def _read_record(context, builder, layout: _RecordLayout, payload):
    """The arguments in the payload at ``payload`` (an ``i8*``), as Numba values."""
    values = []
    for argtype, offset in zip(layout.argtypes, layout.offsets, strict=True):
        model = context.data_model_manager[argtype]
        address = builder.gep(payload, [ir.Constant(_I64, 8 * offset)], inbounds=True)
        pointer = builder.bitcast(address, model.get_data_type().as_pointer())
        values.append(model.load_from_data_pointer(builder, pointer))
    return values


# --- entries: an item compiled per argument types, and an adapter that calls it -----------

#: LLVM type of an adapter: ``code = adapter(lo, hi, payload)``.
_ADAPTER_TYPE = ir.FunctionType(_I64, [_I64, _I64, _BYTE_PTR])


class _Entry:
    """An item compiled for one set of argument types (and constant modes), and the
    adapter that calls it with the arguments of a record of those types.

    Attributes
    ----------
    address : int
        Address of the adapter, ``code = adapter(lo, hi, payload)``: 0 after the item ran,
        :data:`MISMATCH` if the payload's key is not the layout's (nothing ran),
        :data:`FAILED` if the item raised.
    layout : _RecordLayout
        The record layout of the argument types.
    """

    __slots__ = ("address", "layout", "_library")

    def __init__(self, address, layout, library):
        self.address = address
        self.layout = layout
        self._library = library  # owns the adapter's machine code


def _define_adapter(context, module, name: str, layout: _RecordLayout, item_of) -> None:
    """Define the adapter ``name`` in ``module``: ``code = adapter(lo, hi, payload)`` calls
    the item (``item_of(builder, fnty)``: a pointer to it) with ``lo, hi`` and the
    arguments in the payload, if the payload's key is ``layout``'s."""
    adapter = ir.Function(module, _ADAPTER_TYPE, name)
    builder = ir.IRBuilder(adapter.append_basic_block("entry"))
    lo, hi, payload = adapter.args
    result = cgutils.alloca_once_value(builder, ir.Constant(_I64, MISMATCH))
    key = builder.load(builder.bitcast(payload, _I64.as_pointer()))
    matches = builder.icmp_signed("==", key, ir.Constant(_I64, layout.key))
    with builder.if_then(matches, likely=True):
        argtypes = (types.int64, types.int64, *layout.argtypes)
        values = [lo, hi, *_read_record(context, builder, layout, payload)]
        fnty = context.call_conv.get_function_type(types.none, argtypes)
        fn = item_of(builder, fnty)
        status, _ = context.call_conv.call_function(builder, fn, types.none, argtypes, values)
        code = builder.select(status.is_error, ir.Constant(_I64, FAILED), ir.Constant(_I64, 0))
        builder.store(code, result)
    builder.ret(builder.load(result))


def _adapter_name(item_symbol: str) -> str:
    return f"{item_symbol}.numbaspike_adapter"


class _LowerItem(Lower):
    """Numba's lowering of a work item, whose C wrapper is its adapter: compiled into the
    item's library, so that it is optimised with the item's module and cached with it."""

    def create_cfunc_wrapper(self):
        layout = _RecordLayout(types.unliteral(t) for t in self.fndesc.argtypes[2:])
        name = _adapter_name(self.fndesc.llvm_func_name)
        module = self.library.create_ir_module(name)

        def item_of(builder, fnty):
            return cgutils.get_or_insert_function(module, fnty, self.fndesc.llvm_func_name)

        _define_adapter(self.context, module, name, layout, item_of)
        self.library.add_ir_module(module)


@register_pass(mutates_CFG=True, analysis_only=False)
class _NativeItemLowering(NativeLowering):
    _name = "numbaspike_native_item_lowering"

    @property
    def lowering_class(self):
        return _LowerItem


class ItemCompiler(KernelCompiler):
    """:class:`~.jit.KernelCompiler` for work items: the item's C wrapper is its adapter."""

    def nopython_pipeline(self):
        pm = super().nopython_pipeline()
        replace_pass(pm, NativeLowering, _NativeItemLowering)
        return pm


@global_compiler_lock
def _build_adapter(name: str, item_address: int, layout: _RecordLayout):
    """Compile an adapter of the item at ``item_address`` (compiled for ``layout``'s types)
    into a library of its own; returns ``(address, library)``.

    For an item loaded from an on-disk cache written before items carried their adapter:
    the adapter holds the item's address, so it is compiled in every process that needs it
    (a few milliseconds).
    """
    context = cpu_target.target_context
    library = context.codegen().create_library(name)
    module = library.create_ir_module(name)

    def item_of(builder, fnty):
        return builder.inttoptr(ir.Constant(_I64, item_address), fnty.as_pointer())

    _define_adapter(context, module, name, layout, item_of)
    library.add_ir_module(module)
    library.finalize()
    return library.get_pointer_to_function(name), library


class WorkItem:
    """The work-item function of a parallel kernel, compiled on its own per argument types
    (``cache=True``, no CPython wrapper) and called by address, through an adapter that
    reads its arguments from a record.

    Parameters
    ----------
    py_func : function
        The item. It takes two integers (its work item ``lo, hi``: a range of neurons, a
        batch row) followed by all of the kernel's arguments, in order, and returns None.
    constants : dict of str to tuple
        Integer or boolean arguments (mode codes and flags), each with the values for
        which the item is specialised. When every one of them holds one of its values, the
        item is compiled for that combination with the values as Numba literal types, so
        that the branches of other modes are dropped before they are typed
        (:mod:`.mode_pruning`). Other combinations share one compilation for plain types, which
        serves every mode.
    **options
        ``njit`` options of the item (e.g. ``fastmath``).

    Notes
    -----
    A literal argument has the same machine representation as the plain integer or
    boolean, so the adapter passes the value from the record, which is the one the item
    was compiled for (it is part of the lookup). Compiling only the modes in use shortens
    the cold start; specialising *every* combination, though, multiplies the compilations of
    a program that uses many modes (such as the test suite): hence the listed values (the defaults), and one general compilation
    for the rest.
    """

    def __init__(self, py_func, constants=None, **options):
        # called only through its adapter (its C wrapper): no CPython wrapper to compile
        self.dispatcher = kernel_njit(
            cache=True, no_cpython_wrapper=True, pipeline_class=ItemCompiler, **options
        )(py_func)
        names = list(inspect.signature(py_func).parameters)[2:]
        constants = constants or {}
        self._constant_positions = tuple(names.index(name) for name in constants)
        self._specialised_values = tuple(frozenset(values) for values in constants.values())
        self._n_args = len(names)
        self._by_fingerprint: dict[tuple, _Entry] = {}
        self._lock = threading.Lock()
        self.__name__ = py_func.__name__
        self.__doc__ = py_func.__doc__

    def entry(self, args) -> _Entry:
        """The entry for a kernel called with ``args``; compiles the item (or loads it from
        the on-disk cache) on the first call per argument types."""
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

    def _compile(self, args) -> _Entry:
        if len(args) != self._n_args:
            raise TypeError(
                f"numbaspike internal error: {self.__name__} takes {self._n_args} kernel "
                f"arguments, got {len(args)}"
            )
        plain = [typeof(a, Purpose.argument) for a in args]
        layout = _RecordLayout(plain)
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
        argtypes = (types.int64, types.int64, *compiled)
        self.dispatcher.compile(argtypes)
        result = self.dispatcher.overloads[argtypes]
        symbol = result.fndesc.llvm_func_name
        address = result.library.get_pointer_to_function(_adapter_name(symbol))
        if address:
            return _Entry(address, layout, result.library)
        item_address = result.library.get_pointer_to_function(symbol)
        name = f"numbaspike_adapter_{self.__name__}_{types_key(argtypes):08x}"
        address, library = _build_adapter(name, item_address, layout)
        return _Entry(address, layout, library)


# --- one parallel runner for every kernel (see the module's description) ---------------


@intrinsic
def _call_adapter(typingctx, adapter, lo, hi, payload):
    """``adapter(lo, hi, payload)`` for an adapter made by :func:`_build_adapter`."""
    sig = signature(types.int64, types.int64, types.int64, types.int64, types.int64)

    def codegen(context, builder, sig, llargs):
        adapter_value, lo_value, hi_value, payload_value = llargs
        fn = builder.inttoptr(adapter_value, _ADAPTER_TYPE.as_pointer())
        return builder.call(fn, [lo_value, hi_value, builder.inttoptr(payload_value, _BYTE_PTR)])

    return sig, codegen


@intrinsic
def _data_address(typingctx, array):
    """The address of an array's data."""

    def codegen(context, builder, sig, llargs):
        data = context.make_array(sig.args[0])(context, builder, llargs[0]).data
        return builder.ptrtoint(data, _I64)

    return signature(types.int64, array), codegen


@intrinsic
def _adapt_array(typingctx, obj, address):
    """Fill the Numba array structure at ``address`` from the NumPy array object at
    ``obj`` (Numba's ``numba_adapt_ndarray``: no reference taken, the meminfo is null);
    0 on success, -1 if ``obj`` is not an array. Needs the GIL."""

    def codegen(context, builder, sig, llargs):
        fnty = ir.FunctionType(ir.IntType(32), [_BYTE_PTR, _BYTE_PTR])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_adapt_ndarray")
        obj_value, address_value = llargs
        status = builder.call(
            fn,
            [builder.inttoptr(obj_value, _BYTE_PTR), builder.inttoptr(address_value, _BYTE_PTR)],
        )
        return builder.sext(status, _I64)

    return signature(types.int64, types.int64, types.int64), codegen


def _run_items(adapter, record, bounds):
    """Fill the record's arrays, then call ``adapter(bounds[w, 0], bounds[w, 1], payload)``
    for every work item ``w``; returns the sum of their result codes."""
    base = _data_address(record)
    n_arrays = record[0]
    payload = 1 + n_arrays
    for k in range(n_arrays):
        word = payload + record[1 + k]
        if _adapt_array(record[word + 1], base + 8 * word) != 0:  # from the parent
            return MISMATCH
    codes = 0
    for w in prange(bounds.shape[0]):
        codes += _call_adapter(adapter, bounds[w, 0], bounds[w, 1], base + 8 * payload)
    return codes


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


def run_entry(parallel: bool, entry: _Entry, record: np.ndarray, bounds: np.ndarray) -> int:
    """Run ``entry`` over ``bounds`` with ``record`` (packed by a layout) on the calling
    thread unless ``parallel``; returns the sum of the result codes."""
    return _runners[parallel](entry.address, record, bounds)


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


def first_length(args) -> int:
    """``size(args)`` for :func:`blocks_of` and :func:`parallel_from`: the length of the
    first argument (a flat array)."""
    return args[0].shape[0]


def parallel_from(size, minimum: int):
    """``parallel(args)`` for :class:`ItemKernel`: a parallel region from ``minimum`` of
    ``size(args)``, where regions may be opened (:func:`numbaspike.runtime.threads.parallel_allowed`)."""
    return lambda args: size(args) >= minimum and parallel_allowed()


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
        self.item = WorkItem(py_func, constants=constants, **options)
        self.bounds = bounds
        self.parallel = parallel
        self.__name__ = py_func.__name__
        self.__doc__ = py_func.__doc__

    def __call__(self, *args):
        self.run(self.parallel(args), *args)

    def run(self, parallel: bool, *args) -> None:
        """Run every work item, on the calling thread unless ``parallel``."""
        bounds = self.bounds(args)
        entry = self.item.entry(args)
        record = entry.layout.pack(args)
        raise_for_codes(run_entry(parallel and bounds.shape[0] > 1, entry, record, bounds))
