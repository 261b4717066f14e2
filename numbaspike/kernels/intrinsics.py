"""LLVM intrinsics for the CPU kernels, exposed to Numba: bit operations on 64-bit words for
the event-list kernels (single instructions where the CPU has them: POPCNT, TZCNT), a
software prefetch for kernels that walk (T, B, N) arrays step by step, and the register
tiles of the recurrent backward product (:func:`matmul_tile`)."""

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


#: Bytes per vector of :func:`matmul_tile` (a 512-bit register; LLVM splits it into two
#: 256-bit or four 128-bit operations on CPUs without AVX-512).
VECTOR_BYTES = 64


def matmul_tile(rows: int, vectors: int):
    """An intrinsic ``f(out, o_row, o_col, a, t, b, w, w_col)`` for a register tile of a
    product of rows of ``a`` (T, B, K) with ``w`` (K, N)::

        out[o_row + q, o_col + c] = sum_j a[t, b + q, j] * w[j, w_col + c]

    for ``q < rows`` and ``c < vectors * L``, ``L`` the elements of :data:`VECTOR_BYTES`
    (16 float32 or 8 float64); ``vectors=0`` computes a single column. The ``rows *
    max(vectors, 1)`` accumulators stay in registers for the whole loop over ``j``: each
    step loads ``vectors`` vectors of ``w`` and ``rows`` scalars of ``a`` for ``rows *
    vectors`` fused multiply-adds, and ``out`` is written once at the end.

    Every entry is one chain of fused multiply-adds over ``j = 0 .. K - 1`` in order,
    starting from 0, whatever the tile: a product split into tiles differently (by rows,
    columns, or a scalar tail) gives the same bits.

    Numba's own vectorisation of this loop is limited to 256-bit vectors on CPUs that
    prefer them (LLVM's default for Intel's AVX-512 server parts), and keeps a block of
    ``out`` in memory rather than in registers; on the SHD-sized recurrent backward
    product, (64, 256) @ (256, 256) for 100 steps, this tile ran 2x faster (float32 5.7 ms
    to 2.8-3.1 ms; float64 12.1 to 6.2-6.6 ms) and as fast as OpenBLAS on the same
    product as one matrix.
    """
    n_vec = max(vectors, 1)

    def typer(typingctx, out, o_row, o_col, a, t, b, w, w_col):
        arrays_ok = (
            isinstance(out, types.Array)
            and isinstance(a, types.Array)
            and isinstance(w, types.Array)
            and (out.ndim, a.ndim, w.ndim) == (2, 3, 2)
            and out.dtype == a.dtype == w.dtype
            and out.dtype in (types.float32, types.float64)
        )
        if not arrays_ok or not all(
            isinstance(i, types.Integer) for i in (o_row, o_col, t, b, w_col)
        ):
            return None
        dtype = out.dtype

        def codegen(context, builder, sig, args):
            i64 = ir.IntType(64)
            o_row_, o_col_, t_, b_, w_col_ = (
                context.cast(builder, args[k], sig.args[k], types.intp) for k in (1, 2, 4, 5, 7)
            )
            elt = context.get_value_type(dtype)
            itemsize = context.get_abi_sizeof(elt)
            lanes = VECTOR_BYTES // itemsize if vectors else 1
            vty = ir.VectorType(elt, lanes) if vectors else elt
            align = context.get_abi_alignment(elt)
            suffix = f"v{lanes}f{itemsize * 8}" if vectors else f"f{itemsize * 8}"
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vty, [vty] * 3), f"llvm.fma.{suffix}"
            )
            o_ary = context.make_array(sig.args[0])(context, builder, args[0])
            a_ary = context.make_array(sig.args[3])(context, builder, args[3])
            w_ary = context.make_array(sig.args[6])(context, builder, args[6])

            def address(ary, aryty, index):
                ptr = cgutils.get_item_pointer2(
                    context, builder, ary.data, cgutils.unpack_tuple(builder, ary.shape),
                    cgutils.unpack_tuple(builder, ary.strides), aryty.layout, index,
                    wraparound=False,
                )  # fmt: skip
                return builder.ptrtoint(ptr, i64)

            def at(addr, offset, ty):
                return builder.inttoptr(builder.add(addr, offset), ty.as_pointer())

            def const(v):
                return ir.Constant(i64, v)

            n_j = cgutils.unpack_tuple(builder, w_ary.shape)[0]
            w_row_stride = cgutils.unpack_tuple(builder, w_ary.strides)[0]
            a_j_stride = cgutils.unpack_tuple(builder, a_ary.strides)[2]
            w_first = address(w_ary, sig.args[6], [const(0), w_col_])
            a_first = [
                address(a_ary, sig.args[3], [t_, builder.add(b_, const(q)), const(0)])
                for q in range(rows)
            ]
            accs = [
                [cgutils.alloca_once_value(builder, ir.Constant(vty, None)) for _ in range(n_vec)]
                for _ in range(rows)
            ]
            broadcast = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
            with cgutils.for_range(builder, n_j) as loop:
                j = loop.index
                w_row = builder.add(w_first, builder.mul(j, w_row_stride))
                w_vecs = [
                    builder.load(at(w_row, const(c * lanes * itemsize), vty), align=align)
                    for c in range(n_vec)
                ]
                for q in range(rows):
                    coef = builder.load(
                        at(a_first[q], builder.mul(j, a_j_stride), elt), align=align
                    )
                    if vectors:
                        coef = builder.insert_element(
                            ir.Constant(vty, ir.Undefined), coef, ir.Constant(ir.IntType(32), 0)
                        )
                        coef = builder.shuffle_vector(
                            coef, ir.Constant(vty, ir.Undefined), broadcast
                        )
                    for c in range(n_vec):
                        acc = accs[q][c]
                        builder.store(builder.call(fma, [coef, w_vecs[c], builder.load(acc)]), acc)
            for q in range(rows):
                o_first = address(o_ary, sig.args[0], [builder.add(o_row_, const(q)), o_col_])
                for c in range(n_vec):
                    dst = at(o_first, const(c * lanes * itemsize), vty)
                    builder.store(builder.load(accs[q][c]), dst, align=align)
            return context.get_dummy_value()

        return types.none(out, o_row, o_col, a, t, b, w, w_col), codegen

    return intrinsic(typer)


#: Tiles of :func:`matmul_tile` used by :func:`~numbaspike.kernels.cpu._rows_times_matrix`:
#: 8 rows (a group of the batch-parallel kernel), 4 rows or 1 row, by 2 vectors, 1 vector or
#: 1 column.
tile_8x2, tile_8x1, tile_8x0 = matmul_tile(8, 2), matmul_tile(8, 1), matmul_tile(8, 0)
tile_4x2, tile_4x1, tile_4x0 = matmul_tile(4, 2), matmul_tile(4, 1), matmul_tile(4, 0)
tile_1x2, tile_1x1, tile_1x0 = matmul_tile(1, 2), matmul_tile(1, 1), matmul_tile(1, 0)
