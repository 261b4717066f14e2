"""``Sequential``: a chain of layers that owns their parameters and gradients."""

from __future__ import annotations

import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from .layers import Layer, Linear
from .layers_cuda import host
from .models import model_named
from .neuron_layers import Neuron, config_forms, neuron_layer, parameters_from_config
from .validation import all_finite

__all__ = ["Sequential", "NetworkTape", "layer_from_config"]


@dataclass(eq=False)
class NetworkTape:
    """Outputs and tapes of every layer of one :meth:`Sequential.forward` call."""

    outputs: list[np.ndarray]
    tapes: list[Any]


class Sequential:
    """Layers applied one after another; parameter names are ``"<index>.<name>"``.

    Examples
    --------
    >>> net = Sequential(Linear(100, 128, seed=0), LIFRecurrent(128, seed=1),
    ...                  Linear(128, 10, seed=2), LI(10))            # doctest: +SKIP
    >>> y, tape = net.forward(x)                                    # doctest: +SKIP
    >>> net.zero_grad(); net.backward(grad_y, tape)                  # doctest: +SKIP
    """

    def __init__(self, *layers: Layer) -> None:
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for k, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(
                    f"layer {k} must be a numbaspike layer, got {type(layer).__name__}"
                )
        dtypes = {layer.dtype for layer in layers}
        if len(dtypes) > 1:
            raise ValueError(f"all layers must share one dtype, got {sorted(map(str, dtypes))}")
        for k in range(len(layers) - 1):
            a, b = layers[k], layers[k + 1]
            if a.n_out != b.n_in:
                raise ValueError(
                    f"layer {k} ({type(a).__name__}) outputs {a.n_out} features but layer {k + 1} "
                    f"({type(b).__name__}) expects {b.n_in}"
                )
        self.layers = list(layers)
        self.dtype = layers[0].dtype

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def n_out(self) -> int:
        return self.layers[-1].n_out

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, k: int) -> Layer:
        return self.layers[k]

    def __repr__(self) -> str:
        inner = ",\n  ".join(
            f"{k}: {type(l).__name__}({l.n_in} -> {l.n_out})" for k, l in enumerate(self.layers)
        )
        return f"Sequential(\n  {inner}\n)"

    def parameters(self) -> dict[str, np.ndarray]:
        """All trainable arrays, ``"<layer index>.<name>"`` → array (owned, updated in place)."""
        return {
            f"{k}.{name}": arr
            for k, l in enumerate(self.layers)
            for name, arr in l.parameters().items()
        }

    def gradients(self) -> dict[str, np.ndarray]:
        """Accumulated gradients with the keys of :meth:`parameters`."""
        return {
            f"{k}.{name}": arr
            for k, l in enumerate(self.layers)
            for name, arr in l.gradients().items()
        }

    def zero_grad(self) -> None:
        for layer in self.layers:
            layer.zero_grad()

    def constrain(self) -> None:
        """Project parameters to their valid ranges (after an optimiser step)."""
        for layer in self.layers:
            layer.constrain()

    def forward(self, x) -> tuple[np.ndarray, NetworkTape]:
        """Run all layers on ``x`` (T, B, n_in); returns the output and a :class:`NetworkTape`."""
        outputs, tapes = [], []
        for layer in self.layers:
            x, tape = layer.forward(x)
            outputs.append(x)
            tapes.append(tape)
        return x, NetworkTape(outputs, tapes)

    def __call__(self, x) -> np.ndarray:
        return self.forward(x)[0]

    def backward(
        self,
        grad_y,
        tape: NetworkTape,
        output_grads: dict[int, np.ndarray] | None = None,
        need_input_grad: bool = False,
    ):
        """Accumulate the gradients of every parameter from ``grad_y = dL/dy``.

        ``output_grads`` adds gradients w.r.t. the outputs of intermediate layers (by layer
        index), e.g. from firing-rate regularisers on hidden spikes. Returns ``dL/dx`` when
        ``need_input_grad`` else None.
        """
        output_grads = dict(output_grads or {})
        for k in output_grads:
            if not 0 <= k < len(self.layers):
                raise ValueError(f"output_grads: no layer with index {k}")
        g = grad_y
        owned = False  # whether g is an array this call made (and may overwrite)
        finite = False  # whether g is known to be finite (see Linear.backward)
        for k in range(len(self.layers) - 1, -1, -1):
            if k in output_grads:
                g = host(g) + output_grads.pop(k)  # a CUDA layer takes the host sum back
                owned = True
                finite = False
            layer = self.layers[k]
            need = need_input_grad or k > 0
            if owned and need and _can_overwrite(layer, g):
                g = layer.backward(g, tape.tapes[k], out=g)
            elif type(layer).backward is Linear.backward:  # (a subclass's may not take it)
                g = layer.backward(g, tape.tapes[k], need_input_grad=need, grad_y_finite=finite)
            else:
                g = layer.backward(g, tape.tapes[k], need_input_grad=need)
            owned = True
            finite = _input_gradient_is_finite(layer)
        return g

    def config(self) -> list[dict[str, Any]]:
        """JSON-able description of the architecture (see :func:`layer_from_config`)."""
        cfg = [layer.config() for layer in self.layers]
        for c in cfg:
            c["dtype"] = str(self.dtype)
        return cfg

    @classmethod
    def from_config(cls, config: Sequence[Mapping[str, Any]]) -> Sequential:
        """Rebuild a network from :meth:`config` (parameters get fresh initial values).

        Raises
        ------
        ValueError
            If ``config`` is not a non-empty list of valid layer configurations (see
            :func:`layer_from_config`); the message names the layer index.
        """
        _check_config_list(config)
        layers = []
        for k, c in enumerate(config):
            try:
                layers.append(layer_from_config(c))
            except ValueError as err:
                raise ValueError(f"layer {k}: {err}") from None
        return cls(*layers)

    def load_parameters(self, params: Mapping[str, Any]) -> None:
        """Copy values into the parameters.

        Keys and shapes must match exactly; values must be real numbers (cast to the
        network's dtype) and finite, and learned neuron parameters must give valid neuron
        parameters (e.g. positive, stable time constants). Everything is checked before
        anything is copied, so an error leaves the network unchanged.

        Raises
        ------
        TypeError
            If ``params`` is not a mapping.
        ValueError
            Naming the parameter, for a missing or unexpected key, a wrong shape, a
            non-numeric dtype, NaN or inf, or an invalid neuron parameter.
        """
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a mapping name -> array, got {type(params).__name__}")
        own = self.parameters()
        missing = sorted(set(own) - set(params))
        extra = sorted(set(params) - set(own), key=repr)
        if missing or extra:
            raise ValueError(
                f"parameters do not match the network: missing {missing}, unexpected {extra}"
            )
        values = {name: _parameter_value(name, params[name], arr) for name, arr in own.items()}
        for k, layer in enumerate(self.layers):
            _check_neuron_parameters(k, layer, values)
        for name, arr in own.items():
            arr[...] = values[name]


