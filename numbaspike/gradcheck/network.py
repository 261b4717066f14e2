r"""Whole networks: :func:`check_network`, :func:`smooth_copy` and the network objective.

:func:`check_network` checks every parameter gradient of a
:class:`~numbaspike.network.Sequential` against finite differences of its loss, run as a
float64 copy in smooth mode (:func:`smooth_copy`): LIF layers and the layers of every
registered neuron model (:class:`~numbaspike.neuron_layers.Neuron`). What the checker needs
of a model comes from its record (:class:`~numbaspike.models.base.NeuronModel`: the
``kink_arguments``, ``discrete_signature`` and ``replay`` hooks) and from its parameter class
(``smooth`` and ``detach_reset``, which every spiking parameter class has).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from ..validation import check_positive_int
from .finite_difference import (
    GradCheckResult,
    _check_fd_settings,
    _numba_threads,
    check_gradients,
)
from .kinks import (
    kink_distance,
    kink_points,
    kink_signature,
    points_of_replay,
    replay_of,
    same_signature,
)

__all__ = ["smooth_copy", "check_network"]

# --------------------------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------------------------


def smooth_copy(net, dtype=np.float64, smooth: bool | None = True):
    """A copy of a :class:`~numbaspike.network.Sequential` in ``dtype``, optionally in smooth mode.

    The copy is rebuilt with ``Sequential.from_config`` and gets the current parameter
    values; with ``smooth=True`` (``False``) every layer whose parameters have a ``smooth``
    field (LIF layers and the spiking layers of every registered model, e.g.
    :class:`~numbaspike.neuron_layers.LSNN`; LIFRefrac's nested LIF parameters included) gets
    ``p.replace(smooth=True)`` (``False``), with ``None`` they are kept; smooth copies drop
    ``sparse_tol`` (the smooth model has no sparse backward). The original network is not
    touched.
    """
    from ..network import Sequential

    if not isinstance(net, Sequential):
        raise TypeError(f"net must be a numbaspike Sequential, got {type(net).__name__}")
    cfg = net.config()
    for c in cfg:
        c["dtype"] = np.dtype(dtype).name
        if smooth:  # the smooth model has no sparse backward: its gradient is exact
            c.pop("sparse_tol", None)
    try:
        copy = Sequential.from_config(cfg)
    except ValueError as err:
        raise TypeError(
            f"cannot rebuild the network from its config ({err}); gradcheck supports the "
            "built-in layers"
        ) from None
    if smooth is not None:
        for layer in copy.layers:
            p = getattr(layer, "p", None)
            if p is not None and hasattr(p, "smooth"):  # every spiking parameter class
                layer.p = p.replace(smooth=bool(smooth))
    copy.load_parameters({k: np.asarray(v, dtype=dtype) for k, v in net.parameters().items()})
    return copy


def _loss_target(target, dtype):
    """Float targets in the working dtype; labels and other arrays unchanged."""
    if isinstance(target, np.ndarray) and target.dtype.kind == "f":
        return target.astype(dtype)
    return target


def pinned_state(layer) -> dict[str, np.ndarray]:
    """The default initial state of a model layer that equals a parameter's value but is a
    constant of the model (LSNN's ``b0 = v_th``, as in Norse): the variables of
    ``NeuronModel.initial_state`` that ``initial_state_owner`` does not list. The backward
    gives them no gradient, so finite differences hold them at their values (by name, (N,))."""
    model = getattr(layer, "model", None)
    if model is None or getattr(model, "specialised", None) is not None:
        return {}
    p = layer.current_parameters()
    defaults = model.initial_state(p, layer.n_out)
    return {
        name: np.array(value, dtype=np.float64)
        for name, value in defaults.items()
        if name not in model.initial_state_owner
    }


def _detached(layer) -> bool:
    """Whether the layer's parameters detach the reset (any spiking parameter class)."""
    return bool(getattr(getattr(layer, "p", None), "detach_reset", False))


class _NetworkObjective:
    """``params -> loss`` of a (smooth) network, with optional input ``"x"``.

    Counts evaluations that crossed a point where the objective is not smooth, relative to
    the base point: a membrane across a kink of ``F``, or the loss across one of its own
    kinks, seen as a change in which entries of ``dloss/dy`` are zero (the time step of a
    maximum over time, the active side of a rectifier), or changed a discrete value of a
    model (a refractory mask). Initial states that the backward treats as constants although
    they default to a parameter (:func:`pinned_state`) are held at their base values. After
    :meth:`freeze`, layers with ``detach_reset=True`` run
    their NumPy replay (:func:`~numbaspike.gradcheck.kinks.replay_of`) with the reset spikes
    of the base point held constant (the function whose gradient the detached backward
    computes).
    """

    def __init__(self, net, x, loss, target) -> None:
        self.net, self.x, self.loss, self.target = net, x, loss, target
        self.signature = None
        self.frozen: dict[int, np.ndarray] = {}
        self.crossings = 0
        self._params = net.parameters()
        self._loaded: dict[str, np.ndarray] = {}  # the array last copied into each parameter
        self._no_autapses = {
            f"{k}.w_rec"
            for k, layer in enumerate(net.layers)
            if f"{k}.w_rec" in self._params and not getattr(layer, "autapses", True)
        }
        self.pinned = {k: pinned_state(layer) for k, layer in enumerate(net.layers)}
        self.pinned = {k: state for k, state in self.pinned.items() if state}

    def _load(self, params) -> None:
        """Copy the values of ``params`` that changed since the last call into the network.

        Finite differences perturb one parameter at a time and pass the others as the same
        array objects, so copying by identity skips nearly every copy and the validation of
        ``Sequential.load_parameters`` (perturbed neuron parameters are still validated by
        the layers' forward passes).
        """
        for name, value in params.items():
            if self._loaded.get(name) is value:
                continue
            if name not in self._params:
                raise KeyError(
                    f"unknown parameter {name!r}; the network has {sorted(self._params)}"
                )
            self._params[name][...] = value
            if name in self._no_autapses:  # a diagonal that is not a parameter stays 0
                np.fill_diagonal(self._params[name], 0.0)
            self._loaded[name] = value

    def forward(self, x, record: bool = False):
        """``(y, tape or None, kink points)``; the network's own forward pass and its tape
        without frozen or pinned layers, or with ``record`` (valid at the base point only,
        where the pinned states equal their defaults)."""
        if record or (not self.frozen and not self.pinned):
            y, tape = self.net.forward(x)
            return y, tape, kink_points(tape.tapes)
        from ..neuron import neuron_forward

        points = []
        for k, layer in enumerate(self.net.layers):
            state = self.pinned.get(k)
            if k in self.frozen:
                p = layer.current_parameters()
                w_rec = layer.parameters().get("w_rec")
                x, u, _, discrete = replay_of(layer)(
                    x, p, layer.dt, w_rec=w_rec, state=state, held=self.frozen[k]
                )
                points += points_of_replay(p, u, discrete)
                continue
            if state is None:
                x, tape = layer.forward(x)
            else:
                p, w_rec = layer.current_parameters(), layer.parameters().get("w_rec")
                x, tape = neuron_forward(x, p, layer.dt, w_rec, state)
            points += kink_points([tape])
        return x, None, points

    def run(self, inputs: Mapping[str, np.ndarray], record: bool = False):
        """``(loss, dloss/dy, tape or None, kink points)`` at ``inputs`` (see :meth:`forward`)."""
        self._load({k: v for k, v in inputs.items() if k != "x"})
        y, tape, points = self.forward(inputs.get("x", self.x), record)
        value, grad = self.loss(y, self.target)
        return float(value), grad, tape, points

    def freeze(self, tape) -> None:
        """Hold the reset spikes of ``detach_reset`` layers at their values in ``tape`` (the
        layers' outputs: the spikes the reset used wherever the reset was applied)."""
        self.frozen = {
            k: tape.outputs[k].copy()
            for k, layer in enumerate(self.net.layers)
            if _detached(layer)
        }

    @staticmethod
    def signature_of(points, grad_y) -> list[np.ndarray]:
        """Side of every kink of every membrane, and the zero pattern of ``dloss/dy``."""
        return [*kink_signature(points), np.asarray(grad_y) != 0]

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> float:
        value, grad_y, _, points = self.run(inputs)
        if self.signature is not None and not same_signature(
            self.signature, self.signature_of(points, grad_y)
        ):
            self.crossings += 1
        return value


def check_network(
    net,
    x: np.ndarray,
    loss,
    target,
    *,
    params: Iterable[str] | None = None,
    input_grad: bool = False,
    eps: float = 1e-4,
    n_entries: int = 8,
    n_directions: int = 2,
    tol: float = 1e-6,
    floor: float = 1e-3,
    order: int = 4,
    seed: int | None = 0,
    threads: int | None = 1,
) -> GradCheckResult:
    """Check every parameter gradient of a network against finite differences, in smooth mode.

    A float64 copy of ``net`` is built with every spiking layer (LIF, LIFRecurrent and the
    layers of the registered models) in smooth mode (:func:`smooth_copy`,
    ``p.replace(smooth=True)``); its ``backward`` gradients
    (``net.gradients()``) are compared with central finite differences of
    ``loss(net(x), target)`` by :func:`check_gradients`. ``net`` itself is not modified.

    Parameters
    ----------
    net : Sequential
    x : ndarray (T, B, n_in)
        Input; use something on which the membranes stay away from the kinks of ``F``.
    loss : callable
        ``loss(y, target) -> (value, dvalue/dy)``, e.g. :class:`numbaspike.losses.MembraneMSE`.
    target
        Passed to ``loss`` (float arrays are cast to float64).
    params : iterable of str, optional
        Parameter names (``"<layer>.<name>"``) to check; default all.
    input_grad : bool
        Also check the gradient w.r.t. ``x`` (row ``"x"``).
    eps, n_entries, n_directions, tol, floor, order, seed
        As in :func:`check_gradients`.
    threads : int or None
        Numba threads while checking (default 1: the many small forward passes of finite
        differences are faster without thread start-up); None leaves the setting alone.

    Returns
    -------
    GradCheckResult
        A row per parameter. A check (entry or direction) whose finite-difference stencil
        moved a membrane :math:`u = h - v_{th}` across a kink of :math:`F`, or the loss
        across one of its kinks (e.g. a maximum over time moving to another step), is
        excluded, never failed: the rows count the excluded checks and the notes give the
        total and the smallest distance of a membrane to a kink.

    Raises
    ------
    ValueError
        A setting out of its range, naming it (``tol`` NaN, infinite or <= 0, ...).
    KeyError
        An unknown parameter name in ``params``.
    """
    _check_fd_settings(eps, n_entries, n_directions, tol, floor, order)
    if threads is not None:
        check_positive_int("threads", threads)
    with _numba_threads(threads):
        result, _, _ = _check_network(
            net, x, loss, target, params=params, input_grad=input_grad, eps=eps,
            n_entries=n_entries, n_directions=n_directions, tol=tol, floor=floor, order=order,
            seed=seed,
        )  # fmt: skip
    return result


def _check_network(
    net,
    x,
    loss,
    target,
    *,
    params,
    input_grad,
    eps,
    n_entries,
    n_directions,
    tol,
    floor,
    order,
    seed,
):
    """:func:`check_network`, also returning the smallest kink distance and the crossings."""
    smooth = smooth_copy(net, np.float64, smooth=True)
    x64 = np.ascontiguousarray(x, dtype=np.float64)
    obj = _NetworkObjective(smooth, x64, loss, _loss_target(target, np.float64))
    base = {k: v.copy() for k, v in smooth.parameters().items()}
    names = list(base) if params is None else list(params)
    unknown = sorted(set(names) - set(base))
    if unknown:
        raise KeyError(f"unknown parameters {unknown}; the network has {sorted(base)}")
    smooth.zero_grad()
    value, grad_y, tape, points = obj.run(base, record=True)
    obj.signature = obj.signature_of(points, grad_y)  # before backward, which may reuse grad_y
    gx = smooth.backward(grad_y, tape, need_input_grad=input_grad)
    analytic = {
        k: np.array(g, dtype=np.float64) for k, g in smooth.gradients().items() if k in names
    }
    if input_grad:
        analytic["x"] = np.asarray(gx, dtype=np.float64)
    dist = kink_distance(points)
    notes = [f"loss {value:.6g}"]
    if math.isfinite(dist):
        notes.append(f"closest membrane to a kink of F: |u - kink| = {dist:.2e}")
    for k, layer in enumerate(smooth.layers):
        model = getattr(layer, "model", None)
        if model is not None and getattr(model, "kink_arguments", None) is None:
            if getattr(model, "specialised", None) is None and hasattr(layer.p, "smooth"):
                notes.append(
                    f"layer {k}: the {model.name} model has no kink_arguments hook; stencils "
                    "that cross a kink of F there are not detected"
                )
    replay_ok, replay_note = True, ""
    detached = [k for k, layer in enumerate(smooth.layers) if _detached(layer)]
    missing = [k for k in detached if replay_of(smooth.layers[k]) is None]
    if missing:
        replay_ok = False
        names = ", ".join(
            f"layer {k} ({getattr(getattr(smooth.layers[k], 'model', None), 'name', '?')})"
            for k in missing
        )
        replay_note = f"no replay hook for the detach_reset {names}"
        notes.append(
            f"{replay_note}: the detached gradient cannot be checked (NeuronModel.replay)"
        )
    elif detached:
        obj.freeze(tape)
        replayed = obj(base)
        replay_ok = abs(replayed - value) <= 1e-10 * max(1.0, abs(value))
        replay_note = "NumPy replay differs from the kernel forward"
        notes.append(
            "detach_reset layers: finite differences hold the reset spikes at their values "
            f"(NumPy replay of the forward; loss {replayed:.6g} vs kernel {value:.6g})"
        )
    inputs = dict(base)
    if input_grad:
        inputs["x"] = x64
    rng = np.random.default_rng(seed)
    rows = []
    for name, g in analytic.items():
        r = check_gradients(
            obj, inputs, {name: g}, eps=eps, n_entries=n_entries, n_directions=n_directions,
            tol=tol, floor=floor, order=order, seed=rng,
        )  # fmt: skip
        row = r.rows[0]
        if not replay_ok:
            row.ok = False
            row.note = replay_note
        rows.append(row)
    obj._load(base)
    result = GradCheckResult(
        title="network gradient check (float64, smooth mode)", rows=rows, tol=tol, notes=notes
    )
    if result.excluded:
        result.notes.append(
            f"{result.excluded} checks excluded: a stencil point moved a membrane across a "
            "kink of F, changed a discrete value of a model (a refractory mask) or moved the "
            "loss across one of its kinks (a smaller eps excludes fewer)"
        )
    return result, dist, result.excluded
