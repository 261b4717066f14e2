"""Training loop: :func:`fit`, :func:`evaluate` and one :func:`train_step`.

Deterministic for a given seed: the batch order of epoch ``e`` comes from
``numpy.random.default_rng([seed, e])`` and the kernels have no thread-dependent
reductions, so an interrupted run resumed from a checkpoint reproduces the parameters
of an uninterrupted one bit for bit.

The data are a :class:`~numbaspike.data.SpikeDataset` (binary spikes) or a
:class:`~numbaspike.data.CurrentDataset` (analog input currents, fed densely). Every argument
is checked before the first step, with an error that names it.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .layers_cuda import host
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


# ---------------------------------------------------------------------- argument checks
_DATASET_TYPES = "a SpikeDataset or CurrentDataset (numbaspike.data)"


def _check_net(net) -> Sequential:
    if not isinstance(net, Sequential):
        raise TypeError(f"net must be a numbaspike.network.Sequential, got {type(net).__name__}")
    return net


def _is_empty(value) -> bool:
    try:
        return len(value) == 0
    except TypeError:
        return False


def _check_data(name: str, data, net: Sequential):
    """``data`` must be a dataset whose inputs are as wide as the network's first layer."""
    from .data import LabeledDataset

    if not isinstance(data, LabeledDataset):
        if _is_empty(data):
            raise ValueError(f"{name} is empty; it must be {_DATASET_TYPES}")
        raise TypeError(f"{name} must be {_DATASET_TYPES}, got {type(data).__name__}")
    first = net.layers[0]
    if data.n_inputs != first.n_in:
        raise ValueError(
            f"net's first layer (layer 0, {type(first).__name__}) takes n_in={first.n_in} "
            f"inputs but {name} has n_inputs={data.n_inputs}"
        )
    return data


def _check_batch_size(value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"batch_size must be a positive integer, got {value!r} ({type(value).__name__})"
        )
    if value <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {value}")
    return int(value)


def _check_count(name: str, value) -> int:
    """A non-negative whole number (an integral float too) as an int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, np.integer, float, np.floating)
    ):
        raise TypeError(f"{name} must be a non-negative integer, got {type(value).__name__}")
    if not math.isfinite(value) or value != int(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _check_seed(seed) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(
            "seed must be a non-negative integer (epoch e shuffles with "
            f"numpy.random.default_rng([seed, e])), got {type(seed).__name__}"
        )
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    return int(seed)


def _check_clip_norm(clip_norm) -> float | None:
    if clip_norm is None:
        return None
    if isinstance(clip_norm, (bool, np.bool_)) or not isinstance(
        clip_norm, (int, np.integer, float, np.floating)
    ):
        raise TypeError(f"clip_norm must be None or a number > 0, got {type(clip_norm).__name__}")
    if not math.isfinite(clip_norm) or clip_norm <= 0:
        raise ValueError(f"clip_norm must be None or a finite number > 0, got {clip_norm!r}")
    return float(clip_norm)


def _check_loss(loss) -> None:
    if not callable(loss) or not callable(getattr(loss, "predict", None)):
        raise TypeError(
            "loss must be a loss of numbaspike.losses: callable as loss(y, labels) -> "
            f"(value, dL/dy), with a predict(y) method; got {type(loss).__name__}"
        )


def _check_regularizers(regularizers, net: Sequential) -> list[tuple[int, Callable]]:
    try:
        items = list(regularizers)
    except TypeError:
        raise TypeError(
            "regularizers must be a sequence of (layer_index, reg) pairs, got "
            f"{type(regularizers).__name__}"
        ) from None
    out = []
    for k, item in enumerate(items):
        if not isinstance(item, tuple) or len(item) != 2:
            raise TypeError(f"regularizers[{k}] must be a (layer_index, reg) pair, got {item!r}")
        index, reg = item
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"regularizers[{k}]: layer_index must be an integer, got {index!r}")
        if not 0 <= index < len(net):
            raise ValueError(
                f"regularizers[{k}]: layer_index must lie in [0, {len(net)}) for a network "
                f"of {len(net)} layers, got {index}"
            )
        if not callable(reg):
            raise TypeError(f"regularizers[{k}]: reg must be callable, got {type(reg).__name__}")
        out.append((int(index), reg))
    return out


def _check_optimizer(optimizer, net: Sequential) -> None:
    """The optimiser must update the very arrays of ``net.parameters()`` (identity): one built
    over another network's parameters would train that network and leave ``net`` as it is."""
    params = getattr(optimizer, "params", None)
    if not isinstance(params, Mapping) or not callable(getattr(optimizer, "step", None)):
        raise TypeError(
            "optimizer must be an optimiser of numbaspike.optim (with .params and .step), "
            f"got {type(optimizer).__name__}"
        )
    own = net.parameters()
    missing = [name for name in own if name not in params]
    extra = [name for name in params if name not in own]
    foreign = [name for name in own if name in params and params[name] is not own[name]]
    if missing or extra or foreign:
        if foreign:
            detail = (
                f"optimizer.params[{foreign[0]!r}] is not the array net.parameters()"
                f"[{foreign[0]!r}]"
            )
        else:
            detail = f"missing parameters {missing}, unexpected {extra}"
        raise ValueError(
            f"optimizer does not update the parameters of net ({detail}); build it over "
            "them, e.g. Adam(net.parameters(), lr=1e-3)"
        )