def _parameter_value(name: str, value: Any, arr: np.ndarray) -> np.ndarray:
    """``value`` as a finite array of the shape and dtype of parameter ``arr``, or a
    ValueError naming the parameter."""
    try:
        value = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"parameter {name} is not an array of numbers: {err}") from None
    if value.dtype.kind not in "fiu":
        raise ValueError(f"parameter {name} must hold real numbers, got dtype {value.dtype}")
    if value.shape != arr.shape:
        raise ValueError(f"parameter {name}: expected shape {arr.shape}, got {value.shape}")
    with np.errstate(over="ignore", invalid="ignore"):
        cast = value.astype(arr.dtype)
    if not all_finite(cast):
        overflow = value.dtype.kind != "f" or all_finite(value)
        raise ValueError(
            f"parameter {name} contains NaN or inf"
            + (f" (its values overflow {arr.dtype})" if overflow else "")
        )
    return cast


def _check_neuron_parameters(k: int, layer: Layer, values: dict[str, np.ndarray]) -> None:
    """Check that the new values of the learned neuron parameters of layer ``k`` give valid
    neuron parameters, as its forward pass will require (a ValueError naming them)."""
    learn = getattr(layer, "learn", ())
    if not learn or not isinstance(layer, Neuron):
        return
    names = ", ".join(f"{k}.{name}" for name in learn)
    try:
        p = layer.p.replace(**{name: values[f"{k}.{name}"] for name in learn})
        layer.model.check(p, layer.dt)
    except ValueError as err:
        raise ValueError(f"parameters {names} are invalid neuron parameters: {err}") from None


