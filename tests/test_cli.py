"""The numbaspike command and the example scripts, at toy size."""

import argparse
import json
import runpy
import shutil
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
    assert main(["train", "--task", "shd"]) == 2
    assert "--task shd needs --path FILE" in capsys.readouterr().err
    assert main(["train", "--task", "shd", "--path", str(tmp_path / "nope.h5"), "--quiet"]) == 2
    assert "nope.h5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--hidden", "0"])
    assert "argument --hidden: must be positive, got 0" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(tmp_path / "empty"), "--quiet"]) == 2
    assert "cannot resume" in capsys.readouterr().err


@pytest.mark.parametrize("script", ["train_randman.py", "train_digits.py"])
def test_examples_run_at_toy_size(script, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [script, "--quick"])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    assert "test accuracy" in capsys.readouterr().out


# --- run configuration, resume and output folder -------------------------------------------

TOY = ["--hidden", "16", "--steps", "20", "--max-samples", "200", "--batch-size", "32", "--quiet"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A 1-epoch toy run's output folder (copied by the tests that change it)."""
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", "--epochs", "1", *TOY, "--no-plots", "--out", str(out)]) == 0
    return out


def _copy_run(run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(run, out)
    return out


def test_resume_refuses_options_that_contradict_the_checkpoint(finished_run, tmp_path, capsys):
    out = _copy_run(finished_run, tmp_path)
    before = (out / "checkpoint.npz").read_bytes()
    summary = (out / "summary.json").read_text()
    argv = ["train", "--resume", "--out", str(out), "--epochs", "2", "--quiet"]
    rc = main([*argv, "--hidden", "32", "--lr", "0.5", "--dtype", "float64", "--seed", "7"])
    assert rc == 2
    err = capsys.readouterr().err
    for conflict in ("--hidden 32 (the checkpoint has 16)", "--lr 0.5 (the checkpoint has 0.002)",
                     "--dtype float64 (the checkpoint has float32)", "--seed 7 (the checkpoint has 0)"):  # fmt: skip
        assert conflict in err
    assert (out / "checkpoint.npz").read_bytes() == before
    assert (out / "summary.json").read_text() == summary


def test_resume_needs_more_epochs_than_the_checkpoint_has(finished_run, tmp_path, capsys):
    out = _copy_run(finished_run, tmp_path)
    summary = (out / "summary.json").read_text()
    for extra in ([], ["--epochs", "1"]):
        assert main(["train", "--resume", "--out", str(out), "--quiet", *extra]) == 2
        assert "has finished 1 epochs already; give --epochs N with N > 1" in (
            capsys.readouterr().err
        )
    assert (out / "summary.json").read_text() == summary


def test_resume_keeps_the_recorded_configuration_and_records_it_truly(
    finished_run, tmp_path, capsys
):
    from numbaspike.checkpoint import load_checkpoint

    out = _copy_run(finished_run, tmp_path)
    # options equal to the recorded ones are accepted; the display options may change
    argv = [
        "train",
        "--resume",
        "--out",
        str(out),
        "--epochs",
        "2",
        "--hidden",
        "16",
        "--seed",
        "0",
    ]
    assert main([*argv, "--no-plots"]) == 0
    assert "resuming from" in capsys.readouterr().out
    ckpt = load_checkpoint(out / "checkpoint.npz")
    assert ckpt.epoch == 2
    assert ckpt.config["hidden"] == 16 and ckpt.config["epochs"] == 2
    assert ckpt.config["dtype"] == "float32" and ckpt.config["lr"] == 0.002
    assert ckpt.network[1].n_out == 16
    assert json.loads((out / "summary.json").read_text())["epochs"] == 2


def test_resume_reads_the_raw_options_that_older_checkpoints_recorded(
    finished_run, tmp_path, capsys
):
    from numbaspike.checkpoint import load_checkpoint, save_checkpoint

    out = _copy_run(finished_run, tmp_path)
    ckpt = load_checkpoint(out / "checkpoint.npz")
    old_config = {"command": "train", "task": "randman", "path": None, "hidden": 16,
                  "epochs": None, "batch_size": 32, "lr": 0.002, "surrogate": "superspike",
                  "alpha": 100.0, "steps": 20, "input_scale": None, "max_samples": 200,
                  "seed": 0, "dtype": "float32", "out": str(out), "resume": False,
                  "no_plots": True, "quiet": True}  # fmt: skip
    save_checkpoint(out / "checkpoint.npz", ckpt.network, ckpt.make_optimizer(),
                    history=ckpt.history, epoch=1, config=old_config)  # fmt: skip
    # the task's default is 15 epochs: resuming continues towards it; --epochs 2 stops sooner
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2", "--quiet",
                 "--no-plots", "--input-scale", "10"]) == 0  # fmt: skip
    assert load_checkpoint(out / "checkpoint.npz").config["input_scale"] == 10.0
    capsys.readouterr()


