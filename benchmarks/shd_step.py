"""Benchmark 2: one SHD-sized training step (forward, max-over-time cross-entropy, BPTT, Adam).

    python benchmarks/shd_step.py [--quick]

Network (Spiking Heidelberg Digits sizes): input spikes (T=100, B=64, 700) at ~2% density
-> ``Linear(700, 256)`` -> ``LIFRecurrent(256)`` -> ``Linear(256, 20)`` -> ``LI(20)``;
loss = cross-entropy of the maximum over time of the readout membrane; full backward and
one Adam step (lr 1e-3). Weights ``U(-1/sqrt(n_in), 1/sqrt(n_in))`` times 20 (input), 2
(recurrent), 1 (readout), so that ~5% of the hidden neuron-steps spike. The same batch is
used for every step and the weights keep training, as in a real run.

* numbaspike: ``Sequential`` forward, ``MaxOverTimeCrossEntropy``, ``Sequential.backward``,
  ``numbaspike.optim.Adam.step``; the projections of spikes take the event-driven path.
* PyTorch: ``nn.Linear`` (dense product of the spike tensor), the recurrent LIF and LI
  loops of ``torch_snn.py``, ``out.max(0).values``, ``F.cross_entropy``, ``backward()``,
  ``torch.optim.Adam``.

Also reports numbaspike with ``NUMBA_NUM_THREADS=1`` (a third alternated side; not with
``--quick``), the time of one epoch of the SHD training set (8156 samples = 127.4 steps)
and a breakdown of both steps by part: after the timed steps, the same workers run
extra steps with timers around the layers and numbaspike's kernels.

Lower bound (see ``machine.py``), with ``E_x = T*B*700``, ``E_h = T*B*256``,
``E_o = T*B*20`` elements, ``nnz_x``, ``nnz_h`` the input and hidden spike counts and
``P`` the number of parameters; products of spikes count only their useful FLOPs
(2 per non-zero input and output), at the GEMM rate of the dense product of that shape:

* input projection forward and weight gradient: 2 x 2*nnz_x*256;
* recurrent current (forward) and recurrent weight gradient: 2 x 2*nnz_h*256; recurrent
  backward ``g_{t+1} @ W_rec``: 2*E_h*256 at the rate of a (64, 256) @ (256, 256) product;
* readout projection forward and weight gradient: 2 x 2*nnz_h*20; its input gradient
  ``(T*B, 20) @ (20, 256)``: 2*E_o*256;
* bytes: the dense input read by the forward and the weight gradient (2 x 4E_x), the
  recurrent LIF layer (24 E_h as in linear_lif.py), the LI readout (forward reads x and
  writes v, backward reads dL/dv and writes dL/dx: 16 E_o), the loss (8 E_o) and Adam
  (reads parameter, gradient and two moments, writes three: 28 P).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402
import machine  # noqa: E402
from report import fmt_time  # noqa: E402

NAME = "shd_step"
T, B, N_IN, N_HID, N_OUT = 100, 64, 700, 256, 20
DENSITY = 0.02
GAINS = (20.0, 2.0, 1.0)
LR = 1e-3
SHD_TRAIN_SAMPLES = 8156


def make_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = (rng.random((T, B, N_IN)) < DENSITY).astype(np.float32)
    labels = rng.integers(0, N_OUT, B)
    shapes = ((N_HID, N_IN), (N_HID, N_HID), (N_OUT, N_HID))
    weights = [
        (rng.uniform(-1, 1, s) / np.sqrt(s[1]) * g).astype(np.float32)
        for s, g in zip(shapes, GAINS, strict=True)
    ]
    return x, labels, weights


# --------------------------------------------------------------------------------------
# numbaspike
# --------------------------------------------------------------------------------------


class _Timers:
    """Per-step sums of named intervals; ``context`` prefixes the kernel timers."""

    def __init__(self):
        self.acc: dict[str, float] = {}
        self.runs: dict[str, list[float]] = {}
        self.context = ""

    def add(self, key, dt):
        self.acc[key] = self.acc.get(key, 0.0) + dt

    def flush(self):
        for k, v in self.acc.items():
            self.runs.setdefault(k, []).append(v)
        self.acc = {}

    def medians(self):
        return {k: statistics.median(v) for k, v in self.runs.items()}


KERNEL_SEP = " :: "


def _wrap(module, name, timers):
    """Replace ``module.name`` (looked up at call time by numbaspike) by a timed wrapper."""
    fn = getattr(module, name)

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        timers.add(f"{timers.context}{KERNEL_SEP}{name}", time.perf_counter() - t0)
        return out

    setattr(module, name, timed)


LAYER_LABELS = ("0 Linear 700->256", "1 LIFRecurrent 256", "2 Linear 256->20", "3 LI 20")


class NumbaspikeCase(H.Case):
    warmup = 3

    def __init__(self, params):
        from numbaspike.layers import LI, LIFRecurrent, Linear
        from numbaspike.losses import MaxOverTimeCrossEntropy
        from numbaspike.network import Sequential
        from numbaspike.optim import Adam

        self.x, self.labels, (w1, w_rec, w2) = make_data()
        self.net = Sequential(
            Linear(N_IN, N_HID), LIFRecurrent(N_HID), Linear(N_HID, N_OUT), LI(N_OUT)
        )
        self.net.load_parameters({"0.weight": w1, "1.w_rec": w_rec, "2.weight": w2})
        self.loss_fn = MaxOverTimeCrossEntropy()
        self.opt = Adam(self.net.parameters(), lr=LR)
        self.hidden = None
        self.loss = None
        self.timers = None

    def step(self):
        net = self.net
        net.zero_grad()
        y, tape = net.forward(self.x)
        self.loss, grad = self.loss_fn(y, self.labels)
        net.backward(grad, tape)
        self.opt.step(net.gradients())
        self.hidden = tape.outputs[1]

    def profile_step(self):
        """The same step layer by layer (as ``Sequential`` runs it), with timers around
        the layers and, inside them, around numbaspike's kernels."""
        if self.timers is None:
            from numbaspike.kernels import cpu, projection

            self.timers = _Timers()
            for mod, name in (
                (projection, "spike_events"),
                (projection, "events_matmul"),
                (projection, "events_weight_grad"),
                (cpu, "lif_recurrent_forward"),
                (cpu, "lif_recurrent_backward"),
                (cpu, "recurrent_weight_grad"),
                (cpu, "li_forward"),
                (cpu, "li_backward"),
            ):
                _wrap(mod, name, self.timers)
        t, pc, layers = self.timers, time.perf_counter, self.net.layers
        t0 = pc()
        self.net.zero_grad()
        t.add("zero_grad", pc() - t0)
        x, tapes, outputs = self.x, [], []
        for k, layer in enumerate(layers):
            t.context = f"forward {LAYER_LABELS[k]}"
            t0 = pc()
            x, tape = layer.forward(x)
            t.add(t.context, pc() - t0)
            tapes.append(tape)
            outputs.append(x)
        t0 = pc()
        self.loss, g = self.loss_fn(x, self.labels)
        t.add("loss (max-over-time CE)", pc() - t0)
        for k in range(len(layers) - 1, -1, -1):
            t.context = f"backward {LAYER_LABELS[k]}"
            t0 = pc()
            g = layers[k].backward(g, tapes[k], need_input_grad=k > 0)
            t.add(t.context, pc() - t0)
        t0 = pc()
        self.opt.step(self.net.gradients())
        t.add("Adam step", pc() - t0)
        self.hidden = outputs[1]
        t.flush()

    def profile(self):
        return self.timers.medians()

    def info(self):
        _, tape = self.net.forward(self.x)
        return {
            "rate": float(np.count_nonzero(self.hidden)) / self.hidden.size,
            "nnz_x": int(np.count_nonzero(self.x)),
            "nnz_h": int(np.count_nonzero(self.hidden)),
            "loss": float(self.loss),
            "sparse_path": [
                None if getattr(t, "sparse", None) is None else bool(t.sparse) for t in tape.tapes
            ],
        }


