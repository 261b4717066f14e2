"""Parallel kernels that call their work-item function through its address.

A parallel kernel here is a short *shell* (``prange`` over work items) around a large
*item* function (one batch row, one chunk of neurons, all steps). Had the shell called
the item as an ordinary ``njit`` function, Numba would link the item's compiled module
into the shell's and LLVM would optimise the whole item again, inside the parallel
region's function (and once more for the serial variant). On the SHD-sized training step
that re-optimisation was about 14 s of a 32 s cold compile: the shell of the recurrent
backward kernel alone took 5.8 s, the same as the item it calls.

Instead, the item is compiled (and cached on disk) once by its own dispatcher, and the
shell receives the *address* of the compiled item as an ``int64`` and calls it there
(:func:`call_at`), following Numba's own calling convention, as Numba does when it calls
a first-class function. The shell's module then holds only a call through a pointer: it
compiles in well under a second, and its on-disk cache stays valid because no address is
compiled into it. Measured on the recurrent backward kernel: same bits, same run time
(5.81 against 5.82 ms per call), shell compile 0.83 s instead of 5.8 s.

Safety: the item is compiled for the argument types the shell passes on, which
:class:`WorkItem` computes from the kernel's arguments as Numba types them (``int64``
for each of the leading item-local arguments, then the kernel's arguments in order). A
shell must therefore pass its own arguments to the item unchanged and in order. The
call checks this: :func:`call_at` compares a key of the argument types it was compiled
with against the key of the types the item was compiled for, and calls only when they
agree; otherwise it returns a code that the shell turns into an error (never a call
through a mismatched signature). An item that raises (it can only run out of memory)
also comes back as a code and an error, from a parallel region as from a serial one.
"""

from __future__ import annotations

import threading
import zlib

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.typing import signature
from numba.core.typing.typeof import Purpose, typeof
from numba.extending import intrinsic

try:  # Numba's own fast type fingerprint of an argument (the key of its dispatch cache)
    from numba._dispatcher import compute_fingerprint as _fingerprint
except ImportError:  # pragma: no cover - a Numba without it: slower keys, same results

    def _fingerprint(value):
        return typeof(value, Purpose.argument)


__all__ = ["WorkItem", "call_at", "check_calls", "types_key"]


#: Result of :func:`call_at` when the argument types do not match the item's.
MISMATCH = 1
#: Result of :func:`call_at` when the item raised (above any sum of mismatches).
FAILED = 1 << 32


def types_key(argtypes) -> int:
    """A 31-bit key of a tuple of Numba types (their ``repr``, stable across processes)."""
    return zlib.crc32(repr(tuple(argtypes)).encode()) & 0x7FFFFFFF


@intrinsic
def call_at(typingctx, address, key, *args):
    """``call_at(address, key, *args)``: call the compiled Numba function at ``address``
    with ``args`` if ``key`` equals :func:`types_key` of the types of ``args``. The function
    must return None. Returns 0 after a successful call, :data:`MISMATCH` (and calls
    nothing) on a mismatch, :data:`FAILED` if the function raised. A shell adds these
    codes up over its work items and passes the sum to :func:`check_calls` (an exception
    raised inside a parallel region does not reach the caller by itself)."""
    if not isinstance(address, types.Integer) or not isinstance(key, types.Integer):
        return None
    argtypes = tuple(args)
    expected = types_key(argtypes)

    def codegen(context, builder, sig, llargs):
        address_value, key_value, packed = llargs
        values = cgutils.unpack_tuple(builder, packed, len(argtypes))
        i64 = ir.IntType(64)
        result = cgutils.alloca_once_value(builder, ir.Constant(i64, MISMATCH))
        matches = builder.icmp_signed("==", key_value, ir.Constant(key_value.type, expected))
        with builder.if_then(matches, likely=True):
            fnty = context.call_conv.get_function_type(types.none, argtypes)
            fn = builder.inttoptr(address_value, fnty.as_pointer())
            status, _ = context.call_conv.call_function(builder, fn, types.none, argtypes, values)
            code = builder.select(status.is_error, ir.Constant(i64, FAILED), ir.Constant(i64, 0))
            builder.store(code, result)
        return builder.load(result)

    return signature(types.int64, address, key, types.StarArgTuple.from_types(argtypes)), codegen


@njit(inline="always")
def check_calls(codes):
    """Raise if any :func:`call_at` of a shell failed (``codes``: the sum of their results)."""
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
    and handed to the kernel's shell by address.

    Parameters
    ----------
    py_func : function
        The item. It takes ``n_local`` integers (its work item: a batch row, a range of
        neurons) followed by all of the kernel's arguments, in order, and returns None.
    n_local : int
        Number of leading item-local ``int64`` arguments.
    **options
        ``njit`` options of the item (e.g. ``fastmath``).
    """

    def __init__(self, py_func, n_local: int = 2, **options):
        self.dispatcher = njit(cache=True, **options)(py_func)
        self.n_local = n_local
        self._by_fingerprint: dict[tuple, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self.__name__ = py_func.__name__
        self.__doc__ = py_func.__doc__

    def address(self, args) -> tuple[int, int]:
        """``(address, key)`` of the item compiled for a kernel called with ``args``;
        compiles (or loads from the on-disk cache) on the first call per argument types."""
        fingerprint = tuple(map(_fingerprint, args))
        found = self._by_fingerprint.get(fingerprint)
        if found is None:
            with self._lock:
                found = self._by_fingerprint.get(fingerprint)
                if found is None:
                    found = self._compile(args)
                    self._by_fingerprint[fingerprint] = found
        return found

    def _compile(self, args) -> tuple[int, int]:
        argtypes = (types.int64,) * self.n_local + tuple(typeof(a, Purpose.argument) for a in args)
        self.dispatcher.compile(argtypes)
        result = self.dispatcher.overloads[argtypes]
        address = result.library.get_pointer_to_function(result.fndesc.llvm_func_name)
        return address, types_key(argtypes)