def _show_bar(progress: bool) -> bool:
    """Draw a progress bar only where it redraws in place: a terminal or a notebook; in a log
    file every refresh would be a new line."""
    if not progress:
        return False
    from tqdm.asyncio import tqdm as console_tqdm
    from tqdm.auto import tqdm

    if tqdm is not console_tqdm:  # tqdm.auto chose the notebook widget
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):  # a closed or detached stream
        return False


# ---------------------------------------------------------------------- batches
def _iterate(data, batch_size, shuffle, seed, net: Sequential):
    from .data import iterate_batches

    rng = np.random.default_rng(seed) if shuffle else None
    return iterate_batches(
        data, batch_size, shuffle=shuffle, seed=rng, dtype=net.dtype, events=_use_events(net, data)
    )


def _use_events(net: Sequential, data) -> bool:
    """Feed the batches as events (:meth:`~numbaspike.data.SpikeDataset.batch_events`) when
    the data are spikes and the first layer is a :class:`~numbaspike.layers.Linear` that
    would take its event path at the data's mean density anyway: no dense batch to build and
    scan."""
    from .data import SpikeDataset
    from .kernels.projection import use_sparse_path
    from .layers import Linear

    first = net.layers[0]
    if not isinstance(data, SpikeDataset) or not isinstance(first, Linear):
        return False
    density = data.n_events / max(1, len(data) * data.steps * data.n_inputs)
    return use_sparse_path(density, first.n_out)


