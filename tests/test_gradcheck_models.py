"""numbaspike.gradcheck on the layers of the registered neuron models (LIFBox, LSNN, LIFRefrac).

check_network must pass on small smooth networks with each model (feed-forward, recurrent,
both resets, detach_reset, every learnable parameter learned) and must *fail*, naming the
parameter, when a model's backward pass is wrong; the detached gradient is checked against
the model's NumPy replay with the reset spikes held, not waved through; the hooks that the
checker reads from the model record (kink_arguments, discrete_signature, replay) reproduce the
kernels' forward pass; the suite covers every model.

Each (model, surrogate, reset, detach) combination compiles the model's driver once per
process, so the cases below reuse the suite's combinations (SUITE_MODEL_CASES).
"""

from __future__ import annotations

import numpy as np
import pytest

import numbaspike.gradcheck as gc
import numbaspike.neuron as neuron
import numbaspike.neuron_layers as neuron_layers
from numbaspike.layers import LI, Linear
from numbaspike.losses import MembraneMSE
from numbaspike.models import model_named
from numbaspike.network import Sequential
from numbaspike.neuron import NeuronTape
from numbaspike.neuron_layers import Neuron

MODELS = ("lif_box", "lsnn", "lif_refrac")
#: (reset, detach) -> surrogate, as in the suite (one compilation per combination)
SURROGATE = {(reset, detach): s for s, reset, detach in gc.SUITE_MODEL_CASES}
ALPHA = {"tanh": 3.0, "superspike": 5.0}


def _params(name: str, reset: str, detach: bool, smooth: bool = False):
    surrogate = SURROGATE[(reset, detach)]
    p = model_named(name).parameters()
    return p.replace(
        surrogate=surrogate, alpha=ALPHA[surrogate], reset=reset, detach_reset=detach,
        v_reset=-0.1, smooth=smooth,
    )  # fmt: skip


def _spiking_fraction(net, x) -> float:
    """Share of the model layer's used spike arguments above threshold (smooth mode)."""
    _, tape = gc.smooth_copy(net).forward(x.astype(np.float64))
    t = tape.tapes[1]
    u = t.model.kink_arguments(t)
    return float(np.mean(u[np.isfinite(u)] > 0))


def _net(name, recurrent, reset="zero", detach=False, smooth=False, seed=0):
    """Linear(3→5) → the model's layer (every learnable parameter learned) → Linear(5→2) → LI,
    with the input weights scaled until 10-50% of the membranes are above threshold (or
    as close to it as a gain gets)."""
    rng = np.random.default_rng(seed)
    p = _params(name, reset, detach, smooth)
    model = model_named(name)
    layer = Neuron(5, p, learn=model.learnable, recurrent=recurrent, seed=1, scale=0.5)
    net = Sequential(Linear(3, 5, seed=2), layer, Linear(5, 2, bias=True, seed=3), LI(2))
    x = rng.uniform(0.0, 2.0, (20, 2, 3)).astype(np.float32)
    target = rng.normal(0.0, 0.1, (20, 2, 2)).astype(np.float32)
    w = net.parameters()["0.weight"]
    w[...] = np.abs(w) + 0.2
    base = w.copy()
    fractions = {}
    for gain in 2.0 ** (np.arange(-6, 14) / 2):
        w[...] = base * gain
        fractions[gain] = _spiking_fraction(net, x)
        if 0.1 <= fractions[gain] <= 0.5:
            return net, x, target
    # smooth LSNN with a negative F below threshold lowers its own threshold: take the
    # gain closest to a third above threshold
    w[...] = base * min(fractions, key=lambda g: abs(fractions[g] - 0.3))
    return net, x, target


#: One case per model in CI (each is a compilation of the driver); the others are slow.
CHECK_CASES = [
    ("lif_box", False, "zero", False),
    pytest.param("lif_box", True, "subtract", True, marks=pytest.mark.slow),
    pytest.param("lsnn", False, "subtract", False, marks=pytest.mark.slow),
    ("lsnn", True, "zero", True),
    pytest.param("lif_refrac", False, "zero", True, marks=pytest.mark.slow),
    ("lif_refrac", True, "subtract", False),
]


@pytest.mark.parametrize(("name", "recurrent", "reset", "detach"), CHECK_CASES)
def test_check_network_passes_on_each_model(name, recurrent, reset, detach):
    net, x, target = _net(name, recurrent, reset, detach)
    before = {k: v.copy() for k, v in net.parameters().items()}
    result = gc.check_network(net, x, MembraneMSE(), target, input_grad=True)
    assert result.ok, str(result)
    learned = {f"1.{k}" for k in model_named(name).learnable}
    assert learned <= {r.name for r in result.rows}
    assert ("1.w_rec" in {r.name for r in result.rows}) == recurrent
    assert result.checked > 0.8 * result.checks  # exclusions are the exception
    assert any("detach_reset" in n for n in result.notes) == detach
    for k, v in net.parameters().items():  # the network itself is untouched
        np.testing.assert_array_equal(v, before[k])


