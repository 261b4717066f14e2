"""Neuron layers: one generic layer (``Neuron``) whose named forms (LIF, LIFRecurrent, LI,
LIFBox, ...) only fix the model and the form; configurations and checkpoints of any
registered model, with no list of layer classes."""

import dataclasses
import inspect

import numpy as np
import pytest

import numbaspike as ns
from numbaspike import layers as L
from numbaspike import neuron_layers as NL
from numbaspike.checkpoint import load_checkpoint, save_checkpoint
from numbaspike.models import LIF_BOX, LIFBoxParameters, base, model_named
from numbaspike.network import Sequential, layer_from_config

FORMS = [
    (NL.LIF, "lif", False),
    (NL.LIFRecurrent, "lif", True),
    (NL.LI, "li", False),
    (NL.LIFBox, "lif_box", False),
    (NL.LIFBoxRecurrent, "lif_box", True),
    (NL.LSNN, "lsnn", False),
    (NL.LSNNRecurrent, "lsnn", True),
    (NL.LIFRefrac, "lif_refrac", False),
    (NL.LIFRefracRecurrent, "lif_refrac", True),
]


@pytest.mark.parametrize(("cls", "model", "recurrent"), FORMS, ids=[f[0].__name__ for f in FORMS])
def test_named_forms_are_neuron_layers_of_their_model(cls, model, recurrent):
    layer = cls(5, seed=0) if recurrent else cls(5)
    assert isinstance(layer, NL.Neuron) and type(layer).backward is NL.Neuron.backward
    assert layer.model is model_named(model) and layer.recurrent == recurrent
    assert isinstance(layer.p, model_named(model).parameters)  # the model's defaults
    assert NL.named_form(model, recurrent) is cls
    assert getattr(L, cls.__name__) is cls  # re-exported by numbaspike.layers
    rebuilt = layer_from_config(layer.config())
    assert type(rebuilt) is cls and rebuilt.config() == layer.config()


def test_lif_layers_keep_their_constructors_and_configuration_types():
    sig = list(inspect.signature(L.LIFRecurrent).parameters)
    assert sig[:8] == ["n", "p", "dt", "learn", "seed", "scale", "autapses", "dtype"]
    assert list(inspect.signature(L.LIF).parameters)[:5] == ["n", "p", "dt", "learn", "dtype"]
    assert list(inspect.signature(L.LI).parameters)[:5] == ["n", "p", "dt", "learn", "dtype"]
    positional = L.LIFRecurrent(4, None, 1e-3, (), 7, 0.5, False)
    keyword = L.LIFRecurrent(4, seed=7, scale=0.5, autapses=False)
    np.testing.assert_array_equal(positional.parameters()["w_rec"], keyword.parameters()["w_rec"])
    assert np.all(np.diag(keyword.parameters()["w_rec"]) == 0)
    assert L.LIF(3, sparse_tol=0.01).config() == {
        "type": "LIF", "n": 3, "dt": 1e-3, "learn": [], "sparse_tol": 0.01,
        "p": NL.parameters_config(ns.LIFParameters()),
    }  # fmt: skip
    assert L.LI(2).config()["type"] == "LI"
    assert L.LIFRecurrent(2, seed=0).config()["type"] == "LIFRecurrent"


def test_neuron_of_lif_parameters_is_the_lif_layer(rng):
    """``Neuron(n, LIFParameters())`` and the named form ``LIF`` run the same tuned kernels
    (the same bits), and the generic layer's configuration says ``Neuron``."""
    x = rng.normal(0.5, 1.0, (12, 3, 6)).astype(np.float32)
    p = ns.LIFParameters(v_th=np.linspace(0.2, 0.6, 6))
    generic = NL.Neuron(6, p, learn=("v_th",))
    named = L.LIF(6, p, learn=("v_th",))
    z1, t1 = generic.forward(x)
    z2, t2 = named.forward(x)
    np.testing.assert_array_equal(z1, z2)
    z3, _ = ns.lif_forward(x, p, 1e-3)
    np.testing.assert_array_equal(z1, z3)
    g = rng.normal(size=z1.shape).astype(np.float32)
    np.testing.assert_array_equal(generic.backward(g, t1), named.backward(g, t2))
    np.testing.assert_array_equal(generic.gradients()["v_th"], named.gradients()["v_th"])
    cfg = generic.config()
    assert cfg["type"] == "Neuron" and cfg["model"] == "lif"
    rebuilt = layer_from_config(cfg)
    assert type(rebuilt) is NL.Neuron and rebuilt.config() == cfg


def test_neuron_layer_errors_name_the_argument():
    with pytest.raises(ValueError, match="recurrent: the li model emits no spikes"):
        NL.Neuron(3, ns.LIParameters(), recurrent=True)
    with pytest.raises(ValueError, match="sparse_tol is implemented for the LIF model only"):
        NL.LSNN(3, sparse_tol=0.01)
    with pytest.raises(ValueError, match="sparse_tol is implemented for the LIF model only"):
        L.LI(3, sparse_tol=0.01)
    with pytest.raises(TypeError, match="p must be LSNNParameters, got LIFParameters"):
        NL.LSNN(3, ns.LIFParameters())
    with pytest.raises(TypeError, match="p must be the parameters of a neuron model"):
        NL.Neuron(3, {"tau_mem_inv": 100.0})
    with pytest.raises(ValueError, match="learn: unknown parameter 'beta'"):
        L.LIF(3, learn=("beta",))
    with pytest.raises(ValueError, match="recurrent must be a bool"):
        NL.Neuron(3, ns.LIFParameters(), recurrent="yes")


@dataclasses.dataclass(frozen=True)
class _CopiedParameters(LIFBoxParameters):
    """A parameter class of its own, for a model registered by the test only."""


def test_a_newly_registered_model_goes_through_configurations_and_checkpoints(
    monkeypatch, tmp_path
):
    """Registering a model is all that ``Sequential``, ``layer_from_config`` and checkpoints
    need: nothing in them lists models or layer classes."""
    model = dataclasses.replace(LIF_BOX, name="lif_box_copy", parameters=_CopiedParameters)
    monkeypatch.setitem(base._REGISTRY, model.name, model)
    p = _CopiedParameters(v_th=np.linspace(0.5, 1.0, 4), reset="subtract")
    net = Sequential(
        L.Linear(3, 4, seed=0),
        NL.Neuron(4, p, learn=("tau_mem_inv",), recurrent=True, seed=1, autapses=False),
        L.Linear(4, 2, seed=2),
        L.LI(2),
    )
    cfg = net.config()
    assert cfg[1]["type"] == "Neuron" and cfg[1]["model"] == "lif_box_copy"
    rebuilt = Sequential.from_config(cfg)
    assert rebuilt.layers[1].model is model and rebuilt.config() == cfg
    path = save_checkpoint(tmp_path / "copy.npz", net)
    loaded = load_checkpoint(path).network
    assert loaded.config() == cfg
    for name, value in net.parameters().items():
        np.testing.assert_array_equal(loaded.parameters()[name], value)
    assert isinstance(loaded.layers[1].p, _CopiedParameters)
    np.testing.assert_array_equal(loaded.layers[1].p.v_th, p.v_th)
