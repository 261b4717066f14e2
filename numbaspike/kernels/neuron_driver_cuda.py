r"""CUDA time loops for any registered neuron model: :mod:`.neuron_driver` on the GPU.

:func:`cuda_kernels` compiles, once per model and modes, the model's scalar step and adjoint
(:class:`~numbaspike.models.base.NeuronModel`) as CUDA device functions, built by the model's
factories from the device versions of ``spike`` and ``surrogate_grad`` (compiled from
:mod:`.math` with ``cuda.jit(device=True)``, as the CPU driver compiles them with ``njit``),
and returns a forward and a backward launcher with the arguments and the semantics of
:func:`.neuron_driver.cpu_kernels`, all arrays being numba device arrays:

* feed-forward: one launch per direction, one thread per (batch row, neuron) running all
  steps (neurons are independent across time);
* recurrent forward: per step, one launch that writes the input plus the recurrent current
  :math:`x_t + W_{rec} z_{t-1}` of every (b, n) into a (B, N) buffer, reading the spikes of
  the step before from the state's last row, then one launch that steps every (b, n) on that
  buffer (the two launches keep the reads of :math:`z_{t-1}` apart from the step that
  overwrites it);
* recurrent backward: per reverse step, one launch of the adjoint over (b, n) (which reads
  and clears the adjoint of :math:`z_t` in ``gstate``'s last row), then one launch that adds
  :math:`g_{x,t} W_{rec}` to that row, one thread per (b, k).

Each thread sums its recurrent products over the neurons in ascending order and skips zero
spikes (or zero input gradients) like the CPU driver, so under numba's simulator the results
equal the CPU kernels' bits; on a GPU, NVVM may fuse multiply-adds (last-bit differences).
Launches use a 1-D grid-stride loop over the (batch row, neuron) pairs, sized by
:func:`numbaspike.kernels.cuda.launch_config`. ``modes`` is passed to the kernels as a
tuple, which both the simulator and ``numba.cuda`` accept as a kernel argument; as on the
CPU, the kernels are compiled per model and per surrogate, reset, detach and smooth mode.

This module imports ``numba.cuda`` and is imported lazily (by :mod:`numbaspike.neuron_cuda`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from numba import cuda

from . import cuda as kcuda
from . import math as kmath

__all__ = ["CudaKernels", "cuda_kernels", "spike", "surrogate_grad", "transpose"]

_surrogate_smooth = cuda.jit(device=True)(kmath.surrogate_smooth)
surrogate_grad = cuda.jit(device=True)(kmath.surrogate_grad)


@cuda.jit(device=True)
def spike(u, code, alpha, smooth):
    """:math:`H(u)`, or the surrogate's smooth :math:`F(u)` in smooth mode."""
    if smooth:
        return _surrogate_smooth(code, u, alpha)
    return 1.0 if u > 0.0 else 0.0


def _compile_scalar(function):
    """A model file's scalar function, compiled as a CUDA device function for a step."""
    return cuda.jit(device=True)(function)


class CudaKernels(NamedTuple):
    """The launchers of one model; unpacks as ``forward, backward`` like ``cpu_kernels``."""

    forward: Callable
    backward: Callable


_KERNELS: dict[tuple, CudaKernels] = {}


