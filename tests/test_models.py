"""Conformance suite of the neuron models: every registered model, one set of checks.

A model enrols by being registered (:mod:`numbaspike.models`) and having a case below: its
PyTorch reference (:mod:`numbaspike.torch_reference`) and a draw of random parameters. LIF
and LI run here on their tuned kernels (what the functional API and the layers use);
``test_model_lif.py`` checks those against the generic driver. The readout (LI) has no
spikes, so no recurrent form and no forward-only simulation.
Each model is checked against its reference (float64, spikes exact, every gradient to 1e-9),
against central finite differences in smooth mode, for thread-count-independent bits,
float32 against float64, its forward-only simulation, its layers and checkpoints, and bad
input. Model-specific cases (hand-worked steps, Norse's order) are in ``test_model_*.py``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import numbaspike as ns  # noqa: E402
from numbaspike import models  # noqa: E402
from numbaspike.neuron import neuron_backward, neuron_forward, neuron_simulate  # noqa: E402
from numbaspike.params import LIFParameters  # noqa: E402
from numbaspike.torch_reference import (  # noqa: E402
    li_forward_torch,
    lif_box_forward_torch,
    lif_forward_torch,
    lif_refrac_forward_torch,
    lsnn_forward_torch,
)

DT = 1e-3
T, B, N = 24, 3, 6


@dataclass
class Case:
    """A model's reference and parameter draw."""

    reference: Callable
    draw: Callable  # (rng, n, **modes) -> (p, reference parameters as float64 arrays)
    gain: float  # input scale that makes a fair share of neurons spike


def _spiking(rng, n):
    return {
        "tau_mem_inv": rng.uniform(70.0, 150.0, n),
        "v_leak": rng.uniform(-0.1, 0.1, n),
        "v_th": rng.uniform(0.8, 1.2, n),
    }


def _draw_lif(rng, n, **modes):
    values = {**_spiking(rng, n), "tau_syn_inv": rng.uniform(150.0, 300.0, n)}
    return LIFParameters(**values, v_reset=-0.2, **modes), {**values, "v_reset": -0.2}


def _draw_li(rng, n, **modes):
    values = {
        "tau_mem_inv": rng.uniform(70.0, 150.0, n),
        "tau_syn_inv": rng.uniform(150.0, 300.0, n),
        "v_leak": rng.uniform(-0.1, 0.1, n),
    }
    return ns.LIParameters(**values), values


def _lif_reference(x, p, dt, w_rec, state, surrogate, alpha, reset, detach_reset, smooth):
    return lif_forward_torch(
        x, p["tau_mem_inv"], p["tau_syn_inv"], p["v_leak"], p["v_th"], p["v_reset"], dt,
        surrogate, alpha, reset, detach_reset, smooth, w_rec,
    )  # fmt: skip


def _li_reference(x, p, dt, w_rec, state, **modes):
    assert w_rec is None
    return li_forward_torch(x, p["tau_mem_inv"], p["tau_syn_inv"], p["v_leak"], dt)


def _draw_lif_box(rng, n, **modes):
    values = _spiking(rng, n)
    return models.LIFBoxParameters(**values, v_reset=-0.2, **modes), {**values, "v_reset": -0.2}


def _draw_lsnn(rng, n, **modes):
    values = {
        **_spiking(rng, n),
        "tau_syn_inv": rng.uniform(150.0, 300.0, n),
        "tau_adapt_inv": rng.uniform(5.0, 50.0, n),
        "beta": rng.uniform(0.3, 2.0, n),
    }
    return models.LSNNParameters(**values, v_reset=-0.2, **modes), {**values, "v_reset": -0.2}


def _draw_lif_refrac(rng, n, **modes):
    values = {**_spiking(rng, n), "tau_syn_inv": rng.uniform(150.0, 300.0, n)}
    rho_reset = rng.choice([0.0, 1.0, 2.0, 3.0], n)
    lif = LIFParameters(**values, v_reset=-0.2, **modes)
    p = models.LIFRefracParameters(lif=lif, rho_reset=rho_reset)
    return p, {**values, "v_reset": -0.2, "rho_reset": rho_reset}


