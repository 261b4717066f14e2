r"""LIFRefrac: the current-based LIF neuron with an absolute refractory period.

The model of Norse's ``lif_refrac_feed_forward_step`` / ``lif_refrac_step``: after a spike the
neuron cannot fire again for ``rho_reset`` steps (rounded up), and its membrane is held at
the value it had before the step, while the synaptic current keeps integrating its input
(absolute refractoriness, Gerstner, Kistler, Naud & Paninski 2014, *Neuronal Dynamics*,
Cambridge University Press, §1.3). A refractory counter :math:`\rho` is a third state
variable. Per step, the LIF step of :class:`~numbaspike.params.LIFParameters`
(:func:`~numbaspike.kernels.math.membrane_step`, :func:`~numbaspike.kernels.math.reset_step`;
:math:`a_m = \Delta t\,\tau_{mem}^{-1}`, :math:`d_s = 1 - \Delta t\,\tau_{syn}^{-1}`, both
rounded once into the working dtype) gives :math:`(v^{new}_t, z^{new}_t, i_t)`, then the
refractory mask :math:`m_t` (a plain step with no derivative) gates it:

.. math::

    i'_t &= i_{t-1} + x_t, \qquad
    h_t = v_{t-1} + a_m\,\bigl((v_{leak} - v_{t-1}) + i'_t\bigr), \qquad
    i_t = d_s\, i'_t \\
    z^{new}_t &= H(h_t - v_{th}) \quad (F(h_t - v_{th}) \text{ in smooth mode}) \\
    v^{new}_t &= (1 - z^{new}_t)\,h_t + z^{new}_t\,v_{reset} \;\text{(zero)} \quad\text{or}\quad
           h_t - z^{new}_t\,(v_{th} - v_{reset}) \;\text{(subtract)} \\
    m_t &= [\rho_{t-1} > 0], \qquad
    v_t = (1 - m_t)\,v^{new}_t + m_t\,v_{t-1}, \qquad z_t = (1 - m_t)\,z^{new}_t \\
    \rho_t &= (1 - z_t)\,\max(\rho_{t-1} - m_t, 0) + z_t\,\rho_{reset}

The output (and recurrent) spike is the masked :math:`z_t`. The recurrent form adds
:math:`W_{rec} z_{t-1}` to :math:`x_t`. ``detach_reset`` stops the gradient through
:math:`z^{new}_t` in the reset only. In smooth mode :math:`m_t` stays a step; choose a
surrogate whose :math:`F` can be :math:`\le 0` below threshold (superspike, tanh, erfc,
triangle), otherwise :math:`\rho` never returns to 0 and the neuron stays refractory.
Default initial state :math:`v_0 = v_{leak}` (which passes its gradient to ``v_leak``),
:math:`i_0 = 0`, :math:`\rho_0 = 0`.

**Difference from Norse 1.1.0**: Norse computes :math:`m = \text{threshold}(\rho)` with the
surrogate, whose backward sends gradient through :math:`m` into :math:`\rho` and from there
into :math:`z` and :math:`v`; numbaspike does not: :math:`\rho` is a discrete counter, and
:math:`m` and :math:`\rho` carry no gradient. The forward values agree. The gradient
returned for the initial counter (``rho0``) is therefore always zero, and a gradient given
for the final ``rho`` (``grad_final_state``) is ignored.

Adjoint (reverse step; :math:`g_v, g_i` the adjoints of :math:`v_t, i_t`, :math:`g_z` that
of :math:`z_t` (output plus recurrent), :math:`s = s(h_t - v_{th})`). Always

.. math::

    \partial L/\partial d_s \mathrel{+}= g_i\, i'_t, \qquad g_{\rho_{t-1}} = 0.

If :math:`m_t = 1` (refractory: :math:`h_t` is not used):

.. math::

    g_{v_{t-1}} = g_v, \qquad g_{i_{t-1}} = \partial L/\partial x_t = d_s\, g_i.

If :math:`m_t = 0` (the LIF adjoint, :func:`~numbaspike.kernels.math.lif_adjoint_step`):

.. math::

    g_z &\mathrel{+}= [\text{not detach}]\; g_v\, \partial v^{new}_t/\partial z^{new}_t,
    \qquad g_h = g_v\, \partial v^{new}_t/\partial h_t + g_z\, s \\
    &\partial v^{new}/\partial z^{new} = v_{reset} - h_t,\;
    \partial v^{new}/\partial h = 1 - z^{new}_t \;\text{(zero)}; \qquad
    -(v_{th} - v_{reset}),\; 1 \;\text{(subtract)} \\
    g_{i_{t-1}} &= \partial L/\partial x_t = d_s\, g_i + a_m\, g_h, \qquad
    g_{v_{t-1}} = (1 - a_m)\, g_h \\
    \partial L/\partial a_m &\mathrel{+}= g_h\,\bigl((v_{leak} - v_{t-1}) + i'_t\bigr), \qquad
    \partial L/\partial v_{leak} \mathrel{+}= a_m\, g_h, \qquad
    \partial L/\partial v_{th} \mathrel{+}= -g_z\, s - [\text{subtract}]\; g_v\, z^{new}_t

and :math:`\partial L/\partial \tau_{mem}^{-1} = \Delta t\, \partial L/\partial a_m`,
:math:`\partial L/\partial \tau_{syn}^{-1} = -\Delta t\, \partial L/\partial d_s`.

Tape (per step): :math:`h_t`, :math:`i'_t`, the drive :math:`(v_{leak} - v_{t-1}) + i'_t`
and :math:`m_t`.

References
----------
Gerstner, Kistler, Naud & Paninski (2014), *Neuronal Dynamics: From Single Neurons to
Networks and Models of Cognition*, Cambridge University Press; Pehle & Pedersen (2021),
Norse (``norse.torch.functional.lif_refrac``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar

import numpy as np

from ..params import _as_param, check_rates, check_reset_below_threshold
from ..validation import neuron_array
from .base import NeuronModel, register, resting_membrane, spiking_modes
from .lif import LIFParameters

__all__ = ["LIFRefracParameters", "LIF_REFRAC"]

#: The init fields of LIFParameters, which :meth:`LIFRefracParameters.replace` routes to ``lif``.
_LIF_FIELDS = tuple(f.name for f in fields(LIFParameters) if f.init)


@dataclass(frozen=True, eq=False)
class LIFRefracParameters:
    """Parameters of :mod:`numbaspike.models.lif_refrac` (Norse's ``LIFRefracParameters``).

    Parameters
    ----------
    lif : LIFParameters
        The LIF step (time constants, potentials, surrogate, reset mode and flags); its
        fields are readable here too (``p.v_th`` is ``p.lif.v_th``).
    rho_reset : float or ndarray (N,)
        Refractory period in steps (a number >= 0; a fractional one is rounded up); 0 makes
        the model the plain LIF. Not learnable.
    """

    lif: LIFParameters = field(default_factory=LIFParameters)
    rho_reset: float | np.ndarray = 5.0
    size: int | None = field(init=False, repr=False, default=None)

    #: Fields that may be per neuron (shape (N,)).
    neuron_fields: ClassVar[tuple[str, ...]] = (
        "tau_mem_inv",
        "tau_syn_inv",
        "v_leak",
        "v_th",
        "rho_reset",
    )

    def __post_init__(self) -> None:
        if not isinstance(self.lif, LIFParameters):
            raise TypeError(
                f"lif must be a numbaspike.params.LIFParameters, got {type(self.lif).__name__}"
            )
        rho_reset = _as_param("rho_reset", self.rho_reset)  # finite, scalar or (N,)
        if np.any(np.asarray(rho_reset) < 0):
            raise ValueError(
                f"rho_reset must be >= 0 (a number of steps), got min {np.min(rho_reset)}"
            )
        object.__setattr__(self, "rho_reset", rho_reset)
        size = self.lif.size
        if isinstance(rho_reset, np.ndarray):
            if size is not None and rho_reset.shape[0] != size:
                raise ValueError(
                    f"rho_reset has shape {rho_reset.shape} but the per-neuron parameters of "
                    f"lif have size {size}"
                )
            size = rho_reset.shape[0]
        object.__setattr__(self, "size", size)

    # the LIF fields, read through (the driver, the layers and neuron_backward use them)
    @property
    def tau_mem_inv(self):
        return self.lif.tau_mem_inv

    @property
    def tau_syn_inv(self):
        return self.lif.tau_syn_inv

    @property
    def v_leak(self):
        return self.lif.v_leak

    @property
    def v_th(self):
        return self.lif.v_th

    @property
    def v_reset(self) -> float:
        return self.lif.v_reset

    @property
    def surrogate(self) -> str:
        return self.lif.surrogate

    @property
    def alpha(self) -> float:
        return self.lif.alpha

    @property
    def reset(self) -> str:
        return self.lif.reset

    @property
    def detach_reset(self) -> bool:
        return self.lif.detach_reset

    @property
    def smooth(self) -> bool:
        return self.lif.smooth

    @property
    def surrogate_code(self) -> int:
        """Integer code of :attr:`surrogate` as used by the kernels."""
        return self.lif.surrogate_code

    @property
    def reset_code(self) -> int:
        """Integer code of :attr:`reset` as used by the kernels (0 zero, 1 subtract)."""
        return self.lif.reset_code

    def replace(self, **changes) -> LIFRefracParameters:
        """A copy with some fields changed (validated again).

        ``lif`` and ``rho_reset`` are this class's fields; the fields of
        :class:`~numbaspike.params.LIFParameters` (``tau_mem_inv``, ``v_th``, ``surrogate``,
        ...) are changed in ``lif`` (after a new ``lif``, if both are given).
        """
        known = ("lif", "rho_reset", *_LIF_FIELDS)
        unknown = set(changes) - set(known)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}; known {sorted(known)}")
        lif = changes.get("lif", self.lif)
        lif_changes = {k: v for k, v in changes.items() if k in _LIF_FIELDS}
        if lif_changes:
            if not isinstance(lif, LIFParameters):
                raise TypeError(
                    f"lif must be a numbaspike.params.LIFParameters, got {type(lif).__name__}"
                )
            lif = lif.replace(**lif_changes)
        return LIFRefracParameters(lif=lif, rho_reset=changes.get("rho_reset", self.rho_reset))


def _coefficients(p: LIFRefracParameters, dt: float, n: int, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    a_m = neuron_array("p.tau_mem_inv", dt * np.asarray(p.tau_mem_inv, np.float64), n, dtype)
    a_s = neuron_array("p.tau_syn_inv", dt * np.asarray(p.tau_syn_inv, np.float64), n, dtype)
    decay_s = dtype.type(1) - a_s  # rounded in the working dtype, like an elementwise 1 - a_s
    v_th = neuron_array("p.v_th", p.v_th, n, dtype)
    v_reset = dtype.type(p.v_reset)
    # LIFParameters checks v_reset < v_th in float64; rounding to float32 may merge them
    check_reset_below_threshold(v_reset, v_th, dtype)
    return np.stack(
        [
            a_m,
            decay_s,
            neuron_array("p.v_leak", p.v_leak, n, dtype),
            v_th,
            np.full(n, v_reset, dtype),
            neuron_array("p.rho_reset", p.rho_reset, n, dtype),
        ]
    )


def _make_step(spike, surrogate_grad, compile_scalar):
    def step(state, c, modes, x, tape, t, b, n):
        code, alpha, reset, detach, smooth = modes
        v = state[0, b, n]
        rho = state[2, b, n]
        i1 = state[1, b, n] + x
        drive = (c[2, n] - v) + i1
        h = v + c[0, n] * drive
        z_new = spike(h - c[3, n], code, alpha, smooth)
        m = 1.0 if rho > 0.0 else 0.0
        z = (1.0 - m) * z_new
        if m == 0.0:
            if reset == 0:
                state[0, b, n] = (1.0 - z_new) * h + z_new * c[4, n]
            else:
                state[0, b, n] = h - z_new * (c[3, n] - c[4, n])
        state[1, b, n] = i1 * c[1, n]
        left = rho - m  # max(rho - m, 0) without max(): numba.cuda cannot type it
        if left < 0.0:
            left = 0.0
        state[2, b, n] = (1.0 - z) * left + z * c[5, n]
        state[3, b, n] = z
        tape[0, t, b, n] = h
        tape[1, t, b, n] = i1
        tape[2, t, b, n] = drive
        tape[3, t, b, n] = m
        return z

    return step


def _make_adjoint(spike, surrogate_grad, compile_scalar):
    def adjoint(gstate, c, modes, gz, state0, tape, t, b, n, gp):
        code, alpha, reset, detach, smooth = modes
        a_m = c[0, n]
        decay_s = c[1, n]
        gv = gstate[0, b, n]
        gi = gstate[1, b, n]
        gz = gz + gstate[3, b, n]
        gstate[2, b, n] = 0.0  # the counter carries no gradient
        gstate[3, b, n] = 0.0
        gp[1, b, n] += gi * tape[1, t, b, n]
        if tape[3, t, b, n] != 0.0:  # refractory: v held, z = 0, h unused
            gi1 = gi * decay_s
            gstate[1, b, n] = gi1
            return gi1
        v_th = c[3, n]
        v_reset = c[4, n]
        h = tape[0, t, b, n]
        z = spike(h - v_th, code, alpha, smooth)
        s = surrogate_grad(code, h - v_th, alpha)
        if reset == 0:
            if not detach:
                gz = gz + gv * (v_reset - h)
            gh = gv * (1.0 - z) + gz * s
            gp[3, b, n] += -gz * s
        else:
            if not detach:
                gz = gz - gv * (v_th - v_reset)
            gh = gv + gz * s
            gp[3, b, n] += -gz * s - gv * z
        gp[0, b, n] += gh * tape[2, t, b, n]
        gp[2, b, n] += gh * a_m
        gi1 = gi * decay_s + gh * a_m
        gstate[0, b, n] = gh * (1.0 - a_m)
        gstate[1, b, n] = gi1
        return gi1

    return adjoint


def _parameter_grads(sums: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    return {
        "tau_mem_inv": dt * sums[0],
        "tau_syn_inv": -dt * sums[1],
        "v_leak": sums[2],
        "v_th": sums[3],
    }


def _initial_state(p: LIFRefracParameters, n: int) -> dict[str, np.ndarray]:
    zeros = np.zeros(n)
    return {
        **resting_membrane(p, n),
        "i": zeros,
        "rho": zeros,
    }


def _kink_arguments(tape) -> np.ndarray:
    """``h - v_th`` at every step (T, B, N), ``inf`` at refractory steps (their spike is
    masked: its value is not used)."""
    u = np.asarray(tape.tape[0], np.float64) - tape.coeffs[3]
    return np.where(tape.tape[3] != 0.0, np.inf, u)


def _discrete_signature(tape) -> np.ndarray:
    """The refractory masks (T, B, N): a plain step, also in smooth mode."""
    return np.asarray(tape.tape[3]) != 0.0


def _replay(x, p: LIFRefracParameters, dt: float, w_rec=None, state=None, held=None):
    """The smooth-mode forward in NumPy, the reset using ``held`` (T, B, N) if given (the
    ``replay`` hook of :class:`~numbaspike.models.base.NeuronModel`); the masks are returned
    as the discrete signature."""
    from ..surrogates import surrogate_forward

    n_steps, batch, n = x.shape

    def per_neuron(name: str) -> np.ndarray:
        return np.broadcast_to(np.asarray(getattr(p, name), np.float64), (n,))

    a_m, decay_s = dt * per_neuron("tau_mem_inv"), 1.0 - dt * per_neuron("tau_syn_inv")
    v_leak, v_th, rho_reset = per_neuron("v_leak"), per_neuron("v_th"), per_neuron("rho_reset")
    state = {} if state is None else state

    def initial(name: str, default) -> np.ndarray:
        return np.broadcast_to(state.get(name, default), (batch, n)).astype(np.float64)

    v, i, rho, z = initial("v", v_leak), initial("i", 0.0), initial("rho", 0.0), initial("z", 0.0)
    zs, us = np.empty((n_steps, batch, n)), np.empty((n_steps, batch, n))
    masks = np.empty((n_steps, batch, n), bool)
    for t in range(n_steps):
        x_t = x[t] if w_rec is None else x[t] + z @ w_rec.T
        i1 = i + x_t
        h = v + a_m * ((v_leak - v) + i1)
        u = h - v_th
        z_new = surrogate_forward(p.surrogate, u, p.alpha)
        masks[t] = m = rho > 0.0
        us[t] = np.where(m, np.inf, u)
        zs[t] = z = np.where(m, 0.0, z_new)
        zr = z_new if held is None else held[t]
        if p.reset == "zero":
            v_new = (1.0 - zr) * h + zr * p.v_reset
        else:
            v_new = h - zr * (v_th - p.v_reset)
        v = np.where(m, v, v_new)
        i = i1 * decay_s
        rho = (1.0 - z) * np.maximum(rho - m, 0.0) + z * rho_reset
    final = {"v": v, "i": i, "rho": rho}
    if w_rec is not None:
        final["z"] = z
    return zs, us, final, masks


LIF_REFRAC = register(
    NeuronModel(
        name="lif_refrac",
        parameters=LIFRefracParameters,
        state=("v", "i", "rho"),
        learnable=("tau_mem_inv", "tau_syn_inv", "v_th", "v_leak"),
        coefficients=("a_m", "decay_s", "v_leak", "v_th", "v_reset", "rho_reset"),
        make_coefficients=_coefficients,
        tape_rows=4,
        grad_rows=("a_m", "decay_s", "v_leak", "v_th"),
        make_step=_make_step,
        make_adjoint=_make_adjoint,
        parameter_grads=_parameter_grads,
        initial_state=_initial_state,
        initial_state_owner={"v": "v_leak"},
        modes=spiking_modes,
        check=lambda p, dt: check_rates(p, dt, ("tau_mem_inv", "tau_syn_inv")),
        kink_arguments=_kink_arguments,
        discrete_signature=_discrete_signature,
        replay=_replay,
    )
)
