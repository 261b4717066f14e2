"""Layers and Sequential: shapes, the sparse projection path, gradients vs FD and PyTorch."""

import numpy as np
import pytest
import torch

import numbaspike as ns
from numbaspike import layers as L
from numbaspike.kernels import projection
from numbaspike.network import Sequential
from numbaspike.spike_events import SpikeEvents
from numbaspike.torch_reference import li_forward_torch, lif_forward_torch


def _spikes(rng, shape, rate):
    return (rng.random(shape) < rate).astype(np.float64)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("rate", [0.02, 0.5])
@pytest.mark.parametrize("bias", [False, True])
def test_linear_sparse_and_dense_paths_agree_with_numpy(rate, bias, sparse, monkeypatch):
    monkeypatch.setattr(projection, "use_sparse_path", lambda density, n_out: sparse)
    rng = np.random.default_rng(0)
    lin = L.Linear(30, 17, bias=bias, seed=1, dtype=np.float64)
    x = _spikes(rng, (11, 4, 30), rate) * rng.normal(size=(11, 4, 30))
    y, tape = lin.forward(x)
    assert tape.sparse == sparse
    if sparse:  # the tape keeps the event list, not the dense input
        assert tape.x is None and isinstance(tape.events, SpikeEvents)
    else:
        assert tape.events is None and np.shares_memory(tape.x, x)
    expected = x @ lin.weight.T + (lin.parameters()["bias"] if bias else 0)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    g = rng.normal(size=y.shape)
    gx = lin.backward(g, tape)
    np.testing.assert_allclose(gx, g @ lin.weight, rtol=1e-12, atol=1e-12)
    gw = np.einsum("tbo,tbi->oi", g, x)
    np.testing.assert_allclose(lin.gradients()["weight"], gw, rtol=1e-10, atol=1e-12)
    if bias:
        np.testing.assert_allclose(lin.gradients()["bias"], g.sum(axis=(0, 1)), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "n_in, n_out",
    [(5, 3), (32, 33), (33, 32), (40, 64)],
    ids=["both narrow", "narrow input", "narrow output", "both wide"],
)
def test_linear_dense_path_on_both_sides_of_the_narrow_product(n_in, n_out, dtype, monkeypatch):
    """Inner dimensions up to NARROW_K are computed by narrow_matmul, wider ones by BLAS."""
    monkeypatch.setattr(projection, "use_sparse_path", lambda density, n_out: False)
    calls = []
    narrow = projection.narrow_matmul
    monkeypatch.setattr(
        projection,
        "narrow_matmul",
        lambda a, b, out: calls.append(a.shape[1]) or narrow(a, b, out),
    )
    rng = np.random.default_rng(8)
    lin = L.Linear(n_in, n_out, seed=2, dtype=dtype)
    x = rng.normal(size=(9, 5, n_in)).astype(dtype)
    g = rng.normal(size=(9, 5, n_out)).astype(dtype)
    y, tape = lin.forward(x)
    gx = lin.backward(g, tape)
    assert y.dtype == gx.dtype == np.dtype(dtype)
    assert calls == [k for k in (n_in, n_out) if k <= projection.NARROW_K]
    w = lin.weight.astype(np.float64)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, x.astype(np.float64) @ w.T, rtol=tol, atol=tol)
    np.testing.assert_allclose(gx, g.astype(np.float64) @ w, rtol=tol, atol=tol)


def test_sparse_path_choice_follows_density_and_width():
    assert projection.use_sparse_path(0.02, 256)  # SHD-like input into a wide layer
    assert not projection.use_sparse_path(0.5, 256)  # dense input
    assert not projection.use_sparse_path(0.3, 1024)
    assert not projection.use_sparse_path(0.2, 256)  # the model's break-even is ~0.19
    assert projection.use_sparse_path(0.15, 1024)
    # A narrow readout of sparse spikes takes the event path too: single-threaded, float32,
    # T·B = 6400, n_in = 700, n_out = 20, density 0.02, building the events and the forward
    # product took 1.7 ms against 2.5 ms for BLAS, the weight gradient 0.3 ms against 2.2 ms
    # (Linear forward + backward: 5.6 ms against 8.7 ms).
    assert projection.use_sparse_path(0.02, 20)
    x = (np.random.default_rng(0).random((300, 700)) < 0.03).astype(np.float32)
    assert abs(projection.density(x) - 0.03) < 0.005


