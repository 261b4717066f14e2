r"""Surrogate spike derivatives and their smooth forward functions.

The forward pass of a spiking neuron is the Heaviside step :math:`z = H(u)`, with
:math:`u = h - v_{th}`; its derivative is zero almost everywhere. The backward pass
replaces :math:`H'(u)` by a surrogate :math:`s(u)` (Neftci, Mostafa & Zenke 2019,
IEEE Signal Processing Magazine 36:51). Each surrogate also has a smooth function
:math:`F` with :math:`F' = s`: with ``smooth=True`` the forward pass uses :math:`F`, the
model becomes differentiable, and the same backward code computes its exact gradient.

=================  ==========================================  ============================================
name               :math:`s(u)`                                :math:`F(u)`
=================  ==========================================  ============================================
superspike         :math:`1/(\alpha|u|+1)^2`                   :math:`u/(1+\alpha|u|)`
sigmoid            :math:`\alpha\sigma(\alpha u)(1-\sigma(\alpha u))`  :math:`\sigma(\alpha u)`
atan               :math:`(\alpha/2)/(1+(\tfrac{\pi}{2}\alpha u)^2)`   :math:`\arctan(\tfrac{\pi}{2}\alpha u)/\pi + 1/2`
tanh               :math:`1-\tanh^2(\alpha u)`                 :math:`\tanh(\alpha u)/\alpha`
erfc               :math:`(2/\sqrt\pi)\exp(-(\alpha u)^2)`     :math:`\mathrm{erf}(\alpha u)/\alpha`
triangle           :math:`\alpha\max(0, 1-|u|)`                :math:`\alpha(u - u|u|/2)` for :math:`|u|<1`, :math:`\pm\alpha/2` outside
boxcar             :math:`1/(2\alpha)` if :math:`|u|<\alpha`   :math:`1/2 + u/(2\alpha)` clipped to :math:`[0, 1]`
=================  ==========================================  ============================================

``fast_sigmoid`` is another name for ``superspike``. Sources: SuperSpike — Zenke &
Ganguli (2018), Neural Computation 30:1514; sigmoid, atan (Fang et al. 2021, ICCV),
triangle and boxcar as in snnTorch / Norse; erfc — Esser et al. (2016), PNAS 113:11441.

Kinks: :math:`F` is only once differentiable where :math:`s` has a kink (superspike at 0,
triangle at 0 and :math:`\pm 1`) and :math:`F` itself has kinks where :math:`s` jumps
(boxcar at :math:`\pm\alpha`). Finite-difference checks must keep their stencil away
from those points.
"""

from __future__ import annotations

import math

import numpy as np

SURROGATE_NAMES = ("superspike", "sigmoid", "atan", "tanh", "erfc", "triangle", "boxcar")
SURROGATE_CODES = {name: code for code, name in enumerate(SURROGATE_NAMES)}
SURROGATE_CODES["fast_sigmoid"] = SURROGATE_CODES["superspike"]

#: Points ``u`` (as functions of alpha) where F is not three times differentiable.
SURROGATE_KINKS = {
    "superspike": lambda alpha: (0.0,),
    "fast_sigmoid": lambda alpha: (0.0,),
    "sigmoid": lambda alpha: (),
    "atan": lambda alpha: (),
    "tanh": lambda alpha: (),
    "erfc": lambda alpha: (),
    "triangle": lambda alpha: (-1.0, 0.0, 1.0),
    "boxcar": lambda alpha: (-alpha, alpha),
}


def surrogate_code(name: str) -> int:
    """Integer code of a surrogate name; ``ValueError`` naming ``surrogate`` if unknown."""
    try:
        return SURROGATE_CODES[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(SURROGATE_CODES))
        raise ValueError(f"surrogate must be one of {known}; got {name!r}") from None


def _apply(kernel_name: str, name: str, u, alpha: float) -> np.ndarray:
    from .kernels import cpu

    code = surrogate_code(name)
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a positive number, got {alpha!r}") from None
    if not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be a positive finite number, got {alpha}")
    arr = np.array(u, dtype=np.float64, order="C")  # a fresh C-contiguous copy, 0-d for a scalar
    out = np.empty_like(arr)
    getattr(cpu, kernel_name)(code, arr.reshape(-1), alpha, out.reshape(-1))
    return out[()] if out.ndim == 0 else out


def surrogate_derivative(name: str, u, alpha: float = 100.0) -> np.ndarray:
    """Evaluate :math:`s(u)` elementwise (float64; a float for scalar ``u``), e.g. for plotting."""
    return _apply("surrogate_grad_array", name, u, alpha)


def surrogate_forward(name: str, u, alpha: float = 100.0) -> np.ndarray:
    """Evaluate the smooth forward :math:`F(u)` elementwise (float64; a float for scalar ``u``)."""
    return _apply("surrogate_smooth_array", name, u, alpha)
