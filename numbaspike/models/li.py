r"""LI: the leaky integrator, the non-spiking readout (Norse's ``li_feed_forward_step``).

Per step, explicit Euler with :math:`a_m = \Delta t\,\tau_{mem}^{-1}` and
:math:`a_s = \Delta t\,\tau_{syn}^{-1}`; the layer's output is the membrane :math:`v_t`:

.. math::

    i'_t = i_{t-1} + x_t, \qquad
    v_t = v_{t-1} + a_m\,\bigl((v_{leak} - v_{t-1}) + i'_t\bigr), \qquad
    i_t = (1 - a_s)\, i'_t

Default initial state :math:`v_0 = v_{leak}`, :math:`i_0 = 0`. The adjoint is
:func:`li_adjoint_step`. As for :mod:`~numbaspike.models.lif`, the functional API and the
layers run hand-tuned kernels of these functions and :data:`LI` the generic driver.

References
----------
Pehle & Pedersen (2021), Norse; Cramer, Stradmann, Schemmel & Zenke (2022), "The Heidelberg
spiking data sets", IEEE TNNLS 33:2744 (the LI readout with a max-over-time loss).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar

import numpy as np

from ..params import ArrayOrScalar, _as_param, _param_size, check_rates
from ..validation import neuron_array
from .base import NeuronModel, Specialisation, register, resting_membrane
from .lif import membrane_step

__all__ = ["LI", "LIParameters", "LI_NEURON_FIELDS", "li_adjoint_step"]

#: Fields that may be given per neuron (shape ``(N,)``) and have gradients.
LI_NEURON_FIELDS = ("tau_mem_inv", "tau_syn_inv", "v_leak")


@dataclass(frozen=True, eq=False)
class LIParameters:
    r"""Parameters of the leaky integrator (non-spiking readout), Norse's ``li_feed_forward_step``.

    .. math::

        i' = i + x_t, \qquad v \leftarrow v + a_m\,(v_{leak} - v + i'), \qquad
        i \leftarrow (1 - a_s)\, i'

    Parameters
    ----------
    tau_syn_inv, tau_mem_inv : float or ndarray of shape (N,)
        Inverse synaptic and membrane time constants (1/s). Must be positive.
    v_leak : float or ndarray of shape (N,)
        Leak (resting) potential.
    """

    tau_syn_inv: ArrayOrScalar = 200.0
    tau_mem_inv: ArrayOrScalar = 100.0
    v_leak: ArrayOrScalar = 0.0
    size: int | None = field(init=False, repr=False, default=None)

    neuron_fields: ClassVar[tuple[str, ...]] = LI_NEURON_FIELDS
    positive_fields: ClassVar[tuple[str, ...]] = ("tau_mem_inv", "tau_syn_inv")

    def __post_init__(self) -> None:
        for name in LI_NEURON_FIELDS:
            positive = name.startswith("tau")
            object.__setattr__(self, name, _as_param(name, getattr(self, name), positive))
        object.__setattr__(self, "size", _param_size(self, LI_NEURON_FIELDS))

    def replace(self, **changes) -> LIParameters:
        """A copy with some fields changed (validated again)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        values.update(changes)
        return LIParameters(**values)


def li_adjoint_step(gv, gi, a_m, decay_s):
    r"""One reverse step of BPTT through the leaky integrator (``gv`` includes dL/dv_t).

    .. math::

        g_{i'} = g_i\,(1 - a_s) + g_v\,a_m, \qquad g_{v,t-1} = g_v\,(1 - a_m)

    Returns ``(gv_prev, gi1)``.
    """
    return gv * (1.0 - a_m), gi * decay_s + gv * a_m


