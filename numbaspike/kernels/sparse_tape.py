r"""Sparse backward pass of the LIF layer with a compact tape (CPU kernels).

Perez-Nieves & Goodman (2021), "Sparse Spiking Gradient Descent", NeurIPS 34: most
neuron-steps have a membrane far from threshold, where the surrogate derivative
:math:`s(h_t - v_{th})` is tiny. Treating it as zero below a tolerance,

.. math::

    \tilde s(u) = s(u)\,[\,s(u) > \text{tol}\cdot s(0)\,],

the backward pass only needs, for every neuron-step, its spike :math:`z_t` (one bit) and, for
the *active* ones (:math:`\tilde s \neq 0`), the membrane :math:`h_t`. The total gradient
:math:`g_{z,t}` of a spike enters BPTT only multiplied by :math:`\tilde s` (see
:func:`numbaspike.kernels.math.lif_adjoint_step`), so the recurrent term
:math:`(g_{x,t+1} W_{rec})_j` is computed for active neurons only: a dot product per active
neuron-step instead of a dense (B, N) x (N, N) product per step.

Tape layout, for (T, B, N) neuron-steps, rows ``r = t * B + b``:

* ``bits`` (T, B, ceil(N / 8)) uint8: bit ``j % 8`` of byte ``j // 8`` is :math:`z_t[b, j]`;
* ``row_ptr`` (T * B + 1,) int64, ``cols`` (nnz,) int32, ``h`` (nnz,): the active
  neuron-steps of row ``r`` are ``cols[row_ptr[r]:row_ptr[r + 1]]`` (increasing) with their
  membranes ``h[...]``.

Every surrogate is even and non-increasing in ``|u|``, so :math:`s(u) > \text{tol}\cdot s(0)`
is the band ``|h - v_th| < band`` (:func:`numbaspike.compact_tape.activity_band`); the kernels
test the band, which vectorises.
"""

from __future__ import annotations

import numpy as np

from ..compiler.intrinsics import WORD, popcount, trailing_zeros
from ..compiler.mode_pruning import njit
from ..compiler.parallel_runner import ItemKernel, one_item_each, parts_of
from .cpu import (
    _adjoint_row,
    _prefetch_step,
    _store_range,
    parallel_by_work,
    surrogate_grad,
)


@njit(inline="always")
def _row_words(h, t, b, v_th, band, j0, width):
    """Spike and active masks of neurons ``j0 .. j0 + width - 1`` of row (t, b)."""
    spikes = np.uint64(0)
    active = np.uint64(0)
    ht, th = h[t, b, j0 : j0 + width], v_th[j0 : j0 + width]
    for k in range(width):
        u = ht[k] - th[k]
        spikes |= np.uint64(u > 0.0) << np.uint64(k)
        active |= np.uint64(abs(u) < band) << np.uint64(k)
    return spikes, active


def _pack_rows(r0, r1, h, v_th, band, t0, bits, masks, counts):
    """For the rows ``r0 <= r = t * B + b < r1`` of the chunk ``h`` (Tc, B, N): the spikes
    ``h > v_th`` to ``bits[t0 + t, b]`` (8 per byte), the active neuron-steps
    (``|h - v_th| < band``) to the 64-bit words ``masks[r]`` and their number to ``counts[r]``.
    Branch-free loops of fixed length, which vectorise."""
    batch, n = h.shape[1], h.shape[2]
    n_bytes = bits.shape[2]
    for r in range(r0, r1):
        t = r // batch
        b = r % batch
        count = 0
        for w in range(masks.shape[1]):
            j0 = w * WORD
            if j0 + WORD <= n:
                spikes, active = _row_words(h, t, b, v_th, band, j0, WORD)
            else:
                spikes, active = _row_words(h, t, b, v_th, band, j0, n - j0)
            masks[r, w] = active
            count += popcount(active)
            for q in range(min(8, n_bytes - 8 * w)):
                bits[t0 + t, b, 8 * w + q] = np.uint8(
                    (spikes >> np.uint64(8 * q)) & np.uint64(255)
                )
        counts[r] = count


