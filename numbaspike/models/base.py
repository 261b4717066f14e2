r"""What a neuron model is to numbaspike: the record every model file fills in.

A model file (``numbaspike/models/<name>.py``) holds the model's parameter class, its
equations (module docstring), and a :class:`NeuronModel` that names its state variables
and learnable parameters and gives its scalar forward step and adjoint. The step and adjoint
are plain Python on scalars and arrays, built by factories that receive the compiled spike
and surrogate functions of the target, so that one source compiles for the CPU
(``numba.njit``) and for CUDA (``numba.cuda.jit(device=True)``); the time loops, batch
parallelism, recurrent products and reductions are written once, in
:mod:`numbaspike.kernels.neuron_driver`.

Array conventions of the step and adjoint (``b`` the batch row, ``n`` the neuron):

* ``state`` (S + 1, B, N): the model's state variables in the order of
  :attr:`NeuronModel.state`, then the spikes of the last step (read by the recurrent product);
* ``coeffs`` (C, N): per-neuron coefficients in the working dtype, rows as
  :attr:`NeuronModel.coefficients` (e.g. ``a_m = dt * tau_mem_inv``);
* ``tape`` (K, T, B, N): what the adjoint needs of each step, ``K`` = :attr:`tape_rows`;
* ``gstate`` (S + 1, B, N): the adjoints of the state after the step being reversed (the
  adjoint replaces them by those of the state before it); the last row is the adjoint of
  the step's spikes through the recurrent product, which the adjoint reads and clears;
* ``gp`` (P, B, N): per-(b, n) accumulators of the parameter gradients, rows as
  :attr:`NeuronModel.grad_rows`, summed over the batch and converted by
  :attr:`NeuronModel.parameter_grads`.

``modes`` is ``(surrogate code, alpha, reset code, detach_reset, smooth)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "NeuronModel",
    "Specialisation",
    "resting_membrane",
    "spiking_modes",
    "register",
    "model_of",
    "model_named",
    "registered_models",
]


@dataclass(frozen=True, eq=False)
class NeuronModel:
    """A spiking neuron model, as the generic drivers and layers use it.

    Attributes
    ----------
    name : str
        Registry key and the CLI's ``--neuron`` value, e.g. ``"lif_box"``.
    parameters : type
        The parameter class; its type selects the model in :func:`numbaspike.neuron_forward`.
    state : tuple of str
        State variables, without the spikes (e.g. ``("v", "i", "b")``).
    learnable : tuple of str
        Parameters that can take gradients (per neuron).
    coefficients : tuple of str
        Rows of the coefficient array that :attr:`make_coefficients` returns.
    make_coefficients : callable ``(p, dt, n, dtype) -> ndarray (C, N)``
    tape_rows : int
        Rows ``K`` of the tape.
    grad_rows : tuple of str
        Rows of the parameter-gradient accumulators.
    make_step, make_adjoint : callable ``(spike, surrogate_grad, compile_scalar) -> function``
        Build the scalar step ``step(state, coeffs, modes, x, tape, t, b, n) -> y`` and
        adjoint ``adjoint(gstate, coeffs, modes, gy, state0, tape, t, b, n, gp) -> gx``
        from the target's compiled ``spike(u, code, alpha, smooth)`` and
        ``surrogate_grad(code, u, alpha)``; ``compile_scalar(f)`` compiles a plain scalar
        function of the model file for the same target, so that the step can call it.
        ``y`` is the layer's output: the spikes, or the membrane of a readout (LI).
    parameter_grads : callable ``(sums (P, N), dt) -> dict``
        Gradients of the learnable parameters, per neuron, from the batch-summed accumulators.
    initial_state : callable ``(p, n) -> dict``
        The default initial state, per neuron (N,), in float64.
    initial_state_owner : mapping
        Default initial state variables that equal a parameter and pass their gradient to
        it (``{"v": "v_leak"}``: :math:`v_0 = v_{leak}`); the others are constants.
    modes : callable ``(p, dtype) -> tuple``
        ``(surrogate code, alpha, reset code, detach_reset, smooth)``.
    check : callable ``(p, dt) -> None``
        Validation of ``p`` against the time step (stable Euler steps).
    specialised : callable ``() -> Specialisation``, optional
        Hand-tuned kernels of the same equations that the functional API and the layers use
        instead of the generic driver (LIF and LI); called on first use, so that a model
        file need not import them.
    spiking : bool
        Whether the layer's output is spikes (False for a readout such as LI, whose output
        is its membrane).
    sparse_backward : bool
        Whether the specialised kernels take ``sparse_tol`` (the sparse backward pass with a
        compact tape, :mod:`numbaspike.compact_tape`); the other models refuse it.

    Notes
    -----
    Three optional hooks let :mod:`numbaspike.gradcheck` check a model's smooth-mode
    gradients with finite differences (None: that check is not available for the model):

    ``kink_arguments(tape) -> ndarray (T, B, N)``
        The argument :math:`u` of the spike function at every step (e.g. ``h - v_th``, LSNN's
        ``v_d - b_d``), from a :class:`~numbaspike.neuron.NeuronTape` (float64); ``inf`` where
        the spike's value is not used (a refractory step). A finite-difference stencil that
        moves some :math:`u` across a kink of the surrogate's ``F`` is excluded and counted.
    ``discrete_signature(tape) -> ndarray or None``
        Discrete values of the forward pass that carry no derivative (LIFRefrac's refractory
        masks); a stencil that changes any of them is excluded and counted like a kink.
    ``replay(x, p, dt, w_rec=None, state=None, held=None) -> (z, u, final_state, discrete)``
        The smooth-mode forward pass in NumPy (float64): ``x`` (T, B, N), the recurrent
        weights, the initial state by name (``"z"`` for the recurrent product; defaults as
        the model's), and ``held`` (T, B, N): the spikes that the ``detach_reset`` terms
        (the reset, LSNN's threshold jump) use instead of the computed ones (None: the
        computed ones). Returns the spikes, the ``kink_arguments``, the final state by name
        and the ``discrete_signature``. With ``held`` it is the function whose gradient the
        detached backward computes, which finite differences can then check.
    """

    name: str
    parameters: type
    state: tuple[str, ...]
    learnable: tuple[str, ...]
    coefficients: tuple[str, ...]
    make_coefficients: Callable[[Any, float, int, np.dtype], np.ndarray]
    tape_rows: int
    grad_rows: tuple[str, ...]
    make_step: Callable
    make_adjoint: Callable
    parameter_grads: Callable[[np.ndarray, float], dict[str, np.ndarray]]
    initial_state: Callable[[Any, int], dict[str, np.ndarray]]
    initial_state_owner: Mapping[str, str]
    modes: Callable[[Any, np.dtype], tuple]
    check: Callable[[Any, float], None]
    specialised: Callable[[], Specialisation] | None = None
    spiking: bool = True
    sparse_backward: bool = False
    # gradient checking (numbaspike.gradcheck); optional, documented in the Notes above
    kink_arguments: Callable[[Any], np.ndarray] | None = None
    discrete_signature: Callable[[Any], np.ndarray] | None = None
    replay: Callable | None = None


@dataclass(frozen=True, eq=False)
class Specialisation:
    """Hand-tuned kernels that replace the generic driver for one model.

    They compute what the model's step and adjoint compute on the generic driver (a test
    checks the two against each other) and keep the functional API's conventions.

    Attributes
    ----------
    tape_type : type
        The type of the tapes ``forward`` returns (selects ``backward``).
    forward : callable ``(x, p, dt, w_rec, state, **options) -> (y, tape)``
    backward : callable ``(grad_y, tape, grad_final_state, out) -> Gradients``
    simulate : callable or None
        Forward-only simulation (:func:`~numbaspike.neuron_simulate`); None for a model
        that emits no spikes.
    """

    tape_type: type
    forward: Callable
    backward: Callable
    simulate: Callable | None


def spiking_modes(p, dtype: np.dtype) -> tuple:
    """``modes`` of a spiking model whose parameters have the fields of
    :class:`~numbaspike.params.SpikingParameters`: ``(surrogate code, alpha in dtype, reset
    code, detach_reset, smooth)``."""
    return (
        p.surrogate_code,
        dtype.type(p.alpha),
        p.reset_code,
        bool(p.detach_reset),
        bool(p.smooth),
    )


def resting_membrane(p, n: int) -> dict[str, np.ndarray]:
    """The default initial membrane :math:`v_0 = v_{leak}`, per neuron (N,) in float64."""
    return {"v": np.broadcast_to(np.asarray(p.v_leak, np.float64), (n,))}


_REGISTRY: dict[str, NeuronModel] = {}


def register(model: NeuronModel) -> NeuronModel:
    """Enrol a model: the functional API, the layers, checkpoints and the CLI then know it."""
    if not isinstance(model, NeuronModel):
        raise TypeError(f"model must be a NeuronModel, got {type(model).__name__}")
    known = _REGISTRY.get(model.name)
    if known is not None and known is not model:
        raise ValueError(f"a neuron model named {model.name!r} is registered already")
    _REGISTRY[model.name] = model
    return model


def registered_models() -> dict[str, NeuronModel]:
    """The registered models, by name."""
    return dict(_REGISTRY)


def model_named(name: str) -> NeuronModel:
    """The registered model called ``name``."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown neuron model {name!r}; registered: {sorted(_REGISTRY)}"
        ) from None


def model_of(p) -> NeuronModel:
    """The registered model whose parameter class ``p`` is an instance of."""
    for model in _REGISTRY.values():
        if type(p) is model.parameters:
            return model
    names = sorted(m.parameters.__name__ for m in _REGISTRY.values())
    raise TypeError(
        f"p must be the parameters of a neuron model ({names}), got {type(p).__name__}"
    )