# ---------------------------------------------------------------------- training
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
    net : Sequential
    x : ndarray (T, B, n_in), or SpikeEvents for a Linear first layer
    labels : ndarray (B,)
    loss : callable ``loss(y, labels) -> (value, dL/dy)`` with ``predict(y)``
    optimizer : an optimiser from :mod:`numbaspike.optim` over ``net.parameters()``
        Its parameter arrays must be those of ``net`` (``Adam(net.parameters())``).
    regularizers : sequence of ``(layer_index, reg)`` with ``reg(output) -> (value, grad)``
    clip_norm : float, optional
        Clip the global gradient norm to this value (> 0).

    Returns
    -------
    (loss value including regularisers, number of correct predictions)

    Raises
    ------
    TypeError, ValueError
        An argument is of the wrong type or value (the message names it), e.g. an
        optimiser over another network's parameters.
    TrainingDivergedError
        The loss or a gradient is not finite; the parameters are left unchanged.
    """
    _check_net(net)
    _check_loss(loss)
    _check_optimizer(optimizer, net)
    regularizers = _check_regularizers(regularizers, net)
    clip_norm = _check_clip_norm(clip_norm)
    y, tape = net.forward(x)
    value, grad_y = loss(host(y), labels)  # losses run on the host, whatever the layers' backend
    output_grads = {}
    for index, reg in regularizers:
        r_value, r_grad = reg(host(tape.outputs[index]))
        value += r_value
        output_grads[index] = output_grads.get(index, 0) + r_grad
    if not math.isfinite(value):
        raise TrainingDivergedError(
            f"loss became {value}; lower the learning rate or the input scale "
            "(parameters keep their last finite values)"
        )
    net.zero_grad()
    net.backward(grad_y, tape, output_grads=output_grads)
    _apply_gradients(net, net.gradients(), optimizer, clip_norm)
    correct = int(np.sum(loss.predict(y) == labels))
    return float(value), correct


def _apply_gradients(net: Sequential, grads: dict, optimizer, clip_norm: float | None) -> None:
    """Refuse non-finite gradients, clip, take the optimiser step and constrain."""
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


def evaluate(
    net: Sequential, data, loss, batch_size: int = 256, comm=None, mpi_timeout: float = 300.0
) -> tuple[float, float]:
    """Mean loss and accuracy of ``net`` on ``data``.

    Parameters
    ----------
    net : Sequential
        Its first layer takes ``data.n_inputs`` inputs.
    data : SpikeDataset or CurrentDataset
    loss : loss of :mod:`numbaspike.losses` (``loss(y, labels) -> (value, grad)``)
    batch_size : int
        Samples per forward pass (> 0); the result does not depend on it.
    comm : mpi4py communicator, optional
        Evaluate data-parallel: each rank takes a contiguous part of ``data`` and the sums
        are combined (see :mod:`numbaspike.distributed`); every rank gets the result.
    mpi_timeout : float
        Seconds a rank waits for another before stopping every rank.

    Returns
    -------
    (mean loss, accuracy) over all samples of ``data``.
    """
    if comm is not None:
        from .distributed import Group, abort_on_error

        group = Group(comm, mpi_timeout)
        with abort_on_error(group):
            _check_net(net)
            _check_data("data", data, net)
            _check_loss(loss)
            return _evaluate_shards(net, data, loss, _check_batch_size(batch_size), group)
    _check_net(net)
    _check_data("data", data, net)
    _check_loss(loss)
    return _evaluate(net, data, loss, _check_batch_size(batch_size))


def _evaluate(net: Sequential, data, loss, batch_size: int) -> tuple[float, float]:
    total_loss = 0.0
    correct = 0
    for x, labels in _iterate(data, batch_size, False, None, net):
        y, _ = net.forward(x)
        y = host(y)
        value, _ = loss(y, labels)
        total_loss += value * len(labels)
        correct += int(np.sum(loss.predict(y) == labels))
    return total_loss / len(data), correct / len(data)


def _evaluate_shards(net: Sequential, data, loss, batch_size: int, group) -> tuple[float, float]:
    """:func:`_evaluate` with each rank on a contiguous part of ``data``, sums combined."""
    from .distributed import shard

    idx = np.arange(len(data), dtype=np.int64)[shard(len(data), group.rank, group.size)]
    dtype = data._batch_dtype(net.dtype)
    events = _use_events(net, data)
    sums = np.zeros(2)
    for start in range(0, len(idx), batch_size):
        part = idx[start : start + batch_size]
        labels = data.labels[part]
        y, _ = net.forward(data._batch(part, dtype, events))
        y = host(y)
        value, _ = loss(y, labels)
        sums += (value * len(part), int(np.sum(loss.predict(y) == labels)))
    total = group.sum(sums, "evaluation")
    return float(total[0]) / len(data), float(total[1]) / len(data)


def _shard_batches(data, batch_size: int, seed, net: Sequential, group):
    """The rank's shard of every global batch of one epoch (the one-process order):
    ``(x or None for an empty shard, labels, global batch size)``."""
    from .distributed import shard

    order = np.random.default_rng(seed).permutation(len(data))  # the order _iterate gives
    dtype = data._batch_dtype(net.dtype)
    events = _use_events(net, data)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        part = batch[shard(len(batch), group.rank, group.size)]
        x = data._batch(part, dtype, events) if len(part) else None
        yield x, data.labels[part].copy(), len(batch)


def _shard_step(net, x, labels, n_batch, loss, optimizer, regularizers, clip_norm, group, reds):
    """:func:`train_step` on a rank's shard: its gradient, weighted by each loss term's
    reduction, combined over the ranks in rank order, then the same optimiser step on every
    rank. Returns the global-batch loss value and number of correct predictions."""
    from .distributed import batch_weight

    params = net.parameters()
    net.zero_grad()
    value, correct = 0.0, 0
    if len(labels):
        y, tape = net.forward(x)
        y_host = host(y)
        loss_value, grad_y = loss(y_host, labels)
        w = batch_weight(reds[0], len(labels), n_batch)
        value = w * loss_value
        grad_y = grad_y * grad_y.dtype.type(w)
        output_grads = {}
        for (index, reg), red in zip(regularizers, reds[1:], strict=True):
            r_value, r_grad = reg(host(tape.outputs[index]))
            wr = batch_weight(red, len(labels), n_batch)
            value += wr * r_value
            output_grads[index] = output_grads.get(index, 0) + r_grad * r_grad.dtype.type(wr)
        if math.isfinite(value):  # else every rank raises below, after the combination
            net.backward(grad_y, tape, output_grads=output_grads)
        correct = int(np.sum(loss.predict(y_host) == labels))
    grads = net.gradients()
    flat = np.concatenate([grads[n].ravel() for n in params] + [np.array([value, correct])])
    total = group.sum(flat.astype(np.float64), "the gradient combination")
    value, correct = float(total[-2]), int(total[-1])
    if not math.isfinite(value):
        raise TrainingDivergedError(
            f"loss became {value}; lower the learning rate or the input scale "
            "(parameters keep their last finite values)"
        )
    offset = 0
    for g in grads.values():
        g[...] = total[offset : offset + g.size].reshape(g.shape)
        offset += g.size
    _apply_gradients(net, grads, optimizer, clip_norm)
    return value, correct


def _describe(obj) -> str:
    """``repr(obj)`` where its class defines one, else its class name (a default repr holds
    a memory address, which differs from rank to rank)."""
    if type(obj).__repr__ is object.__repr__:
        return type(obj).__qualname__
    return repr(obj)


def _start_ranks(group, net, train, val, loss, optimizer, regularizers, settings) -> tuple:
    """Check that every rank runs the same training (else the same error on every rank),
    give every rank rank 0's parameters, and return the reductions of the loss terms."""
    from .distributed import fingerprint, reduction_of

    reds = (reduction_of(loss, "loss"),) + tuple(
        reduction_of(reg, f"regularizers[{k}]") for k, (_, reg) in enumerate(regularizers)
    )

    def data_digest(data):
        if data is None:
            return None
        arrays = [data.labels] + [getattr(data, f"_{n}", None) for n in ("times", "units")]
        sizes = (len(data), data.n_inputs, data.steps, data.n_classes)
        return fingerprint(sizes) + "".join(fingerprint(a) for a in arrays if a is not None)

    group.check_same(
        {
            "network": fingerprint(net.config()),
            "training data": data_digest(train),
            "validation data": data_digest(val),
            "loss": _describe(loss),
            "optimizer": f"{type(optimizer).__name__} lr={getattr(optimizer, 'lr', None)!r}",
            "regularizers": repr([(i, _describe(r)) for i, r in regularizers]),
            **{name: repr(value) for name, value in settings.items()},
        },
        "training settings",
    )
    params = net.parameters()
    flat = np.concatenate([p.ravel().astype(np.float64) for p in params.values()])
    flat = group.broadcast(flat, "the parameter broadcast")
    offset = 0
    for p in params.values():
        p[...] = flat[offset : offset + p.size].reshape(p.shape)
        offset += p.size
    return reds


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
    comm=None,
    mpi_timeout: float = 300.0,
    check_every: int | None = None,
    rank_threads: int | None = None,
) -> History:
    """Train ``net`` for ``epochs`` epochs (from ``start_epoch``) and return the :class:`History`.

    Parameters
    ----------
    net : Sequential
        Its first layer takes ``train.n_inputs`` inputs.
    train, val : SpikeDataset or CurrentDataset
        Training and (optional) validation data: binary spikes, or analog input currents
        (fed to the network as they are).
    loss : loss object of :mod:`numbaspike.losses` (``loss(y, labels) -> (value, grad)``)
    optimizer : optimiser of :mod:`numbaspike.optim`
        Built over ``net.parameters()`` (the same arrays, not copies).
    epochs : int
        Index of the last epoch + 1: training runs epochs ``start_epoch .. epochs-1``.
    batch_size : int
        Training samples per step (> 0).
    seed : int
        Seeds the batch order (epoch ``e`` uses ``default_rng([seed, e])``), >= 0.
    regularizers : sequence of ``(layer_index, reg)``
        Losses on intermediate outputs, e.g. firing-rate regularisers on hidden spikes.
    clip_norm : float, optional
        Clip the global gradient norm of every step to this value (> 0).
    start_epoch, history
        Resume an interrupted run (see :func:`numbaspike.checkpoint.load_checkpoint`).
    checkpoint_path : path, optional
        Save network, optimiser state and history there after every epoch (atomically).
    progress : bool
        Print a summary line per epoch, and show a tqdm progress bar with loss and accuracy
        when stderr is a terminal (or in a notebook; a log file gets no bar).
    on_epoch_end : callable, optional
        Called as ``on_epoch_end(epoch, history)`` after every epoch (and its checkpoint).
    comm : mpi4py communicator, optional
        Train data-parallel on its ranks (:mod:`numbaspike.distributed`): each rank takes a
        contiguous shard of every global batch of ``batch_size``, the gradients of the same
        global-batch loss are combined in rank order, and every rank takes the same
        optimiser step. The loss and regularisers must declare their ``reduction``. Rank 0
        alone prints progress and writes the checkpoint; parameters start as rank 0's;
        ranks started with different settings or data stop with an error naming them.
    mpi_timeout : float
        Seconds a rank waits for another in a collective before stopping every rank.
    check_every : int, optional
        With ``comm``: check every that many steps that the parameters are equal on all
        ranks (a debugging aid; an error names the differing ranks).
    rank_threads : int, optional
        With ``comm``: Numba and OpenBLAS threads per rank (default: the node's cores
        divided by the ranks on the node).

    Returns
    -------
    History
        ``history`` (when given) with the new epochs appended.

    Raises
    ------
    TypeError, ValueError
        An argument is of the wrong type or value; the message names it.
    TrainingDivergedError
        The loss or a gradient became NaN/inf.
    KeyboardInterrupt
        Passed on as it is; the checkpoint of the last finished epoch is already on disk.
    """
    args = dict(locals())
    if comm is None:
        return _fit(**args)
    from .distributed import Group, abort_on_error

    group = Group(comm, mpi_timeout)
    with abort_on_error(group):
        return _fit(**args, group=group)


