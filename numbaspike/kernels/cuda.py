r"""CUDA kernels: ``numba.cuda`` kernels around the same scalar maths as :mod:`.cpu`.

The scalar step functions of :mod:`.math` are compiled as device functions with
``cuda.jit(device=True)(f)``, exactly as :mod:`.cpu` compiles them with ``njit(f)``, so the
two targets cannot drift apart. This module is imported lazily by
:mod:`numbaspike.backend` (never by ``import numbaspike``); importing it needs a working
``numba.cuda`` (a GPU, or ``NUMBA_ENABLE_CUDASIM=1`` for numba's simulator).

Layout of the work
------------------
* **One thread per (batch, neuron)** with the time loop inside the thread, over a 1-D grid
  with a grid-stride loop (``idx = b * N + k``, so consecutive threads touch consecutive
  neurons and the ``(T, B, N)`` reads and writes are coalesced). The grid is
  ``min(ceil(B*N / threads_per_block), max_blocks)`` blocks; ``threads_per_block`` and
  ``max_blocks`` are the module constants :data:`THREADS_PER_BLOCK` and :data:`MAX_BLOCKS`
  unless a launch function is given them (tests use tiny values to exercise several blocks,
  the grid-stride loop and the bounds guard).
* **Feed-forward layers** run in one launch per direction. The neuron state and the
  parameter-gradient accumulators live in registers for all ``T`` steps. The state is
  rounded to the working dtype after every step (:func:`_as_dtype_of`), exactly like the
  CPU kernels that store it into a float32/float64 array each step, so a float32 run keeps
  float32 state (not a float64 register) on both targets.
* **Recurrent layers** launch, per time step, one matrix product for the recurrent current
  ``rec = z_{t-1} @ w_rec.T`` (forward) or ``gz_rec = gx_t @ w_rec`` (backward), then one
  kernel that advances every neuron by one step. The product is CuPy's ``matmul``
  (cuBLAS) when CuPy is importable, else :func:`matmul`'s shared-memory tiled kernel.
  Kernels on the default stream run in order, so the step kernel sees the finished
  product; all arrays stay on the device, nothing is copied to the host per step.
* **Parameter gradients** are accumulated per (batch, neuron) in float64, like the CPU
  kernels, and reduced over the batch on the device by :func:`reduce_batch`.

Kernels trust their inputs (shapes, dtypes and contiguity are checked by
:mod:`numbaspike.backend` at the public boundary). The launch functions below take the
same arguments as their :mod:`.cpu` namesakes, all arrays being numba device arrays;
the recurrent ones take ``w_rec`` itself rather than its transpose.

On real hardware NVVM may contract ``a * b + c`` into a fused multiply-add, and the
recurrent products sum in another order than the CPU's BLAS / event-driven sums, so results
can differ from the CPU kernels in the last bits (and a spike can flip when ``h`` lies within
an ulp of the threshold); under the simulator the arithmetic is NumPy's scalar arithmetic.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
from numba import config, cuda
from numba.core.errors import NumbaPerformanceWarning

from ..models import li as _li
from ..models import lif as _lif
from . import math as _m

# The small bookkeeping launches (finiteness flag, per-neuron reductions) use a few blocks on
# purpose; numba would warn about "GPU under-utilization" on every one of them.
warnings.filterwarnings(
    "ignore",
    message=r"Grid size \d+ will likely result in GPU under-utilization",
    category=NumbaPerformanceWarning,
)

# Scalar device functions, compiled from the single source in kernels/math.py.
surrogate_grad = cuda.jit(device=True)(_m.surrogate_grad)
surrogate_smooth = cuda.jit(device=True)(_m.surrogate_smooth)
membrane_step = cuda.jit(device=True)(_lif.membrane_step)
reset_step = cuda.jit(device=True)(_lif.reset_step)
lif_adjoint_step = cuda.jit(device=True)(_lif.lif_adjoint_step)
li_adjoint_step = cuda.jit(device=True)(_li.li_adjoint_step)

#: Threads per block of the neuron kernels (a multiple of the 32-thread warp on a GPU).
THREADS_PER_BLOCK = 128
#: Upper bound on the number of blocks of the neuron kernels; beyond it threads grid-stride.
MAX_BLOCKS = 65535
#: Edge of the square tiles of the shared-memory matrix product (threads per block = TILE²).
MATMUL_TILE = 16
#: Upper bound on each grid dimension of the matrix product; beyond it blocks tile-stride.
MATMUL_MAX_GRID = 65535
#: Use CuPy (cuBLAS) for the recurrent products: None = when importable (never under the
#: simulator), False = always the tiled kernel here, True = require CuPy.
USE_CUPY: bool | None = None


# ---------------------------------------------------------------------------------------
# Small device helpers
# ---------------------------------------------------------------------------------------


@cuda.jit(device=True, inline=True)
def _as_dtype_of(arr, value):
    """``value`` rounded to the dtype of ``arr`` (what storing it into ``arr`` would do)."""
    buf = cuda.local.array(1, arr.dtype)
    buf[0] = value
    return buf[0]


@cuda.jit(device=True, inline=True)
def _spike(u, sg_code, alpha, smooth):
    if smooth:
        return surrogate_smooth(sg_code, u, alpha)
    return 1.0 if u > 0.0 else 0.0


@cuda.jit(device=True)
def _lif_adjoint(
    t, b, k, gz_ext, h, i1, v0, gv, gi, a_m, decay_s, v_leak, v_th, v_reset,
    reset_code, sg_code, alpha, smooth, detach, param_grads,
):  # fmt: skip
    """Reverse step of one neuron, as ``cpu._lif_adjoint_neuron`` but returning the
    parameter-gradient increments ``(d_am, d_decay, d_vth, d_vleak)`` instead of adding them."""
    h_t = h[t, b, k]
    u = h_t - v_th
    z = _spike(u, sg_code, alpha, smooth)
    s = surrogate_grad(sg_code, u, alpha)
    gv_prev, gi1, gh, g_th = lif_adjoint_step(
        gv, gi, gz_ext, h_t, z, s, v_th, v_reset, a_m, decay_s, reset_code, detach
    )
    d_am = 0.0
    d_decay = 0.0
    d_vth = 0.0
    d_vleak = 0.0
    if param_grads:
        if t > 0:
            h_p = h[t - 1, b, k]
            z_p = _spike(h_p - v_th, sg_code, alpha, smooth)
            v_prev = reset_step(h_p, z_p, v_th, v_reset, reset_code, smooth)
        else:
            v_prev = v0[b, k]
        i1_t = i1[t, b, k]
        d_am = gh * ((v_leak - v_prev) + i1_t)
        d_decay = gi * i1_t
        d_vth = g_th
        d_vleak = gh * a_m
    return gv_prev, gi1, d_am, d_decay, d_vth, d_vleak


def launch_config(total: int, threads_per_block: int | None = None, max_blocks: int | None = None):
    """``(blocks, threads)`` for a 1-D grid-stride launch over ``total`` items."""
    tpb = THREADS_PER_BLOCK if threads_per_block is None else int(threads_per_block)
    cap = MAX_BLOCKS if max_blocks is None else int(max_blocks)
    if tpb <= 0 or cap <= 0:
        raise ValueError(f"threads_per_block and max_blocks must be positive, got {tpb}, {cap}")
    return max(1, min(cap, -(-total // tpb))), tpb


# ---------------------------------------------------------------------------------------
# LIF kernels
# ---------------------------------------------------------------------------------------


@cuda.jit
def _lif_feed_forward_forward(
    x, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha, smooth,
    v, i, z_out, h_out, i1_out, v_out, i_out, store_z, store_h, store_i1, store_trace,
):  # fmt: skip
    n_steps, batch, n = x.shape
    idx = cuda.grid(1)
    stride = cuda.gridsize(1)
    while idx < batch * n:
        b = idx // n
        k = idx - b * n
        am = a_m[k]
        ds = decay_s[k]
        vl = v_leak[k]
        th = v_th[k]
        vk = v[b, k]
        ik = i[b, k]
        for t in range(n_steps):
            h, i1, i_next = membrane_step(vk, ik, x[t, b, k], am, ds, vl)
            z = _spike(h - th, sg_code, alpha, smooth)
            vk = _as_dtype_of(v, reset_step(h, z, th, v_reset, reset_code, smooth))
            ik = _as_dtype_of(i, i_next)
            if store_z:
                z_out[t, b, k] = z
            if store_h:
                h_out[t, b, k] = h
            if store_i1:
                i1_out[t, b, k] = i1
            if store_trace:
                v_out[t, b, k] = vk
                i_out[t, b, k] = ik
        v[b, k] = vk
        i[b, k] = ik
        idx += stride


@cuda.jit
def _lif_recurrent_forward_step(
    t, x, rec, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha, smooth,
    v, i, z_state, z_out, h_out, i1_out, v_out, i_out, store_z, store_h, store_i1, store_trace,
):  # fmt: skip
    batch, n = v.shape
    idx = cuda.grid(1)
    stride = cuda.gridsize(1)
    while idx < batch * n:
        b = idx // n
        k = idx - b * n
        th = v_th[k]
        h, i1, i_next = membrane_step(
            v[b, k], i[b, k], x[t, b, k] + rec[b, k], a_m[k], decay_s[k], v_leak[k]
        )
        z = _spike(h - th, sg_code, alpha, smooth)
        v_new = reset_step(h, z, th, v_reset, reset_code, smooth)
        v[b, k] = v_new
        i[b, k] = i_next
        z_state[b, k] = z
        if store_z:
            z_out[t, b, k] = z
        if store_h:
            h_out[t, b, k] = h
        if store_i1:
            i1_out[t, b, k] = i1
        if store_trace:
            v_out[t, b, k] = v_new
            i_out[t, b, k] = i_next
        idx += stride


@cuda.jit
def _lif_feed_forward_backward(
    grad_z, h, i1, v0, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha,
    smooth, detach, param_grads, gx, gv, gi, g_am, g_decay, g_vth, g_vleak,
):  # fmt: skip
    n_steps, batch, n = grad_z.shape
    idx = cuda.grid(1)
    stride = cuda.gridsize(1)
    while idx < batch * n:
        b = idx // n
        k = idx - b * n
        am = a_m[k]
        ds = decay_s[k]
        vl = v_leak[k]
        th = v_th[k]
        gvk = gv[b, k]
        gik = gi[b, k]
        if param_grads:
            acc_am = g_am[b, k]
            acc_decay = g_decay[b, k]
            acc_vth = g_vth[b, k]
            acc_vleak = g_vleak[b, k]
        else:
            acc_am = 0.0
            acc_decay = 0.0
            acc_vth = 0.0
            acc_vleak = 0.0
        for r in range(n_steps):
            t = n_steps - 1 - r
            gv_prev, gi1, d_am, d_decay, d_vth, d_vleak = _lif_adjoint(
                t, b, k, grad_z[t, b, k], h, i1, v0, gvk, gik, am, ds, vl, th, v_reset,
                reset_code, sg_code, alpha, smooth, detach, param_grads,
            )  # fmt: skip
            if param_grads:
                acc_am += d_am
                acc_decay += d_decay
                acc_vth += d_vth
                acc_vleak += d_vleak
            gx[t, b, k] = gi1
            gvk = _as_dtype_of(gv, gv_prev)
            gik = _as_dtype_of(gi, gi1)
        gv[b, k] = gvk
        gi[b, k] = gik
        if param_grads:
            g_am[b, k] = acc_am
            g_decay[b, k] = acc_decay
            g_vth[b, k] = acc_vth
            g_vleak[b, k] = acc_vleak
        idx += stride


@cuda.jit
def _lif_recurrent_backward_step(
    t, grad_z, gz_rec, h, i1, v0, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code,
    alpha, smooth, detach, param_grads, gx, gv, gi, g_am, g_decay, g_vth, g_vleak,
):  # fmt: skip
    batch, n = gv.shape
    idx = cuda.grid(1)
    stride = cuda.gridsize(1)
    while idx < batch * n:
        b = idx // n
        k = idx - b * n
        gv_prev, gi1, d_am, d_decay, d_vth, d_vleak = _lif_adjoint(
            t, b, k, grad_z[t, b, k] + gz_rec[b, k], h, i1, v0, gv[b, k], gi[b, k], a_m[k],
            decay_s[k], v_leak[k], v_th[k], v_reset, reset_code, sg_code, alpha, smooth,
            detach, param_grads,
        )  # fmt: skip
        if param_grads:
            g_am[b, k] += d_am
            g_decay[b, k] += d_decay
            g_vth[b, k] += d_vth
            g_vleak[b, k] += d_vleak
        gx[t, b, k] = gi1
        gv[b, k] = gv_prev
        gi[b, k] = gi1
        idx += stride


# ---------------------------------------------------------------------------------------
# LI kernels
# ---------------------------------------------------------------------------------------


@cuda.jit
def _li_forward(x, a_m, decay_s, v_leak, v, i, v_out, i1_out, i_out, store_v, store_i1, store_i):
    n_steps, batch, n = x.shape
    idx = cuda.grid(1)
    stride = cuda.gridsize(1)
    while idx < batch * n:
        b = idx // n
        k = idx - b * n
        am = a_m[k]
        ds = decay_s[k]
        vl = v_leak[k]
        vk = v[b, k]
        ik = i[b, k]
        for t in range(n_steps):
            h, i1, i_next = membrane_step(vk, ik, x[t, b, k], am, ds, vl)
            vk = _as_dtype_of(v, h)
            ik = _as_dtype_of(i, i_next)
            if store_v:
                v_out[t, b, k] = vk
            if store_i1:
                i1_out[t, b, k] = i1
            if store_i:
                i_out[t, b, k] = ik
        v[b, k] = vk
        i[b, k] = ik
        idx += stride


@cuda.jit
def _li_backward(
    grad_v, v_out, i1, v0, a_m, decay_s, v_leak, param_grads, gx, gv, gi, g_am, g_decay, g_vleak
):
    n_steps, batch, n = grad_v.shape
    idx = cuda.grid(1)
    stride = cuda.gridsize(1)
    while idx < batch * n:
        b = idx // n
        k = idx - b * n
        am = a_m[k]
        ds = decay_s[k]
        vl = v_leak[k]
        gvk = gv[b, k]
        gik = gi[b, k]
        if param_grads:
            acc_am = g_am[b, k]
            acc_decay = g_decay[b, k]
            acc_vleak = g_vleak[b, k]
        else:
            acc_am = 0.0
            acc_decay = 0.0
            acc_vleak = 0.0
        for r in range(n_steps):
            t = n_steps - 1 - r
            g_v = gvk + grad_v[t, b, k]
            gv_prev, gi1 = li_adjoint_step(g_v, gik, am, ds)
            if param_grads:
                if t > 0:
                    v_prev = v_out[t - 1, b, k]
                else:
                    v_prev = v0[b, k]
                i1_t = i1[t, b, k]
                acc_am += g_v * ((vl - v_prev) + i1_t)
                acc_decay += gik * i1_t
                acc_vleak += g_v * am
            gx[t, b, k] = gi1
            gvk = _as_dtype_of(gv, gv_prev)
            gik = _as_dtype_of(gi, gi1)
        gv[b, k] = gvk
        gi[b, k] = gik
        if param_grads:
            g_am[b, k] = acc_am
            g_decay[b, k] = acc_decay
            g_vleak[b, k] = acc_vleak
        idx += stride


# ---------------------------------------------------------------------------------------
# Utility kernels: reductions, fills, casts, broadcasts, finiteness
# ---------------------------------------------------------------------------------------


@cuda.jit
def _reduce_batch(acc, scale, extra, add_extra, out):
    """``out[k] = sum_b scale * (acc[b, k] (+ extra[b, k]))``, summed in float64 over b in order."""
    batch, n = acc.shape
    k = cuda.grid(1)
    stride = cuda.gridsize(1)
    while k < n:
        s = 0.0
        for b in range(batch):
            term = acc[b, k]
            if add_extra:
                term += extra[b, k]
            s += scale * term
        out[k] = s
        k += stride


@cuda.jit
def _fill(flat, value):
    idx = cuda.grid(1)
    stride = cuda.gridsize(1)
    while idx < flat.shape[0]:
        flat[idx] = value
        idx += stride


@cuda.jit
def _copy_cast(src, dst):
    idx = cuda.grid(1)
    stride = cuda.gridsize(1)
    while idx < dst.shape[0]:
        dst[idx] = src[idx]
        idx += stride


@cuda.jit
def _broadcast_2d(src, out):
    """``out[b, k] = src[b or 0, k or 0]`` (numpy broadcasting of a 2-D ``src`` to ``out``)."""
    rows, cols = out.shape
    sr, sc = src.shape
    idx = cuda.grid(1)
    stride = cuda.gridsize(1)
    while idx < rows * cols:
        b = idx // cols
        k = idx - b * cols
        out[b, k] = src[b if sr > 1 else 0, k if sc > 1 else 0]
        idx += stride


@cuda.jit
def _flag_nonfinite(flat, flag):
    idx = cuda.grid(1)
    stride = cuda.gridsize(1)
    while idx < flat.shape[0]:
        value = flat[idx]
        if math.isnan(value) or math.isinf(value):
            flag[0] = 1
        idx += stride


@cuda.jit
def _count_spikes(z, counts):
    n_steps, batch, n = z.shape
    idx = cuda.grid(1)
    stride = cuda.gridsize(1)
    while idx < batch * n:
        b = idx // n
        k = idx - b * n
        c = counts[b, k]
        for t in range(n_steps):
            if z[t, b, k] != 0.0:
                c += 1
        counts[b, k] = c
        idx += stride


# ---------------------------------------------------------------------------------------
# Matrix product: CuPy (cuBLAS) when available, else a shared-memory tiled kernel
# ---------------------------------------------------------------------------------------


@functools.cache
def _matmul_kernel(tile: int):
    """The tiled kernel ``c (+)= op(a) @ op(b)`` for square ``tile`` × ``tile`` blocks.

    Each block owns ``tile × tile`` outputs, walks the inner dimension in steps of ``tile``
    through two shared-memory tiles (padded by one column against bank conflicts) and
    tile-strides over the output when the grid is smaller than the matrix. Loads are
    coalesced along ``threadIdx.x`` for both layouts of each operand. Accumulates in the
    dtype of ``c`` (like cuBLAS).
    """

    width = tile + 1  # a closure constant: shared-array shapes must be compile-time literals

    @cuda.jit
    def kernel(a, b, c, trans_a, trans_b, accumulate):
        m, n = c.shape
        kdim = a.shape[0] if trans_a else a.shape[1]
        sa = cuda.shared.array((tile, width), c.dtype)  # sa[r, q] = op(a)[row0 + r, k0 + q]
        sb = cuda.shared.array((tile, width), c.dtype)  # sb[q, j] = op(b)[k0 + q, col0 + j]
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        for row0 in range(cuda.blockIdx.y * tile, m, cuda.gridDim.y * tile):
            for col0 in range(cuda.blockIdx.x * tile, n, cuda.gridDim.x * tile):
                acc = _as_dtype_of(c, 0.0)
                for k0 in range(0, kdim, tile):
                    if trans_a:  # a is (K, M)
                        q = k0 + ty
                        r = row0 + tx
                        sa[tx, ty] = a[q, r] if (q < kdim and r < m) else 0.0
                    else:  # a is (M, K)
                        r = row0 + ty
                        q = k0 + tx
                        sa[ty, tx] = a[r, q] if (r < m and q < kdim) else 0.0
                    if trans_b:  # b is (N, K)
                        j = col0 + ty
                        q = k0 + tx
                        sb[tx, ty] = b[j, q] if (j < n and q < kdim) else 0.0
                    else:  # b is (K, N)
                        q = k0 + ty
                        j = col0 + tx
                        sb[ty, tx] = b[q, j] if (q < kdim and j < n) else 0.0
                    cuda.syncthreads()
                    for q in range(tile):
                        acc += sa[ty, q] * sb[q, tx]
                    cuda.syncthreads()
                r = row0 + ty
                j = col0 + tx
                if r < m and j < n:
                    if accumulate:
                        c[r, j] += acc
                    else:
                        c[r, j] = acc

    return kernel


def _cupy():
    """The cupy module when the products should use it, else None."""
    if USE_CUPY is False or config.ENABLE_CUDASIM:
        return None
    try:
        import cupy
    except ImportError:
        if USE_CUPY:
            raise
        return None
    return cupy


def matmul(
    a,
    b,
    out,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    accumulate: bool = False,
    tile: int | None = None,
    max_grid: int | None = None,
    use_cupy: bool | None = None,
) -> None:
    """``out = op(a) @ op(b)`` (or ``out += ...``) on device arrays, ``op`` = transpose if asked.

    Parameters
    ----------
    a, b, out : numba device arrays, 2-D, C-contiguous, same float dtype
        ``op(a)`` is (M, K), ``op(b)`` is (K, N) and ``out`` is (M, N).
    trans_a, trans_b : bool
        Use ``a.T`` / ``b.T`` (without copying).
    accumulate : bool
        Add the product to ``out`` instead of overwriting it.
    tile, max_grid : int, optional
        Tile edge and grid cap of the fallback kernel (default :data:`MATMUL_TILE`,
        :data:`MATMUL_MAX_GRID`).
    use_cupy : bool, optional
        Force (True) or forbid (False) CuPy; default :data:`USE_CUPY`.
    """
    m, n = out.shape
    kdim = a.shape[0] if trans_a else a.shape[1]
    if m == 0 or n == 0:
        return
    cp = None if use_cupy is False else _cupy()
    if use_cupy and cp is None:
        raise RuntimeError("use_cupy=True but CuPy is not importable (or the simulator is on)")
    if cp is not None:
        ca = cp.asarray(a)
        cb = cp.asarray(b)
        co = cp.asarray(out)
        ca = ca.T if trans_a else ca
        cb = cb.T if trans_b else cb
        if accumulate:
            co += ca @ cb
        else:
            cp.matmul(ca, cb, out=co)
        return
    if kdim == 0:
        if not accumulate:
            fill(out, 0.0)
        return
    tile = MATMUL_TILE if tile is None else int(tile)
    cap = MATMUL_MAX_GRID if max_grid is None else int(max_grid)
    grid = (max(1, min(cap, -(-n // tile))), max(1, min(cap, -(-m // tile))))
    _matmul_kernel(tile)[grid, (tile, tile)](a, b, out, trans_a, trans_b, accumulate)


# ---------------------------------------------------------------------------------------
# Launch functions (same arguments as their kernels.cpu namesakes, device arrays)
# ---------------------------------------------------------------------------------------


def lif_feed_forward_forward(
    x, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha, smooth,
    v, i, z_out, h_out, i1_out, v_out, i_out, store_z, store_h, store_i1, store_trace,
    *, threads_per_block: int | None = None, max_blocks: int | None = None,
) -> None:  # fmt: skip
    """Feed-forward LIF over all steps (one launch); updates ``v``, ``i`` (B, N) in place."""
    grid = launch_config(x.shape[1] * x.shape[2], threads_per_block, max_blocks)
    _lif_feed_forward_forward[grid](
        x, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha, smooth,
        v, i, z_out, h_out, i1_out, v_out, i_out, store_z, store_h, store_i1, store_trace,
    )  # fmt: skip


def lif_recurrent_forward(
    x, w_rec, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha, smooth,
    v, i, z_state, z_out, h_out, i1_out, v_out, i_out, store_z, store_h, store_i1, store_trace,
    *, threads_per_block: int | None = None, max_blocks: int | None = None,
) -> None:  # fmt: skip
    """Recurrent LIF: per step, ``rec = z_state @ w_rec.T`` then one step of every neuron.

    ``z_state`` (B, N) holds the spikes of the step before the first and, on return, those
    of the last step; ``v``, ``i`` are updated in place.
    """
    n_steps, batch, n = x.shape
    grid = launch_config(batch * n, threads_per_block, max_blocks)
    rec = cuda.device_array((batch, n), dtype=x.dtype)
    step = _lif_recurrent_forward_step[grid]
    for t in range(n_steps):
        matmul(z_state, w_rec, rec, trans_b=True)
        step(
            t, x, rec, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha, smooth,
            v, i, z_state, z_out, h_out, i1_out, v_out, i_out,
            store_z, store_h, store_i1, store_trace,
        )  # fmt: skip


def lif_feed_forward_backward(
    grad_z, h, i1, v0, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha, smooth,
    detach, param_grads, gx, gv, gi, g_am, g_decay, g_vth, g_vleak,
    *, threads_per_block: int | None = None, max_blocks: int | None = None,
) -> None:  # fmt: skip
    """BPTT through the feed-forward LIF (one launch). ``gv``, ``gi`` enter as the adjoints
    of the final state and leave as the gradients of the initial state; the float64
    accumulators ``g_*`` (B, N) are added to."""
    grid = launch_config(grad_z.shape[1] * grad_z.shape[2], threads_per_block, max_blocks)
    _lif_feed_forward_backward[grid](
        grad_z, h, i1, v0, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha,
        smooth, detach, param_grads, gx, gv, gi, g_am, g_decay, g_vth, g_vleak,
    )  # fmt: skip


def lif_recurrent_backward(
    grad_z, h, i1, v0, w_rec, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha,
    smooth, detach, param_grads, gx, gv, gi, gz_rec, g_am, g_decay, g_vth, g_vleak,
    *, threads_per_block: int | None = None, max_blocks: int | None = None,
) -> None:  # fmt: skip
    """BPTT through the recurrent LIF: per reverse step one neuron kernel, then
    ``gz_rec = gx_t @ w_rec``; on return ``gz_rec`` is the gradient of the initial spikes
    (it must enter as zeros, like in :func:`numbaspike.kernels.cpu.lif_recurrent_backward`)."""
    n_steps, batch, n = grad_z.shape
    grid = launch_config(batch * n, threads_per_block, max_blocks)
    step = _lif_recurrent_backward_step[grid]
    for t in range(n_steps - 1, -1, -1):
        step(
            t, grad_z, gz_rec, h, i1, v0, a_m, decay_s, v_leak, v_th, v_reset, reset_code,
            sg_code, alpha, smooth, detach, param_grads, gx, gv, gi, g_am, g_decay, g_vth,
            g_vleak,
        )  # fmt: skip
        matmul(gx[t], w_rec, gz_rec)


def li_forward(
    x, a_m, decay_s, v_leak, v, i, v_out, i1_out, i_out, store_v, store_i1, store_i,
    *, threads_per_block: int | None = None, max_blocks: int | None = None,
) -> None:  # fmt: skip
    """Leaky integrator over all steps (one launch); output is the membrane of every step."""
    grid = launch_config(x.shape[1] * x.shape[2], threads_per_block, max_blocks)
    _li_forward[grid](
        x, a_m, decay_s, v_leak, v, i, v_out, i1_out, i_out, store_v, store_i1, store_i
    )


def li_backward(
    grad_v, v_out, i1, v0, a_m, decay_s, v_leak, param_grads, gx, gv, gi, g_am, g_decay, g_vleak,
    *, threads_per_block: int | None = None, max_blocks: int | None = None,
) -> None:  # fmt: skip
    """BPTT through the leaky integrator (one launch)."""
    grid = launch_config(grad_v.shape[1] * grad_v.shape[2], threads_per_block, max_blocks)
    _li_backward[grid](
        grad_v, v_out, i1, v0, a_m, decay_s, v_leak, param_grads, gx, gv, gi, g_am, g_decay,
        g_vleak,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------
# Array utilities on the device
# ---------------------------------------------------------------------------------------


def _flat(arr):
    return arr.reshape(arr.size)


def empty(shape, dtype):
    """An uninitialised device array."""
    return cuda.device_array(shape, dtype=np.dtype(dtype))


def fill(arr, value) -> None:
    """Set every element of the C-contiguous device array ``arr`` to ``value``."""
    if arr.size:
        _fill[launch_config(arr.size)](_flat(arr), value)


def zeros(shape, dtype):
    """A device array of zeros (filled on the device, no host transfer)."""
    out = empty(shape, dtype)
    fill(out, 0)
    return out


def copy(arr):
    """A device-to-device copy of ``arr``."""
    out = cuda.device_array(arr.shape, dtype=arr.dtype)
    if arr.size:
        out.copy_to_device(arr)
    return out


def cast(arr, dtype):
    """A C-contiguous device copy of ``arr`` converted to ``dtype`` (rounding on store)."""
    out = empty(arr.shape, dtype)
    if arr.size:
        _copy_cast[launch_config(arr.size)](_flat(arr), _flat(out))
    return out


def broadcast_2d(src, out) -> None:
    """Write the broadcast of the 0-, 1- or 2-D device array ``src`` into the 2-D ``out``."""
    if src.ndim == 0:
        src = src.reshape(1, 1)
    elif src.ndim == 1:
        src = src.reshape(1, src.shape[0])
    if out.size:
        _broadcast_2d[launch_config(out.size)](src, out)


def any_nonfinite(arr) -> bool:
    """Whether the C-contiguous float device array ``arr`` holds a NaN or an inf."""
    if arr.size == 0:
        return False
    flag = zeros(1, np.int32)
    _flag_nonfinite[launch_config(arr.size)](_flat(arr), flag)
    return bool(flag.copy_to_host()[0])


def reduce_batch(acc, scale: float, extra, out) -> None:
    """``out[k] = sum_b scale * (acc[b, k] + extra[b, k])`` (``extra`` may be None).

    ``acc`` is a float64 (B, N) accumulator and the sum runs over ``b`` in order, like NumPy's
    ``(scale * acc).sum(axis=0)``; ``out`` (N,) may be float32 or float64.
    """
    add = extra is not None
    _reduce_batch[launch_config(out.shape[0])](acc, float(scale), extra if add else acc, add, out)


def count_spikes(z, counts) -> None:
    """``counts[b, k] += number of t with z[t, b, k] != 0`` (``counts`` is int64 (B, N))."""
    if z.size:
        _count_spikes[launch_config(z.shape[1] * z.shape[2])](z, counts)