def test_density_estimate_covers_the_whole_input():
    x = np.zeros((1000, 700), np.float32)
    x[500:] = 1  # silent first half: the sampled runs must span all of it
    assert abs(projection.density(x) - 0.5) < 0.02
    x[:] = 0
    x[:, 350:] = 1
    assert abs(projection.density(x) - 0.5) < 0.02
    assert projection.density(np.ones((3, 5))) == 1.0  # small: every entry
    assert projection.density(np.zeros((0, 4))) == 0.0
    assert projection.density(np.ones((300, 700))[:, ::2]) == 1.0  # strided input
    x[:] = -0.0  # zero, in the sampled runs and in a small input alike
    x[:, ::2] = np.nan  # non-zero
    assert projection.density(x) == 0.5
    assert projection.density(x[:4, :8]) == 0.5


def test_narrow_layers_keep_the_event_path_up_to_narrow_sparse_max():
    # a readout of hidden spikes (the SHD network's: 5.5-8.4% as it trains, more elsewhere)
    assert projection.use_sparse_path(0.085, 20)
    assert projection.use_sparse_path(0.2, projection.NARROW_K)
    assert projection.use_sparse_path(projection.NARROW_SPARSE_MAX, 20)
    assert projection.use_sparse_path(0.02, 8)
    assert not projection.use_sparse_path(0.3, 20)  # above NARROW_SPARSE_MAX
    assert not projection.use_sparse_path(0.2, projection.NARROW_K + 1)  # not narrow


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spikes", [True, False], ids=["spikes", "values"])
def test_linear_sparse_and_dense_paths_agree_with_each_other(spikes, dtype, monkeypatch):
    rng = np.random.default_rng(7)
    x = (rng.random((25, 8, 130)) < 0.04).astype(dtype)
    if not spikes:
        x *= rng.normal(size=x.shape).astype(dtype)
    g = rng.normal(size=(25, 8, 40)).astype(dtype)
    results = {}
    for sparse in (True, False):
        monkeypatch.setattr(projection, "use_sparse_path", lambda density, n_out, s=sparse: s)
        lin = L.Linear(130, 40, bias=True, seed=3, dtype=dtype)
        y, tape = lin.forward(x)
        assert tape.sparse == sparse
        if sparse:
            assert (tape.events.values is None) == spikes
        gx = lin.backward(g, tape)
        results[sparse] = (y, lin.gradients()["weight"], lin.gradients()["bias"], gx)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for name, a, b in zip(
        ("y", "weight grad", "bias grad", "input grad"), *results.values(), strict=True
    ):
        assert a.dtype == b.dtype == np.dtype(dtype), name
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max(), err_msg=name)


