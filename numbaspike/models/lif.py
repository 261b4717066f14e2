r"""LIF: the current-based leaky integrate-and-fire neuron (Norse's ``lif_feed_forward_step``).

Per step, explicit Euler with :math:`a_m = \Delta t\,\tau_{mem}^{-1}` and
:math:`a_s = \Delta t\,\tau_{syn}^{-1}`, the input a jump of the synaptic current:

.. math::

    i'_t &= i_{t-1} + x_t, \qquad
    h_t = v_{t-1} + a_m\,\bigl((v_{leak} - v_{t-1}) + i'_t\bigr), \qquad
    i_t = (1 - a_s)\, i'_t \\
    z_t &= H(h_t - v_{th}) \quad (F(h_t - v_{th}) \text{ in smooth mode}) \\
    v_t &= (1 - z_t)\,h_t + z_t\,v_{reset} \;\text{(zero)} \quad\text{or}\quad
           h_t - z_t\,(v_{th} - v_{reset}) \;\text{(subtract)}

The recurrent form adds :math:`W_{rec} z_{t-1}` to :math:`x_t` (Norse's ``lif_step``). The
subtractive reset subtracts :math:`v_{th} - v_{reset}`; Norse's ``reset_subtract`` subtracts
:math:`v_{th}` and agrees at :math:`v_{reset} = 0`. Default initial state
:math:`v_0 = v_{leak}`, :math:`i_0 = 0`. The adjoint is :func:`lif_adjoint_step`.

The step and adjoint below are written once, as plain Python on scalars, and compiled for
the CPU (``numba.njit``) and CUDA (``numba.cuda.jit(device=True)``). The functional API and
the layers run them in hand-tuned kernels (:mod:`numbaspike.kernels.cpu`,
:mod:`numbaspike.kernels.cuda`: vectorised time loops, sparse tapes, event-driven
products); the :data:`LIF` record runs the same functions on the generic driver, and the
tests check that the two agree.

References
----------
Lapicque (1907); Gerstner, Kistler, Naud & Paninski (2014), *Neuronal Dynamics*, §1.3;
Pehle & Pedersen (2021), Norse; Zenke & Ganguli (2018), "SuperSpike", Neural Computation
30:1514.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..params import ArrayOrScalar, SpikingParameters, check_rates, check_reset_below_threshold
from ..validation import neuron_array
from .base import NeuronModel, Specialisation, register, resting_membrane, spiking_modes

__all__ = [
    "LIF",
    "LIFParameters",
    "LIF_NEURON_FIELDS",
    "lif_adjoint_step",
    "membrane_step",
    "reset_step",
]

#: Fields that may be given per neuron (shape ``(N,)``) and have gradients.
LIF_NEURON_FIELDS = ("tau_mem_inv", "tau_syn_inv", "v_th", "v_leak")


@dataclass(frozen=True, eq=False)
class LIFParameters(SpikingParameters):
    r"""Parameters of the current-based leaky integrate-and-fire neuron.

    Each step (explicit Euler, :math:`a_m = dt\,\tau_{mem}^{-1}`, :math:`a_s = dt\,\tau_{syn}^{-1}`):

    .. math::

        i' &= i + x_t \\
        h &= v + a_m\,(v_{leak} - v + i') \\
        i &\leftarrow (1 - a_s)\, i' \\
        z &= H(h - v_{th}) \\
        v &\leftarrow (1 - z)\,h + z\,v_{reset} \quad\text{(reset="zero")}, \qquad
        v \leftarrow h - z\,(v_{th} - v_{reset}) \quad\text{(reset="subtract")}

    Parameters
    ----------
    tau_syn_inv, tau_mem_inv : float or ndarray of shape (N,)
        Inverse synaptic and membrane time constants (1/s). Must be positive.
    v_leak, v_th : float or ndarray of shape (N,)
        Leak (resting) potential and firing threshold.
    v_reset : float
        Potential after a spike for ``reset="zero"``. Must be below ``v_th`` (below every
        neuron's, if ``v_th`` is per neuron), in both reset modes: a reset at or above
        threshold puts a driven neuron straight back over it, so that it fires on every
        step (:func:`check_reset_below_threshold`).
    surrogate : str
        Surrogate derivative used in the backward pass; one of
        :data:`numbaspike.surrogates.SURROGATE_NAMES`.
    alpha : float
        Sharpness of the surrogate (positive).
    reset : {"zero", "subtract"}
        Reset to ``v_reset`` (Norse) or subtract ``v_th - v_reset`` (soft reset).
    detach_reset : bool
        Stop the gradient through ``z`` in the reset term (Norse's recurrent ``lif_step``).
    smooth : bool
        Use the surrogate's smooth function ``F`` (with ``F' = s``) instead of the step in
        the forward pass. The model is then differentiable and its exact gradient is what
        the backward pass computes, which finite differences can check.

    References
    ----------
    Defaults follow Norse (Pehle & Pedersen 2021). SuperSpike: Zenke & Ganguli (2018),
    Neural Computation 30:1514.
    """

    tau_syn_inv: ArrayOrScalar = 200.0
    tau_mem_inv: ArrayOrScalar = 100.0
    v_leak: ArrayOrScalar = 0.0
    v_th: ArrayOrScalar = 1.0
    v_reset: float = 0.0
    surrogate: str = "superspike"
    alpha: float = 100.0
    reset: str = "zero"
    detach_reset: bool = False
    smooth: bool = False
    size: int | None = field(init=False, repr=False, default=None)

    neuron_fields = LIF_NEURON_FIELDS
    positive_fields = ("tau_syn_inv", "tau_mem_inv")

    def __post_init__(self) -> None:
        self._validate()


def membrane_step(v, i, x, a_m, decay_s, v_leak):
    r"""Integrate one step: current jump, membrane update, synaptic decay.

    .. math::

        i' = i + x, \qquad h = v + a_m\,((v_{leak} - v) + i'), \qquad i_{next} = i'\,(1 - a_s)

    Returns ``(h, i1, i_next)`` where ``i1`` is :math:`i'` and ``decay_s`` is :math:`1 - a_s`.
    """
    i1 = i + x
    h = v + a_m * ((v_leak - v) + i1)
    return h, i1, i1 * decay_s


def reset_step(h, z, v_th, v_reset, reset_code, smooth):
    r"""Membrane after the spike ``z``: zero reset :math:`(1-z)h + z v_{reset}` or
    subtract reset :math:`h - z (v_{th} - v_{reset})`."""
    if reset_code == 0:
        if smooth:
            return (1.0 - z) * h + z * v_reset
        return v_reset if z != 0.0 else h
    return h - z * (v_th - v_reset)


def lif_adjoint_step(gv, gi, gz_ext, h, z, s, v_th, v_reset, a_m, decay_s, reset_code, detach):
    r"""One reverse step of BPTT through the LIF update.

    Given the adjoints ``gv`` of :math:`v_t`, ``gi`` of :math:`i_t`, the external gradient
    ``gz_ext`` of :math:`z_t`, the tape value :math:`h_t`, the spike :math:`z_t` and
    :math:`s = s(h_t - v_{th})`:

    .. math::

        g_z &= g_{z,ext} + [\text{not detach}]\,g_v\,\partial v/\partial z, \qquad
        \partial v/\partial z = v_{reset} - h \;\text{(zero)},\;
        -(v_{th} - v_{reset}) \;\text{(subtract)} \\
        g_h &= g_v\,\partial v/\partial h + g_z\,s, \qquad
        \partial v/\partial h = 1 - z \;\text{(zero)},\; 1 \;\text{(subtract)} \\
        g_{i'} &= g_i\,(1 - a_s) + g_h\,a_m \;(= \partial L/\partial x_t) \\
        g_{v,t-1} &= g_h\,(1 - a_m), \qquad g_{i,t-1} = g_{i'} \\
        g_{v_{th}} &= -g_z\,s - [\text{subtract}]\,g_v\,z

    Returns ``(gv_prev, gi1, gh, g_vth)``; ``gi1`` is both :math:`\partial L/\partial x_t` and
    the adjoint of :math:`i_{t-1}`.
    """
    if reset_code == 0:
        gz = gz_ext if detach else gz_ext + gv * (v_reset - h)
        gh = (gv - gv * z) + gz * s
        g_vth = -gz * s
    else:
        gz = gz_ext if detach else gz_ext - gv * (v_th - v_reset)
        gh = gv + gz * s
        g_vth = -gz * s - gv * z
    gi1 = gi * decay_s + gh * a_m
    return gh - gh * a_m, gi1, gh, g_vth


def _coefficients(p: LIFParameters, dt: float, n: int, dtype) -> np.ndarray:
    """Rows ``a_m, 1 - a_s, v_leak, v_th, v_reset``, rounded as the tuned kernels round them."""
    dtype = np.dtype(dtype)
    a_s = neuron_array("p.tau_syn_inv", dt * np.asarray(p.tau_syn_inv, np.float64), n, dtype)
    v_th = neuron_array("p.v_th", p.v_th, n, dtype)
    check_reset_below_threshold(dtype.type(p.v_reset), v_th, dtype)
    return np.stack(
        [
            neuron_array("p.tau_mem_inv", dt * np.asarray(p.tau_mem_inv, np.float64), n, dtype),
            dtype.type(1) - a_s,
            neuron_array("p.v_leak", p.v_leak, n, dtype),
            v_th,
            np.full(n, p.v_reset, dtype),
        ]
    )


def _make_step(spike, surrogate_grad, compile_scalar):
    membrane = compile_scalar(membrane_step)
    after_spike = compile_scalar(reset_step)

    def step(state, c, modes, x, tape, t, b, n):
        code, alpha, reset, detach, smooth = modes
        v = state[0, b, n]
        h, i1, i_next = membrane(v, state[1, b, n], x, c[0, n], c[1, n], c[2, n])
        z = spike(h - c[3, n], code, alpha, smooth)
        state[0, b, n] = after_spike(h, z, c[3, n], c[4, n], reset, smooth)
        state[1, b, n] = i_next
        state[2, b, n] = z
        tape[0, t, b, n] = h
        tape[1, t, b, n] = i1
        tape[2, t, b, n] = (c[2, n] - v) + i1
        return z

    return step


def _make_adjoint(spike, surrogate_grad, compile_scalar):
    adjoint_step = compile_scalar(lif_adjoint_step)

    def adjoint(gstate, c, modes, gz, state0, tape, t, b, n, gp):
        code, alpha, reset, detach, smooth = modes
        gi = gstate[1, b, n]
        gz = gz + gstate[2, b, n]
        gstate[2, b, n] = 0.0
        h = tape[0, t, b, n]
        u = h - c[3, n]
        z = spike(u, code, alpha, smooth)
        s = surrogate_grad(code, u, alpha)
        gv_prev, gi1, gh, g_vth = adjoint_step(
            gstate[0, b, n], gi, gz, h, z, s, c[3, n], c[4, n], c[0, n], c[1, n], reset, detach
        )
        gp[0, b, n] += gh * tape[2, t, b, n]
        gp[1, b, n] -= gi * tape[1, t, b, n]
        gp[2, b, n] += gh * c[0, n]
        gp[3, b, n] += g_vth
        gstate[0, b, n] = gv_prev
        gstate[1, b, n] = gi1
        return gi1

    return adjoint


def _parameter_grads(sums: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    return {
        "tau_mem_inv": dt * sums[0],
        "tau_syn_inv": dt * sums[1],
        "v_leak": sums[2],
        "v_th": sums[3],
    }


def _tuned_forward(x, p, dt, w_rec, state, **options):
    from ..functional import lif_forward
    from ..neuron import state_tuple

    names = ("v", "i", "z") if w_rec is not None else ("v", "i")
    return lif_forward(x, p, dt, w_rec, state_tuple(state, names, "lif", p), **options)


def _tuned_simulate(x, p, dt, w_rec, state, **options):
    """:func:`~numbaspike.lif_simulate`, with its result in the form of every model's."""
    from ..functional import lif_simulate
    from ..neuron import state_tuple
    from ..simulate_models import SimulationRecord

    names = ("v", "i", "z") if w_rec is not None else ("v", "i")
    sim = lif_simulate(x, p, dt, w_rec, state_tuple(state, names, "lif", p), **options)
    spikes = None
    if sim.spike_times is not None:
        spikes = np.zeros((sim.steps, *sim.spike_counts.shape), sim.final_state.v.dtype)
        spikes[sim.spike_times, sim.spike_batch, sim.spike_neurons] = 1
    traces = {name: getattr(sim, name) for name in ("v", "i") if getattr(sim, name) is not None}
    final = {name: getattr(sim.final_state, name) for name in names}
    return SimulationRecord(sim.steps, sim.spike_counts, spikes, traces, final)


def _tuned_backward(grad_y, tape, grad_final_state, out):
    from ..functional import lif_backward
    from ..neuron import Gradients, final_state_tuple

    gfs = None
    if grad_final_state is not None:
        gv, gi, gz = final_state_tuple(grad_final_state, ("v", "i", "z"))
        if gz is not None:  # the final spikes are the last step's output
            grad_y = np.array(grad_y, dtype=tape.z.dtype)
            grad_y[-1] += gz
        gfs = (gv, gi)
    g = lif_backward(grad_y, tape, gfs, out=out)
    grads = Gradients(x=g.x, w_rec=g.w_rec, v0=g.v0, i0=g.i0)
    if g.z0 is not None:
        grads["z0"] = g.z0
    for name in LIF_NEURON_FIELDS:
        value = getattr(g, name, None)
        if value is not None:
            grads[name] = value
    return grads


def _specialisation() -> Specialisation:
    from .. import functional

    return Specialisation(functional.LIFTape, _tuned_forward, _tuned_backward, _tuned_simulate)


LIF = register(
    NeuronModel(
        name="lif",
        parameters=LIFParameters,
        state=("v", "i"),
        learnable=LIF_NEURON_FIELDS,
        coefficients=("a_m", "decay_s", "v_leak", "v_th", "v_reset"),
        make_coefficients=_coefficients,
        tape_rows=3,
        grad_rows=("a_m", "a_s", "v_leak", "v_th"),
        make_step=_make_step,
        make_adjoint=_make_adjoint,
        parameter_grads=_parameter_grads,
        initial_state=resting_membrane,
        initial_state_owner={"v": "v_leak"},
        modes=spiking_modes,
        check=lambda p, dt: check_rates(p, dt, ("tau_mem_inv", "tau_syn_inv")),
        specialised=_specialisation,
        sparse_backward=True,
    )
)
