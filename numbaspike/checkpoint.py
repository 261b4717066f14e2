"""Checkpoints: network, optimiser state, history and config in one ``.npz`` (no pickle).

Layout (all entries are plain arrays, never Python objects):

* ``format``: ``"numbaspike-checkpoint-v1"``; ``epoch``: epochs finished;
* ``network``: JSON of :meth:`Sequential.config`; ``config``: JSON of the run's settings;
* ``param/<name>``: every parameter; ``optim/<key>``: the optimiser's ``state_dict()``;
  ``optimizer``: JSON with its class name (a key of :data:`OPTIMIZERS`) and
  hyper-parameters; ``history/<metric>``.

Files are written to a temporary file in the same folder and renamed into place, so an
interrupted save never leaves a half-written checkpoint; temporary files left by a save that
was killed are removed by the next save of the same checkpoint.

Loading trusts nothing in the file: the ZIP container and every ``.npy`` header are parsed
here without :mod:`pickle` (an object array is refused before its data is read), and every
entry's dtype, shape and values are checked, so that any damaged or edited file raises
:class:`CheckpointError` naming the file and the entry.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import math
import os
import re
import reprlib
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .network import Sequential, _config_parameter_shapes, _parameter_value
from .optim import SGD, Adam, AdamW, Optimizer
from .train import History
from .validation import all_finite

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "CheckpointError", "OPTIMIZERS"]

FORMAT = "numbaspike-checkpoint-v1"

#: The optimiser classes a checkpoint can hold, by the name saved in its ``optimizer`` entry.
OPTIMIZERS: dict[str, type[Optimizer]] = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}

_SCALAR_ENTRIES = ("format", "epoch", "network", "config", "optimizer")
_REQUIRED_ENTRIES = ("format", "epoch", "network", "config")
_PREFIXES = ("param/", "optim/", "history/")

#: Deflate expands data at most about 1032-fold, so a larger declared size is corrupted.
_MAX_DEFLATE_RATIO = 1100


class CheckpointError(ValueError):
    """A checkpoint file is corrupted, truncated, edited or not a numbaspike checkpoint."""


class _Corrupt(Exception):
    """An entry's bytes are not a valid ``.npy`` array of a supported dtype."""


@dataclass(eq=False)
class Checkpoint:
    """What :func:`load_checkpoint` returns.

    Attributes
    ----------
    network : Sequential
        The network with the saved parameter values.
    epoch : int
        Epochs finished when the checkpoint was written.
    config : dict
        The run's settings as saved.
    history : History
        Metrics of the finished epochs.
    optimizer_state : dict[str, ndarray]
        The optimiser's ``state_dict()`` (empty without an optimiser).
    optimizer_config : dict or None
        ``{"type": <key of OPTIMIZERS>, <hyper-parameter>: value, ...}``; None without one.
    path : Path or None
        The file it was loaded from (named in errors).
    """

    network: Sequential
    epoch: int
    config: dict[str, Any]
    history: History
    optimizer_state: dict[str, np.ndarray] = field(default_factory=dict)
    optimizer_config: dict[str, Any] | None = None
    path: Path | None = None

    def make_optimizer(self) -> Optimizer:
        """Rebuild the optimiser over ``network.parameters()`` with its saved state.

        Raises
        ------
        CheckpointError
            If the checkpoint holds no optimiser, or its type is not one of
            :data:`OPTIMIZERS`, or its hyper-parameters or state are invalid.
        """
        if self.optimizer_config is None:
            raise CheckpointError(f"{_where(self.path)}: this checkpoint holds no optimiser")
        return _build_optimizer(
            self.network, self.optimizer_config, self.optimizer_state, self.path
        )


# --------------------------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------------------------


def _optimizer_config(optimizer: Optimizer) -> dict[str, Any]:
    name = type(optimizer).__name__
    if OPTIMIZERS.get(name) is not type(optimizer):
        raise TypeError(
            f"optimizer must be one of {sorted(OPTIMIZERS)} to be saved (a checkpoint "
            f"records the class by name), got {type(optimizer).__name__}"
        )
    cfg: dict[str, Any] = {"type": name}
    for key in inspect.signature(type(optimizer).__init__).parameters:
        if key in ("self", "params"):
            continue
        if hasattr(optimizer, key):
            value = getattr(optimizer, key)
            cfg[key] = list(value) if isinstance(value, tuple) else value
    return cfg