def test_sequential_skips_only_the_grad_checks_a_neuron_layer_has_made(monkeypatch):
    """On the event path a Linear layer scans ``grad_y`` for NaN/inf unless it is the input
    gradient of a neuron layer (which checked it); a gradient added through
    ``output_grads`` is scanned, and a NaN in it is reported even in a row without events."""
    from numbaspike import validation

    monkeypatch.setattr(projection, "use_sparse_path", lambda density, n_out: True)
    checked = []
    check = validation.check_all_finite

    def spy(name, arr):
        checked.append(name)
        check(name, arr)

    monkeypatch.setattr(validation, "check_all_finite", spy)
    rng = np.random.default_rng(5)
    x = _spikes(rng, (12, 3, 20), 0.1)
    net = Sequential(
        L.Linear(20, 16, seed=1, scale=20, dtype=np.float64),
        L.LIF(16, dtype=np.float64),
        L.Linear(16, 5, seed=2, dtype=np.float64),
        L.LI(5, dtype=np.float64),
    )
    y, tape = net.forward(x)
    g = rng.normal(size=y.shape)
    checked.clear()
    net.backward(g, tape)
    assert "grad_y" not in checked
    extra = np.zeros((12, 3, 16))
    net.backward(g, tape, output_grads={0: extra})
    assert checked.count("grad_y") == 1  # Linear 0, whose gradient has an added term
    quiet = np.flatnonzero(~x.reshape(-1, 20).any(axis=1))[0]  # a row without events
    extra.reshape(-1, 16)[quiet, 3] = np.nan
    with pytest.raises(ValueError, match="grad_y contains NaN"):
        net.backward(g, tape, output_grads={0: extra})

    class Unchecked(L.LIF):
        def backward(self, grad_y, tape, need_input_grad=True, out=None):
            return super().backward(grad_y, tape, need_input_grad, out)

    net.layers[1].__class__ = Unchecked  # a replaced backward pass is not trusted
    checked.clear()
    net.backward(g, tape)
    assert checked.count("grad_y") == 1

    class OwnLinear(L.Linear):  # a Linear subclass with the base class's signature
        def backward(self, grad_y, tape, need_input_grad=True):
            return super().backward(grad_y, tape, need_input_grad)

    net.layers[1].__class__ = L.LIF
    net.layers[2].__class__ = OwnLinear
    net.backward(g, tape)  # called without grad_y_finite


def test_linear_init_matches_torch_default_bounds():
    lin = L.Linear(100, 50, bias=True, seed=0)
    bound = 1 / np.sqrt(100)
    assert np.abs(lin.weight).max() <= bound
    assert np.abs(lin.weight).max() > 0.9 * bound
    assert lin.weight.dtype == np.float32
    again = L.Linear(100, 50, bias=True, seed=0)
    np.testing.assert_array_equal(lin.weight, again.weight)


