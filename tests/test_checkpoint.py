"""Checkpoints: round trip, validation of every entry, fuzzing, no pickle, stale temporaries."""

from __future__ import annotations

import io
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import warnings
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from numbaspike.checkpoint import (
    OPTIMIZERS,
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from numbaspike.layers import LI, LIFRecurrent, Linear
from numbaspike.network import Sequential
from numbaspike.optim import SGD, Adam, AdamW
from numbaspike.params import LIFParameters
from numbaspike.train import History

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _net() -> Sequential:
    return Sequential(
        Linear(3, 5, bias=True, seed=0),
        LIFRecurrent(
            5,
            LIFParameters(v_th=np.linspace(0.8, 1.2, 5)),
            learn=("v_th", "tau_mem_inv"),
            autapses=False,
            seed=1,
        ),
        Linear(5, 2, seed=2),
        LI(2),
    )


def _save(path: Path, net: Sequential | None = None, amsgrad: bool = True) -> Path:
    """A checkpoint with every kind of entry: parameters, Adam state, history, config."""
    net = _net() if net is None else net
    opt = Adam(net.parameters(), lr=1e-2, amsgrad=amsgrad)
    rng = np.random.default_rng(0)
    opt.step({k: rng.standard_normal(v.shape) for k, v in net.parameters().items()})
    history = History(train_loss=[1.5, 1.25], train_acc=[0.25, 0.5], step_loss=[2.0, 1.0, 0.5])
    return save_checkpoint(path, net, opt, history, epoch=2, config={"task": "t", "lr": 0.01})


def _members(raw: bytes) -> dict[str, bytes]:
    """The entries of an ``.npz`` as raw ``.npy`` bytes, by file name inside the ZIP."""
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        return {name: z.read(name) for name in z.namelist()}


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _npy(value, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(value), allow_pickle=allow_pickle)
    return buf.getvalue()


def _edit(members: dict[str, bytes], entry: str, data: bytes | None) -> bytes:
    """The ``.npz`` with ``entry`` (e.g. ``"param/0.weight"``) replaced by ``data`` (raw
    bytes), or removed for None."""
    edited = dict(members)
    if data is None:
        del edited[entry + ".npy"]
    else:
        edited[entry + ".npy"] = data
    return _zip(edited)


def _npz_entries(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _assert_matches_file(ckpt: Checkpoint, path: Path) -> None:
    """A checkpoint that loaded holds exactly what the file holds (decoded by NumPy)."""
    entries = _npz_entries(path)
    assert ckpt.epoch == int(entries["epoch"])
    assert ckpt.config == json.loads(str(entries["config"]))
    assert ckpt.network.config() == json.loads(str(entries["network"]))
    for name, value in ckpt.network.parameters().items():
        np.testing.assert_array_equal(value, entries[f"param/{name}"].astype(value.dtype))
    for name, value in ckpt.history.as_arrays().items():
        np.testing.assert_array_equal(value, entries.get(f"history/{name}", np.zeros(0)))
    assert ckpt.optimizer_config == json.loads(str(entries["optimizer"]))
    state = {k[len("optim/") :]: v for k, v in entries.items() if k.startswith("optim/")}
    assert set(ckpt.optimizer_state) == set(state)
    for key, value in state.items():
        np.testing.assert_array_equal(ckpt.optimizer_state[key], value)


def _assert_same(a: Checkpoint, b: Checkpoint) -> None:
    assert (a.epoch, a.config, a.history) == (b.epoch, b.config, b.history)
    assert a.network.config() == b.network.config()
    for name, value in a.network.parameters().items():
        np.testing.assert_array_equal(value, b.network.parameters()[name], err_msg=name)
    assert a.optimizer_config == b.optimizer_config
    assert set(a.optimizer_state) == set(b.optimizer_state)
    for key, value in a.optimizer_state.items():
        np.testing.assert_array_equal(value, b.optimizer_state[key], err_msg=key)


@pytest.fixture
def saved(tmp_path) -> Path:
    return _save(tmp_path / "checkpoint.npz")


@pytest.fixture
def members(saved) -> dict[str, bytes]:
    return _members(saved.read_bytes())


def _write(tmp_path: Path, data: bytes, name: str = "edited.npz") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------------------------
# round trip and saving
# --------------------------------------------------------------------------------------------


def test_round_trip_restores_everything(saved):
    ckpt = load_checkpoint(saved)
    _assert_matches_file(ckpt, saved)
    assert ckpt.epoch == 2 and ckpt.config == {"task": "t", "lr": 0.01}
    assert ckpt.history.step_loss == [2.0, 1.0, 0.5] and ckpt.path == saved
    opt = ckpt.make_optimizer()
    assert type(opt) is Adam and opt.amsgrad and opt.step_count == 1
    for key, value in opt.state_dict().items():
        np.testing.assert_array_equal(value, ckpt.optimizer_state[key], err_msg=key)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_every_registered_optimizer_round_trips(tmp_path, cls):
    net = _net()
    opt = cls(net.parameters(), lr=0.1, **({"momentum": 0.9} if cls is SGD else {}))
    opt.step({k: np.ones_like(v) for k, v in net.parameters().items()})
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "c.npz", net, opt))
    again = ckpt.make_optimizer()
    assert type(again) is cls and again.hparams() == opt.hparams()
    assert OPTIMIZERS[cls.__name__] is cls


