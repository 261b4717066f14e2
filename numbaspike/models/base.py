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

__all__ = ["NeuronModel", "register", "model_of", "model_named", "registered_models"]


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
    make_step, make_adjoint : callable ``(spike, surrogate_grad) -> function``
        Build the scalar step ``step(state, coeffs, modes, x, tape, t, b, n) -> z`` and
        adjoint ``adjoint(gstate, coeffs, modes, gz, state0, tape, t, b, n, gp) -> gx``
        from the target's compiled ``spike(u, code, alpha, smooth)`` and
        ``surrogate_grad(code, u, alpha)``.
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
