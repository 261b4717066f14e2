r"""Functional API: LIF and LI layers on time-major arrays, with hand-written BPTT.

Arrays are time-major ``(T, B, N)`` (steps, batch, neurons), float32 or float64. A
forward call returns its output and a *tape*; the matching backward call takes the
gradient of the loss w.r.t. that output and the tape, and returns every gradient.

The LIF step (DESIGN.md §1, Norse's ``lif_feed_forward_step``/``lif_step``), with
:math:`a_m = dt\,\tau_{mem}^{-1}`, :math:`a_s = dt\,\tau_{syn}^{-1}`:

.. math::

    i' &= i + x_t + [\text{recurrent}]\; W_{rec}\, z_{t-1} \\
    h_t &= v + a_m ((v_{leak} - v) + i'), \qquad i \leftarrow (1 - a_s)\, i' \\
    z_t &= H(h_t - v_{th}) \quad (F(h_t - v_{th}) \text{ if smooth}) \\
    v &\leftarrow (1 - z_t) h_t + z_t v_{reset} \;\text{(zero)} \quad\text{or}\quad
    h_t - z_t (v_{th} - v_{reset}) \;\text{(subtract)}

BPTT (reverse time, adjoints :math:`g_v, g_i` of the state after step :math:`t`, see
:func:`numbaspike.kernels.math.lif_adjoint_step`) gives :math:`\partial L/\partial x_t = g_{i'}`
and accumulates the parameter gradients

.. math::

    \frac{\partial L}{\partial \tau_{mem}^{-1}} = dt \sum_t g_{h,t}\,((v_{leak} - v_{t-1}) + i'_t),\quad
    \frac{\partial L}{\partial \tau_{syn}^{-1}} = -dt \sum_t g_{i,t}\, i'_t,\quad
    \frac{\partial L}{\partial v_{leak}} = \sum_t a_m g_{h,t},\quad
    \frac{\partial L}{\partial v_{th}} = \sum_t g_{v_{th},t}

summed over batch (and over neurons when the parameter was given as a scalar). When no
initial state is given, :math:`v_0 = v_{leak}`, so the gradient of :math:`v_0` is added to
that of :math:`v_{leak}`. With a recurrent matrix,
:math:`\partial L/\partial W_{rec} = \sum_t g_{x,t}^\top z_{t-1}` and :math:`g_{x,t} W_{rec}`
flows back into :math:`z_{t-1}`.

The tape holds the pre-reset membrane :math:`h` (from which the spikes are recomputed
exactly), the current :math:`i'` only when parameter gradients are requested, and a
reference to the output (not a copy).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import backend as _backend
from . import compact_tape as _compact
from .kernels import cpu, sparse_tape
from .lif_records import (
    LIFGradients,
    LIFState,
    LIFTape,
    LIGradients,
    LIState,
    LITape,
    Simulation,
    check_record,
    coefficients,
    input_chunks,
)
from .models.li import LIParameters
from .models.lif import LIFParameters
from .params import check_time_step
from .runtime import array_pool
from .validation import (
    as_float_array,
    broadcast_state,
    check_all_finite,
    check_positive_int,
    sum_is_finite,
)

__all__ = [
    "LIFState",
    "LIState",
    "LIFTape",
    "LITape",
    "LIFGradients",
    "LIGradients",
    "Simulation",
    "lif_forward",
    "lif_backward",
    "li_forward",
    "li_backward",
    "lif_simulate",
]


def _check_input(x, check_finite: bool = True) -> np.ndarray:
    x = as_float_array("x", x, ndim=3, shape_doc="(T, B, N)", check_finite=check_finite)
    if x.shape[0] == 0 or x.shape[1] == 0 or x.shape[2] == 0:
        raise ValueError(f"x must have non-zero T, B and N, got shape {x.shape}")
    return x


def _initial_state(state, coeffs, batch: int, n: int, dtype):
    """(v0, i0, z0, given) as fresh (B, N) arrays."""
    if state is None:
        v0 = np.array(np.broadcast_to(coeffs.v_leak, (batch, n)), dtype=dtype, order="C")
        return v0, np.zeros((batch, n), dtype), np.zeros((batch, n), dtype), False
    if not isinstance(state, tuple) or len(state) not in (2, 3):
        raise TypeError("state must be a LIFState / LIState or a tuple (v, i) or (v, i, z)")
    v0 = broadcast_state("state.v", state[0], batch, n, dtype)
    i0 = broadcast_state("state.i", state[1], batch, n, dtype)
    if len(state) == 3 and state[2] is not None:
        z0 = broadcast_state("state.z", state[2], batch, n, dtype)
    else:
        z0 = np.zeros((batch, n), dtype)
    return v0, i0, z0, True


def lif_forward(
    x: np.ndarray,
    p: LIFParameters = LIFParameters(),
    dt: float = 1e-3,
    w_rec: np.ndarray | None = None,
    state: LIFState | tuple | None = None,
    *,
    param_grads: bool | None = None,
    sparse_tol: float | None = None,
    out: np.ndarray | None = None,
    backend: str = "cpu",
) -> tuple[np.ndarray, LIFTape]:
    """Run a LIF layer over all time steps and record a tape for :func:`lif_backward`.

    Parameters
    ----------
    x : ndarray (T, B, N), float32 or float64
        Input current per step (the jump added to ``i``).
    p : LIFParameters
        Neuron parameters; per-neuron arrays must have shape (N,).
    dt : float
        Time step in seconds; ``dt * tau_*_inv`` must be < 1.
    w_rec : ndarray (N, N), optional
        Recurrent weights (``(N_out, N_in)`` like ``torch.nn.Linear.weight``); the current
        jump at step ``t`` is then ``x_t + z_{t-1} @ w_rec.T`` (Norse ``lif_step``).
    state : LIFState or tuple, optional
        Initial ``(v, i)`` or ``(v, i, z)``, each broadcastable to (B, N). Default:
        ``v = v_leak``, ``i = 0``, ``z = 0``.
    param_grads : bool, optional
        Keep what the gradients of the neuron parameters need (one more (T, B, N) array).
        Default: True, unless ``sparse_tol`` is given.
    sparse_tol : float >= 0, optional
        Sparse backward (Perez-Nieves & Goodman 2021, :mod:`numbaspike.compact_tape`): the
        surrogate derivative is taken as 0 where it is at most ``sparse_tol`` times its peak
        ``s(0)``; the tape keeps the spikes as bits and the membranes of the other
        neuron-steps only, and the backward pass skips the rest. CPU only (``"auto"`` then
        means the CPU); not with ``p.smooth`` nor with ``param_grads=True``.
    out : ndarray (T, B, N), optional
        CPU only: the array the spikes go to, instead of a new one: writeable, C-contiguous,
        of the dtype of ``x``; it may be ``x`` itself (each step reads its input before
        writing its spikes), which then holds the spikes: an in-place pass for an input
        that nothing else needs (the tape does not keep ``x``).
    backend : {"cpu", "cuda", "auto"}
        Where to run. With ``"cuda"``, array arguments may be NumPy arrays or CUDA device
        arrays (anything with ``__cuda_array_interface__``), and the outputs and the tape
        are numba device arrays (see :mod:`numbaspike.backend`). ``"auto"`` picks ``"cuda"``
        when a GPU is available.

    Returns
    -------
    z : ndarray (T, B, N)
        Spikes (0/1) in the dtype of ``x``, or ``F(h - v_th)`` when ``p.smooth``.
    tape : LIFTape
    """
    sparse_tol = _compact.check_sparse_tol(sparse_tol)
    if param_grads is None:
        param_grads = sparse_tol is None
    if sparse_tol is not None and backend != "cpu":
        if backend != "auto":
            raise ValueError(
                f"sparse_tol is only implemented on the CPU backend, got backend={backend!r}"
            )
        backend = "cpu"
    if backend != "cpu" and _backend.resolve_backend(backend) == "cuda":
        if out is not None:
            raise ValueError("out is only supported on the CPU backend")
        return _backend.lif_forward_cuda(x, p, dt, w_rec, state, param_grads)
    if not isinstance(p, LIFParameters):
        raise TypeError(f"p must be LIFParameters, got {type(p).__name__}")
    x = _check_input(x, check_finite=False)  # checked through the final state below
    if sparse_tol is not None:
        if p.smooth:
            raise ValueError("sparse_tol needs binary spikes; it cannot be used with smooth=True")
        if param_grads:
            raise ValueError(
                "sparse_tol cannot be combined with param_grads=True: the gradients of the "
                "neuron parameters need the membrane of every neuron-step"
            )
    dt = check_time_step(p, dt)
    n_steps, batch, n = x.shape
    dtype = x.dtype
    coeffs = coefficients(p, dt, n, dtype)
    v, i, z_state, given = _initial_state(state, coeffs, batch, n, dtype)
    v0 = v.copy()
    z0 = z_state.copy()
    z = _check_out(out, x, "x", x.shape, dtype)
    i1 = array_pool.empty(x.shape, dtype) if param_grads else np.empty((0, 0, 0), dtype)
    none = np.empty((0, 0, 0), dtype)
    common = (coeffs.a_m, coeffs.decay_s, coeffs.v_leak, coeffs.v_th, coeffs.v_reset)
    codes = (p.reset_code, p.surrogate_code, dtype.type(p.alpha), bool(p.smooth))
    w_rec_t = None
    if w_rec is not None:
        w_rec = _check_w_rec(w_rec, n, dtype)
        w_rec_t = np.ascontiguousarray(w_rec.T)

    def run(t0: int, t1: int, h_out: np.ndarray) -> None:
        """Steps ``t0 .. t1 - 1``; the state ``v``, ``i``, ``z_state`` carries over."""
        if w_rec_t is None:
            cpu.lif_feed_forward_forward(
                x[t0:t1], *common, *codes, v, i, z[t0:t1], h_out, i1[t0:t1], none, none,
                True, True, param_grads, False,
            )  # fmt: skip
        else:
            cpu.lif_recurrent_forward(
                x[t0:t1], w_rec_t, *common, *codes, v, i, z_state, z[t0:t1], h_out, i1[t0:t1],
                none, none, True, True, param_grads, False,
            )  # fmt: skip

    h = compact = None
    if sparse_tol is None:
        h = array_pool.empty(x.shape, dtype)
        run(0, n_steps, h)
    else:
        steps = _compact.chunk_steps(batch, n)
        h_chunk = array_pool.empty((min(steps, n_steps), batch, n), dtype)
        builder = _compact.CompactTapeBuilder(
            n_steps, batch, n, p.surrogate, p.alpha, sparse_tol, coeffs.v_th, h_chunk.shape
        )
        for t0 in range(0, n_steps, steps):
            t1 = min(n_steps, t0 + steps)
            run(t0, t1, h_chunk[: t1 - t0])
            builder.add(t0, h_chunk[: t1 - t0])
        compact = builder.finish()
    _check_propagated("x", x, i, v, overwritten=_in_place(z, x))
    if w_rec is None:
        z_state = z[-1].copy()
    tape = LIFTape(
        p=p,
        dt=dt,
        coeffs=coeffs,
        h=h,
        i1=i1 if param_grads else None,
        z=z,
        v0=v0,
        z0=z0,
        w_rec=w_rec,
        state_given=given,
        final_state=LIFState(v, i, z_state),
        compact=compact,
    )
    return z, tape


def _check_w_rec(w_rec, n: int, dtype) -> np.ndarray:
    w_rec = as_float_array("w_rec", w_rec, ndim=2, dtype=dtype, shape_doc=f"(N, N) = ({n}, {n})")
    if w_rec.shape != (n, n):
        raise ValueError(f"w_rec must have shape (N, N) = ({n}, {n}), got {w_rec.shape}")
    return w_rec


def _check_output_grad(name: str, grad, shape, dtype) -> np.ndarray:
    """Shape and dtype of an output gradient; its finiteness is checked after the backward
    pass by :func:`_check_propagated`."""
    grad = as_float_array(
        name, grad, ndim=3, dtype=dtype, shape_doc=str(shape), check_finite=False
    )
    if grad.shape != shape:
        raise ValueError(
            f"{name} must have the shape of the forward output {shape}, got {grad.shape}"
        )
    return grad


def _check_out(out, source: np.ndarray, name: str, shape, dtype, tape_arrays=()):
    """The ``out`` argument of a forward or backward pass: the array the result goes to (a
    fresh one if None).

    It must be a writeable, C-contiguous array of ``shape`` and ``dtype``. It may be
    ``source`` itself (the input of the pass: an in-place pass, in which each step reads
    its input before writing its result), but must not otherwise overlap it, nor overlap
    the tape of the forward pass."""
    if out is None:
        return array_pool.empty(shape, dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array of shape {shape}, got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(
            f"out must have shape {shape} and dtype {np.dtype(dtype)}, got {out.shape} {out.dtype}"
        )
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be a writeable, C-contiguous array")
    for arr in tape_arrays:
        if arr is not None and np.may_share_memory(out, arr):
            raise ValueError("out must not share memory with the tape of the forward pass")
    same = out is source or (
        out.__array_interface__["data"][0] == source.__array_interface__["data"][0]
        and out.strides == source.strides
    )
    if not same and np.may_share_memory(out, source):
        raise ValueError(f"out must be {name} itself (an in-place pass) or not overlap it")
    return out


def _in_place(result: np.ndarray, source: np.ndarray) -> bool:
    """Whether a pass wrote its result over its input: after :func:`_check_out`, a result
    that shares memory with the input is the input itself (given as ``out``, possibly as
    another view of the same memory)."""
    return np.may_share_memory(result, source)


def _check_propagated(
    name: str, source: np.ndarray, *carried: np.ndarray, overwritten: bool = False
) -> None:
    """Finiteness of a (T, B, N) input checked through what it flowed into.

    Every step adds its input to the synaptic current (and its gradient to the adjoints),
    which then decay geometrically: a NaN or inf anywhere in ``source`` makes the final state
    (or the initial-state gradients) ``carried`` non-finite. So a scan of these (B, N) arrays
    replaces a pass over the whole input; only when it fails is ``source`` scanned to name
    the first bad entry (or, if it is finite, the overflow is reported)."""
    if all(sum_is_finite(c) for c in carried):
        return
    if overwritten:
        raise ValueError(
            f"{name} holds NaN or inf, or the computation overflowed ({name} was "
            f"overwritten in place by out={name}; run without out to locate the bad entry)"
        )
    check_all_finite(name, source)
    raise ValueError(
        f"{name} is finite but the computation overflowed (the state or gradient reached inf); "
        f"{name} or the weights are too large"
    )


def _final_adjoints(grad_final_state, batch, n, dtype):
    if grad_final_state is None:
        return np.zeros((batch, n), dtype), np.zeros((batch, n), dtype)
    if not isinstance(grad_final_state, tuple) or len(grad_final_state) < 2:
        raise ValueError("grad_final_state must be a tuple (dL/dv, dL/di) of (B, N) arrays")
    gv = broadcast_state("grad_final_state.v", grad_final_state[0], batch, n, dtype)
    gi = broadcast_state("grad_final_state.i", grad_final_state[1], batch, n, dtype)
    return gv, gi


class _BackwardBuffers(NamedTuple):
    """Arrays a CPU backward kernel writes: dL/dx, the state adjoints and (B, N) float64
    accumulators of the parameter gradients (size 0 without parameter gradients)."""

    gx: np.ndarray
    gv: np.ndarray
    gi: np.ndarray
    i1: np.ndarray
    accumulators: tuple[np.ndarray, ...]


def _backward_buffers(tape, gx: np.ndarray, grad_final_state, n_accumulators: int):
    n_steps, batch, n = gx.shape
    dtype = gx.dtype
    gv, gi = _final_adjoints(grad_final_state, batch, n, dtype)
    param_grads = tape.i1 is not None
    acc_shape = (batch, n) if param_grads else (0, 0)
    accumulators = tuple(np.zeros(acc_shape, np.float64) for _ in range(n_accumulators))
    i1 = tape.i1 if param_grads else np.empty((0, 0, 0), dtype)
    return _BackwardBuffers(gx, gv, gi, i1, accumulators)


def _reduce_param_grad(given, per_neuron: np.ndarray, dtype):
    """Sum (B, N) accumulators over batch, and over neurons for a scalar parameter."""
    total = per_neuron.sum(axis=0)
    if np.ndim(given) == 0:
        return float(total.sum())
    return total.astype(dtype)


def _tape_backend(tape, backend: str | None) -> str:
    """The backend of ``tape``; a ``backend`` argument must agree with it."""
    if backend is not None and _backend.resolve_backend(backend) != tape.backend:
        raise ValueError(
            f"backend={backend!r} does not match the tape, which was recorded with "
            f"backend={tape.backend!r}; the backward pass runs where the forward pass ran"
        )
    return tape.backend


def lif_backward(
    grad_z: np.ndarray,
    tape: LIFTape,
    grad_final_state: tuple | None = None,
    *,
    out: np.ndarray | None = None,
    backend: str | None = None,
) -> LIFGradients:
    """Backpropagate ``grad_z = dL/dz`` (T, B, N) through the LIF layer recorded in ``tape``.

    ``grad_final_state`` optionally gives ``(dL/dv_T, dL/di_T)`` for a loss that also depends
    on the final state (truncated BPTT across chunks). See the module docstring for the
    equations. Returns a :class:`LIFGradients`.

    ``out`` (CPU only) receives dL/dx instead of a new array: a writeable C-contiguous
    (T, B, N) array of the tape's dtype, which may be ``grad_z`` itself (then ``grad_z`` is
    overwritten, and no (T, B, N) array is allocated).

    The backward pass runs on the backend that recorded the tape (``tape.backend``); a
    ``backend`` given here must resolve to the same one. With ``"cuda"``, the gradients
    are device arrays, except those of scalar parameters (Python floats).
    """
    if not isinstance(tape, LIFTape):
        raise TypeError(
            f"tape must be the LIFTape returned by lif_forward, got {type(tape).__name__}"
        )
    if _tape_backend(tape, backend) == "cuda":
        if out is not None:
            raise ValueError("out is only supported on the CPU backend")
        return _backend.lif_backward_cuda(grad_z, tape, grad_final_state)
    if tape.compact is not None:
        return _lif_backward_compact(grad_z, tape, grad_final_state, out)
    h = tape.h
    n_steps, batch, n = h.shape
    dtype = h.dtype
    grad_z = _check_output_grad("grad_z", grad_z, h.shape, dtype)
    out = _check_out(out, grad_z, "grad_z", h.shape, dtype, (h, tape.i1))
    p, c = tape.p, tape.coeffs
    param_grads = tape.i1 is not None
    gx, gv, gi, i1, (g_am, g_decay, g_vth, g_vleak) = _backward_buffers(
        tape, out, grad_final_state, 4
    )
    common = (c.a_m, c.decay_s, c.v_leak, c.v_th, c.v_reset)
    # alpha in the working dtype: float32 layers evaluate the surrogate in float32, as
    # PyTorch does (and 3-4x faster than in float64; see kernels.cpu._surrogate_grad_block)
    codes = (
        p.reset_code,
        p.surrogate_code,
        dtype.type(p.alpha),
        bool(p.smooth),
        bool(p.detach_reset),
    )
    grad_w_rec = grad_z0 = None
    if tape.w_rec is None:
        cpu.lif_feed_forward_backward(
            grad_z, h, i1, tape.v0, *common, *codes, param_grads,
            gx, gv, gi, g_am, g_decay, g_vth, g_vleak,
        )  # fmt: skip
    else:
        grad_z0 = np.zeros((batch, n), dtype)
        cpu.lif_recurrent_backward(
            grad_z, h, i1, tape.v0, tape.w_rec, *common, *codes, param_grads,
            gx, gv, gi, grad_z0, g_am, g_decay, g_vth, g_vleak,
        )  # fmt: skip
        grad_w_rec = np.zeros((n, n), dtype)
        no_bits = np.empty((0, 0, 0), np.uint8)
        cpu.recurrent_weight_grad(
            gx, h, no_bits, c.v_th, tape.z0, p.surrogate_code, dtype.type(p.alpha), bool(p.smooth),
            grad_w_rec,
        )  # fmt: skip
    _check_propagated("grad_z", grad_z, gv, gi, overwritten=_in_place(gx, grad_z))
    grads = LIFGradients(gx, grad_w_rec, gv, gi, grad_z0, None, None, None, None)
    if param_grads:
        if not tape.state_given:
            g_vleak += gv
        dt = tape.dt
        grads.tau_mem_inv = _reduce_param_grad(p.tau_mem_inv, dt * g_am, dtype)
        grads.tau_syn_inv = _reduce_param_grad(p.tau_syn_inv, -dt * g_decay, dtype)
        grads.v_th = _reduce_param_grad(p.v_th, g_vth, dtype)
        grads.v_leak = _reduce_param_grad(p.v_leak, g_vleak, dtype)
    return grads


def _lif_backward_compact(grad_z, tape: LIFTape, grad_final_state, out) -> LIFGradients:
    """:func:`lif_backward` from a compact tape (``sparse_tol``; no parameter gradients)."""
    ct = tape.compact
    n_steps, batch, _ = ct.bits.shape
    n = ct.n_neurons
    dtype = ct.h.dtype if ct.h.size else tape.z.dtype
    grad_z = _check_output_grad("grad_z", grad_z, (n_steps, batch, n), dtype)
    p, c = tape.p, tape.coeffs
    gv, gi = _final_adjoints(grad_final_state, batch, n, dtype)
    gx = _check_out(out, grad_z, "grad_z", (n_steps, batch, n), dtype, (ct.h, ct.bits))
    recurrent = tape.w_rec is not None
    w_rec_t = np.ascontiguousarray(tape.w_rec.T) if recurrent else np.empty((0, 0), dtype)
    gz_rec = np.zeros((batch, n) if recurrent else (0, 0), dtype)
    sparse_tape.lif_sparse_backward(
        grad_z, ct.bits, ct.row_ptr, ct.cols, ct.h, w_rec_t, c.a_m, c.decay_s, c.v_th, c.v_reset,
        p.reset_code, p.surrogate_code, dtype.type(p.alpha), bool(p.detach_reset), gx, gv, gi, gz_rec,
    )  # fmt: skip
    _check_propagated("grad_z", grad_z, gv, gi, overwritten=_in_place(gx, grad_z))
    grad_w_rec = grad_z0 = None
    if recurrent:
        grad_w_rec = np.zeros((n, n), dtype)
        cpu.recurrent_weight_grad(
            gx, np.empty((0, 0, 0), dtype), ct.bits, c.v_th, tape.z0, p.surrogate_code,
            dtype.type(p.alpha), False, grad_w_rec,
        )  # fmt: skip
        grad_z0 = gz_rec
    return LIFGradients(gx, grad_w_rec, gv, gi, grad_z0, None, None, None, None)


def li_forward(
    x: np.ndarray,
    p: LIParameters = LIParameters(),
    dt: float = 1e-3,
    state: LIState | tuple | None = None,
    *,
    param_grads: bool = True,
    out: np.ndarray | None = None,
    backend: str = "cpu",
) -> tuple[np.ndarray, LITape]:
    r"""Run a leaky-integrator readout over all steps.

    .. math::

        i' = i + x_t, \qquad v_t = v_{t-1} + a_m ((v_{leak} - v_{t-1}) + i'), \qquad
        i \leftarrow (1 - a_s)\, i'

    Parameters
    ----------
    x : ndarray (T, B, N), float32 or float64
        Input current per step.
    p : LIParameters
    dt : float
    state : LIState or tuple, optional
        Initial ``(v, i)``; default ``v = v_leak``, ``i = 0``.
    param_grads : bool
        Keep what the parameter gradients need.
    out : ndarray (T, B, N), optional
        CPU only: the array the membranes go to, as for :func:`lif_forward` (it may be
        ``x`` itself); it is made read-only, as the returned membranes always are.
    backend : {"cpu", "cuda", "auto"}
        Where to run. With ``"cuda"``, array arguments may be NumPy arrays or CUDA device
        arrays (anything with ``__cuda_array_interface__``), and the outputs and the tape
        are numba device arrays (see :mod:`numbaspike.backend`). ``"auto"`` picks ``"cuda"``
        when a GPU is available.

    Returns
    -------
    v : ndarray (T, B, N), read-only
        Membrane of every step (the readout). The tape refers to it, so it is returned
        read-only: copy it before changing it in place.
    tape : LITape
    """
    if backend != "cpu" and _backend.resolve_backend(backend) == "cuda":
        if out is not None:
            raise ValueError("out is only supported on the CPU backend")
        return _backend.li_forward_cuda(x, p, dt, state, param_grads)
    if not isinstance(p, LIParameters):
        raise TypeError(f"p must be LIParameters, got {type(p).__name__}")
    x = _check_input(x, check_finite=False)  # checked through the final state below
    dt = check_time_step(p, dt)
    n_steps, batch, n = x.shape
    dtype = x.dtype
    coeffs = coefficients(p, dt, n, dtype)
    v, i, _, given = _initial_state(state, coeffs, batch, n, dtype)
    v0 = v.copy()
    out = _check_out(out, x, "x", x.shape, dtype)
    i1 = array_pool.empty(x.shape, dtype) if param_grads else np.empty((0, 0, 0), dtype)
    none = np.empty((0, 0, 0), dtype)
    cpu.li_forward(
        x, coeffs.a_m, coeffs.decay_s, coeffs.v_leak, v, i, out, i1, none, True, param_grads, False
    )
    _check_propagated("x", x, i, v, overwritten=_in_place(out, x))
    tape = LITape(p, dt, coeffs, out, i1 if param_grads else None, v0, given, LIState(v, i))
    out.flags.writeable = False  # the tape refers to it: an in-place change would corrupt grads
    return out, tape


def li_backward(
    grad_v: np.ndarray,
    tape: LITape,
    grad_final_state: tuple | None = None,
    *,
    out: np.ndarray | None = None,
    backend: str | None = None,
) -> LIGradients:
    """Backpropagate ``grad_v = dL/dv`` (T, B, N) through the leaky integrator in ``tape``.

    Runs on ``tape.backend`` (a ``backend`` given here must agree), as :func:`lif_backward`;
    ``out`` as there (it may be ``grad_v`` itself).
    """
    if not isinstance(tape, LITape):
        raise TypeError(
            f"tape must be the LITape returned by li_forward, got {type(tape).__name__}"
        )
    if _tape_backend(tape, backend) == "cuda":
        if out is not None:
            raise ValueError("out is only supported on the CPU backend")
        return _backend.li_backward_cuda(grad_v, tape, grad_final_state)
    v_out = tape.v
    n_steps, batch, n = v_out.shape
    dtype = v_out.dtype
    grad_v = _check_output_grad("grad_v", grad_v, v_out.shape, dtype)
    out = _check_out(out, grad_v, "grad_v", v_out.shape, dtype, (v_out, tape.i1))
    p, c = tape.p, tape.coeffs
    param_grads = tape.i1 is not None
    gx, gv, gi, i1, (g_am, g_decay, g_vleak) = _backward_buffers(tape, out, grad_final_state, 3)
    cpu.li_backward(
        grad_v, v_out, i1, tape.v0, c.a_m, c.decay_s, c.v_leak, param_grads,
        gx, gv, gi, g_am, g_decay, g_vleak,
    )  # fmt: skip
    _check_propagated("grad_v", grad_v, gv, gi, overwritten=_in_place(gx, grad_v))
    grads = LIGradients(gx, gv, gi, None, None, None)
    if param_grads:
        if not tape.state_given:
            g_vleak += gv
        grads.tau_mem_inv = _reduce_param_grad(p.tau_mem_inv, tape.dt * g_am, dtype)
        grads.tau_syn_inv = _reduce_param_grad(p.tau_syn_inv, -tape.dt * g_decay, dtype)
        grads.v_leak = _reduce_param_grad(p.v_leak, g_vleak, dtype)
    return grads


def lif_simulate(
    x,
    p: LIFParameters = LIFParameters(),
    dt: float = 1e-3,
    w_rec: np.ndarray | None = None,
    state: LIFState | tuple | None = None,
    *,
    steps: int | None = None,
    record: tuple[str, ...] | str = ("counts",),
    chunk: int = 1024,
    backend: str = "cpu",
) -> Simulation:
    r"""Forward-only LIF simulation without a tape: memory independent of the number of steps.

    By default only the spike count of every neuron,

    .. math::

        c_{b,n} = \sum_{t=0}^{T-1} z_{t,b,n},

    and the final state are kept: O(B·N) memory (plus O(chunk·B·N) working memory) for any
    number of steps and any firing rate. The spike raster and the traces are kept only when
    ``record`` asks for them.

    Parameters
    ----------
    x : ndarray (T, B, N), ndarray (B, N) with ``steps``, or iterable of (t, B, N) chunks
        Input current. A (B, N) array is a constant current applied for ``steps`` steps.
    p, dt, w_rec, state
        As in :func:`lif_forward`.
    steps : int, optional
        Number of steps for a constant current.
    record : tuple of {"counts", "spikes", "v", "i"}
        What to keep. ``"counts"`` (the default): spike counts per neuron
        (:attr:`Simulation.spike_counts`, (B, N)), which are kept in any case, as is the final
        state; ``()`` is the same. ``"spikes"``: every spike as an event (time, batch,
        neuron), O(number of spikes) memory, three int64 per spike
        (:meth:`Simulation.spike_raster` rebuilds the (T, B, N) raster). ``"v"``, ``"i"``:
        the membrane and current traces, O(T·B·N), for plotting. A single name may be given
        as a str.
    chunk : int
        Steps per kernel call (the working memory is O(chunk·B·N)).
    backend : {"cpu", "cuda", "auto"}
        Where to run. With ``"cuda"``, ``x`` (or each chunk) may also be a device array;
        spike counts, traces and the final state are then device arrays, while the spike
        events are NumPy arrays (extracted on the host once per chunk).
    """
    record = check_record(record)
    if backend != "cpu" and _backend.resolve_backend(backend) == "cuda":
        return _backend.lif_simulate_cuda(x, p, dt, w_rec, state, steps, record, chunk)
    if not isinstance(p, LIFParameters):
        raise TypeError(f"p must be LIFParameters, got {type(p).__name__}")
    chunk = check_positive_int("chunk", chunk)
    dt = check_time_step(p, dt)
    counts = events = None
    v = i = z_state = coeffs = None
    traces_v, traces_i, spike_events = [], [], []
    total = 0
    for raw in input_chunks(x, steps, chunk):
        xc = _check_input(raw)
        n_steps, batch, n = xc.shape
        if coeffs is None:
            dtype = xc.dtype
            coeffs = coefficients(p, dt, n, dtype)
            v, i, z_state, _ = _initial_state(state, coeffs, batch, n, dtype)
            counts = np.zeros((batch, n), np.int64)
            if w_rec is not None:
                w_rec_t = np.ascontiguousarray(_check_w_rec(w_rec, n, dtype).T)
            none = np.empty((0, 0, 0), dtype)
        elif xc.shape[1:] != counts.shape or xc.dtype != dtype:
            raise ValueError(
                f"every chunk of x must have shape (t, {counts.shape[0]}, {counts.shape[1]}) "
                f"and dtype {dtype}, got {xc.shape} {xc.dtype}"
            )
        z = array_pool.empty(xc.shape, dtype)
        trace = "v" in record or "i" in record
        v_out = array_pool.empty(xc.shape, dtype) if trace else none
        i_out = array_pool.empty(xc.shape, dtype) if trace else none
        common = (coeffs.a_m, coeffs.decay_s, coeffs.v_leak, coeffs.v_th, coeffs.v_reset)
        codes = (p.reset_code, p.surrogate_code, dtype.type(p.alpha), bool(p.smooth))
        if w_rec is None:
            cpu.lif_feed_forward_forward(
                xc, *common, *codes, v, i, z, none, none, v_out, i_out, True, False, False, trace
            )
            z_state = z[-1].copy()
        else:
            cpu.lif_recurrent_forward(
                xc, w_rec_t, *common, *codes, v, i, z_state, z, none, none, v_out, i_out,
                True, False, False, trace,
            )  # fmt: skip
        fired = z != 0
        counts += fired.sum(axis=0)
        if "spikes" in record:
            t_idx, b_idx, n_idx = np.nonzero(fired)
            spike_events.append((t_idx + total, b_idx, n_idx))
        if "v" in record:
            traces_v.append(v_out)
        if "i" in record:
            traces_i.append(i_out)
        total += n_steps
    if coeffs is None:
        raise ValueError("x holds no time steps")
    if "spikes" in record:
        events = [
            np.concatenate(part).astype(np.int64, copy=False)
            for part in zip(*spike_events, strict=True)
        ]
    else:
        events = [None, None, None]
    return Simulation(
        steps=total,
        spike_counts=counts,
        spike_times=events[0],
        spike_batch=events[1],
        spike_neurons=events[2],
        v=np.concatenate(traces_v) if traces_v else None,
        i=np.concatenate(traces_i) if traces_i else None,
        final_state=LIFState(v, i, z_state),
    )
