r"""The suite of ``numbaspike gradcheck``: every layer kind on small random problems.

:func:`run_gradcheck_suite` checks the BPTT gradients of the LIF, LIFRecurrent and LI
layers (every surrogate, reset and ``detach_reset``), of the feed-forward and recurrent
layers of every registered neuron model on the generic driver
(:mod:`numbaspike.models`), and of small networks, against finite differences in smooth
mode, optionally also against the PyTorch-autograd oracle
(:mod:`numbaspike.torch_reference`).
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from .. import functional as _functional
from .. import models as _models
from .. import neuron as _neuron
from ..params import LIFParameters, LIParameters
from ..surrogates import SURROGATE_KINKS, SURROGATE_NAMES
from .finite_difference import (
    GradCheckResult,
    _check_fd_settings,
    _count,
    _fmt,
    _numba_threads,
    _table,
    check_gradients,
)
from .kinks import (
    kink_distance,
    kink_points,
    kink_signature,
    lif_replay,
    points_of_replay,
    same_signature,
)
from .network import _check_network, smooth_copy

__all__ = [
    "SUITE_ALPHA",
    "SUITE_SHAPE",
    "SUITE_KINK_MARGIN",
    "SUITE_LAYERS",
    "SUITE_MODEL_CASES",
    "SuiteCase",
    "GradcheckSuiteReport",
    "run_gradcheck_suite",
    "suite_models",
]

# --------------------------------------------------------------------------------------------
# the suite
# --------------------------------------------------------------------------------------------

#: alpha per surrogate in the suite: sharp enough to be interesting, smooth enough for FD.
SUITE_ALPHA = {
    "superspike": 5.0,
    "sigmoid": 5.0,
    "atan": 3.0,
    "tanh": 3.0,
    "erfc": 3.0,
    "triangle": 0.5,
    "boxcar": 0.5,
}
#: Problem size of the suite: steps, batch, neurons.
SUITE_SHAPE = (20, 2, 4)
#: The suite re-draws a problem whose membranes come closer than this to a kink of F.
SUITE_KINK_MARGIN = 1e-3
_SUITE_DRAWS = 25
_LIF_FIELDS = ("tau_mem_inv", "tau_syn_inv", "v_th", "v_leak")
_LI_FIELDS = ("tau_mem_inv", "tau_syn_inv", "v_leak")


class _SuiteLoss:
    """``L = sum(R * y) + 0.25 * sum(y**2)``: a fixed random, nonlinear readout of the output."""

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = weights

    def __call__(self, y, target=None):
        value = float(np.sum(self.weights * y) + 0.25 * np.sum(y * y))
        return value, self.weights + 0.5 * y


def _neuron_draw(rng, n: int, lif: bool) -> dict[str, np.ndarray]:
    out = {
        "tau_mem_inv": rng.uniform(150.0, 250.0, n),
        "tau_syn_inv": rng.uniform(150.0, 300.0, n),
        "v_leak": rng.uniform(-0.1, 0.1, n),
    }
    if lif:
        out["v_th"] = rng.uniform(0.8, 1.2, n)
    return out


class _LayerProblem:
    """A random problem for one functional layer (``lif_forward``/``li_forward``), float64.

    ``LIF``: feed-forward, default initial state (so ``v_leak`` also sets ``v0``).
    ``LIFRecurrent``: recurrent weights, a given initial state ``(v0, i0, z0)`` and a loss that
    also reads the final state (the truncated-BPTT path). ``LI``: given state, final-state loss.
    """

    def __init__(self, kind: str, p, rng: np.random.Generator) -> None:
        n_steps, batch, n = SUITE_SHAPE
        self.kind, self.p, self.dt = kind, p, 1e-3
        lif = kind != "LI"
        self.fields = _LIF_FIELDS if lif else _LI_FIELDS
        self.inputs = {"x": rng.normal(0.3, 0.35, (n_steps, batch, n))}
        if kind == "LIFRecurrent":
            self.inputs["w_rec"] = rng.normal(0.0, 0.6 / math.sqrt(n), (n, n))
        if kind != "LIF":
            self.inputs["v0"] = rng.uniform(-0.2, 0.8, (batch, n))
            self.inputs["i0"] = rng.uniform(-0.5, 1.5, (batch, n))
        if kind == "LIFRecurrent":
            self.inputs["z0"] = rng.uniform(0.0, 1.0, (batch, n))
        self.inputs.update(_neuron_draw(rng, n, lif))
        self.loss = _SuiteLoss(rng.normal(0.0, 1.0, (n_steps, batch, n)))
        self.final_weights = None if kind == "LIF" else rng.normal(0.0, 1.0, (2, batch, n))
        self.signature = None
        self.frozen = None  # reset spikes held constant (detach_reset), set by analytic()
        self.crossings = 0

    def _params(self, inputs, smooth):
        values = {k: inputs[k] for k in self.fields}
        if self.kind == "LI":
            return LIParameters(**values)
        return self.p.replace(smooth=smooth, **values)

    def run(self, inputs, smooth: bool = True):
        """``(loss, dloss/dy, tape or None, kink points)``; the replay (no tape) once frozen."""
        x = inputs["x"]
        p = self._params(inputs, smooth)
        tape = None
        if self.kind == "LI":
            y, tape = _functional.li_forward(x, p, self.dt, state=(inputs["v0"], inputs["i0"]))
            final, points = tape.final_state, []
        elif self.frozen is not None:
            w_rec = inputs.get("w_rec")
            state = None
            if self.kind != "LIF":
                state = {"v": inputs["v0"], "i": inputs["i0"], "z": inputs["z0"]}
            y, u, final, discrete = lif_replay(
                x, p, self.dt, w_rec=w_rec, state=state, held=self.frozen
            )
            final = (final["v"], final["i"])
            points = points_of_replay(p, u, discrete)
        else:
            if self.kind == "LIF":
                y, tape = _functional.lif_forward(x, p, self.dt)
            else:
                state = (inputs["v0"], inputs["i0"], inputs["z0"])
                y, tape = _functional.lif_forward(
                    x, p, self.dt, w_rec=inputs["w_rec"], state=state
                )
            final, points = tape.final_state, kink_points([tape])
        value, grad_y = self.loss(y)
        if self.final_weights is not None:
            value += float(
                np.sum(self.final_weights[0] * final[0]) + np.sum(self.final_weights[1] * final[1])
            )
        return value, grad_y, tape, points

    def __call__(self, inputs) -> float:
        value, _, _, points = self.run(inputs)
        if self.signature is not None and not same_signature(
            self.signature, kink_signature(points)
        ):
            self.crossings += 1
        return value

    def analytic(self, smooth: bool = True):
        """``(gradients, loss, kink points)`` from the hand-written backward (looked up on the
        module at call time). In smooth mode with ``detach_reset`` it also freezes the reset
        spikes for the finite differences."""
        self.frozen = None
        value, grad_y, tape, points = self.run(self.inputs, smooth)
        final = (
            None if self.final_weights is None else (self.final_weights[0], self.final_weights[1])
        )
        if self.kind == "LI":
            g = _functional.li_backward(grad_y, tape, grad_final_state=final)
        else:
            g = _functional.lif_backward(grad_y, tape, grad_final_state=final)
        grads = {"x": g.x}
        if self.kind != "LIF":
            grads["v0"], grads["i0"] = g.v0, g.i0
        if self.kind == "LIFRecurrent":
            grads["w_rec"], grads["z0"] = g.w_rec, g.z0
        for k in self.fields:
            grads[k] = getattr(g, k)
        if smooth and self.kind != "LI" and self.p.detach_reset:
            self.frozen = tape.z.copy()
        grads = {k: np.asarray(grads[k], dtype=np.float64) for k in self.inputs}
        return grads, value, points

    def torch_gradients(self, smooth: bool = True) -> dict[str, np.ndarray]:
        """The same gradients from :mod:`numbaspike.torch_reference` (PyTorch autograd)."""
        import torch

        from .. import torch_reference as ref

        t = {
            k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
            for k, v in self.inputs.items()
        }
        neuron = {k: t[k] for k in self.fields}
        if self.kind == "LI":
            y, (v_fin, i_fin) = ref.li_forward_torch(
                t["x"], dt=self.dt, v0=t["v0"], i0=t["i0"], **neuron
            )
        else:
            p = self.p
            state = {}
            if self.kind == "LIFRecurrent":
                state = {"w_rec": t["w_rec"], "v0": t["v0"], "i0": t["i0"], "z0": t["z0"]}
            y, (v_fin, i_fin, _) = ref.lif_forward_torch(
                t["x"], **neuron, v_reset=p.v_reset, dt=self.dt, surrogate=p.surrogate,
                alpha=p.alpha, reset=p.reset, detach_reset=p.detach_reset, smooth=smooth,
                **state,
            )  # fmt: skip
        w = torch.tensor(self.loss.weights)
        value = torch.sum(w * y) + 0.25 * torch.sum(y * y)
        if self.final_weights is not None:
            fw = torch.tensor(self.final_weights)
            value = value + torch.sum(fw[0] * v_fin) + torch.sum(fw[1] * i_fin)
        value.backward()
        return {k: v.grad.numpy().copy() for k, v in t.items()}


def _model_draw(model, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Per-neuron values of a model's learnable parameters, around its parameter class's
    defaults (a default of 0 draws from [-0.1, 0.1])."""
    defaults = model.parameters()
    out = {}
    for name in model.learnable:
        default = float(np.mean(getattr(defaults, name)))
        if default == 0.0:
            out[name] = rng.uniform(-0.1, 0.1, n)
        else:
            out[name] = default * rng.uniform(0.8, 1.25, n)
    return out


