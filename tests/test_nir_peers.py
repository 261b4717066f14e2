"""NIR exchange with other simulators: the directions that give numbaspike's spikes.

Each test needs its peer (``pytest.importorskip``) and is skipped without it; the versions
checked are snntorch 1.0.0 with nirtorch 2.6, and norse 1.1.0, all with nir 1.0.8. snnTorch
runs in float32 (its spikes are float32 whatever the model's dtype), Norse and numbaspike in
float64.

Two conventions differ from numbaspike's reading of NIR (docs in numbaspike/nir.py), and the
tests pin them rather than hide them:

* snnTorch (``snntorch/export_nir.py``, ``import_nir.py``) fixes ``dt = 1e-4`` and reads the
  per-step input as a current held over the step (``syn = alpha*syn + x``, written as
  ``w_in = tau_syn/dt``, ``r = tau_mem/dt``); numbaspike reads it as an impulse (the state
  jumps by ``w_in/tau_syn * x``). The same file therefore means input weights ``1/dt``
  times larger to numbaspike than to snnTorch, in both directions.
* Norse 1.1.0's ``to_nir`` (``norse/torch/utils/export_nir.py``) writes ``tau = dt /
  tau_mem_inv`` instead of ``1 / tau_mem_inv``, and its ``from_nir`` ignores ``r`` and
  builds a ``LIFBoxCell`` with ``tau_mem_inv = 1/tau``, the step numbaspike's ``LIFBox``
  takes: numbaspike's ``LIFBox`` networks import into Norse unchanged.
"""

import io
import logging
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest

DT_SNN = 1e-4  # snntorch.export_nir / import_nir: dt = 1e-4, fixed
T, B, N_IN, N_HID, N_OUT = 100, 4, 6, 9, 3


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((T, B, N_IN)) < 0.3) * 1.0


def _numbaspike_run(net, x):
    outs = []
    for layer in net.layers:
        x = layer(x)
        outs.append(np.asarray(x))
    return outs


def _scale_weights(net, factor):
    """Multiply every weight feeding a neuron layer (Linear and recurrent) by ``factor``."""
    from numbaspike.layers import Linear

    for layer in net.layers:
        if isinstance(layer, Linear):
            layer.parameters()["weight"][...] *= factor
        elif getattr(layer, "recurrent", False):
            layer.parameters()["w_rec"][...] *= factor


def _torch_run(model, x, neuron_types, stateful_call, dtype="float64"):
    """Step ``model`` through ``x``; the outputs of its first and last neuron modules."""
    import torch

    neurons = [m for m in model.modules() if isinstance(m, neuron_types)]
    record = {id(m): [] for m in neurons}
    hooks = [
        m.register_forward_hook(
            lambda mod, i, o: record[id(mod)].append((o[0] if isinstance(o, tuple) else o).clone())
        )
        for m in neurons
    ]
    state = None
    with torch.no_grad():
        for t in range(x.shape[0]):
            xt = torch.as_tensor(x[t], dtype=getattr(torch, dtype))
            if stateful_call:
                _, state = model(xt) if state is None else model(xt, state)
            else:
                model(xt)
    for h in hooks:
        h.remove()
    return [torch.stack(record[id(m)]).numpy() for m in (neurons[0], neurons[-1])]


# ---------------------------------------------------------------------------------------
# snnTorch
# ---------------------------------------------------------------------------------------


def _snntorch_net(kind):
    import snntorch as snn
    import torch

    torch.manual_seed(0)
    full = lambda value, n: torch.full((n,), value)  # noqa: E731
    kw = {"init_hidden": True, "reset_mechanism": "zero", "reset_delay": False}
    if kind == "synaptic":
        hidden = snn.Synaptic(
            alpha=full(0.7, N_HID), beta=full(0.9, N_HID), threshold=full(1.0, N_HID), **kw
        )
        out = snn.Synaptic(
            alpha=full(0.6, N_OUT), beta=full(0.8, N_OUT), threshold=full(1.0, N_OUT), **kw
        )
    else:
        if kind == "rleaky":
            hidden = snn.RLeaky(
                beta=full(0.9, N_HID), threshold=full(1.0, N_HID), linear_features=N_HID, **kw
            )
            hidden.recurrent.bias = None  # exported as nir.Linear, not nir.Affine
        else:
            hidden = snn.Leaky(beta=full(0.9, N_HID), threshold=full(1.0, N_HID), **kw)
        out = snn.Leaky(beta=full(0.8, N_OUT), threshold=full(1.0, N_OUT), **kw)
    fc1 = torch.nn.Linear(N_IN, N_HID, bias=False)
    fc2 = torch.nn.Linear(N_HID, N_OUT, bias=False)
    with torch.no_grad():
        fc1.weight.mul_(3.0)
        fc2.weight.mul_(3.0)
        if kind == "rleaky":
            hidden.recurrent.weight.mul_(2.0)
    return torch.nn.Sequential(fc1, hidden, fc2, out)


