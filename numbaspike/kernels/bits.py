"""Bit operations on 64-bit words for the event-list kernels (single instructions where
the CPU has them: POPCNT, TZCNT), as Numba intrinsics."""

from __future__ import annotations

from llvmlite import ir
from numba import types
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
