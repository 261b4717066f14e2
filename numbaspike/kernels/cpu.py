"""CPU kernels: parallel ``numba.njit`` loops around the scalar maths of :mod:`.math`.

One fused kernel per layer kind and direction. The time loop runs inside the kernel.
Feed-forward kernels (LIF and LI) are handed their (T, B, N) arrays as (T, B*N) views and
the neuron parameters repeated per batch row, (B*N,), by small Python functions
(:func:`lif_feed_forward_forward`, ...), and are parallel over contiguous chunks of that
flattened axis, each chunk running all ``T`` steps with its state in small local buffers.
Recurrent kernels couple the neurons of a batch row from one step to the next: with at
least as many batch rows as threads they are parallel over rows (each row runs all steps,
one parallel region in all); with fewer rows (e.g. B = 1) they open one parallel region per
step over blocks of neurons. The recurrent current is event-driven: only the weights of
neurons that spiked in the previous step are read.

Each kernel is a work-item function (a chunk of neurons, a batch row, all steps) and a
table of work-item bounds, run by the parallel runner that all kernels share, or by its
serial twin for problems too small to repay opening a parallel region
(:data:`SERIAL_WORK`); see :mod:`numbaspike.compiler.parallel_runner`. Both give bit-identical results, since no
kernel reduces across threads. Items are compiled once per dtype and cached on disk
(``cache=True``; tests/test_cache.py checks that kernels loaded from the cache give
bit-identical results); the default modes get their own specialised compilation
(:data:`FORWARD_MODES`, :data:`BACKWARD_MODES`). The recurrent kernels for batches smaller
than the thread count keep a ``parallel=True`` kernel with one parallel region per step.

Within a step, a block of neurons is processed in short passes over local buffers (integrate,
spike, reset; surrogate, adjoint, parameter gradients), each pass branch-free with the
mode (reset, surrogate, detach, smooth) chosen outside the loop: LLVM vectorises these
loops, which it cannot do for one long loop that reads and writes many argument arrays
(it must assume they may alias) and branches on runtime codes.

Backward products (recurrent and weight gradients) may fuse multiply-adds
(``fastmath={"contract"}``); forward kernels never do, so that spikes are computed with
exactly the rounding of an elementwise implementation.

Kernels trust their inputs: :mod:`numbaspike.functional` checks shapes, dtypes,
contiguity and finiteness once, and casts parameters to per-neuron arrays of the
working dtype, so each kernel compiles once per dtype. Output arrays that a call does
not need are passed with size 0 and a ``store_*`` flag of ``False``.
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, prange

from ..compiler.intrinsics import (
    matmul_1_row,
    matmul_4_rows,
    matmul_8_rows,
    prefetch_read,
    prefetch_write,
)
from ..compiler.mode_pruning import njit
from ..compiler.parallel_runner import ItemKernel, blocks_of, item_ranges, one_item_each
from ..models import li as _li
from ..models import lif as _lif
from ..runtime import array_pool
from ..runtime.threads import parallel_allowed
from . import math as _m
from .vector_math import exp_nonpositive, like

# Scalar device functions, compiled from the single source in kernels/math.py. Functions
# that divide use NumPy's error model (IEEE inf/NaN; their divisors are never 0 for
# validated parameters): with the default Python model every division checks its divisor
# to raise ZeroDivisionError, and that branch kept LLVM from vectorising any loop that
# divides (the SuperSpike surrogate loop ran one scalar division per element).
surrogate_grad = njit(cache=True, error_model="numpy")(_m.surrogate_grad)
surrogate_smooth = njit(cache=True, error_model="numpy")(_m.surrogate_smooth)
membrane_step = njit(cache=True)(_lif.membrane_step)
reset_step = njit(cache=True)(_lif.reset_step)
lif_adjoint_step = njit(cache=True)(_lif.lif_adjoint_step)
li_adjoint_step = njit(cache=True)(_li.li_adjoint_step)

#: Neurons per parallel work item of the recurrent kernels that run one step at a time.
BLOCK = 256
#: Bounds of the number of neurons per work item of the feed-forward kernels, which split
#: the flattened (B*N) axis: each item streams a contiguous stretch of every step's row
#: (the hardware prefetchers follow it; a (batch row, block) item jumped to a new page
#: every step and ran 2-2.6x slower at N = 512-2048, B = 16).
FLAT_CHUNK_MIN = 1024
FLAT_CHUNK_MAX = 4096
FLAT_CHUNKS = 8
#: Below this much work per parallel region (neuron-steps, or neuron-inputs for a recurrent
#: step), a kernel runs single-threaded: a parallel region costs tens of microseconds to
#: open, far more than tiny problems take, and much more when the machine is busy.
SERIAL_WORK = 1 << 16
#: With fewer batch rows than threads, a recurrent kernel opens one parallel region per
#: step; below this much work per step it runs serially instead (the per-step barrier
#: gained at most 3% on a quiet 2-core machine and cost 5-20x when another process held
#: a core).
STEPWISE_WORK = 1 << 23


@njit(cache=True, error_model="numpy")
def surrogate_grad_array(code, u, alpha, out):
    for k in range(u.shape[0]):
        out[k] = surrogate_grad(code, u[k], alpha)


@njit(cache=True, error_model="numpy")
def surrogate_smooth_array(code, u, alpha, out):
    for k in range(u.shape[0]):
        out[k] = surrogate_smooth(code, u[k], alpha)


@njit(inline="always")
def _spike(u, sg_code, alpha, smooth):
    if smooth:
        return surrogate_smooth(sg_code, u, alpha)
    return 1.0 if u > 0.0 else 0.0


@njit(inline="always")
def _chunk(c, nblk, n):
    b = c // nblk
    n0 = (c % nblk) * BLOCK
    return b, n0, min(n0 + BLOCK, n)


# --- passes over one block of m neurons (buffers of length >= m) -------------------------


@njit(error_model="numpy")
def _spike_block(hb, th, m, sg_code, alpha, smooth, zb):
    """``zb = H(h - v_th)``, or ``F(h - v_th)`` in smooth mode.

    Smooth mode (gradient checks, smooth-model studies) takes one loop with the surrogate
    chosen at run time, not one loop per surrogate as the surrogate derivative does in
    :func:`_surrogate_grad_block`: seven specialised loops cost about a second of every
    cold compile, for a mode that is rarely the bottleneck of a training run."""
    if smooth:
        for k in range(m):
            zb[k] = surrogate_smooth(sg_code, hb[k] - th[k], alpha)
    else:
        for k in range(m):
            zb[k] = 1.0 if hb[k] > th[k] else 0.0


@njit(inline="always")
def _superspike_grad(u, alpha, one):
    """SuperSpike's :math:`1 / (\\alpha |u| + 1)^2` in the type of ``alpha`` (``one`` is 1 in
    it); inlined into functions compiled with NumPy's error model, so the division
    vectorises."""
    d = alpha * abs(u) + one
    return one / (d * d)


@njit(error_model="numpy")
def _surrogate_grad_block(hb, th, m, sg_code, alpha, sb):
    """``sb = s(h - v_th)``, each surrogate written out in the type of ``alpha`` (the working
    dtype): :func:`~.math.surrogate_grad`'s float literals would promote a float32 loop to
    float64 (and its divisions to 4-wide ones), and its ``math.exp`` / ``math.tanh`` are a C
    library call per element. The same functions, with :math:`y = \\alpha u` and
    :math:`e = \\exp(-|y|)` from :func:`~.vector_math.exp_nonpositive` (vectorised):

    .. math::

        \\text{SuperSpike: } \\frac{1}{(\\alpha |u| + 1)^2}, \\qquad
        \\text{sigmoid: } \\alpha\\,\\sigma(y)(1 - \\sigma(y)) = \\frac{\\alpha e}{(1 + e)^2},
        \\qquad \\text{tanh: } 1 - \\tanh^2 y = \\frac{4 e^2}{(1 + e^2)^2},
        \\qquad \\text{erfc: } \\tfrac{2}{\\sqrt\\pi}\\, e^{-y^2}

    (``1 - tanh^2`` written so loses no digits where ``tanh y`` is close to 1); atan,
    triangle and boxcar as in :func:`~.math.surrogate_grad`."""
    one = alpha / alpha
    zero = alpha - alpha
    if sg_code == 0:
        for k in range(m):
            sb[k] = _superspike_grad(hb[k] - th[k], alpha, one)
    elif sg_code == 1:
        for k in range(m):
            e = exp_nonpositive(-abs(alpha * (hb[k] - th[k])))
            d = one + e
            sb[k] = alpha * (e / (d * d))
    elif sg_code == 2:
        half_pi_alpha = like(alpha, _m.HALF_PI) * alpha
        half_alpha = like(alpha, 0.5) * alpha
        for k in range(m):
            y = half_pi_alpha * (hb[k] - th[k])
            sb[k] = half_alpha / (one + y * y)
    elif sg_code == 3:
        four = like(alpha, 4.0)
        for k in range(m):
            y = abs(alpha * (hb[k] - th[k]))
            e2 = exp_nonpositive(-(y + y))
            d = one + e2
            sb[k] = four * (e2 / (d * d))
    elif sg_code == 4:
        two_over_sqrt_pi = like(alpha, 2.0 / _m.SQRT_PI)
        for k in range(m):
            y = alpha * (hb[k] - th[k])
            sb[k] = two_over_sqrt_pi * exp_nonpositive(-(y * y))
    elif sg_code == 5:
        for k in range(m):
            r = one - abs(hb[k] - th[k])
            sb[k] = alpha * r if r > zero else zero
    else:
        half_over_alpha = like(alpha, 0.5) / alpha
        for k in range(m):
            sb[k] = half_over_alpha if abs(hb[k] - th[k]) < alpha else zero


@njit
def _reset_block(hb, zb, th, v_reset, m, reset_code, smooth, vv):
    """Membrane after the spikes: ``vv = reset(h, z)`` (rounded to the buffer's dtype)."""
    if reset_code == 1:
        for k in range(m):
            vv[k] = reset_step(hb[k], zb[k], th[k], v_reset, 1, False)
    elif smooth:
        for k in range(m):
            vv[k] = reset_step(hb[k], zb[k], th[k], v_reset, 0, True)
    else:
        for k in range(m):
            vv[k] = reset_step(hb[k], zb[k], th[k], v_reset, 0, False)


@njit(inline="always")
def _step_loop(
    xt, am, dd, ll, th, v_reset, m, reset_code, sg_code, alpha, smooth, vv, ii, zt, ht, it
):
    for k in range(m):
        h, i1, i_next = membrane_step(vv[k], ii[k], xt[k], am[k], dd[k], ll[k])
        z = _spike(h - th[k], sg_code, alpha, smooth)
        zt[k] = z
        ht[k] = h
        it[k] = i1
        ii[k] = i_next
        vv[k] = reset_step(h, z, th[k], v_reset, reset_code, smooth)


@njit(inline="always")
def _lif_step_row(
    xt, am, dd, ll, th, v_reset, m, reset_code, sg_code, alpha, smooth, vv, ii, zt, ht, it
):
    """One fused forward step of m neurons: state ``vv``, ``ii`` updated in place; ``z``, ``h``
    and ``i'`` written to the rows ``zt``, ``ht``, ``it`` (output rows or scratch buffers).
    The reset mode and smoothness are fixed per loop so the step-mode loops vectorise."""
    if smooth:
        _step_loop(
            xt, am, dd, ll, th, v_reset, m, reset_code, sg_code, alpha, True, vv, ii, zt, ht, it
        )
    elif reset_code == 0:
        _step_loop(xt, am, dd, ll, th, v_reset, m, 0, 0, alpha, False, vv, ii, zt, ht, it)
    else:
        _step_loop(xt, am, dd, ll, th, v_reset, m, 1, 0, alpha, False, vv, ii, zt, ht, it)


@njit(inline="always")
def _adjoint_loop(
    gzt, ht, zb, sb, th, v_reset, am, dd, m, reset_code, smooth, detach, gvb, gib, ghb, gthb,
    gi_in, keep,
):  # fmt: skip
    for k in range(m):
        z = zb[k]
        if keep:
            gi_in[k] = gib[k]
        gv_prev, gi1, gh, g_th = lif_adjoint_step(
            gvb[k],
            gib[k],
            gzt[k],
            ht[k],
            z,
            sb[k],
            th[k],
            v_reset,
            am[k],
            dd[k],
            reset_code,
            detach,
        )
        gvb[k] = gv_prev
        gib[k] = gi1
        if keep:  # a compile-time constant (see _adjoint_row)
            ghb[k] = gh
            gthb[k] = g_th


@njit(inline="always")
def _adjoint_row(
    gzt, ht, zb, sb, th, v_reset, am, dd, m, reset_code, smooth, detach, gvb, gib, gxt, ghb, gthb, gi_in,
    keep,
):  # fmt: skip
    """Fused reverse step of m neurons given the spikes ``zb`` and surrogate values ``sb``:
    updates the adjoints ``gvb``, ``gib``, writes dL/dx_t to ``gxt`` and, if ``keep`` (for
    parameter gradients), leaves ``gh``, the v_th term and the incoming ``gi`` in ``ghb``,
    ``gthb``, ``gi_in``.

    ``gxt`` may be ``gzt`` (an in-place backward pass): the loop writes only local buffers
    and ``gxt`` is copied from ``gib`` after it, because a loop that writes ``gxt`` while
    reading ``gzt`` does not vectorise when they are the same memory.

    Every flag reaches the loop as a compile-time constant, because LLVM does not unswitch
    a runtime ``keep`` out of the loop, which then does not vectorise.
    With ``keep`` (learned neuron parameters) one loop serves every mode."""
    if keep:
        _adjoint_loop(
            gzt, ht, zb, sb, th, v_reset, am, dd, m, reset_code, smooth, detach, gvb, gib, ghb,
            gthb, gi_in, True,
        )  # fmt: skip
    elif smooth:
        _adjoint_loop(
            gzt, ht, zb, sb, th, v_reset, am, dd, m, reset_code, True, detach, gvb, gib, ghb,
            gthb, gi_in, False,
        )  # fmt: skip
    elif reset_code == 0:
        if detach:
            _adjoint_loop(
                gzt, ht, zb, sb, th, v_reset, am, dd, m, 0, False, True, gvb, gib, ghb,
                gthb, gi_in, False,
            )  # fmt: skip
        else:
            _adjoint_loop(
                gzt, ht, zb, sb, th, v_reset, am, dd, m, 0, False, False, gvb, gib, ghb,
                gthb, gi_in, False,
            )  # fmt: skip
    elif detach:
        _adjoint_loop(
            gzt, ht, zb, sb, th, v_reset, am, dd, m, 1, False, True, gvb, gib, ghb, gthb,
            gi_in, False,
        )  # fmt: skip
    else:
        _adjoint_loop(
            gzt, ht, zb, sb, th, v_reset, am, dd, m, 1, False, False, gvb, gib, ghb, gthb,
            gi_in, False,
        )  # fmt: skip
    for k in range(m):
        gxt[k] = gib[k]


@njit(error_model="numpy")
def _superspike_adjoint_row(gzt, ht, th, v_reset, am, dd, m, alpha, gvb, gib, gxt):
    """:func:`_adjoint_row` for the default mode (SuperSpike, zero reset, no detach, binary
    spikes, no parameter gradients) in one loop: the spike and the surrogate derivative
    are computed where they are used, by the expressions of :func:`_spike_block` and
    :func:`_surrogate_grad_block` (the same bits), not in passes of their own, which saves
    two passes over the row.
    ``gxt`` may be ``gzt``: it is written after the loop (see :func:`_adjoint_row`)."""
    one = alpha / alpha
    zero = alpha - alpha
    for k in range(m):
        h = ht[k]
        z = one if h > th[k] else zero
        s = _superspike_grad(h - th[k], alpha, one)
        gv_prev, gi1, gh, g_th = lif_adjoint_step(
            gvb[k], gib[k], gzt[k], h, z, s, th[k], v_reset, am[k], dd[k], 0, False
        )
        gvb[k] = gv_prev
        gib[k] = gi1
    _store_range(gxt, np.int64(0), gib, m)


@njit(inline="always")
def _lif_adjoint_block(
    ht, hp, v0b, i1t, first, m, gzt, gxt, am, dd, ll, th, v_reset, reset_code, sg_code, alpha,
    smooth, detach, param_grads, gvb, gib, bufs, acc,
):  # fmt: skip
    """Reverse step of m neurons whose membranes at this step are ``ht``; dL/dx_t goes to
    ``gxt`` (which may be ``gzt``).

    For the parameter gradients: ``hp`` are the membranes of the step before (unless
    ``first``; then ``v0b`` are the initial ones) and ``i1t`` the currents of this step;
    ``bufs`` (7, m) are scratch rows (z, s, gh, g_vth, gi before the step, v_{t-1}, z_{t-1});
    ``acc`` (4, m) float64 accumulates the parameter gradients (tau_mem, decay, v_th, v_leak).

    Inlined (as :func:`_recurrent_grad`): a compiled callee is linked into its caller and
    optimised again there, so a called thin layer costs compile time; with the mode branches
    pruned before inlining (:mod:`numbaspike.compiler.mode_pruning`), the inlined copy is as
    small as the call.
    """
    zb, sb, ghb, gthb, gi_in, vpb, zpb = (
        bufs[0], bufs[1], bufs[2], bufs[3], bufs[4], bufs[5], bufs[6],
    )  # fmt: skip
    if sg_code == 0 and reset_code == 0 and not (smooth or detach or param_grads):
        _superspike_adjoint_row(gzt, ht, th, v_reset, am, dd, m, alpha, gvb, gib, gxt)
        return
    _spike_block(ht, th, m, sg_code, alpha, smooth, zb)
    _surrogate_grad_block(ht, th, m, sg_code, alpha, sb)
    _adjoint_row(
        gzt, ht, zb, sb, th, v_reset, am, dd, m, reset_code, smooth, detach, gvb, gib, gxt, ghb,
        gthb, gi_in, param_grads,
    )  # fmt: skip
    if param_grads:
        if first:
            for k in range(m):
                vpb[k] = v0b[k]
        else:
            _spike_block(hp, th, m, sg_code, alpha, smooth, zpb)
            _reset_block(hp, zpb, th, v_reset, m, reset_code, smooth, vpb)
        for k in range(m):
            acc[0, k] += ghb[k] * ((ll[k] - vpb[k]) + i1t[k])
            acc[1, k] += gi_in[k] * i1t[k]
            acc[2, k] += gthb[k]
            acc[3, k] += ghb[k] * am[k]


@njit(inline="always")
def _adjoint_block_at(
    t, b, n0, m, gzt, gxt, h, i1, v0, am, dd, ll, th, v_reset, reset_code, sg_code, alpha,
    smooth, detach, param_grads, gvb, gib, bufs, acc,
):  # fmt: skip
    """:func:`_lif_adjoint_block` for step ``t`` of neurons ``n0:n0+m`` of batch row ``b`` of
    (T, B, N) tapes."""
    ht = h[t, b, n0 : n0 + m]
    _lif_adjoint_block(
        ht, h[t - 1, b, n0 : n0 + m] if t > 0 else ht, v0[b, n0 : n0 + m],
        i1[t, b, n0 : n0 + m] if param_grads else ht, t == 0, m, gzt, gxt, am, dd, ll, th,
        v_reset, reset_code, sg_code, alpha, smooth, detach, param_grads, gvb, gib, bufs, acc,
    )  # fmt: skip


@njit
def _flush_param_grads(acc, b, n0, m, g_am, g_decay, g_vth, g_vleak):
    for k in range(m):
        g_am[b, n0 + k] += acc[0, k]
        g_decay[b, n0 + k] += acc[1, k]
        g_vth[b, n0 + k] += acc[2, k]
        g_vleak[b, n0 + k] += acc[3, k]
        acc[0, k] = 0.0
        acc[1, k] = 0.0
        acc[2, k] = 0.0
        acc[3, k] = 0.0


@njit(inline="always")
def _prefetch_step(arr, t, b, n0, m, write):
    """Prefetch ``arr[t, b, n0:n0+m]`` (if ``arr`` has step ``t``), one hint per cache line."""
    if 0 <= t < arr.shape[0]:
        for k in range(n0, n0 + m, max(1, 64 // arr.itemsize)):
            if write:
                prefetch_write(arr, t, b, k)
            else:
                prefetch_read(arr, t, b, k)


@njit(inline="always")
def _copy_2d(src, dst):
    """``dst[:, :] = src`` (loops: no shape checks to compile)."""
    for r in range(src.shape[0]):
        for k in range(src.shape[1]):
            dst[r, k] = src[r, k]


@njit(cache=True)
def _store_range(out, e0, buf, m):
    """``out[e0:e0+m] = buf[:m]`` (a loop: no shape checks to compile).

    The loop indexes a view of the range, not ``out[e0 + k]``: Numba's wraparound of an index
    LLVM cannot prove non-negative makes that store a scalar loop.

    Called, not inlined: each inlined copy of a loop is typed and vectorised again (compile
    time), and a call per row of hundreds of elements costs nothing measurable. Call sites pass ``np.int64(0)``, not ``0``, for a
    row's start: a literal argument compiles a version of its own (0.1 s)."""
    dst = out[e0 : e0 + m]
    for k in range(m):
        dst[k] = buf[k]


@njit(cache=True)
def _add_range(out, e0, buf, m):
    """``out[e0:e0+m] += buf[:m]`` (through a view, as :func:`_store_range`)."""
    dst = out[e0 : e0 + m]
    for k in range(m):
        dst[k] += buf[k]


# --- feed-forward LIF ---------------------------------------------------------------------


@njit(inline="always")
def _rows(count, n, dtype):
    """``np.empty((count, n), dtype)``, allocated flat: the buffers of a dtype then share
    one compilation of NumPy's allocation, where each shape type compiles its own."""
    return np.empty(count * n, dtype).reshape(count, n)


@njit(inline="always")
def _accumulators(count, n):
    """``np.zeros((count, 4, n))``: float64 parameter-gradient accumulators, allocated flat
    (see :func:`_rows`)."""
    return np.zeros(count * 4 * n, np.float64).reshape(count, 4, n)


def _lif_feed_forward_forward_item(
    e0, e1, x, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha, smooth,
    v, i, z_out, h_out, i1_out, v_out, i_out, store_z, store_h, store_i1, store_trace,
):  # fmt: skip
    """Feed-forward LIF over all steps, elements ``e0 .. e1 - 1`` of the flattened (B*N)
    axis (a work item of :func:`lif_feed_forward_forward`, which flattens its arguments:
    (T, B*N) arrays, and (B*N,) parameters and state); updates the state ``v``, ``i`` in
    place."""
    n_steps = x.shape[0]
    m = e1 - e0
    am, dd, ll, th = a_m[e0:e1], decay_s[e0:e1], v_leak[e0:e1], v_th[e0:e1]
    vv, ii = v[e0:e1].copy(), i[e0:e1].copy()
    hb, i1b, zb = np.empty(m, x.dtype), np.empty(m, x.dtype), np.empty(m, x.dtype)
    # z_out may be x (an in-place forward pass): the step writes its spikes to a local buffer,
    # copied over x after it, because writing into x's own rows stops the loop vectorising.
    in_place = store_z and z_out.ctypes.data == x.ctypes.data
    for t in range(n_steps):
        zt = z_out[t, e0:e1] if store_z and not in_place else zb
        ht = h_out[t, e0:e1] if store_h else hb
        it = i1_out[t, e0:e1] if store_i1 else i1b
        _lif_step_row(
            x[t, e0:e1], am, dd, ll, th, v_reset, m, reset_code, sg_code, alpha, smooth, vv,
            ii, zt, ht, it,
        )  # fmt: skip
        if in_place:
            _store_range(z_out[t], e0, zb, m)
        if store_trace:
            _store_range(v_out[t], e0, vv, m)
            _store_range(i_out[t], e0, ii, m)
    _store_range(v, e0, vv, m)
    _store_range(i, e0, ii, m)


def _lif_feed_forward_backward_item(
    e0, e1, grad_z, h, i1, v0, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha,
    smooth, detach, param_grads, gx, gv, gi, g_am, g_decay, g_vth, g_vleak,
):  # fmt: skip
    """BPTT through the feed-forward LIF, elements ``e0 .. e1 - 1`` of the flattened (B*N)
    axis, all steps in reverse (a work item of :func:`lif_feed_forward_backward`, which
    flattens its arguments as :func:`lif_feed_forward_forward` does). ``gv``, ``gi`` enter
    as the adjoints of the final state (normally 0) and leave as the gradients of the
    initial state; parameter gradients are added to the float64 arrays ``g_*`` when
    ``param_grads``."""
    n_steps = grad_z.shape[0]
    m = e1 - e0
    am, dd, ll, th = a_m[e0:e1], decay_s[e0:e1], v_leak[e0:e1], v_th[e0:e1]
    gvb, gib = gv[e0:e1].copy(), gi[e0:e1].copy()
    bufs = _rows(7, m, h.dtype)
    acc = _accumulators(1, m if param_grads else 0)[0]
    for t in range(n_steps - 1, -1, -1):
        ht = h[t, e0:e1]
        _lif_adjoint_block(
            ht, h[t - 1, e0:e1] if t > 0 else ht, v0[e0:e1],
            i1[t, e0:e1] if param_grads else ht, t == 0, m, grad_z[t, e0:e1], gx[t, e0:e1],
            am, dd, ll, th, v_reset, reset_code, sg_code, alpha, smooth, detach, param_grads,
            gvb, gib, bufs, acc,
        )  # fmt: skip
    _store_range(gv, e0, gvb, m)
    _store_range(gi, e0, gib, m)
    if param_grads:
        _add_range(g_am, e0, acc[0], m)
        _add_range(g_decay, e0, acc[1], m)
        _add_range(g_vth, e0, acc[2], m)
        _add_range(g_vleak, e0, acc[3], m)


# --- recurrent LIF ------------------------------------------------------------------------


@njit(inline="always", fastmath={"contract"})
def _recurrent_current(z_row, w_t, n0, m, rb, fired):
    """``rb = z_row @ w_t[:, n0:n0+m]``, event-driven: the neurons that spiked are listed
    first (branch-free, into ``fired``), then their rows of ``w_t`` are added four per pass
    over ``rb`` (a quarter of its loads and stores)."""
    count = 0
    for j in range(z_row.shape[0]):
        fired[count] = j
        count += 1 if z_row[j] != 0.0 else 0
    for k in range(m):
        rb[k] = 0.0
    e = 0
    while e + 4 <= count:
        j0, j1, j2, j3 = fired[e], fired[e + 1], fired[e + 2], fired[e + 3]
        a0, a1, a2, a3 = z_row[j0], z_row[j1], z_row[j2], z_row[j3]
        w0, w1 = w_t[j0, n0 : n0 + m], w_t[j1, n0 : n0 + m]
        w2, w3 = w_t[j2, n0 : n0 + m], w_t[j3, n0 : n0 + m]
        for k in range(m):
            rb[k] += (a0 * w0[k] + a1 * w1[k]) + (a2 * w2[k] + a3 * w3[k])
        e += 4
    while e < count:
        j0 = fired[e]
        a0 = z_row[j0]
        w0 = w_t[j0, n0 : n0 + m]
        for k in range(m):
            rb[k] += a0 * w0[k]
        e += 1


@njit(inline="always")
def _recurrent_forward_block(
    t, b, n0, m, x, w_rec_t, am, dd, ll, th, v_reset, reset_code, sg_code, alpha, smooth,
    vv, ii, z_prev, z_next, bufs, fired, z_out, h_out, i1_out, v_out, i_out, store_z, store_h,
    store_i1, store_trace,
):  # fmt: skip
    """Step ``t`` of neurons ``n0:n0+m`` of row ``b``: current ``x_t + z_{t-1} @ w_rec.T``
    from the previous spikes ``z_prev`` (N,) of the row, then the LIF update; new spikes to
    ``z_next[n0:n0+m]``. ``bufs`` (4, m): current, h, i', z; ``fired`` (N,) int64 scratch."""
    rb, hb, i1b, zb = bufs[0], bufs[1], bufs[2], bufs[3]
    _recurrent_current(z_prev, w_rec_t, n0, m, rb, fired)
    xt = x[t, b, n0 : n0 + m]
    for k in range(m):
        rb[k] = xt[k] + rb[k]
    zt = z_out[t, b, n0 : n0 + m] if store_z else zb
    ht = h_out[t, b, n0 : n0 + m] if store_h else hb
    it = i1_out[t, b, n0 : n0 + m] if store_i1 else i1b
    _lif_step_row(
        rb, am, dd, ll, th, v_reset, m, reset_code, sg_code, alpha, smooth, vv, ii, zt, ht, it
    )
    _store_range(z_next, n0, zt, m)
    if store_trace:
        _store_range(v_out[t, b], n0, vv, m)
        _store_range(i_out[t, b], n0, ii, m)


def _lif_recurrent_forward_stepwise(
    x, w_rec_t, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha, smooth,
    v, i, z_state, z_out, h_out, i1_out, v_out, i_out, store_z, store_h, store_i1, store_trace,
):  # fmt: skip
    """Recurrent LIF: input current ``x_t + z_{t-1} @ w_rec_t``; ``w_rec_t`` is ``w_rec.T``.

    ``z_state`` (B, N) holds the spikes of the step before the first and, on return,
    those of the last step. ``v``, ``i`` are updated in place. One parallel region per step
    over (batch row, block of neurons): for small batches (e.g. B = 1).
    """
    n_steps, batch, n = x.shape
    nblk = (n + BLOCK - 1) // BLOCK
    z_cur = z_state.copy()
    z_next = _rows(batch, n, z_state.dtype)
    for t in range(n_steps):
        for c in prange(batch * nblk):
            b, n0, n1 = _chunk(c, nblk, n)
            m = n1 - n0
            bufs = _rows(4, m, x.dtype)
            fired = np.empty(n, np.int64)
            _recurrent_forward_block(
                t, b, n0, m, x, w_rec_t, a_m[n0:n1], decay_s[n0:n1], v_leak[n0:n1], v_th[n0:n1],
                v_reset, reset_code, sg_code, alpha, smooth, v[b, n0:n1], i[b, n0:n1], z_cur[b],
                z_next[b], bufs, fired, z_out, h_out, i1_out, v_out, i_out, store_z, store_h,
                store_i1, store_trace,
            )  # fmt: skip
        z_cur, z_next = z_next, z_cur
    _copy_2d(z_cur, z_state)


def _lif_recurrent_forward_row(
    b, _b_end, x, w_rec_t, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha, smooth,
    v, i, z_state, z_out, h_out, i1_out, v_out, i_out, store_z, store_h, store_i1,
    store_trace,
):  # fmt: skip
    """Batch row ``b`` (``_b_end`` = b + 1) of the recurrent LIF forward pass, all steps;
    the row's spikes of the previous and the current step are kept in two local buffers.
    A work item of :data:`lif_recurrent_forward` for batches of at least as many rows as
    threads (and of its serial runs).

    Unlike the backward pass (:func:`_lif_recurrent_backward_group`), it does not prefetch
    the next step's rows: there they gain nothing measurable and cost compile time."""
    n_steps, batch, n = x.shape
    am, dd, ll, th = a_m.copy(), decay_s.copy(), v_leak.copy(), v_th.copy()
    vv, ii = v[b].copy(), i[b].copy()
    z_prev = z_state[b].copy()
    z_next = np.empty(n, z_prev.dtype)
    bufs = _rows(4, n, x.dtype)
    fired = np.empty(n, np.int64)
    for t in range(n_steps):  # no software prefetch: see the docstring
        _recurrent_forward_block(
            t, b, np.int64(0), n, x, w_rec_t, am, dd, ll, th, v_reset, reset_code, sg_code, alpha,
            smooth, vv, ii, z_prev, z_next, bufs, fired, z_out, h_out, i1_out, v_out, i_out,
            store_z, store_h, store_i1, store_trace,
        )  # fmt: skip
        for k in range(n):
            z_prev[k] = z_next[k]
    _store_range(v[b], np.int64(0), vv, n)
    _store_range(i[b], np.int64(0), ii, n)
    _store_range(z_state[b], np.int64(0), z_prev, n)


@njit
def _rows_times_matrix(a, t, b0, rows, w, w_col, m, out, o_row, o_col):
    """``out[o_row + r, o_col : o_col + m] = a[t, b0 + r] @ w[:, w_col : w_col + m]`` for
    ``r < rows``, in register tiles of 8, 4 or 1 rows
    (:func:`~numbaspike.compiler.intrinsics.matmul_rows`). Every entry is one chain of fused
    multiply-adds over the rows of ``w`` in order, so the batch-parallel and the stepwise
    kernels, which tile the product differently, agree bit for bit."""
    r = 0
    while r < rows:
        if rows - r >= 8:
            matmul_8_rows(out, o_row + r, o_col, a, t, b0 + r, w, w_col, m)
            r += 8
        elif rows - r >= 4:
            matmul_4_rows(out, o_row + r, o_col, a, t, b0 + r, w, w_col, m)
            r += 4
        else:
            matmul_1_row(out, o_row + r, o_col, a, t, b0 + r, w, w_col, m)
            r += 1


@njit(inline="always")
def _recurrent_grad(gx, t, b0, rows, w_rec, n0, m, out, o_row, o_col):
    """``out[o_row + r, o_col : o_col + m] = gx[t, b0 + r] @ w_rec[:, n0 : n0 + m]`` for
    ``r < rows`` (zero past the last step): how ``gx_{t+1}`` reaches the spikes of step
    ``t`` through the recurrent weights."""
    if t >= gx.shape[0]:
        for r in range(rows):
            for k in range(m):
                out[o_row + r, o_col + k] = 0.0
        return
    _rows_times_matrix(gx, t, b0, rows, w_rec, n0, m, out, o_row, o_col)


@njit
def _recurrent_adjoint_block(
    t, b, n0, m, grad_z, h, i1, v0, w_rec, am, dd, ll, th, v_reset, reset_code, sg_code,
    alpha, smooth, detach, param_grads, gx, gvb, gib, gz_buf, bufs, acc,
):  # fmt: skip
    """Reverse step ``t`` of neurons ``n0:n0+m`` of row ``b``: ``gx_{t+1}`` reaches the spikes
    of step ``t`` through ``w_rec``, then the LIF adjoint; dL/dx_t is written to ``gx``.
    ``gz_buf`` (1, m) is scratch for dL/dz_t."""
    _recurrent_grad(gx, t + 1, b, 1, w_rec, n0, m, gz_buf, 0, 0)
    gzb = gz_buf[0]
    gzt = grad_z[t, b, n0 : n0 + m]
    for k in range(m):
        gzb[k] = gzt[k] + gzb[k]
    _adjoint_block_at(
        t, b, n0, m, gzb, gx[t, b, n0 : n0 + m], h, i1, v0, am, dd, ll, th, v_reset, reset_code,
        sg_code, alpha, smooth, detach, param_grads, gvb, gib, bufs, acc,
    )  # fmt: skip


def _lif_recurrent_backward_stepwise(
    grad_z, h, i1, v0, w_rec, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha,
    smooth, detach, param_grads, gx, gv, gi, gz_rec, g_am, g_decay, g_vth, g_vleak,
):  # fmt: skip
    """BPTT through the recurrent LIF. The input gradient ``gx_{t+1}`` reaches the spikes of
    step ``t`` through ``gx_{t+1} @ w_rec``, computed per block of neurons inside the same
    parallel region as the adjoint step (one region per step). On return ``gz_rec`` holds
    ``gx_0 @ w_rec``, the gradient of the initial spikes."""
    n_steps, batch, n = grad_z.shape
    nblk = (n + BLOCK - 1) // BLOCK
    for t in range(n_steps - 1, -1, -1):
        for c in prange(batch * nblk):
            b, n0, n1 = _chunk(c, nblk, n)
            m = n1 - n0
            bufs = _rows(7, m, h.dtype)
            gzb = _rows(1, m, h.dtype)
            acc = _accumulators(1, m)[0]
            _recurrent_adjoint_block(
                t, b, n0, m, grad_z, h, i1, v0, w_rec, a_m[n0:n1], decay_s[n0:n1], v_leak[n0:n1],
                v_th[n0:n1], v_reset, reset_code, sg_code, alpha, smooth, detach, param_grads,
                gx, gv[b, n0:n1], gi[b, n0:n1], gzb, bufs, acc,
            )  # fmt: skip
            if param_grads:
                _flush_param_grads(acc, b, n0, m, g_am, g_decay, g_vth, g_vleak)
    for c in prange(batch * nblk):
        b, n0, n1 = _chunk(c, nblk, n)
        _recurrent_grad(gx, np.int64(0), b, 1, w_rec, n0, n1 - n0, gz_rec, b, n0)


#: Batch rows processed together by the batch-parallel recurrent backward kernel: each row
#: of ``w_rec`` is loaded once per group for the recurrent gradient of all its rows.
ROW_GROUP = 8


def _lif_recurrent_backward_group(
    b0, b1, grad_z, h, i1, v0, w_rec, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code,
    alpha, smooth, detach, param_grads, gx, gv, gi, gz_rec, g_am, g_decay, g_vth, g_vleak,
):  # fmt: skip
    """Batch rows ``b0 .. b1 - 1`` of the recurrent LIF backward pass (a work item of
    :data:`lif_recurrent_backward`; groups of up to :data:`ROW_GROUP` rows share each load of
    a row of ``w_rec`` for their recurrent gradients)."""
    n_steps, batch, n = grad_z.shape
    rows = b1 - b0
    am, dd, ll, th = a_m.copy(), decay_s.copy(), v_leak.copy(), v_th.copy()
    gvb, gib = gv[b0 : b0 + rows].copy(), gi[b0 : b0 + rows].copy()
    bufs = _rows(7, n, h.dtype)
    grb = _rows(rows, n, h.dtype)
    acc = _accumulators(rows, n if param_grads else 0)
    for t in range(n_steps - 1, -1, -1):
        for r in range(rows):
            _prefetch_step(grad_z, t - 1, b0 + r, 0, n, False)
            _prefetch_step(h, t - 1, b0 + r, 0, n, False)
            _prefetch_step(gx, t - 1, b0 + r, 0, n, True)
        _recurrent_grad(gx, t + 1, b0, rows, w_rec, 0, n, grb, 0, 0)
        for r in range(rows):
            b = b0 + r
            gzb = grb[r]
            for k in range(n):
                gzb[k] = grad_z[t, b, k] + gzb[k]
            _adjoint_block_at(
                t, b, 0, n, gzb, gx[t, b], h, i1, v0, am, dd, ll, th, v_reset, reset_code,
                sg_code, alpha, smooth, detach, param_grads, gvb[r], gib[r], bufs, acc[r],
            )  # fmt: skip
    _recurrent_grad(gx, np.int64(0), b0, rows, w_rec, 0, n, grb, 0, 0)
    for r in range(rows):
        b = b0 + r
        _store_range(gv[b], np.int64(0), gvb[r], n)
        _store_range(gi[b], np.int64(0), gib[r], n)
        _store_range(gz_rec[b], np.int64(0), grb[r], n)
        if param_grads:
            _flush_param_grads(acc[r], b, 0, n, g_am, g_decay, g_vth, g_vleak)


# --- leaky integrator ---------------------------------------------------------------------


def _li_forward_item(
    e0, e1, x, a_m, decay_s, v_leak, v, i, v_out, i1_out, i_out, store_v, store_i1, store_i
):  # fmt: skip
    """Leaky integrator over all steps, elements ``e0 .. e1 - 1`` of the flattened (B*N)
    axis (a work item of :func:`li_forward`, which flattens its arguments): ``x``, ``v_out``,
    ``i1_out``, ``i_out`` are (T, B*N) and the parameters and the state (B*N,)."""
    m = e1 - e0
    am, dd, ll = a_m[e0:e1], decay_s[e0:e1], v_leak[e0:e1]
    vv, ii = v[e0:e1].copy(), i[e0:e1].copy()
    i1b = np.empty(m, x.dtype)
    for t in range(x.shape[0]):
        xt = x[t, e0:e1]
        for k in range(m):
            h, i1, i_next = membrane_step(vv[k], ii[k], xt[k], am[k], dd[k], ll[k])
            vv[k] = h
            ii[k] = i_next
            i1b[k] = i1
        if store_v:
            _store_range(v_out[t], e0, vv, m)
        if store_i1:
            _store_range(i1_out[t], e0, i1b, m)
        if store_i:
            _store_range(i_out[t], e0, ii, m)
    _store_range(v, e0, vv, m)
    _store_range(i, e0, ii, m)


def _li_backward_item(
    e0, e1, grad_v, v_out, i1, v0, a_m, decay_s, v_leak, param_grads, gx, gv, gi, g_am,
    g_decay, g_vleak,
):  # fmt: skip
    """BPTT through the leaky integrator, elements ``e0 .. e1 - 1`` of the flattened (B*N)
    axis (a work item of :func:`li_backward`, which flattens its arguments: (T, B*N) and
    (B*N,)); ``gv``, ``gi`` leave as initial-state gradients."""
    m = e1 - e0
    am, dd, ll = a_m[e0:e1], decay_s[e0:e1], v_leak[e0:e1]
    gvb, gib = gv[e0:e1].copy(), gi[e0:e1].copy()
    g_tot, gi_in = np.empty(m, grad_v.dtype), np.empty(m, grad_v.dtype)
    acc = _accumulators(1, m if param_grads else 0)[0]
    for t in range(grad_v.shape[0] - 1, -1, -1):
        gvt, gxt = grad_v[t, e0:e1], gx[t, e0:e1]
        for k in range(m):
            g_tot[k] = gvb[k] + gvt[k]
            gi_in[k] = gib[k]
            gvb[k], gib[k] = li_adjoint_step(g_tot[k], gib[k], am[k], dd[k])
        for k in range(m):  # after the loop: gxt may be gvt (see _adjoint_row)
            gxt[k] = gib[k]
        if param_grads:
            vp = v_out[t - 1, e0:e1] if t > 0 else v0[e0:e1]
            i1t = i1[t, e0:e1]
            for k in range(m):
                acc[0, k] += g_tot[k] * ((ll[k] - vp[k]) + i1t[k])
                acc[1, k] += gi_in[k] * i1t[k]
                acc[3, k] += g_tot[k] * am[k]
    _store_range(gv, e0, gvb, m)
    _store_range(gi, e0, gib, m)
    if param_grads:
        _add_range(g_am, e0, acc[0], m)
        _add_range(g_decay, e0, acc[1], m)
        _add_range(g_vleak, e0, acc[3], m)


# --- recurrent weight gradient ------------------------------------------------------------


#: Fixed number of chunks of (step, batch row) pairs of the recurrent weight gradient, each
#: summing into a private partial gradient (independent of the thread count, so the
#: summation order, and thus the result, is too).
WEIGHT_GRAD_CHUNKS = 8
#: Largest total size in bytes of those partial gradients; above it, work items own blocks
#: of presynaptic neurons instead.
WEIGHT_GRAD_PARTIALS_BUDGET = 32 << 20


@njit(inline="always")
def _previous_spike(h, bits, z0, t, b, j, v_th, sg_code, alpha, smooth):
    """``z_{t-1}[b, j]`` from the tape (``z_{-1} = z0``): recomputed from ``h``, or read from
    the spike ``bits`` (T, B, ceil(N / 8)) of a compact tape when ``h`` is empty."""
    if t == 0:
        return z0[b, j]
    if h.shape[0] == 0:
        return float((bits[t - 1, b, j >> 3] >> (j & 7)) & 1)
    return _spike(h[t - 1, b, j] - v_th[j], sg_code, alpha, smooth)


def _weight_grad_chunk(c, _c_end, gx, h, bits, v_th, z0, sg_code, alpha, smooth, partials):
    """``partials[c, j, :] = sum z_{t-1}[b, j] * gx[t, b, :]`` over the (t, b) pairs of chunk
    ``c`` (``_c_end`` = c + 1), event-driven: per (t, b) pair, the spikes of
    step ``t - 1`` (from ``z0``, the spike ``bits`` or ``h``), their indices (a branch-free
    compaction), then two events at a time share each load of the ``gx`` row. Every entry of
    a partial still sums its terms in (t, b) order."""
    n_steps, batch, n = gx.shape
    n_rows = n_steps * batch
    chunks = partials.shape[0]
    per_chunk = (n_rows + chunks - 1) // chunks
    z_row = np.empty(n, gx.dtype)
    fired = np.empty(n, np.int64)
    _zero_partial(partials, c)
    for row in range(c * per_chunk, min((c + 1) * per_chunk, n_rows)):
        t = row // batch
        b = row % batch
        if t == 0:
            for j in range(n):
                z_row[j] = z0[b, j]
        elif h.shape[0] == 0:
            for j in range(n):
                z_row[j] = (bits[t - 1, b, j >> 3] >> (j & 7)) & 1
        else:
            _spike_block(h[t - 1, b], v_th, n, sg_code, alpha, smooth, z_row)
        count = 0
        for j in range(n):
            fired[count] = j
            count += 1 if z_row[j] != 0.0 else 0
        e = 0
        while e + 2 <= count:
            j0, j1 = fired[e], fired[e + 1]
            a0, a1 = z_row[j0], z_row[j1]
            for k in range(n):
                g = gx[t, b, k]
                partials[c, j0, k] += a0 * g
                partials[c, j1, k] += a1 * g
            e += 2
        if e < count:
            j0 = fired[e]
            a0 = z_row[j0]
            for k in range(n):
                partials[c, j0, k] += a0 * gx[t, b, k]


@njit
def _zero_partial(partials, c):
    """Zero ``partials[c]``: each work item zeroes its own partial (in parallel, and on
    the thread that then fills it) rather than the caller zeroing all of them."""
    for j in range(partials.shape[1]):
        for k in range(partials.shape[2]):
            partials[c, j, k] = 0.0


#: Rows of the partials per work item of :data:`sum_partials`: the item's block of ``out``
#: is this many columns wide (a 64-byte cache line of float32 per row of ``out``).
SUM_BLOCK = 16
#: Columns of ``out`` per pass of a :data:`sum_partials` work item (a (16, 256) float32
#: block of sums is 16 KB, half of the L1 cache).
SUM_TILE = 256


def _sum_partials_columns(j0, j1, partials, out):
    """``out[:, j0:j1] += partials[:, j0:j1].sum(0).T``, the partials summed in chunk order
    (``out + (p_0 + p_1 + ...)``), for :data:`SUM_TILE` columns of ``out`` at a time: the
    sums of a (j1 - j0, SUM_TILE) tile are formed in a local block (vectorised), then
    added to ``out`` row by row, each row's j1 - j0 entries contiguous."""
    chunks, _, n = partials.shape
    width = j1 - j0
    block = np.empty((width, SUM_TILE), partials.dtype)
    for k0 in range(0, n, SUM_TILE):
        m = min(SUM_TILE, n - k0)
        for q in range(width):
            row = block[q]
            first = partials[0, j0 + q, k0 : k0 + m]
            for k in range(m):
                row[k] = first[k]
            for c in range(1, chunks):
                part = partials[c, j0 + q, k0 : k0 + m]
                for k in range(m):
                    row[k] += part[k]
        for k in range(m):
            dst = out[k0 + k, j0:j1]
            for q in range(width):
                dst[q] += block[q, k]


def _weight_grad_columns(j0, j1, gx, h, bits, v_th, z0, sg_code, alpha, smooth, grad_w_t):
    """``grad_w_t[j, :] += sum_{t,b} z_{t-1}[b, j] * gx[t, b, :]`` for the presynaptic
    neurons ``j0 <= j < j1`` (work items of 16 for layers too wide for per-chunk partials)."""
    n_steps, batch, n = gx.shape
    for t in range(n_steps):
        for b in range(batch):
            for j in range(j0, j1):
                z = _previous_spike(h, bits, z0, t, b, j, v_th, sg_code, alpha, smooth)
                if z != 0.0:
                    for k in range(n):
                        grad_w_t[j, k] += z * gx[t, b, k]


def _feed_forward_work(args) -> int:
    return args[0].size  # x or grad_z: (T, B, N), one parallel region over all steps


def _flat_work(args) -> int:
    """Work of a kernel parallel over chunks of the flattened (B*N) axis
    (:func:`_flat_bounds`): none worth a parallel region unless there are at least two
    full chunks: a smaller problem runs as fast serially, and its parallel variants would
    only add compile time."""
    x = args[0]  # x or grad_z, (T, B*N)
    if x.shape[1] < 2 * FLAT_CHUNK_MIN:
        return 0
    return x.size


def _recurrent_work(args) -> int:
    n_steps, batch, n = args[0].shape  # B*N neurons with up to N inputs each, per step
    return n_steps * batch * n * (1 + n // 8)


def parallel_by_work(work):
    """``parallel(args)`` for :class:`~numbaspike.compiler.parallel_runner.ItemKernel`: at least
    :data:`SERIAL_WORK` of ``work(args)``, and parallel regions allowed
    (:func:`numbaspike.runtime.threads.parallel_allowed`)."""

    def parallel(args) -> bool:
        return work(args) >= SERIAL_WORK and parallel_allowed()

    return parallel


def _flat_bounds(args):
    """The flattened (B*N) axis of a feed-forward kernel (its first argument is (T, B*N)) in
    about :data:`FLAT_CHUNKS` chunks of :data:`FLAT_CHUNK_MIN` .. :data:`FLAT_CHUNK_MAX`
    elements, a multiple of 16 (no two chunks share a cache line)."""
    size = args[0].shape[1]
    chunk = min(FLAT_CHUNK_MAX, max(FLAT_CHUNK_MIN, size // FLAT_CHUNKS))
    return item_ranges(size, (chunk + 15) // 16 * 16)


def _row_group_bounds(args):
    """Groups of up to :data:`ROW_GROUP` batch rows, at least 4 groups to share out."""
    batch = args[0].shape[1]
    return item_ranges(batch, max(1, min(ROW_GROUP, batch // 4)))


#: Mode arguments compiled in as constants for the values a training step uses
#: (:class:`~numbaspike.compiler.parallel_runner.WorkItem`): a program in these modes compiles only their code;
#: other modes share one general compilation. Training stores spikes and membranes but no
#: currents nor traces (simulation stores no membranes); the backward pass takes either
#: detach mode (Norse's recurrent step detaches the reset, its feed-forward step does not).
FORWARD_MODES = {
    "reset_code": (0,),
    "smooth": (False,),
    "store_z": (True,),
    "store_h": (True, False),  # training, simulation
    "store_i1": (False,),
    "store_trace": (False,),
}
BACKWARD_MODES = {
    "reset_code": (0,),
    "sg_code": (0,),
    "smooth": (False,),
    "detach": (False, True),
    "param_grads": (False,),
}

#: The kernels over the flattened (B*N) axis: (T, B*N) arrays, (B*N,) parameters and state,
#: as the functions below pass them.
lif_feed_forward_forward_flat = ItemKernel(
    _lif_feed_forward_forward_item, _flat_bounds, parallel_by_work(_flat_work), FORWARD_MODES
)
lif_feed_forward_backward_flat = ItemKernel(
    _lif_feed_forward_backward_item, _flat_bounds, parallel_by_work(_flat_work), BACKWARD_MODES
)
li_forward_flat = ItemKernel(
    _li_forward_item,
    _flat_bounds,
    parallel_by_work(_flat_work),
    {"store_v": (True,), "store_i1": (False,), "store_i": (False,)},
)
li_backward_flat = ItemKernel(
    _li_backward_item, _flat_bounds, parallel_by_work(_flat_work), {"param_grads": (False,)}
)


def _steps_by_elements(a: np.ndarray) -> np.ndarray:
    """A C-contiguous (T, B, N) array as a (T, B*N) view (an empty one as (0, 0))."""
    return _view_as(a, (a.shape[0], a.shape[1] * a.shape[2]))


def _elements(a: np.ndarray) -> np.ndarray:
    """A C-contiguous (B, N) array as a (B*N,) view."""
    return _view_as(a, (a.size,))


def _view_as(a: np.ndarray, shape: tuple) -> np.ndarray:
    """A view of ``a`` with ``shape``; raises if that would need a copy (the kernels write
    through these views)."""
    view = a.view()
    view.shape = shape
    return view


def _per_element(batch: int, *params: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-neuron values (N,) repeated for each of ``batch`` rows: (B*N,) each. Fresh
    arrays: B*N values per parameter, against the T*B*N steps of the kernel that reads them."""
    return tuple(np.tile(param, batch) for param in params)


# The (T, B, N) interface of the flat kernels. Their items neither gather per-neuron
# parameters nor reshape arrays, which keeps the cold compile short.


def lif_feed_forward_forward(
    x, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha, smooth, v, i, z_out,
    h_out, i1_out, v_out, i_out, store_z, store_h, store_i1, store_trace,
):  # fmt: skip
    """Feed-forward LIF over all steps of ``x`` (T, B, N): spikes, membranes before the
    reset, currents before the decay and the state traces to ``z_out``, ``h_out``,
    ``i1_out``, ``v_out``, ``i_out`` (each if its flag is set, otherwise an empty (0, 0, 0)
    array may be passed; ``z_out`` may be ``x``); the state ``v``, ``i`` (B, N) is updated
    in place; the parameters are per neuron, (N,). Runs
    :data:`lif_feed_forward_forward_flat`."""
    lif_feed_forward_forward_flat(
        _steps_by_elements(x), *_per_element(x.shape[1], a_m, decay_s, v_leak, v_th), v_reset,
        reset_code, sg_code, alpha, smooth, _elements(v), _elements(i),
        *map(_steps_by_elements, (z_out, h_out, i1_out, v_out, i_out)), store_z, store_h,
        store_i1, store_trace,
    )  # fmt: skip


def lif_feed_forward_backward(
    grad_z, h, i1, v0, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha, smooth,
    detach, param_grads, gx, gv, gi, g_am, g_decay, g_vth, g_vleak,
):  # fmt: skip
    """BPTT through the feed-forward LIF, (T, B, N) arrays as for
    :func:`lif_feed_forward_forward` (``gx`` may be ``grad_z``); ``gv``, ``gi`` (B, N) enter
    as the final-state adjoints and leave as the initial-state ones; with ``param_grads`` the
    (B, N) float64 ``g_*`` are accumulated into (otherwise they may be empty). Runs
    :data:`lif_feed_forward_backward_flat`."""
    lif_feed_forward_backward_flat(
        *map(_steps_by_elements, (grad_z, h, i1)), _elements(v0),
        *_per_element(grad_z.shape[1], a_m, decay_s, v_leak, v_th), v_reset, reset_code,
        sg_code, alpha, smooth, detach, param_grads, _steps_by_elements(gx),
        *map(_elements, (gv, gi, g_am, g_decay, g_vth, g_vleak)),
    )  # fmt: skip


def li_forward(x, a_m, decay_s, v_leak, v, i, v_out, i1_out, i_out, store_v, store_i1, store_i):
    """Leaky integrator over all steps of ``x`` (T, B, N): membranes to ``v_out``, the
    currents before the decay to ``i1_out`` and after it to ``i_out`` (each if its flag is
    set, otherwise an empty (0, 0, 0) array may be passed); ``v``, ``i`` (B, N) are updated
    in place; the parameters are per neuron, (N,). Runs :data:`li_forward_flat`."""
    li_forward_flat(
        _steps_by_elements(x), *_per_element(x.shape[1], a_m, decay_s, v_leak), _elements(v),
        _elements(i), *map(_steps_by_elements, (v_out, i1_out, i_out)), store_v, store_i1,
        store_i,
    )  # fmt: skip


def li_backward(
    grad_v, v_out, i1, v0, a_m, decay_s, v_leak, param_grads, gx, gv, gi, g_am, g_decay, g_vleak
):  # fmt: skip
    """BPTT through the leaky integrator, (T, B, N) arrays as for :func:`li_forward`; ``gv``,
    ``gi`` (B, N) enter as the final-state adjoints and leave as the initial-state ones;
    with ``param_grads`` the (B, N) float64 ``g_am``, ``g_decay``, ``g_vleak`` are
    accumulated into (otherwise they may be empty). Runs :data:`li_backward_flat`."""
    li_backward_flat(
        *map(_steps_by_elements, (grad_v, v_out, i1)), _elements(v0),
        *_per_element(grad_v.shape[1], a_m, decay_s, v_leak), param_grads,
        _steps_by_elements(gx), *map(_elements, (gv, gi, g_am, g_decay, g_vleak)),
    )  # fmt: skip


def _recurrent_kernel(name: str, stepwise_fn, rows: ItemKernel):
    """Serial for small problems; parallel over batch rows (``rows``: one region) when there
    are at least as many rows as threads; otherwise one parallel region per step over
    neuron blocks (``stepwise_fn``, its per-step work inline)."""
    stepwise = njit(parallel=True, cache=True)(stepwise_fn)

    def kernel(*args):
        n_steps, batch, _ = args[0].shape
        work = _recurrent_work(args)
        if work < SERIAL_WORK or not parallel_allowed():
            parallel = False
        elif batch >= get_num_threads():
            parallel = True
        elif work // n_steps >= STEPWISE_WORK:
            return stepwise(*args)
        else:
            parallel = False
        rows.run(parallel, *args)

    kernel.__name__ = name
    kernel.__doc__ = stepwise_fn.__doc__
    kernel.stepwise = stepwise
    kernel.rows = rows
    return kernel


lif_recurrent_forward = _recurrent_kernel(
    "lif_recurrent_forward",
    _lif_recurrent_forward_stepwise,
    ItemKernel(
        _lif_recurrent_forward_row,
        one_item_each(lambda args: args[0].shape[1]),  # a batch row each
        None,
        FORWARD_MODES,
    ),
)
lif_recurrent_backward = _recurrent_kernel(
    "lif_recurrent_backward",
    _lif_recurrent_backward_stepwise,
    ItemKernel(_lif_recurrent_backward_group, _row_group_bounds, None, BACKWARD_MODES),
)

_weight_grad_partials = ItemKernel(
    _weight_grad_chunk,
    one_item_each(lambda args: args[-1].shape[0]),  # a partial each
    parallel_by_work(_feed_forward_work),
    {"sg_code": (0,), "smooth": (False,)},
)
#: ``sum_partials(partials, out)``: ``out += partials.sum(0).T`` for ``partials`` (C, J, N)
#: and ``out`` (N, J), in chunk order. The partials of the event-driven weight gradients
#: are those of the transposed weights (an event adds a contiguous row); this sums them
#: straight into the gradient of ``W`` (also used by :mod:`.projection`). On the 2-core
#: reference machine, 8 partials, float32, alone: 165-255 us for the SHD input layer
#: ((700, 256) partials) and 60-100 us for its recurrent layer ((256, 256)), against
#: 413-437 us and 133 us for a sum by rows followed by NumPy's transposed add or copy.
sum_partials = ItemKernel(
    _sum_partials_columns,
    blocks_of(lambda args: args[0].shape[1], SUM_BLOCK),
    parallel_by_work(lambda args: args[0].size),
)
_weight_grad_by_columns = ItemKernel(
    _weight_grad_columns,
    blocks_of(lambda args: args[0].shape[2], 16),
    parallel_by_work(_feed_forward_work),
)


def recurrent_weight_grad(gx, h, bits, v_th, z0, sg_code, alpha, smooth, grad_w):
    """``grad_w[k, j] += sum_{t,b} gx[t, b, k] * z_{t-1}[b, j]`` (``grad_w`` (N, N) is the
    gradient of ``w_rec``), with the spikes recomputed from the tape (``z_{-1} = z0``);
    event-driven: only neurons that fired contribute.

    The (t, b) pairs are split into :data:`WEIGHT_GRAD_CHUNKS` fixed chunks with private
    partial gradients of ``w_rec.T`` (a neuron that fired adds a row of ``gx``), summed in
    chunk order and transposed into ``grad_w`` by :data:`sum_partials`; when those exceed
    :data:`WEIGHT_GRAD_PARTIALS_BUDGET`, work items own blocks of presynaptic neurons
    instead (into a transposed temporary). Either way no two threads write the same memory
    and the result does not depend on the thread count.
    """
    n_steps, batch, n = gx.shape
    chunks = max(1, min(WEIGHT_GRAD_CHUNKS, n_steps * batch))
    if chunks * n * n * grad_w.itemsize <= WEIGHT_GRAD_PARTIALS_BUDGET:
        partials = array_pool.empty((chunks, n, n), grad_w.dtype)
        _weight_grad_partials(gx, h, bits, v_th, z0, sg_code, alpha, smooth, partials)
        sum_partials(partials, grad_w)
    else:
        grad_w_t = np.zeros((n, n), grad_w.dtype)
        _weight_grad_by_columns(gx, h, bits, v_th, z0, sg_code, alpha, smooth, grad_w_t)
        grad_w += grad_w_t.T
