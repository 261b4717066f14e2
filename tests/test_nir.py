"""NIR export and import: round trips, NIR's own checks, an independent NIR integrator, and
errors that name the layer, node or file."""

import h5py
import numpy as np
import pytest
from reference_nir_numpy import run_nir_graph

import numbaspike as ns
from numbaspike import layers as L
from numbaspike import neuron_layers as NL
from numbaspike import nir as NN
from numbaspike.models import LIFBoxParameters, LSNNParameters
from numbaspike.network import Sequential

nir = pytest.importorskip("nir")  # the test extra installs it; CI runs these

DT = 1e-3


def _net(rng, dtype, recurrent: bool, box: bool = False, bias: bool = True) -> Sequential:
    n_in, n, n_out = 6, 9, 3
    if box:
        p = LIFBoxParameters(
            tau_mem_inv=rng.uniform(50, 150, n), v_th=rng.uniform(0.6, 1.2, n), v_reset=-0.1
        )
        hidden = NL.LIFBoxRecurrent if recurrent else NL.LIFBox
    else:
        p = ns.LIFParameters(
            tau_mem_inv=rng.uniform(50, 150, n), tau_syn_inv=rng.uniform(100, 300, n),
            v_leak=rng.uniform(-0.1, 0.1, n), v_th=rng.uniform(0.6, 1.2, n), v_reset=-0.2,
            surrogate="sigmoid", alpha=25.0, detach_reset=True,
        )  # fmt: skip
        hidden = L.LIFRecurrent if recurrent else L.LIF
    kwargs = {"seed": 1, "autapses": False} if recurrent else {}
    readout = ns.LIParameters(tau_mem_inv=rng.uniform(80, 120, n_out), v_leak=0.05)
    net = Sequential(
        L.Linear(n_in, n, seed=0, scale=3.0, dtype=dtype),
        hidden(n, p, dt=DT, learn=("v_th",), dtype=dtype, **kwargs),
        L.Linear(n, n_out, bias=bias, seed=2, dtype=dtype),
        L.LI(n_out, readout, dt=DT, dtype=dtype),
    )
    net.parameters()["1.v_th"][...] += rng.normal(0, 0.05, n)  # as if trained
    return net


def _inputs(rng, dtype, n_steps=100, batch=4, n_in=6):
    return ((rng.random((n_steps, batch, n_in)) < 0.3) * 1.0).astype(dtype)


def _outputs(net: Sequential, x: np.ndarray) -> list[np.ndarray]:
    """Every layer's output."""
    outs = []
    for layer in net.layers:
        x = layer(x)
        outs.append(np.asarray(x))
    return outs


CASES = [
    (np.float32, False, False),
    (np.float32, True, False),
    (np.float64, False, False),
    (np.float64, True, False),
    (np.float64, True, True),
    (np.float32, False, True),
]
IDS = [f"{np.dtype(d).name}-{'rec' if r else 'ff'}-{'box' if b else 'lif'}" for d, r, b in CASES]


@pytest.mark.parametrize(("dtype", "recurrent", "box"), CASES, ids=IDS)
def test_round_trip_through_a_file_keeps_parameters_metadata_and_spikes(
    tmp_path, rng, dtype, recurrent, box
):
    net = _net(rng, dtype, recurrent, box)
    path = NN.save(net, tmp_path / "net.nir")
    back = NN.load(path)
    assert back.config() == net.config() or _same_but_learned_values(back, net)
    assert back.parameters().keys() == net.parameters().keys()
    for name, value in net.parameters().items():
        got = back.parameters()[name]
        assert got.dtype == value.dtype
        np.testing.assert_array_equal(got, value, err_msg=name)
    p, q = net.layers[1].current_parameters(), back.layers[1].current_parameters()
    for field in ("surrogate", "alpha", "reset", "detach_reset", "smooth", "v_reset"):
        assert getattr(q, field) == getattr(p, field), field
    x = _inputs(rng, dtype)
    for a, b in zip(_outputs(net, x), _outputs(back, x), strict=True):
        np.testing.assert_array_equal(a, b)