CASES = {
    "lif": Case(_lif_reference, _draw_lif, 3.0),
    "li": Case(_li_reference, _draw_li, 1.0),
    "lif_box": Case(lif_box_forward_torch, _draw_lif_box, 3.0),
    "lsnn": Case(lsnn_forward_torch, _draw_lsnn, 25.0),
    "lif_refrac": Case(lif_refrac_forward_torch, _draw_lif_refrac, 25.0),
}
MODELS = sorted(models.registered_models())
SPIKING = [name for name in MODELS if models.model_named(name).spiking]
#: (model, recurrent): both forms of every spiking model, the readout feed-forward only.
FORMS = [(name, False) for name in MODELS] + [(name, True) for name in SPIKING]


def test_every_registered_model_has_a_case():
    missing = sorted(set(MODELS) - set(CASES))
    assert not missing, f"registered models without a conformance case: {missing}"


def _problem(name, rng, recurrent, dtype=np.float64, **modes):
    case = CASES[name]
    p, ref = case.draw(rng, N, **modes)
    x = (rng.normal(0.6, 1.0, (T, B, N)) * case.gain).astype(dtype)
    w = rng.normal(0.0, 0.8, (N, N)).astype(dtype) if recurrent else None
    return p, ref, x, w


def _reference(name, x, ref, w, **modes):
    xt = torch.tensor(x, requires_grad=True)
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in ref.items() if np.ndim(v) == 1}
    params = {**ref, **leaves}
    if name == "lif_refrac":
        leaves.pop("rho_reset")  # a counter's reset value: no gradient
    wt = None if w is None else torch.tensor(w, requires_grad=True)
    z, _ = CASES[name].reference(xt, params, DT, wt, None, **modes)
    return z, xt, leaves, wt


def _rel(a, b) -> float:
    b = b.detach().numpy() if hasattr(b, "detach") else np.asarray(b)
    return float(np.max(np.abs(np.asarray(a) - b)) / max(np.max(np.abs(b)), 1e-300))


#: (reset, detach_reset, smooth): each kernel pair compiled once per model (a mode
#: combination is a compilation of its own, see neuron_driver.cpu_kernels); the
#: finite-difference test below reuses the two smooth ones.
MODE_CASES = [
    ("zero", False, False),
    ("subtract", True, False),
    ("zero", False, True),  # smooth with detach: test_gradcheck_models.py, against a replay
    ("subtract", False, True),
]


#: The readout has no modes: one case of it.
PARITY_CASES = [
    (name, recurrent, *modes)
    for name, recurrent in FORMS
    for modes in (MODE_CASES if name in SPIKING else MODE_CASES[:1])
]


@pytest.mark.parametrize("name, recurrent, reset, detach, smooth", PARITY_CASES)
def test_parity_with_the_pytorch_reference(name, recurrent, reset, detach, smooth):
    # a seed that, unlike hash() of strings, is the same in every process
    rng = np.random.default_rng(
        zlib.crc32(repr((name, recurrent, reset, detach, smooth)).encode())
    )
    modes = {"surrogate": "atan" if smooth else "superspike", "alpha": 5.0 if smooth else 20.0,
             "reset": reset, "detach_reset": detach, "smooth": smooth}  # fmt: skip
    p, ref, x, w = _problem(name, rng, recurrent, **modes)
    z, tape = neuron_forward(x, p, DT, w)
    g_out = rng.normal(size=z.shape)
    grads = neuron_backward(g_out, tape)
    zt, xt, leaves, wt = _reference(name, x, ref, w, **modes)
    if name not in SPIKING:
        assert _rel(z, zt) < 1e-12
    elif not smooth:
        assert 0.02 < z.mean() < 0.75, f"spike rate {z.mean():.3f}: the case tests little"
        np.testing.assert_array_equal(z, zt.detach().numpy())
    else:
        assert _rel(z, zt) < 1e-10  # smooth resets amplify rounding step by step
    (zt * torch.tensor(g_out)).sum().backward()
    errors = {"x": _rel(grads.x, xt.grad)}
    errors.update({k: _rel(grads[k], leaf.grad) for k, leaf in leaves.items() if k != "v_reset"})
    if recurrent:
        errors["w_rec"] = _rel(grads.w_rec, wt.grad)
    assert max(errors.values()) < 1e-9, errors


