"""The ``numbaspike`` command: ``numbaspike train`` and ``numbaspike gradcheck``."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .run_config import (
    RUN_DEFAULTS,
    TASK_DEFAULTS,
    TASKS,
    RunConfigError,
    recorded_run_config,
    resolve_run_config,
    resume_conflicts,
)
from .surrogates import SURROGATE_CODES


def _neurons() -> tuple[str, ...]:
    """Neuron models of the hidden layer: every registered spiking model, LIF first."""
    from .models import registered_models

    spiking = sorted(name for name, m in registered_models().items() if m.spiking)
    return ("lif", *(name for name in spiking if name != "lif"))


#: Exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
DEFAULT_OUT = Path("numbaspike-run")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a non-negative integer, got {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be non-negative, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return value


def _per_task(name: str) -> str:
    return ", ".join(f"{task} {TASK_DEFAULTS[task][name]}" for task in TASKS)


def _add_train_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a recurrent SNN (default: the built-in Randman task)",
        description=(
            "Train Linear -> recurrent spiking layer (LIF by default, see --neuron) -> Linear -> "
            "LI with max-over-time cross-entropy and "
            "Adam, show progress, print the test accuracy, and save a checkpoint and plots "
            "(spike raster, membrane traces, training curves) in --out. With --resume the run "
            "continues from --out/checkpoint.npz with the configuration recorded there: give "
            "only --epochs (larger, to train on) and the display options, or the same values."
        ),
    )
    d = RUN_DEFAULTS
    p.add_argument("--task", choices=TASKS, help=f"data set (default: {d['task']})")
    p.add_argument(
        "--path", type=Path, help="HDF5 file for --task shd (Spiking Heidelberg Digits layout)"
    )
    p.add_argument(
        "--hidden", type=_positive_int, help=f"recurrent LIF neurons (default: {d['hidden']})"
    )
    p.add_argument(
        "--neuron",
        choices=_neurons(),
        help=f"neuron model of the recurrent layer (default: {d['neuron']}; see numbaspike.models)",
    )
    p.add_argument(
        "--epochs",
        type=_positive_int,
        help=f"epochs to train in all (default per task: {_per_task('epochs')})",
    )
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        help=f"samples per training batch (default: {d['batch_size']})",
    )
    p.add_argument("--lr", type=_positive_float, help=f"Adam learning rate (default: {d['lr']})")
    p.add_argument(
        "--surrogate",
        choices=sorted(SURROGATE_CODES),
        help=f"surrogate spike derivative of the backward pass (default: {d['surrogate']})",
    )
    p.add_argument(
        "--alpha", type=_positive_float, help=f"surrogate sharpness (default: {d['alpha']})"
    )
    p.add_argument(
        "--steps",
        type=_positive_int,
        help=f"time steps per sample (default per task: {_per_task('steps')})",
    )
    p.add_argument(
        "--input-scale",
        type=_positive_float,
        help=f"gain of the input weights (default per task: {_per_task('input_scale')}; "
        "5x that for --neuron lif_box, which has no synaptic current)",
    )
    p.add_argument(
        "--max-samples",
        type=_positive_int,
        help="use at most this many samples, for quick runs (default: all)",
    )
    p.add_argument(
        "--seed",
        type=_non_negative_int,
        help=f"seed of the data, the split, the initial weights and the batch order "
        f"(default: {d['seed']})",
    )
    p.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        help=f"floating-point type of the network (default: {d['dtype']})",
    )
    p.add_argument(
        "--out", type=Path, help=f"output folder, created when needed (default: {DEFAULT_OUT})"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run whose checkpoint is in --out (checkpoint.npz)",
    )
    p.add_argument(
        "--init-from",
        type=Path,
        metavar="MODEL.nir",
        help="start from the network of a NIR file (numbaspike export writes one) instead of "
        "a new one; it must take the task's inputs and end in an LI readout with one output "
        "per class, and --hidden, --neuron, --dtype, --surrogate, --alpha and --input-scale "
        "cannot be given with it",
    )
    p.add_argument(
        "--dt",
        type=_positive_float,
        help="time step (s) of the --init-from network, for a file that gives none (default: "
        "the file's)",
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="train data-parallel on the ranks of MPI_COMM_WORLD (start with mpiexec or srun; "
        "needs the mpi extra): each rank takes a shard of every batch, rank 0 prints and writes",
    )
    p.add_argument(
        "--mpi-timeout",
        type=_positive_float,
        default=300.0,
        help="with --distributed: seconds a rank waits for another before stopping every rank "
        "(default: 300)",
    )
    p.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _add_gradcheck_parser(sub) -> None:
    p = sub.add_parser(
        "gradcheck",
        help="check every kernel's gradients against finite differences (smooth mode)",
        description=(
            "For every layer kind x surrogate x reset x detach option, compare the analytic "
            "BPTT gradient with central finite differences of the smooth model on a small random "
            "problem, print a table, and exit non-zero if any case fails."
        ),
    )
    p.add_argument(
        "--torch",
        action="store_true",
        help="also compare with a PyTorch autograd reference (needs torch installed)",
    )
    p.add_argument(
        "--tol",
        type=_positive_float,
        default=1e-6,
        help="largest relative error that passes (default: 1e-06)",
    )
    p.add_argument(
        "--seed",
        type=_non_negative_int,
        default=0,
        help="seed of the random problems (default: 0)",
    )


def _add_nir_parsers(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write the network of a checkpoint as a NIR file",
        description=(
            "Write the network of a numbaspike checkpoint (e.g. out/checkpoint.npz of "
            "numbaspike train) as a NIR graph (HDF5) that other simulators and neuromorphic "
            "toolchains read. Needs the nir extra: pip install 'numbaspike[nir]'."
        ),
    )
    p.add_argument("checkpoint", type=Path, help="checkpoint file (.npz)")
    p.add_argument("out", type=Path, help="NIR file to write (.nir)")
    p = sub.add_parser(
        "inspect",
        help="print the layers of a NIR file as numbaspike reads them",
        description=(
            "Read a NIR file and print the numbaspike network it describes: each layer's "
            "type, sizes and parameters (a per-neuron parameter as its range)."
        ),
    )
    p.add_argument("model", type=Path, help="NIR file (.nir)")
    p.add_argument(
        "--dt",
        type=_positive_float,
        help="time step (s) for a file that gives none (default: the file's)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="numbaspike",
        description="Spiking neural networks on Numba kernels with verified surrogate-gradient BPTT.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train_parser(sub)
    _add_gradcheck_parser(sub)
    _add_nir_parsers(sub)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def load_task(
    task: str, steps: int, seed: int, path: Path | None = None, max_samples: int | None = None
):
    """(train, test) datasets of a task (80/20 stratified split)."""
    from . import data

    if task == "randman":
        ds = data.make_randman(steps=steps, seed=seed)
    elif task == "digits":
        ds = data.load_digits_spikes(steps=steps, seed=seed)
    else:
        ds = data.load_shd(path, steps=steps)
    if max_samples is not None and max_samples < len(ds):
        ds = ds.subset(np.random.default_rng(seed).permutation(len(ds))[:max_samples])
    return data.train_test_split(ds, test_fraction=0.2, seed=seed)


def build_network(n_in: int, n_out: int, config: dict):
    """The CLI's network for a resolved run configuration (see :mod:`numbaspike.run_config`)."""
    from .layers import LI, Linear
    from .models import model_named
    from .network import Sequential
    from .neuron_layers import named_form

    rng = np.random.default_rng(config["seed"])
    dtype = config["dtype"]
    hidden = config["hidden"]
    spiking = {"surrogate": config["surrogate"], "alpha": config["alpha"]}
    p = model_named(config["neuron"]).parameters().replace(**spiking)
    input_layer = Linear(n_in, hidden, seed=rng, scale=config["input_scale"], dtype=dtype)
    hidden_layer = named_form(config["neuron"], recurrent=True)(
        hidden, p, seed=rng, scale=1.0, autapses=False, dtype=dtype
    )
    return Sequential(
        input_layer,
        hidden_layer,
        Linear(hidden, n_out, seed=rng, scale=1.0, dtype=dtype),
        LI(n_out, dtype=dtype),
    )