def test_smooth_copy_switches_every_model_layer_and_nested_parameters():
    net, _, _ = _net("lif_refrac", True)
    assert not net.layers[1].p.smooth
    smooth = gc.smooth_copy(net)
    assert smooth.layers[1].p.smooth and smooth.layers[1].p.lif.smooth  # nested LIFParameters
    assert smooth.layers[1].p.rho_reset == net.layers[1].p.rho_reset
    assert not gc.smooth_copy(smooth, smooth=False).layers[1].p.lif.smooth
    assert smooth.layers[1].model is net.layers[1].model
    np.testing.assert_array_equal(smooth.parameters()["1.w_rec"], net.parameters()["1.w_rec"])


def _scaled_backward(monkeypatch, pname: str, factor: float) -> None:
    """Make the model layers' backward return ``factor`` times the gradient of ``pname``."""
    original = neuron_layers.neuron_backward

    def broken(grad_y, tape, *args, **kwargs):
        grads = original(grad_y, tape, *args, **kwargs)
        if pname in grads:
            grads[pname] = grads[pname] * factor
        return grads

    monkeypatch.setattr(neuron_layers, "neuron_backward", broken)


@pytest.mark.parametrize(
    ("name", "pname"), [("lif_box", "tau_mem_inv"), ("lsnn", "beta"), ("lif_refrac", "v_th")]
)
def test_check_network_names_a_wrong_model_parameter_gradient(monkeypatch, name, pname):
    net, x, target = _net(name, True)
    _scaled_backward(monkeypatch, pname, 1.02)
    result = gc.check_network(net, x, MembraneMSE(), target)
    assert not result.ok
    assert not result[f"1.{pname}"].ok, str(result)
    for other in ("1.w_rec", "2.weight", "2.bias"):  # untouched gradients still pass
        assert result[other].ok, str(result)
    assert "FAIL" in str(result)


@pytest.mark.parametrize("name", MODELS)
def test_detached_gradient_is_checked_against_the_frozen_reset_model(monkeypatch, name):
    """A backward that ignores detach_reset computes the attached gradient: the checker, which
    differentiates the model's replay with the reset spikes held, must reject it."""
    net, x, target = _net(name, True, "zero", True)
    original = neuron_layers.neuron_backward

    def attached(grad_y, tape, *args, **kwargs):
        if isinstance(tape, NeuronTape):  # the spiking layer, not the LI readout
            tape.p = tape.p.replace(detach_reset=False)
            tape.modes = tape.model.modes(tape.p, tape.tape.dtype)
        return original(grad_y, tape, *args, **kwargs)

    assert gc.check_network(net, x, MembraneMSE(), target).ok
    monkeypatch.setattr(neuron_layers, "neuron_backward", attached)
    result = gc.check_network(net, x, MembraneMSE(), target)
    assert not result.ok, str(result)
    assert not result["0.weight"].ok


def test_a_model_without_a_replay_hook_fails_its_detached_checks(monkeypatch):
    from numbaspike.models import base

    net, x, target = _net("lif_box", False, "subtract", True)
    # check_network rebuilds the network, whose layers look their model up in the registry
    monkeypatch.setitem(base._REGISTRY, "lif_box", _without(model_named("lif_box"), "replay"))
    result = gc.check_network(net, x, MembraneMSE(), target, params=["1.v_th"])
    assert not result.ok
    assert "no replay hook" in result["1.v_th"].note and "lif_box" in result["1.v_th"].note


def _without(model, hook: str):
    from dataclasses import replace

    return replace(model, **{hook: None})


def test_refractory_masks_changed_by_a_stencil_are_excluded_not_failed():
    """In smooth mode the refractory mask stays a step: a large finite-difference step that
    changes any mask measures the jump, so the check is excluded and counted."""
    net, x, target = _net("lif_refrac", False, "subtract", False)
    _, tape = gc.smooth_copy(net).forward(x.astype(np.float64))
    masks = tape.tapes[1].model.discrete_signature(tape.tapes[1])
    assert 0 < masks.mean() < 1  # precondition: some steps are refractory
    coarse = gc.check_network(
        net, x, MembraneMSE(), target, params=["1.v_leak"], eps=0.05, order=2
    )
    row = coarse["1.v_leak"]
    assert row.excluded > 0 and coarse.ok, str(coarse)
    assert any("discrete value" in n for n in coarse.notes)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("recurrent", [False, True])