@pytest.mark.parametrize("kind", ["synaptic", "leaky", "rleaky"])
def test_snntorch_export_reads_as_the_same_network_with_inputs_scaled_by_dt(tmp_path, kind):
    """snnTorch -> NIR -> numbaspike. snnTorch (reset_delay=False, zero reset) steps
    ``syn = alpha*syn + W x; mem = beta*mem + syn; spike if mem > thr; mem = 0`` and writes
    ``tau_syn = dt/(1-alpha)``, ``tau_mem = dt/(1-beta)``, ``w_in = tau_syn/dt``,
    ``r = tau_mem/dt`` (CubaLIF; LIF: ``tau``, ``r = tau/dt``). numbaspike imports the gain
    ``r*w_in/tau_syn = 1/((1-beta) dt)`` (LIF: ``r/dt = 1/((1-beta) dt)``) into the weights;
    its step ``v = beta*v + (1-beta)*i`` then gives snnTorch's membrane with every weight
    (input and recurrent) ``1/dt`` times larger: the impulse reading. Scaled back by ``dt``,
    the spikes are snnTorch's exactly."""
    pytest.importorskip("snntorch")
    nir = pytest.importorskip("nir")
    import snntorch as snn
    import torch
    from snntorch.export_nir import export_to_nir

    from numbaspike import nir as NN

    net = _snntorch_net(kind)
    x = _inputs()
    hidden, out = _torch_run(net, x, snn.SpikingNeuron, stateful_call=False, dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = export_to_nir(net, torch.zeros(N_IN))  # shape (1, N_IN) fails NIR's types
    nir.write(tmp_path / "snn.nir", graph)
    back = NN.from_nir(nir.read(tmp_path / "snn.nir"), dt=DT_SNN, dtype="float64")
    assert back.layers[1].recurrent == (kind == "rleaky")
    as_read = _numbaspike_run(back, x)
    assert np.sum(as_read[1]) > np.sum(hidden)  # inputs 1/dt times larger: more spikes
    _scale_weights(back, DT_SNN)
    outs = _numbaspike_run(back, x)
    assert 0 < hidden.sum() < hidden.size and out.sum() > 0
    np.testing.assert_array_equal(outs[1], hidden)
    np.testing.assert_array_equal(outs[3], out)


def test_numbaspike_lifbox_reads_in_snntorch_as_the_network_with_inputs_scaled_by_dt(tmp_path):
    """numbaspike -> NIR -> snnTorch, for LIFBox layers (nir.LIF, r = dt; snnTorch refuses
    numbaspike's CubaLIF: its import asserts ``r == tau_mem/1e-4``, and has no CubaLI).
    snnTorch's import takes ``beta = 1 - 1e-4/tau`` and divides the threshold by
    ``r*1e-4/tau`` (the input read as a current held over the step); numbaspike moves the
    membrane by ``r/tau`` per input. With numbaspike's ``dt = 1e-4`` the decays agree and
    snnTorch's network is numbaspike's with every weight times ``dt``."""
    pytest.importorskip("snntorch")
    nir = pytest.importorskip("nir")
    import snntorch as snn
    from snntorch.import_nir import import_from_nir

    from numbaspike import layers as L
    from numbaspike import neuron_layers as NL
    from numbaspike import nir as NN
    from numbaspike.models import LIFBoxParameters
    from numbaspike.network import Sequential

    def net():
        return Sequential(
            L.Linear(N_IN, N_HID, seed=0, scale=1e5, dtype="float64"),
            NL.LIFBox(
                N_HID,
                LIFBoxParameters(tau_mem_inv=1000.0, v_th=1.0, v_reset=0.0),
                dt=DT_SNN,
                dtype="float64",
            ),
            L.Linear(N_HID, N_OUT, seed=2, scale=3e5, dtype="float64"),
            NL.LIFBox(
                N_OUT,
                LIFBoxParameters(tau_mem_inv=2000.0, v_th=1.0, v_reset=0.0),
                dt=DT_SNN,
                dtype="float64",
            ),
        )

    x = _inputs()
    path = NN.save(net(), tmp_path / "ns.nir")
    with redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = import_from_nir(nir.read(path))
    hidden, out = _torch_run(peer, x, snn.SpikingNeuron, stateful_call=True, dtype="float32")
    expected = net()
    _scale_weights(expected, DT_SNN)
    outs = _numbaspike_run(expected, x)
    assert 0 < hidden.sum() < hidden.size and out.sum() > 0
    np.testing.assert_array_equal(hidden, outs[1])
    np.testing.assert_array_equal(out, outs[3])


# ---------------------------------------------------------------------------------------
# Norse
# ---------------------------------------------------------------------------------------

DT_NORSE = 1e-3


@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_numbaspike_lifbox_network_imports_into_norse_unchanged(tmp_path, recurrent):
    """numbaspike -> NIR -> Norse: Norse's ``from_nir`` makes nir.LIF a ``LIFBoxCell``
    (``tau_mem_inv = 1/tau``, ``r`` ignored), whose step ``v += dt*tau_mem_inv*(x + v_leak -
    v)``, spike if ``v > v_th``, ``v = v_reset`` (``norse/torch/functional/lif_box.py``) is
    numbaspike's LIFBox; nirtorch runs the self-loop with one step of delay. Identical
    spikes. (numbaspike's CubaLIF reads in Norse with the input times ``dt``, and Norse has
    no node for nir.CubaLI: it drops the readout.)"""
    pytest.importorskip("norse")
    nir = pytest.importorskip("nir")
    import norse.torch as nt

    from numbaspike import layers as L
    from numbaspike import neuron_layers as NL
    from numbaspike import nir as NN
    from numbaspike.models import LIFBoxParameters
    from numbaspike.network import Sequential

    hidden_cls = NL.LIFBoxRecurrent if recurrent else NL.LIFBox
    kwargs = {"seed": 1} if recurrent else {}
    net = Sequential(
        L.Linear(N_IN, N_HID, seed=0, scale=30.0, dtype="float64"),
        hidden_cls(
            N_HID,
            LIFBoxParameters(tau_mem_inv=100.0, v_th=1.0, v_reset=0.0),
            dt=DT_NORSE,
            dtype="float64",
            **kwargs,
        ),
        L.Linear(N_HID, N_OUT, seed=2, scale=10.0, dtype="float64"),
        NL.LIFBox(
            N_OUT,
            LIFBoxParameters(tau_mem_inv=100.0, v_th=1.0, v_reset=0.0),
            dt=DT_NORSE,
            dtype="float64",
        ),
    )
    path = NN.save(net, tmp_path / "ns.nir")
    logging.disable(logging.WARNING)  # Norse warns that r != 1
    try:
        peer = nt.from_nir(nir.read(path), dt=DT_NORSE).double()
    finally:
        logging.disable(logging.NOTSET)
    x = _inputs()
    hidden, out = _torch_run(peer, x, nt.LIFBoxCell, stateful_call=True)
    outs = _numbaspike_run(net, x)
    assert 0 < hidden.sum() < hidden.size and out.sum() > 0
    np.testing.assert_array_equal(hidden, outs[1])
    np.testing.assert_array_equal(out, outs[3])


def test_norse_lifbox_export_reads_with_its_tau_written_as_dt_over_tau_mem_inv(tmp_path):
    """Norse -> NIR -> numbaspike. Norse 1.1.0 writes ``tau = dt/tau_mem_inv`` and ``r = 1``
    (``export_nir.py``): at Norse's ``dt`` numbaspike refuses the file (``dt/tau`` > 1, an
    unstable Euler step). Read with ``dt = dt_norse**2`` the decay ``dt/tau`` is Norse's
    ``dt*tau_mem_inv``, and the folded gain ``r/dt`` makes the weights ``1/dt_norse**2``
    times larger; scaled back, the spikes are Norse's."""
    pytest.importorskip("norse")
    nir = pytest.importorskip("nir")
    import norse.torch as nt
    import torch

    from numbaspike import nir as NN

    torch.manual_seed(0)

    def cell(n):
        return nt.LIFBoxCell(
            nt.LIFBoxParameters(
                tau_mem_inv=torch.full((n,), 100.0, dtype=torch.float64),
                v_th=torch.ones(n, dtype=torch.float64),
                v_leak=torch.zeros(n, dtype=torch.float64),
                v_reset=torch.zeros(n, dtype=torch.float64),
            ),
            dt=DT_NORSE,
        )

    fc1 = torch.nn.Linear(N_IN, N_HID, bias=False, dtype=torch.float64)
    fc2 = torch.nn.Linear(N_HID, N_OUT, bias=False, dtype=torch.float64)
    with torch.no_grad():
        fc1.weight.mul_(30.0)
        fc2.weight.mul_(10.0)
    model = nt.SequentialState(fc1, cell(N_HID), fc2, cell(N_OUT))
    x = _inputs()
    hidden, out = _torch_run(model, x, nt.LIFBoxCell, stateful_call=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = nt.to_nir(model, torch.zeros(N_IN, dtype=torch.float64), dt=DT_NORSE)
    nir.write(tmp_path / "norse.nir", graph)
    with pytest.raises(NN.NIRError, match="stable Euler step"):
        NN.from_nir(nir.read(tmp_path / "norse.nir"), dt=DT_NORSE)
    back = NN.from_nir(nir.read(tmp_path / "norse.nir"), dt=DT_NORSE**2, dtype="float64")
    _scale_weights(back, DT_NORSE**2)
    outs = _numbaspike_run(back, x)
    assert 0 < hidden.sum() < hidden.size and out.sum() > 0
    np.testing.assert_array_equal(outs[1], hidden)
    np.testing.assert_array_equal(outs[3], out)