def _same_but_learned_values(a: Sequential, b: Sequential) -> bool:
    """Configurations equal up to the learned parameters' values in ``p`` (a file holds
    the current values, which become the imported layer's ``p``)."""
    ca, cb = a.config(), b.config()
    for la, lb in zip(ca, cb, strict=True):
        for name in la.get("learn", []):
            la["p"].pop(name), lb["p"].pop(name)
    return ca == cb


def test_a_fresh_network_round_trips_to_the_same_configuration(rng):
    net = Sequential(
        L.Linear(4, 5, seed=0), L.LIFRecurrent(5, seed=1), L.Linear(5, 2, seed=2), L.LI(2)
    )
    assert NN.from_nir(NN.to_nir(net)).config() == net.config()


@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("box", [False, True], ids=["lif", "box"])
def test_exported_graph_means_the_same_to_an_independent_nir_integrator(
    tmp_path, rng, recurrent, box
):
    """Files written here pass nir.read and NIR's type inference, and NIR's node equations,
    integrated by tests/reference_nir_numpy.py, give numbaspike's spikes and membranes."""
    net = _net(rng, np.float64, recurrent, box)
    path = NN.save(net, tmp_path / "net.nir")
    graph = nir.read(path)
    graph.infer_types()
    x = _inputs(rng, np.float64)
    theirs = run_nir_graph(graph, x, DT)
    ours = _outputs(net, x)
    assert ours[1].sum() > 20  # the hidden layer spikes
    np.testing.assert_array_equal(theirs["1"], ours[1])
    np.testing.assert_allclose(theirs["output"], ours[3], rtol=1e-12, atol=1e-12)