def test_checkpoint_without_optimizer_or_history(tmp_path):
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "c.npz", _net()))
    assert ckpt.optimizer_config is None and ckpt.optimizer_state == {}
    assert ckpt.history == History()
    with pytest.raises(CheckpointError, match="holds no optimiser"):
        ckpt.make_optimizer()


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_checkpoint(tmp_path / "missing.npz")


def test_save_refuses_what_could_not_be_loaded(tmp_path):
    class MyAdam(Adam):
        pass

    net = _net()
    with pytest.raises(TypeError, match="optimizer must be one of"):
        save_checkpoint(tmp_path / "c.npz", net, MyAdam(net.parameters()))
    with pytest.raises(ValueError, match="epoch"):
        save_checkpoint(tmp_path / "c.npz", net, epoch=-1)
    with pytest.raises(ValueError, match="epoch"):
        save_checkpoint(tmp_path / "c.npz", net, epoch=1.5)
    net.parameters()["2.weight"][0, 0] = np.nan
    with pytest.raises(ValueError, match="parameter 2.weight contains NaN or inf"):
        save_checkpoint(tmp_path / "c.npz", net)
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------
# the tracebacks reported in issue 22 (each escaped as a non-CheckpointError before)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["format", "network", "epoch", "param/0.weight"])
def test_entry_holding_pickled_bytes_is_checkpoint_error(tmp_path, members, entry):
    # np.load returns a non-.npy member as raw bytes: `.item()` on them was an AttributeError
    data = pickle.dumps({"layers": [1, 2]})
    path = _write(tmp_path, _edit(members, entry, data))
    with pytest.raises(CheckpointError, match=f"edited.npz.*'{entry}'"):
        load_checkpoint(path)