def test_sequential_shape_mismatch_is_named():
    with pytest.raises(
        ValueError, match=r"layer 0 \(Linear\) outputs 8 features but layer 1 \(LIF\) expects 9"
    ):
        Sequential(L.Linear(4, 8), L.LIF(9))
    net = Sequential(L.Linear(4, 8), L.LIF(8))
    with pytest.raises(ValueError, match=r"x must have shape \(T, B, 4\)"):
        net.forward(np.zeros((3, 2, 5), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        Sequential(L.Linear(4, 8, dtype=np.float64), L.LIF(8, dtype=np.float32))


def test_learn_unknown_parameter_is_named():
    with pytest.raises(ValueError, match="learn: unknown parameter 'v_reset'"):
        L.LIF(4, learn=("v_reset",))


def _torch_network_loss(net, x, gy):
    """The same Linear -> LIFRecurrent -> Linear -> LI network in PyTorch autograd."""
    t = {k: torch.tensor(v, requires_grad=True) for k, v in net.parameters().items()}
    lif, li = net[1], net[3]
    cur = torch.tensor(x) @ t["0.weight"].T
    p = lif.current_parameters()
    th = {
        k: t.get(f"1.{k}", torch.tensor(np.asarray(getattr(p, k), np.float64)))
        for k in ns.params.LIF_NEURON_FIELDS
    }
    z, _ = lif_forward_torch(
        cur, th["tau_mem_inv"], th["tau_syn_inv"], th["v_leak"], th["v_th"], p.v_reset, lif.dt,
        p.surrogate, p.alpha, p.reset, p.detach_reset, p.smooth, w_rec=t["1.w_rec"],
    )  # fmt: skip
    cur2 = z @ t["2.weight"].T
    q = li.current_parameters()
    v = li_forward_torch(
        cur2,
        torch.tensor(q.tau_mem_inv),
        torch.tensor(q.tau_syn_inv),
        torch.tensor(q.v_leak),
        li.dt,
    )
    v = v[0] if isinstance(v, tuple) else v
    loss = (v * torch.tensor(gy)).sum()
    loss.backward()
    return {k: v.grad.numpy() for k, v in t.items()}


@pytest.mark.parametrize("surrogate", ["superspike", "atan"])
def test_network_gradients_match_torch(surrogate):
    rng = np.random.default_rng(3)
    p = ns.LIFParameters(surrogate=surrogate, alpha=5.0)
    net = Sequential(
        L.Linear(6, 9, seed=0, scale=6.0, dtype=np.float64),
        L.LIFRecurrent(9, p, seed=1, learn=("v_th", "tau_mem_inv"), dtype=np.float64),
        L.Linear(9, 3, seed=2, dtype=np.float64),
        L.LI(3, dtype=np.float64),
    )
    x = _spikes(rng, (30, 2, 6), 0.3)
    gy = rng.normal(size=(30, 2, 3))
    y, tape = net.forward(x)
    rate = tape.outputs[1].mean()
    assert 0.01 < rate < 0.5
    net.zero_grad()
    net.backward(gy, tape)
    expected = _torch_network_loss(net, x, gy)
    for name, g in net.gradients().items():
        np.testing.assert_allclose(g, expected[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_network_gradients_match_finite_differences_in_smooth_mode():
    rng = np.random.default_rng(5)
    p = ns.LIFParameters(smooth=True, alpha=2.0, surrogate="sigmoid")
    net = Sequential(
        L.Linear(5, 6, seed=0, scale=5.0, dtype=np.float64),
        L.LIF(6, p, learn=("v_leak", "tau_syn_inv"), dtype=np.float64),
        L.Linear(6, 3, seed=2, dtype=np.float64),
        L.LI(3, learn=("tau_mem_inv",), dtype=np.float64),
    )
    x = _spikes(rng, (20, 2, 5), 0.3)
    gy = rng.normal(size=(20, 2, 3))

    def loss():
        return float((net.forward(x)[0] * gy).sum())

    y, tape = net.forward(x)
    net.zero_grad()
    net.backward(gy, tape)
    grads = net.gradients()
    for name, arr in net.parameters().items():
        d = rng.normal(size=arr.shape)
        eps = 1e-6 * max(1.0, float(np.abs(arr).max()))
        old = arr.copy()
        arr[...] = old + eps * d
        lp = loss()
        arr[...] = old - eps * d
        lm = loss()
        arr[...] = old
        fd = (lp - lm) / (2 * eps)
        an = float((grads[name] * d).sum())
        assert abs(fd - an) <= 1e-6 * max(abs(an), 1e-8), (name, fd, an)


def test_recurrent_without_autapses_keeps_zero_diagonal_gradient():
    lif = L.LIFRecurrent(5, seed=0, scale=3.0, autapses=False, dtype=np.float64)
    assert np.all(np.diag(lif.parameters()["w_rec"]) == 0)
    x = np.random.default_rng(0).normal(2.0, 3.0, (15, 2, 5))
    z, tape = lif.forward(x)
    lif.backward(np.ones_like(z), tape)
    assert np.all(np.diag(lif.gradients()["w_rec"]) == 0)


def test_constrain_keeps_time_constants_stable():
    lif = L.LIF(3, learn=("tau_mem_inv",), dt=1e-3)
    lif.parameters()["tau_mem_inv"][:] = [-5.0, 100.0, 5000.0]
    lif.constrain()
    tau = lif.parameters()["tau_mem_inv"]
    assert tau[0] > 0 and tau[1] == 100.0 and tau[2] * 1e-3 < 1
    lif.forward(np.zeros((2, 1, 3), np.float32))  # valid again


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dt", [1e-3, 3e-4, 7.77e-4])
def test_constrained_time_constants_pass_the_time_step_rule_in_the_layer_dtype(dt, dtype):
    """The clipped range [1e-3, 0.95/dt] satisfies check_time_step's dt * tau_inv < 1 after
    rounding to the layer's dtype, with a margin."""
    lif = L.LIF(3, dt=dt, learn=("tau_mem_inv", "tau_syn_inv"), dtype=dtype)
    for name in ("tau_mem_inv", "tau_syn_inv"):
        lif.parameters()[name][:] = [1e30, -1e30, 0.0]
    lif.constrain()
    for name in ("tau_mem_inv", "tau_syn_inv"):
        tau = lif.parameters()[name]
        assert tau.dtype == dtype and np.all(tau > 0), (name, tau)
        assert float(tau[0]) * dt <= 0.95 * (1 + 1e-6) and tau[1] == tau[2] == dtype(1e-3)
        assert np.all(dtype(dt) * tau < 1)
    ns.params.check_time_step(lif.current_parameters(), dt)
    lif.forward(np.ones((3, 2, 3), dtype))  # valid again


@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("v_reset", [-0.1, 0.1, 0.3, 1e5])
def test_constrain_keeps_a_learned_threshold_above_the_reset(v_reset, dtype, reset):
    p = ns.LIFParameters(v_th=v_reset + np.linspace(0.5, 1.5, 4), v_reset=v_reset, reset=reset)
    lif = L.LIF(4, p, learn=("v_th",), dtype=dtype)
    v_th = lif.parameters()["v_th"]
    before = v_th.copy()
    lif.constrain()
    np.testing.assert_array_equal(v_th, before)  # valid values are left alone
    v_th[:2] -= dtype(1e6)  # a huge negative optimiser step on two neurons
    v_th[2] = dtype(v_reset)  # one exactly at the reset (in the layer's dtype)
    with pytest.raises(ValueError, match=r"v_reset must be below v_th"):
        lif.forward(np.ones((2, 1, 4), dtype))  # unconstrained: refused, not silently wrong
    lif.constrain()
    assert np.all(v_th[:3] > dtype(v_reset)) and np.all(v_th.astype(np.float64) > v_reset)
    assert np.all(v_th[:3] <= dtype(v_reset) + max(2 * L.V_TH_MARGIN, np.spacing(dtype(v_reset))))
    assert v_th[3] == before[3]
    lif.current_parameters()  # LIFParameters accepts them
    z, _ = lif.forward(np.ones((2, 1, 4), dtype))  # and so does the kernel's dtype check
    assert z.shape == (2, 1, 4)


@pytest.mark.parametrize("kind", ["LIF", "LIFRecurrent"])
def test_learned_threshold_stays_above_the_reset_while_training(kind):
    """A loss that rewards spikes pushes v_th down at every step: without constrain it would
    walk below v_reset (where a driven neuron fires on every step)."""
    from numbaspike.optim import SGD

    rng = np.random.default_rng(0)
    n, v_reset = 6, 0.2
    p = ns.LIFParameters(v_th=np.linspace(0.6, 1.4, n), v_reset=v_reset, surrogate="atan")
    layer = getattr(L, kind)(n, p, learn=("v_th",), **({"seed": 0} if kind != "LIF" else {}))
    x = rng.normal(2.0, 4.0, (40, 3, n)).astype(np.float32)
    opt = SGD(layer.parameters(), lr=2e-3)
    lowest = []
    for _ in range(30):
        z, tape = layer.forward(x)
        layer.zero_grad()
        layer.backward(-np.ones_like(z), tape)  # loss = -sum(z): more spikes
        opt.step(layer.gradients())
        layer.constrain()
        lowest.append(float(layer.parameters()["v_th"].min()))
    assert len(set(lowest)) > 3 and lowest == sorted(lowest, reverse=True)  # walked down ...
    floor = float(np.float32(v_reset + L.V_TH_MARGIN))
    assert lowest[-1] == floor and min(lowest) > v_reset  # ... to the floor, not below


def test_config_round_trip():
    net = Sequential(
        L.Linear(4, 6, bias=True, seed=0),
        L.LIFRecurrent(
            6, ns.LIFParameters(v_th=np.linspace(0.5, 1.5, 6), reset="subtract"), learn=("v_th",)
        ),
        L.Linear(6, 2, seed=1),
        L.LI(2),
    )
    clone = Sequential.from_config(net.config())
    clone.load_parameters(net.parameters())
    x = (np.random.default_rng(0).random((10, 3, 4)) < 0.3).astype(np.float32)
    np.testing.assert_array_equal(net(x), clone(x))
    with pytest.raises(ValueError, match="missing"):
        clone.load_parameters({})


def test_learned_parameters_are_owned_writeable_copies():
    p = ns.LIFParameters(v_th=np.ones(4))
    lif = L.LIF(4, p, learn=("v_th",), dtype=np.float64)
    arr = lif.parameters()["v_th"]
    assert arr.flags.writeable and not np.shares_memory(arr, p.v_th)
    arr += 0.5  # an optimiser step must not touch the parameters object
    assert np.all(p.v_th == 1.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "spikes"])
def test_linear_names_non_finite_input(sparse, bad):
    """Both paths: the dense one scans the input, the event-driven one the event values
    (NaN and inf are events)."""
    rng = np.random.default_rng(5)
    x = (rng.random((30, 4, 50)) < 0.03).astype(np.float32)
    if not sparse:
        x += rng.normal(size=x.shape).astype(np.float32)
    lin = L.Linear(50, 60, seed=0)
    assert lin.forward(x)[1].sparse is sparse
    x[7, 2, 11] = bad
    kind = "NaN" if np.isnan(bad) else "inf"
    with pytest.raises(ValueError, match=rf"x contains {kind} \(first at index \(7, 2, 11\)\)"):
        lin.forward(x)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "spikes"])
def test_linear_backward_names_non_finite_grad_y(sparse, bad, monkeypatch):
    """The dense path checks grad_y through the weight-gradient product: a bad entry in a row
    whose input is all zeros must be caught too (NaN * 0 is NaN); the gradient accumulated so
    far is left unchanged."""
    monkeypatch.setattr(projection, "use_sparse_path", lambda density, n_out: sparse)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(20, 3, 40)).astype(np.float32)
    x[5, 1] = 0.0  # the row of the bad gradient entry
    lin = L.Linear(40, 30, seed=0)
    _, tape = lin.forward(x)
    assert tape.sparse is sparse
    g = rng.normal(size=(20, 3, 30)).astype(np.float32)
    lin.backward(g, tape)
    before = lin.gradients()["weight"].copy()
    g[5, 1, 17] = bad
    kind = "NaN" if np.isnan(bad) else "inf"
    with pytest.raises(
        ValueError, match=rf"grad_y contains {kind} \(first at index \(5, 1, 17\)\)"
    ):
        lin.backward(g, tape)
    np.testing.assert_array_equal(lin.gradients()["weight"], before)


