r"""LSNN: the leaky integrate-and-fire neuron with an adaptive threshold.

The long short-term memory spiking neuron of Bellec et al. (2018): a current-based LIF
neuron whose threshold :math:`b` jumps by :math:`\beta` at each spike and relaxes back to
:math:`v_{th}`. Per step, in Norse's order (``lsnn_feed_forward_step`` / ``lsnn_step``),
explicit Euler with :math:`a_m = \Delta t\,\tau_{mem}^{-1}`, :math:`a_s = \Delta t\,
\tau_{syn}^{-1}`, :math:`a_b = \Delta t\,\tau_{adapt}^{-1}`:

.. math::

    v^d_t &= v_{t-1} + a_m\,\bigl((v_{leak} - v_{t-1}) + i_{t-1}\bigr), \qquad
    i^d_t = (1 - a_s)\,i_{t-1}, \qquad
    b^d_t = b_{t-1} + a_b\,(v_{th} - b_{t-1}) \\
    z_t &= H(v^d_t - b^d_t) \quad (F(v^d_t - b^d_t) \text{ in smooth mode}) \\
    v_t &= (1 - z_t)\,v^d_t + z_t\,v_{reset} \;\text{(zero)} \quad\text{or}\quad
           v^d_t - z_t\,(b^d_t - v_{reset}) \;\text{(subtract)} \\
    b_t &= b^d_t + \beta\,z_t, \qquad i_t = i^d_t + x_t

The input jumps the current after the spike, so :math:`x_t` first reaches :math:`v` at step
:math:`t + 1`. The recurrent form adds :math:`W_{rec} z_{t-1}` to :math:`x_t`. Norse 1.1.0:
``detach_reset=False`` is ``lsnn_feed_forward_step``, ``detach_reset=True`` is the recurrent
``lsnn_step``, which detaches :math:`z` in the reset and in :math:`\beta z` (the threshold keeps
its gradient through the subtracted amount). Norse has the zero reset only; the subtractive
reset, numbaspike's own, subtracts the crossed threshold :math:`b^d_t - v_{reset}`. Default
initial state :math:`v_0 = v_{leak}` (its gradient goes to :math:`v_{leak}`), :math:`i_0 = 0`
and :math:`b_0 = v_{th}`, a constant as in Norse (its gradient is returned as ``b0`` only).

Adjoint (reverse step; :math:`g_v, g_i, g_b` the adjoints of :math:`v_t, i_t, b_t`, :math:`g_z`
that of :math:`z_t` from the output and the recurrent product, :math:`s = s(v^d_t - b^d_t)`,
:math:`[\cdot]` is 1 when the condition holds):

.. math::

    \partial L/\partial x_t &= g_i, \qquad \partial L/\partial \beta \mathrel{+}= g_b\, z_t \\
    g_z &\mathrel{+}= [\text{not detach}]\,\bigl(\beta\, g_b + g_v\, \partial v_t/\partial z_t
        \bigr), \quad \partial v_t/\partial z_t = v_{reset} - v^d_t \text{ (zero) or }
        -(b^d_t - v_{reset}) \text{ (subtract)} \\
    g_{v^d} &= g_v\,\partial v_t/\partial v^d_t + g_z\, s, \quad
        \partial v_t/\partial v^d_t = 1 - z_t \text{ (zero) or } 1 \text{ (subtract)} \\
    g_{b^d} &= g_b - g_z\, s - [\text{subtract}]\; g_v\, z_t \\
    g_{v_{t-1}} &= (1 - a_m)\, g_{v^d}, \qquad
        g_{i_{t-1}} = a_m\, g_{v^d} + (1 - a_s)\, g_i, \qquad
        g_{b_{t-1}} = (1 - a_b)\, g_{b^d} \\
    \partial L/\partial a_m &\mathrel{+}= g_{v^d}\bigl((v_{leak} - v_{t-1}) + i_{t-1}\bigr),
        \quad \partial L/\partial v_{leak} \mathrel{+}= a_m\, g_{v^d},
        \quad \partial L/\partial (1 - a_s) \mathrel{+}= g_i\, i_{t-1} \\
    \partial L/\partial a_b &\mathrel{+}= g_{b^d}\,(v_{th} - b_{t-1}),
        \quad \partial L/\partial v_{th} \mathrel{+}= a_b\, g_{b^d}

and :math:`\partial L/\partial \tau^{-1} = \Delta t\,\partial L/\partial a` for each rate
(:math:`-\Delta t` times that of :math:`1 - a_s` for :math:`\tau_{syn}^{-1}`). The tape holds
the state before each step; the adjoint recomputes :math:`v^d_t, b^d_t` from it with the
forward's own expressions, so they are bitwise those of the forward.

References
----------
Bellec, Salaj, Subramoney, Legenstein & Maass (2018), "Long short-term memory and
learning-to-learn in networks of spiking neurons", NeurIPS 31; Pehle & Pedersen (2021), Norse.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..params import SpikingParameters, check_rates
from ..validation import neuron_array
from .base import NeuronModel, register, resting_membrane, spiking_modes

__all__ = ["LSNNParameters", "LSNN"]


@dataclass(frozen=True, eq=False)
class LSNNParameters(SpikingParameters):
    """Parameters of :mod:`numbaspike.models.lsnn` (Norse's ``LSNNParameters``).

    Parameters
    ----------
    tau_syn_inv, tau_mem_inv, tau_adapt_inv : float or ndarray (N,)
        Inverse synaptic, membrane and threshold-adaptation time constants (1/s), positive.
    v_leak, v_th : float or ndarray (N,)
        Resting potential and resting threshold (the value the adaptive threshold relaxes to).
    v_reset : float
        Potential after a spike (zero reset); below every ``v_th``.
    beta : float or ndarray (N,)
        Jump of the threshold at each spike (any finite number).
    surrogate, alpha, reset, detach_reset, smooth
        As in :class:`~numbaspike.params.LIFParameters`; ``detach_reset`` also detaches the
        spike in the threshold jump (Norse's ``lsnn_step``).
    """

    tau_syn_inv: float | np.ndarray = 200.0
    tau_mem_inv: float | np.ndarray = 100.0
    tau_adapt_inv: float | np.ndarray = 1.0 / 800.0
    v_leak: float | np.ndarray = 0.0
    v_th: float | np.ndarray = 1.0
    v_reset: float = 0.0
    beta: float | np.ndarray = 1.8
    surrogate: str = "superspike"
    alpha: float = 100.0
    reset: str = "zero"
    detach_reset: bool = False
    smooth: bool = False
    size: int | None = field(init=False, repr=False, default=None)

    neuron_fields = ("tau_syn_inv", "tau_mem_inv", "tau_adapt_inv", "v_leak", "v_th", "beta")
    positive_fields = ("tau_syn_inv", "tau_mem_inv", "tau_adapt_inv")

    def __post_init__(self) -> None:
        self._validate()


def _rate(p: LSNNParameters, name: str, dt: float, n: int, dtype) -> np.ndarray:
    # dt * rate in float64, rounded once into the working dtype (as the reference does)
    return neuron_array(f"p.{name}", dt * np.asarray(getattr(p, name), np.float64), n, dtype)


def _coefficients(p: LSNNParameters, dt: float, n: int, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    return np.stack(
        [
            _rate(p, "tau_mem_inv", dt, n, dtype),
            dtype.type(1) - _rate(p, "tau_syn_inv", dt, n, dtype),  # 1 - a_s in the dtype
            _rate(p, "tau_adapt_inv", dt, n, dtype),
            neuron_array("p.v_leak", p.v_leak, n, dtype),
            neuron_array("p.v_th", p.v_th, n, dtype),
            np.full(n, p.v_reset, dtype),
            neuron_array("p.beta", p.beta, n, dtype),
        ]
    )


def _make_step(spike, surrogate_grad, compile_scalar):
    def step(state, c, modes, x, tape, t, b, n):
        code, alpha, reset, detach, smooth = modes
        v = state[0, b, n]
        i = state[1, b, n]
        thr = state[2, b, n]
        tape[0, t, b, n] = v
        tape[1, t, b, n] = i
        tape[2, t, b, n] = thr
        v_d = v + c[0, n] * ((c[3, n] - v) + i)
        b_d = thr + c[2, n] * (c[4, n] - thr)
        z = spike(v_d - b_d, code, alpha, smooth)
        if reset == 0:
            state[0, b, n] = (1.0 - z) * v_d + z * c[5, n]
        else:
            state[0, b, n] = v_d - z * (b_d - c[5, n])
        state[1, b, n] = i * c[1, n] + x
        state[2, b, n] = b_d + c[6, n] * z
        state[3, b, n] = z
        return z

    return step


def _make_adjoint(spike, surrogate_grad, compile_scalar):
    def adjoint(gstate, c, modes, gz, state0, tape, t, b, n, gp):
        code, alpha, reset, detach, smooth = modes
        a_m = c[0, n]
        decay_s = c[1, n]
        a_b = c[2, n]
        v_leak = c[3, n]
        v_th = c[4, n]
        v_reset = c[5, n]
        beta = c[6, n]
        gv = gstate[0, b, n]
        gi = gstate[1, b, n]
        gb = gstate[2, b, n]
        gz = gz + gstate[3, b, n]
        gstate[3, b, n] = 0.0
        v = tape[0, t, b, n]
        i = tape[1, t, b, n]
        thr = tape[2, t, b, n]
        # the forward's own expressions, so that v_d, b_d and z are bitwise the forward's
        drive = (v_leak - v) + i
        v_d = v + a_m * drive
        b_d = thr + a_b * (v_th - thr)
        z = spike(v_d - b_d, code, alpha, smooth)
        s = surrogate_grad(code, v_d - b_d, alpha)
        gp[5, b, n] += gb * z
        if reset == 0:
            if not detach:
                gz = gz + gb * beta + gv * (v_reset - v_d)
            gvd = gv * (1.0 - z) + gz * s
            gbd = gb - gz * s
        else:
            if not detach:
                gz = gz + gb * beta - gv * (b_d - v_reset)
            gvd = gv + gz * s
            gbd = gb - gz * s - gv * z
        gp[0, b, n] += gvd * drive
        gp[1, b, n] += gi * i
        gp[2, b, n] += gbd * (v_th - thr)
        gp[3, b, n] += gvd * a_m
        gp[4, b, n] += gbd * a_b
        gstate[0, b, n] = gvd * (1.0 - a_m)
        gstate[1, b, n] = gvd * a_m + gi * decay_s
        gstate[2, b, n] = gbd * (1.0 - a_b)
        return gi

    return adjoint


def _parameter_grads(sums: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    return {
        "tau_mem_inv": dt * sums[0],
        "tau_syn_inv": -dt * sums[1],  # decay_s = 1 - dt * tau_syn_inv
        "tau_adapt_inv": dt * sums[2],
        "v_leak": sums[3],
        "v_th": sums[4],
        "beta": sums[5],
    }


def _initial_state(p: LSNNParameters, n: int) -> dict[str, np.ndarray]:
    return {
        **resting_membrane(p, n),
        "b": np.broadcast_to(np.asarray(p.v_th, np.float64), (n,)),
    }


def _kink_arguments(tape) -> np.ndarray:
    """``v_d - b_d`` at every step (T, B, N), from the state before it (the tape) with the
    forward's own expressions: the argument of the spike function."""
    c = tape.coeffs
    v, i, thr = (np.asarray(row, np.float64) for row in tape.tape[:3])
    v_d = v + c[0] * ((c[3] - v) + i)
    b_d = thr + c[2] * (c[4] - thr)
    return v_d - b_d


def _replay(x, p: LSNNParameters, dt: float, w_rec=None, state=None, held=None):
    """The smooth-mode forward in NumPy, the reset and the threshold jump using ``held``
    (T, B, N) if given (the ``replay`` hook of :class:`~numbaspike.models.base.NeuronModel`)."""
    from ..surrogates import surrogate_forward

    n_steps, batch, n = x.shape

    def per_neuron(name: str) -> np.ndarray:
        return np.broadcast_to(np.asarray(getattr(p, name), np.float64), (n,))

    a_m, a_b = dt * per_neuron("tau_mem_inv"), dt * per_neuron("tau_adapt_inv")
    decay_s = 1.0 - dt * per_neuron("tau_syn_inv")
    v_leak, v_th, beta = per_neuron("v_leak"), per_neuron("v_th"), per_neuron("beta")
    state = {} if state is None else state

    def initial(name: str, default) -> np.ndarray:
        return np.broadcast_to(state.get(name, default), (batch, n)).astype(np.float64)

    v, i, thr, z = initial("v", v_leak), initial("i", 0.0), initial("b", v_th), initial("z", 0.0)
    zs, us = np.empty((n_steps, batch, n)), np.empty((n_steps, batch, n))
    for t in range(n_steps):
        x_t = x[t] if w_rec is None else x[t] + z @ w_rec.T
        v_d = v + a_m * ((v_leak - v) + i)
        b_d = thr + a_b * (v_th - thr)
        us[t] = v_d - b_d
        zs[t] = z = surrogate_forward(p.surrogate, us[t], p.alpha)
        zr = z if held is None else held[t]
        if p.reset == "zero":
            v = (1.0 - zr) * v_d + zr * p.v_reset
        else:
            v = v_d - zr * (b_d - p.v_reset)
        i = i * decay_s + x_t
        thr = b_d + beta * zr
    final = {"v": v, "i": i, "b": thr}
    if w_rec is not None:
        final["z"] = z
    return zs, us, final, None


LSNN = register(
    NeuronModel(
        name="lsnn",
        parameters=LSNNParameters,
        state=("v", "i", "b"),
        learnable=("tau_mem_inv", "tau_syn_inv", "tau_adapt_inv", "v_leak", "v_th", "beta"),
        coefficients=("a_m", "decay_s", "a_b", "v_leak", "v_th", "v_reset", "beta"),
        make_coefficients=_coefficients,
        tape_rows=3,
        grad_rows=("a_m", "decay_s", "a_b", "v_leak", "v_th", "beta"),
        make_step=_make_step,
        make_adjoint=_make_adjoint,
        parameter_grads=_parameter_grads,
        initial_state=_initial_state,
        initial_state_owner={"v": "v_leak"},
        modes=spiking_modes,
        check=lambda p, dt: check_rates(p, dt, ("tau_mem_inv", "tau_syn_inv", "tau_adapt_inv")),
        kink_arguments=_kink_arguments,
        replay=_replay,
    )
)