def test_pickled_object_array_is_refused_without_unpickling(tmp_path, members, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("pickle was called while loading a checkpoint")

    monkeypatch.setattr(pickle, "load", fail)
    monkeypatch.setattr(pickle, "loads", fail)
    data = _npy(np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    path = _write(tmp_path, _edit(members, "param/0.weight", data))
    with pytest.raises(CheckpointError, match="'param/0.weight'.*pickled"):
        load_checkpoint(path)


def test_bit_flip_in_array_header_is_checkpoint_error(tmp_path, members):
    # ")" -> "(" is one bit (0x29 -> 0x28); NumPy's header parser raised tokenize.TokenError
    data = members["param/0.weight.npy"]
    header_end = data.index(b"\n")
    k = data.rindex(b")", 0, header_end)
    flipped = data[:k] + bytes([data[k] ^ 0x01]) + data[k + 1 :]
    assert flipped[k : k + 1] == b"("
    path = _write(tmp_path, _edit(members, "param/0.weight", flipped))
    with pytest.raises(CheckpointError, match="edited.npz.*'param/0.weight'.*corrupted"):
        load_checkpoint(path)


def _network_edited(members: dict[str, bytes], edit) -> bytes:
    cfg = json.loads(str(np.load(io.BytesIO(members["network.npy"]))))
    cfg = edit(cfg)
    return _edit(members, "network", _npy(np.array(json.dumps(cfg))))


@pytest.mark.parametrize(
    "edit",
    [
        lambda cfg: 5,  # 'int' object is not iterable (iterating the network)
        lambda cfg: [dict(cfg[0]), {**cfg[1], "learn": 5}, *cfg[2:]],  # ... in tuple(learn)
        lambda cfg: [cfg[0], {**cfg[1], "p": {**cfg[1]["p"], "v_th": "1.0"}}, *cfg[2:]],
        lambda cfg: [{**cfg[0], "n_in": "3"}, *cfg[1:]],
        lambda cfg: [{**cfg[0], "type": "Conv2d"}, *cfg[1:]],
    ],
    ids=["network-int", "learn-int", "v_th-string", "n_in-string", "unknown-type"],
)
def test_hand_edited_network_is_checkpoint_error(tmp_path, members, edit):
    path = _write(tmp_path, _network_edited(members, edit))
    with pytest.raises(CheckpointError, match="edited.npz.*'network'"):
        load_checkpoint(path)


def _optimizer_edited(members: dict[str, bytes], cfg) -> bytes:
    return _edit(members, "optimizer", _npy(np.array(json.dumps(cfg))))


@pytest.mark.parametrize("kind", ["np", "Optimizer", "clip_grad_norm", "math", 5, None])
def test_unregistered_optimizer_type_is_checkpoint_error(tmp_path, members, kind):
    # the type was looked up with getattr on the optim module: "np" gave
    # "'module' object is not callable" from make_optimizer
    path = _write(tmp_path, _optimizer_edited(members, {"type": kind, "lr": 0.1}))
    with pytest.raises(CheckpointError, match="edited.npz.*'optimizer'.*unknown optimiser type"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "cfg",
    [
        {"type": "np", "lr": 0.1},
        {"type": "Optimizer", "lr": 0.1},
        {"type": "SGD"},  # lr is required
        {"type": "SGD", "lr": "0.1"},
        {"type": "SGD", "lr": -1.0},
        {"type": "Adam", "betas": 5},
        {"type": "Adam", "lr": 0.1, "foo": 1},
        {"type": "Adam", "params": 1},
        {"type": "Adam", "amsgrad": "yes"},
        {"type": "Adam", "lr": 10**400},
        ["SGD"],
    ],
)
def test_make_optimizer_refuses_bad_config(saved, cfg):
    ckpt = load_checkpoint(saved)
    ckpt.optimizer_config = cfg
    ckpt.optimizer_state = {}
    with pytest.raises(CheckpointError, match="'optimizer'"):
        ckpt.make_optimizer()


# --------------------------------------------------------------------------------------------
# one test per kind of invalid entry
# --------------------------------------------------------------------------------------------

_BAD_ENTRIES = [
    # (entry, value or raw bytes or None to delete, what the message says)
    ("format", np.array("numbaspike-checkpoint-v0"), "not a numbaspike checkpoint"),
    ("format", np.array([1, 2]), "not a numbaspike checkpoint"),
    ("epoch", np.array(-1), "non-negative integer"),
    ("epoch", np.array(1.5), "non-negative integer"),
    ("epoch", np.array(True), "non-negative integer"),
    ("epoch", np.array("3"), "non-negative integer"),
    ("epoch", np.array([2]), "non-negative integer"),
    ("epoch", None, "missing"),
    ("config", np.array("[1, 2]"), "JSON an object"),
    ("config", np.array("{"), "not valid JSON"),
    ("config", np.array(3.0), "JSON string"),
    ("config", None, "missing"),
    ("network", np.array("[" * 100_000), "not valid JSON"),
    ("network", np.array("[]"), "empty"),
    ("network", np.array('{"type": "Linear"}'), "list of layers"),
    ("network", None, "missing"),
    ("param/0.weight", np.full((5, 3), np.nan, np.float32), "NaN or inf"),
    ("param/0.weight", np.full((5, 3), np.inf, np.float32), "NaN or inf"),
    ("param/0.weight", np.full((5, 3), 1e300), "NaN or inf"),  # overflows float32
    ("param/0.weight", np.zeros((3, 5), np.float32), "shape"),
    ("param/0.weight", np.zeros(15, np.float32), "shape"),
    ("param/0.weight", np.zeros((5, 3), np.int32), "float array"),
    ("param/0.weight", np.zeros((5, 3), bool), "float array"),
    ("param/0.weight", np.zeros((5, 3), np.complex64), "unsupported dtype"),
    ("param/0.weight", np.full((5, 3), "1.0"), "float array"),
    ("param/0.weight", np.zeros((5, 3), "i4,f4"), "unsupported dtype"),
    ("param/0.weight", np.array("0.5"), "float array"),
    ("param/0.weight", None, "missing"),
    ("param/9.weight", np.zeros((2, 2), np.float32), "not a parameter"),
    ("param/1.tau_mem_inv", np.full(5, -100.0, np.float32), "tau_mem_inv"),
    ("param/1.tau_mem_inv", np.full(5, 5000.0, np.float32), "tau_mem_inv"),
    ("optimizer", np.array("{"), "not valid JSON"),
    ("optimizer", np.array("[]"), "JSON an object"),
    ("optimizer", None, "optimiser state"),
    ("optim/step", np.array(-1), "non-negative integer"),
    ("optim/step", np.array(1.0), "non-negative integer"),
    ("optim/step", None, "'step'"),
    ("optim/hparams/lr", np.array("0.1"), "number or bool scalar"),
    ("optim/hparams/lr", np.array(np.nan), "finite"),
    ("optim/hparams/lr", np.array([0.1, 0.2]), "number or bool scalar"),
    ("optim/hparams/beta1", np.array(1.5), "betas"),
    ("optim/exp_avg/0.weight", np.full((5, 3), np.nan), "NaN or inf"),
    ("optim/exp_avg/0.weight", np.full((5, 3), 1e300), "NaN or inf"),  # in float32
    ("optim/exp_avg/0.weight", np.zeros((3, 5)), "shape"),
    ("optim/exp_avg/0.weight", np.zeros((5, 3), np.int64), "float array"),
    ("optim/exp_avg/0.weight", None, "missing"),
    ("optim/exp_avg/9.weight", np.zeros((5, 3)), "unexpected key"),
    ("optim/momentum_buffer/0.weight", np.zeros((5, 3)), "unexpected key"),
    ("history/train_loss", np.zeros((2, 2)), "1-D float"),
    ("history/train_loss", np.array(["a", "b"]), "1-D float"),
    ("history/train_loss", np.array(1.0), "1-D float"),
    ("history/bogus", np.zeros(2), "not a history metric"),
    ("bogus", np.zeros(2), "not a checkpoint entry"),
    ("param", np.zeros(2), "not a checkpoint entry"),
]


@pytest.mark.parametrize(
    ("entry", "value", "message"),
    _BAD_ENTRIES,
    ids=[f"{e}-{k}" for k, (e, _, _) in enumerate(_BAD_ENTRIES)],
)
def test_invalid_entry_is_checkpoint_error_naming_it(tmp_path, members, entry, value, message):
    data = None if value is None else _npy(value)
    path = _write(tmp_path, _edit(members, entry, data))
    with pytest.raises(CheckpointError, match="edited.npz") as info:
        load_checkpoint(path)
    text = str(info.value)
    assert message in text
    if entry != "optim/hparams/beta1":  # named by the optimiser as betas[0]
        assert entry in text or entry.removeprefix("optim/") in text or "param/*" in text


def test_network_edits_are_checked_before_allocating(tmp_path, members):
    # a size of 10**12 must be refused by comparing it with the param/* entries, not by
    # allocating the layer (which would need terabytes)
    def edit(cfg):
        return [{**cfg[0], "n_out": 10**12}, *cfg[1:]]

    path = _write(tmp_path, _network_edited(members, edit))
    with pytest.raises(CheckpointError, match="'param/0.weight'.*shape"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x93NUMPY",
        b"\x93NUMPY\x03\x00",
        b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'}\n",
        b"\x93NUMPY\x01\x00\x46\x00{'descr': '<f4', 'fortran_order': False, 'shape': (-1, -4), }    \n",
    ],
)
def test_malformed_npy_bytes_are_checkpoint_errors(tmp_path, members, raw):
    path = _write(tmp_path, _edit(members, "param/2.weight", raw))
    with pytest.raises(CheckpointError, match="'param/2.weight'"):
        load_checkpoint(path)


def test_declared_size_larger_than_data_is_refused_before_reading(tmp_path, members):
    header = np.lib.format.header_data_from_array_1_0(np.zeros((2, 5), np.float32))
    header["shape"] = (10**6, 10**6)  # 4 TB of float32 declared, 40 bytes present
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    path = _write(tmp_path, _edit(members, "param/2.weight", buf.getvalue() + bytes(40)))
    with pytest.raises(CheckpointError, match="'param/2.weight'.*declares"):
        load_checkpoint(path)


def test_foreign_zip_members_are_refused(tmp_path, members):
    path = _write(tmp_path, _zip({**members, "notes.txt": b"hello"}))
    with pytest.raises(CheckpointError, match="'notes.txt'.*not a .npy"):
        load_checkpoint(path)
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a numbaspike checkpoint"):
        load_checkpoint(tmp_path / "other.npz")
    (tmp_path / "text.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match="text.npz.*corrupted"):
        load_checkpoint(tmp_path / "text.npz")


def test_big_endian_and_float64_entries_of_the_right_values_load(tmp_path, saved, members):
    # a valid file written differently (another byte order, a wider float) is still valid
    value = np.load(io.BytesIO(members["param/0.weight.npy"]))
    data = _edit(members, "param/0.weight", _npy(value.astype(">f8")))
    ckpt = load_checkpoint(_write(tmp_path, data))
    np.testing.assert_array_equal(ckpt.network.parameters()["0.weight"], value)


# --------------------------------------------------------------------------------------------
# stale temporary files
# --------------------------------------------------------------------------------------------

_KILLED_SAVE = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from numbaspike.checkpoint import save_checkpoint
    from numbaspike.layers import Linear
    from numbaspike.network import Sequential

    def savez_then_sigkill(fh, **arrays):
        fh.write(b"PK half a checkpoint")
        fh.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    np.savez = savez_then_sigkill
    save_checkpoint(sys.argv[1], Sequential(Linear(2, 2, seed=0)))
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_temporary_file_of_a_killed_save_is_removed_by_the_next_save(tmp_path):
    path = tmp_path / "checkpoint.npz"
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_SAVE, str(path)], capture_output=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    stale = list(tmp_path.glob("checkpoint.npz.*.tmp"))
    assert len(stale) == 1 and not path.exists()
    # files that only look alike (another checkpoint, another suffix or length) are kept
    keep = [
        "other.npz.abcd1234.tmp",
        "checkpoint.npz.abcd1234.tmp.bak",
        "checkpoint.npz.backup.tmp",
        "xcheckpoint.npz.abcd1234.tmp",
    ]
    for name in keep:
        (tmp_path / name).write_bytes(b"keep")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "checkpoint.npz.abcd1234.tmp").write_bytes(b"keep")
    save_checkpoint(path, _net())
    assert not stale[0].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*keep, "checkpoint.npz", "sub"])
    assert (tmp_path / "sub" / "checkpoint.npz.abcd1234.tmp").exists()
    load_checkpoint(path)