def save_checkpoint(
    path: str | os.PathLike,
    net: Sequential,
    optimizer: Optimizer | None = None,
    history: History | None = None,
    epoch: int = 0,
    config: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically; returns its path.

    Parameters
    ----------
    path : path-like
        The ``.npz`` file to write (its folder is created). Temporary files
        ``<name>.<random>.tmp`` that a killed save left in the folder are removed, so two
        processes must not save to the same path at once.
    net : Sequential
        Its parameters must be finite (a checkpoint with NaN or inf could not be loaded).
    optimizer : SGD, Adam or AdamW, optional
    history : History, optional
    epoch : int
        Epochs finished, ``>= 0``.
    config : dict, optional
        JSON-able settings of the run.

    Raises
    ------
    TypeError
        If ``optimizer`` is not one of :data:`OPTIMIZERS`.
    ValueError
        If ``epoch`` is negative or not an integer, or a parameter holds NaN or inf.
    """
    path = Path(path)
    if isinstance(epoch, (bool, np.bool_)) or not isinstance(epoch, (int, np.integer)):
        raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
    if epoch < 0:
        raise ValueError(f"epoch must be a non-negative integer, got {epoch}")
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT),
        "epoch": np.array(int(epoch)),
        "network": np.array(json.dumps(net.config())),
        "config": np.array(json.dumps(config or {})),
    }
    for name, value in net.parameters().items():
        if not all_finite(value):
            raise ValueError(f"parameter {name} contains NaN or inf; it cannot be checkpointed")
        arrays[f"param/{name}"] = value
    if optimizer is not None:
        arrays["optimizer"] = np.array(json.dumps(_optimizer_config(optimizer)))
        for key, value in optimizer.state_dict().items():
            arrays[f"optim/{key}"] = np.asarray(value)
    if history is not None:
        for key, value in history.as_arrays().items():
            arrays[f"history/{key}"] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
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


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the ``<name>.<random>.tmp`` files (as :func:`tempfile.mkstemp` names them)
    that a save of ``path`` killed before its rename left in the folder."""
    pattern = re.compile(re.escape(path.name) + r"\.[a-z0-9_]{8}\.tmp")
    try:
        candidates = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in candidates:
        if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            # best effort: the file may be gone already, and a leftover must not fail a save
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (and another ``OSError`` if it cannot be read).
    CheckpointError
        A ``ValueError`` naming the file and the entry, for a corrupted, truncated, edited
        or foreign file: a damaged ZIP or ``.npy`` header, a pickled or non-array entry, a
        missing or unexpected entry, or an entry of the wrong dtype, shape or value (e.g.
        NaN or inf parameters, an invalid network configuration or optimiser).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    entries = _read_entries(path)
    _check_entry_names(path, entries)
    epoch = _epoch(path, entries["epoch"])
    config = _json_entry(path, "config", entries["config"], dict, "an object")
    network_cfg = _json_entry(path, "network", entries["network"], list, "a list of layers")
    net = _network(path, network_cfg, _entries_under(entries, "param/"))
    history = _history(path, _entries_under(entries, "history/"))
    state = _entries_under(entries, "optim/")
    opt_cfg = None
    if "optimizer" in entries:
        opt_cfg = _json_entry(path, "optimizer", entries["optimizer"], dict, "an object")
        _check_optimizer_state_entries(path, state)
        _build_optimizer(net, opt_cfg, state, path)  # validates; make_optimizer builds anew
    elif state:
        raise _fail(
            path, "optimizer", "is missing but the checkpoint holds optimiser state (optim/*)"
        )
    return Checkpoint(
        network=net,
        epoch=epoch,
        config=config,
        history=history,
        optimizer_state=state,
        optimizer_config=opt_cfg,
        path=path,
    )


def _where(path: Path | None, entry: str | None = None) -> str:
    where = f"checkpoint {path}" if path is not None else "checkpoint"
    return where + (f", entry {entry!r}" if entry is not None else "")


def _fail(path: Path | None, entry: str | None, message: str) -> CheckpointError:
    return CheckpointError(f"{_where(path, entry)}: {message}")


def _describe(arr: np.ndarray) -> str:
    """A short description of an entry's array for error messages (never its full data)."""
    if arr.shape == () and arr.dtype.kind in "biuf":
        return f"{arr.dtype} scalar {arr.item()!r}"
    if arr.shape == () and arr.dtype.kind == "U":
        return f"string {reprlib.repr(str(arr.item()))}"
    return f"{arr.dtype} array of shape {arr.shape}"


def _entries_under(entries: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) :]: v for k, v in entries.items() if k.startswith(prefix)}


