r"""CPU time loops for any registered neuron model, built from the model's scalar step and adjoint.

:func:`cpu_kernels` compiles, once per model, a forward and a backward kernel around the
model's step and adjoint (:class:`~numbaspike.models.base.NeuronModel`):

* feed-forward: each batch row runs all its steps (neurons are independent across time);
* recurrent: each batch row too (the recurrence couples the neurons of one row, never two
  rows), each step first adding the recurrent current :math:`W_{rec} z_{t-1}` of
  the row's spikes of the step before (a sum of the columns of the neurons that fired, or
  of all columns weighted by :math:`z` in smooth mode), then stepping every neuron; the
  backward pass adds :math:`g_{x,t} W_{rec}` to the adjoint of :math:`z_{t-1}`.

The kernels take a range of batch rows and release the GIL: :func:`run_rows` runs slices of
the rows in parallel threads. Every batch row is computed by one thread in a fixed order, so
results do not depend on the thread count. The kernels are compiled serially because a
parallel (``prange``) loop doubles their compile time. The weight gradient :math:`\sum_t g_{x,t}^\top z_{t-1}` is one matrix product,
taken by the caller.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import get_num_threads, njit

from . import math as kmath

__all__ = ["cpu_kernels", "run_rows", "spike", "surrogate_grad"]

_surrogate_smooth = njit(inline="always")(kmath.surrogate_smooth)
surrogate_grad = njit(inline="always")(kmath.surrogate_grad)


@njit(inline="always")
def spike(u, code, alpha, smooth):
    """:math:`H(u)`, or the surrogate's smooth :math:`F(u)` in smooth mode."""
    if smooth:
        return _surrogate_smooth(code, u, alpha)
    return 1.0 if u > 0.0 else 0.0


def _compile_scalar(function):
    """A model file's scalar function, compiled for the CPU to be inlined into a step."""
    return njit(inline="always", error_model="numpy")(function)


_POOL: ThreadPoolExecutor | None = None


def run_rows(kernel, batch: int, *args) -> None:
    """``kernel(b0, b1, *args)`` over the batch rows ``0 .. batch - 1``, split into
    :func:`numba.get_num_threads` slices run in parallel threads (the kernels release the
    GIL). Each row is computed whole by one call, so the result does not depend on the
    split."""
    global _POOL
    threads = min(get_num_threads(), batch)
    if threads <= 1:
        kernel(0, batch, *args)
        return
    if _POOL is None or _POOL._max_workers < threads:
        _POOL = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="numbaspike-rows")
    bounds = [batch * k // threads for k in range(threads + 1)]
    futures = [_POOL.submit(kernel, bounds[k], bounds[k + 1], *args) for k in range(1, threads)]
    kernel(bounds[0], bounds[1], *args)
    for future in futures:
        future.result()


_KERNELS: dict[tuple, tuple] = {}


def cpu_kernels(model, modes: tuple):
    """``(forward, backward)`` njit kernels of ``model`` for ``modes``, compiled on first use.

    The kernels are specialised for the surrogate, reset, detach and smooth modes of
    ``modes`` = ``(code, alpha, reset, detach, smooth)``: they hold them as constants, so
    that the compiler drops the other modes' branches; ``alpha`` stays an argument.

    Both take the batch rows ``b0 .. b1 - 1`` to compute first (see :func:`run_rows`).

    ``forward(b0, b1, x, w_t, coeffs, modes, state, z, tape, keep_tape)`` runs all steps of ``x``
    (T, B, N): ``w_t`` (N, N) is the transposed recurrent matrix, or (0, 0) for a
    feed-forward layer; ``state`` (S + 1, B, N) is updated in place; the spikes go to ``z``;
    ``tape`` (K, T, B, N) receives each step's tape values (``keep_tape``) or is a scratch
    of (K, 1, B, N) that each step overwrites (forward-only simulation).

    ``backward(b0, b1, gz, w, coeffs, modes, state0, tape, gstate, gx, gp)`` reverses them: ``gz``
    (T, B, N) is dL/dz, ``w`` (N, N) the recurrent matrix or (0, 0), ``gstate``
    (S + 1, B, N) holds dL/d(final state) and ends as dL/d(initial state), ``gx`` receives
    dL/dx and ``gp`` (P, B, N) accumulates the parameter gradients.
    """
    code, _, reset, detach, smooth = modes
    key = (model.name, int(code), int(reset), bool(detach), bool(smooth))
    kernels = _KERNELS.get(key)
    if kernels is None:
        step = model.make_step(spike, surrogate_grad, _compile_scalar)
        adjoint = model.make_adjoint(spike, surrogate_grad, _compile_scalar)
        kernels = _KERNELS[key] = _build(step, adjoint, *key[1:])
    return kernels


def _build(step_py, adjoint_py, code_const, reset_const, detach_const, smooth_const):
    step = njit(inline="always", error_model="numpy")(step_py)
    adjoint = njit(inline="always", error_model="numpy")(adjoint_py)

    @njit(nogil=True, error_model="numpy")
    def forward(b0, b1, x, w_t, coeffs, given_modes, state, z, tape, keep_tape):
        modes = (code_const, given_modes[1], reset_const, detach_const, smooth_const)
        n_steps, _, n = x.shape
        last = state.shape[0] - 1
        if w_t.shape[0] == 0:
            for b in range(b0, b1):
                for t in range(n_steps):
                    slot = t if keep_tape else 0
                    for j in range(n):
                        z[t, b, j] = step(state, coeffs, modes, x[t, b, j], tape, slot, b, j)
            return
        for b in range(b0, b1):  # recurrence couples the neurons of a row, never two rows
            current = np.empty(n, x.dtype)
            previous = state[last, b]
            for t in range(n_steps):
                slot = t if keep_tape else 0
                for j in range(n):
                    current[j] = x[t, b, j]
                for k in range(n):
                    zk = previous[k]
                    if zk != 0.0:
                        for j in range(n):
                            current[j] += zk * w_t[k, j]
                for j in range(n):
                    z[t, b, j] = step(state, coeffs, modes, current[j], tape, slot, b, j)

    @njit(nogil=True, error_model="numpy")
    def backward(b0, b1, gz, w, coeffs, given_modes, state0, tape, gstate, gx, gp):
        modes = (code_const, given_modes[1], reset_const, detach_const, smooth_const)
        n_steps, _, n = gz.shape
        last = gstate.shape[0] - 1
        if w.shape[0] == 0:
            for b in range(b0, b1):
                for t in range(n_steps - 1, -1, -1):
                    for j in range(n):
                        g = gz[t, b, j]
                        gx[t, b, j] = adjoint(gstate, coeffs, modes, g, state0, tape, t, b, j, gp)
            return
        g_previous = np.empty(n, gz.dtype)  # contiguous, so that the product vectorises
        for b in range(b0, b1):
            for t in range(n_steps - 1, -1, -1):
                for j in range(n):
                    g = gz[t, b, j]
                    gx[t, b, j] = adjoint(gstate, coeffs, modes, g, state0, tape, t, b, j, gp)
                g_previous[:] = 0.0
                for j in range(n):
                    g = gx[t, b, j]
                    if g != 0.0:
                        for k in range(n):
                            g_previous[k] += g * w[j, k]
                # the adjoint of z_{t-1} through W_rec z_{t-1} (the adjoints above cleared it)
                gstate[last, b] = g_previous

    return forward, backward
