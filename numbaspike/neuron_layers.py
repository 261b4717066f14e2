r"""Layers of any registered neuron model: :class:`Neuron` and its thin named forms.

``Neuron(n, p, recurrent=False, learn=())`` is a layer of the model of ``p`` (see
:mod:`numbaspike.models`): feed-forward, or recurrent with an owned weight matrix
:math:`W_{rec}` (the input of step :math:`t` is then :math:`x_t + W_{rec} z_{t-1}`). The named
forms only fix the model and the form, and give ``p`` its model's defaults:

==================  ======================  ===========================================
model               feed-forward            recurrent
==================  ======================  ===========================================
``lif``             :class:`LIF`            :class:`LIFRecurrent`
``li`` (readout)    :class:`LI`             (none: a readout emits no spikes)
``lif_box``         :class:`LIFBox`         :class:`LIFBoxRecurrent`
``lsnn``            :class:`LSNN`           :class:`LSNNRecurrent`
``lif_refrac``      :class:`LIFRefrac`      :class:`LIFRefracRecurrent`
==================  ======================  ===========================================

A named form is a :class:`Neuron` in every respect (forward and backward passes, learned
parameters, :meth:`Neuron.constrain`); the LIF and LI forms write the configuration types
``"LIF"``, ``"LIFRecurrent"`` and ``"LI"`` that checkpoints have always held, the others
``{"type": "Neuron", "model": ...}``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import fields, is_dataclass
from typing import Any

import numpy as np

from . import backend as _backend
from .compact_tape import check_sparse_tol
from .layer_base import (
    Layer,
    _as_dtype,
    _check_layer_input,
    _check_scale,
    _no_out_on_cuda,
    _on_device_input,
    _rng,
)
from .layers_cuda import host
from .models import (
    LIFBoxParameters,
    LIFParameters,
    LIFRefracParameters,
    LIParameters,
    LSNNParameters,
    model_named,
    model_of,
)
from .neuron import neuron_backward, neuron_forward
from .validation import check_positive_int

__all__ = [
    "LI",
    "LIF",
    "LIFBox",
    "LIFBoxRecurrent",
    "LIFRecurrent",
    "LIFRefrac",
    "LIFRefracRecurrent",
    "LSNN",
    "LSNNRecurrent",
    "Neuron",
    "TAU_INV_MIN",
    "V_TH_MARGIN",
    "config_forms",
    "named_form",
    "neuron_layer",
    "parameters_config",
    "parameters_from_config",
]

#: Smallest learned inverse time constant :meth:`Neuron.constrain` allows (1/s).
TAU_INV_MIN = 1e-3

#: How far above ``v_reset`` :meth:`Neuron.constrain` keeps a learned ``v_th``.
V_TH_MARGIN = 1e-3


def parameters_config(p) -> dict[str, Any]:
    """JSON-able fields of a parameter object (nested parameter objects as dicts)."""
    out: dict[str, Any] = {}
    for f in fields(p):
        if not f.init:
            continue
        value = getattr(p, f.name)
        if is_dataclass(value):
            value = parameters_config(value)
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        out[f.name] = value
    return out


def parameters_from_config(cls: type, values: dict[str, Any]):
    """Rebuild a parameter object of ``cls`` from :func:`parameters_config`."""
    defaults = cls()
    kwargs = {}
    for name, value in values.items():
        default = getattr(defaults, name, None)
        if is_dataclass(default) and isinstance(value, dict):
            value = parameters_from_config(type(default), value)
        elif isinstance(value, list):
            value = np.asarray(value, np.float64)
        kwargs[name] = value
    return cls(**kwargs)


def _v_th_floor(v_reset: float, dtype: np.dtype) -> np.floating:
    """The lowest learned ``v_th`` allowed: ``v_reset + V_TH_MARGIN`` rounded to ``dtype``,
    or the next value of ``dtype`` above ``v_reset`` where the margin is lost to rounding."""
    # the next value above v_reset as rounded to dtype also lies above v_reset in float64,
    # where the parameter classes compare them
    above = np.nextafter(dtype.type(v_reset), dtype.type(np.inf))
    return max(dtype.type(v_reset + V_TH_MARGIN), above)


class Neuron(Layer):
    r"""A layer of ``n`` neurons of the model of ``p`` (input currents (T, B, n); output the
    spikes (T, B, n), or the membrane for a readout such as LI).

    Parameters
    ----------
    n : int
    p : parameters of a registered model
        E.g. ``LIFParameters()``, ``LSNNParameters(beta=1.5)``; per-neuron values (arrays of
        length ``n``) are allowed.
    dt : float
        Time step (s); ``dt`` times each inverse time constant must be < 1.
    learn : iterable of str
        Parameters to train per neuron, some of the model's learnable ones (LIF:
        ``tau_mem_inv``, ``tau_syn_inv``, ``v_th``, ``v_leak``; LSNN adds ``beta`` and
        ``tau_adapt_inv``). After each optimiser step :meth:`constrain` (called by
        :func:`~numbaspike.train.fit`) keeps learned inverse time constants in
        :math:`[10^{-3}, 0.95/dt]` (a stable Euler step, :math:`dt\,\tau^{-1} < 1`) and a
        learned ``v_th`` at least :data:`V_TH_MARGIN` above ``v_reset`` (a reset must end
        below threshold); without it, a step that breaks either rule makes the next forward
        pass raise.
    recurrent : bool
        Own a recurrent matrix ``w_rec`` (n, n), initialised like ``nn.Linear``
        (:math:`U(-1/\sqrt n, 1/\sqrt n)`) times ``scale``; not for a readout.
    seed, scale, autapses
        Recurrent form only: the initialisation (``scale`` a finite real number), and
        ``autapses=False`` keeps the diagonal of ``w_rec`` at 0.
    dtype : float32 or float64
    sparse_tol : float >= 0, optional
        Sparse backward with a compact tape (Perez-Nieves & Goodman 2021; see
        :mod:`numbaspike.compact_tape`): surrogate derivatives at most ``sparse_tol`` times
        their peak count as 0. LIF only, not with ``learn`` nor ``p.smooth``; CPU only.
    backend : {"cpu", "cuda", "auto"}
        Where the layer runs (``"cuda"``: device arrays in and out; parameters and gradients
        stay on the host).
    """

    #: The configuration ``type`` this class writes (its named forms may set their own).
    config_type = "Neuron"

    def __init__(
        self,
        n: int,
        p,
        dt: float = 1e-3,
        learn=(),
        recurrent: bool = False,
        seed=None,
        scale: float = 1.0,
        autapses: bool = True,
        dtype=np.float32,
        sparse_tol: float | None = None,
        backend: str = "cpu",
    ) -> None:
        super().__init__()
        self.model = model_of(p)
        self.backend = _backend.resolve_backend(backend)
        self.n_in = self.n_out = check_positive_int("n", n)
        self.dtype = _as_dtype(dtype)
        if p.size is not None and p.size != self.n_out:
            raise ValueError(f"per-neuron parameters have size {p.size}, layer has n={n}")
        self.p = p
        self.dt = float(dt)
        learn = (learn,) if isinstance(learn, str) else tuple(learn)
        for name in learn:
            if name not in self.model.learnable:
                raise ValueError(
                    f"learn: unknown parameter {name!r}, expected some of {self.model.learnable}"
                )
        self.learn = learn
        for name in learn:  # learned parameters live per neuron in the layer's dtype
            self._add_param(name, np.broadcast_to(np.asarray(getattr(p, name)), (self.n_out,)))
        self.model.check(self.current_parameters(), self.dt)
        if not isinstance(recurrent, (bool, np.bool_)):
            raise ValueError(f"recurrent must be a bool, got {recurrent!r}")
        if recurrent and not self.model.spiking:
            raise ValueError(
                f"recurrent: the {self.model.name} model emits no spikes, it has no recurrent form"
            )
        self.recurrent = bool(recurrent)
        self._set_sparse_tol(sparse_tol)
        self.autapses = bool(autapses)
        if self.recurrent:
            scale = _check_scale(scale, self.dtype)
            bound = 1.0 / math.sqrt(self.n_out)
            w = _rng(seed).uniform(-bound, bound, (self.n_out, self.n_out)) * scale
            self._add_param("w_rec", w)
            if not self.autapses:
                np.fill_diagonal(self._params["w_rec"], 0)

    def _set_sparse_tol(self, sparse_tol) -> None:
        self.sparse_tol = check_sparse_tol(sparse_tol)
        if self.sparse_tol is None:
            return
        if not self.model.sparse_backward:
            raise ValueError(
                f"sparse_tol is implemented for the LIF model only, not for {self.model.name}"
            )
        if self.learn:
            raise ValueError(
                "sparse_tol cannot be combined with learn: the gradients of the neuron "
                "parameters need the membrane of every neuron-step"
            )
        if self.p.smooth:
            raise ValueError("sparse_tol needs binary spikes; it cannot be used with smooth=True")

    def current_parameters(self):
        """The neuron parameters with the current values of the learned ones."""
        if not self.learn:
            return self.p
        return self.p.replace(**{name: self._params[name] for name in self.learn})

    def constrain(self) -> None:
        r"""Project the learned neuron parameters back into their valid range.

        Called after each optimiser step (:func:`~numbaspike.train.fit` does). Learned
        inverse time constants and a learned threshold are clipped, in place, to

        .. math::

            10^{-3} \le \tau^{-1} \le \frac{0.95}{dt}, \qquad
            v_{th} \ge \max\left(v_{reset} + \delta,\ \operatorname{next}(v_{reset})\right)

        with :math:`\delta` = :data:`V_TH_MARGIN` and :math:`\operatorname{next}` the next
        value of the layer's dtype above ``v_reset`` rounded to it. The first keeps
        :math:`dt\,\tau^{-1} \le 0.95 < 1`, the stable-step rule of
        :func:`~numbaspike.params.check_time_step`, with room for float32 rounding (a
        relative :math:`6 \cdot 10^{-8}`). The second keeps the reset below threshold, as
        the parameter classes require, in float64 and after rounding to float32 (for a
        large :math:`|v_{reset}|` the margin alone is below float32's resolution).
        """
        for name in self.learn:
            if name.startswith("tau"):
                lo, hi = self.dtype.type(TAU_INV_MIN), self.dtype.type(0.95 / self.dt)
                np.clip(self._params[name], lo, hi, out=self._params[name])
            elif name == "v_th":
                floor = _v_th_floor(self.p.v_reset, self.dtype)
                np.maximum(self._params[name], floor, out=self._params[name])

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"type": self.config_type}
        if self.config_type == "Neuron":
            cfg["model"] = self.model.name
        cfg.update(n=self.n_out, dt=self.dt, learn=list(self.learn))
        cfg["p"] = parameters_config(self.p)
        if self.config_type == "Neuron":
            cfg["recurrent"] = self.recurrent
        if self.recurrent:
            cfg["autapses"] = self.autapses
        if self.sparse_tol is not None:
            cfg["sparse_tol"] = self.sparse_tol
        return cfg

    def forward(self, x, out=None):
        """The output (T, B, n) and the tape (``out``: the array for the output, CPU only;
        it may be ``x`` itself)."""
        _no_out_on_cuda(self, out)
        if self.backend == "cuda":
            x = _on_device_input("x", x, self.n_in, self.dtype)
        else:
            x = _check_layer_input("x", x, self.n_in, self.dtype, check_finite=False)
        return neuron_forward(
            x,
            self.current_parameters(),
            self.dt,
            self._params["w_rec"] if self.recurrent else None,
            param_grads=bool(self.learn),
            sparse_tol=self.sparse_tol,
            out=out,
            backend=self.backend,
        )

    def backward(self, grad_y, tape, need_input_grad: bool = True, out=None):
        """Accumulate the parameter gradients; dL/dx (T, B, n) (``out`` may be ``grad_y``)."""
        grads = neuron_backward(grad_y, tape, out=out)
        for name in self.learn:
            self._grads[name] += host(grads[name])
        if self.recurrent:
            g = host(grads["w_rec"])
            if not self.autapses:
                np.fill_diagonal(g, 0)
            self._grads["w_rec"] += g
        return grads["x"] if need_input_grad else None


#: Named forms by (model name, recurrent) and by the configuration type they write.
_FORMS: dict[tuple[str, bool], type] = {}
_CONFIG_FORMS: dict[str, type] = {}


def _check_model(p, model_name: str, default_p):
    if p is None:
        return default_p()
    if type(p) is not model_named(model_name).parameters:
        raise TypeError(f"p must be {default_p.__name__}, got {type(p).__name__}")
    return p


def _enrol(cls: type, model_name: str, recurrent: bool, config_type: str) -> type:
    cls.config_type = config_type
    cls.form = (model_name, recurrent)
    cls.__module__ = __name__
    _FORMS[(model_name, recurrent)] = cls
    if config_type != "Neuron":
        _CONFIG_FORMS[config_type] = cls
    return cls


def _feed_forward_form(name: str, model_name: str, default_p, doc: str, config_type="Neuron"):
    """A named feed-forward form of :class:`Neuron`: ``(n, p=None, dt, learn, dtype, ...)``."""

    def __init__(
        self,
        n: int,
        p=None,
        dt: float = 1e-3,
        learn=(),
        dtype=np.float32,
        sparse_tol: float | None = None,
        backend: str = "cpu",
    ) -> None:
        Neuron.__init__(
            self, n, _check_model(p, model_name, default_p), dt, learn, recurrent=False,
            dtype=dtype, sparse_tol=sparse_tol, backend=backend,
        )  # fmt: skip

    cls = type(name, (Neuron,), {"__init__": __init__, "__doc__": doc})
    return _enrol(cls, model_name, False, config_type)


def _recurrent_form(name: str, model_name: str, default_p, doc: str, config_type="Neuron"):
    """A named recurrent form of :class:`Neuron`: ``(n, p=None, dt, learn, seed, scale,
    autapses, dtype, ...)``."""

    def __init__(
        self,
        n: int,
        p=None,
        dt: float = 1e-3,
        learn=(),
        seed=None,
        scale: float = 1.0,
        autapses: bool = True,
        dtype=np.float32,
        sparse_tol: float | None = None,
        backend: str = "cpu",
    ) -> None:
        Neuron.__init__(
            self, n, _check_model(p, model_name, default_p), dt, learn, recurrent=True,
            seed=seed, scale=scale, autapses=autapses, dtype=dtype, sparse_tol=sparse_tol,
            backend=backend,
        )  # fmt: skip

    cls = type(name, (Neuron,), {"__init__": __init__, "__doc__": doc})
    return _enrol(cls, model_name, True, config_type)


_SEE_NEURON = " Arguments as in :class:`Neuron`; ``p`` defaults to the model's defaults."

LIF = _feed_forward_form(
    "LIF", "lif", LIFParameters,
    "Feed-forward LIF neurons (input currents (T, B, n), spikes out; "
    ":mod:`numbaspike.models.lif`)." + _SEE_NEURON,
    config_type="LIF",
)  # fmt: skip
LIFRecurrent = _recurrent_form(
    "LIFRecurrent", "lif", LIFParameters,
    "Recurrent LIF neurons: the current jump is :math:`x_t + W_{rec} z_{t-1}` (Norse "
    "``lif_step``)." + _SEE_NEURON,
    config_type="LIFRecurrent",
)  # fmt: skip
LI = _feed_forward_form(
    "LI", "li", LIParameters,
    "Leaky-integrator readout (input currents (T, B, n), output the membrane (T, B, n); "
    ":mod:`numbaspike.models.li`)." + _SEE_NEURON,
    config_type="LI",
)  # fmt: skip
LIFBox = _feed_forward_form(
    "LIFBox", "lif_box", LIFBoxParameters,
    "Feed-forward LIFBox neurons (no synaptic current; :mod:`numbaspike.models.lif_box`)."
    + _SEE_NEURON,
)  # fmt: skip
LIFBoxRecurrent = _recurrent_form(
    "LIFBoxRecurrent", "lif_box", LIFBoxParameters,
    "Recurrent LIFBox neurons: input :math:`x_t + W_{rec} z_{t-1}`." + _SEE_NEURON,
)  # fmt: skip
LSNN = _feed_forward_form(
    "LSNN", "lsnn", LSNNParameters,
    "Feed-forward LSNN neurons (adaptive threshold; :mod:`numbaspike.models.lsnn`)."
    + _SEE_NEURON,
)  # fmt: skip
LSNNRecurrent = _recurrent_form(
    "LSNNRecurrent", "lsnn", LSNNParameters,
    "Recurrent LSNN neurons (Norse ``lsnn_step``): input :math:`x_t + W_{rec} z_{t-1}`."
    + _SEE_NEURON,
)  # fmt: skip
LIFRefrac = _feed_forward_form(
    "LIFRefrac", "lif_refrac", LIFRefracParameters,
    "Feed-forward LIF neurons with an absolute refractory period "
    "(:mod:`numbaspike.models.lif_refrac`)." + _SEE_NEURON,
)  # fmt: skip
LIFRefracRecurrent = _recurrent_form(
    "LIFRefracRecurrent", "lif_refrac", LIFRefracParameters,
    "Recurrent refractory LIF neurons (Norse ``lif_refrac_step``): input "
    ":math:`x_t + W_{rec} z_{t-1}`." + _SEE_NEURON,
)  # fmt: skip


def named_form(model: str, recurrent: bool):
    """The named form of ``model``'s feed-forward or recurrent layer (e.g.
    ``named_form("lsnn", True)`` is :class:`LSNNRecurrent`); for a model without one, a
    :class:`Neuron` of that form."""
    cls = _FORMS.get((model_named(model).name, bool(recurrent)))
    if cls is not None:
        return cls
    return functools.partial(Neuron, recurrent=bool(recurrent))


def config_forms() -> dict[str, tuple[str, bool]]:
    """The configuration types that named forms write instead of ``"Neuron"`` (``"LIF"``,
    ``"LIFRecurrent"``, ``"LI"``), each with its model's name and whether it is recurrent."""
    return {kind: cls.form for kind, cls in _CONFIG_FORMS.items()}


def neuron_layer(
    model: str,
    n: int,
    p,
    dt: float,
    learn,
    recurrent: bool,
    dtype,
    autapses: bool = True,
    sparse_tol: float | None = None,
    config_type: str = "Neuron",
) -> Neuron:
    """The layer a neuron layer's configuration describes: the named form that writes
    ``config_type``, else the model's named form (e.g. :class:`LSNNRecurrent`) where it
    writes ``"Neuron"``, else :class:`Neuron`."""
    if model_of(p).name != model:
        raise ValueError(f"p ({type(p).__name__}) is not the parameters of the {model} model")
    kwargs: dict[str, Any] = {"dt": dt, "learn": learn, "dtype": dtype, "sparse_tol": sparse_tol}
    if recurrent:
        kwargs["autapses"] = autapses
    cls = _CONFIG_FORMS.get(config_type) or _FORMS.get((model, bool(recurrent)))
    if cls is not None and cls.config_type == config_type:
        return cls(n, p, **kwargs)
    return Neuron(n, p, recurrent=recurrent, **kwargs)
