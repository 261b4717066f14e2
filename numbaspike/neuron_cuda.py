r"""The generic neuron models on the GPU: :func:`numbaspike.neuron.neuron_forward` and
:func:`~numbaspike.neuron.neuron_backward` for ``backend="cuda"``.

:func:`neuron_forward_cuda` and :func:`neuron_backward_cuda` make the checks and build the
arrays of their CPU twins in :mod:`numbaspike.neuron` (reusing its state helpers and its
:class:`~numbaspike.neuron.NeuronTape`), on device arrays, and run the model's CUDA launchers
of :mod:`numbaspike.kernels.neuron_driver_cuda`. Inputs may be NumPy arrays or device arrays
(anything with ``__cuda_array_interface__``); the output, the tape's arrays, the final state
and the gradients of the input, ``w_rec`` and the initial state are numba device arrays.

The parameter-gradient accumulators (P, B, N) are summed over the batch on the device (in
float64, in batch order, like NumPy's ``sum(axis=1, dtype=float64)`` on the CPU) and only the
(P, N) sums come to the host, where the model's ``parameter_grads`` turns them into the
per-neuron gradients; parameter gradients are therefore host values exactly as on the CPU
(a Python float for a scalar parameter, a float64 (N,) array otherwise).

Finiteness is checked as on the CPU: through the final state (forward) or the initial-state
adjoints (backward), by a reduction kernel, and only then is ``x`` (or ``grad_y``) scanned,
copying it to the host just to name the first bad index.
"""

from __future__ import annotations

import numpy as np

from . import backend as _backend
from .neuron import Gradients, NeuronTape, State, _initial_state, _reduce, _state_items
from .validation import check_all_finite

__all__ = ["neuron_backward_cuda", "neuron_forward_cuda"]


def _kernels():
    from .kernels import cuda as kernels

    return kernels


def _device_initial_state(model, p, items: dict, batch: int, n: int, dtype):
    """The (S + 1, B, N) initial state on the device (device twin of ``_initial_state``)."""
    on_device = {k: v for k, v in items.items() if _backend.is_device_array(v)}
    host_items = {k: v for k, v in items.items() if k not in on_device}
    state = _backend.to_device(_initial_state(model, p, host_items, batch, n, dtype))
    names = (*model.state, "z")
    for name, value in on_device.items():
        row = names.index(name)
        state[row].copy_to_device(_backend._device_state(f"state.{name}", value, batch, n, dtype))
    return state


def _device_adjoints(model, grad_final_state, recurrent: bool, batch: int, n: int, dtype):
    """dL/d(final state) as an (S + 1, B, N) device array (zeros where not given)."""
    kernels = _kernels()
    gstate = kernels.zeros((len(model.state) + 1, batch, n), dtype)
    if grad_final_state is None:
        return gstate
    names = (*model.state, "z") if recurrent else model.state
    for name, value in _state_items(grad_final_state, model, recurrent).items():
        adjoint = _backend._device_state(f"grad_final_state.{name}", value, batch, n, dtype)
        gstate[names.index(name)].copy_to_device(adjoint)
    return gstate


def neuron_forward_cuda(x, p, dt, w_rec, state, model):
    """:func:`numbaspike.neuron.neuron_forward` of a generic model on the GPU.

    Parameters
    ----------
    x : ndarray or device array (T, B, N), float32 or float64
    p : the parameters of ``model``
    dt : float
    w_rec : ndarray or device array (N, N), optional
    state : mapping or NamedTuple, optional
        Initial state by variable name; each value a host or device array (or scalar).
    model : NeuronModel
        The registered model of ``p`` (:func:`numbaspike.models.model_of`).

    Returns
    -------
    z : device array (T, B, N)
    tape : NeuronTape
        With device arrays (``coeffs``, ``tape``, ``state0``, ``z_previous``, ``w_rec``,
        ``final_state``); :func:`neuron_backward_cuda` reverses it.
    """
    from .kernels.neuron_driver_cuda import cuda_kernels, transpose

    _backend.resolve_backend("cuda")  # the error that says how to get CUDA, if it is missing
    kernels = _kernels()
    x = _backend.device_float_array("x", x, ndim=3, shape_doc="(T, B, N)", check_finite=False)
    if 0 in tuple(x.shape):
        raise ValueError(f"x must have non-zero T, B and N, got shape {tuple(x.shape)}")
    dt = model.check(p, dt)
    n_steps, batch, n = x.shape
    dtype = np.dtype(x.dtype)
    if p.size is not None and p.size != n:
        raise ValueError(f"per-neuron parameters of p have size {p.size}, x has N={n}")
    coeffs = _backend.to_device(model.make_coefficients(p, dt, n, dtype))
    modes = model.modes(p, dtype)
    recurrent = w_rec is not None
    if recurrent:
        w_rec = _backend._device_w_rec(w_rec, n, dtype)
        w_t = transpose(w_rec)
    else:
        w_t = kernels.empty((0, 0), dtype)
    items = _state_items(state, model, recurrent)
    state_now = _device_initial_state(model, p, items, batch, n, dtype)
    state0 = kernels.copy(state_now)
    z = kernels.empty(x.shape, dtype)
    tape = kernels.empty((model.tape_rows, n_steps, batch, n), dtype)
    forward, _ = cuda_kernels(model, modes)
    forward(0, batch, x, w_t, coeffs, modes, state_now, z, tape, True)
    if kernels.any_nonfinite(state_now):
        if kernels.any_nonfinite(x):
            check_all_finite("x", x.copy_to_host())  # raises, naming the first bad index
        raise ValueError("the state overflowed (x or w_rec is too large)")
    last = len(model.state)
    z_previous = None
    if recurrent:
        z_previous = kernels.empty(x.shape, dtype)
        z_previous[0].copy_to_device(state0[last])
        if n_steps > 1:
            z_previous[1:].copy_to_device(z[: n_steps - 1])
    final = State({name: state_now[row] for row, name in enumerate(model.state)})
    if recurrent:
        final["z"] = state_now[last]
    return z, NeuronTape(
        model, p, dt, coeffs, modes, tape, state0, z_previous, w_rec, frozenset(items), final
    )