def test_failed_save_removes_its_temporary_file(tmp_path, monkeypatch):
    def failing_savez(fh, **arrays):
        fh.write(b"PK")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "c.npz", _net())
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------
# fuzzing
# --------------------------------------------------------------------------------------------


def _bad_values(value: np.ndarray, rng: np.random.Generator) -> list:
    """Arrays of the wrong dtype, shape or values in place of ``value`` (an entry's array);
    some may happen to be valid, which the fuzz test then checks against the file."""
    shape = value.shape
    out = [
        np.zeros(shape + (2,), value.dtype),
        np.zeros((0,), value.dtype),
        np.array(7),
        np.array(-3),
        np.array("text"),
        np.array("1.5"),
        np.full(shape, "0.5"),
        np.zeros(shape, bool),
        np.zeros(shape, np.complex128),
        rng.standard_normal(shape).astype(np.float32),
        np.array([1, 2, 3]),
        np.array(json.dumps([1, {"type": 2}])),
        np.array(json.dumps({"type": "SGD", "lr": "x"})),
        np.array('"a string"'),
        np.array("null"),
    ]
    if value.dtype.kind == "f" and value.size:
        for bad in (np.nan, np.inf, -np.inf, 1e300):
            v = value.astype(np.float64)
            v.flat[rng.integers(value.size)] = bad
            out.append(v)
    return out