# -- the container ---------------------------------------------------------------------------


def _read_entries(path: Path) -> dict[str, np.ndarray]:
    """Every entry of the ``.npz`` at ``path`` as an array (``format`` checked first)."""
    with open(path, "rb") as fh:  # an unreadable file is an OSError, not a corrupted one
        return _read_archive(path, fh)


def _read_archive(path: Path, fh: io.BufferedReader) -> dict[str, np.ndarray]:
    try:
        archive = zipfile.ZipFile(fh)
    except Exception as err:
        # zipfile's failure modes on damaged bytes are not a closed set (BadZipFile,
        # EOFError, struct.error, UnicodeDecodeError, ...): each means a corrupted file
        raise _fail(
            path, None, f"is corrupted or not an .npz file ({type(err).__name__}: {err})"
        ) from None
    with archive:
        size = os.fstat(fh.fileno()).st_size
        listed = archive.infolist()
        if "format.npy" not in {info.filename for info in listed}:
            raise _fail(path, None, "is not a numbaspike checkpoint (it has no 'format' entry)")
        infos: dict[str, zipfile.ZipInfo] = {}
        for info in listed:
            name = info.filename[: -len(".npy")]
            if not info.filename.endswith(".npy") or not name:
                raise _fail(path, info.filename, "is not a .npy array")
            if name in infos:
                raise _fail(path, name, "appears twice in the file")
            infos[name] = info
        fmt = _read_entry(path, archive, infos["format"], size, "format")
        if fmt.shape != () or fmt.dtype.kind != "U" or fmt.item() != FORMAT:
            raise _fail(
                path,
                "format",
                f"is not a numbaspike checkpoint: expected the string {FORMAT!r}, "
                f"got {_describe(fmt)}",
            )
        entries = {"format": fmt}
        for name, info in infos.items():
            if name != "format":
                entries[name] = _read_entry(path, archive, info, size, name)
    return entries


def _read_entry(
    path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, size: int, name: str
) -> np.ndarray:
    try:
        return _parse_npy(_entry_bytes(archive, info, size))
    except _Corrupt as err:
        raise _fail(path, name, str(err)) from None
    except Exception as err:
        # damaged bytes can fail anywhere in zipfile, zlib or NumPy's header parser (e.g.
        # tokenize.TokenError): all mean a corrupted entry
        raise _fail(path, name, f"is corrupted ({type(err).__name__}: {err})") from None


