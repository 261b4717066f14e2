"""How close is a surrogate gradient to a true gradient? A sweep over the surrogate's sharpness.

A spiking network's loss is piecewise constant in its parameters, so its true gradient is
zero almost everywhere; training uses a *surrogate* gradient instead (the backward pass
replaces the step's derivative by ``s(u)``). Each surrogate also defines a smooth model
(forward ``z = F(u)`` with ``F' = s``); for sigmoid, atan and boxcar, ``F`` tends to the
step as the surrogate sharpens, so the smooth model approaches the spiking network.

This script builds Linear -> LIF -> Linear -> LI on random input spikes and, for each
surrogate and sharpness, measures with :func:`numbaspike.gradcheck.compare_surrogate_to_smooth`
the cosine similarity between the spiking network's surrogate gradient and the
finite-difference gradient of the matching smooth model ("cos <parameter>" columns). A
smooth model with a sharp surrogate is so stiff that finite differences stop resolving its
gradient; the "FD error" column (distance of the finite differences from the smooth model's
exact backward gradient) shows where, and "cos exact" is the cosine against that exact
gradient, which the plot shows (crosses: finite differences, where resolved). Sharpness is
given as the peak ``s(0)`` of the surrogate derivative (alpha/4 for sigmoid, alpha/2 for
atan, 1/(2 alpha) for boxcar), so that the curves share an x-axis.

Run ``python examples/gradient_study.py [--quick] [--out gradient_study.png]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from numbaspike.gradcheck import compare_surrogate_to_smooth
from numbaspike.layers import LI, LIF, Linear
from numbaspike.losses import MeanOverTimeCrossEntropy
from numbaspike.network import Sequential
from numbaspike.params import LIFParameters

#: alpha giving a surrogate derivative with peak s(0) = peak.
ALPHA_FOR_PEAK = {
    "sigmoid": lambda peak: 4.0 * peak,
    "atan": lambda peak: 2.0 * peak,
    "boxcar": lambda peak: 0.5 / peak,
    "triangle": lambda peak: peak,
}


def build_problem(n_in: int, n_hidden: int, n_out: int, steps: int, batch: int, seed: int):
    """Random input spikes (T, B, n_in), labels (B,), and the network weights."""
    rng = np.random.default_rng(seed)
    x = (rng.random((steps, batch, n_in)) < 0.1).astype(np.float32)
    labels = rng.integers(0, n_out, batch)
    w_in = rng.normal(5.0 / n_in, 0.6, (n_hidden, n_in)).astype(np.float32)  # ~10-20% firing
    w_out = rng.normal(0.0, 2.0, (n_out, n_hidden)).astype(np.float32)
    return x, labels, w_in, w_out


def build_network(p: LIFParameters, w_in: np.ndarray, w_out: np.ndarray) -> Sequential:
    n_hidden, n_in = w_in.shape
    n_out = w_out.shape[0]
    net = Sequential(Linear(n_in, n_hidden), LIF(n_hidden, p), Linear(n_hidden, n_out), LI(n_out))
    net.load_parameters({"0.weight": w_in, "2.weight": w_out})
    return net


def sweep(surrogates, peaks, *, quick: bool, seed: int):
    """Rows (surrogate, alpha, peak, hidden spike rate, {parameter: cosine vs FD}, FD error,
    cosine vs the smooth model's exact backward gradient)."""
    if quick:
        dims = {"n_in": 8, "n_hidden": 6, "n_out": 3, "steps": 20, "batch": 2}
    else:
        dims = {"n_in": 20, "n_hidden": 16, "n_out": 4, "steps": 50, "batch": 8}
    x, labels, w_in, w_out = build_problem(**dims, seed=seed)
    loss = MeanOverTimeCrossEntropy()
    rows = []
    for name in surrogates:
        for peak in peaks:
            alpha = ALPHA_FOR_PEAK[name](peak)
            net = build_network(LIFParameters(surrogate=name, alpha=alpha), w_in, w_out)
            rate = float(net.forward(x)[1].outputs[1].mean())
            cmp = compare_surrogate_to_smooth(net, x, loss, labels, seed=seed)
            exact = {r.name: r.cosine_exact for r in cmp.rows}
            rows.append((name, alpha, peak, rate, cmp.cosine, cmp["all"].fd_err, exact["all"]))
    return rows


def format_table(rows) -> str:
    params = list(rows[0][4])
    cols = " ".join(f"{'cos ' + p:>12}" for p in params)
    head = f"{'surrogate':<10} {'alpha':>8} {'s(0)':>7} {'rate':>6} {cols} {'FD error':>9} {'cos exact':>10}"
    lines = [head, "-" * len(head)]
    for name, alpha, peak, rate, cos, fd_err, cos_exact in rows:
        cells = " ".join(f"{cos[p]:>12.4f}" for p in params)
        lines.append(
            f"{name:<10} {alpha:>8.3g} {peak:>7.3g} {rate:>6.3f} {cells} {fd_err:>9.1e} {cos_exact:>10.4f}"
        )
    return "\n".join(lines)


def plot(rows, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == name]
        line = ax.plot([r[2] for r in mine], [r[6] for r in mine], marker="o", label=f"{name}")[0]
        ok = [r for r in mine if r[5] < 1e-3]  # where FD resolves the smooth gradient
        ax.plot([r[2] for r in ok], [r[4]["all"] for r in ok], "x", color=line.get_color(), ms=9)
    ax.set_xscale("log")
    ax.set_xlabel("surrogate sharpness: peak s(0)")
    ax.set_ylabel("cosine(surrogate grad, smooth-model grad)")
    ax.set_title("Surrogate gradient vs true gradient of the smooth model")
    ax.axhline(1.0, color="0.7", lw=0.8)
    ax.plot([], [], "kx", label="finite differences (where resolved)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="toy-size run (seconds)")
    parser.add_argument(
        "--out", type=Path, default=Path("gradient_study.png"), help="PNG to write"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--surrogates",
        nargs="+",
        default=["sigmoid", "atan", "boxcar"],
        choices=sorted(ALPHA_FOR_PEAK),
    )
    args = parser.parse_args(argv)
    peaks = [1.0, 10.0] if args.quick else [0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 25.0]
    start = time.perf_counter()
    rows = sweep(args.surrogates, peaks, quick=args.quick, seed=args.seed)
    print("cosine similarity of the spiking net's surrogate gradient to the smooth net's gradient")
    print(
        "(cos <parameter>: vs finite differences; cos exact: vs the smooth backward, all params)"
    )
    print(format_table(rows))
    plot(rows, args.out)
    print(f"saved {args.out} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
