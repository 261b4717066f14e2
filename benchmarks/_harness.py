"""Shared machinery of the benchmarks: worker subprocesses, alternating timing, peak memory.

Every measurement runs in a subprocess started from the benchmark's own script
(``python <script> --worker SIDE --params JSON --mode MODE``), so that

* numbaspike and PyTorch never share a process (no competing thread pools, no library
  loaded by one side changing the other), and each side can be timed while the other
  is idle: the parent keeps one warm worker per side and asks them for one timed step
  at a time, alternating ``A B B A A B ...`` so that slow phases of a noisy machine hit
  both sides alike;
* peak memory is measured in a fresh process per side: build the problem, run one
  warm-up step (JIT compilation, allocator warm-up; at the same size, or a shorter run of
  the same kernels, see :meth:`Case.memory_warmup`), hand the freed
  memory back to the system (``malloc_trim``), reset the kernel's high-water mark (``echo 5 > /proc/self/clear_refs``, which also resets
  ``ru_maxrss``), read the resident set size as the baseline, run ONE step, and report
  ``ru_maxrss - baseline``: the memory the step itself needs on top of its inputs,
  parameters and the compiled code;
* ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` (set on some machines, where they slow
  numpy's GEMM) are removed from the workers' environment only.

A worker talks JSON lines on a private copy of its stdout; anything the libraries print
goes to stderr, which is kept in a log file and shown only when the worker fails.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
#: Pause between two timed steps of different sides (lets OpenMP/BLAS threads of the
#: side that just ran stop spinning before the other side starts).
SWITCH_PAUSE_S = 0.05


# --------------------------------------------------------------------------------------
# environment
# --------------------------------------------------------------------------------------


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the workers: this one without the OpenBLAS core-type overrides."""
    env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_VARS}
    env.setdefault("PYTHONUNBUFFERED", "1")
    if extra:
        env.update(extra)
    return env


def side_env(side: str) -> dict[str, str]:
    """Extra environment of a side: ``"<side>@1t"`` runs the numba kernels on one thread
    (``NUMBA_NUM_THREADS=1``; BLAS keeps its threads), to show what threading buys. The
    workers import NumPy first, as users do; ``import numbaspike`` then shortens OpenBLAS's
    spinning by itself (see ``numbaspike/runtime/openblas_spinning.py``)."""
    return {"NUMBA_NUM_THREADS": "1"} if side.endswith("@1t") else {}


def removed_openblas_vars() -> dict[str, str]:
    """The OpenBLAS variables of this environment that the workers do not get."""
    return {k: os.environ[k] for k in OPENBLAS_VARS if k in os.environ}


def library_info() -> dict[str, Any]:
    """Thread counts and BLAS kernels of the libraries loaded in this process."""
    info: dict[str, Any] = {}
    if "numba" in sys.modules:
        import numba

        info["numba_threads"] = numba.get_num_threads()
        try:
            info["numba_threading_layer"] = numba.threading_layer()
        except ValueError:  # no parallel region has run yet
            info["numba_threading_layer"] = None
        info["GOMP_SPINCOUNT"] = os.environ.get("GOMP_SPINCOUNT")  # numbaspike sets it
    if "torch" in sys.modules:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    try:
        from threadpoolctl import threadpool_info

        info["threadpools"] = [
            {
                k: p.get(k)
                for k in ("internal_api", "prefix", "architecture", "num_threads", "version")
            }
            for p in threadpool_info()
        ]
    except ImportError:  # pragma: no cover - threadpoolctl is optional
        info["threadpools"] = None
    return info


def blas_summary(info: dict[str, Any]) -> str:
    """A short description of the BLAS kernels in :func:`library_info` output."""
    pools = info.get("threadpools") or []
    parts = [
        f"{p['internal_api']} {p.get('version') or ''} kernel={p.get('architecture') or '?'} "
        f"threads={p.get('num_threads')}".replace("  ", " ")
        for p in pools
        if p.get("internal_api") in ("openblas", "mkl", "blis")
    ]
    return "; ".join(parts) or "no BLAS thread pool reported"


# --------------------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------------------


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """Current resident set size in MB (1e6 bytes)."""
    kb = _status_kb("VmRSS")
    if kb is None:  # pragma: no cover - non-Linux fallback
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6
    return kb * 1024 / 1e6


def maxrss_mb() -> float:
    """``ru_maxrss`` in MB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def release_free_memory() -> bool:
    """Give the memory that the allocator keeps for reuse back to the system
    (``malloc_trim(0)``, glibc). Without it, memory freed by the warm-up step stays
    resident and counts in the baseline (glibc raises its mmap threshold after large
    frees, so even big arrays come from the heap), and the measured step, reusing it,
    looks as if it needed nothing."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    libc.malloc_trim(0)
    return True