def test_foreign_graph_without_metadata_with_gains_and_a_nested_recurrent_layer(rng):
    """A graph as another tool writes it: no numbaspike metadata, r and w_in that are not
    numbaspike's (folded into the incoming weights), the recurrent layer as a nested graph
    (as snnTorch exports RSynaptic)."""
    n_in, n, n_out = 5, 7, 2
    w_in = rng.normal(0, 1.5, (n, n_in))
    w_rec = rng.normal(0, 0.4, (n, n))
    tau_syn = rng.uniform(3e-3, 8e-3, n)
    lif = nir.CubaLIF(
        tau_syn=tau_syn, tau_mem=rng.uniform(8e-3, 2e-2, n), r=rng.uniform(0.5, 2.0, n),
        v_leak=np.zeros(n), v_threshold=rng.uniform(0.3, 0.6, n), v_reset=np.full(n, 0.0),
        w_in=rng.uniform(1e-3, 5e-3, n),
    )  # fmt: skip
    rec = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([n])}),
            "lif": lif,
            "w_rec": nir.Linear(weight=w_rec),
            "output": nir.Output(output_type={"output": np.array([n])}),
        },
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
    )
    readout = nir.CubaLI(
        tau_syn=np.full(n_out, 5e-3), tau_mem=np.full(n_out, 1e-2), r=np.full(n_out, 2.0),
        v_leak=np.zeros(n_out), w_in=np.full(n_out, 1e-3),
    )  # fmt: skip
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([n_in])}),
            "fc1": nir.Affine(weight=w_in, bias=rng.normal(0, 0.1, n)),
            "rec": rec,
            "fc2": nir.Linear(weight=rng.normal(0, 1.0, (n_out, n))),
            "li": readout,
            "output": nir.Output(output_type={"output": np.array([n_out])}),
        },
        edges=[
            ("input", "fc1"), ("fc1", "rec"), ("rec", "fc2"), ("fc2", "li"), ("li", "output")
        ],
    )  # fmt: skip
    net = NN.from_nir(graph, dt=DT, dtype="float64")
    assert [type(layer).__name__ for layer in net.layers] == [
        "Linear", "LIFRecurrent", "Linear", "LI"
    ]  # fmt: skip
    flat = nir.NIRGraph(
        nodes={k: v for k, v in graph.nodes.items() if k != "rec"}
        | {"lif": lif, "w_rec": nir.Linear(weight=w_rec)},
        edges=[
            ("input", "fc1"), ("fc1", "lif"), ("lif", "w_rec"), ("w_rec", "lif"),
            ("lif", "fc2"), ("fc2", "li"), ("li", "output"),
        ],
    )  # fmt: skip
    x = _inputs(rng, np.float64, n_in=n_in)
    theirs = run_nir_graph(flat, x, DT)
    ours = _outputs(net, x)
    assert ours[1].sum() > 20
    np.testing.assert_array_equal(theirs["lif"], ours[1])
    np.testing.assert_allclose(theirs["output"], ours[3], rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------
# What one side cannot say
# ---------------------------------------------------------------------------------------


def test_export_refuses_what_nir_cannot_hold():
    sub = Sequential(L.Linear(3, 4), L.LIF(4, ns.LIFParameters(reset="subtract")))
    with pytest.raises(NN.NIRError, match=r"layer 1 \(LIF\).*reset='subtract'"):
        NN.to_nir(sub)
    lsnn = Sequential(L.Linear(3, 4), NL.LSNNRecurrent(4, LSNNParameters(), seed=0))
    with pytest.raises(NN.NIRError, match="layer 1 .*NIR has no node for the lsnn model"):
        NN.to_nir(lsnn)
    refrac = Sequential(L.Linear(3, 4), NL.LIFRefrac(4))
    with pytest.raises(NN.NIRError, match="no node for the lif_refrac model"):
        NN.to_nir(refrac)
    mixed = Sequential(L.Linear(3, 4), L.LIF(4, dt=1e-3), L.Linear(4, 2), L.LI(2, dt=2e-3))
    with pytest.raises(NN.NIRError, match="different time steps"):
        NN.to_nir(mixed)


def _graph(nodes: dict, edges: list):
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _cuba(n, **changes):
    values = dict(
        tau_syn=np.full(n, 5e-3), tau_mem=np.full(n, 1e-2), r=np.ones(n), v_leak=np.zeros(n),
        v_threshold=np.ones(n), v_reset=np.zeros(n), w_in=np.full(n, 5e-3),
    )  # fmt: skip
    values.update(changes)
    return nir.CubaLIF(**values)


def _io(n_in, n_out):
    return {
        "input": nir.Input(input_type={"input": np.array([n_in])}),
        "output": nir.Output(output_type={"output": np.array([n_out])}),
    }


def test_import_refuses_what_numbaspike_cannot_say():
    w = nir.Linear(weight=np.ones((3, 2)))
    chain = [("input", "w"), ("w", "lif"), ("lif", "output")]
    differ = _cuba(3, v_reset=np.array([0.0, 0.1, 0.0]))
    with pytest.raises(NN.NIRError, match="node 'lif': per-neuron v_reset values differ"):
        NN.from_nir(_graph({**_io(2, 3), "w": w, "lif": differ}, chain), dt=DT)
    li = nir.LI(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3))
    with pytest.raises(NN.NIRError, match="node 'lif' \\(LI\\).*synaptic current"):
        NN.from_nir(_graph({**_io(2, 3), "w": w, "lif": li}, chain), dt=DT)
    skip = [("input", "w"), ("w", "lif"), ("lif", "output"), ("input", "lif")]
    with pytest.raises(NN.NIRError, match="not a chain"):
        NN.from_nir(_graph({**_io(2, 3), "w": w, "lif": _cuba(3)}, skip), dt=DT)
    for node in (
        nir.Flatten(input_type={"input": np.array([2])}, start_dim=0, end_dim=-1),
        nir.Delay(delay=np.ones(2)),
        nir.Threshold(threshold=np.ones(2)),
        nir.Scale(scale=np.ones(2)),
        nir.IF(r=np.ones(2), v_threshold=np.ones(2), v_reset=np.zeros(2)),
        nir.I(r=np.ones(2)),
    ):
        graph = _graph({**_io(2, 2), "x": node}, [("input", "x"), ("x", "output")])
        with pytest.raises(NN.NIRError, match=f"node 'x' \\({type(node).__name__}\\).*no layer"):
            NN.from_nir(graph, dt=DT)
    with pytest.raises(NN.NIRError, match="node 'lif'.*no dt"):
        NN.from_nir(_graph({**_io(2, 3), "w": w, "lif": _cuba(3)}, chain))
    bad = _graph({**_io(2, 3), "w": nir.Linear(weight=np.ones((4, 2))), "lif": _cuba(3)}, chain)
    with pytest.raises(NN.NIRError, match="node 'lif' \\(CubaLIF\\) takes 3 inputs.*gives 4"):
        NN.from_nir(bad, dt=DT)
    negative = _cuba(3, tau_mem=np.full(3, -1e-2))
    with pytest.raises(NN.NIRError, match="node 'lif': tau_mem must be > 0"):
        NN.from_nir(_graph({**_io(2, 3), "w": w, "lif": negative}, chain), dt=DT)
    gain_first = _graph({**_io(3, 3), "lif": _cuba(3, r=np.full(3, 2.0))},
                        [("input", "lif"), ("lif", "output")])  # fmt: skip
    with pytest.raises(NN.NIRError, match="no weight precedes it"):
        NN.from_nir(gain_first, dt=DT)


