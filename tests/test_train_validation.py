"""fit / evaluate / train_step: argument checks that name the argument, the optimiser's
parameters, progress output without a terminal, and interruption."""

import io
import sys

import numpy as np
import pytest

import numbaspike as ns
from numbaspike import data
from numbaspike.checkpoint import load_checkpoint
from numbaspike.layers import LI, LIF, Linear
from numbaspike.losses import FiringRateRegularizer, MaxOverTimeCrossEntropy
from numbaspike.network import Sequential
from numbaspike.optim import SGD, Adam
from numbaspike.train import evaluate, fit, train_step


def _net(n_in=20, n_out=3, seed=0):
    rng = np.random.default_rng(seed)
    return Sequential(
        Linear(n_in, 8, seed=rng, scale=10.0),
        LIF(8, ns.LIFParameters()),
        Linear(8, n_out, seed=rng),
        LI(n_out),
    )


@pytest.fixture(scope="module")
def ds():
    return data.make_randman(
        n_classes=3, n_units=20, steps=10, n_samples_per_class=4, seed=0
    )  # 12 samples


@pytest.fixture
def net():
    return _net()


def _fit(net, train, **kwargs):
    args = {"optimizer": Adam(net.parameters(), lr=1e-3), "epochs": 1, "progress": False}
    args.update(kwargs)
    optimizer = args.pop("optimizer")
    epochs = args.pop("epochs")
    return fit(net, train, MaxOverTimeCrossEntropy(), optimizer, epochs, **args)


# ---------------------------------------------------------------------- numbers
@pytest.mark.parametrize(
    "value, error, match",
    [
        (0, ValueError, "batch_size must be a positive integer, got 0"),
        (-4, ValueError, "batch_size must be a positive integer, got -4"),
        (None, TypeError, "batch_size must be a positive integer, got None"),
        (2.5, TypeError, r"batch_size must be a positive integer, got 2\.5"),
        (8.0, TypeError, "batch_size must be a positive integer"),
        (True, TypeError, "batch_size must be a positive integer, got True"),
        ("8", TypeError, "batch_size"),
    ],
)
def test_bad_batch_size_is_named(ds, net, value, error, match):
    with pytest.raises(error, match=match):
        _fit(net, ds, batch_size=value)
    with pytest.raises(error, match=match):
        evaluate(net, ds, MaxOverTimeCrossEntropy(), batch_size=value)


def test_numpy_integer_batch_size_is_fine(ds, net):
    _fit(net, ds, batch_size=np.int64(5))
    evaluate(net, ds, MaxOverTimeCrossEntropy(), batch_size=np.int32(5))


@pytest.mark.parametrize(
    "value, error",
    [(float("nan"), ValueError), (float("inf"), ValueError), (-1, ValueError),
     (1.5, ValueError), ("2", TypeError), (None, TypeError), (True, TypeError)],
)  # fmt: skip
def test_bad_epochs_is_named(ds, net, value, error):
    with pytest.raises(error, match="epochs must be a non-negative integer"):
        _fit(net, ds, epochs=value)
    with pytest.raises(error, match="start_epoch must be a non-negative integer"):
        _fit(net, ds, start_epoch=value)


@pytest.mark.parametrize(
    "value, error",
    [(-1, ValueError), (1.5, TypeError), (None, TypeError), ("0", TypeError), (True, TypeError)],
)
def test_bad_seed_is_named(ds, net, value, error):
    with pytest.raises(error, match="seed must be a non-negative integer"):
        _fit(net, ds, seed=value)


@pytest.mark.parametrize(
    "value, error",
    [(0, ValueError), (-1.0, ValueError), (float("nan"), ValueError),
     (float("inf"), ValueError), ("1", TypeError), (True, TypeError)],
)  # fmt: skip
def test_bad_clip_norm_is_named(ds, net, value, error):
    with pytest.raises(error, match="clip_norm"):
        _fit(net, ds, clip_norm=value)
    x, labels = next(iter(data.iterate_batches(ds, 4, shuffle=False)))
    with pytest.raises(error, match="clip_norm"):
        train_step(
            net, x, labels, MaxOverTimeCrossEntropy(), Adam(net.parameters()), clip_norm=value
        )


# ---------------------------------------------------------------------- data and network
def test_train_must_be_a_dataset(ds, net):
    x = ds.dense().transpose(1, 0, 2)
    with pytest.raises(TypeError, match="train must be a SpikeDataset or CurrentDataset.*ndarray"):
        _fit(net, x)
    with pytest.raises(TypeError, match="val must be a SpikeDataset or CurrentDataset.*tuple"):
        _fit(net, ds, val=(x, ds.labels))
    with pytest.raises(TypeError, match="data must be a SpikeDataset or CurrentDataset.*ndarray"):
        evaluate(net, x, MaxOverTimeCrossEntropy())
    with pytest.raises(ValueError, match="data is empty"):
        evaluate(net, [], MaxOverTimeCrossEntropy())


def test_input_width_mismatch_names_layer_and_dataset(ds):
    narrow = _net(n_in=17)
    with pytest.raises(
        ValueError, match=r"first layer \(layer 0, Linear\) takes n_in=17 .* train has n_inputs=20"
    ):
        _fit(narrow, ds)
    with pytest.raises(ValueError, match=r"n_in=17 .* data has n_inputs=20"):
        evaluate(narrow, ds, MaxOverTimeCrossEntropy())
    other = data.make_randman(n_classes=3, n_units=17, steps=10, n_samples_per_class=2, seed=1)
    with pytest.raises(ValueError, match=r"n_in=20 .* val has n_inputs=17"):
        _fit(_net(), ds, val=other)
    lif_first = Sequential(LIF(17), Linear(17, 3), LI(3))
    with pytest.raises(ValueError, match=r"layer 0, LIF\) takes n_in=17"):
        _fit(lif_first, ds)


