"""Run every benchmark, print one Markdown report and save it with a plot.

    python benchmarks/run_all.py [--quick]

Runs ``machine.py`` (fresh measurements), ``linear_lif.py``, ``shd_step.py``,
``sparse_backward.py``, ``forward_only.py`` and ``compile_time.py``, each in its own process
(a failing benchmark is reported and the others still run), then writes ``benchmarks/results/results.md`` and
``benchmarks/results/results.png``. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402
import machine  # noqa: E402
import report  # noqa: E402

BENCHMARKS = ("linear_lif", "shd_step", "sparse_backward", "forward_only", "compile_time")


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, cwd=str(H.ROOT), timeout=30
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def source_state() -> dict:
    """Which numbaspike was measured: commit, local changes, hash of the CPU kernels."""
    kernels = H.ROOT / "numbaspike" / "kernels" / "cpu.py"
    return {
        "commit": _git("rev-parse", "--short", "HEAD"),
        "numbaspike_changes": _git("status", "--porcelain", "--", "numbaspike"),
        "cpu_kernels_sha1": hashlib.sha1(kernels.read_bytes()).hexdigest()[:12]
        if kernels.exists()
        else None,
    }


def _run(script: str, quick: bool) -> tuple[bool, float]:
    t0 = time.perf_counter()
    cmd = [sys.executable, str(H.HERE / f"{script}.py")] + (["--quick"] if quick else [])
    print(f"\n===== {script} =====", flush=True)
    env = dict(os.environ, **{machine.REUSE_ENV: "1"})  # measured once, by machine.py
    rc = subprocess.call(cmd, cwd=str(H.ROOT), env=env)
    return rc == 0, time.perf_counter() - t0


def build_report(quick: bool, status: dict, src: dict, elapsed: float) -> str:
    mach = json.loads(machine.MACHINE_JSON.read_text())
    rows, sections, loads = [], {}, {}
    for name in BENCHMARKS:
        path = H.RESULTS / f"{name}.json"
        if not status.get(name, (False,))[0] or not path.exists():
            continue
        data = json.loads(path.read_text())
        rows += data.get("rows", [])
        sections.update(data.get("sections", {}))
        loads[name] = data.get("load_before", {}).get("loadavg", [None])[0]
    ns_libs = next(
        (
            libs
            for r in rows
            for libs in (
                r.get("libraries", {}).get("numbaspike"),
                r.get("info", {}).get("numbaspike", {}).get("libraries"),
            )
            if libs
        ),
        {},
    )
    changes = src["numbaspike_changes"]
    lines = [
        f"# numbaspike vs PyTorch benchmarks ({'quick' if quick else 'full'} run)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')}, total {elapsed / 60:.1f} min. numbaspike at commit "
        f"`{src['commit']}`"
        + (f" with local changes (`{changes.replace(chr(10), '; ')}`)" if changes else "")
        + f", kernels/cpu.py sha1 `{src['cpu_kernels_sha1']}`.",
        "",
        "Medians of alternated steps (see README.md); ratio = PyTorch / numbaspike time "
        "(> 1: numbaspike is faster); peak memory = extra RSS of one step in a fresh process; "
        "lower bound (LB) from the measured GEMM rate and bandwidth.",
        "1-minute load average when each benchmark started: "
        + ", ".join(f"{k} {v:.1f}" for k, v in loads.items() if v is not None)
        + f" (on {mach['cores']} cores: above ~0.5 other processes compete for them).",
        f"CPU: {mach['cpu']} (LLVM target: {mach.get('llvm_target', '?')}). "
        f"numbaspike workers: numba {ns_libs.get('numba_threads', '?')} threads, "
        f"{ns_libs.get('numba_threading_layer', '?')} threading layer, "
        f"GOMP_SPINCOUNT={ns_libs.get('GOMP_SPINCOUNT')}; "
        f"{H.blas_summary(ns_libs) if ns_libs else ''}.",
        "",
        report.markdown_rows(rows),
    ]
    failed = [k for k, v in status.items() if not v[0]]
    if failed:
        lines += ["", f"**Failed:** {', '.join(failed)} (see the console output)."]
    for title, md in sections.items():
        lines += ["", f"## {title}", "", md]
    lines += ["", "## Machine", "", machine.markdown(mach), ""]
    return "\n".join(lines)


def _write(text: str, rows: list[dict]) -> Path:
    md_path = H.RESULTS / "results.md"
    md_path.write_text(text)
    if rows:
        report.plot(rows, H.RESULTS / "results.png")
    return md_path


def _load_rows() -> list[dict]:
    rows = []
    for name in BENCHMARKS:
        path = H.RESULTS / f"{name}.json"
        if path.exists():
            rows += json.loads(path.read_text()).get("rows", [])
    return rows


def rebuild_report() -> None:
    """results.md / results.png from the saved JSON (e.g. after changing report.py)."""
    run_json = H.RESULTS / "run.json"
    if run_json.exists():
        meta = json.loads(run_json.read_text())
    else:  # from the benchmarks' own files
        saved = [
            json.loads(p.read_text())
            for k in BENCHMARKS
            if (p := H.RESULTS / f"{k}.json").exists()
        ]
        meta = {
            "quick": any(d.get("quick") for d in saved),
            "source": source_state(),
            "elapsed_s": sum(d.get("elapsed_s", 0.0) for d in saved),
        }
    status = {k: (True, 0.0) for k in BENCHMARKS if (H.RESULTS / f"{k}.json").exists()}
    text = build_report(meta["quick"], status, meta["source"], meta["elapsed_s"])
    print(text)
    print(f"[run_all] rewrote {_write(text, _load_rows())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rebuild results.md and results.png from the JSON files of the last run",
    )
    args = parser.parse_args()
    if args.report_only:
        rebuild_report()
        return
    t0 = time.perf_counter()
    H.RESULTS.mkdir(parents=True, exist_ok=True)
    for name in BENCHMARKS:  # stale results of an earlier run must not be reported
        (H.RESULTS / f"{name}.json").unlink(missing_ok=True)
    src = source_state()
    status = {"machine": _run("machine", args.quick)}
    if not status["machine"][0]:
        sys.exit("machine.py failed; the lower bounds need it")
    for name in BENCHMARKS:
        status[name] = _run(name, args.quick)
    elapsed = time.perf_counter() - t0
    (H.RESULTS / "run.json").write_text(
        json.dumps({"quick": args.quick, "source": src, "elapsed_s": elapsed}, indent=1)
    )
    text = build_report(args.quick, status, src, elapsed)
    md_path = _write(text, _load_rows())
    print("\n" + text)
    print(
        f"[run_all] {elapsed / 60:.1f} min; wrote {md_path} and {H.RESULTS / 'results.png'}; "
        + ", ".join(f"{k} {v[1]:.0f} s" for k, v in status.items())
    )
    if any(not v[0] for v in status.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