def _fill_active(r0, r1, h, masks, row_ptr, first_row, cols, values):
    """Indices and membranes of the active neuron-steps (the set bits of ``masks``) of the
    rows ``r0 .. r1 - 1`` of the chunk ``h``; row ``r`` starts at
    ``row_ptr[first_row + r] - row_ptr[first_row]``."""
    batch = h.shape[1]
    base = row_ptr[first_row]
    for r in range(r0, r1):
        t = r // batch
        b = r % batch
        e = row_ptr[first_row + r] - base
        for w in range(masks.shape[1]):
            word = masks[r, w]
            while word:
                j = w * WORD + trailing_zeros(word)
                cols[e] = j
                values[e] = h[t, b, j]
                e += 1
                word &= word - np.uint64(1)


#: Fixed number of work items (blocks of (step, batch row) rows) of the packing kernels.
ROW_ITEMS = 64


_step_row_bounds = parts_of(lambda args: args[0].shape[0] * args[0].shape[1], ROW_ITEMS)
_by_size = parallel_by_work(lambda args: args[0].size)
pack_rows = ItemKernel(_pack_rows, _step_row_bounds, _by_size)
fill_active = ItemKernel(_fill_active, _step_row_bounds, _by_size)


@njit(fastmath={"contract", "reassoc"})
def _dot_row(a, t, b, w_t, j):
    """``sum_k a[t, b, k] * w_t[j, k]`` (a vectorised reduction; not inlined, so that it keeps
    its own fast-math flags)."""
    total = 0.0
    for k in range(w_t.shape[1]):
        total += a[t, b, k] * w_t[j, k]
    return total


def _lif_sparse_backward(
    b, _b_end, grad_z, bits, row_ptr, cols, h_active, w_rec_t, a_m, decay_s, v_th, v_reset,
    reset_code, sg_code, alpha, detach, gx, gv, gi, gz_rec,
):  # fmt: skip
    """BPTT through a (recurrent, if ``w_rec_t`` is (N, N); else (0, 0)) LIF layer from the
    compact tape. ``gv``, ``gi`` (B, N) enter as the final-state adjoints and leave as the
    initial-state gradients; ``gz_rec`` (B, N) receives ``gx_0 @ w_rec`` (recurrent only).
    Batch row ``b`` (``_b_end`` = b + 1), all steps: a work item of
    :data:`lif_sparse_backward`."""
    n_steps, batch, n = grad_z.shape
    recurrent = w_rec_t.shape[0] > 0
    am, dd, th = a_m.copy(), decay_s.copy(), v_th.copy()
    gvb, gib = gv[b].copy(), gi[b].copy()
    hb = np.empty(n, grad_z.dtype)
    sb = np.zeros(n, grad_z.dtype)
    gzb = np.empty(n, grad_z.dtype)
    scratch = np.empty((4, n), grad_z.dtype)
    for t in range(n_steps - 1, -1, -1):
        _prefetch_step(grad_z, t - 1, b, 0, n, False)
        _prefetch_step(gx, t - 1, b, 0, n, True)
        r = t * batch + b
        # Inactive neuron-steps: a membrane on the right side of threshold, s = 0.
        for j in range(n):
            spike = (bits[t, b, j >> 3] >> (j & 7)) & 1
            hb[j] = th[j] + (2.0 * spike - 1.0)
            scratch[0, j] = spike
            sb[j] = 0.0
        for k in range(n):
            gzb[k] = grad_z[t, b, k]
        for e in range(row_ptr[r], row_ptr[r + 1]):
            j = cols[e]
            hb[j] = h_active[e]
            sb[j] = surrogate_grad(sg_code, h_active[e] - th[j], alpha)
            if recurrent and t + 1 < n_steps:
                gzb[j] += _dot_row(gx, t + 1, b, w_rec_t, j)
        _adjoint_row(
            gzb, hb, scratch[0], sb, th, v_reset, am, dd, n, reset_code, False, detach,
            gvb, gib, gx[t, b], scratch[1], scratch[2], scratch[3], False,
        )  # fmt: skip
    _store_range(gv[b], np.int64(0), gvb, n)
    _store_range(gi[b], np.int64(0), gib, n)
    if recurrent:
        for j in range(n):
            gz_rec[b, j] = _dot_row(gx, 0, b, w_rec_t, j)


lif_sparse_backward = ItemKernel(
    _lif_sparse_backward, one_item_each(lambda args: args[0].shape[1]), _by_size
)