# --------------------------------------------------------------------------------------
# PyTorch
# --------------------------------------------------------------------------------------


class TorchCase(H.Case):
    warmup = 3

    def __init__(self, params):
        import torch
        import torch_snn

        torch.set_num_threads(machine.n_threads())
        self.torch, self.snn = torch, torch_snn
        self.F = torch.nn.functional
        x, labels, (w1, w_rec, w2) = make_data()
        self.x = torch.from_numpy(x)
        self.labels = torch.from_numpy(labels)
        self.lin1 = torch.nn.Linear(N_IN, N_HID, bias=False)
        self.lin2 = torch.nn.Linear(N_HID, N_OUT, bias=False)
        with torch.no_grad():
            self.lin1.weight.copy_(torch.from_numpy(w1))
            self.lin2.weight.copy_(torch.from_numpy(w2))
        self.w_rec = torch.nn.Parameter(torch.from_numpy(w_rec.copy()))
        self.p = torch_snn.Neuron()
        self.opt = torch.optim.Adam([self.lin1.weight, self.w_rec, self.lin2.weight], lr=LR)
        self.hidden = None
        self.loss = None
        self.timers = _Timers()

    def step(self):
        self.opt.zero_grad()
        hidden = self.snn.lif_recurrent(self.lin1(self.x), self.w_rec, self.p)
        out = self.snn.li_readout(self.lin2(hidden), self.p)
        loss = self.F.cross_entropy(out.max(dim=0).values, self.labels)
        loss.backward()
        self.opt.step()
        self.hidden = hidden.detach()
        self.loss = loss.item()

    def profile_step(self):
        t, pc = self.timers, time.perf_counter
        t0 = pc()
        self.opt.zero_grad()
        t.add("zero_grad", pc() - t0)
        t0 = pc()
        cur = self.lin1(self.x)
        t.add(f"forward {LAYER_LABELS[0]}", pc() - t0)
        t0 = pc()
        hidden = self.snn.lif_recurrent(cur, self.w_rec, self.p)
        t.add(f"forward {LAYER_LABELS[1]}", pc() - t0)
        t0 = pc()
        cur2 = self.lin2(hidden)
        t.add(f"forward {LAYER_LABELS[2]}", pc() - t0)
        t0 = pc()
        out = self.snn.li_readout(cur2, self.p)
        t.add(f"forward {LAYER_LABELS[3]}", pc() - t0)
        t0 = pc()
        loss = self.F.cross_entropy(out.max(dim=0).values, self.labels)
        t.add("loss (max-over-time CE)", pc() - t0)
        t0 = pc()
        loss.backward()
        t.add("backward (autograd, all layers)", pc() - t0)
        t0 = pc()
        self.opt.step()
        t.add("Adam step", pc() - t0)
        self.hidden = hidden.detach()
        self.loss = loss.item()
        t.flush()

    def profile(self):
        return self.timers.medians()

    def info(self):
        return {
            "rate": float(self.hidden.count_nonzero()) / self.hidden.numel(),
            "loss": self.loss,
        }