#: Input gains tried by :func:`_calibrate`, and the share of membranes above threshold
#: it looks for: enough spikes to exercise the reset, not so many that every step resets.
_GAINS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
_ACTIVE = (0.1, 0.5)


def _calibrate(active_fraction) -> float:
    """The first gain of :data:`_GAINS` whose share of membranes above threshold
    (``active_fraction(gain)``) is in :data:`_ACTIVE`, else the one closest to its middle."""
    best, best_gap = _GAINS[0], math.inf
    for gain in _GAINS:
        fraction = active_fraction(gain)
        if _ACTIVE[0] <= fraction <= _ACTIVE[1]:
            return gain
        gap = abs(fraction - 0.5 * sum(_ACTIVE))
        if gap < best_gap:
            best, best_gap = gain, gap
    return best


def _above_threshold(tape) -> float:
    """Share of the used spike arguments ``u`` of a tape that are above threshold."""
    points = kink_points([tape])
    if isinstance(tape, _neuron.NeuronTape) and tape.model.kink_arguments is not None:
        u = tape.model.kink_arguments(tape)
    elif points:
        u = points[0][0]
    else:
        return 0.0
    used = np.isfinite(u)
    return float(np.mean(u[used] > 0.0)) if np.any(used) else 0.0


class _ModelProblem:
    """A random problem for a layer of a registered model (:func:`~numbaspike.neuron_forward`).

    Feed-forward: the model's default initial state. Recurrent: recurrent weights, a given
    initial state (every state variable and ``z``) and a loss that also reads the final
    state of the variables that carry a gradient (truncated BPTT). The learnable parameters
    are per neuron (:func:`_model_draw`); the input is scaled by :func:`_calibrate`.
    """

    def __init__(self, model, p, recurrent: bool, rng: np.random.Generator) -> None:
        n_steps, batch, n = SUITE_SHAPE
        self.model, self.dt, self.recurrent = model, 1e-3, recurrent
        self.fields = tuple(model.learnable)
        self.p = p.replace(smooth=True)
        self.pinned: dict[str, np.ndarray] = {}
        x = rng.normal(0.5, 0.5, (n_steps, batch, n))
        self.inputs = {"x": x}
        if recurrent:
            self.inputs["w_rec"] = rng.normal(0.0, 0.6 / math.sqrt(n), (n, n))
            defaults = model.initial_state(self.p, n)
            for name in model.state:
                start = np.broadcast_to(defaults.get(name, 0.0), (n,))
                self.inputs[f"{name}0"] = start + rng.uniform(-0.2, 0.8, (batch, n))
            self.inputs["z0"] = rng.uniform(0.0, 1.0, (batch, n))
        self.inputs.update(_model_draw(model, rng, n))
        if not recurrent:  # defaults that are constants of the model stay at their values
            defaults = model.initial_state(self._params(self.inputs, True), n)
            self.pinned = {
                k: np.array(v, np.float64)
                for k, v in defaults.items()
                if k not in model.initial_state_owner
            }
        self.loss = _SuiteLoss(rng.normal(0.0, 1.0, (n_steps, batch, n)))
        self.final_weights = {}
        if recurrent:
            self.final_weights = {
                name: rng.normal(0.0, 1.0, (batch, n)) for name in self._graded_state()
            }
        self.signature = None
        self.frozen = None  # spikes held in the detached terms (detach_reset), by analytic()
        self.crossings = 0
        gain = _calibrate(lambda g: self._active_fraction(x * g))
        self.inputs["x"] = x * gain

    def _graded_state(self) -> list[str]:
        """State variables whose final value the backward takes a gradient for (a counter
        such as LIFRefrac's rho carries none, so a loss must not read it)."""
        _, tape = self._forward(self.inputs, True)
        graded = []
        zeros = np.zeros(SUITE_SHAPE)
        for name in self.model.state:
            ones = {name: np.ones(SUITE_SHAPE[1:])}
            if np.any(_neuron.neuron_backward(zeros, tape, grad_final_state=ones)["x"] != 0):
                graded.append(name)
        return graded

    def _active_fraction(self, x) -> float:
        _, tape = self._forward({**self.inputs, "x": x}, True)
        return _above_threshold(tape)

    def _state(self, inputs):
        if not self.recurrent:
            return self.pinned or None
        state = {name: inputs[f"{name}0"] for name in self.model.state}
        state["z"] = inputs["z0"]
        return state

    def _params(self, inputs, smooth):
        return self.p.replace(smooth=smooth, **{k: inputs[k] for k in self.fields})

    def _forward(self, inputs, smooth):
        p = self._params(inputs, smooth)
        return _neuron.neuron_forward(
            inputs["x"], p, self.dt, inputs.get("w_rec"), self._state(inputs)
        )

    def run(self, inputs, smooth: bool = True):
        """``(loss, dloss/dy, tape or None, kink points)``; the replay (no tape) once frozen."""
        tape = None
        if self.frozen is not None:
            p = self._params(inputs, smooth)
            y, u, final, discrete = self.model.replay(
                inputs["x"], p, self.dt, w_rec=inputs.get("w_rec"), state=self._state(inputs),
                held=self.frozen,
            )  # fmt: skip
            points = points_of_replay(p, u, discrete)
        else:
            y, tape = self._forward(inputs, smooth)
            final, points = tape.final_state, kink_points([tape])
        self._last_y = y
        value, grad_y = self.loss(y)
        for name, w in self.final_weights.items():
            value += float(np.sum(w * final[name]))
        return value, grad_y, tape, points

    def __call__(self, inputs) -> float:
        value, _, _, points = self.run(inputs)
        if self.signature is not None and not same_signature(
            self.signature, kink_signature(points)
        ):
            self.crossings += 1
        return value

    def analytic(self, smooth: bool = True):
        """``(gradients, loss, kink points)`` from :func:`~numbaspike.neuron_backward`
        (looked up at call time). In smooth mode with ``detach_reset`` it also holds the
        spikes of the detached terms for the finite differences."""
        self.frozen = None
        value, grad_y, tape, points = self.run(self.inputs, smooth)
        g = _neuron.neuron_backward(grad_y, tape, grad_final_state=self.final_weights or None)
        grads = {k: np.asarray(g[k], dtype=np.float64) for k in self.inputs}
        if smooth and self.p.detach_reset:
            self.frozen = self._last_y.copy()  # the spikes the reset used, where it applied
        return grads, value, points

    def torch_gradients(self, smooth: bool = True) -> dict[str, np.ndarray]:
        """The same gradients from :mod:`numbaspike.torch_reference` (PyTorch autograd)."""
        import torch

        from .. import torch_reference as ref

        t = {
            k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
            for k, v in self.inputs.items()
        }
        state = {k: torch.tensor(v) for k, v in self.pinned.items()} or None
        if self.recurrent:
            state = {name: t[f"{name}0"] for name in self.model.state}
            state["z"] = t["z0"]
        y, final = _torch_model_forward(
            ref, t["x"], self.p, self.dt, smooth=smooth, w_rec=t.get("w_rec"), state=state,
            learned={k: t[k] for k in self.fields},
        )  # fmt: skip
        w = torch.tensor(self.loss.weights)
        value = torch.sum(w * y) + 0.25 * torch.sum(y * y)
        for name, fw in self.final_weights.items():
            value = value + torch.sum(torch.tensor(fw) * final[name])
        value.backward()
        return {
            k: (np.zeros_like(self.inputs[k]) if v.grad is None else v.grad.numpy().copy())
            for k, v in t.items()
        }


