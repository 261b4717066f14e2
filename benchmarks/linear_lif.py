"""Benchmark 1: ``Linear(n, n)`` + feed-forward ``LIF(n)``, forward and backward to the weight.

    python benchmarks/linear_lif.py [--quick]

Input: dense Gaussian currents ``x`` (T=500, B=16, n) float32; weight
``U(-1/sqrt(n), 1/sqrt(n)) * GAIN`` (GAIN chosen so that about 5% of neuron-steps spike; the
measured rate is printed). Loss = sum of all spikes, so ``dL/dz`` is all ones; the backward
pass goes to the weight only (no input gradient). n in {512, 2048, 8192}; ``--quick``
skips 8192 (~3.5 GB for the PyTorch autograd graph, 13 s per step on 2 cores).

* numbaspike, written to need as little memory as the API allows: ``Linear.forward`` (one
  ``(T*B, n) @ W.T``), ``LIF.forward(y, out=y)`` (fused kernel, the spikes overwrite the
  currents, tape = ``h``), the loss ``z.sum()`` (float32, as on the PyTorch side), ``z[...] = 1`` (dL/dz written over the spikes, which
  the backward pass recomputes from ``h``), ``LIF.backward(z, out=z)`` (dL/dx overwrites
  dL/dz), the LIF tape dropped (as autograd frees its graph during backward),
  ``Linear.backward(need_input_grad=False)`` (one ``gemm`` accumulating into the gradient).
  Two (T, B, n) arrays are live at the peak (the current, later spikes, later gradient;
  and the tape ``h``); with fresh arrays everywhere it would be four.
* PyTorch: ``nn.Linear(n, n, bias=False)`` on the whole ``(T, B, n)`` tensor, the LIF loop
  of ``torch_snn.py``, ``z.sum().backward()``.

Lower bound (see ``machine.py``), with ``M = T*B`` and ``E = T*B*n`` float32 elements:

* GEMM: forward ``(M, n) @ (n, n)`` and weight gradient ``(n, M) @ (M, n)``, 2*M*n^2 FLOPs each;
* bytes: LIF forward reads the currents and writes ``z`` and the tape ``h`` (3 x 4E), the
  backward reads ``dL/dz`` and ``h`` and writes ``dL/dx`` (3 x 4E): 24E bytes; working set
  5 arrays of 4E bytes (currents, z, h, dL/dz, dL/dx).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402
import machine  # noqa: E402

NAME = "linear_lif"
T, B = 500, 16
GAIN = 3.0


def sizes(quick: bool) -> list[int]:
    return [512, 2048] if quick else [512, 2048, 8192]


def make_data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, n), dtype=np.float32)
    bound = 1.0 / np.sqrt(n)
    w = (rng.uniform(-bound, bound, (n, n)) * GAIN).astype(np.float32)
    return x, w


class NumbaspikeCase(H.Case):
    def __init__(self, params):
        from numbaspike.layers import LIF, Linear

        n = params["n"]
        self.warmup = params["ns_warmup"]  # the first step compiles the kernels
        self.x, w = make_data(n)
        self.lin = Linear(n, n)
        self.lin.weight[...] = w
        self.lif = LIF(n)
        self.loss = 0.0

    def step(self):
        self.lin.zero_grad()
        y, tape_lin = self.lin.forward(self.x)
        z, tape_lif = self.lif.forward(y, out=y)  # the LIF tape keeps h, not its input
        del y
        self.loss = float(z.sum())  # float32, as PyTorch's z.sum()
        z[...] = 1.0  # dL/dz for loss = sum(z)
        grad_y = self.lif.backward(z, tape_lif, out=z)
        del tape_lif, z  # frees h, as autograd frees its graph
        self.lin.backward(grad_y, tape_lin, need_input_grad=False)

    def memory_warmup(self):
        # 10 steps compile the same (parallel) kernels as 500 and leave the big arrays
        # of a full step out of the memory worker's wall time
        full, self.x = self.x, self.x[:10]
        self.step()
        self.x = full

    def info(self):
        return {"rate": self.loss / self.x.size}


class TorchCase(H.Case):
    def __init__(self, params):
        import torch
        import torch_snn

        torch.set_num_threads(machine.n_threads())
        n = params["n"]
        x, w = make_data(n)
        self.x = torch.from_numpy(x)
        self.lin = torch.nn.Linear(n, n, bias=False)
        with torch.no_grad():
            self.lin.weight.copy_(torch.from_numpy(w))
        self.lif = torch_snn.lif_feed_forward
        self.p = torch_snn.Neuron()
        self.loss = 0.0

    def step(self):
        self.lin.weight.grad = None
        z = self.lif(self.lin(self.x), self.p)
        loss = z.sum()
        loss.backward()
        self.loss = loss.item()

    def memory_warmup(self):
        full, self.x = self.x, self.x[:10]
        self.step()
        self.x = full

    def info(self):
        return {"rate": self.loss / self.x.numel()}


FACTORIES = {"numbaspike": NumbaspikeCase, "torch": TorchCase}


def gemm_shapes(quick: bool) -> list:
    m = T * B
    return [s for n in sizes(quick) for s in ((m, n, n), (n, m, n))]


def lower_bound(mach: dict, n: int) -> dict:
    m, e = T * B, T * B * n
    gemms = [(2.0 * m * n * n, (m, n, n)), (2.0 * m * n * n, (n, m, n))]
    return machine.lower_bound(mach, gemms, nbytes=24.0 * e, working_set=5 * 4.0 * e)


def run(args) -> dict:
    mach = machine.load(gemm_shapes(args.quick), quick=args.quick)
    rows = []
    for n in sizes(args.quick):
        repeats = 5 if (args.quick or n >= 8192) else 7
        params = {"n": n, "ns_warmup": 1 if n >= 8192 else 2}
        H.log(NAME, f"n={n}: timing {repeats} steps per side, alternating ...")
        res = H.compare(__file__, params, repeats)
        ns, th = res["numbaspike"], res["torch"]
        lb = lower_bound(mach, n)
        rows.append(
            {
                "benchmark": "Linear+LIF",
                "case": f"n={n}",
                "params": {"T": T, "B": B, "n": n, "gain": GAIN},
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
                "libraries": {
                    "numbaspike": ns["info"]["libraries"],
                    "torch": th["info"]["libraries"],
                },
                "notes": [],
            }
        )
        H.log(
            NAME,
            f"n={n}: numbaspike {ns['median']:.3f} s, torch {th['median']:.3f} s, "
            f"rate {100 * ns['info']['rate']:.2f}%, LB {lb['total']:.3f} s",
        )
    return {"rows": rows}


if __name__ == "__main__":
    H.main(FACTORIES, run, __doc__.split("\n")[0], NAME)
