"""Validation shared by the neuron models' parameter classes.

The parameter classes live in their model files (:mod:`numbaspike.models`); names and
defaults follow Norse so that a model can be moved between the two libraries. Every field is
validated when the object is built (:class:`SpikingParameters`); time constants are also
checked against the step ``dt`` when a simulation starts (:func:`check_rates`), because an
explicit Euler step with ``dt * tau_inv >= 1`` is unstable.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import ClassVar

import numpy as np

from .surrogates import SURROGATE_CODES, surrogate_code

ArrayOrScalar = float | np.ndarray

RESET_CODES = {"zero": 0, "subtract": 1}


def _as_param(name: str, value, positive: bool = False) -> ArrayOrScalar:
    """Validate one neuron parameter; return a Python float or a read-only 1-D float64 array."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a number or a 1-D array, got bool")
    if np.ndim(value) == 0:
        try:
            scalar = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number or a 1-D array, got {value!r}") from None
        if not math.isfinite(scalar):
            raise ValueError(f"{name} must be finite, got {scalar}")
        if positive and scalar <= 0:
            raise ValueError(f"{name} must be positive, got {scalar}")
        return scalar
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or a 1-D array of numbers") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"{name} must be a scalar or a non-empty 1-D array of shape (N,), got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (found NaN or inf)")
    if positive and np.any(arr <= 0):
        raise ValueError(f"{name} must be positive everywhere, got min {arr.min()}")
    arr.setflags(write=False)
    return arr


def _param_size(p, names) -> int | None:
    """The common per-neuron size of the array-valued fields, or None if all are scalars."""
    sizes = {getattr(p, n).shape[0] for n in names if isinstance(getattr(p, n), np.ndarray)}
    if len(sizes) > 1:
        shapes = {n: np.shape(getattr(p, n)) for n in names}
        raise ValueError(f"per-neuron parameters must all have the same shape (N,), got {shapes}")
    return sizes.pop() if sizes else None


def check_reset_below_threshold(v_reset, v_th, dtype=None) -> None:
    """Raise ``ValueError`` naming ``v_reset`` and ``v_th`` unless ``v_reset < v_th`` everywhere.

    Parameters
    ----------
    v_reset : float
    v_th : float or ndarray of shape (N,)
    dtype : numpy dtype, optional
        Compare the values as rounded to this dtype (the one the kernels run in), so that
        two values distinct in float64 but equal in float32 are refused too.
    """
    th = np.asarray(v_th, dtype=np.float64)
    reset = np.float64(v_reset)
    where = "" if dtype is None else f" in {np.dtype(dtype)}"
    if dtype is not None:
        th = th.astype(dtype)
        reset = np.dtype(dtype).type(v_reset)
    bad = ~(reset < th)
    if not np.any(bad):
        return
    if th.ndim == 0:
        got = f"v_reset={float(reset)!r} and v_th={float(th)!r}{where}"
    else:
        k = int(np.argmax(bad))
        got = (
            f"v_reset={float(reset)!r} and v_th <= v_reset{where} at {int(bad.sum())} of "
            f"{th.size} neurons (first v_th[{k}]={float(th[k])!r})"
        )
    raise ValueError(
        "v_reset must be below v_th (a reset at or above threshold makes a driven neuron "
        f"fire on every step), got {got}"
    )


class SpikingParameters:
    """Mixin: per-neuron fields, ``v_reset``, the surrogate, the reset mode and the flags."""

    #: Fields that may be per neuron (shape (N,)).
    neuron_fields: ClassVar[tuple[str, ...]] = ()
    #: Of those, the ones that must be positive (inverse time constants).
    positive_fields: ClassVar[tuple[str, ...]] = ()

    def _validate(self) -> None:
        for name in self.neuron_fields:
            value = _as_param(name, getattr(self, name), name in self.positive_fields)
            object.__setattr__(self, name, value)
        v_reset = _as_param("v_reset", self.v_reset)
        if isinstance(v_reset, np.ndarray):
            raise ValueError("v_reset must be a scalar")
        object.__setattr__(self, "v_reset", v_reset)
        alpha = _as_param("alpha", self.alpha, positive=True)
        if isinstance(alpha, np.ndarray):
            raise ValueError("alpha must be a positive scalar")
        object.__setattr__(self, "alpha", alpha)
        surrogate_code(self.surrogate)  # raises ValueError naming `surrogate`
        if not isinstance(self.reset, str) or self.reset not in RESET_CODES:
            raise ValueError(f"reset must be one of {sorted(RESET_CODES)}, got {self.reset!r}")
        for flag in ("detach_reset", "smooth"):
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise ValueError(f"{flag} must be a bool, got {getattr(self, flag)!r}")
        object.__setattr__(self, "size", _param_size(self, self.neuron_fields))
        check_reset_below_threshold(self.v_reset, self.v_th)

    @property
    def surrogate_code(self) -> int:
        """Integer code of :attr:`surrogate` as used by the kernels."""
        return SURROGATE_CODES[self.surrogate]

    @property
    def reset_code(self) -> int:
        """Integer code of :attr:`reset` as used by the kernels (0 zero, 1 subtract)."""
        return RESET_CODES[self.reset]

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        unknown = set(changes) - set(values)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}; known {sorted(values)}")
        values.update(changes)
        return type(self)(**values)


def check_rates(p, dt: float, names: tuple[str, ...]) -> float:
    """Check ``dt`` and that ``dt * rate < 1`` for each inverse time constant in ``names``."""
    try:
        dt = float(dt)
    except (TypeError, ValueError):
        raise ValueError(f"dt must be a positive number, got {dt!r}") from None
    if not math.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt must be a positive finite number, got {dt}")
    for name in names:
        worst = float(np.max(getattr(p, name)))
        if dt * worst >= 1.0:
            raise ValueError(
                f"{name}: dt * {name} must be < 1 for a stable Euler step, "
                f"got dt={dt} and max {name}={worst} (product {dt * worst})"
            )
    return dt


def check_time_step(p, dt: float) -> float:
    """Check ``dt`` and that ``dt * tau_inv < 1`` for both time constants; return ``dt``."""
    return check_rates(p, dt, ("tau_mem_inv", "tau_syn_inv"))


_MOVED = {
    "LIFParameters": "lif",
    "LIF_NEURON_FIELDS": "lif",
    "LIParameters": "li",
    "LI_NEURON_FIELDS": "li",
}


def __getattr__(name: str):
    # The LIF and LI parameter classes live in their model files (numbaspike.models); this
    # keeps ``numbaspike.params.LIFParameters`` working without an import circle.
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(f"numbaspike.models.{_MOVED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
