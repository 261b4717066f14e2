r"""Layers of any registered neuron model: :class:`Neuron` and its thin named forms.

``Neuron(n, p, recurrent=False, learn=())`` is a layer of the model of ``p`` (see
:mod:`numbaspike.models`): feed-forward, or recurrent with an owned weight matrix
:math:`W_{rec}` (the input of step :math:`t` is then :math:`x_t + W_{rec} z_{t-1}`). The named
forms only fix the model and the form: :class:`LIFBox`, :class:`LIFBoxRecurrent`,
:class:`LSNN`, :class:`LSNNRecurrent`, :class:`LIFRefrac`, :class:`LIFRefracRecurrent`.
LIF and LI layers are :class:`~numbaspike.layers.LIF`, :class:`~numbaspike.layers.LIFRecurrent`
and :class:`~numbaspike.layers.LI`.
"""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass
from typing import Any

import numpy as np

from .layers import _check_scale, _NeuronLayer, _rng
from .layers_cuda import host
from .models import LIFBoxParameters, LIFRefracParameters, LSNNParameters, model_of
from .neuron import neuron_backward, neuron_forward

__all__ = [
    "LIFBox",
    "LIFBoxRecurrent",
    "LIFRefrac",
    "LIFRefracRecurrent",
    "LSNN",
    "LSNNRecurrent",
    "Neuron",
    "parameters_config",
    "parameters_from_config",
]


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


