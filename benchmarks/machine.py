"""Machine limits: float32 GEMM throughput and memory bandwidth, and the lower-bound model.

Run alone to print the machine table::

    python benchmarks/machine.py [--quick]

The measurements run in a subprocess whose environment lacks ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE`` (see ``_harness.py``) and are saved in ``results/machine.json``. The
benchmarks call :func:`load` with the GEMM shapes they need and :func:`lower_bound` to turn
FLOPs and bytes into seconds. A benchmark run alone measures the bandwidth and its shapes
anew: the speed of a shared machine drifts by 10-30% within hours, and a bound taken from
another hour (or another CPU behind the same name) would not be this run's. Under
``run_all.py``, which measures every shape first, the benchmarks reuse that measurement
(:data:`REUSE_ENV`).

* **GEMM**: ``A (m, k) @ B (k, n)`` in float32, numpy (its BLAS, as numbaspike's
  ``Linear`` uses it) and ``torch.mm``; best of at least 5 calls after a warm-up, and of
  as many as fit in 1 s for short calls (``--quick``: 3 calls, 0.5 s) (a machine limit on a shared machine: the best,
  not the median). Shapes above 1.5e11 FLOPs are measured with their largest
  dimension halved until they fit (the rate of such shapes is flat); the table says so.
* **Bandwidth**: a numba ``parallel=True`` triad ``a[i] = b[i] + s * c[i]`` (3 arrays,
  counted as 3 x bytes, the STREAM convention: write-allocate traffic not counted) and a
  numpy copy ``np.copyto(a, b)`` (2 x bytes), at working sets of 8 MiB to 1.5 GiB, so
  that caches show up as tiers; best of at least 3 calls (more for short ones, as above).

Lower bound of a benchmark (:func:`lower_bound`)::

    t_LB = sum_i FLOPs_i / GEMM_rate(shape_i)  +  bytes / bandwidth(working set)

with the best GEMM rate of numpy and PyTorch for each product's shape (for large products,
every dimension >= 512, the best of all large shapes: they are all compute-bound, so the
peak is a property of the machine, and this keeps one measurement taken during a busy
moment from inflating the bound) and the best
bandwidth of triad and copy at the smallest measured working set that is at least as
large as the benchmark's (the largest one if none is). It is the time of an
implementation that runs each unavoidable product at the machine's measured GEMM rate
and moves only the listed bytes at the measured bandwidth, one after the other (like
both implementations benchmarked here); ``max`` instead of ``+`` would give the bound of
a perfectly overlapped one. Each benchmark documents its FLOP and byte counts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402

MACHINE_JSON = H.RESULTS / "machine.json"
#: Set to ``"1"`` by ``run_all.py`` for the benchmarks it starts after measuring the machine:
#: :func:`load` then reuses ``machine.json`` (measuring only shapes it lacks).
REUSE_ENV = "NUMBASPIKE_BENCH_REUSE_MACHINE"
GEMM_FLOP_CAP = 1.5e11
#: Working sets (bytes, all arrays together) of the bandwidth measurement.
BANDWIDTH_SIZES = (8 << 20, 64 << 20, 512 << 20, 1536 << 20)


def n_threads() -> int:
    """Cores this process may run on (the thread count given to PyTorch)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def shape_key(shape) -> str:
    return "x".join(str(int(d)) for d in shape)


def _measured_shape(shape) -> tuple[int, int, int]:
    m, k, n = (int(d) for d in shape)
    dims = [m, k, n]
    while 2.0 * dims[0] * dims[1] * dims[2] > GEMM_FLOP_CAP and max(dims) > 256:
        j = dims.index(max(dims))
        dims[j] //= 2
    return tuple(dims)


# --------------------------------------------------------------------------------------
# measurements (run in a child process)
# --------------------------------------------------------------------------------------