def test_replay_hooks_reproduce_the_kernels(name, recurrent):
    """replay (held spikes or not), kink_arguments and discrete_signature against the kernels."""
    model = model_named(name)
    p = _params(name, "subtract", True, smooth=True)
    rng = np.random.default_rng(5)
    x = rng.normal(1.5, 1.5, (20, 2, 4))
    w = rng.normal(0.0, 0.5, (4, 4)) if recurrent else None
    state = {"v": rng.uniform(0.0, 0.5, (2, 4))}
    if recurrent:
        state["z"] = rng.uniform(0.0, 1.0, (2, 4))
    z, tape = neuron.neuron_forward(x, p, 1e-3, w, state)
    u_tape = model.kink_arguments(tape)
    for held in (None, z):
        z_r, u, final, discrete = model.replay(x, p, 1e-3, w_rec=w, state=state, held=held)
        np.testing.assert_allclose(z_r, z, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(np.isinf(u), np.isinf(u_tape))
        finite = np.isfinite(u)
        np.testing.assert_allclose(u[finite], u_tape[finite], rtol=0, atol=1e-12)
        assert set(final) == set(tape.final_state)
        for k, v in final.items():
            np.testing.assert_allclose(v, tape.final_state[k], rtol=0, atol=1e-12)
        if model.discrete_signature is None:
            assert discrete is None
        else:
            np.testing.assert_array_equal(discrete, model.discrete_signature(tape))
    # held spikes change only the reset (and LSNN's jump): a different hold changes the state
    z_h, _, final_h, _ = model.replay(x, p, 1e-3, w_rec=w, state=state, held=np.zeros_like(z))
    assert not np.allclose(final_h["v"], tape.final_state["v"])


def test_surrogate_comparison_on_a_smooth_model_network_is_exact():
    net, x, target = _net("lsnn", True, "zero", True, smooth=True)
    cmp = gc.compare_surrogate_to_smooth(net, x, MembraneMSE(), target, params=["1.beta"])
    # a smooth network's own gradient, with detach_reset, is not the full gradient: the
    # comparison lifts the detach for the reference, so the cosine is below 1
    assert cmp["1.beta"].fd_err < 1e-5 and cmp["1.beta"].cosine < 1 - 1e-6
    net, x, target = _net("lsnn", True, "zero", False, smooth=False)
    net.layers[1].p = net.layers[1].p.replace(surrogate="tanh", smooth=True)
    cmp = gc.compare_surrogate_to_smooth(net, x, MembraneMSE(), target, params=["1.beta"])
    assert cmp["1.beta"].cosine > 1 - 1e-8, str(cmp)


def test_suite_covers_every_model_and_fails_when_a_model_backward_is_wrong(monkeypatch):
    names = {m.name for m in gc.suite.suite_models()}
    assert set(MODELS) <= names
    report = gc.run_gradcheck_suite(
        layers=("Neuron", "NeuronRecurrent"), models=("lsnn",), surrogates=("tanh",)
    )
    assert report.ok, str(report)
    assert [c.name for c in report.cases] == [
        "lsnn/tanh/zero/attached", "lsnn/tanh/subtract/detach",
        "lsnn-rec/tanh/zero/attached", "lsnn-rec/tanh/subtract/detach",
    ]  # fmt: skip
    rec = report.cases[2].result
    assert {"x", "w_rec", "v0", "i0", "b0", "z0", "beta", "tau_adapt_inv"} <= {
        r.name for r in rec.rows
    }
    original = neuron.neuron_backward

    def broken(grad_y, tape, *args, **kwargs):
        grads = original(grad_y, tape, *args, **kwargs)
        grads["tau_syn_inv"] = grads["tau_syn_inv"] * 1.0001
        return grads

    monkeypatch.setattr(neuron, "neuron_backward", broken)
    report = gc.run_gradcheck_suite(
        layers=("NeuronRecurrent",), models=("lsnn",), surrogates=("tanh",)
    )
    assert not report.ok and len(report.failures) == 2
    assert not report.failures[0].result["tau_syn_inv"].ok
    assert "FAILED: lsnn-rec/tanh/zero/attached" in str(report)


def test_suite_rejects_unknown_models():
    with pytest.raises(ValueError, match="models"):
        gc.run_gradcheck_suite(models=("hodgkin_huxley",))
    with pytest.raises(ValueError, match="models"):
        gc.run_gradcheck_suite(models="lsnn")


@pytest.mark.slow  # the models' torch parity runs in CI in test_models.py
def test_suite_compares_the_models_with_the_pytorch_oracle():
    pytest.importorskip("torch")
    report = gc.run_gradcheck_suite(
        torch=True, layers=("NeuronRecurrent", "Sequential"), models=("lif_refrac",),
        surrogates=("superspike",),
    )  # fmt: skip
    assert report.ok, str(report)
    assert [c.layer for c in report.cases] == [
        "Sequential", "lif_refrac-rec", "lif_refrac-rec", "Sequential(lif_refrac)",
    ]  # fmt: skip
    for case in report.cases:
        assert case.torch_smooth < 1e-9 and case.torch_step < 1e-9, case.name
