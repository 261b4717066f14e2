"""Sparse backward (``sparse_tol``, Perez-Nieves & Goodman 2021): speed-up and gradient error.

    python benchmarks/sparse_backward.py [--quick]

Two networks, each with exact BPTT (``sparse_tol=None``) and with ``sparse_tol`` in
{0.001, 0.01, 0.1}, in one process, alternating, median of the repeats:

* the SHD-sized training step of ``shd_step.py`` (700 -> 256 recurrent LIF -> 20 LI, T=100,
  B=64; SuperSpike alpha=100): forward, loss and backward (no optimiser step, so every
  variant sees the same weights);
* the recurrent LIF layer of that network alone (forward + backward of the layer's input
  currents), where the skipped work is.

For each tolerance: time, speed-up over exact, the fraction of neuron-steps kept ("active"),
the tape bytes per neuron-step of the LIF layer, and the error of every parameter gradient
against the exact one (norm-relative error and cosine similarity).
Results: ``benchmarks/results/sparse_backward.json`` and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402
from shd_step import N_HID, N_IN, N_OUT, make_data  # noqa: E402

TOLS = (None, 1e-3, 1e-2, 1e-1)


def _network(sparse_tol, weights):
    from numbaspike.layers import LI, LIFRecurrent, Linear
    from numbaspike.network import Sequential

    net = Sequential(
        Linear(N_IN, N_HID),
        LIFRecurrent(N_HID, sparse_tol=sparse_tol),
        Linear(N_HID, N_OUT),
        LI(N_OUT),
    )
    w1, w_rec, w2 = weights
    net.load_parameters({"0.weight": w1, "1.w_rec": w_rec, "2.weight": w2})
    return net


def _median_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    repeats = 5 if args.quick else 15

    import numbaspike.functional as F
    from numbaspike.losses import MaxOverTimeCrossEntropy

    x, labels, weights = make_data()
    loss_fn = MaxOverTimeCrossEntropy()
    nets = {tol: _network(tol, weights) for tol in TOLS}

    def train_step(net):
        net.zero_grad()
        y, tape = net.forward(x)
        _, grad = loss_fn(y, labels)
        net.backward(grad, tape)
        return tape

    # the recurrent layer alone, on the currents of the first projection
    currents, _ = nets[None].layers[0].forward(x)
    layer = nets[None].layers[1]
    grad_z = np.random.default_rng(1).normal(0, 1e-2, currents.shape).astype(np.float32)

    def layer_step(tol):
        z, tape = F.lif_forward(currents, layer.p, layer.dt, w_rec=layer._params["w_rec"],
                                param_grads=False, sparse_tol=tol)  # fmt: skip
        return F.lif_backward(grad_z, tape), tape

    step_times = {tol: [] for tol in TOLS}
    layer_times = {tol: [] for tol in TOLS}
    for tol in TOLS:  # warm-up (compilation)
        train_step(nets[tol])
        layer_step(tol)
    for _ in range(repeats):  # alternate the variants
        for tol in TOLS:
            step_times[tol].append(_median_time(lambda t=tol: train_step(nets[t]), 1))
            layer_times[tol].append(_median_time(lambda t=tol: layer_step(t), 1))

    train_step(nets[None])
    exact_grads = {k: v.copy() for k, v in nets[None].gradients().items()}
    exact_layer, _ = layer_step(None)
    rows = []
    for tol in TOLS:
        tape = train_step(nets[tol])
        grads = nets[tol].gradients()
        lif_tape = tape.tapes[1]
        g_layer, layer_tape = layer_step(tol)
        errors = {}
        for name, g in grads.items():
            ref = exact_grads[name]
            denom = np.linalg.norm(ref)
            errors[name] = {
                "rel_err": float(np.linalg.norm(g - ref) / denom) if denom else 0.0,
                "cosine": float((g * ref).sum() / (np.linalg.norm(g) * denom)) if denom else 1.0,
            }
        layer_err = float(
            np.linalg.norm(g_layer.x - exact_layer.x) / np.linalg.norm(exact_layer.x)
        )
        rows.append(
            {
                "sparse_tol": tol,
                "step_s": statistics.median(step_times[tol]),
                "layer_s": statistics.median(layer_times[tol]),
                "active": None if tol is None else lif_tape.compact.active_fraction,
                "tape_bytes_per_neuron_step": lif_tape.nbytes / (x.shape[0] * x.shape[1] * N_HID),
                "layer_grad_x_rel_err": layer_err,
                "grad_errors": errors,
            }
        )
    table = markdown_table(rows)
    print("\n## " + TITLE + "\n\n" + table)
    path = H.save_rows(
        "sparse_backward", [], results=rows, repeats=repeats, sections={TITLE: table}
    )
    print(f"\nsaved {path}")


TITLE = "Sparse backward (sparse_tol): SHD-sized network, float32"


def markdown_table(rows: list[dict]) -> str:
    base_step, base_layer = rows[0]["step_s"], rows[0]["layer_s"]
    lines = [
        "| sparse_tol | active | tape B/neuron-step | recurrent layer fwd+bwd | speed-up | "
        "train step (no optimiser) | speed-up | rel. err dW_in | rel. err dW_rec | "
        "cos dW_rec | rel. err dW_out |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        e = r["grad_errors"]
        active = "100%" if r["active"] is None else f"{100 * r['active']:.1f}%"
        lines.append(
            f"| {'exact' if r['sparse_tol'] is None else r['sparse_tol']} | {active} "
            f"| {r['tape_bytes_per_neuron_step']:.3f} "
            f"| {1e3 * r['layer_s']:.1f} ms | {base_layer / r['layer_s']:.2f}x "
            f"| {1e3 * r['step_s']:.1f} ms | {base_step / r['step_s']:.2f}x "
            f"| {e['0.weight']['rel_err']:.1e} | {e['1.w_rec']['rel_err']:.1e} "
            f"| {e['1.w_rec']['cosine']:.5f} | {e['2.weight']['rel_err']:.1e} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