def _loss(name, p, x, w, g_out, state=None):
    z, _ = neuron_forward(x, p, DT, w, state)
    return float(np.sum(z * g_out))


@pytest.mark.parametrize("name, recurrent", FORMS)
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_smooth_mode_gradients_equal_finite_differences(
    name, recurrent, reset, single_numba_thread
):
    rng = np.random.default_rng(7)
    modes = {"surrogate": "atan", "alpha": 5.0, "reset": reset, "smooth": True}
    p, _, x, w = _problem(name, rng, recurrent, **modes)
    g_out = rng.normal(size=x.shape)
    model = models.model_of(p)
    # an initial state that equals a parameter without taking its gradient (LSNN's b0 = v_th,
    # a constant as in Norse) is pinned, so that the finite differences do not move it
    defaults = model.initial_state(p, N)
    state = {k: v for k, v in defaults.items() if k not in model.initial_state_owner}
    z, tape = neuron_forward(x, p, DT, w, state)
    grads = neuron_backward(g_out, tape)

    def fd(perturb, eps):
        plus, minus = perturb(eps), perturb(-eps)
        return (_loss(name, *plus, g_out, state) - _loss(name, *minus, g_out, state)) / (2 * eps)

    checks = {}
    direction = rng.normal(size=x.shape)
    checks["x"] = (float(np.sum(grads.x * direction)),
                   fd(lambda e: (p, x + e * direction, w), 1e-6))  # fmt: skip
    if recurrent:
        dw = rng.normal(size=w.shape)
        checks["w_rec"] = (float(np.sum(grads.w_rec * dw)), fd(lambda e: (p, x, w + e * dw), 1e-6))
    for pname in model.learnable:
        value = np.asarray(getattr(p, pname), np.float64)
        step = 1e-6 * max(1.0, float(np.max(np.abs(value))))
        d = rng.normal(size=value.shape)
        checks[pname] = (
            float(np.sum(np.asarray(grads[pname]) * d)),
            fd(
                lambda e, pname=pname, value=value, d=d: (
                    p.replace(**{pname: value + e * d}),
                    x,
                    w,
                ),
                step,
            ),
        )
    for key, (analytic, numeric) in checks.items():
        scale = max(abs(analytic), abs(numeric), 1e-8)
        assert abs(analytic - numeric) / scale < 1e-6, (key, analytic, numeric)


@pytest.mark.parametrize("name, recurrent", FORMS)
def test_bits_do_not_depend_on_the_thread_count(name, recurrent):
    p, _, x, w = _problem(name, np.random.default_rng(3), recurrent, dtype=np.float32)
    g_out = np.random.default_rng(4).normal(size=x.shape).astype(np.float32)
    results = []
    previous = ns.get_num_threads()
    try:
        for threads in (1, 2):
            ns.set_num_threads(threads)
            z, tape = neuron_forward(x, p, DT, w)
            grads = neuron_backward(g_out, tape)
            results.append((z.copy(), {k: np.array(v) for k, v in grads.items()}))
    finally:
        ns.set_num_threads(previous)
    np.testing.assert_array_equal(results[0][0], results[1][0])
    for key in results[0][1]:
        np.testing.assert_array_equal(results[0][1][key], results[1][1][key], err_msg=key)


@pytest.mark.parametrize("name", MODELS)
def test_float32_follows_float64(name):
    recurrent = name in SPIKING
    p, _, x, w = _problem(name, np.random.default_rng(5), recurrent)
    w32 = w.astype(np.float32) if recurrent else None
    z64, _ = neuron_forward(x, p, DT, w)
    z32, _ = neuron_forward(x.astype(np.float32), p, DT, w32)
    assert z32.dtype == np.float32
    if recurrent:
        assert np.mean(z32 != z64) < 0.02  # a rounding can move a spike by a step, rarely
    else:
        assert _rel(z32, z64) < 1e-5