class _NetworkProblem:
    """Linear(3→4) → a recurrent spiking layer (4, all neuron parameters learned) →
    Linear(4→2, bias) → LI(2, learned).

    The spiking layer is LIFRecurrent for LIF parameters, else the recurrent layer of the
    parameters' model (:class:`~numbaspike.neuron_layers.Neuron`), its parameters drawn by
    :func:`_model_draw` and its input weights scaled so that a fair share of its membranes
    is above threshold.
    """

    def __init__(self, p, rng: np.random.Generator) -> None:
        from ..layers import LI, LIFRecurrent, Linear
        from ..network import Sequential
        from ..neuron_layers import Neuron

        n_steps, batch, n = SUITE_SHAPE
        f64 = np.float64
        li = _neuron_draw(rng, 2, False)
        if isinstance(p, LIFParameters):
            lif = _neuron_draw(rng, n, True)
            spiking = LIFRecurrent(
                n, p.replace(**lif), learn=_LIF_FIELDS, seed=rng, scale=1.0, dtype=f64
            )
            gain = 1.0
        else:
            model = _models.model_of(p)
            p = p.replace(**_model_draw(model, rng, n))
            spiking = Neuron(n, p, learn=model.learnable, recurrent=True, seed=rng, dtype=f64)
            gain = None
        self.net = Sequential(
            Linear(3, n, seed=rng, dtype=f64),
            spiking,
            Linear(n, 2, bias=True, seed=rng, dtype=f64),
            LI(2, LIParameters(**li), learn=_LI_FIELDS, dtype=f64),
        )
        params = self.net.parameters()
        w_in = rng.normal(0.2, 0.25, (n, 3))
        params["1.w_rec"][...] = rng.normal(0.0, 0.6 / math.sqrt(n), (n, n))
        params["2.weight"][...] = rng.normal(0.0, 0.5, (2, n))
        self.x = rng.uniform(0.0, 2.0, (n_steps, batch, 3))
        self.loss = _SuiteLoss(rng.normal(0.0, 1.0, (n_steps, batch, 2)))
        if gain is None:
            gain = _calibrate(lambda g: self._active_fraction(w_in * g))
        params["0.weight"][...] = w_in * gain

    def _active_fraction(self, w_in) -> float:
        """Fraction of the spiking layer's membranes above threshold with input weights ``w_in``."""
        self.net.parameters()["0.weight"][...] = w_in
        net = smooth_copy(self.net, np.float64, smooth=True)
        _, tape = net.forward(self.x)
        return _above_threshold(tape.tapes[1])

    def kink_distance(self) -> float:
        net = smooth_copy(self.net, np.float64, smooth=True)
        return kink_distance(kink_points(net.forward(self.x)[1].tapes))

    def analytic(self, smooth: bool) -> dict[str, np.ndarray]:
        net = smooth_copy(self.net, np.float64, smooth=smooth)
        net.zero_grad()
        y, tape = net.forward(self.x)
        net.backward(self.loss(y)[1], tape)
        return {k: np.array(v) for k, v in net.gradients().items()}

    def torch_gradients(self, smooth: bool) -> dict[str, np.ndarray]:
        import torch

        t = {k: torch.tensor(v, requires_grad=True) for k, v in self.net.parameters().items()}
        y = _torch_network_forward(self.net, torch.tensor(self.x), t, smooth=smooth)
        w = torch.tensor(self.loss.weights)
        (torch.sum(w * y) + 0.25 * torch.sum(y * y)).backward()
        return {k: v.grad.numpy().copy() for k, v in t.items()}


