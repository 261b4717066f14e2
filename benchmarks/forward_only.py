"""Benchmark 3: forward-only simulation of a recurrent LIF network (no tape, no gradients).

    python benchmarks/forward_only.py [--quick]

n = 4096 recurrent LIF neurons, B = 1, T = 10 000 steps (``--quick``: 2 000), float32. Input:
a constant current per neuron ``U(0.10, 0.35)`` (the drive alone makes about half of
the neurons fire regularly); recurrent weights ``N(0, 1/n)``, scaled so that about 5% of
neuron-steps spike. Only the spike counts are kept (no spike events, no traces).

* numbaspike: ``numbaspike.lif_simulate(I, w_rec=W, steps=T, record=())`` (chunks of 1024
  steps, event-driven recurrent current: only the rows of ``W.T`` of neurons that spiked
  are added).
* PyTorch: a ``torch.no_grad()`` loop of the same step with ``z @ W.T`` (a dense
  matrix-vector product per step, which reads all of ``W``, 64 MB, every step) and
  ``counts += z``. It is ~8 ms per step on 2 cores, so it runs T_torch = 1 000 steps
  (``--quick``: 250) and its time is scaled by T / T_torch (marked * in the table).

Both networks start from the same state with the same input and weights, but float32
sums in a different order make chaotic recurrent networks diverge after some steps, so
their spike rates agree only statistically.

Reported: seconds per T-step run, neuron-steps per second (T*n / time) and peak memory;
also the time of numbaspike with ``NUMBA_NUM_THREADS=1`` (a third alternated side), since
the recurrent kernel opens one parallel region per time step.

Lower bound (see ``machine.py``): the event-driven recurrent input must read the row of
``W.T`` of every neuron that spiked, ``4 n`` bytes per spike, and the input current, ``4 T n``
bytes; at the bandwidth of a 64 MiB working set (``W``). Its additions are not counted as
GEMM time (a sum of rows is bandwidth-bound, so they overlap with the reads).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402
import machine  # noqa: E402
from report import fmt_time  # noqa: E402

NAME = "forward_only"
N = 4096
I_RANGE = (0.10, 0.35)
W_SCALE = 1.0


def steps(quick: bool) -> tuple[int, int]:
    """(T for numbaspike, T for PyTorch)."""
    return (2000, 250) if quick else (10_000, 1000)


def make_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    current = rng.uniform(*I_RANGE, (1, N)).astype(np.float32)
    w_rec = (rng.standard_normal((N, N)) * (W_SCALE / np.sqrt(N))).astype(np.float32)
    return current, w_rec


class NumbaspikeCase(H.Case):
    def __init__(self, params):
        import numbaspike

        self.sim = numbaspike.lif_simulate
        self.steps = params["T"]
        self.warmup = params.get("warmup", 1)
        self.current, self.w_rec = make_data()
        self.counts = None

    def step(self):
        res = self.sim(self.current, w_rec=self.w_rec, steps=self.steps, record=())
        self.counts = res.spike_counts

    def info(self):
        return {"rate": float(self.counts.sum()) / (self.steps * N), "steps": self.steps}


class TorchCase(H.Case):
    def __init__(self, params):
        import torch
        import torch_snn

        torch.set_num_threads(machine.n_threads())
        self.torch = torch
        self.steps = params["T_torch"]
        self.warmup = params.get("warmup", 1)
        current, w_rec = make_data()
        self.current = torch.from_numpy(current)
        self.w_rec = torch.from_numpy(w_rec)
        self.p = torch_snn.Neuron()
        self.counts = None

    def step(self):
        torch, p = self.torch, self.p
        a_m, decay_s = p.a_m, p.decay_s
        with torch.no_grad():
            v = torch.full((1, N), p.v_leak)
            i = torch.zeros(1, N)
            z = torch.zeros(1, N)
            counts = torch.zeros(1, N)
            w_t = self.w_rec.T
            for _ in range(self.steps):
                i1 = i + self.current + z @ w_t
                h = v + a_m * ((p.v_leak - v) + i1)
                i = i1 * decay_s
                z = (h - p.v_th > 0).float()
                v = (1 - z) * h + z * p.v_reset
                counts += z
        self.counts = counts

    def info(self):
        return {"rate": float(self.counts.sum()) / (self.steps * N), "steps": self.steps}


FACTORIES = {"numbaspike": NumbaspikeCase, "torch": TorchCase}


def gemm_shapes(quick: bool) -> list:
    return []


def lower_bound(mach: dict, n_steps: int, rate: float) -> dict:
    spikes = rate * n_steps * N
    nbytes = 4.0 * N * spikes + 4.0 * n_steps * N
    return machine.lower_bound(mach, [], nbytes, working_set=4.0 * N * N)


def run(args) -> dict:
    mach = machine.load(quick=args.quick)
    t_ns, t_torch = steps(args.quick)
    repeats = 5
    params = {"T": t_ns, "T_torch": t_torch}
    H.log(NAME, f"n={N}, T={t_ns} (PyTorch {t_torch}): {repeats} runs per side, alternating ...")
    res = H.compare(__file__, params, repeats, timing_only_sides=("numbaspike@1t",))
    ns, th, ns1 = res["numbaspike"], res["torch"], res["numbaspike@1t"]
    scale = t_ns / t_torch
    torch_s = th["median"] * scale
    lb = lower_bound(mach, t_ns, ns["info"]["rate"])
    nsps_ns, nsps_th = t_ns * N / ns["median"], t_torch * N / th["median"]
    row = {
        "benchmark": "forward-only recurrent",
        "case": f"n={N} T={t_ns} B=1",
        "params": params,
        "numbaspike_s": ns["median"],
        "torch_s": torch_s,
        "torch_scaled": True,
        "numbaspike_times": ns["times"],
        "torch_times": th["times"],
        "rate": ns["info"]["rate"],
        "rate_torch": th["info"]["rate"],
        "mem_numbaspike_mb": ns["memory"]["peak_mb"],
        "mem_torch_mb": th["memory"]["peak_mb"],
        "memory": {"numbaspike": ns["memory"], "torch": th["memory"]},
        "lb_s": lb["total"],
        "lb": lb,
        "neuron_steps_per_s": {"numbaspike": nsps_ns, "torch": nsps_th},
        "numbaspike_1thread_s": ns1["median"],
        "numbaspike_1thread_times": ns1["times"],
        "notes": [
            f"neuron-steps per second: numbaspike {nsps_ns:.3g}, PyTorch {nsps_th:.3g}",
            H.one_thread_note(ns, ns1),
            f"* PyTorch ran T={t_torch} steps ({fmt_time(th['median'])}) and is scaled by "
            f"{scale:g}; its spike rate is over those {t_torch} steps",
        ],
    }
    return {"rows": [row]}


if __name__ == "__main__":
    H.main(FACTORIES, run, __doc__.split("\n")[0], NAME)
