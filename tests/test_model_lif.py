"""LIF and LI as registered models: their tuned kernels against their model files.

The functional API and the layers run LIF and LI in hand-tuned kernels; the model records
(:data:`numbaspike.models.LIF`, :data:`numbaspike.models.LI`) run the same scalar step and
adjoint on the generic driver. The two must agree: forward bits exactly where the order of
operations is the same (everything but the smooth recurrent product), gradients to rounding.
The tuned kernels themselves are checked against PyTorch, NumPy and finite differences in
``test_torch_parity.py``, ``test_numpy_reference.py`` and ``test_finite_differences.py``.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import numbaspike as ns
from numbaspike.models import LI, LIF, model_named, model_of, registered_models
from numbaspike.neuron import NeuronTape, generic_forward, neuron_backward, neuron_forward

DT = 1e-3
T, B, N = 30, 3, 6

#: (reset, detach_reset, smooth): every value of each mode twice.
MODE_CASES = [
    ("zero", False, False),
    ("subtract", True, False),
    ("zero", True, True),
    ("subtract", False, True),
]


def _lif_problem(rng, recurrent, dtype, **modes):
    p = ns.LIFParameters(
        tau_mem_inv=rng.uniform(70.0, 150.0, N),
        tau_syn_inv=rng.uniform(150.0, 300.0, N),
        v_leak=rng.uniform(-0.1, 0.1, N),
        v_th=rng.uniform(0.8, 1.2, N),
        v_reset=-0.2,
        **modes,
    )
    x = (rng.normal(0.3, 1.0, (T, B, N)) * 6.0).astype(dtype)
    w = rng.normal(0.0, 0.8, (N, N)).astype(dtype) if recurrent else None
    return p, x, w


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def test_lif_and_li_are_registered_with_their_parameter_classes():
    assert model_named("lif") is LIF and model_named("li") is LI
    assert model_of(ns.LIFParameters()) is LIF and model_of(ns.LIParameters()) is LI
    assert LIF.spiking and not LI.spiking
    assert all(m.spiking for name, m in registered_models().items() if name != "li")
    # the classes moved to their model files; the old import path still gives them
    from numbaspike.params import LIFParameters, LIParameters

    assert LIFParameters is ns.LIFParameters and LIParameters is ns.LIParameters


#: float32 in one mode only: each (modes, dtype) is a compilation of the generic driver;
#: in CI one binary and one smooth mode, the others are slow.
DTYPE_MODE_CASES = [
    (np.float64, *MODE_CASES[0]),
    pytest.param(np.float64, *MODE_CASES[1], marks=pytest.mark.slow),
    pytest.param(np.float64, *MODE_CASES[2], marks=pytest.mark.slow),
    (np.float64, *MODE_CASES[3]),
    pytest.param(np.float32, *MODE_CASES[0], marks=pytest.mark.slow),
]


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("dtype, reset, detach, smooth", DTYPE_MODE_CASES)
def test_tuned_lif_kernels_compute_the_model_files_step_and_adjoint(
    dtype, recurrent, reset, detach, smooth
):
    # a seed that, unlike hash() of strings, is the same in every process
    rng = np.random.default_rng(
        zlib.crc32(repr((dtype().itemsize, recurrent, reset, detach, smooth)).encode())
    )
    modes = {"surrogate": "atan" if smooth else "superspike", "alpha": 5.0 if smooth else 20.0,
             "reset": reset, "detach_reset": detach, "smooth": smooth}  # fmt: skip
    p, x, w = _lif_problem(rng, recurrent, dtype, **modes)
    z_tuned, tape_tuned = neuron_forward(x, p, DT, w)
    z_generic, tape_generic = generic_forward(LIF, x, p, DT, w)
    assert isinstance(tape_generic, NeuronTape) and not isinstance(tape_tuned, NeuronTape)
    if not smooth:
        assert 0.02 < z_tuned.mean() < 0.75, f"spike rate {z_tuned.mean():.3f}"
    if recurrent and smooth:  # the recurrent product sums in another order
        assert _rel(z_generic, z_tuned) < (1e-12 if dtype == np.float64 else 1e-4)
    else:
        np.testing.assert_array_equal(z_generic, z_tuned)
    g_out = rng.normal(size=x.shape).astype(dtype)
    tuned = neuron_backward(g_out, tape_tuned)
    generic = neuron_backward(g_out, tape_generic)
    expected = {"x", "v0", "i0", *LIF.learnable} | ({"w_rec", "z0"} if recurrent else set())
    assert expected <= set(generic)
    tol = 1e-10 if dtype == np.float64 else 2e-3
    errors = {k: _rel(generic[k], tuned[k]) for k in sorted(expected)}
    assert max(errors.values()) < tol, errors


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tuned_li_kernels_compute_the_model_files_step_and_adjoint(dtype):
    rng = np.random.default_rng(11)
    p = ns.LIParameters(
        tau_mem_inv=rng.uniform(70.0, 150.0, N),
        tau_syn_inv=rng.uniform(150.0, 300.0, N),
        v_leak=rng.uniform(-0.1, 0.1, N),
    )
    x = rng.normal(0.0, 1.0, (T, B, N)).astype(dtype)
    state = {"v": rng.normal(size=(B, N)), "i": rng.normal(size=(B, N))}
    y_tuned, tape_tuned = neuron_forward(
        x, p, DT, state=(state["v"], state["i"]), param_grads=True
    )
    y_generic, tape_generic = generic_forward(LI, x, p, DT, state=state)
    np.testing.assert_array_equal(y_generic, y_tuned)
    g_out = rng.normal(size=x.shape).astype(dtype)
    tuned = neuron_backward(g_out, tape_tuned, {"v": 0.5, "i": -0.25})
    generic = neuron_backward(g_out, tape_generic, {"v": 0.5, "i": -0.25})
    tol = 1e-12 if dtype == np.float64 else 1e-5
    errors = {k: _rel(generic[k], tuned[k]) for k in ("x", "v0", "i0", *LI.learnable)}
    assert max(errors.values()) < tol, errors


def test_the_default_initial_membrane_passes_its_gradient_to_v_leak_on_both_paths():
    rng = np.random.default_rng(12)
    # the modes of MODE_CASES[3], whose generic kernels the test above compiled
    modes = {"surrogate": "atan", "alpha": 5.0, "reset": "subtract", "smooth": True}
    p, x, _ = _lif_problem(rng, False, np.float64, **modes)
    g_out = rng.normal(size=x.shape)
    tuned = neuron_backward(g_out, neuron_forward(x, p, DT)[1])
    generic = neuron_backward(g_out, generic_forward(LIF, x, p, DT)[1])
    assert _rel(generic["v_leak"], tuned["v_leak"]) < 1e-10
    assert np.any(generic["v0"] != 0)


def test_the_readout_has_no_spikes_and_no_recurrent_form():
    x = np.ones((4, 2, 3))
    with pytest.raises(ValueError, match="w_rec: the li model emits no spikes"):
        generic_forward(LI, x, ns.LIParameters(), DT, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="w_rec: the LI readout has no recurrent form"):
        neuron_forward(x, ns.LIParameters(), DT, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="the li model emits no spikes"):
        ns.neuron_simulate(x, ns.LIParameters(), DT)
    with pytest.raises(TypeError, match="p must be LIParameters, got LIFParameters"):
        generic_forward(LI, x, ns.LIFParameters(), DT)
