"""Training loop: :func:`fit`, :func:`evaluate` and one :func:`train_step`.

Deterministic for a given seed: the batch order of epoch ``e`` comes from
``numpy.random.default_rng([seed, e])`` and the kernels have no thread-dependent
reductions, so an interrupted run resumed from a checkpoint reproduces the parameters
of an uninterrupted one bit for bit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .network import Sequential
from .validation import all_finite

__all__ = ["History", "TrainingDivergedError", "train_step", "evaluate", "fit"]


class TrainingDivergedError(FloatingPointError):
    """Raised when the loss or a gradient becomes NaN/inf; parameters keep their last finite values."""


@dataclass
class History:
    """Per-epoch metrics of :func:`fit` (lists, one entry per finished epoch)."""

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {
            name: np.asarray(getattr(self, name), np.float64) for name in self.__dataclass_fields__
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> History:
        return cls(
            **{name: [float(v) for v in arrays.get(name, [])] for name in cls.__dataclass_fields__}
        )


def _iterate(data, batch_size, shuffle, seed, net: Sequential):
    from .data import iterate_batches

    rng = np.random.default_rng(seed) if shuffle else None
    return iterate_batches(
        data, batch_size, shuffle=shuffle, seed=rng, dtype=net.dtype, events=_use_events(net, data)
    )


def _use_events(net: Sequential, data) -> bool:
    """Feed the batches as events (:meth:`~numbaspike.data.SpikeDataset.batch_events`) when
    the first layer is a :class:`~numbaspike.layers.Linear` that would take its event path
    at the data's mean density anyway: no dense batch to build and scan."""
    from .kernels.projection import use_sparse_path
    from .layers import Linear

    first = net.layers[0]
    if not isinstance(first, Linear):
        return False
    density = data.n_events / max(1, len(data) * data.steps * data.n_inputs)
    return use_sparse_path(density, first.n_out)


def train_step(
    net: Sequential,
    x: np.ndarray,
    labels: np.ndarray,
    loss,
    optimizer,
    regularizers: Sequence[tuple[int, Callable]] = (),
    clip_norm: float | None = None,
) -> tuple[float, int]:
    """Forward, loss, backward and one optimiser step on a batch.

    Parameters
    ----------
    x : ndarray (T, B, n_in), or SpikeEvents for a Linear first layer
    labels : ndarray (B,)
    loss : callable ``loss(y, labels) -> (value, dL/dy)`` with ``predict(y)``
    optimizer : an optimiser from :mod:`numbaspike.optim` over ``net.parameters()``
    regularizers : sequence of ``(layer_index, reg)`` with ``reg(output) -> (value, grad)``
    clip_norm : float, optional
        Clip the global gradient norm to this value.

    Returns
    -------
    (loss value including regularisers, number of correct predictions)
    """
    y, tape = net.forward(x)
    value, grad_y = loss(y, labels)
    output_grads = {}
    for index, reg in regularizers:
        r_value, r_grad = reg(tape.outputs[index])
        value += r_value
        output_grads[index] = output_grads.get(index, 0) + r_grad
    if not math.isfinite(value):
        raise TrainingDivergedError(
            f"loss became {value}; lower the learning rate or the input scale "
            "(parameters keep their last finite values)"
        )
    net.zero_grad()
    net.backward(grad_y, tape, output_grads=output_grads)
    grads = net.gradients()
    for name, g in grads.items():
        if not all_finite(g):
            raise TrainingDivergedError(
                f"gradient of {name} is not finite; lower the learning rate"
            )
    if clip_norm is not None:
        from .optim import clip_grad_norm

        clip_grad_norm(grads, clip_norm)
    optimizer.step(grads)
    net.constrain()
    correct = int(np.sum(loss.predict(y) == labels))
    return float(value), correct


def evaluate(net: Sequential, data, loss, batch_size: int = 256) -> tuple[float, float]:
    """Mean loss and accuracy of ``net`` on ``data`` (a :class:`~numbaspike.data.SpikeDataset`)."""
    if len(data) == 0:
        raise ValueError("data is empty")
    total_loss = 0.0
    correct = 0
    for x, labels in _iterate(data, batch_size, False, None, net):
        y, _ = net.forward(x)
        value, _ = loss(y, labels)
        total_loss += value * len(labels)
        correct += int(np.sum(loss.predict(y) == labels))
    return total_loss / len(data), correct / len(data)


def fit(
    net: Sequential,
    train,
    loss,
    optimizer,
    epochs: int,
    batch_size: int = 32,
    val=None,
    seed: int = 0,
    regularizers: Sequence[tuple[int, Callable]] = (),
    clip_norm: float | None = None,
    start_epoch: int = 0,
    history: History | None = None,
    checkpoint_path=None,
    checkpoint_config: dict | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[int, History], None] | None = None,
) -> History:
    """Train ``net`` for ``epochs`` epochs (from ``start_epoch``) and return the :class:`History`.

    Parameters
    ----------
    train, val : SpikeDataset
        Training and (optional) validation data.
    loss : loss object of :mod:`numbaspike.losses` (``loss(y, labels) -> (value, grad)``)
    optimizer : optimiser of :mod:`numbaspike.optim`
    epochs : int
        Index of the last epoch + 1: training runs epochs ``start_epoch .. epochs-1``.
    seed : int
        Seeds the batch order (epoch ``e`` uses ``default_rng([seed, e])``).
    regularizers : sequence of ``(layer_index, reg)``
        Losses on intermediate outputs, e.g. firing-rate regularisers on hidden spikes.
    start_epoch, history
        Resume an interrupted run (see :func:`numbaspike.checkpoint.load_checkpoint`).
    checkpoint_path : path, optional
        Save network, optimiser state and history there after every epoch (atomically).
    progress : bool
        Show a tqdm progress bar with loss and accuracy.
    """
    from tqdm.auto import tqdm

    if len(train) == 0:
        raise ValueError("train is empty")
    if int(epochs) != epochs or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    history = history if history is not None else History()
    n_batches = math.ceil(len(train) / batch_size)
    for epoch in range(start_epoch, int(epochs)):
        start = time.perf_counter()
        seen = correct = 0
        loss_sum = 0.0
        bar = tqdm(
            _iterate(train, batch_size, True, [seed, epoch], net),
            total=n_batches,
            desc=f"epoch {epoch + 1}/{epochs}",
            disable=not progress,
            leave=False,
        )
        for x, labels in bar:
            value, ok = train_step(net, x, labels, loss, optimizer, regularizers, clip_norm)
            history.step_loss.append(value)
            seen += len(labels)
            correct += ok
            loss_sum += value * len(labels)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}")
        history.train_loss.append(loss_sum / seen)
        history.train_acc.append(correct / seen)
        if val is not None and len(val) > 0:
            v_loss, v_acc = evaluate(net, val, loss)
            history.val_loss.append(v_loss)
            history.val_acc.append(v_acc)
        history.epoch_time.append(time.perf_counter() - start)
        if progress:
            msg = f"epoch {epoch + 1}/{epochs}: loss {history.train_loss[-1]:.4f} acc {history.train_acc[-1]:.3f}"
            if history.val_acc:
                msg += f" | val loss {history.val_loss[-1]:.4f} acc {history.val_acc[-1]:.3f}"
            tqdm.write(msg + f" ({history.epoch_time[-1]:.1f} s)")
        if checkpoint_path is not None:
            from .checkpoint import save_checkpoint

            save_checkpoint(
                checkpoint_path,
                net,
                optimizer,
                history=history,
                epoch=epoch + 1,
                config=checkpoint_config,
            )
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)
    return history
