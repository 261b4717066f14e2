"""The Adam update of one parameter array in one pass (:class:`numbaspike.optim.Adam`).

Element by element, the same operations in the same order and dtype as the NumPy
expressions it replaces (PyTorch's single-tensor Adam; see :mod:`numbaspike.optim`), so
the result is bitwise the same (tests/test_optim.py checks it against those expressions),
in one pass over the five arrays instead of about a dozen NumPy passes with temporaries.
Numba does not fuse multiply-adds without ``fastmath``, so the
rounding is NumPy's. NumPy's error model too: a division by zero (only possible with
``eps = 0``) gives inf or NaN, as in NumPy and PyTorch, instead of raising, and the loop
vectorises (with the Python model, each division's zero check kept it scalar).

Arrays of at least :data:`PARALLEL_MIN_SIZE` entries are updated by both threads, in
blocks of :data:`BLOCK` entries (work items of the shared runner,
:mod:`~numbaspike.compiler.parallel_runner`); element by element, so the result does not depend
on the thread count.
"""

from __future__ import annotations

import numpy as np

from ..compiler.parallel_runner import ItemKernel, blocks_of, first_length, parallel_from

__all__ = ["adam_update", "BLOCK", "PARALLEL_MIN_SIZE"]

#: Entries per work item.
BLOCK = 1 << 14
#: From this many entries the update opens a parallel region.
PARALLEL_MIN_SIZE = 1 << 16


def _adam_block(
    k0, k1, p, g, exp_avg, exp_avg_sq, max_exp_avg_sq, decoupled, decay_factor, weight_decay,
    small_weight, lerp_weight, one_minus_lerp_weight, beta2, one_minus_beta2, neg_step_size,
    bias_correction2_sqrt, eps, amsgrad,
):  # fmt: skip
    """Update entries ``k0 .. k1 - 1`` of the flat arrays ``p``, ``exp_avg``,
    ``exp_avg_sq`` (and ``max_exp_avg_sq`` with ``amsgrad``) in place from the gradient
    ``g``; scalars are in the dtype of ``p``.

    Weight decay: with ``decoupled``, ``p`` is first multiplied by ``decay_factor``
    (``1 - lr * weight_decay``); otherwise ``weight_decay * p`` is added to the gradient
    (when ``weight_decay`` is not 0). ``exp_avg`` moves towards the gradient by
    ``lerp_weight`` (``1 - beta1``) with ATen's two formulas (``small_weight``: the
    weight is below 0.5)."""
    coupled = weight_decay != 0
    # views from index 0: no negative-index wraparound in the loop (which kept it scalar)
    p, g, exp_avg, exp_avg_sq = p[k0:k1], g[k0:k1], exp_avg[k0:k1], exp_avg_sq[k0:k1]
    max_exp_avg_sq = max_exp_avg_sq[k0:k1] if amsgrad else max_exp_avg_sq
    for k in range(p.shape[0]):
        gk = g[k]
        if decoupled:
            p[k] *= decay_factor
        elif coupled:
            gk = gk + weight_decay * p[k]
        m = exp_avg[k]
        if small_weight:
            m = m + lerp_weight * (gk - m)
        else:
            m = gk - (gk - m) * one_minus_lerp_weight
        exp_avg[k] = m
        v = exp_avg_sq[k] * beta2
        v = v + one_minus_beta2 * gk * gk
        exp_avg_sq[k] = v
        if amsgrad:
            vmax = max_exp_avg_sq[k]
            if not (vmax >= v or vmax != vmax):  # np.maximum: a NaN stays
                vmax = v
            max_exp_avg_sq[k] = vmax
            v = vmax
        denom = np.sqrt(v) / bias_correction2_sqrt + eps
        p[k] += neg_step_size * m / denom


#: ``adam_update(p, g, exp_avg, exp_avg_sq, max_exp_avg_sq, decoupled, decay_factor,
#: weight_decay, small_weight, lerp_weight, one_minus_lerp_weight, beta2, one_minus_beta2,
#: neg_step_size, bias_correction2_sqrt, eps, amsgrad)``: :func:`_adam_block` over all
#: entries (flat, C-contiguous arrays of one dtype; ``max_exp_avg_sq`` empty unless
#: ``amsgrad``).
adam_update = ItemKernel(
    _adam_block,
    blocks_of(first_length, BLOCK),
    parallel_from(first_length, PARALLEL_MIN_SIZE),
    error_model="numpy",
)
