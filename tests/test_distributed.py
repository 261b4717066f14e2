"""Data-parallel training on MPI, run with ``mpiexec -n 2`` (the mpich wheel's, in CI):
K = 2 against one process, reproducibility, resume with another K, and the faults."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numbaspike.distributed import batch_weight, reduction_of, shard

pytest.importorskip("mpi4py")  # the test extra installs mpi4py and mpich; CI runs these
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
WORKER = Path(__file__).with_name("mpi_worker.py")
needs_mpiexec = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(WORKER.parent), env.get("PYTHONPATH")]))
    return env


def _mpiexec(n: int, *args, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MPIEXEC, "-n", str(n), sys.executable, *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=_env(),
    )  # fmt: skip


@needs_mpiexec
@pytest.mark.parametrize("ranks", [3, 4])
def test_ring_sum_gives_every_rank_the_same_bits(tmp_path, ranks):
    """The ring allreduce: the float64 sum of every rank's buffer (empty, shorter than K,
    long), identical bits on every rank and from call to call."""
    script = tmp_path / "ring.py"
    script.write_text(
        "import numpy as np\n"
        "from mpi4py import MPI\n"
        "from numbaspike.distributed import Group\n"
        "g = Group(MPI.COMM_WORLD)\n"
        "rng = np.random.default_rng(g.rank)\n"
        "for n in (0, 1, 2, 5, 1000, 12345):\n"
        "    x = rng.normal(size=n)\n"
        "    s = g.sum(x, 'test')\n"
        "    ref = np.sum(MPI.COMM_WORLD.allgather(x), axis=0) if n else np.zeros(0)\n"
        "    assert len(set(MPI.COMM_WORLD.allgather(s.tobytes()))) == 1\n"
        "    assert np.allclose(s, ref, rtol=1e-14, atol=1e-14)\n"
        "    assert np.array_equal(g.sum(x, 'test'), s)\n"
        "print('ring OK')\n"
    )
    done = _mpiexec(ranks, script, timeout=300)
    assert done.returncode == 0 and done.stdout.count("ring OK") == ranks, done.stderr[-3000:]


def test_shards_split_a_batch_in_order_and_as_evenly_as_possible():
    for batch in range(0, 12):
        for size in range(1, 5):
            parts = [shard(batch, r, size) for r in range(size)]
            idx = np.concatenate([np.arange(batch)[p] for p in parts])
            assert np.array_equal(idx, np.arange(batch))
            lengths = [p.stop - p.start for p in parts]
            assert max(lengths) - min(lengths) <= 1


def test_loss_reductions_weight_the_shards():
    from numbaspike.losses import MaxOverTimeCrossEntropy, MembraneMSE, SpikeCountL1

    assert reduction_of(MaxOverTimeCrossEntropy(), "loss") == "mean"
    assert reduction_of(MembraneMSE(reduction="sum"), "loss") == "sum"
    assert reduction_of(SpikeCountL1(), "regularizers[0]") == "mean"
    assert batch_weight("mean", 3, 8) == 3 / 8 and batch_weight("sum", 3, 8) == 1.0

    class Custom:
        def __call__(self, y, labels):
            return 0.0, y

    with pytest.raises(ValueError, match=r"loss \(Custom\) declares no batch reduction"):
        reduction_of(Custom(), "loss")


@needs_mpiexec
@pytest.mark.parametrize("ranks", [2, 3], ids=["rank0-sum", "ring"])
def test_ranks_equal_one_process_over_an_epoch(tmp_path, ranks):
    """float64, one epoch of a small recurrent network with learned thresholds (its last batch
    of one sample leaves rank 1 an empty shard): K = 2 against
    K = 1 to 1e-12 (parameters relative to their largest entry; losses per step), with a
    mean-reduced loss plus a regulariser and with a summed loss; two K-rank runs give the
    same bits; a one-rank communicator gives the one-process bits; evaluate agrees. Two ranks
    combine through rank 0, three through the ring allreduce."""
    out = tmp_path / "result.json"
    done = _mpiexec(ranks, WORKER, "equal", out)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    for name in ("mean", "sum"):
        r = result[name]
        assert r["steps"] == 5
        assert r["params"] < 1e-12 and r["losses"] < 1e-12, r
        assert r["repeat_identical"] and r["self_identical"], r
    shared, alone = result["evaluate"]
    assert abs(shared[0] - alone[0]) < 1e-12 and shared[1] == alone[1]


@needs_mpiexec
@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ("raise", "rank 1 of 2: RuntimeError: boom on purpose"),
        ("hang", "rank 0 of 2: rank 1 did not answer within 5 s"),
        ("settings", "different training settings: batch_size (ranks [1] differ from rank 0)"),
        ("diverge", "different parameters at step 2: parameters (ranks [1] differ from rank 0)"),
    ],
)
def test_faults_stop_every_rank_with_the_reason(scenario, message):
    done = _mpiexec(2, WORKER, scenario, timeout=300)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr[-3000:]


@needs_mpiexec
def test_a_killed_rank_does_not_leave_the_others_waiting():
    done = _mpiexec(2, WORKER, "kill", timeout=300)  # the watchdog allows 5 s
    assert done.returncode != 0


@needs_mpiexec
def test_cli_trains_on_two_ranks_and_resumes_on_one(tmp_path):
    out = tmp_path / "run"
    toy = ["--hidden", "8", "--steps", "10", "--max-samples", "100", "--batch-size", "16",
           "--no-plots", "--quiet", "--out", out]  # fmt: skip
    code = "import sys; from numbaspike.cli import main; sys.exit(main(sys.argv[1:]))"
    done = _mpiexec(2, "-c", code, "train", "--distributed", "--epochs", "1", *toy)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("test accuracy") == 1  # rank 0 alone prints
    from numbaspike.checkpoint import load_checkpoint

    assert load_checkpoint(out / "checkpoint.npz").epoch == 1
    again = subprocess.run(
        [sys.executable, "-c", code, "train", "--resume", "--epochs", "2", "--quiet",
         "--no-plots", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert load_checkpoint(out / "checkpoint.npz").epoch == 2


def test_distributed_without_mpi4py_is_one_clear_line(monkeypatch, capsys):
    import builtins

    from numbaspike.cli import main

    real = builtins.__import__

    def no_mpi(name, *args, **kwargs):
        if name.startswith("mpi4py"):
            raise ImportError("No module named 'mpi4py'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mpi)
    assert main(["train", "--distributed", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "numbaspike[mpi]" in err and "Traceback" not in err
