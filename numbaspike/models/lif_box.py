r"""LIFBox: the leaky integrate-and-fire neuron without synaptic current.

The model of snnTorch's ``Leaky`` and Norse's ``LIFBox`` (``lif_box_feed_forward_step``):
the input is a current that acts on the membrane within the step. Per step, explicit
Euler with :math:`a_m = \Delta t\,\tau_{mem}^{-1}`:

.. math::

    h_t &= v_{t-1} + a_m\,\bigl((v_{leak} - v_{t-1}) + x_t\bigr) \\
    z_t &= H(h_t - v_{th}) \quad (F(h_t - v_{th}) \text{ in smooth mode}) \\
    v_t &= (1 - z_t)\,h_t + z_t\,v_{reset} \;\text{(zero)} \quad\text{or}\quad
           h_t - z_t\,(v_{th} - v_{reset}) \;\text{(subtract)}

The recurrent form adds :math:`W_{rec} z_{t-1}` to :math:`x_t` (Norse has no recurrent LIFBox
step). The subtractive reset subtracts :math:`v_{th} - v_{reset}`; Norse's ``reset_subtract``
subtracts :math:`v_{th}` and agrees at :math:`v_{reset} = 0`. Default initial state
:math:`v_0 = v_{leak}`.

Adjoint (reverse step, :math:`g_v` the adjoint of :math:`v_t`, :math:`g_z` that of
:math:`z_t`, :math:`s = s(h_t - v_{th})`):

.. math::

    g_z &\mathrel{+}= [\text{not detach}]\; g_v\, \partial v_t/\partial z_t, \qquad
    g_h = g_v\, \partial v_t/\partial h_t + g_z\, s \\
    g_{v_{t-1}} &= (1 - a_m)\, g_h, \qquad \partial L/\partial x_t = a_m\, g_h, \qquad
    \partial L/\partial a_m \mathrel{+}= g_h\,\bigl((v_{leak} - v_{t-1}) + x_t\bigr)

References
----------
Lapicque (1907); Pehle & Pedersen (2021), Norse; Eshraghian et al. (2023), "Training spiking
neural networks using lessons from deep learning", Proc. IEEE 111:1016 (snnTorch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..params import SpikingParameters, check_rates
from ..validation import neuron_array
from .base import NeuronModel, register, resting_membrane, spiking_modes

__all__ = ["LIFBoxParameters", "LIF_BOX"]


@dataclass(frozen=True, eq=False)
class LIFBoxParameters(SpikingParameters):
    """Parameters of :mod:`numbaspike.models.lif_box` (Norse's ``LIFBoxParameters``).

    Parameters
    ----------
    tau_mem_inv : float or ndarray (N,)
        Inverse membrane time constant (1/s), positive.
    v_leak, v_th : float or ndarray (N,)
        Resting potential and threshold.
    v_reset : float
        Potential after a spike (zero reset); below every ``v_th``.
    surrogate, alpha, reset, detach_reset, smooth
        As in :class:`~numbaspike.params.LIFParameters`.
    """

    tau_mem_inv: float | np.ndarray = 100.0
    v_leak: float | np.ndarray = 0.0
    v_th: float | np.ndarray = 1.0
    v_reset: float = 0.0
    surrogate: str = "superspike"
    alpha: float = 100.0
    reset: str = "zero"
    detach_reset: bool = False
    smooth: bool = False
    size: int | None = field(init=False, repr=False, default=None)

    neuron_fields = ("tau_mem_inv", "v_leak", "v_th")
    positive_fields = ("tau_mem_inv",)

    def __post_init__(self) -> None:
        self._validate()


def _coefficients(p: LIFBoxParameters, dt: float, n: int, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    return np.stack(
        [
            neuron_array("p.tau_mem_inv", dt * np.asarray(p.tau_mem_inv, np.float64), n, dtype),
            neuron_array("p.v_leak", p.v_leak, n, dtype),
            neuron_array("p.v_th", p.v_th, n, dtype),
            np.full(n, p.v_reset, dtype),
        ]
    )


def _make_step(spike, surrogate_grad, compile_scalar):
    def step(state, c, modes, x, tape, t, b, n):
        code, alpha, reset, detach, smooth = modes
        v = state[0, b, n]
        drive = (c[1, n] - v) + x
        h = v + c[0, n] * drive
        z = spike(h - c[2, n], code, alpha, smooth)
        if reset == 0:
            v_next = (1.0 - z) * h + z * c[3, n]
        else:
            v_next = h - z * (c[2, n] - c[3, n])
        state[0, b, n] = v_next
        state[1, b, n] = z
        tape[0, t, b, n] = h
        tape[1, t, b, n] = drive
        return z

    return step


def _make_adjoint(spike, surrogate_grad, compile_scalar):
    def adjoint(gstate, c, modes, gz, state0, tape, t, b, n, gp):
        code, alpha, reset, detach, smooth = modes
        a_m = c[0, n]
        v_th = c[2, n]
        v_reset = c[3, n]
        gv = gstate[0, b, n]
        gz = gz + gstate[1, b, n]
        gstate[1, b, n] = 0.0
        h = tape[0, t, b, n]
        z = spike(h - v_th, code, alpha, smooth)
        s = surrogate_grad(code, h - v_th, alpha)
        if reset == 0:
            if not detach:
                gz = gz + gv * (v_reset - h)
            gh = gv * (1.0 - z) + gz * s
            gp[2, b, n] += -gz * s
        else:
            if not detach:
                gz = gz - gv * (v_th - v_reset)
            gh = gv + gz * s
            gp[2, b, n] += -gz * s - gv * z
        gp[0, b, n] += gh * tape[1, t, b, n]
        gp[1, b, n] += gh * a_m
        gstate[0, b, n] = gh * (1.0 - a_m)
        return gh * a_m

    return adjoint


def _parameter_grads(sums: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    return {"tau_mem_inv": dt * sums[0], "v_leak": sums[1], "v_th": sums[2]}


def _per_neuron(value, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, np.float64), (n,))


def _kink_arguments(tape) -> np.ndarray:
    """``h - v_th`` at every step (T, B, N): the argument of the spike function."""
    return np.asarray(tape.tape[0], np.float64) - tape.coeffs[2]


def _replay(x, p: LIFBoxParameters, dt: float, w_rec=None, state=None, held=None):
    """The smooth-mode forward in NumPy, the reset using ``held`` (T, B, N) if given (the
    ``replay`` hook of :class:`~numbaspike.models.base.NeuronModel`)."""
    from ..surrogates import surrogate_forward

    n_steps, batch, n = x.shape
    a_m = dt * _per_neuron(p.tau_mem_inv, n)
    v_leak, v_th = _per_neuron(p.v_leak, n), _per_neuron(p.v_th, n)
    state = {} if state is None else state
    v = np.broadcast_to(state.get("v", v_leak), (batch, n)).astype(np.float64)
    z = np.broadcast_to(state.get("z", 0.0), (batch, n)).astype(np.float64)
    zs, us = np.empty((n_steps, batch, n)), np.empty((n_steps, batch, n))
    for t in range(n_steps):
        x_t = x[t] if w_rec is None else x[t] + z @ w_rec.T
        h = v + a_m * ((v_leak - v) + x_t)
        us[t] = h - v_th
        zs[t] = z = surrogate_forward(p.surrogate, us[t], p.alpha)
        zr = z if held is None else held[t]
        v = (1.0 - zr) * h + zr * p.v_reset if p.reset == "zero" else h - zr * (v_th - p.v_reset)
    final = {"v": v} if w_rec is None else {"v": v, "z": z}
    return zs, us, final, None


LIF_BOX = register(
    NeuronModel(
        name="lif_box",
        parameters=LIFBoxParameters,
        state=("v",),
        learnable=("tau_mem_inv", "v_leak", "v_th"),
        coefficients=("a_m", "v_leak", "v_th", "v_reset"),
        make_coefficients=_coefficients,
        tape_rows=2,
        grad_rows=("a_m", "v_leak", "v_th"),
        make_step=_make_step,
        make_adjoint=_make_adjoint,
        parameter_grads=_parameter_grads,
        initial_state=resting_membrane,
        initial_state_owner={"v": "v_leak"},
        modes=spiking_modes,
        check=lambda p, dt: check_rates(p, dt, ("tau_mem_inv",)),
        kink_arguments=_kink_arguments,
        replay=_replay,
    )
)