FACTORIES = {"numbaspike": NumbaspikeCase, "torch": TorchCase}

# --------------------------------------------------------------------------------------
# lower bound and driver
# --------------------------------------------------------------------------------------

M = T * B
SHAPES = {
    "in_fwd": (M, N_IN, N_HID),
    "in_dw": (N_IN, M, N_HID),
    "rec_step": (B, N_HID, N_HID),
    "rec_dw": (N_HID, M, N_HID),
    "out_fwd": (M, N_HID, N_OUT),
    "out_dw": (N_OUT, M, N_HID),
    "out_dx": (M, N_OUT, N_HID),
}


def gemm_shapes(quick: bool) -> list:
    return list(SHAPES.values())


def lower_bound(mach: dict, nnz_x: int, nnz_h: int) -> dict:
    e_x, e_h, e_o = M * N_IN, M * N_HID, M * N_OUT
    n_params = N_HID * N_IN + N_HID * N_HID + N_OUT * N_HID
    s = SHAPES
    gemms = [
        (2.0 * nnz_x * N_HID, s["in_fwd"]),
        (2.0 * nnz_x * N_HID, s["in_dw"]),
        (2.0 * nnz_h * N_HID, s["rec_step"]),
        (2.0 * e_h * N_HID, s["rec_step"]),
        (2.0 * nnz_h * N_HID, s["rec_dw"]),
        (2.0 * nnz_h * N_OUT, s["out_fwd"]),
        (2.0 * nnz_h * N_OUT, s["out_dw"]),
        (2.0 * e_o * N_HID, s["out_dx"]),
    ]
    nbytes = 8.0 * e_x + 24.0 * e_h + 16.0 * e_o + 8.0 * e_o + 28.0 * n_params
    working_set = 4.0 * e_x + 5 * 4.0 * e_h + 4 * 4.0 * e_o + 16.0 * n_params
    return machine.lower_bound(mach, gemms, nbytes, working_set)


