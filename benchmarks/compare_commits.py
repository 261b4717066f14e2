"""Before/after: the SHD-sized training step and Linear+LIF of two numbaspike commits.

Runs the same benchmark code (``shd_step.py`` and ``linear_lif.py`` of this checkout, which
use only the public layers, losses and optimiser) against the package of a base commit
(checked out with ``git worktree`` into a temporary directory) and against this working
tree, each in fresh processes, alternating base, head, head, base, ... Each process starts
with an empty Numba cache and reports:

* the cold compile: the wall time of the first SHD-sized training step (it compiles every
  kernel of the step);
* the median of the following SHD steps, and of Linear+LIF steps at n = 512 and 2048.

Prints one Markdown table: the median over the processes of each side and head / base.

    python benchmarks/compare_commits.py --base 1610d59 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

WORKER = r"""
import json, statistics, sys, time
sys.path.insert(0, {benchmarks!r})
import numpy as np
import shd_step, linear_lif
import numbaspike

out = {{"package": numbaspike.__file__}}
case = shd_step.NumbaspikeCase({{}})
t0 = time.perf_counter(); case.step(); out["shd_cold_s"] = time.perf_counter() - t0
for _ in range(2):
    case.step()
times = []
for _ in range({shd_steps}):
    t0 = time.perf_counter(); case.step(); times.append(time.perf_counter() - t0)
out["shd_step_ms"] = 1e3 * statistics.median(times)
del case
for n, steps in ((512, {lin_steps}), (2048, max(3, {lin_steps} // 2))):
    case = linear_lif.NumbaspikeCase({{"n": n, "ns_warmup": 2}})
    for _ in range(2):
        case.step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter(); case.step(); times.append(time.perf_counter() - t0)
    out[f"linear_lif_{{n}}_ms"] = 1e3 * statistics.median(times)
    del case
print("RESULT " + json.dumps(out))
"""

METRICS = [
    ("shd_cold_s", "SHD step, cold compile (s)"),
    ("shd_step_ms", "SHD step (ms)"),
    ("linear_lif_512_ms", "Linear+LIF n=512 (ms)"),
    ("linear_lif_2048_ms", "Linear+LIF n=2048 (ms)"),
]


def _worker(tree: Path, args) -> dict:
    code = WORKER.format(
        benchmarks=str(HERE), shd_steps=args.shd_steps, lin_steps=args.linear_steps
    )
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        env = {**os.environ, "PYTHONPATH": str(tree), "NUMBA_CACHE_DIR": cache}
        done = subprocess.run(  # cwd: not a checkout, which python -c would import first
            [sys.executable, "-c", code],
            env=env,
            cwd=cache,
            capture_output=True,
            text=True,
            check=False,
        )
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
            if not result["package"].startswith(str(tree)):
                raise RuntimeError(f"the worker imported {result['package']}, not {tree}")
            return result
    raise RuntimeError(f"worker for {tree} failed:\n{done.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="the commit to compare against")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per side")
    parser.add_argument("--shd-steps", type=int, default=15)
    parser.add_argument("--linear-steps", type=int, default=8)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    results: dict[str, list[dict]] = {"base": [], "head": []}
    with tempfile.TemporaryDirectory(prefix="numbaspike-base-") as tmp:
        base_tree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base_tree), args.base],
            check=True,
            capture_output=True,
        )
        try:
            trees = {"base": base_tree, "head": ROOT}
            for k in range(args.rounds):
                order = ("base", "head") if k % 2 == 0 else ("head", "base")
                for side in order:
                    start = time.perf_counter()
                    results[side].append(_worker(trees[side], args))
                    print(f"round {k + 1} {side}: {time.perf_counter() - start:.0f} s", flush=True)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_tree)],
                check=False,
            )
    print(f"\nbase {args.base} vs head (working tree), {args.rounds} fresh processes per side,")
    print(f"load average at the end {os.getloadavg()[0]:.2f}\n")
    print("| metric | base (median) | head (median) | head / base | base runs | head runs |")
    print("|---|---|---|---|---|---|")
    for key, label in METRICS:
        base = [r[key] for r in results["base"]]
        head = [r[key] for r in results["head"]]
        mb, mh = statistics.median(base), statistics.median(head)
        runs = lambda values: ", ".join(f"{v:.3g}" for v in values)  # noqa: E731
        print(f"| {label} | {mb:.3g} | {mh:.3g} | {mh / mb:.3f} | {runs(base)} | {runs(head)} |")


if __name__ == "__main__":
    main()
