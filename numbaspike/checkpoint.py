"""Checkpoints: network, optimiser state, history and config in one ``.npz`` (no pickle).

Layout (all entries are plain arrays, loaded with ``allow_pickle=False``):

* ``format``: ``"numbaspike-checkpoint-v1"``; ``epoch``: epochs finished;
* ``network``: JSON of :meth:`Sequential.config`; ``config``: JSON of the run's settings;
* ``param/<name>``: every parameter; ``optim/<key>``: the optimiser's ``state_dict()``;
  ``optimizer``: JSON with its class name and hyper-parameters; ``history/<metric>``.

Files are written to a temporary file in the same folder and renamed into place, so an
interrupted save never leaves a half-written checkpoint.
"""

from __future__ import annotations

import inspect
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .network import Sequential
from .train import History

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "CheckpointError"]

FORMAT = "numbaspike-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint file is corrupted, truncated or not a numbaspike checkpoint."""


@dataclass(eq=False)
class Checkpoint:
    """What :func:`load_checkpoint` returns."""

    network: Sequential
    epoch: int
    config: dict[str, Any]
    history: History
    optimizer_state: dict[str, np.ndarray] = field(default_factory=dict)
    optimizer_config: dict[str, Any] | None = None

    def make_optimizer(self):
        """Rebuild the optimiser over ``network.parameters()`` with its saved state."""
        from . import optim

        if self.optimizer_config is None:
            raise CheckpointError("this checkpoint holds no optimiser")
        cfg = dict(self.optimizer_config)
        cls = getattr(optim, cfg.pop("type"), None)
        if cls is None:
            raise CheckpointError(
                f"unknown optimiser type in checkpoint: {self.optimizer_config['type']!r}"
            )
        opt = cls(self.network.parameters(), **cfg)
        opt.load_state_dict(self.optimizer_state)
        return opt


def _optimizer_config(optimizer) -> dict[str, Any]:
    cfg: dict[str, Any] = {"type": type(optimizer).__name__}
    for name in inspect.signature(type(optimizer).__init__).parameters:
        if name in ("self", "params"):
            continue
        if hasattr(optimizer, name):
            value = getattr(optimizer, name)
            cfg[name] = list(value) if isinstance(value, tuple) else value
    return cfg


def save_checkpoint(
    path,
    net: Sequential,
    optimizer=None,
    history: History | None = None,
    epoch: int = 0,
    config: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically; returns its path."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT),
        "epoch": np.array(int(epoch)),
        "network": np.array(json.dumps(net.config())),
        "config": np.array(json.dumps(config or {})),
    }
    for name, value in net.parameters().items():
        arrays[f"param/{name}"] = value
    if optimizer is not None:
        arrays["optimizer"] = np.array(json.dumps(_optimizer_config(optimizer)))
        for key, value in optimizer.state_dict().items():
            arrays[f"optim/{key}"] = np.asarray(value)
    if history is not None:
        for key, value in history.as_arrays().items():
            arrays[f"history/{key}"] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises ``FileNotFoundError`` for a missing file and :class:`CheckpointError` (a
    ``ValueError``) naming the problem for a corrupted or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            entries = {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise CheckpointError(
            f"checkpoint {path} is corrupted or not an .npz file: {err}"
        ) from None
    if entries.get("format", np.array("")).item() != FORMAT:
        raise CheckpointError(
            f"{path} is not a numbaspike checkpoint (missing or wrong 'format' entry)"
        )
    try:
        net = Sequential.from_config(json.loads(entries["network"].item()))
        params = {k[len("param/") :]: v for k, v in entries.items() if k.startswith("param/")}
        net.load_parameters(params)
        history = History.from_arrays(
            {k[len("history/") :]: v for k, v in entries.items() if k.startswith("history/")}
        )
        opt_cfg = json.loads(entries["optimizer"].item()) if "optimizer" in entries else None
        return Checkpoint(
            network=net,
            epoch=int(entries["epoch"]),
            config=json.loads(entries["config"].item()),
            history=history,
            optimizer_state={
                k[len("optim/") :]: v for k, v in entries.items() if k.startswith("optim/")
            },
            optimizer_config=opt_cfg,
        )
    except (KeyError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint {path} is incomplete or corrupted: {err}") from None