def test_bad_files_are_errors_naming_the_file_and_node(tmp_path, rng):
    text = tmp_path / "notes.nir"
    text.write_text("not hdf5")
    with pytest.raises(NN.NIRError, match="notes.nir: not an HDF5 file"):
        NN.load(text)
    other = tmp_path / "other.nir"
    with h5py.File(other, "w") as f:
        f.create_dataset("data", data=np.arange(3))
    with pytest.raises(NN.NIRError, match="other.nir: an HDF5 file but not a NIR graph"):
        NN.load(other)
    with pytest.raises(FileNotFoundError, match="missing.nir"):
        NN.load(tmp_path / "missing.nir")
    path = NN.save(_net(rng, np.float32, True), tmp_path / "net.nir")
    with h5py.File(path, "a") as f:
        del f["node/nodes/1/tau_mem"]
    with pytest.raises(NN.NIRError, match=r"net.nir: node '1' \(CubaLIF\) misses .*tau_mem"):
        NN.load(path)
    path = NN.save(_net(rng, np.float32, False), tmp_path / "shapes.nir")
    with h5py.File(path, "a") as f:
        del f["node/nodes/2/weight"]
        f["node/nodes/2/weight"] = np.ones((3, 5))
    with pytest.raises(NN.NIRError, match=r"shapes.nir: .*type mismatch: 1.output: .* 2.input"):
        NN.load(path)
    scale = tmp_path / "scale.nir"
    nir.write(scale, _graph({**_io(4, 4), "s": nir.Scale(scale=np.ones(4))},
                            [("input", "s"), ("s", "output")]))  # fmt: skip
    with pytest.raises(NN.NIRError, match=r"scale.nir: node 's' \(Scale\).*no layer"):
        NN.load(scale, dt=DT)


def test_without_the_nir_package_the_error_names_the_extra(monkeypatch):
    import importlib

    real = importlib.import_module

    def no_nir(name, *args):
        if name == "nir":
            raise ImportError("No module named 'nir'")
        return real(name, *args)

    monkeypatch.setattr(NN.importlib, "import_module", no_nir)
    with pytest.raises(ImportError, match=r"numbaspike\[nir\]"):
        NN.to_nir(Sequential(L.Linear(2, 2)))
