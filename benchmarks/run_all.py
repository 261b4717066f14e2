"""Run every benchmark, print one Markdown report and save it with a plot.

    python benchmarks/run_all.py [--quick]

Runs ``machine.py`` (fresh measurements), ``linear_lif.py``, ``shd_step.py``,
``forward_only.py`` and ``compile_time.py``, each in its own process (a failing benchmark
is reported and the others still run), then writes ``benchmarks/results/results.md`` and
``benchmarks/results/results.png``. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402
import machine  # noqa: E402
import report  # noqa: E402

BENCHMARKS = ("linear_lif", "shd_step", "forward_only", "compile_time")


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
    rc = subprocess.call(cmd, cwd=str(H.ROOT))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    args = parser.parse_args()
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
    text = build_report(args.quick, status, src, elapsed)
    md_path = H.RESULTS / "results.md"
    md_path.write_text(text)
    rows = []
    for name in BENCHMARKS:
        path = H.RESULTS / f"{name}.json"
        if status[name][0] and path.exists():
            rows += json.loads(path.read_text()).get("rows", [])
    if rows:
        report.plot(rows, H.RESULTS / "results.png")
    print("\n" + text)
    print(
        f"[run_all] {elapsed / 60:.1f} min; wrote {md_path} and {H.RESULTS / 'results.png'}; "
        + ", ".join(f"{k} {v[1]:.0f} s" for k, v in status.items())
    )
    if any(not v[0] for v in status.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