def _torch_model_forward(ref, x, p, dt, *, smooth, w_rec=None, state=None, learned=None):
    """Run the oracle of the model of ``p`` (``learned``: tensors replacing its fields)."""
    model = _models.model_of(p)
    forward, defaults = ref.MODELS[model.name]
    values = {k: getattr(p, k) for k in defaults}
    values.update(learned or {})
    if not model.spiking:  # a readout: no spike options
        return forward(x, values, dt, w_rec, state)
    return forward(
        x, values, dt, w_rec, state, surrogate=p.surrogate, alpha=p.alpha, reset=p.reset,
        detach_reset=p.detach_reset, smooth=smooth,
    )  # fmt: skip


def _torch_network_forward(net, x, params: dict, smooth: bool):
    """A :class:`~numbaspike.network.Sequential` run by :mod:`numbaspike.torch_reference`
    (the oracle takes plain values: this adapter reads the layers' settings), the spiking
    layers in smooth (``True``) or step (``False``) mode; ``params`` by parameter name."""
    import torch

    from .. import torch_reference as ref
    from ..layers import Linear, Neuron

    for k, layer in enumerate(net.layers):
        mine = {
            name.split(".", 1)[1]: v
            for name, v in params.items()
            if name.split(".", 1)[0] == str(k)
        }
        w_rec = mine.pop("w_rec", None)
        if w_rec is not None and not getattr(layer, "autapses", True):
            w_rec = w_rec * (1.0 - torch.eye(w_rec.shape[0], dtype=w_rec.dtype))
        if isinstance(layer, Linear):
            x = x @ mine["weight"].T
            if "bias" in mine:
                x = x + mine["bias"]
        elif isinstance(layer, Neuron):
            x, _ = _torch_model_forward(
                ref, x, layer.p, layer.dt, smooth=smooth, w_rec=w_rec, learned=mine
            )
        else:
            raise TypeError(f"layer {k}: no PyTorch reference for {type(layer).__name__}")
    return x


