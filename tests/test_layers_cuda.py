"""Layers with ``backend="cuda"`` against the same layers on the CPU.

Run under the CUDA simulator in CI (``NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cuda
tests/test_layers_cuda.py``) and on a GPU where there is one: ``Linear``'s dense products
(:mod:`numbaspike.layers_cuda`), the neuron layers on the functional API's CUDA kernels, a
``Sequential`` of them trained by ``train_step``, with parameters and gradients on the host.
"""

from __future__ import annotations

import numpy as np
import pytest

from numbaspike import backend
from numbaspike.kernels import projection
from numbaspike.layers import LI, LIF, LIFRecurrent, Linear
from numbaspike.losses import MaxOverTimeCrossEntropy
from numbaspike.network import Sequential
from numbaspike.neuron_layers import LSNNRecurrent
from numbaspike.optim import SGD
from numbaspike.train import train_step

pytestmark = pytest.mark.cuda

requires_cuda = pytest.mark.skipif(
    not backend.cuda_available(),
    reason="CUDA is not available: run with NUMBA_ENABLE_CUDASIM=1 (or on a GPU)",
)
T, B = 5, 2


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@requires_cuda
@pytest.mark.parametrize("bias", [False, True])
def test_linear_on_the_device_matches_the_cpu(bias, small_grid):
    rng = np.random.default_rng(0)
    cpu = Linear(7, 5, bias=bias, seed=1, dtype=np.float64)
    gpu = Linear(7, 5, bias=bias, seed=1, dtype=np.float64, backend="cuda")
    x = rng.normal(size=(T, B, 7))  # dense: the CPU takes its BLAS path too
    y_cpu, tape_cpu = cpu.forward(x)
    y_gpu, tape_gpu = gpu.forward(x)
    assert backend.is_device_array(y_gpu)
    assert _rel(backend.to_host(y_gpu), y_cpu) < 1e-12
    g = rng.normal(size=y_cpu.shape)
    dx_cpu = cpu.backward(g, tape_cpu)
    dx_gpu = gpu.backward(backend.to_device(g), tape_gpu)
    assert _rel(backend.to_host(dx_gpu), dx_cpu) < 1e-12
    for name, grad in cpu.gradients().items():
        assert isinstance(gpu.gradients()[name], np.ndarray)  # gradients stay on the host
        assert _rel(gpu.gradients()[name], grad) < 1e-12, name
    assert gpu.backward(g, tape_gpu, need_input_grad=False) is None


def _network(backend_name: str, neuron: str) -> Sequential:
    kw = {"dtype": np.float64, "backend": backend_name}
    if neuron == "lif":
        hidden = LIFRecurrent(6, learn=("v_th",), seed=2, scale=0.5, **kw)
    else:
        hidden = LSNNRecurrent(6, learn=("beta",), seed=2, scale=0.5, **kw)
    return Sequential(
        Linear(4, 6, seed=1, scale=8.0, **kw),
        hidden,
        Linear(6, 3, seed=3, **kw),
        LI(3, learn=("tau_mem_inv",), **kw),
    )


@requires_cuda
@pytest.mark.parametrize("neuron", ["lif", pytest.param("lsnn", marks=pytest.mark.slow)])
def test_a_network_trains_on_the_device_as_on_the_cpu(neuron, small_grid):
    rng = np.random.default_rng(1)
    x = (rng.random((T, B, 4)) < 0.5).astype(np.float64)
    labels = np.array([0, 2])
    nets = {name: _network(name, neuron) for name in ("cpu", "cuda")}
    y_cpu, _ = nets["cpu"].forward(x)
    y_gpu, tape = nets["cuda"].forward(x)
    assert backend.is_device_array(y_gpu) and backend.is_device_array(tape.outputs[1])
    assert _rel(backend.to_host(y_gpu), y_cpu) < 1e-10
    np.testing.assert_array_equal(
        backend.to_host(tape.outputs[1]), nets["cpu"].forward(x)[1].outputs[1]
    )
    losses = {}
    for name, net in nets.items():
        opt = SGD(net.parameters(), lr=0.1)
        losses[name], _ = train_step(net, x, labels, MaxOverTimeCrossEntropy(), opt)
    assert abs(losses["cuda"] - losses["cpu"]) < 1e-10 * abs(losses["cpu"])
    grads_cpu, grads_gpu = nets["cpu"].gradients(), nets["cuda"].gradients()
    assert set(grads_gpu) == set(grads_cpu)
    for name, grad in grads_cpu.items():
        assert isinstance(grads_gpu[name], np.ndarray), name
        assert _rel(grads_gpu[name], grad) < 1e-9, name
    for name, value in nets["cpu"].parameters().items():  # the same step was taken
        assert _rel(nets["cuda"].parameters()[name], value) < 1e-9, name


@requires_cuda
def test_device_layers_refuse_what_only_the_cpu_path_does(small_grid):
    gpu = Linear(4, 3, backend="cuda")
    events = projection.spike_events(np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match="x: SpikeEvents feed the event-driven CPU path"):
        gpu.forward(events)
    x = np.zeros((T, B, 3), np.float32)
    for layer in (LIF(3, backend="cuda"), LI(3, backend="cuda")):
        with pytest.raises(ValueError, match="out is only supported on the CPU backend"):
            layer.forward(x, out=np.empty_like(x))
    with pytest.raises(ValueError, match=r"x must have shape \(T, B, 3\)"):
        LIF(3, backend="cuda").forward(np.zeros((T, B, 4), np.float32))
    # the configuration does not name the device: a checkpoint moves between machines
    assert "backend" not in LIF(3, backend="cuda").config()
