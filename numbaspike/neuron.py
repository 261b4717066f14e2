r"""One functional entry point for every neuron model: the type of ``p`` picks the model.

``neuron_forward(x, p, ...)`` runs a layer of the model of ``p`` over all steps of ``x``
(T, B, N) and returns its output and a tape; ``neuron_backward(grad_y, tape)`` returns a
:class:`Gradients` mapping (``grads["x"]`` or ``grads.x``): the input, ``w_rec``, the initial
state (``v0``, ``i0``, ``b0``, ``z0``, ...) and each learnable parameter by its name.
``neuron_simulate`` runs a spiking model forward only (no tape, O(B·N) memory).

LIF and LI run on their tuned kernels (:func:`~numbaspike.lif_forward`,
:func:`~numbaspike.li_forward`, with the same bits); the other models
(:mod:`numbaspike.models`) on the generic driver of :mod:`numbaspike.kernels.neuron_driver`.
The gradients of a model's parameters are summed over the batch (and over the neurons when
the parameter was given as a scalar). A default initial state that equals a parameter
(:math:`v_0 = v_{leak}`) passes its gradient to that parameter; LSNN's :math:`b_0 = v_{th}`
is a constant, as in Norse, and its gradient is returned as ``b0`` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from . import backend as _backend
from .kernels import projection
from .kernels.neuron_driver import cpu_kernels, run_rows
from .models import model_of, registered_models
from .models.base import NeuronModel
from .validation import as_float_array, broadcast_state, check_all_finite, sum_is_finite

__all__ = [
    "Gradients",
    "NeuronTape",
    "generic_forward",
    "neuron_backward",
    "neuron_forward",
    "neuron_simulate",
]


class Gradients(dict):
    """Gradients by name, readable as ``grads["x"]`` or ``grads.x``."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"no gradient {name!r}; this backward pass returned {sorted(self)}"
            ) from None