def _best_time(fn, min_reps: int = 3, budget_s: float = 0.5, max_reps: int = 500) -> float:
    """Best time of ``fn()`` after a warm-up call: at least ``min_reps`` calls, more for
    short calls (up to ``budget_s`` in all), since on a busy machine the best of many short
    calls is what reaches the limit."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    reps = max(min_reps, min(max_reps, int(budget_s / max(first, 1e-9))))
    best = first
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _measure_gemm(shapes, quick: bool = False) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(n_threads())
    rng = np.random.default_rng(0)
    reps, budget = (3, 0.5) if quick else (5, 1.0)
    out = {}
    for shape in shapes:
        m, k, n = _measured_shape(shape)
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        flops = 2.0 * m * k * n
        t_np = _best_time(lambda a=a, b=b: a @ b, reps, budget_s=budget)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        t_torch = _best_time(lambda ta=ta, tb=tb: torch.mm(ta, tb), reps, budget_s=budget)
        out[shape_key(shape)] = {
            "shape": list(shape),
            "measured_as": [m, k, n],
            "numpy_flops": flops / t_np,
            "torch_flops": flops / t_torch,
        }
    return {"gemm": out, "libraries": H.library_info()}


def _measure_bandwidth(sizes) -> dict:
    import numba
    import numpy as np
    from numba import njit, prange

    @njit(parallel=True)
    def triad(a, b, c, s):
        for j in prange(a.shape[0]):
            a[j] = b[j] + s * c[j]

    rows = []
    for total in sizes:
        n3 = total // (3 * 4)
        a, b, c = (np.ones(n3, np.float32) for _ in range(3))
        t_triad = _best_time(lambda a=a, b=b, c=c: triad(a, b, c, np.float32(0.5)), 3)
        del a, b, c
        n2 = total // (2 * 4)
        a, b = np.ones(n2, np.float32), np.ones(n2, np.float32)
        t_copy = _best_time(lambda a=a, b=b: np.copyto(a, b), 3)
        del a, b
        rows.append(
            {
                "working_set": int(total),
                "triad_bps": 3 * n3 * 4 / t_triad,
                "copy_bps": 2 * n2 * 4 / t_copy,
            }
        )
    return {
        "bandwidth": rows,
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": numba.threading_layer(),
        "libraries": H.library_info(),
    }


def _run_child(args: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, *args],
        capture_output=True,
        text=True,
        env=H.child_env(),
        cwd=str(H.ROOT),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"machine measurement failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------
# cache and lower-bound model
# --------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _llvm_target() -> str:
    """The CPU that LLVM (so Numba) compiles for, and its widest vector extension: the
    "model name" alone does not tell an AVX2 EPYC from an AVX-512 one, and the kernels'
    speed and compile time depend on it."""
    try:
        import llvmlite.binding as ll

        name, features = ll.get_host_cpu_name(), ll.get_host_cpu_features()
    except Exception:  # noqa: BLE001 - a description only
        return "unknown"
    widest = (
        "AVX-512" if features.get("avx512f") else "AVX2" if features.get("avx2") else "no AVX2"
    )
    return f"{name}, {widest}"


def load(gemm_shapes=(), fresh: bool | None = None, quick: bool = False) -> dict:
    """Machine measurements for ``gemm_shapes``, saved to ``machine.json``.

    ``fresh=None`` (the default) measures the bandwidth and the shapes now, unless the
    environment has ``REUSE_ENV=1`` (set by ``run_all.py`` after its own measurement); then
    the saved file is reused and only shapes it lacks are measured."""
    if fresh is None:
        fresh = os.environ.get(REUSE_ENV) != "1"
    data = None
    if MACHINE_JSON.exists() and not fresh:
        data = json.loads(MACHINE_JSON.read_text())
    if data is None:
        H.log("machine", "measuring the bandwidth and GEMM rates for the lower bound ...")
        bw = _run_child(["--child-bandwidth"])
        data = {
            "cpu": _cpu_model(),
            "llvm_target": _llvm_target(),
            "cores": n_threads(),
            "python": platform.python_version(),
            "openblas_vars_removed": H.removed_openblas_vars(),
            "numba_threads": bw["numba_threads"],
            "numba_threading_layer": bw["numba_threading_layer"],
            "bandwidth": bw["bandwidth"],
            "gemm": {},
            "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
    missing = sorted({shape_key(s): s for s in gemm_shapes if shape_key(s) not in data["gemm"]})
    if missing:
        todo = [list(map(int, k.split("x"))) for k in missing]
        res = _run_child(["--child-gemm", json.dumps(todo)] + (["--quick"] if quick else []))
        data["gemm"].update(res["gemm"])
        data["libraries"] = res["libraries"]
        data["blas"] = H.blas_summary(res["libraries"])
    H.RESULTS.mkdir(parents=True, exist_ok=True)
    MACHINE_JSON.write_text(json.dumps(data, indent=1))
    return data


#: Products whose every dimension is at least this are compute-bound on any CPU: they
#: all run at the machine's peak GEMM rate, which a busy phase may hide in one of them.
LARGE_GEMM_DIM = 512


def gemm_rate(machine: dict, shape) -> float:
    """Best measured float32 FLOP/s (numpy or PyTorch) for ``A (m,k) @ B (k,n)``; for a
    large product (every dimension >= :data:`LARGE_GEMM_DIM`), the best of all large ones."""

    def best(g):
        return max(g["numpy_flops"], g["torch_flops"])

    rate = best(machine["gemm"][shape_key(shape)])
    if min(shape) >= LARGE_GEMM_DIM:
        large = [best(g) for g in machine["gemm"].values() if min(g["shape"]) >= LARGE_GEMM_DIM]
        rate = max([rate, *large])
    return rate


def bandwidth(machine: dict, working_set: float) -> float:
    """Best measured bandwidth (B/s) at the smallest working set >= ``working_set``."""
    rows = sorted(machine["bandwidth"], key=lambda r: r["working_set"])
    row = next((r for r in rows if r["working_set"] >= working_set), rows[-1])
    return max(row["triad_bps"], row["copy_bps"])


def lower_bound(machine: dict, gemms, nbytes: float, working_set: float) -> dict:
    """``gemms``: iterable of ``(flops, (m, k, n))``; returns the parts and the total (s)."""
    gemms = list(gemms)
    t_gemm = sum(f / gemm_rate(machine, s) for f, s in gemms)
    bw = bandwidth(machine, working_set)
    t_mem = nbytes / bw
    return {
        "flops": float(sum(f for f, _ in gemms)),
        "t_gemm": t_gemm,
        "bytes": float(nbytes),
        "working_set": float(working_set),
        "bandwidth": bw,
        "t_mem": t_mem,
        "total": t_gemm + t_mem,
    }


def all_gemm_shapes(quick: bool) -> list:
    """The GEMM shapes used by the lower bounds of every benchmark."""
    import forward_only
    import linear_lif
    import shd_step

    shapes = []
    for mod in (linear_lif, shd_step, forward_only):
        shapes += mod.gemm_shapes(quick)
    return shapes


def markdown(machine: dict) -> str:
    lines = [
        f"CPU: {machine['cpu']} (LLVM target: {machine.get('llvm_target', '?')}), "
        f"{machine['cores']} cores; BLAS: {machine.get('blas', '?')}; "
        f"numba triad: {machine['numba_threads']} threads, "
        f"{machine['numba_threading_layer']} layer",
    ]
    if machine.get("openblas_vars_removed"):
        lines.append(f"Removed for the workers: {machine['openblas_vars_removed']}")
    else:
        lines.append("OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE: not set in this environment")
    lines += [
        "",
        "| GEMM (m, k, n) float32 | measured as | numpy GFLOP/s | PyTorch GFLOP/s |",
        "|---|---|---:|---:|",
    ]
    for g in machine["gemm"].values():
        meas = "" if g["measured_as"] == g["shape"] else shape_key(g["measured_as"])
        lines.append(
            f"| {shape_key(g['shape'])} | {meas} | {g['numpy_flops'] / 1e9:.1f} | "
            f"{g['torch_flops'] / 1e9:.1f} |"
        )
    lines += [
        "",
        "| working set | numba triad GB/s | numpy copy GB/s |",
        "|---:|---:|---:|",
    ]
    for r in machine["bandwidth"]:
        lines.append(
            f"| {r['working_set'] / 2**20:.0f} MiB | {r['triad_bps'] / 1e9:.1f} | "
            f"{r['copy_bps'] / 1e9:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child-gemm", help=argparse.SUPPRESS)
    parser.add_argument("--child-bandwidth", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_gemm:
        print(json.dumps(_measure_gemm(json.loads(args.child_gemm), args.quick)))
        return
    if args.child_bandwidth:
        print(json.dumps(_measure_bandwidth(BANDWIDTH_SIZES)))
        return
    t0 = time.perf_counter()
    machine = load(all_gemm_shapes(args.quick), fresh=True, quick=args.quick)
    print(markdown(machine))
    print(f"[machine] done in {time.perf_counter() - t0:.0f} s; saved {MACHINE_JSON}")


if __name__ == "__main__":
    main()