def _torch_error(ours: Mapping[str, np.ndarray], theirs: Mapping[str, np.ndarray]) -> float:
    """max over inputs of max|ours - theirs| / max|theirs|."""
    worst = 0.0
    for k, ref in theirs.items():
        a = np.asarray(ours[k], dtype=np.float64)
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        err = float(np.max(np.abs(a - ref))) if ref.size else 0.0
        rel = err / scale if scale > 0 else (0.0 if err == 0 else math.inf)
        worst = max(worst, rel if math.isfinite(rel) else math.inf)
    return worst


@dataclass
class SuiteCase:
    """One case of :func:`run_gradcheck_suite`.

    Attributes
    ----------
    layer : str
        ``"LIF"``, ``"LIFRecurrent"``, ``"LI"`` or ``"Sequential"``.
    surrogate, reset : str
        ``"-"`` for the leaky integrator.
    detach : bool or None
        ``detach_reset`` (None for the leaky integrator).
    alpha : float or None
    result : GradCheckResult or None
        Finite-difference check of every input (None if no valid problem was found).
    torch_smooth, torch_step : float or None
        Largest relative difference to the PyTorch reference in smooth and in step
        (spiking) mode, when ``torch=True``.
    draws : int
        Random problems drawn until one kept its membranes away from the kinks of F.
    note : str
    """

    layer: str
    surrogate: str
    reset: str
    detach: bool | None
    alpha: float | None
    result: GradCheckResult | None
    torch_smooth: float | None = None
    torch_step: float | None = None
    draws: int = 1
    note: str = ""
    tol: float = 1e-6

    @property
    def name(self) -> str:
        """E.g. ``"LIFRecurrent/sigmoid/subtract/detach"``."""
        if self.layer == "LI":
            return "LI"
        tail = "detach" if self.detach else "attached"
        return f"{self.layer}/{self.surrogate}/{self.reset}/{tail}"

    @property
    def ok(self) -> bool:
        if self.result is None or not self.result.ok:
            return False
        return all(e is None or e <= self.tol for e in (self.torch_smooth, self.torch_step))