def _entry_bytes(archive: zipfile.ZipFile, info: zipfile.ZipInfo, size: int) -> bytes:
    """The uncompressed bytes of one entry, refusing sizes that cannot be right before
    anything is read (a flipped size field must not make the reader allocate gigabytes)."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _Corrupt(f"uses an unsupported ZIP compression method ({info.compress_type})")
    if info.flag_bits & 0x1:
        raise _Corrupt("is encrypted")
    if info.header_offset + info.compress_size > size:
        raise _Corrupt("extends past the end of the file (the file is truncated)")
    stored = info.compress_type == zipfile.ZIP_STORED
    if (stored and info.file_size != info.compress_size) or (
        info.file_size > _MAX_DEFLATE_RATIO * info.compress_size + 1024
    ):
        raise _Corrupt(
            f"has inconsistent sizes ({info.compress_size} bytes stored, "
            f"{info.file_size} declared)"
        )
    with archive.open(info) as fh:
        return fh.read()


def _parse_npy(raw: bytes) -> np.ndarray:
    """An array from the bytes of a ``.npy`` file, without pickle: only numeric, bool and
    string dtypes, and only when the data has exactly the size the header declares."""
    fp = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(fp)
    except ValueError:
        raise _Corrupt("is not a .npy array (e.g. pickled or raw bytes)") from None
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(fp)
    else:
        raise _Corrupt(f"has an unsupported .npy format version {version}")
    if dtype.hasobject:
        raise _Corrupt(
            "holds Python objects (a pickled array), which a checkpoint never contains and "
            "which are never loaded"
        )
    if (
        dtype.kind not in "biufU"
        or dtype.fields is not None
        or dtype.subdtype is not None
        or dtype.itemsize == 0
    ):
        raise _Corrupt(f"has an unsupported dtype {dtype}")
    if any(d < 0 for d in shape):
        raise _Corrupt(f"has a negative dimension in its shape {shape}")
    count = math.prod(shape)
    data = memoryview(raw)[fp.tell() :]
    if len(data) != count * dtype.itemsize:
        raise _Corrupt(
            f"holds {len(data)} bytes of data but its header declares {count} values of "
            f"{dtype} ({count * dtype.itemsize} bytes)"
        )
    flat = np.frombuffer(data, dtype=dtype, count=count) if count else np.empty(0, dtype)
    if dtype.kind == "U":
        codes = flat.view(dtype.byteorder.replace("|", "=") + "u4")
        if codes.size and codes.max() > 0x10FFFF:
            raise _Corrupt("holds a string with invalid characters")
    arr = flat.reshape(shape, order="F" if fortran_order else "C")
    return np.array(arr, dtype=dtype.newbyteorder("="), order="C")


def _check_entry_names(path: Path, entries: dict[str, np.ndarray]) -> None:
    for name in _REQUIRED_ENTRIES:
        if name not in entries:
            raise _fail(path, name, "is missing")
    for name in entries:
        if name not in _SCALAR_ENTRIES and not (
            name.startswith(_PREFIXES) and name not in _PREFIXES
        ):
            raise _fail(path, name, "is not a checkpoint entry")


# -- the entries -----------------------------------------------------------------------------


def _epoch(path: Path, arr: np.ndarray) -> int:
    if arr.shape != () or arr.dtype.kind not in "iu" or arr.item() < 0:
        raise _fail(path, "epoch", f"must be a non-negative integer scalar, got {_describe(arr)}")
    return int(arr.item())


def _json_entry(path: Path, name: str, arr: np.ndarray, kind: type, what: str) -> Any:
    if arr.shape != () or arr.dtype.kind != "U":
        raise _fail(path, name, f"must be a JSON string, got {_describe(arr)}")
    try:
        value = json.loads(str(arr.item()))
    except (ValueError, RecursionError) as err:
        raise _fail(path, name, f"is not valid JSON ({type(err).__name__}: {err})") from None
    if not isinstance(value, kind):
        raise _fail(path, name, f"must be JSON {what}, got {type(value).__name__}")
    return value


def _network(path: Path, config: list, params: dict[str, np.ndarray]) -> Sequential:
    """The network of ``config`` with the values of ``params`` (the ``param/*`` entries)."""
    try:
        # the shapes are checked against the entries before anything is allocated, so an
        # edited size cannot make the network allocate more than the file holds
        shapes = _config_parameter_shapes(config)
    except ValueError as err:
        raise _fail(path, "network", f"invalid network configuration: {err}") from None
    for name in params:
        if name not in shapes:
            raise _fail(path, f"param/{name}", "is not a parameter of the network")
    for name, shape in shapes.items():
        if name not in params:
            raise _fail(path, f"param/{name}", "is missing")
        arr = params[name]
        if arr.dtype.kind != "f":
            raise _fail(path, f"param/{name}", f"must be a float array, got {_describe(arr)}")
        if arr.shape != shape:
            raise _fail(
                path, f"param/{name}", f"must have shape {shape} (from 'network'), got {arr.shape}"
            )
    try:
        net = Sequential.from_config(config)
    except ValueError as err:
        raise _fail(path, "network", f"invalid network configuration: {err}") from None
    for name, arr in net.parameters().items():
        try:
            _parameter_value(name, params[name], arr)
        except ValueError as err:
            raise _fail(path, f"param/{name}", str(err)) from None
    try:
        net.load_parameters(params)
    except ValueError as err:
        raise _fail(path, None, f"the param/* entries do not fit the network: {err}") from None
    return net


def _history(path: Path, arrays: dict[str, np.ndarray]) -> History:
    for name, arr in arrays.items():
        if name not in History.__dataclass_fields__:
            raise _fail(
                path,
                f"history/{name}",
                f"is not a history metric (expected one of {list(History.__dataclass_fields__)})",
            )
        if arr.ndim != 1 or arr.dtype.kind != "f":
            raise _fail(
                path, f"history/{name}", f"must be a 1-D float array, got {_describe(arr)}"
            )
    try:
        return History.from_arrays(arrays)
    except ValueError as err:
        raise _fail(path, None, f"invalid history/* entries: {err}") from None


def _check_optimizer_state_entries(path: Path, state: dict[str, np.ndarray]) -> None:
    """Each ``optim/*`` entry alone: a step count, a scalar hyper-parameter or a finite float
    buffer (``load_state_dict`` then checks them against the optimiser)."""
    for key, arr in state.items():
        entry = f"optim/{key}"
        if key == "step":
            if arr.shape != () or arr.dtype.kind not in "iu" or arr.item() < 0:
                raise _fail(
                    path, entry, f"must be a non-negative integer scalar, got {_describe(arr)}"
                )
        elif key.startswith("hparams/"):
            if arr.shape != () or arr.dtype.kind not in "biuf":
                raise _fail(path, entry, f"must be a number or bool scalar, got {_describe(arr)}")
            if arr.dtype.kind == "f" and not math.isfinite(arr.item()):
                raise _fail(path, entry, f"must be finite, got {_describe(arr)}")
        elif arr.dtype.kind != "f":
            raise _fail(path, entry, f"must be a float array, got {_describe(arr)}")
        elif not all_finite(arr):
            raise _fail(path, entry, "contains NaN or inf")


def _check_hyperparameter_types(path: Path | None, config: Mapping[str, Any]) -> None:
    """JSON types only: numbers, bools and lists of numbers (the optimiser checks values;
    a string is refused here because ``float("0.1")`` would accept it)."""
    for key, value in config.items():
        if key == "type":
            continue
        ok = isinstance(value, (bool, int, float)) or (
            isinstance(value, list)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        )
        if not ok:
            raise _fail(
                path,
                "optimizer",
                f"hyper-parameter {key!r} must be a number, a bool or a list of numbers, "
                f"got {reprlib.repr(value)}",
            )


def _build_optimizer(
    net: Sequential,
    config: Any,
    state: Mapping[str, np.ndarray],
    path: Path | None,
) -> Optimizer:
    """The optimiser of an ``optimizer`` config over ``net``'s parameters, with ``state``."""
    if not isinstance(config, Mapping):
        raise _fail(path, "optimizer", f"must be a JSON object, got {type(config).__name__}")
    kind = config.get("type")
    if not isinstance(kind, str) or kind not in OPTIMIZERS:
        raise _fail(
            path,
            "optimizer",
            f"unknown optimiser type {reprlib.repr(kind)}, expected one of {sorted(OPTIMIZERS)}",
        )
    _check_hyperparameter_types(path, config)
    kwargs = {k: v for k, v in config.items() if k != "type"}
    try:
        optimizer = OPTIMIZERS[kind](net.parameters(), **kwargs)
    except (TypeError, ValueError, OverflowError) as err:
        raise _fail(path, "optimizer", f"invalid {kind} hyper-parameters: {err}") from None
    try:
        optimizer.load_state_dict(state)
    except (TypeError, ValueError) as err:
        raise _fail(
            path, None, f"the optim/* entries are not a valid {kind} state: {err}"
        ) from None
    return optimizer
