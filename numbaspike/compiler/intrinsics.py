"""LLVM intrinsics for the CPU kernels, exposed to Numba: bit operations on 64-bit words for
the event-list kernels (single instructions where the CPU has them: POPCNT, TZCNT), a
software prefetch for kernels that walk (T, B, N) arrays step by step, and the register
tiles of the recurrent backward product (:func:`matmul_rows`)."""

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


def tile_shape(features: str) -> tuple[int, int, int]:
    """``(bytes per vector, vectors per tile, rows per tile)`` of :func:`matmul_rows` for a
    CPU of the LLVM target ``features`` (``"+avx2,-avx512f,..."``).

    With AVX-512 (32 vector registers): tiles of 8 rows by two 512-bit vectors, 16
    accumulators. Without it: 4 rows by two 256-bit vectors, 8 accumulators of AVX2's 16
    registers, so each broadcast coefficient of ``a`` feeds two fused multiply-adds, the
    fastest of the tile shapes timed on an AVX2 CPU (benchmarks/results/calibration.md).
    """
    return (64, 2, 8) if "+avx512f" in features.split(",") else (32, 2, 4)


def _target_tile_shape(context) -> tuple[int, int, int]:
    """:func:`tile_shape` for the CPU Numba compiles for (its JIT target's features)."""
    features = getattr(context.codegen(), "_tm_features", None)
    if features is None:  # pragma: no cover - a Numba without it: the host's features
        import llvmlite.binding as ll

        features = ll.get_host_cpu_features().flatten()
    return tile_shape(features)