class State(dict):
    """A layer's state by variable name (``state["v"]`` or ``state.v``), each (B, N)."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"no state variable {name!r}; this state has {sorted(self)}"
            ) from None


@dataclass(eq=False)
class NeuronTape:
    """What :func:`neuron_backward` needs from :func:`neuron_forward` (generic models).

    Attributes
    ----------
    model : NeuronModel
    p : the model's parameters
    dt : float
    coeffs : ndarray (C, N)
    modes : tuple
    tape : ndarray (K, T, B, N)
        The model's per-step values (see its module).
    state0 : ndarray (S + 1, B, N)
        The initial state, spikes last.
    z_previous : ndarray (T, B, N) or None
        Recurrent layers: the spikes each step's recurrent product read (a copy).
    w_rec : ndarray (N, N) or None
    given : frozenset of str
        The state variables given by the caller (the others took the model's defaults).
    final_state : State
    """

    model: NeuronModel
    p: Any
    dt: float
    coeffs: np.ndarray
    modes: tuple
    tape: np.ndarray
    state0: np.ndarray
    z_previous: np.ndarray | None
    w_rec: np.ndarray | None
    given: frozenset
    final_state: State

    @property
    def nbytes(self) -> int:
        """Bytes held by the tape (excluding the returned output)."""
        extra = 0 if self.z_previous is None else self.z_previous.nbytes
        return self.tape.nbytes + self.state0.nbytes + extra


def _check_x(x) -> np.ndarray:
    x = as_float_array("x", x, ndim=3, shape_doc="(T, B, N)", check_finite=False)
    if 0 in x.shape:
        raise ValueError(f"x must have non-zero T, B and N, got shape {x.shape}")
    return np.ascontiguousarray(x)


def _state_items(state, model: NeuronModel, recurrent: bool) -> dict:
    """``state`` as a {name: value} dict of the model's variables (plus ``z``)."""
    allowed = (*model.state, "z") if recurrent else model.state
    if state is None:
        return {}
    if not isinstance(state, Mapping):
        raise TypeError(
            f"state must be a mapping of the {model.name} model's variables {list(allowed)} "
            f"(e.g. the final_state of its tape), got {type(state).__name__}"
        )
    items = dict(state)
    unknown = sorted(set(items) - set(allowed))
    if unknown:
        raise ValueError(
            f"state: unknown variables {unknown} for the {model.name} model, which has "
            f"{list(allowed)}"
        )
    return {k: v for k, v in items.items() if v is not None}


def _check_size(p, n: int) -> None:
    """Per-neuron parameters must have one value per neuron of ``x``."""
    if p.size is not None and p.size != n:
        sized = sorted(f.name for f in fields(p) if np.ndim(getattr(p, f.name)) == 1)
        raise ValueError(
            f"per-neuron parameters of p ({', '.join(sized)}) have size {p.size}, but x has "
            f"N={n} neurons"
        )


def _initial_state(model, p, items: dict, batch: int, n: int, dtype) -> np.ndarray:
    defaults = model.initial_state(p, n)
    state = np.zeros((len(model.state) + 1, batch, n), dtype)
    for row, name in enumerate((*model.state, "z")):
        if name in items:
            state[row] = broadcast_state(f"state.{name}", items[name], batch, n, dtype)
        elif name in defaults:
            state[row] = np.asarray(defaults[name], dtype)
    return state


def neuron_forward(
    x,
    p,
    dt: float = 1e-3,
    w_rec=None,
    state=None,
    *,
    param_grads: bool | None = None,
    sparse_tol: float | None = None,
    out: np.ndarray | None = None,
    backend: str = "cpu",
):
    """Run a layer of the neuron model of ``p`` over all steps of ``x``.

    Parameters
    ----------
    x : ndarray (T, B, N), float32 or float64
        Input current per step.
    p : parameters of a registered model
        :class:`~numbaspike.LIFParameters`, :class:`~numbaspike.LIParameters`,
        :class:`~numbaspike.models.LIFBoxParameters`, :class:`~numbaspike.models.LSNNParameters`
        or :class:`~numbaspike.models.LIFRefracParameters`.
    dt : float
        Time step (s); ``dt`` times each inverse time constant must be < 1.
    w_rec : ndarray (N, N), optional
        Recurrent weights (``(N_out, N_in)``): the input of step ``t`` becomes
        ``x_t + z_{t-1} @ w_rec.T``. Not for the LI readout.
    state : mapping or NamedTuple, optional
        Initial state by variable name (``v``, ``i``, ``b``, ``rho``, and ``z`` for a
        recurrent layer), each broadcastable to (B, N); missing ones take the model's default.
    param_grads, sparse_tol, out, backend
        As in :func:`~numbaspike.lif_forward` (LIF). The other models keep what their
        parameter gradients need in any case, refuse ``sparse_tol``, take ``out`` (the
        array for the spikes, CPU only) and run on CUDA with ``backend="cuda"`` (device
        arrays out, as for LIF).

    Returns
    -------
    y : ndarray (T, B, N)
        Spikes (LI: the membrane).
    tape : LIFTape, LITape or NeuronTape
    """
    model = model_of(p)
    if model.specialised is not None:
        return model.specialised().forward(
            x, p, dt, w_rec, state, param_grads=param_grads, sparse_tol=sparse_tol, out=out,
            backend=backend,
        )  # fmt: skip
    return generic_forward(
        model, x, p, dt, w_rec, state, sparse_tol=sparse_tol, out=out, backend=backend
    )


def generic_forward(
    model: NeuronModel,
    x,
    p,
    dt: float = 1e-3,
    w_rec=None,
    state=None,
    *,
    sparse_tol: float | None = None,
    out: np.ndarray | None = None,
    backend: str = "cpu",
):
    """:func:`neuron_forward` on the generic driver, also for a model with tuned kernels.

    The tests run LIF and LI this way to check their tuned kernels against the model's
    step and adjoint; :func:`neuron_backward` takes the returned :class:`NeuronTape`.
    """
    if model_of(p) is not model:
        raise TypeError(f"p must be {model.parameters.__name__}, got {type(p).__name__}")
    if w_rec is not None and not model.spiking:
        raise ValueError(
            f"w_rec: the {model.name} model emits no spikes, it has no recurrent form"
        )
    if sparse_tol is not None:
        raise ValueError(f"sparse_tol is implemented for the LIF model only, not for {model.name}")
    if _backend.resolve_backend(backend) == "cuda":
        if out is not None:
            raise ValueError("out is only supported on the CPU backend")
        from .neuron_cuda import neuron_forward_cuda

        return neuron_forward_cuda(x, p, dt, w_rec, state, model)
    x = _check_x(x)
    dt = model.check(p, dt)
    n_steps, batch, n = x.shape
    dtype = x.dtype
    _check_size(p, n)
    coeffs = model.make_coefficients(p, dt, n, dtype)
    modes = model.modes(p, dtype)
    recurrent = w_rec is not None
    if recurrent:
        w_rec = as_float_array("w_rec", w_rec, ndim=2, dtype=dtype, shape_doc=f"({n}, {n})")
        if w_rec.shape != (n, n):
            raise ValueError(f"w_rec must have shape (N, N) = ({n}, {n}), got {w_rec.shape}")
        w_rec = np.ascontiguousarray(w_rec)
    items = _state_items(state, model, recurrent)
    state_now = _initial_state(model, p, items, batch, n, dtype)
    state0 = state_now.copy()
    if out is None:
        z = np.empty_like(x)
    else:
        z = as_float_array("out", out, ndim=3, dtype=dtype, check_finite=False)
        if z.shape != x.shape or not z.flags.c_contiguous or not z.flags.writeable:
            raise ValueError(
                f"out must be a writeable C-contiguous array of shape {x.shape}, dtype {dtype}"
            )
    tape = np.empty((model.tape_rows, n_steps, batch, n), dtype)
    forward, _ = cpu_kernels(model, modes)
    w_t = np.ascontiguousarray(w_rec.T) if recurrent else np.zeros((0, 0), dtype)
    run_rows(forward, batch, x, w_t, coeffs, modes, state_now, z, tape, True)
    if not sum_is_finite(state_now):
        check_all_finite("x", x)
        raise ValueError("the state overflowed (x or w_rec is too large)")
    z_previous = None
    if recurrent:
        z_previous = np.empty_like(z)
        z_previous[0] = state0[-1]
        z_previous[1:] = z[:-1]
    final = State({name: state_now[row] for row, name in enumerate(model.state)})
    if recurrent:
        final["z"] = state_now[-1]
    return z, NeuronTape(
        model, p, dt, coeffs, modes, tape, state0, z_previous, w_rec, frozenset(items), final
    )


def _recurrent_weight_grad(gx: np.ndarray, z_previous: np.ndarray) -> np.ndarray:
    r""":math:`\sum_t g_{x,t}^\top z_{t-1}` for (T·B, N) arrays: from the spike events when the
    spikes are sparse (binary spikes, the event-driven path of the projections), else by BLAS."""
    n = gx.shape[1]
    if projection.use_sparse_path(projection.density(z_previous), n):
        grad = np.zeros((n, n), gx.dtype)
        return projection.events_weight_grad(projection.spike_events(z_previous), gx, grad)
    return gx.T @ z_previous


def _reduce(per_neuron: np.ndarray, given) -> float | np.ndarray:
    return float(per_neuron.sum()) if np.ndim(given) == 0 else per_neuron


def neuron_backward(grad_y, tape, grad_final_state=None, *, out: np.ndarray | None = None):
    """Backpropagate ``grad_y`` = dL/dy (T, B, N) through the layer that recorded ``tape``.

    Parameters
    ----------
    grad_y : ndarray (T, B, N)
    tape : the tape of :func:`neuron_forward`
    grad_final_state : mapping, optional
        dL/d(final state) by variable name (truncated BPTT across calls).
    out : ndarray (T, B, N), optional
        The array for dL/dx (it may be ``grad_y``).

    Returns
    -------
    Gradients
        ``x``, ``w_rec`` (recurrent layers), the initial state (``v0``, ``i0``, ...; ``z0``
        for recurrent layers) and each learnable parameter by name (the shape it was given
        with: a float for a scalar, (N,) otherwise).
    """
    for model in registered_models().values():
        if model.specialised is not None:
            tuned = model.specialised()
            if isinstance(tape, tuned.tape_type):
                return tuned.backward(grad_y, tape, grad_final_state, out)
    if not isinstance(tape, NeuronTape):
        raise TypeError(f"tape must come from neuron_forward, got {type(tape).__name__}")
    if _backend.is_device_array(tape.tape):  # recorded with backend="cuda"
        if out is not None:
            raise ValueError("out is only supported on the CPU backend")
        from .neuron_cuda import neuron_backward_cuda

        return neuron_backward_cuda(grad_y, tape, grad_final_state)
    model = tape.model
    _, batch, n = tape.tape.shape[1:]
    dtype = tape.tape.dtype
    shape = (tape.tape.shape[1], batch, n)
    grad_y = as_float_array("grad_y", grad_y, ndim=3, dtype=dtype, check_finite=False)
    if grad_y.shape != shape:
        raise ValueError(f"grad_y must have shape {shape}, got {grad_y.shape}")
    grad_y = np.ascontiguousarray(grad_y)
    gstate = np.zeros_like(tape.state0)
    if grad_final_state is not None:
        names = (*model.state, "z") if tape.w_rec is not None else model.state
        for name, value in _state_items(grad_final_state, model, tape.w_rec is not None).items():
            gstate[names.index(name)] = broadcast_state(
                f"grad_final_state.{name}", value, batch, n, dtype
            )
    gx = np.empty_like(grad_y) if out is None else out
    if gx.shape != shape or gx.dtype != dtype or not gx.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous array of shape {shape}, dtype {dtype}")
    gp = np.zeros((len(model.grad_rows), batch, n), dtype)
    _, backward = cpu_kernels(model, tape.modes)
    w = tape.w_rec if tape.w_rec is not None else np.zeros((0, 0), dtype)
    run_rows(
        backward, batch, grad_y, w, tape.coeffs, tape.modes, tape.state0, tape.tape, gstate, gx, gp
    )
    if not sum_is_finite(gstate):
        check_all_finite("grad_y", grad_y)
        if grad_final_state is not None:
            raise ValueError("grad_final_state contains NaN or inf, or the gradient overflowed")
        raise ValueError("the gradient overflowed (grad_y or the weights are too large)")
    grads = Gradients(x=gx)
    if tape.w_rec is not None:
        grads["w_rec"] = _recurrent_weight_grad(gx.reshape(-1, n), tape.z_previous.reshape(-1, n))
    per_neuron = model.parameter_grads(gp.sum(axis=1, dtype=np.float64), tape.dt)
    for row, name in enumerate(model.state):
        grads[f"{name}0"] = gstate[row]
        owner = model.initial_state_owner.get(name)
        if owner is not None and name not in tape.given:
            per_neuron[owner] = per_neuron[owner] + gstate[row].sum(axis=0, dtype=np.float64)
    if tape.w_rec is not None:
        grads["z0"] = gstate[-1]
    for name in model.learnable:
        grads[name] = _reduce(per_neuron[name], getattr(tape.p, name))
    return grads


def state_tuple(state, names: tuple[str, ...], model: str, p):
    """An initial state given by name as the ``(v, i[, z])`` tuple of the tuned LIF and LI
    kernels (a tuple or NamedTuple passes unchanged).

    An empty mapping is no state (the default, whose :math:`v_0 = v_{leak}` passes its
    gradient to ``v_leak``); a variable left out takes its default value (``v_leak``, 0).
    """
    if state is None or isinstance(state, tuple) or not isinstance(state, Mapping):
        return state
    unknown = sorted(set(state) - set(names))
    if unknown:
        raise ValueError(
            f"state: unknown variables {unknown} for the {model} model, which has {list(names)}"
        )
    given = {k: v for k, v in state.items() if v is not None}
    if not given:
        return None
    defaults = {"v": np.asarray(p.v_leak, np.float64), "i": 0.0, "z": None}
    return tuple(given.get(k, defaults[k]) for k in names)


def final_state_tuple(mapping, names: tuple[str, ...]) -> tuple:
    """``grad_final_state`` given by name (or as a tuple) as a tuple in the order of ``names``."""
    if isinstance(mapping, Mapping):
        unknown = sorted(set(mapping) - set(names))
        if unknown:
            raise ValueError(
                f"grad_final_state: unknown variables {unknown}, expected {list(names)}"
            )
        return tuple(mapping.get(k) for k in names)
    return tuple(mapping) + (None,) * (len(names) - len(mapping))


def neuron_simulate(
    x,
    p,
    dt: float = 1e-3,
    w_rec=None,
    state=None,
    steps: int | None = None,
    record=("counts",),
    chunk: int = 1024,
    backend: str = "cpu",
):
    """Simulate a spiking layer forward only (no tape): O(B·N) memory unless traces are kept.

    For :class:`~numbaspike.LIFParameters` this is :func:`~numbaspike.lif_simulate`; other
    models accept ``record`` names ``"counts"`` (default), ``"spikes"`` and their state
    variables (``"v"``, ``"i"``, ``"b"``, ``"rho"``). Returns a :class:`SimulationRecord`.
    """
    model = model_of(p)
    if model.specialised is not None:
        simulate_tuned = model.specialised().simulate
        if simulate_tuned is None:
            raise ValueError(
                f"p: neuron_simulate runs spiking models; the {model.name} model emits no spikes"
            )
        return simulate_tuned(
            x, p, dt, w_rec, state, steps=steps, record=record, chunk=chunk, backend=backend
        )
    from .simulate_models import simulate

    return simulate(model, x, p, dt, w_rec, state, steps, record, chunk, backend)