class _UsageError(Exception):
    """A problem with the command line or its files, reported in one line with exit status 2."""


def _check_out_folder(out: Path) -> None:
    """Fail early, creating nothing, if ``out`` cannot become the run's output folder."""
    if out.exists() and not out.is_dir():
        raise _UsageError(f"--out {out} is an existing file, not a folder")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise _UsageError(f"--out {out}: {parent} is a file, so no folder can be made there")
    try:  # a real probe: permission bits do not tell for root or read-only mounts
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as err:
        raise _UsageError(f"--out {out}: cannot write in {parent} ({err.strerror})") from None


def _resume_state(args, out: Path):
    """The checkpoint of ``--resume`` and the run configuration to continue with."""
    from .checkpoint import CheckpointError, load_checkpoint

    ckpt_path = out / "checkpoint.npz"
    if not ckpt_path.is_file():
        raise _UsageError(f"cannot resume: no checkpoint at {ckpt_path}")
    try:
        ckpt = load_checkpoint(ckpt_path)
        config = recorded_run_config(ckpt.config)
    except CheckpointError as err:
        raise _UsageError(f"cannot resume: {err}") from None
    except RunConfigError as err:
        raise _UsageError(f"cannot resume from {ckpt_path}: {err}") from None
    conflicts = resume_conflicts(vars(args), config)
    if conflicts:
        raise _UsageError(
            f"cannot resume: a resumed run keeps the configuration of {ckpt_path}, but "
            + "; ".join(conflicts)
            + ". Drop these options, or start a new run in another --out folder."
        )
    if args.epochs is not None:
        config["epochs"] = args.epochs
    if config["epochs"] <= ckpt.epoch:
        raise _UsageError(
            f"cannot resume: {ckpt_path} has finished {ckpt.epoch} epochs already; give "
            f"--epochs N with N > {ckpt.epoch} to train further"
        )
    return ckpt, config