def _profile_table(ns_parts: dict, th_parts: dict, ns_step: float, th_step: float) -> str:
    """Parts of both steps side by side; numbaspike's kernels (and the rest: checks,
    allocation, NumPy/BLAS calls, Python) indented under the layer that called them."""
    lines = [
        "| part | numbaspike | % | PyTorch | % |",
        "|---|---:|---:|---:|---:|",
    ]
    parts = [k for k in ns_parts if KERNEL_SEP not in k]
    parts += [k for k in th_parts if k not in parts]
    ns_total = sum(ns_parts.get(k, 0.0) for k in parts)
    th_total = sum(th_parts.values())

    def cell(v, total):
        return ("–", "") if v is None else (fmt_time(v), f"{100 * v / total:.0f}%")

    for k in parts:
        a, b = cell(ns_parts.get(k), ns_total), cell(th_parts.get(k), th_total)
        lines.append(f"| {k} | {a[0]} | {a[1]} | {b[0]} | {b[1]} |")
        kernels = {
            name.split(KERNEL_SEP)[1]: v
            for name, v in ns_parts.items()
            if name.startswith(k + KERNEL_SEP)
        }
        if kernels:
            for name, v in kernels.items():
                c = cell(v, ns_total)
                lines.append(f"| &nbsp;&nbsp;└ kernel `{name}` | {c[0]} | {c[1]} | | |")
            c = cell(max(ns_parts[k] - sum(kernels.values()), 0.0), ns_total)
            lines.append(
                f"| &nbsp;&nbsp;└ rest (checks, NumPy/BLAS, Python) | {c[0]} | {c[1]} | | |"
            )
    lines.append(
        f"| **sum of parts** (median profiled step) | {fmt_time(ns_total)} "
        f"({fmt_time(ns_step)}) | | {fmt_time(th_total)} ({fmt_time(th_step)}) | |"
    )
    return "\n".join(lines)


def run(args) -> dict:
    mach = machine.load(gemm_shapes(args.quick), quick=args.quick)
    repeats, prof_repeats = (5, 5) if args.quick else (15, 9)
    one_thread = () if args.quick else ("numbaspike@1t",)
    H.log(NAME, f"timing {repeats} steps per side, then {prof_repeats} profiled, alternating ...")
    res = H.compare(
        __file__, {}, repeats, timing_only_sides=one_thread, profile_repeats=prof_repeats
    )
    ns, th, ns1 = res["numbaspike"], res["torch"], res.get("numbaspike@1t")
    lb = lower_bound(mach, ns["info"]["nnz_x"], ns["info"]["nnz_h"])
    steps_per_epoch = SHD_TRAIN_SAMPLES / B
    epoch_ns, epoch_th = ns["median"] * steps_per_epoch, th["median"] * steps_per_epoch
    paths = ns["info"]["sparse_path"]
    row = {
        "benchmark": "SHD train step",
        "case": f"T={T} B={B} {N_IN}-{N_HID}r-{N_OUT}",
        "params": {"T": T, "B": B, "density": DENSITY, "gains": GAINS, "lr": LR},
        "numbaspike_s": ns["median"],
        "torch_s": th["median"],
        "numbaspike_times": ns["times"],
        "torch_times": th["times"],
        "rate": ns["info"]["rate"],
        "rate_torch": th["info"]["rate"],
        "mem_numbaspike_mb": ns["memory"]["peak_mb"],
        "mem_torch_mb": th["memory"]["peak_mb"],
        "memory": {"numbaspike": ns["memory"], "torch": th["memory"]},
        "lb_s": lb["total"],
        "lb": lb,
        "epoch_s": {"numbaspike": epoch_ns, "torch": epoch_th},
        "info": {"numbaspike": ns["info"], "torch": th["info"]},
        "notes": [
            f"one epoch of SHD train ({SHD_TRAIN_SAMPLES} samples, {steps_per_epoch:.1f} steps "
            f"of B={B}): numbaspike {fmt_time(epoch_ns)}, PyTorch {fmt_time(epoch_th)}",
            f"input density {ns['info']['nnz_x'] / (M * N_IN):.2%}; event-driven "
            f"(sparse) path used by Linear 700->256: {paths[0]}, Linear 256->20: {paths[2]}",
        ],
    }
    if ns1 is not None:
        row["numbaspike_1thread_s"] = ns1["median"]
        row["numbaspike_1thread_times"] = ns1["times"]
        row["notes"].insert(1, H.one_thread_note(ns, ns1))
    table = _profile_table(
        ns["info"]["profile"],
        th["info"]["profile"],
        ns["info"]["profile_median"],
        th["info"]["profile_median"],
    )
    row["profile"] = {"numbaspike": ns["info"]["profile"], "torch": th["info"]["profile"]}
    return {"rows": [row], "sections": {"SHD training step: where the time goes": table}}


if __name__ == "__main__":
    H.main(FACTORIES, run, __doc__.split("\n")[0], NAME)
