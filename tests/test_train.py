"""Training loop, end-to-end parity with PyTorch, checkpoints, divergence and bad input."""

import numpy as np
import pytest
import torch

import numbaspike as ns
from numbaspike import data
from numbaspike.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from numbaspike.layers import LI, LIFRecurrent, Linear
from numbaspike.losses import FiringRateRegularizer, MaxOverTimeCrossEntropy
from numbaspike.network import Sequential
from numbaspike.optim import SGD, Adam
from numbaspike.torch_reference import li_forward_torch, lif_forward_torch
from numbaspike.train import TrainingDivergedError, evaluate, fit, train_step


def _randman(per_class=12, steps=25, seed=0, n_units=20):
    ds = data.make_randman(
        n_classes=4, n_units=n_units, steps=steps, n_samples_per_class=per_class, seed=seed
    )
    return data.train_test_split(ds, test_fraction=0.25, seed=seed)


def _net(n_in, n_out, dtype=np.float64, seed=0, hidden=16, surrogate="superspike", alpha=100.0):
    rng = np.random.default_rng(seed)
    return Sequential(
        Linear(n_in, hidden, seed=rng, scale=10.0, dtype=dtype),
        LIFRecurrent(
            hidden, ns.LIFParameters(surrogate=surrogate, alpha=alpha), seed=rng, dtype=dtype
        ),
        Linear(hidden, n_out, seed=rng, dtype=dtype),
        LI(n_out, dtype=dtype),
    )


class _TorchNet:
    """The same network in PyTorch autograd, initialised from a numbaspike network."""

    def __init__(self, net):
        self.net = net
        self.params = {
            k: torch.tensor(v.copy(), requires_grad=True) for k, v in net.parameters().items()
        }

    def forward(self, x):
        lif, li = self.net[1], self.net[3]
        p, q = lif.p, li.p
        cur = torch.tensor(x) @ self.params["0.weight"].T
        z, _ = lif_forward_torch(
            cur, torch.tensor(p.tau_mem_inv), torch.tensor(p.tau_syn_inv), torch.tensor(p.v_leak),
            torch.tensor(p.v_th), p.v_reset, lif.dt, p.surrogate, p.alpha, p.reset, p.detach_reset,
            p.smooth, w_rec=self.params["1.w_rec"],
        )  # fmt: skip
        v = li_forward_torch(
            z @ self.params["2.weight"].T, torch.tensor(q.tau_mem_inv), torch.tensor(q.tau_syn_inv),
            torch.tensor(q.v_leak), li.dt,
        )  # fmt: skip
        return v[0] if isinstance(v, tuple) else v


def test_loss_curve_matches_pytorch_for_the_first_epoch():
    """End-to-end proof that the whole gradient chain matches: same init, data order, Adam."""
    train, _ = _randman(per_class=16)
    net = _net(train.n_inputs, train.n_classes)
    tnet = _TorchNet(net)
    topt = torch.optim.Adam(list(tnet.params.values()), lr=5e-3)
    history = fit(net, train, MaxOverTimeCrossEntropy(), Adam(net.parameters(), lr=5e-3), 1,
                  batch_size=8, seed=3, progress=False)  # fmt: skip
    torch_losses = []
    for x, labels in data.iterate_batches(
        train, 8, shuffle=True, seed=np.random.default_rng([3, 0]), dtype=np.float64
    ):
        topt.zero_grad()
        v = tnet.forward(x)
        loss = torch.nn.functional.cross_entropy(v.max(dim=0).values, torch.tensor(labels))
        loss.backward()
        topt.step()
        torch_losses.append(loss.item())
    assert len(torch_losses) == len(history.step_loss) == 6
    np.testing.assert_allclose(history.step_loss, torch_losses, rtol=1e-6)
    for name, value in net.parameters().items():
        np.testing.assert_allclose(
            value, tnet.params[name].detach().numpy(), rtol=1e-6, atol=1e-9, err_msg=name
        )


def test_fit_learns_randman_well_above_chance():
    train, test = _randman(per_class=40, steps=30)
    net = _net(train.n_inputs, train.n_classes, dtype=np.float32, hidden=32)
    loss = MaxOverTimeCrossEntropy()
    regs = [(1, FiringRateRegularizer(lower=0.5, strength_lower=1e-2))]
    history = fit(net, train, loss, Adam(net.parameters(), lr=1e-2), 10, batch_size=16, val=test,
                  seed=0, regularizers=regs, progress=False)  # fmt: skip
    assert history.train_loss[-1] < 0.8 * history.train_loss[0]
    _, acc = evaluate(net, test, loss)
    assert acc >= 0.55, acc  # chance is 0.25
    assert len(history.val_acc) == 10 and len(history.epoch_time) == 10


