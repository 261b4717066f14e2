"""The ``numbaspike`` command: ``numbaspike train`` and ``numbaspike gradcheck``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .surrogates import SURROGATE_CODES

TASKS = ("randman", "digits", "shd")


def _add_train_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a recurrent SNN (default: the built-in Randman task)",
        description=(
            "Train Linear -> recurrent LIF -> Linear -> LI with max-over-time cross-entropy and "
            "Adam, show progress, print the test accuracy, and save a checkpoint and plots "
            "(spike raster, membrane traces, training curves) in --out."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--task", choices=TASKS, default="randman", help="data set")
    p.add_argument(
        "--path", type=Path, help="HDF5 file for --task shd (Spiking Heidelberg Digits layout)"
    )
    p.add_argument("--hidden", type=int, default=128, help="recurrent LIF neurons")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default depends on the task)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    p.add_argument("--surrogate", choices=sorted(SURROGATE_CODES), default="superspike")
    p.add_argument("--alpha", type=float, default=100.0, help="surrogate sharpness")
    p.add_argument(
        "--steps", type=int, default=None, help="time steps per sample (task default if omitted)"
    )
    p.add_argument("--input-scale", type=float, default=None, help="gain of the input weights")
    p.add_argument(
        "--max-samples", type=int, default=None, help="use at most this many samples (quick runs)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--out", type=Path, default=Path("numbaspike-run"), help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.npz")
    p.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_gradcheck_parser(sub) -> None:
    p = sub.add_parser(
        "gradcheck",
        help="check every kernel's gradients against finite differences (smooth mode)",
        description=(
            "For every layer kind x surrogate x reset x detach option, compare the analytic "
            "BPTT gradient with central finite differences of the smooth model on a small random "
            "problem, print a table, and exit non-zero if any case fails."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--torch", action="store_true", help="also compare with a PyTorch autograd reference"
    )
    p.add_argument("--tol", type=float, default=1e-6, help="max relative error to pass")
    p.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="numbaspike",
        description="Spiking neural networks on Numba kernels with verified surrogate-gradient BPTT.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train_parser(sub)
    _add_gradcheck_parser(sub)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


TASK_DEFAULTS = {
    "randman": {"epochs": 15, "steps": 50, "input_scale": 10.0},
    "digits": {"epochs": 20, "steps": 30, "input_scale": 10.0},
    "shd": {"epochs": 20, "steps": 100, "input_scale": 5.0},
}


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


def build_network(n_in: int, hidden: int, n_out: int, args, input_scale: float):
    from .layers import LI, LIFRecurrent, Linear
    from .network import Sequential
    from .params import LIFParameters

    rng = np.random.default_rng(args.seed)
    p = LIFParameters(surrogate=args.surrogate, alpha=args.alpha)
    return Sequential(
        Linear(n_in, hidden, seed=rng, scale=input_scale, dtype=args.dtype),
        LIFRecurrent(hidden, p, seed=rng, scale=1.0, autapses=False, dtype=args.dtype),
        Linear(hidden, n_out, seed=rng, scale=1.0, dtype=args.dtype),
        LI(n_out, dtype=args.dtype),
    )


def cmd_train(args) -> int:
    from .checkpoint import load_checkpoint
    from .losses import MaxOverTimeCrossEntropy
    from .optim import Adam
    from .train import evaluate, fit

    defaults = TASK_DEFAULTS[args.task]
    epochs = args.epochs if args.epochs is not None else defaults["epochs"]
    steps = args.steps if args.steps is not None else defaults["steps"]
    input_scale = args.input_scale if args.input_scale is not None else defaults["input_scale"]
    t0 = time.perf_counter()
    try:
        train, test = load_task(args.task, steps, args.seed, args.path, args.max_samples)
    except (FileNotFoundError, ValueError, ImportError) as err:
        print(f"numbaspike train: {err}", file=sys.stderr)
        return 2
    print(
        f"task {args.task}: {len(train)} train / {len(test)} test samples, "
        f"{train.n_inputs} inputs, {train.steps} steps, {train.n_classes} classes"
    )
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.npz"
    loss = MaxOverTimeCrossEntropy()
    config = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"
    }
    start_epoch, history = 0, None
    if args.resume:
        try:
            ckpt = load_checkpoint(ckpt_path)
        except (FileNotFoundError, ValueError) as err:
            print(f"numbaspike train: cannot resume: {err}", file=sys.stderr)
            return 2
        net, optimizer = ckpt.network, ckpt.make_optimizer()
        start_epoch, history = ckpt.epoch, ckpt.history
        print(f"resuming from {ckpt_path} after epoch {start_epoch}")
    else:
        net = build_network(train.n_inputs, args.hidden, train.n_classes, args, input_scale)
        optimizer = Adam(net.parameters(), lr=args.lr)
    print(net)
    history = fit(
        net, train, loss, optimizer, epochs, batch_size=args.batch_size, val=test, seed=args.seed,
        start_epoch=start_epoch, history=history, checkpoint_path=ckpt_path,
        checkpoint_config=config, progress=not args.quiet,
    )  # fmt: skip
    test_loss, test_acc = evaluate(net, test, loss)
    elapsed = time.perf_counter() - t0
    summary = {
        "task": args.task,
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "chance": 1.0 / train.n_classes,
        "epochs": epochs,
        "seconds": elapsed,
        "mean_epoch_seconds": float(np.mean(history.epoch_time)) if history.epoch_time else None,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if not args.no_plots:
        _write_plots(net, test, history, out)
    print(
        f"test accuracy: {test_acc:.3f} (chance {1.0 / train.n_classes:.3f}); total {elapsed:.1f} s"
    )
    print(f"checkpoint, summary and plots written to {out}/")
    return 0


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


def cmd_gradcheck(args) -> int:
    from .gradcheck import run_gradcheck_suite

    report = run_gradcheck_suite(tol=args.tol, seed=args.seed, torch=args.torch)
    print(report)
    return 0 if report.ok else 1


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "train":
        if args.task == "shd" and args.path is None:
            parser.error("--task shd needs --path FILE (an SHD/SSC HDF5 file)")
        for name in ("hidden", "batch_size", "steps", "epochs", "max_samples"):
            value = getattr(args, name)
            if value is not None and value <= 0:
                parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")
        if args.lr <= 0 or args.alpha <= 0:
            parser.error("--lr and --alpha must be positive")
        return cmd_train(args)
    return cmd_gradcheck(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