def cmd_train(args) -> int:
    from .losses import MaxOverTimeCrossEntropy
    from .optim import Adam
    from .train import evaluate, fit

    t0 = time.perf_counter()
    out: Path = args.out if args.out is not None else DEFAULT_OUT
    _check_out_folder(out)
    _check_init_from_options(args)
    comm = _communicator(args)
    lead = comm is None or comm.Get_rank() == 0  # rank 0 alone prints and writes

    def say(*parts, **kwargs) -> None:
        if lead:
            print(*parts, **kwargs)

    if args.resume:
        ckpt, config = _resume_state(args, out)
    else:
        ckpt, config = None, resolve_run_config(vars(args))
    if config["task"] == "shd" and config["path"] is None:
        raise _UsageError("--task shd needs --path FILE (an SHD/SSC HDF5 file)")
    if config["task"] != "shd" and config["path"] is not None:
        raise _UsageError(f"--path is read by --task shd only (the task is {config['task']})")
    try:
        train, test = load_task(
            config["task"],
            config["steps"],
            config["seed"],
            config["path"] and Path(config["path"]),
            config["max_samples"],
        )
    except (FileNotFoundError, ValueError, ImportError) as err:
        raise _UsageError(str(err)) from None
    say(
        f"task {config['task']}: {len(train)} train / {len(test)} test samples, "
        f"{train.n_inputs} inputs, {train.steps} steps, {train.n_classes} classes"
    )
    ckpt_path = out / "checkpoint.npz"
    loss = MaxOverTimeCrossEntropy()
    start_epoch, history = 0, None
    if ckpt is not None:
        net, optimizer = ckpt.network, ckpt.make_optimizer()
        start_epoch, history = ckpt.epoch, ckpt.history
        say(f"resuming from {ckpt_path} after epoch {start_epoch} of {config['epochs']}")
    else:
        if args.init_from is not None:
            net = _init_from(args, config, train.n_inputs, train.n_classes)
        else:
            net = build_network(train.n_inputs, train.n_classes, config)
        optimizer = Adam(net.parameters(), lr=config["lr"])
    plots = not args.no_plots and _can_plot()
    say(net)
    saved_epochs = start_epoch if ckpt is not None else None  # of the last checkpoint on disk

    def note_checkpoint(epoch: int, _history) -> None:
        nonlocal saved_epochs
        saved_epochs = epoch + 1  # fit calls this after the epoch's checkpoint is written

    try:
        history = fit(
            net, train, loss, optimizer, config["epochs"], batch_size=config["batch_size"],
            val=test, seed=config["seed"], start_epoch=start_epoch, history=history,
            checkpoint_path=ckpt_path, checkpoint_config=config, progress=not args.quiet,
            on_epoch_end=note_checkpoint, comm=comm, mpi_timeout=args.mpi_timeout,
        )  # fmt: skip
    except KeyboardInterrupt:
        say(_interrupted_message(out, saved_epochs), file=sys.stderr)
        return EXIT_INTERRUPTED
    test_loss, test_acc = evaluate(net, test, loss, comm=comm, mpi_timeout=args.mpi_timeout)
    elapsed = time.perf_counter() - t0
    summary = {
        "task": config["task"],
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "chance": 1.0 / train.n_classes,
        "epochs": config["epochs"],
        "seconds": elapsed,
        "mean_epoch_seconds": float(np.mean(history.epoch_time)) if history.epoch_time else None,
    }
    if not lead:
        return 0
    print(
        f"test accuracy: {test_acc:.3f} (chance {1.0 / train.n_classes:.3f}); total {elapsed:.1f} s"
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if plots:
        _write_plots(net, test, history, out)
    written = "checkpoint, summary and plots" if plots else "checkpoint and summary"
    print(f"{written} written to {out}/")
    return 0


def _interrupted_message(out: Path, epochs_saved: int | None) -> str:
    if epochs_saved is None:
        return "\ninterrupted before the first epoch ended: this run saved no checkpoint"
    return (
        f"\ninterrupted: {out / 'checkpoint.npz'} holds the run after epoch {epochs_saved}; "
        f"continue it with: numbaspike train --resume --out {out}"
    )


def _can_plot() -> bool:
    """Whether matplotlib is importable; if not, say once that the plots are skipped."""
    if importlib.util.find_spec("matplotlib") is not None:
        return True
    print(
        "plots skipped: matplotlib is not installed (pip install numbaspike[plot]); "
        "use --no-plots to silence this note"
    )
    return False


def _write_plots(net, test, history, out: Path) -> None:
    from . import data
    from .plot import plot_raster, plot_traces, plot_training

    x, _ = next(iter(data.iterate_batches(test, batch_size=4, shuffle=False)))
    _, tape = net.forward(x)
    plot_raster(x, dt=net[1].dt, path=out / "input_raster.png", title="Input spikes")
    plot_raster(
        tape.outputs[1], dt=net[1].dt, path=out / "hidden_raster.png", title="Hidden spikes"
    )
    plot_traces(
        tape.outputs[-1], dt=net[-1].dt, path=out / "readout_traces.png", title="Readout membrane"
    )
    plot_training(history, path=out / "training.png")
    import matplotlib.pyplot as plt

    plt.close("all")


def _read_nir(path: Path, dt: float | None):
    """The network of a NIR file, or a usage error naming the file (and the extra)."""
    try:
        from .nir import NIRError, load
    except ImportError as err:  # pragma: no cover - numbaspike.nir imports nir lazily
        raise _UsageError(str(err)) from None
    try:
        return load(path, dt=dt)
    except (ImportError, FileNotFoundError, NIRError) as err:
        raise _UsageError(str(err)) from None


def cmd_export(args) -> int:
    from .checkpoint import CheckpointError, load_checkpoint
    from .nir import NIRError, save

    try:
        net = load_checkpoint(args.checkpoint).network
    except (FileNotFoundError, CheckpointError) as err:
        raise _UsageError(str(err)) from None
    try:
        path = save(net, args.out)
    except (ImportError, NIRError) as err:
        raise _UsageError(str(err)) from None
    except OSError as err:
        raise _UsageError(f"cannot write {args.out}: {err.strerror or err}") from None
    print(f"wrote {path}: {len(net.layers)} layers, {net.layers[0].n_in} inputs, "
          f"{net.layers[-1].n_out} outputs")  # fmt: skip
    return 0


def cmd_inspect(args) -> int:
    from .nir import describe

    net = _read_nir(args.model, args.dt)
    print(f"{args.model}: {net.layers[0].n_in} inputs -> {net.layers[-1].n_out} outputs")
    print(describe(net))
    return 0


def _communicator(args):
    """``MPI.COMM_WORLD`` for ``--distributed`` (None otherwise), or a usage error naming
    the extra to install."""
    if not args.distributed:
        return None
    from .distributed import mpi

    try:
        return mpi().COMM_WORLD
    except ImportError as err:
        raise _UsageError(f"--distributed: {err}") from None


def _check_init_from_options(args) -> None:
    """``--init-from`` takes the network from its file: the options that describe one are
    refused (before any data is loaded)."""
    if args.resume and args.init_from is not None:
        raise _UsageError("--resume continues a run's own network; it cannot take --init-from")
    if args.dt is not None and args.init_from is None:
        raise _UsageError("--dt is the time step of an --init-from network; give --init-from")
    if args.init_from is None:
        return
    given = [f"--{name.replace('_', '-')}" for name in _FIXED_BY_INIT_FROM
             if getattr(args, name) is not None]  # fmt: skip
    if given:
        raise _UsageError(
            f"--init-from {args.init_from} fixes the network, so {', '.join(given)} cannot be "
            "given with it"
        )


def _init_from(args, config: dict, n_inputs: int, n_classes: int):
    """The network of ``--init-from``, checked against the task; ``config`` records it."""
    from .neuron_layers import Neuron

    net = _read_nir(args.init_from, args.dt)
    last = net.layers[-1]
    if not isinstance(last, Neuron) or last.model.name != "li":
        raise _UsageError(
            f"--init-from {args.init_from}: the network must end in an LI readout, it ends in "
            f"{type(last).__name__}"
        )
    if last.n_out != n_classes:
        raise _UsageError(
            f"--init-from {args.init_from}: the readout has {last.n_out} outputs, the task has "
            f"{n_classes} classes"
        )
    if net.layers[0].n_in != n_inputs:
        raise _UsageError(
            f"--init-from {args.init_from}: the network takes {net.layers[0].n_in} inputs, the "
            f"task has {n_inputs}"
        )
    spiking = [layer for layer in net.layers if isinstance(layer, Neuron) and layer.model.spiking]
    if spiking:
        first = spiking[0]
        config.update(hidden=first.n_out, neuron=first.model.name)
        config.update(surrogate=first.p.surrogate, alpha=float(first.p.alpha))
    config["dtype"] = last.dtype.name
    config["init_from"] = str(Path(args.init_from).resolve())
    return net


#: Options that describe the network, which --init-from takes from its file instead.
_FIXED_BY_INIT_FROM = ("hidden", "neuron", "dtype", "surrogate", "alpha", "input_scale")


def cmd_gradcheck(args) -> int:
    from .gradcheck import run_gradcheck_suite

    if args.torch and importlib.util.find_spec("torch") is None:
        raise _UsageError("--torch needs PyTorch, which is not installed (pip install torch)")
    try:
        report = run_gradcheck_suite(tol=args.tol, seed=args.seed, torch=args.torch)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(report)
    return 0 if report.ok else 1


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    command = {
        "train": cmd_train,
        "gradcheck": cmd_gradcheck,
        "export": cmd_export,
        "inspect": cmd_inspect,
    }[args.command]
    try:
        return command(args)
    except _UsageError as err:
        print(f"numbaspike {args.command}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted before training started: nothing was saved", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