@dataclass
class GradcheckSuiteReport:
    """Result of :func:`run_gradcheck_suite`: ``ok``, ``cases`` and a table as ``str(report)``."""

    cases: list[SuiteCase]
    tol: float
    seed: int
    torch: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return bool(self.cases) and all(c.ok for c in self.cases)

    @property
    def failures(self) -> list[SuiteCase]:
        return [c for c in self.cases if not c.ok]

    @property
    def max_rel_err(self) -> float:
        return max(
            (c.result.max_rel_err for c in self.cases if c.result is not None), default=math.inf
        )

    @property
    def checks(self) -> int:
        """Finite-difference checks tried over all cases."""
        return sum(c.result.checks for c in self.cases if c.result is not None)

    @property
    def excluded(self) -> int:
        """Checks excluded over all cases (their stencils crossed a kink)."""
        return sum(c.result.excluded for c in self.cases if c.result is not None)

    def __str__(self) -> str:
        headers = [
            "layer",
            "surrogate",
            "alpha",
            "reset",
            "detach",
            "FD max rel err",
            "worst input",
        ]
        if self.torch:
            headers += ["torch smooth", "torch step"]
        headers.append("result")
        rows = []
        for c in self.cases:
            worst = c.result.worst_row if c.result is not None else None
            row = [
                c.layer,
                c.surrogate,
                "-" if c.alpha is None else f"{c.alpha:g}",
                c.reset,
                "-" if c.detach is None else ("yes" if c.detach else "no"),
                _fmt(c.result.max_rel_err) if c.result is not None else "-",
                worst.name if worst is not None else "-",
            ]
            if self.torch:
                row += [_fmt(c.torch_smooth), _fmt(c.torch_step)]
            row.append(("ok" if c.ok else "FAIL") + (f" ({c.note})" if c.note else ""))
            rows.append(row)
        right = [2, 5] + ([7, 8] if self.torch else [])
        n_fail = len(self.failures)
        head = (
            f"numbaspike gradcheck: analytic BPTT vs central finite differences, float64, smooth "
            f"mode, T,B,N = {SUITE_SHAPE}; relative error tolerance {self.tol:g}, seed {self.seed}"
        )
        lines = [head, _table(headers, rows, right=right), ""]
        for c in self.failures:
            lines.append(f"FAILED: {c.name}")
            if c.result is not None:
                lines.append(str(c.result))
            lines.append("")
        summary = (
            f"{len(self.cases)} cases, {len(self.cases) - n_fail} passed, {n_fail} failed; "
            f"{self.checks} checks, {self.excluded} excluded; "
            f"largest FD relative error {_fmt(self.max_rel_err)}; {self.seconds:.1f} s"
        )
        lines.append(("OK: " if self.ok else "FAILED: ") + summary)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"GradcheckSuiteReport(ok={self.ok}, cases={len(self.cases)}, failures={len(self.failures)})"


def _import_torch_reference():
    try:
        import torch  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "run_gradcheck_suite(torch=True) / `numbaspike gradcheck --torch` needs PyTorch "
            "(pip install torch)"
        ) from err
    from .. import torch_reference

    return torch_reference


def _layer_case(kind, p, tol, seed, use_torch, check_kw, make_problem=None) -> SuiteCase:
    """A layer case: ``make_problem(rng)`` (default: a :class:`_LayerProblem` of ``kind``)
    drawn until its membranes keep away from the kinks of F and no stencil crosses one."""
    alpha = None if kind == "LI" else float(p.alpha)
    case = SuiteCase(
        kind,
        p.surrogate if p else "-",
        p.reset if p else "-",
        p.detach_reset if p else None,
        alpha,
        None,
        tol=tol,
    )
    if make_problem is None:
        make_problem = lambda rng: _LayerProblem(kind, p, rng)  # noqa: E731
    for draw in range(_SUITE_DRAWS):
        rng = np.random.default_rng([seed, zlib.crc32(case.name.encode()), draw])
        prob = make_problem(rng)
        analytic, value, points = prob.analytic(smooth=True)
        if kink_distance(points) < SUITE_KINK_MARGIN:
            continue
        prob.signature = kink_signature(points)
        if prob.frozen is not None:
            replayed = prob(prob.inputs)
            if abs(replayed - value) > 1e-10 * max(1.0, abs(value)):
                case.note = f"NumPy replay of the forward differs from the kernel ({replayed!r} vs {value!r})"
                return case
        result = check_gradients(
            prob, prob.inputs, analytic, tol=tol, seed=rng, title=case.name, **check_kw
        )
        if prob.crossings:
            continue
        case.result, case.draws = result, draw + 1
        if use_torch:
            case.torch_smooth = _torch_error(analytic, prob.torch_gradients(smooth=True))
            step_grads, _, _ = prob.analytic(smooth=False)
            case.torch_step = _torch_error(step_grads, prob.torch_gradients(smooth=False))
        return case
    case.draws = _SUITE_DRAWS
    case.note = f"no problem kept its membranes {SUITE_KINK_MARGIN:g} away from the kinks of F"
    return case


def _model_case(model, recurrent, p, tol, seed, use_torch, check_kw) -> SuiteCase:
    """A case of a registered model's feed-forward or recurrent layer (:class:`_ModelProblem`)."""
    kind = f"{model.name}-rec" if recurrent else model.name
    missing = [h for h in ("kink_arguments", "replay") if getattr(model, h, None) is None]
    if missing:
        case = SuiteCase(kind, p.surrogate, p.reset, p.detach_reset, float(p.alpha), None, tol=tol)
        case.note = f"the {model.name} model has no {' or '.join(missing)} hook (NeuronModel)"
        return case
    return _layer_case(
        kind, p, tol, seed, use_torch, check_kw,
        make_problem=lambda rng: _ModelProblem(model, p, recurrent, rng),
    )  # fmt: skip


