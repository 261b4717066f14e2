"""``Sequential.load_parameters`` and ``from_config``: clear errors for bad values and configs."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from numbaspike.layers import LI, LIF, LIFRecurrent, Linear
from numbaspike.network import Sequential, _config_parameter_shapes, layer_from_config
from numbaspike.params import LIFParameters, LIParameters


def _net(dtype=np.float32) -> Sequential:
    return Sequential(
        Linear(3, 5, bias=True, seed=0, dtype=dtype),
        LIFRecurrent(5, learn=("v_th", "tau_mem_inv"), autapses=False, seed=1, dtype=dtype),
        Linear(5, 2, seed=2, dtype=dtype),
        LI(2, learn=("v_leak",), dtype=dtype),
    )


def _params(net: Sequential, **changes) -> dict[str, np.ndarray]:
    params = {k: v.copy() for k, v in net.parameters().items()}
    params.update(changes)
    return params


# --------------------------------------------------------------------------------------------
# load_parameters
# --------------------------------------------------------------------------------------------


def test_load_parameters_copies_values_and_casts_real_numbers():
    net, other = _net(), _net()
    for value in other.parameters().values():
        value += 0.5
    net.load_parameters(other.parameters())
    for name, value in other.parameters().items():
        np.testing.assert_array_equal(net.parameters()[name], value)
    ints = np.arange(15, dtype=np.int64).reshape(5, 3)
    net.load_parameters(_params(net, **{"0.weight": ints}))
    np.testing.assert_array_equal(net.parameters()["0.weight"], ints.astype(np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_load_parameters_refuses_nonfinite_values_naming_the_parameter(bad):
    net = _net()
    before = {k: v.copy() for k, v in net.parameters().items()}
    weight = net.parameters()["0.weight"].copy()
    weight[2, 1] = bad
    with pytest.raises(ValueError, match=r"^parameter 0\.weight contains NaN or inf$"):
        net.load_parameters(_params(net, **{"0.weight": weight}))
    for name, value in net.parameters().items():  # nothing was copied
        np.testing.assert_array_equal(value, before[name])


def test_load_parameters_refuses_values_that_overflow_the_dtype():
    net = _net(np.float32)
    with pytest.raises(ValueError, match=r"parameter 2\.weight contains NaN or inf.*overflow"):
        net.load_parameters(_params(net, **{"2.weight": np.full((2, 5), 1e300)}))


@pytest.mark.parametrize(
    "value",
    [
        np.full((5, 3), "0.5"),
        np.zeros((5, 3), dtype=object),
        np.zeros((5, 3), dtype=bool),
        np.zeros((5, 3), dtype=np.complex128),
        np.zeros((5, 3), dtype="i4,f4"),
    ],
    ids=["str", "object", "bool", "complex", "structured"],
)
def test_load_parameters_refuses_non_numeric_dtypes_naming_the_parameter(value):
    net = _net()
    with pytest.raises(ValueError, match=r"parameter 0\.weight must hold real numbers"):
        net.load_parameters(_params(net, **{"0.weight": value}))


def test_load_parameters_refuses_ragged_values_wrong_shapes_and_keys():
    net = _net()
    with pytest.raises(ValueError, match=r"parameter 0\.bias is not an array of numbers"):
        net.load_parameters(_params(net, **{"0.bias": [[1.0], [1.0, 2.0]]}))
    with pytest.raises(ValueError, match=r"parameter 0\.weight: expected shape \(5, 3\)"):
        net.load_parameters(_params(net, **{"0.weight": np.zeros((3, 5))}))
    with pytest.raises(ValueError, match="missing .*'0.weight'"):
        net.load_parameters({k: v for k, v in net.parameters().items() if k != "0.weight"})
    with pytest.raises(ValueError, match="unexpected .*5"):
        net.load_parameters({**net.parameters(), 5: np.zeros(1), "x": np.zeros(1)})
    with pytest.raises(TypeError, match="mapping"):
        net.load_parameters([("0.weight", np.zeros((5, 3)))])


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("1.tau_mem_inv", -1.0, "tau_mem_inv must be positive"),
        ("1.tau_mem_inv", 2000.0, "dt \\* tau_mem_inv must be < 1"),
        ("1.v_th", -1.0, "v_reset must be below v_th"),
    ],
)
def test_load_parameters_refuses_invalid_learned_neuron_parameters(name, value, message):
    net = _net()
    before = net.parameters()[name].copy()
    with pytest.raises(ValueError, match=f"1.v_th, 1.tau_mem_inv are invalid.*{message}"):
        net.load_parameters(_params(net, **{name: np.full(5, value)}))
    np.testing.assert_array_equal(net.parameters()[name], before)


# --------------------------------------------------------------------------------------------
# from_config / layer_from_config
# --------------------------------------------------------------------------------------------


def test_config_round_trip_of_every_layer_type():
    net = Sequential(
        Linear(4, 6, bias=True, seed=0, dtype=np.float64),
        LIF(
            6,
            LIFParameters(v_th=np.linspace(0.5, 1.5, 6), reset="subtract"),
            sparse_tol=0.1,
            dtype=np.float64,
        ),  # fmt: skip
        Linear(6, 6, seed=1, dtype=np.float64),
        LIFRecurrent(6, learn=("tau_syn_inv",), autapses=False, dtype=np.float64),
        Linear(6, 2, seed=2, dtype=np.float64),
        LI(2, LIParameters(tau_mem_inv=[50.0, 60.0]), learn=["v_leak"], dtype=np.float64),
    )
    clone = Sequential.from_config(net.config())
    assert clone.config() == net.config()
    clone.load_parameters(net.parameters())
    x = (np.random.default_rng(0).random((8, 2, 4)) < 0.3).astype(np.float64)
    np.testing.assert_array_equal(net(x), clone(x))


@pytest.mark.parametrize(
    "net",
    [
        Sequential(Linear(3, 4), LIF(4), Linear(4, 2, bias=True), LI(2)),
        Sequential(LIFRecurrent(4, learn=("v_th", "v_leak")), LI(4, learn=("tau_mem_inv",))),
        Sequential(LIF(3)),
    ],
)
def test_config_parameter_shapes_are_those_of_the_built_network(net):
    expected = {k: v.shape for k, v in net.parameters().items()}
    assert _config_parameter_shapes(net.config()) == expected


def _layer_cfgs() -> list[dict]:
    return Sequential(
        Linear(3, 4, bias=True), LIFRecurrent(4, learn=("v_th",)), Linear(4, 2), LI(2)
    ).config()


_BAD_LAYER_EDITS = [
    # (layer index, field, value or a function of the layer config, message)
    (0, "type", "Conv2d", "unknown layer type 'Conv2d'"),
    (0, "type", 5, "unknown layer type 5"),
    (0, "type", ["Linear"], "unknown layer type"),
    (0, "n_in", "3", "n_in must be a positive integer, got '3'"),
    (0, "n_in", 0, "n_in must be a positive integer"),
    (0, "n_in", -3, "n_in must be a positive integer"),
    (0, "n_in", 3.0, "n_in must be a positive integer"),
    (0, "n_in", True, "n_in must be a positive integer"),
    (0, "n_in", None, "n_in must be a positive integer"),
    (0, "bias", "yes", "bias must be a bool"),
    (0, "bias", 1, "bias must be a bool"),
    (0, "dtype", "float16", "dtype must be 'float32' or 'float64'"),
    (0, "dtype", "O", "dtype must be 'float32' or 'float64'"),
    (0, "dtype", 5, "dtype must be 'float32' or 'float64'"),
    (0, "extra", 1, "unexpected fields \\['extra'\\]"),
    (1, "learn", 5, "learn must be a list of parameter names, got 5"),
    (1, "learn", "v_th", "learn must be a list of parameter names"),
    (1, "learn", [1], "learn must be a list of parameter names"),
    (1, "learn", ["v_th", "v_th"], "duplicate"),
    (1, "learn", ["foo"], "unknown parameters \\['foo'\\]"),
    (1, "n", 0, "n must be a positive integer"),
    (1, "dt", "0.001", "dt must be a number"),
    (1, "dt", True, "dt must be a number"),
    (1, "dt", 10**400, "dt must be a number"),
    (1, "dt", 0.0, "dt must be a positive finite number"),
    (1, "dt", float("nan"), "dt must be a positive finite number"),
    (1, "dt", 0.1, "dt \\* tau_mem_inv must be < 1"),
    (1, "p", 5, "p must be a dict"),
    (1, "p", [], "p must be a dict"),
    (1, "p", lambda p: {**p, "v_th": "1.0"}, "p\\['v_th'\\] must be a number or a list"),
    (1, "p", lambda p: {**p, "v_th": ["1.0"] * 4}, "p\\['v_th'\\] must be a number or a list"),
    (1, "p", lambda p: {**p, "v_th": [[1.0]] * 4}, "p\\['v_th'\\] must be a number or a list"),
    (1, "p", lambda p: {**p, "v_th": [1.0] * 3}, "per-neuron parameters have size 3"),
    (1, "p", lambda p: {**p, "v_th": []}, "v_th must be a scalar or a non-empty 1-D array"),
    (1, "p", lambda p: {**p, "alpha": 10**400}, "p\\['alpha'\\] must be a number"),
    (1, "p", lambda p: {**p, "alpha": True}, "p\\['alpha'\\] must be a number"),
    (1, "p", lambda p: {**p, "tau_mem_inv": -1.0}, "tau_mem_inv must be positive"),
    (1, "p", lambda p: {**p, "surrogate": 5}, "p\\['surrogate'\\] must be a string"),
    (1, "p", lambda p: {**p, "surrogate": "bogus"}, "surrogate"),
    (1, "p", lambda p: {**p, "reset": "bogus"}, "reset must be one of"),
    (1, "p", lambda p: {**p, "smooth": 1}, "p\\['smooth'\\] must be a bool"),
    (1, "p", lambda p: {**p, "size": 4}, "p has unexpected fields \\['size'\\]"),
    (1, "p", lambda p: {**p, "bogus": 4}, "p has unexpected fields \\['bogus'\\]"),
    (1, "autapses", 1, "autapses must be a bool"),
    (1, "sparse_tol", "0.1", "sparse_tol must be a number"),
    (1, "sparse_tol", -1.0, "sparse_tol must be a finite float >= 0"),
    (1, "sparse_tol", 0.1, "sparse_tol cannot be combined with learn"),
    (3, "p", lambda p: {**p, "v_th": 1.0}, "p has unexpected fields \\['v_th'\\]"),
    (3, "autapses", True, "unexpected fields \\['autapses'\\]"),
    (3, "learn", ["v_th"], "unknown parameters \\['v_th'\\]"),
    (2, "n_out", 3, "outputs 3 features but layer 3"),
    (2, "dtype", "float64", "all layers must share one dtype"),
]


@pytest.mark.parametrize(
    ("index", "field", "value", "message"),
    _BAD_LAYER_EDITS,
    ids=[f"{k}-{f}-{i}" for i, (k, f, _, _) in enumerate(_BAD_LAYER_EDITS)],
)
def test_from_config_refuses_bad_layer_configs_naming_the_field(index, field, value, message):
    cfg = _layer_cfgs()
    layer = cfg[index]
    layer[field] = value(copy.deepcopy(layer[field])) if callable(value) else value
    with pytest.raises(ValueError, match=message):
        Sequential.from_config(cfg)
    if "features" not in message and "share one dtype" not in message:
        with pytest.raises(ValueError, match=f"^layer {index}: "):
            Sequential.from_config(cfg)
        with pytest.raises(ValueError, match=message):
            layer_from_config(layer)


@pytest.mark.parametrize("field", ["type", "n_in", "n_out"])
def test_from_config_refuses_missing_fields(field):
    cfg = _layer_cfgs()
    del cfg[0][field]
    with pytest.raises(ValueError, match="layer 0: .*missing|unknown layer type None"):
        Sequential.from_config(cfg)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (5, "must be a list of layer configurations, got int"),
        ({"type": "Linear"}, "must be a list of layer configurations, got dict"),
        ("Linear", "must be a list of layer configurations, got str"),
        ([], "empty"),
        ([5], "layer 0: a layer configuration must be a dict, got int"),
        ([None], "layer 0: a layer configuration must be a dict"),
    ],
)
def test_from_config_refuses_configs_that_are_not_lists_of_layers(config, message):
    with pytest.raises(ValueError, match=message):
        Sequential.from_config(config)
    with pytest.raises(ValueError, match=message):
        _config_parameter_shapes(config)
