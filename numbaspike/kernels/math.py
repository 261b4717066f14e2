r"""Scalar maths of the spike function, written once and compiled twice.

Every function here is plain, undecorated Python on scalars that calls nothing but the
:mod:`math` module, so that the CPU kernels can compile it with ``numba.njit`` and the CUDA
kernels with ``numba.cuda.jit(device=True)``: the two targets cannot drift apart. The
neuron updates themselves are written the same way in their model files
(:mod:`numbaspike.models`).

Surrogate codes (see :mod:`numbaspike.surrogates`): 0 superspike, 1 sigmoid, 2 atan,
3 tanh, 4 erfc, 5 triangle, 6 boxcar.
"""

import math

SQRT_PI = 1.7724538509055159
HALF_PI = 1.5707963267948966


def surrogate_grad(code, u, alpha):
    r"""Surrogate derivative :math:`s(u)` of the spike function at :math:`u = h - v_{th}`."""
    if code == 0:  # superspike / fast sigmoid
        d = alpha * abs(u) + 1.0
        return 1.0 / (d * d)
    elif code == 1:  # sigmoid
        y = alpha * u
        if y >= 0.0:
            e = math.exp(-y)
            sig = 1.0 / (1.0 + e)
        else:
            e = math.exp(y)
            sig = e / (1.0 + e)
        return alpha * sig * (1.0 - sig)
    elif code == 2:  # atan
        y = HALF_PI * alpha * u
        return 0.5 * alpha / (1.0 + y * y)
    elif code == 3:  # tanh
        t = math.tanh(alpha * u)
        return 1.0 - t * t
    elif code == 4:  # erfc (Gaussian)
        y = alpha * u
        return 2.0 / SQRT_PI * math.exp(-y * y)
    elif code == 5:  # triangle
        r = 1.0 - abs(u)
        return alpha * r if r > 0.0 else 0.0
    else:  # boxcar
        return 0.5 / alpha if abs(u) < alpha else 0.0


def surrogate_smooth(code, u, alpha):
    r"""Smooth forward :math:`F(u)` with :math:`F'(u) = s(u)` (used when ``smooth=True``)."""
    if code == 0:
        return u / (1.0 + alpha * abs(u))
    elif code == 1:
        y = alpha * u
        if y >= 0.0:
            return 1.0 / (1.0 + math.exp(-y))
        e = math.exp(y)
        return e / (1.0 + e)
    elif code == 2:
        return math.atan(HALF_PI * alpha * u) / math.pi + 0.5
    elif code == 3:
        return math.tanh(alpha * u) / alpha
    elif code == 4:
        return math.erf(alpha * u) / alpha
    elif code == 5:
        if u >= 1.0:
            return 0.5 * alpha
        if u <= -1.0:
            return -0.5 * alpha
        return alpha * (u - 0.5 * u * abs(u))
    else:
        if u >= alpha:
            return 1.0
        if u <= -alpha:
            return 0.0
        return 0.5 + 0.5 * u / alpha