def _coefficients(p: LIParameters, dt: float, n: int, dtype) -> np.ndarray:
    """Rows ``a_m, 1 - a_s, v_leak``, rounded as the tuned kernels round them."""
    dtype = np.dtype(dtype)
    a_s = neuron_array("p.tau_syn_inv", dt * np.asarray(p.tau_syn_inv, np.float64), n, dtype)
    return np.stack(
        [
            neuron_array("p.tau_mem_inv", dt * np.asarray(p.tau_mem_inv, np.float64), n, dtype),
            dtype.type(1) - a_s,
            neuron_array("p.v_leak", p.v_leak, n, dtype),
        ]
    )


def _make_step(spike, surrogate_grad, compile_scalar):
    membrane = compile_scalar(membrane_step)

    def step(state, c, modes, x, tape, t, b, n):
        v = state[0, b, n]
        h, i1, i_next = membrane(v, state[1, b, n], x, c[0, n], c[1, n], c[2, n])
        state[0, b, n] = h
        state[1, b, n] = i_next
        tape[0, t, b, n] = i1
        tape[1, t, b, n] = (c[2, n] - v) + i1
        return h

    return step


def _make_adjoint(spike, surrogate_grad, compile_scalar):
    adjoint_step = compile_scalar(li_adjoint_step)

    def adjoint(gstate, c, modes, gy, state0, tape, t, b, n, gp):
        gv = gstate[0, b, n] + gy
        gi = gstate[1, b, n]
        gv_prev, gi1 = adjoint_step(gv, gi, c[0, n], c[1, n])
        gp[0, b, n] += gv * tape[1, t, b, n]
        gp[1, b, n] -= gi * tape[0, t, b, n]
        gp[2, b, n] += gv * c[0, n]
        gstate[0, b, n] = gv_prev
        gstate[1, b, n] = gi1
        return gi1

    return adjoint


def _parameter_grads(sums: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    return {"tau_mem_inv": dt * sums[0], "tau_syn_inv": dt * sums[1], "v_leak": sums[2]}


def _tuned_forward(x, p, dt, w_rec, state, *, sparse_tol=None, **options):
    from ..functional import li_forward

    if w_rec is not None:
        raise ValueError("w_rec: the LI readout has no recurrent form")
    if sparse_tol is not None:
        raise ValueError("sparse_tol: the LI readout emits no spikes")
    from ..neuron import state_tuple

    if options.get("param_grads") is None:
        options["param_grads"] = True  # as for the other models: every parameter's gradient
    return li_forward(x, p, dt, state_tuple(state, ("v", "i"), "li", p), **options)


def _tuned_backward(grad_y, tape, grad_final_state, out):
    from ..functional import li_backward
    from ..neuron import Gradients, final_state_tuple

    gfs = None if grad_final_state is None else final_state_tuple(grad_final_state, ("v", "i"))
    g = li_backward(grad_y, tape, gfs, out=out)
    grads = Gradients(x=g.x, v0=g.v0, i0=g.i0)
    for name in LI_NEURON_FIELDS:
        if getattr(g, name, None) is not None:
            grads[name] = getattr(g, name)
    return grads


def _specialisation() -> Specialisation:
    from .. import functional

    return Specialisation(functional.LITape, _tuned_forward, _tuned_backward, None)


LI = register(
    NeuronModel(
        name="li",
        parameters=LIParameters,
        state=("v", "i"),
        learnable=LI_NEURON_FIELDS,
        coefficients=("a_m", "decay_s", "v_leak"),
        make_coefficients=_coefficients,
        tape_rows=2,
        grad_rows=("a_m", "a_s", "v_leak"),
        make_step=_make_step,
        make_adjoint=_make_adjoint,
        parameter_grads=_parameter_grads,
        initial_state=resting_membrane,
        initial_state_owner={"v": "v_leak"},
        # the driver's mode slots, unused by a model without spikes
        modes=lambda p, dtype: (0, dtype.type(1.0), 0, False, False),
        check=lambda p, dt: check_rates(p, dt, ("tau_mem_inv", "tau_syn_inv")),
        specialised=_specialisation,
        spiking=False,
    )
)