def test_linear_dense_backward_reports_an_overflowing_weight_gradient():
    x = np.full((4, 2, 8), 1e30, np.float32)
    lin = L.Linear(8, 5, seed=0)
    _, tape = lin.forward(x)
    assert not tape.sparse
    with pytest.raises(ValueError, match="grad_y is finite but the weight gradient overflowed"):
        lin.backward(np.full((4, 2, 5), 1e30, np.float32), tape)


def test_linear_sparse_path_accepts_large_finite_events():
    """Event values whose sum overflows float32 are still finite inputs."""
    x = np.zeros((30, 4, 50), np.float32)
    x[::3, :, ::25] = 3e38
    y, tape = L.Linear(50, 60, seed=0, scale=1e-30).forward(x)
    assert tape.sparse and np.isfinite(y).all()


def test_layer_backend_is_checked_when_the_layer_is_built():
    with pytest.raises(ValueError, match="backend must be one of 'cpu', 'cuda', 'auto'"):
        L.Linear(3, 4, backend="gpu")
    with pytest.raises(ValueError, match="backend must be one of"):
        L.LIF(3, backend=None)
    assert L.LI(3, backend="auto").backend in ("cpu", "cuda")
    if not ns.backend.cuda_available():
        with pytest.raises(RuntimeError, match="backend='cuda' was requested but CUDA is not"):
            L.LIFRecurrent(3, backend="cuda")
