"""Argument checks shared by the data modules (errors name the offending argument)."""

from __future__ import annotations

import math

import numpy as np

#: What a ``seed`` argument may be: ``None`` (fresh entropy), an integer, or a Generator.
SeedLike = None | int | np.integer | np.random.Generator

DATA_EXTRA = "pip install numbaspike[data]"


def positive_int(name: str, value) -> int:
    """``value`` as a Python int > 0, or ``ValueError`` naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def finite_float(name: str, value, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:  # fmt: skip
    """``value`` as a finite float inside the given bounds, or ``ValueError`` naming ``name``."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    if low is not None and (out < low or (low_open and out == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {out}")
    if high is not None and (out > high or (high_open and out == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {out}")
    return out


def make_rng(name: str, seed: SeedLike) -> np.random.Generator:
    """A Generator from ``seed``: ``None`` (fresh), an int >= 0, or a Generator (used as is)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(
            f"{name} must be None, a non-negative integer or a numpy.random.Generator, "
            f"got {type(seed).__name__}"
        )
    if seed < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {seed}")
    return np.random.default_rng(int(seed))


def numeric_dtype(name: str, dtype) -> np.dtype:
    """``dtype`` as a numpy bool, integer or float dtype, or ``TypeError`` naming ``name``."""
    try:
        out = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be a numpy dtype, got {dtype!r}") from None
    if out.kind not in "biuf":
        raise TypeError(f"{name} must be a bool, integer or float dtype, got {out}")
    return out


def unit_interval_values(name: str, value) -> np.ndarray:
    """``value`` as a float64 array with every entry in [0, 1] (``ValueError`` naming ``name``)."""
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if arr.size:
        if np.isnan(arr).any():
            first = tuple(int(k) for k in np.argwhere(np.isnan(arr))[0])
            raise ValueError(f"{name} contains NaN (first at index {first})")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{name} must hold values in [0, 1], got min {lo} and max {hi} "
                f"(scale it first, e.g. {name} / {name}.max())"
            )
    return arr


def labels_array(name: str, value, n_classes: int | None) -> tuple[np.ndarray, int]:
    """Integer labels (S,) as int64 in [0, n_classes); infers ``n_classes`` when None."""
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"{name} must have shape (S,), got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if arr.size and (not np.isfinite(arr).all() or (arr != np.round(arr)).any()):
            raise ValueError(f"{name} must hold integer class indices")
    elif arr.dtype.kind not in "iu" and arr.size:
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    arr = np.array(arr, dtype=np.int64)
    if n_classes is None:
        n_classes = int(arr.max()) + 1 if arr.size else 1
        n_classes = max(n_classes, 1)
    n_classes = positive_int("n_classes", n_classes)
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(
            f"{name} must lie in [0, n_classes) = [0, {n_classes}), "
            f"got min {int(arr.min())} and max {int(arr.max())}"
        )
    return arr, n_classes


def sample_labels(value, n_samples: int, n_classes: int | None) -> tuple[np.ndarray, int]:
    """``labels_array("labels", ...)`` that must also hold exactly one label per sample."""
    labels, n_classes = labels_array("labels", value, n_classes)
    if labels.shape[0] != n_samples:
        raise ValueError(f"labels must have shape (S,) = ({n_samples},), got shape {labels.shape}")
    return labels, n_classes


def require_module(module: str, feature: str):
    """Import an optional dependency, or ``ImportError`` telling how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{feature} needs the optional dependency '{module}': {DATA_EXTRA}"
        ) from err