def neuron_backward_cuda(grad_y, tape: NeuronTape, grad_final_state=None) -> Gradients:
    """:func:`numbaspike.neuron.neuron_backward` for a tape of :func:`neuron_forward_cuda`.

    Parameters
    ----------
    grad_y : ndarray or device array (T, B, N)
        dL/dz.
    tape : NeuronTape
        Recorded by :func:`neuron_forward_cuda`.
    grad_final_state : mapping, optional
        dL/d(final state) by variable name, host or device values.

    Returns
    -------
    Gradients
        ``x``, ``w_rec`` (recurrent layers), the initial state (``v0``, ...; ``z0`` for
        recurrent layers) as device arrays, and each learnable parameter by name as on the
        CPU: a Python float for a scalar parameter, a float64 (N,) NumPy array otherwise.
    """
    from .kernels.neuron_driver_cuda import cuda_kernels

    if not isinstance(tape, NeuronTape) or not _backend.is_device_array(tape.tape):
        raise TypeError("tape must come from neuron_forward_cuda (a tape of device arrays)")
    kernels = _kernels()
    model = tape.model
    n_steps, batch, n = tape.tape.shape[1:]
    dtype = np.dtype(tape.tape.dtype)
    shape = (n_steps, batch, n)
    recurrent = tape.w_rec is not None
    grad_y = _backend.device_float_array(
        "grad_y", grad_y, ndim=3, dtype=dtype, shape_doc=str(shape), check_finite=False
    )
    if tuple(grad_y.shape) != shape:
        raise ValueError(f"grad_y must have shape {shape}, got {tuple(grad_y.shape)}")
    gstate = _device_adjoints(model, grad_final_state, recurrent, batch, n, dtype)
    gx = kernels.empty(shape, dtype)
    gp = kernels.zeros((len(model.grad_rows), batch, n), dtype)
    _, backward = cuda_kernels(model, tape.modes)
    w = tape.w_rec if recurrent else kernels.empty((0, 0), dtype)
    backward(0, batch, grad_y, w, tape.coeffs, tape.modes, tape.state0, tape.tape, gstate, gx, gp)
    if kernels.any_nonfinite(gstate):
        if kernels.any_nonfinite(grad_y):
            check_all_finite("grad_y", grad_y.copy_to_host())  # raises, naming the index
        if grad_final_state is not None:
            raise ValueError("grad_final_state contains NaN or inf, or the gradient overflowed")
        raise ValueError("the gradient overflowed (grad_y or the weights are too large)")
    grads = Gradients(x=gx)
    if recurrent:
        grad_w_rec = kernels.empty((n, n), dtype)
        rows = n_steps * batch
        kernels.matmul(
            gx.reshape(rows, n), tape.z_previous.reshape(rows, n), grad_w_rec, trans_a=True
        )
        grads["w_rec"] = grad_w_rec
    per_neuron = model.parameter_grads(_batch_sums(gp), tape.dt)
    owned = [
        row
        for row, name in enumerate(model.state)
        if model.initial_state_owner.get(name) is not None and name not in tape.given
    ]
    owned_sums = _batch_sums(gstate, owned)
    for row, name in enumerate(model.state):
        grads[f"{name}0"] = gstate[row]
        if row in owned:
            owner = model.initial_state_owner[name]
            per_neuron[owner] = per_neuron[owner] + owned_sums[owned.index(row)]
    if recurrent:
        grads["z0"] = gstate[len(model.state)]
    for name in model.learnable:
        grads[name] = _reduce(per_neuron[name], getattr(tape.p, name))
    return grads


def _batch_sums(acc, rows=None) -> np.ndarray:
    """``acc[rows].sum(axis=1)`` of an (R, B, N) device array, in float64 on the device,
    copied to the host as an (len(rows), N) array (all rows by default)."""
    kernels = _kernels()
    rows = range(acc.shape[0]) if rows is None else rows
    sums = kernels.empty((len(rows), acc.shape[2]), np.float64)
    for k, row in enumerate(rows):
        kernels.reduce_batch(acc[row], 1.0, None, sums[k])
    return sums.copy_to_host()