def reset_peak_rss() -> bool:
    """Reset the high-water mark of the resident set (Linux >= 4.0); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


# --------------------------------------------------------------------------------------
# worker side
# --------------------------------------------------------------------------------------


class Case:
    """One side of one benchmark: ``step()`` is what gets timed; ``info()`` reports after.

    Subclasses set up everything (data, parameters) in ``__init__``; ``step()`` should
    not keep large arrays alive between calls unless that is what the library does.
    """

    warmup: int = 1

    def step(self) -> None:
        raise NotImplementedError

    def memory_warmup(self) -> None:
        """The warm-up step of a memory worker (default: :meth:`step`). A case may run a
        shorter problem of the same kind here if that compiles the same kernels."""
        self.step()

    def profile_step(self) -> None:
        """The step with timers around its parts (cases that support profiling); asked
        for after the timed steps, so instrumentation never slows those down."""
        raise NotImplementedError

    def profile(self) -> dict[str, float]:
        """Median time of each part over the :meth:`profile_step` calls."""
        return {}

    def info(self) -> dict[str, Any]:
        return {}


def _json_default(obj):
    """numpy scalars (and anything with ``item()``) as Python scalars."""
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def _worker(factories: dict[str, Callable[[dict], Case]], side: str, params: dict, mode: str):
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints of libraries go to the log, not into the protocol

    def send(obj):
        proto.write(json.dumps(obj, default=_json_default) + "\n")
        proto.flush()

    t0 = time.perf_counter()
    case = factories[side.split("@")[0]](params)
    setup_s = time.perf_counter() - t0
    # one warm-up step compiles and sizes everything; timing workers may ask for more
    warmup = 1 if mode == "memory" else int(params.get("warmup", case.warmup))
    t0 = time.perf_counter()
    warm_times = []
    for _ in range(max(warmup, 1)):
        t1 = time.perf_counter()
        case.memory_warmup() if mode == "memory" else case.step()
        warm_times.append(time.perf_counter() - t1)
    warm_s = time.perf_counter() - t0
    gc.collect()
    if mode == "memory":
        trimmed = release_free_memory()
        reset_ok = reset_peak_rss()
        base = rss_mb()
        peak_before = maxrss_mb()
        case.step()
        peak = maxrss_mb()
        send(
            {
                "peak_mb": peak - base,
                "baseline_mb": base,
                "hwm_reset": reset_ok,
                "malloc_trim": trimmed,
                "maxrss_before_mb": peak_before,
                "maxrss_mb": peak,
                "vmhwm_mb": (_status_kb("VmHWM") or 0) * 1024 / 1e6,
            }
        )
        return
    send({"ready": True, "setup_s": setup_s, "warmup_s": warm_s, "warmup_times": warm_times})
    profiled = False
    for line in sys.stdin:
        cmd = line.strip()
        profiled = profiled or cmd == "profile"
        if cmd == "step":
            t1 = time.perf_counter()
            case.step()
            send({"t": time.perf_counter() - t1})
        elif cmd == "profile":
            t1 = time.perf_counter()
            case.profile_step()
            send({"t": time.perf_counter() - t1})
        elif cmd == "info":
            info = case.info()
            if profiled:
                info["profile"] = case.profile()
            info["libraries"] = library_info()
            send(info)
        elif cmd == "quit":
            break


class WorkerError(RuntimeError):
    pass


class Worker:
    """A benchmark side running in its own process (see the module docstring)."""

    def __init__(self, script: str | Path, side: str, params: dict, mode: str = "time"):
        self.side = side
        script = Path(script).resolve()
        self.log = tempfile.NamedTemporaryFile(
            "w+", prefix=f"bench-{Path(script).stem}-{side}-", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(
            [sys.executable, str(script), "--worker", side, "--mode", mode, "--params",
             json.dumps(params)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=child_env(side_env(side)),
            cwd=str(ROOT),
        )  # fmt: skip

    def recv(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self.log.seek(0)
            tail = self.log.read()[-4000:]
            raise WorkerError(
                f"worker {self.side!r} exited with status {self.proc.returncode}:\n{tail}"
            )
        return json.loads(line)

    def ask(self, cmd: str) -> dict:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self.recv()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)


def _alternate(workers: dict, cmd: str, repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in workers}
    order = list(workers)
    for r in range(repeats):
        for name in order if r % 2 == 0 else order[::-1]:
            time.sleep(SWITCH_PAUSE_S)
            times[name].append(workers[name].ask(cmd)["t"])
    return times


def time_sides(
    script, sides: dict[str, dict], repeats: int, profile: tuple[dict, int] | None = None
) -> dict[str, dict]:
    """Time several sides of one case, alternating them step by step.

    ``sides`` maps a side name to its parameters. Returns per side: the list of step
    times, their median, the warm-up report and :meth:`Case.info`. With
    ``profile=(sides, repeats)``, those sides then run that many profiled steps
    (alternated too) and their info gets ``"profile"`` (median per part) and
    ``"profile_median"`` (median profiled step).
    """
    workers = {name: Worker(script, name, params) for name, params in sides.items()}
    try:
        ready = {name: w.recv() for name, w in workers.items()}
        times = _alternate(workers, "step", repeats)
        prof_times = {}
        if profile:
            prof_sides, prof_repeats = profile
            prof_times = _alternate({k: workers[k] for k in prof_sides}, "profile", prof_repeats)
        infos = {name: w.ask("info") for name, w in workers.items()}
        for name, t in prof_times.items():
            infos[name]["profile_median"] = statistics.median(t)
    finally:
        for w in workers.values():
            w.close()
    return {
        name: {
            "times": times[name],
            "median": statistics.median(times[name]),
            "ready": ready[name],
            "info": infos[name],
        }
        for name in workers
    }


def compare(
    script,
    params: dict,
    repeats: int,
    sides=("numbaspike", "torch"),
    memory: bool = True,
    timing_only_sides=(),
    profile_repeats: int = 0,
) -> dict[str, dict]:
    """Alternating timing of ``sides`` (and ``timing_only_sides``) on ``params``, then
    ``profile_repeats`` profiled steps of ``sides`` (see :func:`time_sides`), then the
    peak memory of each of ``sides``.

    The memory workers of the sides run at the same time (each in its own fresh process;
    nothing is timed then), which saves one warm-up (JIT compilation) of wall time.
    """
    out = time_sides(
        script,
        {s: params for s in (*sides, *timing_only_sides)},
        repeats,
        profile=(sides, profile_repeats) if profile_repeats else None,
    )
    if memory:
        workers = {s: Worker(script, s, params, mode="memory") for s in sides}
        try:
            for s, w in workers.items():
                out[s]["memory"] = w.recv()
        finally:
            for w in workers.values():
                w.close()
    return out


# --------------------------------------------------------------------------------------
# command line of a benchmark script
# --------------------------------------------------------------------------------------


def load_snapshot() -> dict:
    """Load average and CPU pressure (other processes compete for the cores)."""
    snap = {"loadavg": list(os.getloadavg())}
    try:
        with open("/proc/pressure/cpu") as f:
            some = f.readline().split()
        snap["cpu_pressure_some_avg60"] = float(some[2].split("=")[1])
    except (OSError, IndexError, ValueError):
        pass
    return snap


def main(
    factories: dict[str, Callable[[dict], Case]],
    run: Callable[[argparse.Namespace], dict],
    description: str,
    name: str,
) -> None:
    """Entry point of a benchmark script: a worker when started with ``--worker``,
    otherwise run the benchmark, print its rows and save them to ``results/<name>.json``.

    ``run(args)`` returns ``{"rows": [...], "sections": {title: markdown}}``.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="time", help=argparse.SUPPRESS)
    parser.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(factories, args.worker, json.loads(args.params), args.mode)
        return
    removed = removed_openblas_vars()
    if removed:
        log(name, f"removed from the workers' environment: {removed}")
    load_before = load_snapshot()
    t0 = time.perf_counter()
    out = run(args)
    elapsed = time.perf_counter() - t0
    rows, sections = out.get("rows", []), out.get("sections", {})
    save_rows(
        name, rows, sections=sections, quick=args.quick, elapsed_s=elapsed,
        load_before=load_before, load_after=load_snapshot(),
    )  # fmt: skip
    from report import markdown_rows

    if rows:
        print(markdown_rows(rows))
    for title, md in sections.items():
        print(f"\n### {title}\n\n{md}")
    log(name, f"done in {elapsed:.0f} s; saved {RESULTS / (name + '.json')}")


def save_rows(name: str, rows: list[dict], **meta) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(
        json.dumps({"name": name, "rows": rows, **meta}, indent=1, default=_json_default)
    )
    return path


def one_thread_note(ns: dict, ns1: dict) -> str:
    """Table note comparing numbaspike on its default threads with ``@1t`` (one thread)."""
    from report import fmt_time

    threads = ns["info"]["libraries"].get("numba_threads")
    t, t1 = ns["median"], ns1["median"]
    return (
        f"numbaspike with its kernels on 1 thread (NUMBA_NUM_THREADS=1, BLAS unchanged): "
        f"{fmt_time(t1)}, vs {fmt_time(t)} on {threads} threads "
        f"(speed-up from threading {t1 / t:.2f}x)"
    )


def log(name: str, msg: str) -> None:
    print(f"[{name}] {msg}", flush=True)
