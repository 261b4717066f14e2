r"""The CUDA side of the layers (``backend="cuda"``): :class:`~numbaspike.layers.Linear`'s
dense products on the GPU, and host copies of what a layer keeps.

A layer's parameters and gradients stay NumPy arrays on the host, where the optimisers
update them; each forward pass copies the weights to the device, and each backward pass
copies the weight gradients back. Activations and their gradients stay on the device
between layers. The products are :func:`numbaspike.kernels.cuda.matmul` (cuBLAS through
CuPy when CuPy is importable, else a shared-memory tiled kernel):

.. math::

    Y = X W^\top (+ \mathbf{1} b^\top), \qquad
    \partial L/\partial W = G^\top X, \qquad
    \partial L/\partial b = \mathbf{1}^\top G, \qquad
    \partial L/\partial X = G W

with ``X`` (T·B, n_in) and ``G`` (T·B, n_out). The event-driven products of the CPU path
(spike lists) have no CUDA twin: a CUDA ``Linear`` takes dense inputs.
"""

from __future__ import annotations

import numpy as np

from . import backend as _backend

__all__ = ["host", "linear_backward_cuda", "linear_forward_cuda"]


def host(value):
    """``value`` on the host: a device array copied back, anything else (arrays, floats,
    None) as it is."""
    if _backend.is_device_array(value):
        return _backend.to_host(value)
    return value


def _ones(kernels, shape, dtype):
    ones = kernels.empty(shape, dtype)
    kernels.fill(ones, 1.0)
    return ones


def linear_forward_cuda(layer, x):
    """``(y, (x_flat, shape))`` of :meth:`Linear.forward` on the device: ``y`` (T, B, n_out)
    is a device array; ``x`` a host or device array (T, B, n_in)."""
    kernels = _backend._kernels()
    x = _backend.device_float_array(
        "x", x, ndim=3, dtype=layer.dtype, shape_doc=f"(T, B, {layer.n_in})"
    )
    shape = tuple(x.shape)
    if shape[2] != layer.n_in:
        raise ValueError(f"x must have shape (T, B, {layer.n_in}), got {shape}")
    flat = x.reshape(shape[0] * shape[1], layer.n_in)
    weight = _backend.to_device(layer.weight)
    y = kernels.empty((flat.shape[0], layer.n_out), layer.dtype)
    kernels.matmul(flat, weight, y, trans_b=True)
    if layer.bias:
        bias = _backend.to_device(layer.parameters()["bias"].reshape(1, layer.n_out))
        kernels.matmul(_ones(kernels, (flat.shape[0], 1), layer.dtype), bias, y, accumulate=True)
    return y.reshape(shape[0], shape[1], layer.n_out), (flat, shape)


def linear_backward_cuda(layer, grad_y, saved, need_input_grad: bool):
    """:meth:`Linear.backward` on the device: adds the weight (and bias) gradient to the
    layer's host gradients and returns dL/dx (T, B, n_in) as a device array, or None."""
    kernels = _backend._kernels()
    flat, shape = saved
    n_steps, batch, _ = shape
    g = _backend._device_output_grad("grad_y", grad_y, (n_steps, batch, layer.n_out), layer.dtype)
    g = g.reshape(n_steps * batch, layer.n_out)
    grad_w = kernels.empty((layer.n_out, layer.n_in), layer.dtype)
    kernels.matmul(g, flat, grad_w, trans_a=True)
    grad_w = _backend.to_host(grad_w)
    if not np.all(np.isfinite(grad_w)):
        raise ValueError(
            "the weight gradient is not finite (grad_y or the layer input holds NaN or inf, "
            "or is too large)"
        )
    layer.gradients()["weight"][...] += grad_w
    if layer.bias:
        grad_b = kernels.empty((1, layer.n_out), layer.dtype)
        kernels.matmul(_ones(kernels, (1, g.shape[0]), layer.dtype), g, grad_b)
        layer.gradients()["bias"][...] += _backend.to_host(grad_b)[0]
    if not need_input_grad:
        return None
    grad_x = kernels.empty((g.shape[0], layer.n_in), layer.dtype)
    kernels.matmul(g, _backend.to_device(layer.weight), grad_x)
    return grad_x.reshape(n_steps, batch, layer.n_in)