def cuda_kernels(model, modes: tuple) -> CudaKernels:
    """``(forward, backward)`` CUDA launchers of ``model`` for ``modes``, compiled on first use.

    As :func:`.neuron_driver.cpu_kernels`: the kernels are specialised for the surrogate,
    reset, detach and smooth modes of ``modes`` = ``(code, alpha, reset, detach, smooth)``
    (constants of the compiled code, so that the compiler drops the other modes' branches);
    ``alpha`` stays an argument, read from the ``modes`` tuple passed to the launchers.

    Both take the batch rows ``b0 .. b1 - 1`` to compute first (all rows in one launch:
    ``0, B``), so that they are called like the CPU kernels.

    ``forward(b0, b1, x, w_t, coeffs, modes, state, z, tape, keep_tape)`` runs all steps of
    ``x`` (T, B, N): ``w_t`` (N, N) is the transposed recurrent matrix, or (0, 0) for a
    feed-forward layer; ``state`` (S + 1, B, N) is updated in place; the spikes go to ``z``;
    ``tape`` (K, T, B, N) receives each step's tape values (``keep_tape``) or is a scratch
    of (K, 1, B, N) that each step overwrites (forward-only simulation).

    ``backward(b0, b1, gz, w, coeffs, modes, state0, tape, gstate, gx, gp)`` reverses them:
    ``gz`` (T, B, N) is dL/dz, ``w`` (N, N) the recurrent matrix or (0, 0), ``gstate``
    (S + 1, B, N) holds dL/d(final state) and ends as dL/d(initial state), ``gx`` receives
    dL/dx and ``gp`` (P, B, N) accumulates the parameter gradients.

    Every array is a C-contiguous numba device array (the caller checks shapes and dtypes);
    both launchers also take the keywords ``threads_per_block`` and ``max_blocks`` of
    :func:`numbaspike.kernels.cuda.launch_config`. Their ``kernels`` attribute holds the
    compiled kernels they launch (``forward.kernels``: feed-forward, recurrent current,
    recurrent step; ``backward.kernels``: feed-forward, adjoint step, recurrent adjoint), for
    compiling them ahead of a launch (PTX tests).
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
    step = cuda.jit(device=True)(step_py)
    adjoint = cuda.jit(device=True)(adjoint_py)

    @cuda.jit
    def feed_forward(b0, b1, x, coeffs, given_modes, state, z, tape, keep_tape):
        modes = (code_const, given_modes[1], reset_const, detach_const, smooth_const)
        n_steps = x.shape[0]
        n = x.shape[2]
        idx = cuda.grid(1)
        stride = cuda.gridsize(1)
        while idx < (b1 - b0) * n:
            b = b0 + idx // n
            j = idx % n
            for t in range(n_steps):
                slot = t if keep_tape else 0
                z[t, b, j] = step(state, coeffs, modes, x[t, b, j], tape, slot, b, j)
            idx += stride

    @cuda.jit
    def recurrent_current(b0, b1, t, x, w_t, state, current):
        n = x.shape[2]
        last = state.shape[0] - 1
        idx = cuda.grid(1)
        stride = cuda.gridsize(1)
        while idx < (b1 - b0) * n:
            b = b0 + idx // n
            j = idx % n
            acc = x[t, b, j]
            for k in range(n):
                zk = state[last, b, k]
                if zk != 0.0:
                    acc += zk * w_t[k, j]
            current[b, j] = acc
            idx += stride

    @cuda.jit
    def recurrent_step(b0, b1, t, slot, current, coeffs, given_modes, state, z, tape):
        modes = (code_const, given_modes[1], reset_const, detach_const, smooth_const)
        n = current.shape[1]
        idx = cuda.grid(1)
        stride = cuda.gridsize(1)
        while idx < (b1 - b0) * n:
            b = b0 + idx // n
            j = idx % n
            z[t, b, j] = step(state, coeffs, modes, current[b, j], tape, slot, b, j)
            idx += stride

    @cuda.jit
    def feed_forward_backward(b0, b1, gz, coeffs, given_modes, state0, tape, gstate, gx, gp):
        modes = (code_const, given_modes[1], reset_const, detach_const, smooth_const)
        n_steps = gz.shape[0]
        n = gz.shape[2]
        idx = cuda.grid(1)
        stride = cuda.gridsize(1)
        while idx < (b1 - b0) * n:
            b = b0 + idx // n
            j = idx % n
            for r in range(n_steps):
                t = n_steps - 1 - r
                g = gz[t, b, j]
                gx[t, b, j] = adjoint(gstate, coeffs, modes, g, state0, tape, t, b, j, gp)
            idx += stride

    @cuda.jit
    def adjoint_step(b0, b1, t, gz, coeffs, given_modes, state0, tape, gstate, gx, gp):
        modes = (code_const, given_modes[1], reset_const, detach_const, smooth_const)
        n = gz.shape[2]
        idx = cuda.grid(1)
        stride = cuda.gridsize(1)
        while idx < (b1 - b0) * n:
            b = b0 + idx // n
            j = idx % n
            g = gz[t, b, j]
            gx[t, b, j] = adjoint(gstate, coeffs, modes, g, state0, tape, t, b, j, gp)
            idx += stride

    @cuda.jit
    def recurrent_adjoint(b0, b1, t, gx, w, gstate):
        n = gx.shape[2]
        last = gstate.shape[0] - 1
        idx = cuda.grid(1)
        stride = cuda.gridsize(1)
        while idx < (b1 - b0) * n:
            b = b0 + idx // n
            k = idx % n
            acc = gstate[last, b, k]
            for j in range(n):
                g = gx[t, b, j]
                if g != 0.0:
                    acc += g * w[j, k]
            gstate[last, b, k] = acc
            idx += stride

    def forward(
        b0, b1, x, w_t, coeffs, modes, state, z, tape, keep_tape, *, threads_per_block=None,
        max_blocks=None,
    ):  # fmt: skip
        b0, b1 = int(b0), int(b1)
        n_steps, batch, n = x.shape
        if b1 <= b0:
            return
        keep_tape = bool(keep_tape)
        grid = kcuda.launch_config((b1 - b0) * n, threads_per_block, max_blocks)
        if w_t.shape[0] == 0:
            feed_forward[grid](b0, b1, x, coeffs, modes, state, z, tape, keep_tape)
            return
        # The step overwrites z_{t-1} in the state, so the current is taken first, whole.
        current = cuda.device_array((batch, n), dtype=x.dtype)
        for t in range(n_steps):
            slot = t if keep_tape else 0
            recurrent_current[grid](b0, b1, t, x, w_t, state, current)
            recurrent_step[grid](b0, b1, t, slot, current, coeffs, modes, state, z, tape)

    def backward(
        b0, b1, gz, w, coeffs, modes, state0, tape, gstate, gx, gp, *, threads_per_block=None,
        max_blocks=None,
    ):  # fmt: skip
        b0, b1 = int(b0), int(b1)
        n_steps, _, n = gz.shape
        if b1 <= b0:
            return
        grid = kcuda.launch_config((b1 - b0) * n, threads_per_block, max_blocks)
        if w.shape[0] == 0:
            feed_forward_backward[grid](b0, b1, gz, coeffs, modes, state0, tape, gstate, gx, gp)
            return
        for t in range(n_steps - 1, -1, -1):
            adjoint_step[grid](b0, b1, t, gz, coeffs, modes, state0, tape, gstate, gx, gp)
            recurrent_adjoint[grid](b0, b1, t, gx, w, gstate)

    forward.kernels = (feed_forward, recurrent_current, recurrent_step)
    backward.kernels = (feed_forward_backward, adjoint_step, recurrent_adjoint)
    return CudaKernels(forward, backward)


@cuda.jit
def _transpose(a, out):
    rows, cols = a.shape
    idx = cuda.grid(1)
    stride = cuda.gridsize(1)
    while idx < rows * cols:
        r = idx // cols
        c = idx - r * cols
        out[c, r] = a[r, c]
        idx += stride


def transpose(a):
    """A C-contiguous device copy of the transpose of the 2-D device array ``a``."""
    out = cuda.device_array((a.shape[1], a.shape[0]), dtype=a.dtype)
    if a.size:
        _transpose[kcuda.launch_config(a.size)](a, out)
    return out
