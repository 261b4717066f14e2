"""The numbaspike command and the example scripts, at toy size."""

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

from numbaspike.cli import main
from numbaspike.data import write_shd_like

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "train" in out and "gradcheck" in out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--task" in out and "randman" in out and "--surrogate" in out
    assert main([]) == 2


def test_train_writes_checkpoint_summary_and_plots_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--epochs", "1", "--hidden", "16", "--steps", "20", "--max-samples", "200",
            "--batch-size", "32", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text
    summary = json.loads((out / "summary.json").read_text())
    assert 0.0 <= summary["test_accuracy"] <= 1.0 and summary["epochs"] == 1
    for name in (
        "checkpoint.npz",
        "training.png",
        "hidden_raster.png",
        "input_raster.png",
        "readout_traces.png",
    ):
        assert (out / name).stat().st_size > 0, name
    assert main([*args[:2], "2", *args[3:], "--resume", "--no-plots"]) == 0
    assert "resuming from" in capsys.readouterr().out
    assert json.loads((out / "summary.json").read_text())["epochs"] == 2


def test_train_on_a_local_shd_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    times = [np.sort(rng.uniform(0, 1.0, 30)) for _ in range(40)]
    units = [rng.integers(0, 700, 30) for _ in range(40)]
    path = tmp_path / "shd_small.h5"
    write_shd_like(path, times, units, rng.integers(0, 4, 40))
    assert main(["train", "--task", "shd", "--path", str(path), "--epochs", "1", "--hidden", "8",
                 "--steps", "10", "--out", str(tmp_path / "o"), "--quiet", "--no-plots"]) == 0  # fmt: skip
    assert "task shd: 32 train / 8 test" in capsys.readouterr().out


def test_bad_arguments_are_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--task", "shd"])
    assert "--path" in capsys.readouterr().err
    assert main(["train", "--task", "shd", "--path", str(tmp_path / "nope.h5"), "--quiet"]) == 2
    assert "nope.h5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--hidden", "0"])
    assert "--hidden must be positive" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(tmp_path / "empty"), "--quiet"]) == 2
    assert "cannot resume" in capsys.readouterr().err


@pytest.mark.parametrize("script", ["train_randman.py", "train_digits.py"])
def test_examples_run_at_toy_size(script, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [script, "--quick"])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    assert "test accuracy" in capsys.readouterr().out
