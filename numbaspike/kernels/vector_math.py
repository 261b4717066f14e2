"""Elementary functions for the CPU kernels, written so that LLVM vectorises the loops
that call them.

Numba lowers ``math.exp`` to a call of the C library's scalar ``exp``, one call per element:
the sigmoid, tanh and erfc surrogate derivatives (all built on an exponential) then made
the LIF backward pass several times slower than SuperSpike, which needs only a division.
:func:`exp_nonpositive` is a branch-free
exponential for arguments <= 0 (all these derivatives need) in the argument's own dtype:

.. math::

    e^x = 2^k\\,e^r, \\qquad k = \\lfloor x \\log_2 e + \\tfrac12 \\rfloor, \\qquad
    r = x - k \\ln 2 \\in [-\\tfrac12 \\ln 2, \\tfrac12 \\ln 2],

with :math:`r` from a two-part (Cody-Waite) :math:`\\ln 2`, :math:`e^r` from its Taylor
polynomial (degree 13 in float64, 7 in float32: truncation below half an ulp) and
:math:`2^k` built in the exponent bits. Measured against float64 ``numpy.exp``: at most
1.0 ulp in float64 over [-708, 0], 1.2 ulp in float32 over [-87, 0] (the C library: 1.0
and 0.5). Results that would be subnormal (below ~1e-308 or ~1e-38) are returned as 0.
CPU only: the CUDA kernels keep ``math.exp``, a fast device function there.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload
from numba.np.numpy_support import as_dtype

__all__ = ["exp_nonpositive", "like"]


@intrinsic
def bits_as_float(typingctx, bits):
    """The float whose bit pattern is ``bits`` (int64 -> float64, int32 -> float32)."""
    if bits == types.int64:
        result, llvm_type = types.float64, ir.DoubleType()
    elif bits == types.int32:
        result, llvm_type = types.float32, ir.FloatType()
    else:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_type)

    return result(bits), codegen


def like(ref, value):
    """``value`` converted to the type of the float ``ref`` (in compiled code only)."""
    raise NotImplementedError("numbaspike.kernels.vector_math.like runs in compiled code only")


@overload(like)
def _like(ref, value):
    if not isinstance(ref, types.Float):
        return None
    to_type = as_dtype(ref).type

    def impl(ref, value):
        return to_type(value)

    return impl


def exp_nonpositive(x):
    """``exp(x)`` for ``x <= 0`` (NaN gives NaN), vectorisable (in compiled code only)."""
    raise NotImplementedError(
        "numbaspike.kernels.vector_math.exp_nonpositive runs in compiled code only"
    )


@overload(exp_nonpositive, jit_options={"error_model": "numpy"})
def _exp_nonpositive(x):
    if x == types.float64:

        def impl(x):
            lowest = -708.0  # exp(-708) ~ 3.3e-308, the smallest normal float64 is 2.2e-308
            xc = x if x >= lowest else lowest  # also NaN -> lowest: a valid k below
            k = np.floor(xc * 1.4426950408889634 + 0.5)
            r = (xc - k * 0.6931471803691238) - k * 1.9082149292705877e-10
            p = 1.0 / 6227020800.0
            p = p * r + 1.0 / 479001600.0
            p = p * r + 1.0 / 39916800.0
            p = p * r + 1.0 / 3628800.0
            p = p * r + 1.0 / 362880.0
            p = p * r + 1.0 / 40320.0
            p = p * r + 1.0 / 5040.0
            p = p * r + 1.0 / 720.0
            p = p * r + 1.0 / 120.0
            p = p * r + 1.0 / 24.0
            p = p * r + 1.0 / 6.0
            p = p * r + 0.5
            p = p * r + 1.0
            p = p * r + 1.0
            two_k = bits_as_float(np.int64((np.int64(k) + np.int64(1023)) << np.int64(52)))
            result = p * two_k if x >= lowest else 0.0
            return result if x == x else x

        return impl
    if x == types.float32:

        def impl(x):
            lowest = np.float32(-87.0)  # exp(-87) ~ 1.6e-38, the smallest normal is 1.2e-38
            xc = x if x >= lowest else lowest
            k = np.floor(xc * np.float32(1.44269504) + np.float32(0.5))
            r = (xc - k * np.float32(0.693359375)) - k * np.float32(-2.12194440e-4)
            p = np.float32(1.0 / 5040.0)
            p = p * r + np.float32(1.0 / 720.0)
            p = p * r + np.float32(1.0 / 120.0)
            p = p * r + np.float32(1.0 / 24.0)
            p = p * r + np.float32(1.0 / 6.0)
            p = p * r + np.float32(0.5)
            p = p * r + np.float32(1.0)
            p = p * r + np.float32(1.0)
            two_k = bits_as_float(np.int32((np.int32(k) + np.int32(127)) << np.int32(23)))
            result = p * two_k if x >= lowest else np.float32(0.0)
            return result if x == x else x

        return impl
    return None
