"""Plots: spike rasters, membrane traces and training curves (matplotlib, imported lazily).

Each function draws into a new figure, saves it when ``path`` is given (PNG by the
extension) and returns the figure. matplotlib is an optional extra:
``pip install numbaspike[plot]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_raster", "plot_traces", "plot_training"]


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib: install the 'plot' extra (pip install numbaspike[plot])"
        ) from None
    if matplotlib.get_backend().lower() not in (
        "agg",
        "module://matplotlib_inline.backend_inline",
    ):
        try:
            matplotlib.use("Agg")
        except Exception:  # pragma: no cover - backend already fixed by the user
            pass
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, path):
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig


def _select(arr, name: str, batch: int) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim == 3:
        if not 0 <= batch < a.shape[1]:
            raise ValueError(
                f"batch index {batch} out of range for {name} with batch size {a.shape[1]}"
            )
        a = a[:, batch, :]
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (T, N) or (T, B, N), got {np.shape(arr)}")
    return a


def plot_raster(spikes, dt: float = 1e-3, batch: int = 0, path=None, title: str = "Spike raster"):
    """Raster of ``spikes`` (T, N) or (T, B, N) for one batch element; time axis in ms."""
    plt = _pyplot()
    s = _select(spikes, "spikes", batch)
    t_idx, n_idx = np.nonzero(s)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.scatter(t_idx * dt * 1e3, n_idx, s=2, marker="|", color="k")
    ax.set_xlim(0, s.shape[0] * dt * 1e3)
    ax.set_ylim(-0.5, s.shape[1] - 0.5)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("neuron")
    ax.set_title(f"{title} ({len(t_idx)} spikes, rate {s.mean():.3f} per step)")
    return _finish(fig, path)


def plot_traces(
    v,
    dt: float = 1e-3,
    batch: int = 0,
    neurons=None,
    v_th: float | None = None,
    path=None,
    title="Membrane",
):
    """Membrane traces ``v`` (T, N) or (T, B, N) of a few ``neurons`` (default: first 5)."""
    plt = _pyplot()
    a = _select(v, "v", batch)
    neurons = range(min(5, a.shape[1])) if neurons is None else neurons
    t = np.arange(a.shape[0]) * dt * 1e3
    fig, ax = plt.subplots(figsize=(8, 4))
    for k in neurons:
        ax.plot(t, a[:, k], lw=1, label=f"neuron {k}")
    if v_th is not None:
        ax.axhline(v_th, color="r", ls="--", lw=0.8, label="threshold")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("membrane")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper right")
    return _finish(fig, path)


def plot_training(history, path=None, title: str = "Training"):
    """Loss and accuracy per epoch from a :class:`numbaspike.train.History`."""
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    epochs = np.arange(1, len(history.train_loss) + 1)
    ax_loss.plot(epochs, history.train_loss, "o-", label="train")
    if history.val_loss:
        ax_loss.plot(epochs[: len(history.val_loss)], history.val_loss, "o-", label="validation")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_acc.plot(epochs, history.train_acc, "o-", label="train")
    if history.val_acc:
        ax_acc.plot(epochs[: len(history.val_acc)], history.val_acc, "o-", label="validation")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_ylim(0, 1)
    ax_acc.legend()
    fig.suptitle(title)
    return _finish(fig, path)