def test_resume_of_a_checkpoint_without_a_run_configuration(finished_run, tmp_path, capsys):
    from numbaspike.checkpoint import load_checkpoint, save_checkpoint

    out = _copy_run(finished_run, tmp_path)
    ckpt = load_checkpoint(out / "checkpoint.npz")
    save_checkpoint(out / "checkpoint.npz", ckpt.network, ckpt.make_optimizer(), epoch=1)
    assert main(["train", "--resume", "--out", str(out), "--quiet"]) == 2
    assert "records no run configuration" in capsys.readouterr().err


def test_out_that_cannot_be_a_folder_is_refused_before_anything_runs(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for out, message in (
        (a_file, "is an existing file"),
        (a_file / "sub", "is a file, so no folder can be made there"),
        (Path("/proc/numbaspike-run"), "cannot write in /proc"),
    ):
        assert main(["train", "--out", str(out), "--quiet"]) == 2
        assert message in capsys.readouterr().err
    assert a_file.read_text() == "x"


def test_failed_runs_leave_no_empty_folders(tmp_path, capsys):
    out = tmp_path / "a" / "b"
    missing = tmp_path / "nope.h5"
    assert main(["train", "--task", "shd", "--path", str(missing), "--out", str(out)]) == 2
    assert main(["train", "--resume", "--out", str(out)]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize(
    "option, value",
    [("--lr", "nan"), ("--lr", "inf"), ("--lr", "-1"), ("--alpha", "nan"), ("--alpha", "inf"),
     ("--input-scale", "nan"), ("--input-scale", "-inf"), ("--seed", "-1"), ("--epochs", "1.5"),
     ("--batch-size", "0")],
)  # fmt: skip
def test_bad_numbers_are_refused_naming_the_option(option, value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", option, value])
    assert exc.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["nan", "-1", "0", "inf", "x"])
def test_gradcheck_refuses_a_bad_tolerance(value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["gradcheck", "--tol", value])
    assert exc.value.code == 2
    assert "argument --tol" in capsys.readouterr().err


def test_gradcheck_torch_without_torch_is_one_clear_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # what an uninstalled package looks like
    assert main(["gradcheck", "--torch"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "numbaspike gradcheck: --torch needs PyTorch, which is not installed (pip install torch)"
    )


def test_path_is_refused_for_tasks_that_do_not_read_it(tmp_path, capsys):
    assert main(["train", "--path", str(tmp_path / "x.h5"), "--out", str(tmp_path / "o")]) == 2
    assert "--path is read by --task shd only" in capsys.readouterr().err


def test_ctrl_c_says_where_the_checkpoint_is_and_how_to_resume(tmp_path, monkeypatch, capsys):
    import numbaspike.train as train_module

    real_step = train_module.train_step
    calls = []

    def interrupted_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 7:  # 5 batches per epoch: the second epoch's second batch
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", interrupted_in_epoch_2)
    out = tmp_path / "run"
    assert main(["train", "--epochs", "3", *TOY, "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert f"{out / 'checkpoint.npz'} holds the run after epoch 1" in err
    assert f"numbaspike train --resume --out {out}" in err
    assert not (out / "summary.json").exists()
    calls.clear()
    calls.extend([1] * 100)  # no further interruption
    assert main(["train", "--resume", "--out", str(out), "--quiet", "--no-plots"]) == 0
    assert json.loads((out / "summary.json").read_text())["epochs"] == 3


def test_ctrl_c_in_the_first_epoch_saves_nothing(tmp_path, monkeypatch, capsys):
    import numbaspike.train as train_module

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train_step", interrupt)
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", *TOY, "--out", str(out)]) == 130
    assert "this run saved no checkpoint" in capsys.readouterr().err
    assert not out.exists()


def test_training_without_matplotlib_prints_the_result_and_skips_the_plots(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", *TOY, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "plots skipped: matplotlib is not installed (pip install numbaspike[plot])" in text
    assert "test accuracy" in text
    assert (out / "summary.json").exists() and not list(out.glob("*.png"))


def test_every_option_has_a_help_text(capsys):
    from numbaspike.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings} has no help text"
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "(default: None)" not in text
    assert "randman 15, digits 20, shd 20" in " ".join(text.split())


def test_train_with_another_neuron_model_records_it(tmp_path, capsys):
    from numbaspike.checkpoint import load_checkpoint

    out = tmp_path / "run"
    argv = ["train", "--neuron", "lsnn", "--epochs", "1", *TOY, "--no-plots", "--out", str(out)]
    assert main(argv) == 0
    ckpt = load_checkpoint(out / "checkpoint.npz")
    assert ckpt.config["neuron"] == "lsnn" and ckpt.network[1].model.name == "lsnn"
    resume = ["train", "--resume", "--out", str(out), "--epochs", "2", "--neuron", "lif"]
    assert main(resume) == 2
    assert "--neuron lif (the checkpoint has lsnn)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--neuron", "izhikevich"])
    assert "argument --neuron: invalid choice" in capsys.readouterr().err


def test_export_inspect_and_train_from_a_nir_file(finished_run, tmp_path, capsys):
    pytest.importorskip("nir")
    from numbaspike.checkpoint import load_checkpoint

    model = tmp_path / "model.nir"
    assert main(["export", str(finished_run / "checkpoint.npz"), str(model)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["inspect", str(model)]) == 0
    shown = capsys.readouterr().out
    assert "100 inputs -> 10 outputs" in shown and "LIFRecurrent recurrent n=16" in shown
    out = tmp_path / "from_nir"
    argv = ["train", "--init-from", str(model), "--epochs", "1", "--steps", "20",
            "--max-samples", "200", "--batch-size", "32", "--quiet", "--no-plots"]  # fmt: skip
    assert main([*argv, "--out", str(out)]) == 0
    trained = load_checkpoint(out / "checkpoint.npz")
    exported = load_checkpoint(finished_run / "checkpoint.npz").network
    assert trained.network.config() == exported.config()  # the file's network, trained on
    assert trained.config["hidden"] == 16 and trained.config["init_from"] == str(model)


def test_nir_commands_refuse_bad_input_in_one_line(finished_run, tmp_path, capsys):
    pytest.importorskip("nir")
    from numbaspike import layers as L
    from numbaspike import nir as NN
    from numbaspike.network import Sequential

    model = tmp_path / "model.nir"
    assert main(["export", str(finished_run / "checkpoint.npz"), str(model)]) == 0
    capsys.readouterr()
    five = NN.save(Sequential(L.Linear(100, 8), L.LIF(8), L.Linear(8, 5), L.LI(5)),
                   tmp_path / "five.nir")  # fmt: skip
    spiking = NN.save(Sequential(L.Linear(100, 10), L.LIF(10)), tmp_path / "spiking.nir")
    cases = [
        (["train", "--init-from", str(five)], "the readout has 5 outputs, the task has 10"),
        (["train", "--init-from", str(spiking)], "must end in an LI readout, it ends in LIF"),
        (["inspect", str(finished_run / "checkpoint.npz")], "not an HDF5 file"),
        (["inspect", str(tmp_path / "none.nir")], "NIR file not found"),
        (["export", str(tmp_path / "none.npz"), str(tmp_path / "x.nir")], "not found"),
        (["train", "--init-from", str(model), "--hidden", "8", "--dtype", "float64"],
         "fixes the network, so --hidden, --dtype cannot be given"),
        (["train", "--init-from", str(model), "--task", "digits", "--max-samples", "50"],
         "the network takes 100 inputs, the task has 64"),
        (["train", "--init-from", str(model), "--resume"], "cannot take --init-from"),
        (["train", "--dt", "0.002"], "--dt is the time step of an --init-from network"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main([*argv, "--out", str(tmp_path / "o")] if argv[0] == "train" else argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "o").exists()
