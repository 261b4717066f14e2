"""CPU kernels: parallel ``numba.njit`` loops around the scalar maths of :mod:`.math`.

One fused kernel per layer kind and direction. The time loop runs inside the kernel.
Feed-forward kernels are parallel over chunks of (batch, block of ``BLOCK`` neurons),
each chunk running all ``T`` steps with its state in registers/L1. Recurrent kernels
couple the neurons of a batch row from one step to the next: with at least as many batch
rows as threads they are parallel over rows (each row runs all steps, one parallel region
in all); with fewer rows (e.g. B = 1) they open one parallel region per step over blocks
of neurons. The recurrent current is event-driven: only the weights of neurons that
spiked in the previous step are read.

Each kernel is compiled twice from one Python function: with ``parallel=True`` and
as a serial, on-disk cached (``cache=True``) version in which ``prange`` is a plain
``range``. The public names are small dispatchers that run the serial version for
problems too small to repay opening a parallel region (:data:`SERIAL_WORK`); both give
bit-identical results, since no kernel reduces across threads.

Kernels trust their inputs: :mod:`numbaspike.functional` checks shapes, dtypes,
contiguity and finiteness once, and casts parameters to per-neuron arrays of the
working dtype, so each kernel compiles once per dtype. Output arrays that a call does
not need are passed with size 0 and a ``store_*`` flag of ``False``.
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

from . import math as _m

# Scalar device functions, compiled from the single source in kernels/math.py.
surrogate_grad = njit(cache=True)(_m.surrogate_grad)
surrogate_smooth = njit(cache=True)(_m.surrogate_smooth)
membrane_step = njit(cache=True)(_m.membrane_step)
reset_step = njit(cache=True)(_m.reset_step)
lif_adjoint_step = njit(cache=True)(_m.lif_adjoint_step)
li_adjoint_step = njit(cache=True)(_m.li_adjoint_step)

#: Neurons per parallel work item of the feed-forward kernels.
BLOCK = 256
#: Below this much work per parallel region (neuron-steps, or neuron-inputs for a recurrent
#: step), a kernel runs single-threaded: a parallel region costs tens of microseconds to
#: open, far more than tiny problems take, and much more when the machine is busy.
SERIAL_WORK = 1 << 16


@njit(cache=True)
def surrogate_grad_array(code, u, alpha, out):
    for k in range(u.shape[0]):
        out[k] = surrogate_grad(code, u[k], alpha)


@njit(cache=True)
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


def _lif_feed_forward_forward(
    x, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha, smooth,
    v, i, z_out, h_out, i1_out, v_out, i_out, store_z, store_h, store_i1, store_trace,
):  # fmt: skip
    """Feed-forward LIF over all steps; updates the state ``v``, ``i`` (B, N) in place."""
    n_steps, batch, n = x.shape
    nblk = (n + BLOCK - 1) // BLOCK
    for c in prange(batch * nblk):
        b, n0, n1 = _chunk(c, nblk, n)
        for t in range(n_steps):
            for k in range(n0, n1):
                h, i1, i_next = membrane_step(
                    v[b, k], i[b, k], x[t, b, k], a_m[k], decay_s[k], v_leak[k]
                )
                z = _spike(h - v_th[k], sg_code, alpha, smooth)
                v_new = reset_step(h, z, v_th[k], v_reset, reset_code, smooth)
                v[b, k] = v_new
                i[b, k] = i_next
                if store_z:
                    z_out[t, b, k] = z
                if store_h:
                    h_out[t, b, k] = h
                if store_i1:
                    i1_out[t, b, k] = i1
                if store_trace:
                    v_out[t, b, k] = v_new
                    i_out[t, b, k] = i_next


@njit(inline="always")
def _recurrent_forward_block(
    t, b, n0, n1, x, w_rec_t, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha,
    smooth, v, i, z_cur, z_next, rec, z_out, h_out, i1_out, v_out, i_out, store_z, store_h,
    store_i1, store_trace,
):  # fmt: skip
    """Step ``t`` of neurons ``n0:n1`` of batch row ``b``: the recurrent current from the spikes
    ``z_cur[b]`` of the previous step (event-driven: only rows of ``w_rec_t`` of neurons that
    fired are added), then the LIF update; the new spikes go to ``z_next[b, n0:n1]``."""
    n = x.shape[2]
    for k in range(n0, n1):
        rec[b, k] = 0.0
    for j in range(n):
        zj = z_cur[b, j]
        if zj != 0.0:
            for k in range(n0, n1):
                rec[b, k] += zj * w_rec_t[j, k]
    for k in range(n0, n1):
        h, i1, i_next = membrane_step(
            v[b, k], i[b, k], x[t, b, k] + rec[b, k], a_m[k], decay_s[k], v_leak[k]
        )
        z = _spike(h - v_th[k], sg_code, alpha, smooth)
        v_new = reset_step(h, z, v_th[k], v_reset, reset_code, smooth)
        v[b, k] = v_new
        i[b, k] = i_next
        z_next[b, k] = z
        if store_z:
            z_out[t, b, k] = z
        if store_h:
            h_out[t, b, k] = h
        if store_i1:
            i1_out[t, b, k] = i1
        if store_trace:
            v_out[t, b, k] = v_new
            i_out[t, b, k] = i_next


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
    z_next = np.empty_like(z_state)
    rec = np.zeros((batch, n), dtype=x.dtype)
    for t in range(n_steps):
        for c in prange(batch * nblk):
            b, n0, n1 = _chunk(c, nblk, n)
            _recurrent_forward_block(
                t, b, n0, n1, x, w_rec_t, a_m, decay_s, v_leak, v_th, v_reset, reset_code,
                sg_code, alpha, smooth, v, i, z_cur, z_next, rec, z_out, h_out, i1_out, v_out,
                i_out, store_z, store_h, store_i1, store_trace,
            )  # fmt: skip
        z_cur, z_next = z_next, z_cur
    z_state[:, :] = z_cur


def _lif_recurrent_forward_batchwise(
    x, w_rec_t, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha, smooth,
    v, i, z_state, z_out, h_out, i1_out, v_out, i_out, store_z, store_h, store_i1, store_trace,
):  # fmt: skip
    """As :func:`_lif_recurrent_forward_stepwise`, parallel over batch rows only, each running
    all steps: one parallel region in all, no barrier per step (batches of at least as many
    rows as threads)."""
    n_steps, batch, n = x.shape
    z_cur = z_state.copy()
    z_next = np.empty_like(z_state)
    rec = np.zeros((batch, n), dtype=x.dtype)
    for b in prange(batch):
        for t in range(n_steps):
            _recurrent_forward_block(
                t, b, 0, n, x, w_rec_t, a_m, decay_s, v_leak, v_th, v_reset, reset_code,
                sg_code, alpha, smooth, v, i, z_cur, z_next, rec, z_out, h_out, i1_out, v_out,
                i_out, store_z, store_h, store_i1, store_trace,
            )  # fmt: skip
            for k in range(n):
                z_cur[b, k] = z_next[b, k]
    z_state[:, :] = z_cur


@njit(inline="always")
def _lif_adjoint_neuron(
    t, b, k, grad_z_tbk, h, i1, v0, gv, gi, a_m, decay_s, v_leak, v_th, v_reset,
    reset_code, sg_code, alpha, smooth, detach, param_grads, g_am, g_decay, g_vth, g_vleak,
):  # fmt: skip
    """Reverse step of one neuron; returns ``(gv_prev, gi1)`` and accumulates parameter grads."""
    h_t = h[t, b, k]
    u = h_t - v_th[k]
    z = _spike(u, sg_code, alpha, smooth)
    s = surrogate_grad(sg_code, u, alpha)
    gv_prev, gi1, gh, g_th = lif_adjoint_step(
        gv, gi, grad_z_tbk, h_t, z, s, v_th[k], v_reset, a_m[k], decay_s[k], reset_code, detach
    )
    if param_grads:
        if t > 0:
            h_p = h[t - 1, b, k]
            z_p = _spike(h_p - v_th[k], sg_code, alpha, smooth)
            # rounded to the working dtype, as the forward pass stored it
            v_prev = h.dtype.type(reset_step(h_p, z_p, v_th[k], v_reset, reset_code, smooth))
        else:
            v_prev = v0[b, k]
        i1_t = i1[t, b, k]
        g_am[b, k] += gh * ((v_leak[k] - v_prev) + i1_t)
        g_decay[b, k] += gi * i1_t
        g_vth[b, k] += g_th
        g_vleak[b, k] += gh * a_m[k]
    return gv_prev, gi1


def _lif_feed_forward_backward(
    grad_z, h, i1, v0, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha, smooth,
    detach, param_grads, gx, gv, gi, g_am, g_decay, g_vth, g_vleak,
):  # fmt: skip
    """BPTT through the feed-forward LIF. ``gv``, ``gi`` (B, N) enter as the adjoints of the
    final state (normally 0) and leave as the gradients of the initial state."""
    n_steps, batch, n = grad_z.shape
    nblk = (n + BLOCK - 1) // BLOCK
    for c in prange(batch * nblk):
        b, n0, n1 = _chunk(c, nblk, n)
        for t in range(n_steps - 1, -1, -1):
            for k in range(n0, n1):
                gv_prev, gi1 = _lif_adjoint_neuron(
                    t, b, k, grad_z[t, b, k], h, i1, v0, gv[b, k], gi[b, k], a_m, decay_s,
                    v_leak, v_th, v_reset, reset_code, sg_code, alpha, smooth, detach,
                    param_grads, g_am, g_decay, g_vth, g_vleak,
                )  # fmt: skip
                gx[t, b, k] = gi1
                gv[b, k] = gv_prev
                gi[b, k] = gi1


@njit(inline="always")
def _recurrent_grad_block(gx, t, b, n0, n1, w_rec, gz_rec):
    """``gz_rec[b, n0:n1] = gx[t, b, :] @ w_rec[:, n0:n1]`` (zero when ``t`` is past the end)."""
    for k in range(n0, n1):
        gz_rec[b, k] = 0.0
    if t < gx.shape[0]:
        for m in range(w_rec.shape[0]):
            g = gx[t, b, m]
            if g != 0.0:
                for k in range(n0, n1):
                    gz_rec[b, k] += g * w_rec[m, k]


@njit(inline="always")
def _recurrent_adjoint_block(
    t, b, n0, n1, grad_z, h, i1, v0, w_rec, a_m, decay_s, v_leak, v_th, v_reset, reset_code,
    sg_code, alpha, smooth, detach, param_grads, gx, gv, gi, gz_rec, g_am, g_decay, g_vth, g_vleak,
):  # fmt: skip
    """Reverse step ``t`` of neurons ``n0:n1`` of batch row ``b``, after sending ``gx_{t+1}``
    back to the spikes of step ``t`` through ``w_rec``."""
    _recurrent_grad_block(gx, t + 1, b, n0, n1, w_rec, gz_rec)
    for k in range(n0, n1):
        gv_prev, gi1 = _lif_adjoint_neuron(
            t, b, k, grad_z[t, b, k] + gz_rec[b, k], h, i1, v0, gv[b, k], gi[b, k],
            a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha, smooth,
            detach, param_grads, g_am, g_decay, g_vth, g_vleak,
        )  # fmt: skip
        gx[t, b, k] = gi1
        gv[b, k] = gv_prev
        gi[b, k] = gi1


def _lif_recurrent_backward_stepwise(
    grad_z, h, i1, v0, w_rec, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha,
    smooth, detach, param_grads, gx, gv, gi, gz_rec, g_am, g_decay, g_vth, g_vleak,
):  # fmt: skip
    """BPTT through the recurrent LIF. The input gradient ``gx_{t+1}`` reaches the spikes of
    step ``t`` through ``gz_rec = gx_{t+1} @ w_rec``, computed per block of neurons inside the
    same parallel region as the adjoint step (one region per step). On return ``gz_rec``
    holds ``gx_0 @ w_rec``, the gradient of the initial spikes."""
    n_steps, batch, n = grad_z.shape
    nblk = (n + BLOCK - 1) // BLOCK
    for t in range(n_steps - 1, -1, -1):
        for c in prange(batch * nblk):
            b, n0, n1 = _chunk(c, nblk, n)
            _recurrent_adjoint_block(
                t, b, n0, n1, grad_z, h, i1, v0, w_rec, a_m, decay_s, v_leak, v_th, v_reset,
                reset_code, sg_code, alpha, smooth, detach, param_grads, gx, gv, gi, gz_rec,
                g_am, g_decay, g_vth, g_vleak,
            )  # fmt: skip
    for c in prange(batch * nblk):
        b, n0, n1 = _chunk(c, nblk, n)
        _recurrent_grad_block(gx, 0, b, n0, n1, w_rec, gz_rec)


def _lif_recurrent_backward_batchwise(
    grad_z, h, i1, v0, w_rec, a_m, decay_s, v_leak, v_th, v_reset, reset_code, sg_code, alpha,
    smooth, detach, param_grads, gx, gv, gi, gz_rec, g_am, g_decay, g_vth, g_vleak,
):  # fmt: skip
    """As :func:`_lif_recurrent_backward_stepwise`, parallel over batch rows only."""
    n_steps, batch, n = grad_z.shape
    for b in prange(batch):
        for t in range(n_steps - 1, -1, -1):
            _recurrent_adjoint_block(
                t, b, 0, n, grad_z, h, i1, v0, w_rec, a_m, decay_s, v_leak, v_th, v_reset,
                reset_code, sg_code, alpha, smooth, detach, param_grads, gx, gv, gi, gz_rec,
                g_am, g_decay, g_vth, g_vleak,
            )  # fmt: skip
        _recurrent_grad_block(gx, 0, b, 0, n, w_rec, gz_rec)


def _li_forward(x, a_m, decay_s, v_leak, v, i, v_out, i1_out, i_out, store_v, store_i1, store_i):
    """Leaky integrator over all steps; output is the membrane ``v`` of every step."""
    n_steps, batch, n = x.shape
    nblk = (n + BLOCK - 1) // BLOCK
    for c in prange(batch * nblk):
        b, n0, n1 = _chunk(c, nblk, n)
        for t in range(n_steps):
            for k in range(n0, n1):
                h, i1, i_next = membrane_step(
                    v[b, k], i[b, k], x[t, b, k], a_m[k], decay_s[k], v_leak[k]
                )
                v[b, k] = h
                i[b, k] = i_next
                if store_v:
                    v_out[t, b, k] = h
                if store_i1:
                    i1_out[t, b, k] = i1
                if store_i:
                    i_out[t, b, k] = i_next


def _li_backward(
    grad_v, v_out, i1, v0, a_m, decay_s, v_leak, param_grads, gx, gv, gi, g_am, g_decay, g_vleak
):
    """BPTT through the leaky integrator; ``gv``, ``gi`` leave as initial-state gradients."""
    n_steps, batch, n = grad_v.shape
    nblk = (n + BLOCK - 1) // BLOCK
    for c in prange(batch * nblk):
        b, n0, n1 = _chunk(c, nblk, n)
        for t in range(n_steps - 1, -1, -1):
            for k in range(n0, n1):
                g_v = gv[b, k] + grad_v[t, b, k]
                gv_prev, gi1 = li_adjoint_step(g_v, gi[b, k], a_m[k], decay_s[k])
                if param_grads:
                    v_prev = v_out[t - 1, b, k] if t > 0 else v0[b, k]
                    i1_t = i1[t, b, k]
                    g_am[b, k] += g_v * ((v_leak[k] - v_prev) + i1_t)
                    g_decay[b, k] += gi[b, k] * i1_t
                    g_vleak[b, k] += g_v * a_m[k]
                gx[t, b, k] = gi1
                gv[b, k] = gv_prev
                gi[b, k] = gi1


def _feed_forward_work(args) -> int:
    return args[0].size  # x or grad_z: (T, B, N), one parallel region over all steps


def _recurrent_work(args) -> int:
    n_steps, batch, n = args[0].shape  # B*N neurons with up to N inputs each, per step
    return n_steps * batch * n * (1 + n // 8)


def _pair(fn, work):
    """A dispatcher over the parallel and the cached serial compilation of ``fn``."""
    parallel = njit(parallel=True)(fn)
    serial = njit(cache=True)(fn)

    def kernel(*args):
        return (parallel if work(args) >= SERIAL_WORK else serial)(*args)

    kernel.__name__ = fn.__name__.lstrip("_")
    kernel.__doc__ = fn.__doc__
    kernel.parallel = parallel
    kernel.serial = serial
    return kernel


lif_feed_forward_forward = _pair(_lif_feed_forward_forward, _feed_forward_work)


def _recurrent_pair(stepwise_fn, batchwise_fn):
    """Serial for small problems; parallel over batch rows (one region) when there are at
    least as many rows as threads; otherwise one parallel region per step over neuron blocks."""
    batchwise = njit(parallel=True)(batchwise_fn)
    stepwise = njit(parallel=True)(stepwise_fn)
    serial = njit(cache=True)(batchwise_fn)

    def kernel(*args):
        if _recurrent_work(args) < SERIAL_WORK:
            return serial(*args)
        if args[0].shape[1] >= get_num_threads():
            return batchwise(*args)
        return stepwise(*args)

    kernel.__name__ = batchwise_fn.__name__.replace("_batchwise", "").lstrip("_")
    kernel.__doc__ = stepwise_fn.__doc__
    kernel.parallel, kernel.stepwise, kernel.serial = batchwise, stepwise, serial
    return kernel


lif_recurrent_forward = _recurrent_pair(
    _lif_recurrent_forward_stepwise, _lif_recurrent_forward_batchwise
)
lif_feed_forward_backward = _pair(_lif_feed_forward_backward, _feed_forward_work)
lif_recurrent_backward = _recurrent_pair(
    _lif_recurrent_backward_stepwise, _lif_recurrent_backward_batchwise
)
li_forward = _pair(_li_forward, _feed_forward_work)
li_backward = _pair(_li_backward, _feed_forward_work)


def _recurrent_weight_grad(gx, h, v_th, z0, sg_code, alpha, smooth, grad_w_t):
    """``grad_w_t[j, :] += sum_{t,b} z_{t-1}[b, j] * gx[t, b, :]`` with the spikes recomputed
    from the tape (``z_{-1} = z0``); event-driven: only neurons that fired contribute.

    Work items own blocks of presynaptic neurons ``j``, so no two threads write the same row
    and the result does not depend on the thread count.
    """
    n_steps, batch, n = gx.shape
    n_blocks = (n + 15) // 16
    for blk in prange(n_blocks):
        j0 = blk * 16
        j1 = min(j0 + 16, n)
        for t in range(n_steps):
            for b in range(batch):
                for j in range(j0, j1):
                    if t == 0:
                        z = z0[b, j]
                    else:
                        z = _spike(h[t - 1, b, j] - v_th[j], sg_code, alpha, smooth)
                    if z != 0.0:
                        for k in range(n):
                            grad_w_t[j, k] += z * gx[t, b, k]


recurrent_weight_grad = _pair(_recurrent_weight_grad, _feed_forward_work)
