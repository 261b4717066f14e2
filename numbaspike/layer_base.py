"""The layer protocol (:class:`Layer`) and the argument checks every layer shares."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from . import backend as _backend
from .validation import as_float_array

_DTYPES = {"float32": np.float32, "float64": np.float64}


def _as_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _check_scale(scale, dtype: np.dtype) -> float:
    """The initial-weight gain as a float, or a ``ValueError`` naming ``scale``."""
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, numbers.Real):
        raise ValueError(f"scale must be a finite real number, got {scale!r}")
    value = float(scale)
    # refused here: NaN or inf weights would only surface later, blamed on the input
    if not math.isfinite(value):
        raise ValueError(f"scale must be a finite real number, got {value}")
    if abs(value) > float(np.finfo(dtype).max):  # the initial weights are at most |scale|
        raise ValueError(f"scale={value} overflows {dtype} weights")
    return value


def _on_device_input(name: str, x, n_in: int, dtype):
    """A CUDA layer's input: a device array, or a host array checked and copied to the device."""
    x = _backend.device_float_array(name, x, ndim=3, dtype=dtype, shape_doc=f"(T, B, {n_in})")
    if x.shape[2] != n_in:
        raise ValueError(f"{name} must have shape (T, B, {n_in}), got {tuple(x.shape)}")
    return x


def _no_out_on_cuda(layer: Layer, out) -> None:
    if out is not None and layer.backend == "cuda":
        raise ValueError("out is only supported on the CPU backend")


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check_layer_input(name: str, x, n_in: int, dtype, check_finite: bool = True) -> np.ndarray:
    x = as_float_array(
        name, x, ndim=3, dtype=dtype, shape_doc=f"(T, B, {n_in})", check_finite=check_finite
    )
    if x.shape[2] != n_in:
        raise ValueError(f"{name} must have shape (T, B, {n_in}), got {x.shape}")
    return x


class Layer:
    """Base class: parameter bookkeeping shared by all layers."""

    n_in: int
    n_out: int
    dtype: np.dtype
    #: Where the layer computes: ``"cpu"`` or ``"cuda"`` (resolved from the ``backend``
    #: argument; not part of :meth:`config`, so that checkpoints move between machines).
    backend: str = "cpu"

    def __init__(self) -> None:
        self._params: dict[str, np.ndarray] = {}
        self._grads: dict[str, np.ndarray] = {}

    def _add_param(self, name: str, value: np.ndarray) -> None:
        self._params[name] = np.array(value, dtype=self.dtype, order="C")  # owned, writeable
        self._grads[name] = np.zeros_like(self._params[name])

    def parameters(self) -> dict[str, np.ndarray]:
        """Trainable arrays, by name (updated in place by optimisers)."""
        return dict(self._params)

    def gradients(self) -> dict[str, np.ndarray]:
        """Accumulated gradients, same names and shapes as :meth:`parameters`."""
        return dict(self._grads)

    def zero_grad(self) -> None:
        for g in self._grads.values():
            g.fill(0)

    def constrain(self) -> None:
        """Project parameters back to their valid range after an optimiser step."""

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad_y, tape, need_input_grad: bool = True):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)[0]
