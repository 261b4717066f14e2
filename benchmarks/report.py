"""Markdown tables and the plot of the benchmark results (``results/*.json``)."""

from __future__ import annotations

import math
from pathlib import Path


def fmt_time(s: float | None) -> str:
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "–"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} µs"


def fmt_mb(mb: float | None) -> str:
    if mb is None:
        return "–"
    mb = max(mb, 0.0)  # a step that only reuses freed memory can measure a hair below 0
    return f"{mb:,.0f}" if mb >= 10 else f"{mb:.1f}"


def fmt_rate(r: float | None) -> str:
    return "–" if r is None else f"{100 * r:.2f}%"


HEADER = (
    "| benchmark | case | numbaspike | PyTorch | PyTorch / numbaspike | spike rate "
    "(ns / torch) | peak mem MB (ns / torch) | lower bound | ns / LB | torch / LB |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def markdown_row(r: dict) -> str:
    ns, th, lb = r.get("numbaspike_s"), r.get("torch_s"), r.get("lb_s")
    ratio = f"{th / ns:.2f}×" if ns and th else "–"
    ns_lb = f"{ns / lb:.1f}{'†' if ns < lb else ''}" if ns and lb else "–"
    th_lb = f"{th / lb:.1f}{'†' if th < lb else ''}" if th and lb else "–"
    rate = f"{fmt_rate(r.get('rate'))} / {fmt_rate(r.get('rate_torch'))}"
    mem = f"{fmt_mb(r.get('mem_numbaspike_mb'))} / {fmt_mb(r.get('mem_torch_mb'))}"
    return (
        f"| {r['benchmark']} | {r['case']} | {fmt_time(ns)} | {fmt_time(th)}"
        f"{'*' if r.get('torch_scaled') else ''} | {ratio} | {rate} | {mem} | "
        f"{fmt_time(lb)} | {ns_lb} | {th_lb} |"
    )


def markdown_rows(rows: list[dict]) -> str:
    lines = [HEADER] + [markdown_row(r) for r in rows]
    notes = [f"- {r['benchmark']} {r['case']}: {n}" for r in rows for n in r.get("notes", [])]
    if any(r.get("lb_s") and min(r.get("numbaspike_s") or 1e9, r.get("torch_s") or 1e9)
           < r["lb_s"] for r in rows):  # fmt: skip
        notes.append(
            "- †: faster than the lower bound, i.e. the GEMM rate or bandwidth was measured "
            "during a busy phase of the machine (machine.py runs once, at the start)"
        )
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    """Bar chart: time per case (numbaspike, PyTorch, lower bound; log scale) and memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [r for r in rows if r.get("numbaspike_s")]
    labels = [f"{r['benchmark']}\n{r['case'].replace(' ', chr(10))}" for r in rows]
    x = np.arange(len(rows))
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(max(10, 2.2 * len(rows)), 4.8))
    w = 0.27
    series = [
        ("numbaspike", [r.get("numbaspike_s") or np.nan for r in rows], "C0"),
        ("PyTorch", [r.get("torch_s") or np.nan for r in rows], "C1"),
        ("lower bound", [r.get("lb_s") or np.nan for r in rows], "0.6"),
    ]
    for j, (name, vals, color) in enumerate(series):
        ax_t.bar(x + (j - 1) * w, vals, w, label=name, color=color)
    for k, r in enumerate(rows):
        if r.get("numbaspike_s") and r.get("torch_s"):
            ax_t.annotate(
                f"{r['torch_s'] / r['numbaspike_s']:.1f}×",
                (x[k], max(r["numbaspike_s"], r["torch_s"])),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    ax_t.set_yscale("log")
    ax_t.set_ylabel("seconds per step / run (median)")
    ax_t.set_xticks(x, labels, fontsize=7)
    ax_t.set_xlabel("* PyTorch forward-only: fewer steps, scaled", fontsize=7)
    ax_t.set_title("Time (label: PyTorch / numbaspike)")
    ax_t.legend(fontsize=8)
    for j, (name, key, color) in enumerate(
        [("numbaspike", "mem_numbaspike_mb", "C0"), ("PyTorch", "mem_torch_mb", "C1")]
    ):
        vals = [max(r.get(key) or 0.0, 0.1) for r in rows]  # ~0 shown at the 0.1 MB floor
        xs = x + (j - 0.5) * w
        ax_m.bar(xs, vals, w, label=name, color=color)
        for xk, v in zip(xs, vals, strict=True):
            ax_m.annotate(fmt_mb(v), (xk, v), ha="center", va="bottom", fontsize=7)
    ax_m.set_yscale("log")
    ax_m.set_ylabel("peak extra RSS of one step (MB)")
    ax_m.set_xticks(x, labels, fontsize=7)
    ax_m.set_title("Peak memory")
    ax_m.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
