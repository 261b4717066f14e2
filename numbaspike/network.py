"""``Sequential``: a chain of layers that owns their parameters and gradients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .layers import LI, LIF, Layer, LIFRecurrent, Linear
from .params import LIFParameters, LIParameters

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
                g = g + output_grads.pop(k)
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
    def from_config(cls, config: list[dict[str, Any]]) -> Sequential:
        """Rebuild a network from :meth:`config` (parameters get fresh initial values)."""
        return cls(*(layer_from_config(c) for c in config))

    def load_parameters(self, params: dict[str, np.ndarray]) -> None:
        """Copy values into the parameters (keys and shapes must match exactly)."""
        own = self.parameters()
        missing = sorted(set(own) - set(params))
        extra = sorted(set(params) - set(own))
        if missing or extra:
            raise ValueError(
                f"parameters do not match the network: missing {missing}, unexpected {extra}"
            )
        for name, arr in own.items():
            value = np.asarray(params[name])
            if value.shape != arr.shape:
                raise ValueError(
                    f"parameter {name}: expected shape {arr.shape}, got {value.shape}"
                )
            arr[...] = value


def _input_gradient_is_finite(layer: Layer) -> bool:
    """Whether the input gradient returned by ``layer.backward`` is finite: the neuron layers'
    own backward passes raise otherwise (see :meth:`Linear.backward`); a subclass that
    replaces them is not trusted."""
    return type(layer).backward in (LIF.backward, LIFRecurrent.backward, LI.backward)


def _can_overwrite(layer: Layer, g: np.ndarray) -> bool:
    """Whether the backward pass of ``layer`` can write dL/dx over ``g`` (a neuron layer,
    whose input and output have the same shape, given a C-contiguous ``g`` of its dtype)."""
    return (
        isinstance(layer, (LIF, LIFRecurrent, LI))
        and isinstance(g, np.ndarray)
        and g.dtype == layer.dtype
        and g.flags.c_contiguous
        and g.flags.writeable
    )


def layer_from_config(cfg: dict[str, Any]) -> Layer:
    """Build one layer from its :meth:`Layer.config` dictionary."""
    try:
        kind = cfg["type"]
        dtype = np.dtype(cfg.get("dtype", "float32"))
        if kind == "Linear":
            return Linear(cfg["n_in"], cfg["n_out"], bias=cfg.get("bias", False), dtype=dtype)
        p_values = {k: (np.asarray(v) if isinstance(v, list) else v) for k, v in cfg["p"].items()}
        common = {"dt": cfg["dt"], "learn": tuple(cfg.get("learn", ())), "dtype": dtype}
        if kind == "LIF":
            return LIF(
                cfg["n"], LIFParameters(**p_values), sparse_tol=cfg.get("sparse_tol"), **common
            )
        if kind == "LIFRecurrent":
            return LIFRecurrent(
                cfg["n"],
                LIFParameters(**p_values),
                autapses=cfg.get("autapses", True),
                sparse_tol=cfg.get("sparse_tol"),
                **common,
            )
        if kind == "LI":
            return LI(cfg["n"], LIParameters(**p_values), **common)
    except (KeyError, TypeError) as err:
        raise ValueError(f"invalid layer configuration {cfg!r}: {err}") from None
    raise ValueError(f"unknown layer type {kind!r} in configuration")
