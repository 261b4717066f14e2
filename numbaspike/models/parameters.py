"""Validation shared by the parameter classes of the spiking models in :mod:`numbaspike.models`.

The classes are frozen dataclasses (Norse's names and defaults) that mix in
:class:`SpikingParameters`; their ``__post_init__`` calls :meth:`SpikingParameters._validate`,
so every field is checked, with an error naming it, when an object is built or replaced.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import ClassVar

import numpy as np

from ..params import RESET_CODES, _as_param, _param_size, check_reset_below_threshold
from ..surrogates import SURROGATE_CODES, surrogate_code

__all__ = ["SpikingParameters", "check_rates"]


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