@pytest.mark.parametrize("name", SPIKING)
@pytest.mark.parametrize("recurrent", [False, True])
def test_simulation_keeps_counts_and_matches_the_forward_pass(name, recurrent):
    p, _, x, w = _problem(name, np.random.default_rng(6), recurrent)
    model = models.model_of(p)
    z, tape = neuron_forward(x, p, DT, w)
    first = model.state[0]
    sim = neuron_simulate(x, p, DT, w, chunk=5, record=("spikes", first))
    np.testing.assert_array_equal(sim.spikes, z)
    np.testing.assert_array_equal(sim.spike_counts, (z > 0).sum(axis=0))
    np.testing.assert_array_equal(sim.traces[first][-1], getattr(tape.final_state, first))
    default = neuron_simulate(x, p, DT, w)
    assert default.spikes is None and default.traces == {}
    np.testing.assert_array_equal(default.spike_counts, sim.spike_counts)
    with pytest.raises(ValueError, match="record must be a subset"):
        neuron_simulate(x, p, DT, w, record=("nope",))


@pytest.mark.parametrize("name, recurrent", FORMS)
def test_layers_train_and_survive_a_checkpoint(name, recurrent, tmp_path):
    from numbaspike.checkpoint import load_checkpoint, save_checkpoint
    from numbaspike.layers import LI, Linear
    from numbaspike.network import Sequential
    from numbaspike.neuron_layers import Neuron
    from numbaspike.optim import Adam

    p, _, _, _ = _problem(name, np.random.default_rng(8), False, dtype=np.float32)
    learned = "v_th" if "v_th" in models.model_of(p).learnable else "v_leak"
    layer = Neuron(N, p, recurrent=recurrent, learn=(learned,), seed=1)
    net = Sequential(Linear(5, N, seed=0, scale=30.0), layer, Linear(N, 2, seed=2), LI(2))
    x = (np.random.default_rng(9).random((T, B, 5)) < 0.3).astype(np.float32)
    y, tape = net.forward(x)
    net.zero_grad()
    net.backward(np.ones_like(y), tape)
    assert np.any(net.gradients()[f"1.{learned}"] != 0)
    save_checkpoint(tmp_path / "c.npz", net, Adam(net.parameters()), epoch=1)
    loaded = load_checkpoint(tmp_path / "c.npz").network
    assert loaded[1].model is layer.model and loaded[1].recurrent == recurrent
    np.testing.assert_array_equal(loaded.forward(x)[0], y)


@pytest.mark.parametrize("name", MODELS)
def test_bad_input_is_named(name):
    recurrent = name in SPIKING
    p, _, x, w = _problem(name, np.random.default_rng(10), recurrent)
    with pytest.raises(ValueError, match="state: unknown variables"):
        neuron_forward(x, p, DT, state={"not_a_state": 0.0})
    if recurrent:
        with pytest.raises(ValueError, match="w_rec must have shape"):
            neuron_forward(x, p, DT, w[:2])
    else:
        with pytest.raises(ValueError, match="w_rec: the LI readout has no recurrent form"):
            neuron_forward(x, p, DT, np.zeros((N, N)))
    with pytest.raises(ValueError, match="x must"):
        neuron_forward(x[0], p, DT)
    with pytest.raises(ValueError, match="x contains NaN"):
        bad = x.copy()
        bad[3, 1, 2] = np.nan
        neuron_forward(bad, p, DT)
    with pytest.raises(ValueError, match=r"dt \* tau"):
        neuron_forward(x, p, 0.5)
    z, tape = neuron_forward(x, p, DT, w)
    with pytest.raises(ValueError, match=r"grad_[yzv] must have (the )?shape"):
        neuron_backward(z[:3], tape)
    with pytest.raises(ValueError, match=r"grad_[yzv] contains NaN"):
        neuron_backward(np.full_like(z, np.nan), tape)
    with pytest.raises(TypeError, match="tape must come from neuron_forward"):
        neuron_backward(z, object())
    if name == "li":
        with pytest.raises(ValueError, match="sparse_tol: the LI readout emits no spikes"):
            neuron_forward(x, p, DT, sparse_tol=0.01)
    elif name != "lif":
        with pytest.raises(ValueError, match="sparse_tol is implemented for the LIF model only"):
            neuron_forward(x, p, DT, sparse_tol=0.01)
    with pytest.raises(TypeError, match=r"p must be the parameters of a neuron model \(\["):
        neuron_forward(x, name, DT)
