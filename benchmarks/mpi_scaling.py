"""Data-parallel training on this machine: one process (2 threads) against two MPI ranks
(1 thread each), and a model of larger clusters.

Measures, with ``numbaspike train`` started as a user would:

* the second epoch's time (the first compiles) of the default task, and of the SHD-sized
  network (700 -> 256 recurrent -> 20, T = 100, batch 64) on a generated SHD-like file, for
  K = 1 and ``mpiexec -n 2 ... --distributed``;
* the gradient combination alone: :meth:`numbaspike.distributed.Group.sum` of each
  network's parameters (float64) between two ranks, median of 200.

Then writes a model of the speed-up at 8 and 64 nodes: per step, the compute of B/K samples
per node plus the combination of the parameter bytes, as a ring allreduce
(2 (K-1)/K bytes per node) and as numbaspike's rank-order sum through rank 0
(2 (K-1) bytes through rank 0), at 10 and 100 Gbit/s with 5 us per message.

    python benchmarks/mpi_scaling.py            # about 5 minutes; needs mpi4py and mpich
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or "mpiexec"
CLI = "import sys; from numbaspike.cli import main; sys.exit(main(sys.argv[1:]))"
SUM_BENCH = r"""
import json, sys, time
import numpy as np
from mpi4py import MPI
from numbaspike.distributed import Group
group = Group(MPI.COMM_WORLD)
out = {}
for name, size in json.loads(sys.argv[1]).items():
    buf = np.ones(size)
    times = []
    for _ in range(200):
        t = time.perf_counter(); group.sum(buf, "bench"); times.append(time.perf_counter() - t)
    out[name] = float(np.median(times))
if group.rank == 0:
    print(json.dumps(out))
"""


def _epoch_time(args: list[str], out: Path, ranks: int) -> tuple[float, int, int]:
    """The second epoch's time (s), the steps per epoch and the network's parameters."""
    env = dict(os.environ)
    cmd = [sys.executable, "-c", CLI, "train", "--epochs", "2", "--no-plots", "--quiet",
           "--out", str(out), *args]  # fmt: skip
    if ranks > 1:
        cmd = [MPIEXEC, "-n", str(ranks), *cmd, "--distributed"]
    subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=3600)
    from numbaspike.checkpoint import load_checkpoint

    ckpt = load_checkpoint(out / "checkpoint.npz")
    n_params = sum(p.size for p in ckpt.network.parameters().values())
    return ckpt.history.epoch_time[1], len(ckpt.history.step_loss) // 2, n_params


def _model(step_s: float, batch: int, n_bytes: int) -> list[str]:
    """Speed-up at K nodes: t(1) / (t(1)/K + combination), ring and rank-0 sum."""
    lines = [
        "| nodes | link | ring allreduce (ms) | speed-up, ring | rank-0 sum (ms) | "
        "speed-up, rank-0 sum | batch below which a node does less compute than ring "
        "communication |",
        "|---|---|---|---|---|---|---|",
    ]
    latency = 5e-6
    per_sample = step_s / batch
    for k in (8, 64):
        for gbit in (10, 100):
            bw = gbit * 1e9 / 8
            ring = 2 * (k - 1) / k * n_bytes / bw + 2 * (k - 1) * latency
            star = 2 * (k - 1) * n_bytes / bw + 2 * (k - 1) * latency
            even = ring * k / per_sample
            lines.append(
                f"| {k} | {gbit} Gbit/s | {ring * 1e3:.2f} | {step_s / (step_s / k + ring):.1f}x "
                f"| {star * 1e3:.2f} | {step_s / (step_s / k + star):.1f}x | {even:.0f} |"
            )
    return lines


def main() -> None:
    from numbaspike.data import write_shd_like

    tmp = Path(tempfile.mkdtemp())
    shd = tmp / "shd_like.h5"
    rng = np.random.default_rng(0)
    n_spikes = int(0.02 * 700 * 100)  # 2% of the input neuron-steps, as in shd_step.py
    write_shd_like(
        shd,
        [np.sort(rng.uniform(0, 1.0, n_spikes)) for _ in range(400)],
        [rng.integers(0, 700, n_spikes) for _ in range(400)],
        rng.integers(0, 20, 400),
    )
    tasks = {
        "default task (Randman, 100 -> 128 -> 10, T = 50, batch 64)": (
            ["--seed", "0"], 64),
        "SHD-sized (700 -> 256 -> 20, T = 100, batch 64)": (
            ["--task", "shd", "--path", str(shd), "--hidden", "256", "--steps", "100"], 64),
    }  # fmt: skip
    rows, sizes, results = [], {}, {}
    for name, (args, batch) in tasks.items():
        one, steps, sizes[name] = _epoch_time(args, tmp / "k1", 1)
        two, _, _ = _epoch_time(args, tmp / "k2", 2)
        results[name] = (one, steps, batch)
        rows.append(f"| {name} | {one:.2f} | {two:.2f} | {one / two:.2f}x |")
    done = subprocess.run(
        [MPIEXEC, "-n", "2", sys.executable, "-c", SUM_BENCH, json.dumps(sizes)],
        check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    sums = json.loads(done.stdout.strip().splitlines()[-1])
    report = [
        "## Data-parallel training on this machine (2 cores)",
        "",
        "`python benchmarks/mpi_scaling.py`: second-epoch time (the first compiles), K = 1 "
        "with 2 threads against `mpiexec -n 2 ... --distributed` with 1 thread per rank.",
        "",
        "| network | K = 1 (s) | K = 2 (s) | speed-up |",
        "|---|---|---|---|",
        *rows,
        "",
        "| network | parameters | bytes per rank per step (float64) | combination, 2 ranks "
        "(ms, median of 200) |",
        "|---|---|---|---|",
    ]
    for name, n in sizes.items():
        report.append(f"| {name} | {n} | {8 * n} | {sums[name] * 1e3:.3f} |")
    for name, (one, steps, batch) in results.items():
        step_s = one / steps
        report += ["", f"### Model for larger clusters: {name}", "",
                   f"Compute per global batch of {batch} on one node: {step_s * 1e3:.1f} ms "
                   f"(from the K = 1 epoch); parameters {8 * sizes[name]} bytes.", ""]  # fmt: skip
        report += _model(step_s, batch, 8 * sizes[name])
    text = "\n".join(report) + "\n"
    print(text)
    (HERE / "results" / "mpi_scaling.md").write_text(text)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