def _input_gradient_is_finite(layer: Layer) -> bool:
    """Whether the input gradient returned by ``layer.backward`` is finite: the neuron layers'
    own backward passes raise otherwise (see :meth:`Linear.backward`); a subclass that
    replaces them is not trusted."""
    return type(layer).backward is Neuron.backward


def _can_overwrite(layer: Layer, g: np.ndarray) -> bool:
    """Whether the backward pass of ``layer`` can write dL/dx over ``g`` (a neuron layer,
    whose input and output have the same shape, given a C-contiguous ``g`` of its dtype)."""
    return (
        isinstance(layer, Neuron)
        and isinstance(g, np.ndarray)
        and g.dtype == layer.dtype
        and g.flags.c_contiguous
        and g.flags.writeable
    )


_LINEAR_FIELDS = (("type", "n_in", "n_out"), ("bias", "dtype"))
_NEURON_FIELDS = (
    ("type", "model", "n", "dt", "p"),
    ("learn", "recurrent", "autapses", "sparse_tol", "dtype"),
)
#: Neuron-parameter fields that hold a string or a bool; all others hold numbers.
_STRING_FIELDS = ("surrogate", "reset")
_BOOL_FIELDS = ("detach_reset", "smooth")


def _layer_fields(kind: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The required and the optional fields of a layer type's configuration (None: no such
    type). A named form's type (``"LIF"``) implies its model and form, so it has no
    ``model`` nor ``recurrent`` field."""
    if kind == "Linear":
        return _LINEAR_FIELDS
    if kind == "Neuron":
        return _NEURON_FIELDS
    form = config_forms().get(kind)
    if form is None:
        return None
    model, recurrent = model_named(form[0]), form[1]
    optional = ("learn",) + ("autapses",) * recurrent + ("sparse_tol",) * model.sparse_backward
    return ("type", "n", "dt", "p"), optional + ("dtype",)


def _layer_types() -> list[str]:
    return sorted(["Linear", "Neuron", *config_forms()])


def layer_from_config(cfg: Mapping[str, Any]) -> Layer:
    """Build one layer from its :meth:`Layer.config` dictionary.

    Parameters
    ----------
    cfg : dict
        ``{"type": "Linear" | "Neuron" | "LIF" | "LIFRecurrent" | "LI", ...}`` as written by
        the layer's ``config()`` (JSON types: sizes are ints, ``dt`` and neuron parameters numbers or
        lists of numbers, flags bools).

    Raises
    ------
    ValueError
        Naming the field, for an unknown layer type, a missing or unexpected field, a value
        of the wrong type (e.g. a string where a number is expected) or an invalid value.
    """
    kind, kwargs = _parse_layer_config(cfg)
    try:
        if kind == "Linear":
            return Linear(**kwargs)
        return neuron_layer(**kwargs, config_type=kind)
    except (TypeError, ValueError) as err:
        name = kwargs["model"] if kind == "Neuron" else kind
        raise ValueError(f"invalid {name} layer configuration: {err}") from None


def _check_config_list(config: Any) -> None:
    if not isinstance(config, (list, tuple)):
        raise ValueError(
            f"network configuration must be a list of layer configurations, got "
            f"{type(config).__name__}"
        )
    if not config:
        raise ValueError("network configuration is empty: a network needs at least one layer")


def _config_parameter_shapes(config: Any) -> dict[str, tuple[int, ...]]:
    """The names and shapes of the parameters that :meth:`Sequential.from_config` would
    create from ``config``, found without building (allocating) any layer.

    Raises the ValueError of :meth:`Sequential.from_config` for an invalid layer.
    """
    _check_config_list(config)
    shapes: dict[str, tuple[int, ...]] = {}
    for k, c in enumerate(config):
        try:
            kind, kw = _parse_layer_config(c)
        except ValueError as err:
            raise ValueError(f"layer {k}: {err}") from None
        if kind == "Linear":
            shapes[f"{k}.weight"] = (kw["n_out"], kw["n_in"])
            if kw["bias"]:
                shapes[f"{k}.bias"] = (kw["n_out"],)
            continue
        for name in kw["learn"]:
            shapes[f"{k}.{name}"] = (kw["n"],)
        if kw["recurrent"]:
            shapes[f"{k}.w_rec"] = (kw["n"], kw["n"])
    return shapes


def _parse_layer_config(cfg: Any) -> tuple[str, dict[str, Any]]:
    """Check the types of a layer configuration's fields; return the layer type and the
    keyword arguments of its class (the values themselves are checked by the class)."""
    if not isinstance(cfg, Mapping):
        raise ValueError(f"a layer configuration must be a dict, got {type(cfg).__name__}")
    kind = cfg.get("type")
    fields_of_kind = _layer_fields(kind) if isinstance(kind, str) else None
    if fields_of_kind is None:
        raise ValueError(
            f"unknown layer type {reprlib.repr(kind)} in configuration, expected one of "
            f"{_layer_types()}"
        )
    required, optional = fields_of_kind
    missing = [f for f in required if f not in cfg]
    unexpected = sorted(reprlib.repr(f) for f in cfg if f not in required + optional)
    if missing or unexpected:
        raise ValueError(
            f"{kind} layer configuration: missing fields {missing}, unexpected fields "
            f"[{', '.join(unexpected)}]"
        )
    dtype = cfg.get("dtype", "float32")
    if not isinstance(dtype, str) or dtype not in ("float32", "float64"):
        raise ValueError(
            f"{kind} layer configuration: dtype must be 'float32' or 'float64', got "
            f"{reprlib.repr(dtype)}"
        )
    if kind == "Linear":
        return kind, {
            "n_in": _config_size(kind, "n_in", cfg["n_in"]),
            "n_out": _config_size(kind, "n_out", cfg["n_out"]),
            "bias": _config_bool(kind, "bias", cfg.get("bias", False)),
            "dtype": np.dtype(dtype),
        }
    return kind, _parse_neuron_config(kind, cfg, np.dtype(dtype))


def _as_float(value: Any) -> float | None:
    """A JSON number as a float, or None for anything else (a bool, a string, an int too
    large for a float)."""
    # bool is an int subclass, but a flag where a number is expected is a corrupted config
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        return None
    if isinstance(value, np.complexfloating):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def _config_number(kind: str, name: str, value: Any) -> float:
    x = _as_float(value)
    if x is None:
        raise ValueError(
            f"{kind} layer configuration: {name} must be a number, got {reprlib.repr(value)}"
        )
    return x


def _config_size(kind: str, name: str, value: Any) -> int:
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, (int, np.integer))
        or value <= 0
    ):
        raise ValueError(
            f"{kind} layer configuration: {name} must be a positive integer, got "
            f"{reprlib.repr(value)}"
        )
    return int(value)


def _config_bool(kind: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(
            f"{kind} layer configuration: {name} must be a bool, got {reprlib.repr(value)}"
        )
    return value


def _config_learn(kind: str, value: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(
            f"{kind} layer configuration: learn must be a list of parameter names, got "
            f"{reprlib.repr(value)}"
        )
    if len(set(value)) != len(value):
        raise ValueError(f"{kind} layer configuration: learn has duplicate names {value!r}")
    unknown = [v for v in value if v not in allowed]
    if unknown:
        raise ValueError(
            f"{kind} layer configuration: learn: unknown parameters {reprlib.repr(unknown)}, "
            f"expected some of {allowed}"
        )
    return tuple(value)


def _config_neuron_parameters(kind: str, cls: type, p: Any):
    """The parameter object of class ``cls`` that the ``p`` field of a configuration holds."""
    if not isinstance(p, Mapping):
        raise ValueError(f"{kind}: p must be a dict, got {type(p).__name__}")
    names = [f.name for f in fields(cls) if f.init]
    unexpected = sorted(reprlib.repr(f) for f in p if f not in names)
    if unexpected:
        raise ValueError(
            f"{kind}: p has unexpected fields [{', '.join(unexpected)}], expected some of {names}"
        )
    _check_json_parameters(kind, "p", p)
    try:
        return parameters_from_config(cls, dict(p))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{kind}: p: {err}") from None


def _parse_neuron_config(kind: str, cfg: Mapping[str, Any], dtype: np.dtype) -> dict[str, Any]:
    """Keyword arguments of :func:`numbaspike.neuron_layers.neuron_layer` from a neuron
    layer's configuration: ``{"type": "Neuron", "model": ...}`` or a named form's."""
    if kind == "Neuron":
        name = cfg["model"]
        if not isinstance(name, str):
            raise ValueError(f"Neuron layer configuration: model must be a string, got {name!r}")
        try:
            model = model_named(name)
        except ValueError as err:
            raise ValueError(f"Neuron layer configuration: {err}") from None
        label = name
        recurrent = _config_bool(label, "recurrent", cfg.get("recurrent", False))
    else:
        name, recurrent = config_forms()[kind]
        model = model_named(name)
        label = kind
    kwargs: dict[str, Any] = {
        "model": name,
        "n": _config_size(label, "n", cfg["n"]),
        "p": _config_neuron_parameters(f"{label} layer configuration", model.parameters, cfg["p"]),
        "dt": _config_number(label, "dt", cfg["dt"]),
        "learn": _config_learn(label, cfg.get("learn", []), model.learnable),
        "recurrent": recurrent,
        "dtype": dtype,
    }
    if recurrent:
        kwargs["autapses"] = _config_bool(label, "autapses", cfg.get("autapses", True))
    if cfg.get("sparse_tol") is not None:
        kwargs["sparse_tol"] = _config_number(label, "sparse_tol", cfg["sparse_tol"])
    return kwargs


def _check_json_parameters(kind: str, where: str, p: Mapping[str, Any]) -> None:
    """Parameter values of a configuration: strings and bools where the parameter classes
    take them, numbers or lists of numbers elsewhere, nested dicts for nested parameters."""
    for name, value in p.items():
        if not isinstance(name, str):
            raise ValueError(f"{kind}: {where} has a non-string key {reprlib.repr(name)}")
        if isinstance(value, Mapping):
            _check_json_parameters(kind, f"{where}[{name!r}]", value)
            continue
        if name in _STRING_FIELDS:
            ok, expected = isinstance(value, str), "a string"
        elif name in _BOOL_FIELDS:
            ok, expected = isinstance(value, bool), "a bool"
        elif isinstance(value, (list, tuple)):
            ok = all(_as_float(v) is not None for v in value)
            expected = "a number or a list of numbers"
        else:
            ok, expected = _as_float(value) is not None, "a number or a list of numbers"
        if not ok:
            raise ValueError(
                f"{kind}: {where}[{name!r}] must be {expected}, got {reprlib.repr(value)}"
            )
