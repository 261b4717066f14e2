r"""Scalar maths of one neuron step, written once and compiled twice.

Every function here is plain, undecorated Python on scalars that calls nothing but the
:mod:`math` module, so that :mod:`numbaspike.kernels.cpu` can compile it with
``numba.njit`` and :mod:`numbaspike.kernels.cuda` with ``numba.cuda.jit(device=True)``:
the two targets cannot drift apart. Functions only call :mod:`math` (never each other)
because a compiled function can call only compiled functions; the kernels compose them.

Surrogate codes (see :mod:`numbaspike.surrogates`): 0 superspike, 1 sigmoid, 2 atan,
3 tanh, 4 erfc, 5 triangle, 6 boxcar. Reset codes: 0 zero, 1 subtract.

The float32 kernels call these functions with float32 arguments; the coefficients
``a_m``, ``decay_s = 1 - a_s`` are precomputed in the working dtype at the public
boundary so that the forward pass rounds exactly like an elementwise implementation
(PyTorch, NumPy) of the same equations.
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


def membrane_step(v, i, x, a_m, decay_s, v_leak):
    r"""Integrate one step: current jump, membrane update, synaptic decay.

    .. math::

        i' = i + x, \qquad h = v + a_m\,((v_{leak} - v) + i'), \qquad i_{next} = i'\,(1 - a_s)

    Returns ``(h, i1, i_next)`` where ``i1`` is :math:`i'` and ``decay_s`` is :math:`1 - a_s`.
    """
    i1 = i + x
    h = v + a_m * ((v_leak - v) + i1)
    return h, i1, i1 * decay_s


def reset_step(h, z, v_th, v_reset, reset_code, smooth):
    r"""Membrane after the spike ``z``: zero reset :math:`(1-z)h + z v_{reset}` or
    subtract reset :math:`h - z (v_{th} - v_{reset})`."""
    if reset_code == 0:
        if smooth:
            return (1.0 - z) * h + z * v_reset
        return v_reset if z != 0.0 else h
    return h - z * (v_th - v_reset)


def lif_adjoint_step(gv, gi, gz_ext, h, z, s, v_th, v_reset, a_m, decay_s, reset_code, detach):
    r"""One reverse step of BPTT through the LIF update.

    Given the adjoints ``gv`` of :math:`v_t`, ``gi`` of :math:`i_t`, the external gradient
    ``gz_ext`` of :math:`z_t`, the tape value :math:`h_t`, the spike :math:`z_t` and
    :math:`s = s(h_t - v_{th})`:

    .. math::

        g_z &= g_{z,ext} + [\text{not detach}]\,g_v\,\partial v/\partial z, \qquad
        \partial v/\partial z = v_{reset} - h \;\text{(zero)},\;
        -(v_{th} - v_{reset}) \;\text{(subtract)} \\
        g_h &= g_v\,\partial v/\partial h + g_z\,s, \qquad
        \partial v/\partial h = 1 - z \;\text{(zero)},\; 1 \;\text{(subtract)} \\
        g_{i'} &= g_i\,(1 - a_s) + g_h\,a_m \;(= \partial L/\partial x_t) \\
        g_{v,t-1} &= g_h\,(1 - a_m), \qquad g_{i,t-1} = g_{i'} \\
        g_{v_{th}} &= -g_z\,s - [\text{subtract}]\,g_v\,z

    Returns ``(gv_prev, gi1, gh, g_vth)``; ``gi1`` is both :math:`\partial L/\partial x_t` and
    the adjoint of :math:`i_{t-1}`.
    """
    if reset_code == 0:
        gz = gz_ext if detach else gz_ext + gv * (v_reset - h)
        gh = (gv - gv * z) + gz * s
        g_vth = -gz * s
    else:
        gz = gz_ext if detach else gz_ext - gv * (v_th - v_reset)
        gh = gv + gz * s
        g_vth = -gz * s - gv * z
    gi1 = gi * decay_s + gh * a_m
    return gh - gh * a_m, gi1, gh, g_vth


def li_adjoint_step(gv, gi, a_m, decay_s):
    r"""One reverse step of BPTT through the leaky integrator (``gv`` includes dL/dv_t).

    .. math::

        g_{i'} = g_i\,(1 - a_s) + g_v\,a_m, \qquad g_{v,t-1} = g_v\,(1 - a_m)

    Returns ``(gv_prev, gi1)``.
    """
    return gv * (1.0 - a_m), gi * decay_s + gv * a_m