def _network_case(p, tol, seed, use_torch, check_kw) -> SuiteCase:
    kind = "Sequential"
    if not isinstance(p, LIFParameters):
        kind = f"Sequential({_models.model_of(p).name})"
    case = SuiteCase(kind, p.surrogate, p.reset, p.detach_reset, float(p.alpha), None, tol=tol)
    for draw in range(_SUITE_DRAWS):
        rng = np.random.default_rng([seed, zlib.crc32(case.name.encode()), draw])
        prob = _NetworkProblem(p, rng)
        if prob.kink_distance() < SUITE_KINK_MARGIN:
            continue
        result, _, crossings = _check_network(
            prob.net,
            prob.x,
            prob.loss,
            None,
            params=None,
            input_grad=True,
            tol=tol,
            seed=rng,
            **check_kw,
        )
        if crossings:
            continue
        result.title = case.name
        case.result, case.draws = result, draw + 1
        if use_torch:
            case.torch_smooth = _torch_error(prob.analytic(True), prob.torch_gradients(True))
            case.torch_step = _torch_error(prob.analytic(False), prob.torch_gradients(False))
        return case
    case.draws = _SUITE_DRAWS
    case.note = f"no problem kept its membranes {SUITE_KINK_MARGIN:g} away from the kinks of F"
    return case


def suite_models() -> list:
    """The registered models the suite checks on their own layers: the spiking ones that run
    on the generic driver (LIF has its own cases; a model with hand-tuned kernels
    (``NeuronModel.specialised``) is checked through them)."""
    return [
        m
        for _, m in sorted(_models.registered_models().items())
        if getattr(m, "spiking", True) and getattr(m, "specialised", None) is None
    ]


#: Every layer kind of the suite: ``Neuron`` and ``NeuronRecurrent`` are the feed-forward
#: and recurrent layers of the registered models (:func:`suite_models`).
SUITE_LAYERS = ("LIF", "LIFRecurrent", "LI", "Sequential", "Neuron", "NeuronRecurrent")
#: ``(surrogate, reset, detach_reset)`` of each registered model's cases: both resets, both
#: detach settings and two surrogates whose ``F`` is negative below threshold (so that
#: LIFRefrac's counter returns to 0 in smooth mode), one of them with a kink at 0. Each
#: combination compiles the model's driver once (shared by its two layer forms), so the
#: suite takes four, not the full product; the network case reuses the last one.
SUITE_MODEL_CASES = (
    ("tanh", "zero", False),
    ("superspike", "zero", True),
    ("superspike", "subtract", False),
    ("tanh", "subtract", True),
)