def test_net_and_loss_types_are_named(ds, net):
    with pytest.raises(TypeError, match="net must be a numbaspike.network.Sequential"):
        fit([net], ds, MaxOverTimeCrossEntropy(), Adam(net.parameters()), 1, progress=False)
    with pytest.raises(TypeError, match="loss must be a loss"):
        fit(net, ds, "cross-entropy", Adam(net.parameters()), 1, progress=False)
    with pytest.raises(TypeError, match="loss must be a loss"):
        evaluate(net, ds, lambda y, labels: (0.0, y))  # no predict


def test_bad_regularizers_are_named(ds, net):
    reg = FiringRateRegularizer()
    with pytest.raises(ValueError, match=r"regularizers\[0\]: layer_index must lie in \[0, 4\)"):
        _fit(net, ds, regularizers=[(7, reg)])
    with pytest.raises(TypeError, match=r"regularizers\[0\] must be a \(layer_index, reg\) pair"):
        _fit(net, ds, regularizers=[reg])
    with pytest.raises(TypeError, match=r"regularizers\[1\]: reg must be callable"):
        _fit(net, ds, regularizers=[(1, reg), (1, "rate")])


# ---------------------------------------------------------------------- the optimiser
def test_optimizer_over_another_network_is_rejected(ds, net):
    other = _net(seed=1)
    before = {k: v.copy() for k, v in net.parameters().items()}
    loss = MaxOverTimeCrossEntropy()
    with pytest.raises(ValueError, match=r"optimizer does not update the parameters of net"):
        fit(net, ds, loss, Adam(other.parameters(), lr=0.1), 1, progress=False)
    copies = {k: v.copy() for k, v in net.parameters().items()}  # equal values, not the arrays
    with pytest.raises(ValueError, match=r"optimizer.params\['0.weight'\] is not the array"):
        fit(net, ds, loss, SGD(copies, lr=0.1), 1, progress=False)
    x, labels = next(iter(data.iterate_batches(ds, 4, shuffle=False)))
    with pytest.raises(ValueError, match="optimizer does not update the parameters of net"):
        train_step(net, x, labels, loss, Adam(other.parameters(), lr=0.1))
    for name, value in net.parameters().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_optimizer_over_part_of_the_network_or_not_an_optimizer(ds, net):
    loss = MaxOverTimeCrossEntropy()
    part = {"0.weight": net.parameters()["0.weight"]}
    with pytest.raises(ValueError, match=r"optimizer .*missing parameters \['2.weight'\]"):
        fit(net, ds, loss, Adam(part), 1, progress=False)
    with pytest.raises(TypeError, match="optimizer must be an optimiser of numbaspike.optim"):
        fit(net, ds, loss, net.parameters(), 1, progress=False)
    x, labels = next(iter(data.iterate_batches(ds, 4, shuffle=False)))
    with pytest.raises(TypeError, match="optimizer must be an optimiser"):
        train_step(net, x, labels, loss, None)


def test_optimizer_of_a_loaded_checkpoint_is_accepted(ds, net, tmp_path):
    opt = Adam(net.parameters(), lr=1e-3)
    _fit(net, ds, optimizer=opt, checkpoint_path=tmp_path / "c.npz")
    ckpt = load_checkpoint(tmp_path / "c.npz")
    _fit(ckpt.network, ds, optimizer=ckpt.make_optimizer(), epochs=2, start_epoch=1)


# ---------------------------------------------------------------------- progress output
def test_no_progress_bar_when_stderr_is_not_a_terminal(ds, net, capsys):
    _fit(net, ds, epochs=2, batch_size=4, progress=True)
    out, err = capsys.readouterr()
    assert err == ""  # no bar redrawn line after line into a log
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2: loss") and "acc" in lines[0]
    _fit(net, ds, batch_size=4, progress=False)
    assert capsys.readouterr() == ("", "")


def test_progress_bar_on_a_terminal(ds, net, monkeypatch, capsys):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _fit(net, ds, batch_size=4, progress=True)
    assert "epoch 1/1" in terminal.getvalue() and "/3 [" in terminal.getvalue()
    assert "epoch 1/1: loss" in capsys.readouterr().out


# ---------------------------------------------------------------------- interruption
def test_interrupt_propagates_with_last_epoch_checkpointed(ds, net, tmp_path):
    calls = []

    class Interrupting(MaxOverTimeCrossEntropy):
        def __call__(self, y, target):
            calls.append(1)
            if len(calls) == 4:  # second batch of epoch 2
                raise KeyboardInterrupt
            return super().__call__(y, target)

    path = tmp_path / "ckpt.npz"
    with pytest.raises(KeyboardInterrupt):
        fit(net, ds, Interrupting(), Adam(net.parameters()), 3, batch_size=6,
            checkpoint_path=path, progress=False)  # fmt: skip
    ckpt = load_checkpoint(path)
    assert ckpt.epoch == 1 and len(ckpt.history.train_loss) == 1
    assert not list(tmp_path.glob("*.tmp"))