def test_fit_is_deterministic_and_resume_is_bit_identical(tmp_path):
    train, test = _randman()
    loss = MaxOverTimeCrossEntropy()

    def run(epochs, start=0, net=None, opt=None, history=None, path=None):
        if net is None:
            net = _net(train.n_inputs, train.n_classes, dtype=np.float32)
            opt = Adam(net.parameters(), lr=3e-3)
        history = fit(net, train, loss, opt, epochs, batch_size=8, val=test, seed=7, start_epoch=start,
                      history=history, checkpoint_path=path, progress=False)  # fmt: skip
        return net, opt, history

    full, _, full_hist = run(3)
    again, _, _ = run(3)
    for name, value in full.parameters().items():
        np.testing.assert_array_equal(value, again.parameters()[name])

    path = tmp_path / "ckpt.npz"
    run(2, path=path)  # "interrupted" after two epochs
    ckpt = load_checkpoint(path)
    assert ckpt.epoch == 2 and len(ckpt.history.train_loss) == 2
    resumed, _, resumed_hist = run(3, start=ckpt.epoch, net=ckpt.network, opt=ckpt.make_optimizer(),
                                   history=ckpt.history)  # fmt: skip
    for name, value in full.parameters().items():
        np.testing.assert_array_equal(value, resumed.parameters()[name], err_msg=name)
    np.testing.assert_array_equal(full_hist.train_loss, resumed_hist.train_loss)
    assert not list(tmp_path.glob("*.tmp"))


def test_checkpoint_round_trip_and_corruption(tmp_path):
    train, _ = _randman()
    net = _net(train.n_inputs, train.n_classes, dtype=np.float32)
    opt = SGD(net.parameters(), lr=0.1, momentum=0.9)
    path = save_checkpoint(tmp_path / "a.npz", net, opt, epoch=4, config={"task": "randman"})
    ckpt = load_checkpoint(path)
    assert ckpt.config == {"task": "randman"} and ckpt.epoch == 4
    assert type(ckpt.make_optimizer()).__name__ == "SGD"
    with np.load(path, allow_pickle=False) as f:  # no pickled objects inside
        assert "network" in f.files
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_checkpoint(tmp_path / "missing.npz")
    raw = path.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated.npz"):
        load_checkpoint(tmp_path / "truncated.npz")
    (tmp_path / "foreign.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "foreign.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a numbaspike checkpoint"):
        load_checkpoint(tmp_path / "other.npz")


def test_divergence_stops_with_clear_message_and_keeps_finite_parameters():
    train, _ = _randman()
    net = _net(train.n_inputs, train.n_classes, dtype=np.float32)
    before = {k: v.copy() for k, v in net.parameters().items()}
    x, labels = next(iter(data.iterate_batches(train, 8, shuffle=False)))
    x[0, 0, 0] = np.inf
    with pytest.raises((TrainingDivergedError, ValueError), match="inf|finite"):
        train_step(net, x, labels, MaxOverTimeCrossEntropy(), Adam(net.parameters()))
    for name, value in net.parameters().items():
        np.testing.assert_array_equal(value, before[name])

    class NanLoss(MaxOverTimeCrossEntropy):
        def __call__(self, y, target):
            value, grad = super().__call__(y, target)
            return float("nan"), grad

    x, labels = next(iter(data.iterate_batches(train, 8, shuffle=False)))
    with pytest.raises(TrainingDivergedError, match="loss became nan"):
        fit(net, train, NanLoss(), Adam(net.parameters()), 1, batch_size=8, progress=False)
    for name, value in net.parameters().items():
        np.testing.assert_array_equal(value, before[name])


def test_bad_training_input_is_named():
    train, _ = _randman()
    net = _net(train.n_inputs, train.n_classes, dtype=np.float32)
    loss = MaxOverTimeCrossEntropy()
    x, labels = next(iter(data.iterate_batches(train, 8, shuffle=False)))
    with pytest.raises(ValueError, match="labels"):
        train_step(net, x, labels + 10, loss, Adam(net.parameters()))
    with pytest.raises(ValueError, match=r"x must have shape \(T, B, 20\)"):
        train_step(net, x[:, :, :5], labels, loss, Adam(net.parameters()))
    with pytest.raises(ValueError, match="no sample"):
        train.subset(np.arange(0))  # a dataset cannot be empty
    with pytest.raises(ValueError, match="train is empty"):
        fit(net, [], loss, Adam(net.parameters()), 1, progress=False)