class Neuron(_NeuronLayer):
    r"""A layer of ``n`` neurons of the model of ``p`` (input currents (T, B, n), spikes out).

    Parameters
    ----------
    n : int
    p : parameters of a registered spiking model (e.g. ``LSNNParameters()``)
    dt : float
        Time step (s).
    learn : iterable of str
        Parameters to train per neuron (the model's learnable ones, e.g. ``"v_th"``,
        ``"tau_mem_inv"``, LSNN's ``"beta"``). :meth:`constrain` keeps learned inverse time
        constants in :math:`[10^{-3}, 0.95/dt]` and a learned ``v_th`` above ``v_reset``.
    recurrent : bool
        Own a recurrent matrix ``w_rec`` (n, n), initialised like ``nn.Linear``
        (:math:`U(-1/\sqrt n, 1/\sqrt n)`) times ``scale``.
    seed, scale, autapses
        Recurrent form only: initialisation, and ``autapses=False`` keeps the diagonal 0.
    dtype : float32 or float64
    backend : {"cpu", "cuda", "auto"}
        Where the layer runs (``"cuda"``: device arrays in and out; parameters and gradients
        stay on the host).
    """

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
        backend: str = "cpu",
    ) -> None:
        self.model = model_of(p)
        self._param_class = self.model.parameters
        self._neuron_fields = self.model.learnable
        super().__init__(n, p, dt, learn, dtype, backend)
        self.sparse_tol = None
        if not isinstance(recurrent, (bool, np.bool_)):
            raise ValueError(f"recurrent must be a bool, got {recurrent!r}")
        self.recurrent = bool(recurrent)
        self.autapses = bool(autapses)
        if self.recurrent:
            scale = _check_scale(scale, self.dtype)
            bound = 1.0 / math.sqrt(self.n_out)
            w = _rng(seed).uniform(-bound, bound, (self.n_out, self.n_out)) * scale
            self._add_param("w_rec", w)
            if not self.autapses:
                np.fill_diagonal(self._params["w_rec"], 0)

    def _check_dt(self) -> None:
        self.model.check(self.current_parameters(), self.dt)

    def config(self) -> dict[str, Any]:
        cfg = {
            "type": "Neuron",
            "model": self.model.name,
            "n": self.n_out,
            "dt": self.dt,
            "learn": list(self.learn),
            "p": parameters_config(self.p),
            "recurrent": self.recurrent,
        }
        if self.recurrent:
            cfg["autapses"] = self.autapses
        return cfg

    def forward(self, x, out=None):
        """Spikes (T, B, n) and the tape (``out``: the array for the spikes, may be ``x``)."""
        from .layers import _check_layer_input, _no_out_on_cuda, _on_device_input

        _no_out_on_cuda(self, out)
        if self.backend == "cuda":
            x = _on_device_input("x", x, self.n_in, self.dtype)
        else:
            x = _check_layer_input("x", x, self.n_in, self.dtype, check_finite=False)
        w_rec = self._params["w_rec"] if self.recurrent else None
        return neuron_forward(
            x, self.current_parameters(), self.dt, w_rec, out=out, backend=self.backend
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


def neuron_layer(
    model: str, n: int, p, dt: float, learn, recurrent: bool, dtype, autapses: bool = True
) -> Neuron:
    """The layer a ``{"type": "Neuron", ...}`` configuration describes: the model's named
    form (e.g. :class:`LSNNRecurrent`) where it has one, else :class:`Neuron`."""
    if model_of(p).name != model:
        raise ValueError(f"p ({type(p).__name__}) is not the parameters of the {model} model")
    kwargs: dict[str, Any] = {"dt": dt, "learn": learn, "dtype": dtype}
    if recurrent:
        kwargs["autapses"] = autapses
    named = _NAMED.get((model, bool(recurrent)))
    if named is not None:
        return named(n, p, **kwargs)
    return Neuron(n, p, recurrent=recurrent, **kwargs)


_NAMED: dict = {}


def _named_form(name: str, model_name: str, recurrent: bool, default_p, doc: str):
    """A thin named form of :class:`Neuron` with a fixed model and form."""

    def __init__(self, n: int, p=None, dt: float = 1e-3, learn=(), dtype=np.float32, **kwargs):
        p = default_p() if p is None else p
        if model_of(p).name != model_name:
            raise TypeError(f"p must be {type(default_p()).__name__}, got {type(p).__name__}")
        Neuron.__init__(self, n, p, dt, learn, recurrent=recurrent, dtype=dtype, **kwargs)

    cls = type(name, (Neuron,), {"__init__": __init__, "__doc__": doc, "__module__": __name__})
    _NAMED[(model_name, recurrent)] = cls
    return cls


LIFBox = _named_form(
    "LIFBox", "lif_box", False, LIFBoxParameters,
    "Feed-forward LIFBox neurons (no synaptic current; :mod:`numbaspike.models.lif_box`).",
)  # fmt: skip
LIFBoxRecurrent = _named_form(
    "LIFBoxRecurrent", "lif_box", True, LIFBoxParameters,
    "Recurrent LIFBox neurons: input :math:`x_t + W_{rec} z_{t-1}` (``seed``, ``scale``, "
    "``autapses`` as in :class:`Neuron`).",
)  # fmt: skip
LSNN = _named_form(
    "LSNN", "lsnn", False, LSNNParameters,
    "Feed-forward LSNN neurons (adaptive threshold; :mod:`numbaspike.models.lsnn`).",
)  # fmt: skip
LSNNRecurrent = _named_form(
    "LSNNRecurrent", "lsnn", True, LSNNParameters,
    "Recurrent LSNN neurons (Norse ``lsnn_step``): input :math:`x_t + W_{rec} z_{t-1}`.",
)  # fmt: skip
LIFRefrac = _named_form(
    "LIFRefrac", "lif_refrac", False, LIFRefracParameters,
    "Feed-forward LIF neurons with an absolute refractory period "
    "(:mod:`numbaspike.models.lif_refrac`).",
)  # fmt: skip
LIFRefracRecurrent = _named_form(
    "LIFRefracRecurrent", "lif_refrac", True, LIFRefracParameters,
    "Recurrent refractory LIF neurons (Norse ``lif_refrac_step``): input "
    ":math:`x_t + W_{rec} z_{t-1}`.",
)  # fmt: skip