def _fit(
    net, train, loss, optimizer, epochs, batch_size, val, seed, regularizers, clip_norm,
    start_epoch, history, checkpoint_path, checkpoint_config, progress, on_epoch_end, comm,
    mpi_timeout, check_every, rank_threads, group=None,
) -> History:  # fmt: skip
    from tqdm.auto import tqdm

    _check_net(net)
    _check_data("train", train, net)
    if val is not None:
        _check_data("val", val, net)
    _check_loss(loss)
    _check_optimizer(optimizer, net)
    epochs = _check_count("epochs", epochs)
    start_epoch = _check_count("start_epoch", start_epoch)
    batch_size = _check_batch_size(batch_size)
    seed = _check_seed(seed)
    regularizers = _check_regularizers(regularizers, net)
    clip_norm = _check_clip_norm(clip_norm)
    if history is not None and not isinstance(history, History):
        raise TypeError(f"history must be a History or None, got {type(history).__name__}")
    if on_epoch_end is not None and not callable(on_epoch_end):
        raise TypeError(f"on_epoch_end must be callable, got {type(on_epoch_end).__name__}")
    history = history if history is not None else History()
    n_batches = math.ceil(len(train) / batch_size)
    reds = None
    if group is not None:
        from .distributed import fingerprint, set_rank_threads

        if check_every is not None:
            check_every = _check_count("check_every", check_every) or None
        if rank_threads is not None:
            from .runtime.threads import set_num_threads

            set_num_threads(rank_threads)
        else:
            set_rank_threads(group)
        settings = {
            "epochs": epochs, "start_epoch": start_epoch, "batch_size": batch_size,
            "seed": seed, "clip_norm": clip_norm, "history": len(history.train_loss),
        }  # fmt: skip
        reds = _start_ranks(group, net, train, val, loss, optimizer, regularizers, settings)
        progress = progress and group.rank == 0
    show_bar = _show_bar(progress)
    steps = 0
    for epoch in range(start_epoch, epochs):
        start = time.perf_counter()
        seen = correct = 0
        loss_sum = 0.0
        if group is None:
            batches = (
                (x, y, len(y)) for x, y in _iterate(train, batch_size, True, [seed, epoch], net)
            )
        else:
            batches = _shard_batches(train, batch_size, [seed, epoch], net, group)
        with tqdm(
            batches,
            total=n_batches,
            desc=f"epoch {epoch + 1}/{epochs}",
            disable=not show_bar,
            leave=False,
        ) as bar:
            for x, labels, n_batch in bar:
                if group is None:
                    value, ok = train_step(
                        net, x, labels, loss, optimizer, regularizers, clip_norm
                    )
                else:
                    value, ok = _shard_step(
                        net, x, labels, n_batch, loss, optimizer, regularizers, clip_norm,
                        group, reds,
                    )  # fmt: skip
                    steps += 1
                    if check_every and steps % check_every == 0:
                        digest = fingerprint(
                            np.concatenate([p.ravel() for p in net.parameters().values()])
                        )
                        group.check_same({"parameters": digest}, f"parameters at step {steps}")
                history.step_loss.append(value)
                seen += n_batch
                correct += ok
                loss_sum += value * n_batch
                if show_bar:
                    bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}")
        history.train_loss.append(loss_sum / seen)
        history.train_acc.append(correct / seen)
        if val is not None and group is not None:
            v_loss, v_acc = _evaluate_shards(net, val, loss, 256, group)
            history.val_loss.append(v_loss)
            history.val_acc.append(v_acc)
        elif val is not None:
            v_loss, v_acc = _evaluate(net, val, loss, 256)
            history.val_loss.append(v_loss)
            history.val_acc.append(v_acc)
        history.epoch_time.append(time.perf_counter() - start)
        if progress:
            msg = (
                f"epoch {epoch + 1}/{epochs}: loss {history.train_loss[-1]:.4f} "
                f"acc {history.train_acc[-1]:.3f}"
            )
            if history.val_acc:
                msg += f" | val loss {history.val_loss[-1]:.4f} acc {history.val_acc[-1]:.3f}"
            tqdm.write(msg + f" ({history.epoch_time[-1]:.1f} s)")
        if checkpoint_path is not None and (group is None or group.rank == 0):
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
