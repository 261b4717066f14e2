"""fit / evaluate on analog input: a CurrentDataset instead of spikes."""

import numpy as np
import pytest

import numbaspike as ns
from numbaspike import train as train_module
from numbaspike.data import CurrentDataset, train_test_split
from numbaspike.layers import LI, LIF, Linear
from numbaspike.losses import MaxOverTimeCrossEntropy, MeanOverTimeCrossEntropy
from numbaspike.network import Sequential
from numbaspike.optim import Adam
from numbaspike.train import evaluate, fit


def _net(n_in, n_out, dtype=np.float32, seed=0, hidden=16):
    rng = np.random.default_rng(seed)
    return Sequential(
        Linear(n_in, hidden, seed=rng, scale=10.0, dtype=dtype),
        LIF(hidden, ns.LIFParameters(), dtype=dtype),
        Linear(hidden, n_out, seed=rng, dtype=dtype),
        LI(n_out, dtype=dtype),
    )


def _levels(per_class=40, n_in=4, seed=0):
    """Two classes told apart by the level of a constant, noisy current: around -0.5 for
    class 0 and +0.5 for class 1, so each class drives its own hidden neurons."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], per_class)
    level = np.where(labels == 0, -0.5, 0.5) + rng.uniform(-0.15, 0.15, labels.size)
    currents = level[:, None] + rng.normal(0.0, 0.05, (labels.size, n_in))
    return CurrentDataset(currents, labels, steps=20)


@pytest.mark.parametrize("seed", [0, 1])
def test_fit_learns_a_current_level_task(seed):
    train, test = train_test_split(_levels(seed=seed), test_fraction=0.25, seed=seed)
    net = _net(train.n_inputs, 2, seed=seed)
    loss = MeanOverTimeCrossEntropy()
    history = fit(net, train, loss, Adam(net.parameters(), lr=1e-2), 10, batch_size=10,
                  val=test, seed=seed, progress=False)  # fmt: skip
    assert len(history.val_acc) == 10
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    _, acc = evaluate(net, test, loss, batch_size=7)
    assert acc >= 0.9, acc  # chance is 0.5
    assert acc == history.val_acc[-1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batches_are_dense_in_the_network_dtype(monkeypatch, dtype):
    rng = np.random.default_rng(1)
    ds = CurrentDataset(rng.normal(size=(9, 5, 3)).astype(np.float32), np.arange(9) % 2)
    net = _net(3, 2, dtype=dtype, hidden=4)
    assert not train_module._use_events(net, ds)
    seen = []
    original = Linear.forward

    def spy(self, x):
        seen.append((type(x), x.dtype, x.shape))
        return original(self, x)

    monkeypatch.setattr(Linear, "forward", spy)
    history = fit(net, ds, MaxOverTimeCrossEntropy(), Adam(net.parameters()), 2, batch_size=4,
                  val=ds, progress=False)  # fmt: skip
    assert len(history.train_loss) == 2 and len(history.step_loss) == 6
    first_layer = seen[::2]  # each forward runs both Linear layers
    assert first_layer[0] == (np.ndarray, np.dtype(dtype), (5, 4, 3))
    assert all(kind is np.ndarray and dt == dtype for kind, dt, _ in first_layer)
    evaluate(net, ds, MaxOverTimeCrossEntropy())


def test_fit_resumes_bit_identically_on_currents(tmp_path):
    ds = _levels(per_class=8)
    loss = MaxOverTimeCrossEntropy()

    def run(epochs, start=0, net=None, opt=None, history=None, path=None):
        if net is None:
            net = _net(ds.n_inputs, 2, hidden=6)
            opt = Adam(net.parameters(), lr=1e-2)
        fit(net, ds, loss, opt, epochs, batch_size=5, seed=4, start_epoch=start,
            history=history, checkpoint_path=path, progress=False)  # fmt: skip
        return net

    full = run(3)
    from numbaspike.checkpoint import load_checkpoint

    run(2, path=tmp_path / "c.npz")
    ckpt = load_checkpoint(tmp_path / "c.npz")
    resumed = run(3, start=2, net=ckpt.network, opt=ckpt.make_optimizer(), history=ckpt.history)
    for name, value in full.parameters().items():
        np.testing.assert_array_equal(value, resumed.parameters()[name], err_msg=name)