def matmul_rows(rows: int):
    """An intrinsic ``f(out, o_row, o_col, a, t, b, w, w_col, m)``: ``rows`` rows of a
    product of ``a`` (T, B, K) with ``w`` (K, N), in register tiles::

        out[o_row + q, o_col + c] = sum_j a[t, b + q, j] * w[j, w_col + c]

    for ``q < rows`` and ``c < m``. The columns go in tiles of the target CPU's vectors
    (:func:`tile_shape`), each over blocks of its rows per tile, then one vector, then
    single columns (those two over all ``rows`` at once). A tile's (rows of a block) x
    (vectors) accumulators stay in registers for the whole loop over ``j``: each step of it
    loads the tile's vectors of ``w`` and one scalar of ``a`` per row of the block, for
    (rows) x (vectors) fused multiply-adds, and ``out`` is written once per tile.

    Every entry is one chain of fused multiply-adds over ``j = 0 .. K - 1`` in order,
    starting from 0, whatever the tile: a product split differently (by rows, columns or
    single columns) gives the same bits.

    Numba's own vectorisation of this loop is limited to 256-bit vectors on CPUs that
    prefer them (LLVM's default for Intel's AVX-512 server parts), and keeps a block of
    ``out`` in memory rather than in registers; these tiles run about twice as fast with
    AVX-512, as fast as OpenBLAS on the same product as one matrix.
    """

    def typer(typingctx, out, o_row, o_col, a, t, b, w, w_col, m):
        arrays_ok = (
            isinstance(out, types.Array)
            and isinstance(a, types.Array)
            and isinstance(w, types.Array)
            and (out.ndim, a.ndim, w.ndim) == (2, 3, 2)
            and out.dtype == a.dtype == w.dtype
            and out.dtype in (types.float32, types.float64)
        )
        if not arrays_ok or not all(
            isinstance(i, types.Integer) for i in (o_row, o_col, t, b, w_col, m)
        ):
            return None
        dtype = out.dtype

        def codegen(context, builder, sig, args):
            i64 = ir.IntType(64)
            o_row_, o_col_, t_, b_, w_col_, m_ = (
                context.cast(builder, args[k], sig.args[k], types.intp) for k in (1, 2, 4, 5, 7, 8)
            )
            elt = context.get_value_type(dtype)
            itemsize = context.get_abi_sizeof(elt)
            vector_bytes, tile_vectors, tile_rows = _target_tile_shape(context)
            lanes = vector_bytes // itemsize
            vty = ir.VectorType(elt, lanes)
            align = context.get_abi_alignment(elt)

            def fma_of(ty, suffix):
                fnty = ir.FunctionType(ty, [ty] * 3)
                return cgutils.get_or_insert_function(builder.module, fnty, f"llvm.fma.{suffix}")

            bits = itemsize * 8
            vector_fma, scalar_fma = fma_of(vty, f"v{lanes}f{bits}"), fma_of(elt, f"f{bits}")
            o_ary = context.make_array(sig.args[0])(context, builder, args[0])
            a_ary = context.make_array(sig.args[3])(context, builder, args[3])
            w_ary = context.make_array(sig.args[6])(context, builder, args[6])

            def const(v):
                return ir.Constant(i64, v)

            def address(ary, aryty, index):
                ptr = cgutils.get_item_pointer2(
                    context, builder, ary.data, cgutils.unpack_tuple(builder, ary.shape),
                    cgutils.unpack_tuple(builder, ary.strides), aryty.layout, index,
                    wraparound=False,
                )  # fmt: skip
                return builder.ptrtoint(ptr, i64)

            def at(addr, offset, ty):
                return builder.inttoptr(builder.add(addr, offset), ty.as_pointer())

            n_j = cgutils.unpack_tuple(builder, w_ary.shape)[0]
            w_row_stride = cgutils.unpack_tuple(builder, w_ary.strides)[0]
            a_j_stride = cgutils.unpack_tuple(builder, a_ary.strides)[2]
            a_first = [
                address(a_ary, sig.args[3], [t_, builder.add(b_, const(q)), const(0)])
                for q in range(rows)
            ]
            broadcast = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)

            def tile(col, n_vec, ty, fma, block_rows):
                """Columns ``col .. col + n_vec * width(ty)`` of the ``rows`` rows, in blocks
                of ``block_rows`` rows (the columns of ``w`` are read again from L1 for each
                block)."""
                for q0 in range(0, rows, block_rows):
                    block(col, n_vec, ty, fma, range(q0, min(rows, q0 + block_rows)))

            def block(col, n_vec, ty, fma, qs):
                """Columns ``col .. col + n_vec * width(ty)`` of the rows ``qs``."""
                width = lanes * itemsize if ty is vty else itemsize
                w_first = address(w_ary, sig.args[6], [const(0), builder.add(w_col_, col)])
                accs = [
                    [
                        cgutils.alloca_once_value(builder, ir.Constant(ty, None))
                        for _ in range(n_vec)
                    ]
                    for _ in qs
                ]
                with cgutils.for_range(builder, n_j) as loop:
                    j = loop.index
                    w_row = builder.add(w_first, builder.mul(j, w_row_stride))
                    w_vecs = [
                        builder.load(at(w_row, const(c * width), ty), align=align)
                        for c in range(n_vec)
                    ]
                    offset = builder.mul(j, a_j_stride)
                    for acc_row, q in zip(accs, qs, strict=True):
                        coef = builder.load(at(a_first[q], offset, elt), align=align)
                        if ty is vty:
                            coef = builder.insert_element(
                                ir.Constant(vty, ir.Undefined),
                                coef,
                                ir.Constant(ir.IntType(32), 0),
                            )
                            coef = builder.shuffle_vector(
                                coef, ir.Constant(vty, ir.Undefined), broadcast
                            )
                        for c in range(n_vec):
                            acc = acc_row[c]
                            builder.store(
                                builder.call(fma, [coef, w_vecs[c], builder.load(acc)]), acc
                            )
                for acc_row, q in zip(accs, qs, strict=True):
                    index = [builder.add(o_row_, const(q)), builder.add(o_col_, col)]
                    o_first = address(o_ary, sig.args[0], index)
                    for c in range(n_vec):
                        builder.store(
                            builder.load(acc_row[c]),
                            at(o_first, const(c * width), ty),
                            align=align,
                        )

            # columns: tiles of the target's vectors, then one vector, then single columns
            done = const(0)
            for n_vec, ty, fma, step, block_rows in (
                (tile_vectors, vty, vector_fma, tile_vectors * lanes, tile_rows),
                (1, vty, vector_fma, lanes, rows),
                (1, elt, scalar_fma, 1, rows),
            ):
                count = builder.sdiv(builder.sub(m_, done), const(step))
                with cgutils.for_range(builder, count) as loop:
                    col = builder.add(done, builder.mul(loop.index, const(step)))
                    tile(col, n_vec, ty, fma, block_rows)
                done = builder.add(done, builder.mul(count, const(step)))
            return context.get_dummy_value()

        return types.none(out, o_row, o_col, a, t, b, w, w_col, m), codegen

    return intrinsic(typer)


#: :func:`matmul_rows` for 8 rows (a group of the batch-parallel kernel), 4 rows and 1 row.
matmul_8_rows, matmul_4_rows, matmul_1_row = matmul_rows(8), matmul_rows(4), matmul_rows(1)