def run_gradcheck_suite(
    tol: float = 1e-6,
    seed: int = 0,
    torch: bool = False,
    *,
    layers: Iterable[str] = SUITE_LAYERS,
    surrogates: Iterable[str] = SURROGATE_NAMES,
    models: Iterable[str] | None = None,
    eps: float = 7e-5,
    n_entries: int = 4,
    n_directions: int = 2,
    order: int = 6,
    floor: float = 1e-2,
) -> GradcheckSuiteReport:
    """Check the BPTT gradients of every layer kind against finite differences (smooth mode).

    Cases (float64, ``T, B, N =`` :data:`SUITE_SHAPE`, ``alpha`` from :data:`SUITE_ALPHA`):

    * ``LIF`` (feed-forward) and ``LIFRecurrent`` × every surrogate × reset
      (``zero``/``subtract``) × ``detach_reset`` (no/yes): gradients w.r.t. the input, the
      neuron parameters ``tau_mem_inv, tau_syn_inv, v_th, v_leak`` (per neuron) and, for the
      recurrent layer, ``w_rec`` and the initial state ``v0, i0, z0`` (its loss also reads
      the final state, so the truncated-BPTT path is checked too);
    * ``LI``: input, neuron parameters, initial state, final-state loss;
    * ``Sequential`` (Linear → LIFRecurrent → Linear → LI, all neuron parameters learned)
      per surrogate, cycling through reset × detach: every parameter and the input, via
      :func:`check_network`;
    * for every registered model on the generic driver (:func:`suite_models`: LIFBox, LSNN,
      LIFRefrac, ...), per :data:`SUITE_MODEL_CASES`: its feed-forward (``Neuron``, named
      ``<model>``) and recurrent (``NeuronRecurrent``, ``<model>-rec``) layer, the same
      gradients as for LIF (every learnable parameter per neuron; the recurrent layer's
      initial state is every state variable, and its loss reads the final state of those
      that carry a gradient), and with ``Sequential`` a network with its recurrent layer
      (``Sequential(<model>)``). What the suite needs of a model comes from its
      :class:`~numbaspike.models.base.NeuronModel`: the ``kink_arguments`` and ``replay``
      hooks (a model without them fails, saying so) and ``discrete_signature``; parameters
      are drawn around the parameter class's defaults and the input is scaled until a
      fair share of the membranes is above threshold.

    Each case draws a random problem and re-draws it (up to 25 times) until no membrane
    :math:`u` (the argument of the spike function) is within :data:`SUITE_KINK_MARGIN` of a
    kink of ``F`` and no finite-difference stencil moves one across a kink or changes a
    discrete value of the model (LIFRefrac's refractory masks).

    Parameters
    ----------
    tol : float
        Largest relative error (see :func:`check_gradients`) for a case to pass; finite and
        > 0.
    seed : int
        Seed of the random problems (>= 0).
    torch : bool
        Also compare every case with the PyTorch-autograd oracle
        (:mod:`numbaspike.torch_reference`), in smooth mode and in step (spiking) mode; needs
        PyTorch.
    layers : iterable of str
        Layer kinds (:data:`SUITE_LAYERS`; default all).
    surrogates : iterable of str
        Surrogates (default all; the models' cases keep those of :data:`SUITE_MODEL_CASES`
        that are listed).
    models : iterable of str, optional
        Registered model names for the ``Neuron``, ``NeuronRecurrent`` and model
        ``Sequential`` cases (default: :func:`suite_models`).
    eps, n_entries, n_directions, order, floor
        Finite-difference settings, as in :func:`check_gradients`. The defaults (sixth-order
        stencil, ``floor=1e-2``) keep the largest error of the default suite near 1e-8 and
        below 1e-7 for every seed tried (0-59), far under the default tolerance.

    Returns
    -------
    GradcheckSuiteReport
        ``report.ok``; ``print(report)`` shows a row per case.

    Raises
    ------
    ValueError
        A setting out of its range, naming it (``tol`` NaN, infinite, <= 0 or not a
        number; ``eps`` outside (0, 1]; ``n_entries`` < 1; ...), or unknown ``layers``,
        ``surrogates`` or ``models``.
    """
    check_kw = dict(
        zip(
            ("eps", "n_entries", "n_directions", "tol", "floor", "order"),
            _check_fd_settings(eps, n_entries, n_directions, tol, floor, order),
            strict=True,
        )
    )
    tol = check_kw.pop("tol")
    seed = _count("seed", seed, 0)
    if torch:
        _import_torch_reference()
    layers = tuple(layers)
    surrogates = tuple(surrogates)
    unknown = set(layers) - set(SUITE_LAYERS)
    if unknown:
        raise ValueError(f"layers: unknown {sorted(unknown)}; expected some of {SUITE_LAYERS}")
    for s in surrogates:
        if s not in SURROGATE_KINKS:
            raise ValueError(f"surrogates: unknown {s!r}; expected some of {SURROGATE_NAMES}")
    if models is None:
        chosen = suite_models()
    else:
        if isinstance(models, str):
            raise ValueError(f"models must be an iterable of model names, got {models!r}")
        try:
            chosen = [_models.model_named(name) for name in models]
        except ValueError as err:
            raise ValueError(f"models: {err}") from None
    with _numba_threads(1):  # tiny problems: thread start-up would dominate every call
        return _run_suite(tol, seed, torch, layers, surrogates, chosen, check_kw)


def _run_suite(tol, seed, torch, layers, surrogates, models, check_kw) -> GradcheckSuiteReport:
    start = time.perf_counter()
    cases: list[SuiteCase] = []
    combos = [(r, d) for r in ("zero", "subtract") for d in (False, True)]
    for kind in ("LIF", "LIFRecurrent"):
        if kind not in layers:
            continue
        for s in surrogates:
            for reset, detach in combos:
                p = LIFParameters(
                    surrogate=s,
                    alpha=SUITE_ALPHA.get(s, 10.0),
                    reset=reset,
                    detach_reset=detach,
                    v_reset=-0.1,
                )
                cases.append(_layer_case(kind, p, tol, seed, torch, check_kw))
    if "LI" in layers:
        cases.append(_layer_case("LI", None, tol, seed, torch, check_kw))
    if "Sequential" in layers:
        for k, s in enumerate(surrogates):
            reset, detach = combos[k % len(combos)]
            p = LIFParameters(
                surrogate=s,
                alpha=SUITE_ALPHA.get(s, 10.0),
                reset=reset,
                detach_reset=detach,
                v_reset=-0.1,
            )
            cases.append(_network_case(p, tol, seed, torch, check_kw))
    model_cases = [c for c in SUITE_MODEL_CASES if c[0] in surrogates]
    for model in models:
        settings = [
            model.parameters().replace(
                surrogate=s,
                alpha=SUITE_ALPHA.get(s, 10.0),
                reset=reset,
                detach_reset=detach,
                v_reset=-0.1,
            )  # fmt: skip
            for s, reset, detach in model_cases
        ]
        for form, recurrent in (("Neuron", False), ("NeuronRecurrent", True)):
            if form in layers:
                for p in settings:
                    cases.append(_model_case(model, recurrent, p, tol, seed, torch, check_kw))
        if "Sequential" in layers and settings:
            cases.append(_network_case(settings[-1], tol, seed, torch, check_kw))
    return GradcheckSuiteReport(cases, tol, seed, bool(torch), time.perf_counter() - start)
