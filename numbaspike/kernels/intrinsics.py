"""LLVM intrinsics for the CPU kernels, exposed to Numba: bit operations on 64-bit words for
the event-list kernels (single instructions where the CPU has them: POPCNT, TZCNT) and a
software prefetch for kernels that walk (T, B, N) arrays step by step."""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

#: Bits per mask word.
WORD = 64


@intrinsic
def popcount(typingctx, word):
    """Number of set bits of a uint64 (as int64)."""
    if word != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.int64(types.uint64), codegen


@intrinsic
def trailing_zeros(typingctx, word):
    """Index of the lowest set bit of a non-zero uint64 (as int64)."""
    if word != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))  # word != 0

    return types.int64(types.uint64), codegen


def _prefetch_intrinsic(write: int):
    """An intrinsic ``f(arr, t, b, k)`` that prefetches ``arr[t, b, k]`` (a 3-D array) for a
    read (``write=0``) or a write (``write=1``): ``llvm.prefetch``, no effect on results."""

    def typer(typingctx, arr, t, b, k):
        if not isinstance(arr, types.Array) or arr.ndim != 3:
            return None
        if not all(isinstance(a, types.Integer) for a in (t, b, k)):
            return None

        def codegen(context, builder, signature, args):
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            index = [
                context.cast(builder, value, ty, types.intp)
                for value, ty in zip(args[1:], signature.args[1:], strict=True)
            ]
            ptr = cgutils.get_item_pointer2(
                context, builder, ary.data, cgutils.unpack_tuple(builder, ary.shape),
                cgutils.unpack_tuple(builder, ary.strides), aryty.layout, index,
                wraparound=False,
            )  # fmt: skip
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
            # (address, read/write, locality 3 = keep in all cache levels, data cache)
            flags = [ir.Constant(i32, write), ir.Constant(i32, 3), ir.Constant(i32, 1)]
            builder.call(fn, [builder.bitcast(ptr, i8p), *flags])
            return context.get_dummy_value()

        return types.none(arr, t, b, k), codegen

    return intrinsic(typer)


#: Software prefetch of ``arr[t, b, k]`` before reading / writing it. The step-by-step kernels
#: read a block of each (T, B, N) array per step at a stride of ``B * N`` elements (a new page
#: every step), which the hardware prefetchers do not follow across.
prefetch_read = _prefetch_intrinsic(0)
prefetch_write = _prefetch_intrinsic(1)
