"""JIT compile time of a full training step, cold and with numba's on-disk cache warm,
and import times.

    python benchmarks/compile_time.py [--quick]

Each measurement is a fresh Python process (environment as in ``_harness.py``):

* **import**: wall time of ``import numbaspike``, and of everything a training step needs
  (``numbaspike.layers``, ``.network``, ``.losses``, ``.optim``), measured inside the
  process (interpreter start-up excluded); ``import torch`` for comparison. Median of 3.
* **train step**: the SHD network of ``shd_step.py`` (Linear 700->256, LIFRecurrent 256,
  Linear 256->20, LI 20, max-over-time CE, Adam), at two sizes:

  - ``SHD size`` (T=100, B=64): large enough for the kernels to run in parallel (the
    shared parallel runner of ``numbaspike/compiler/parallel_runner.py``);
  - ``tiny`` (T=20, B=2, 50-32r-5): small enough for them to run serially (its serial
    runner) and for the dense projections; skipped with ``--quick``.

  First a process with ``NUMBA_CACHE_DIR`` pointing to an empty temporary directory
  (cold: everything compiles), then a second process with the same directory (warm:
  what is cached loads from disk). Reported: the first step, the median of the next 3
  steps, and their difference (= compile and cache-load overhead of the first step).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402
from report import fmt_time  # noqa: E402

NAME = "compile_time"
SIZES = {
    "SHD size": {"T": 100, "B": 64, "n_in": 700, "n_hid": 256, "n_out": 20},
    "tiny": {"T": 20, "B": 2, "n_in": 50, "n_hid": 32, "n_out": 5},
}


def _child_import(module: str) -> None:
    t0 = time.perf_counter()
    __import__(module)
    if module == "numbaspike":
        t1 = time.perf_counter()
        import numbaspike.layers  # noqa: F401
        import numbaspike.losses  # noqa: F401
        import numbaspike.network  # noqa: F401
        import numbaspike.optim  # noqa: F401

        print(json.dumps({"import": t1 - t0, "import_all": time.perf_counter() - t0}))
    else:
        print(json.dumps({"import": time.perf_counter() - t0}))


def _child_train(size: dict) -> None:
    t0 = time.perf_counter()
    import numpy as np

    from numbaspike.layers import LI, LIFRecurrent, Linear
    from numbaspike.losses import MaxOverTimeCrossEntropy
    from numbaspike.network import Sequential
    from numbaspike.optim import Adam

    t_import = time.perf_counter() - t0
    s = size
    rng = np.random.default_rng(0)
    x = (rng.random((s["T"], s["B"], s["n_in"])) < 0.02).astype(np.float32)
    labels = rng.integers(0, s["n_out"], s["B"])
    net = Sequential(
        Linear(s["n_in"], s["n_hid"], seed=1, scale=20),
        LIFRecurrent(s["n_hid"], seed=2, scale=2),
        Linear(s["n_hid"], s["n_out"], seed=3),
        LI(s["n_out"]),
    )
    loss_fn = MaxOverTimeCrossEntropy()
    opt = Adam(net.parameters(), lr=1e-3)

    def step():
        net.zero_grad()
        y, tape = net.forward(x)
        _, g = loss_fn(y, labels)
        net.backward(g, tape)
        opt.step(net.gradients())

    times = []
    for _ in range(4):
        t1 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t1)
    print(json.dumps({"import": t_import, "first": times[0], "steady": times[1:]}))


def _spawn(args: list[str], env_extra: dict | None = None) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, *args],
        capture_output=True,
        text=True,
        env=H.child_env(env_extra),
        cwd=str(H.ROOT),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"compile_time child failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool) -> dict:
    rows = []
    imports = {}
    for module in ("numbaspike", "torch"):
        runs = [_spawn(["--child-import", module]) for _ in range(3)]
        imports[module] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    H.log(NAME, f"imports: {imports}")
    for label, size in SIZES.items():
        if quick and label != "SHD size":
            continue
        cache = tempfile.mkdtemp(prefix="numbaspike-cache-")
        try:
            res = {}
            for phase in ("cold", "warm"):
                H.log(NAME, f"{label}: {phase} cache ...")
                res[phase] = _spawn(
                    ["--child-train", json.dumps(size)], {"NUMBA_CACHE_DIR": cache}
                )
            n_files = sum(len(f) for _, _, f in os.walk(cache))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        for phase, r in res.items():
            steady = statistics.median(r["steady"])
            rows.append(
                {
                    "size": label,
                    "cache": phase,
                    "first_step_s": r["first"],
                    "steady_step_s": steady,
                    "overhead_s": r["first"] - steady,
                    "import_s": r["import"],
                    "cache_files": n_files,
                }
            )
    lines = [
        f"`import numbaspike`: {fmt_time(imports['numbaspike']['import'])}; with layers, "
        f"network, losses, optim: {fmt_time(imports['numbaspike']['import_all'])}; "
        f"`import torch`: {fmt_time(imports['torch']['import'])} (median of 3 fresh processes)",
        "",
        "| train step size | numba cache | first step | later steps (median) | compile / load overhead |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['cache']} | {fmt_time(r['first_step_s'])} | "
            f"{fmt_time(r['steady_step_s'])} | {fmt_time(r['overhead_s'])} |"
        )
    return {"compile": rows, "imports": imports, "markdown": "\n".join(lines)}


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child-import", help=argparse.SUPPRESS)
    parser.add_argument("--child-train", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_import:
        _child_import(args.child_import)
        return
    if args.child_train:
        _child_train(json.loads(args.child_train))
        return
    load_before = H.load_snapshot()
    t0 = time.perf_counter()
    out = run(args.quick)
    elapsed = time.perf_counter() - t0
    title = "JIT compile and import time"
    H.save_rows(
        NAME, [], sections={title: out["markdown"]}, compile=out["compile"],
        imports=out["imports"], quick=args.quick, elapsed_s=elapsed,
        load_before=load_before, load_after=H.load_snapshot(),
    )  # fmt: skip
    print(f"### {title}\n\n{out['markdown']}")
    H.log(NAME, f"done in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