def test_fuzz_damaged_and_edited_checkpoints_raise_only_checkpoint_error(tmp_path, monkeypatch):
    """Thousands of truncated, bit-flipped and edited files: loading raises CheckpointError
    (naming the file) or returns exactly what a still-valid file holds; nothing is unpickled."""
    # a small network keeps the entries (and each load) few: the cases, not the size, count
    net = Sequential(
        Linear(3, 4, seed=0),
        LIFRecurrent(4, learn=("v_th",), seed=1),
        Linear(4, 2, seed=2),
        LI(2),
    )
    saved = _save(tmp_path / "checkpoint.npz", net, amsgrad=False)
    members = _members(saved.read_bytes())

    def no_pickle(*args, **kwargs):
        raise AssertionError("pickle was called while loading a checkpoint")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    rng = np.random.default_rng(22)
    raw = saved.read_bytes()
    original = load_checkpoint(saved)
    target = tmp_path / "fuzz.npz"
    outcomes: Counter = Counter()

    def attempt(data: bytes, kind: str, same_as_original: bool) -> None:
        target.write_bytes(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                ckpt = load_checkpoint(target)
        except CheckpointError as err:
            assert str(target) in str(err), f"{kind}: {err}"
            outcomes[kind, "rejected"] += 1
            return
        except Exception as err:
            pytest.fail(f"{kind}: {type(err).__name__} escaped: {err}")
        # the file is still valid: e.g. a flip in bytes the ZIP reader does not use (the
        # CRCs make any other change to the data fail), or an edit to a valid value
        if same_as_original:
            _assert_same(ckpt, original)
        else:
            _assert_matches_file(ckpt, target)
        outcomes[kind, "loaded"] += 1

    start = time.perf_counter()
    for n in [0, 1, 21, 22, len(raw) - 22, len(raw) - 1, *rng.integers(0, len(raw), 300)]:
        attempt(raw[:n], "truncation", True)
    for _ in range(800):
        data = bytearray(raw)
        data[rng.integers(len(raw))] ^= 1 << int(rng.integers(8))
        attempt(bytes(data), "bit flip", True)
    for _ in range(120):
        data = bytearray(raw)
        k = int(rng.integers(len(raw)))
        span = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        data[k : k + len(span)] = span
        attempt(bytes(data[: len(raw)]), "overwrite", True)
    names = sorted(members)
    for _ in range(300):  # flips inside one entry, with a valid CRC so that they reach NumPy
        name = names[int(rng.integers(len(names)))]
        entry = bytearray(members[name])
        k = int(rng.integers(min(len(entry), 128)))  # mostly the header
        entry[k] ^= 1 << int(rng.integers(8))
        attempt(_edit(members, name[: -len(".npy")], bytes(entry)), "entry bit flip", False)
    for name in names:  # wrong dtypes, shapes and values in every entry
        value = np.load(io.BytesIO(members[name]))
        entry = name[: -len(".npy")]
        for bad in _bad_values(value, rng):
            attempt(_edit(members, entry, _npy(bad)), "edited entry", False)
        pickled = _npy(np.array([value, None], dtype=object), allow_pickle=True)
        attempt(_edit(members, entry, pickled), "pickled entry", False)
        attempt(_edit(members, entry, pickle.dumps(value)), "raw pickle entry", False)
        attempt(_edit(members, entry, None), "removed entry", False)
    elapsed = time.perf_counter() - start
    total = sum(outcomes.values())
    print(f"fuzz: {total} cases in {elapsed:.1f} s: {dict(outcomes)}")
    assert total >= 2000
    for kind in ("pickled entry", "raw pickle entry"):
        assert outcomes[kind, "loaded"] == 0, kind
    assert outcomes["truncation", "loaded"] == 0


# --------------------------------------------------------------------------------------------
# optimiser state validation used by the checkpoint
# --------------------------------------------------------------------------------------------


def test_load_state_dict_refuses_strings_and_nonfinite_buffers():
    net = _net()
    opt = Adam(net.parameters())
    opt.step({k: np.ones_like(v) for k, v in net.parameters().items()})
    state = opt.state_dict()
    with pytest.raises(ValueError, match="hparams/lr.*real or bool scalar"):
        opt.load_state_dict({**state, "hparams/lr": np.array("0.1")})
    bad = state["exp_avg/0.weight"].copy()
    bad[1, 2] = np.inf
    with pytest.raises(ValueError, match=r"exp_avg/0.weight.*NaN or inf.*\(1, 2\)"):
        opt.load_state_dict({**state, "exp_avg/0.weight": bad})
    with pytest.raises(ValueError, match="exp_avg/0.weight.*NaN or inf in float32"):
        opt.load_state_dict({**state, "exp_avg/0.weight": np.full((5, 3), 1e300)})
    assert opt.step_count == 1 and opt.lr == 1e-3  # unchanged after the errors


def test_no_leftover_files_in_the_test_folder(tmp_path, saved):
    load_checkpoint(saved)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz"]


def test_a_checkpoint_written_before_the_neuron_model_registry_loads():
    """``tests/data/checkpoint_1610d59.npz`` was written by numbaspike at 1610d59 (the last
    commit before the registry of neuron models) with its run configuration of that time;
    the network it holds must load, compute the same forward pass as then, and resume."""
    from numbaspike.checkpoint import load_checkpoint
    from numbaspike.run_config import recorded_run_config

    data = Path(__file__).parent / "data"
    ckpt = load_checkpoint(data / "checkpoint_1610d59.npz")
    assert ckpt.epoch == 2 and ckpt.history.train_loss == [1.0, 0.9]
    assert [type(layer).__name__ for layer in ckpt.network] == [
        "Linear", "LIFRecurrent", "Linear", "LI"
    ]  # fmt: skip
    x = (np.random.default_rng(3).random((10, 2, 6)) < 0.3).astype(np.float32)
    y, _ = ckpt.network.forward(x)
    np.testing.assert_array_equal(y, np.load(data / "checkpoint_1610d59_forward.npy"))
    optimizer = ckpt.make_optimizer()
    assert optimizer.lr == 1e-3
    config = recorded_run_config(ckpt.config)
    assert config["neuron"] == "lif" and config["epochs"] == 15 and config["input_scale"] == 10.0
