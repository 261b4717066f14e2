"""LIF layer alone: forward and forward+backward of numbaspike vs the PyTorch reference.

x: float32 currents (T=500, B=16, N) with N in {512, 2048}; loss = sum of spikes (the
backward gets a gradient of ones); medians of alternated runs after warm-up. Each of the
five timed functions runs in its own worker process (``_harness.py``), so that neither
library's allocator state or thread pool affects the other (in one process, PyTorch's
fwd+bwd at N=2048 moved between 340 and 580 ms with glibc's malloc thresholds, which the
numbaspike calls before it had raised). numbaspike is timed with fresh arrays every call
and, in the column "out=", with the spikes and dL/dx written into arrays allocated once
(``out=``; only the tape is new), which separates the kernels from the cost of fresh
memory. Also prints the first-call (JIT compile) time of ``lif_forward`` +
``lif_backward`` in a fresh process with an empty Numba cache.

Run: ``python benchmarks/lif_kernels.py [--repeats 7] [--sizes 512 2048]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _harness as H  # noqa: E402
import machine  # noqa: E402

COMPILE_SNIPPET = """
import time, numpy as np
t0 = time.perf_counter()
import numbaspike as ns
t1 = time.perf_counter()
x = np.random.default_rng(0).normal(0.6, 3.0, (500, 16, 512)).astype(np.float32)
z, tape = ns.lif_forward(x)
ns.lif_backward(np.ones_like(z), tape)
t2 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f}")
"""


def first_call_seconds(cache_dir: str) -> tuple[float, float]:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run(
        [sys.executable, "-c", COMPILE_SNIPPET],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    imp, call = out.stdout.split()
    return float(imp), float(call)


def _input(n: int) -> np.ndarray:
    return np.random.default_rng(0).normal(0.6, 3.0, (500, 16, n)).astype(np.float32)


class NumbaspikeForward(H.Case):
    def __init__(self, params):
        import numbaspike as ns

        self.ns, self.x = ns, _input(params["n"])

    def step(self):
        z, _ = self.ns.lif_forward(self.x, param_grads=False)
        return z

    def info(self):
        return {"rate": float(self.step().mean())}


class NumbaspikeForwardBackward(NumbaspikeForward):
    def step(self):
        z, tape = self.ns.lif_forward(self.x, param_grads=False)
        self.ns.lif_backward(np.ones_like(z), tape)
        return z


class NumbaspikeForwardBackwardOut(NumbaspikeForward):
    def __init__(self, params):
        super().__init__(params)
        self.z_buf, self.g_buf = np.empty_like(self.x), np.empty_like(self.x)

    def step(self):
        z, tape = self.ns.lif_forward(self.x, param_grads=False, out=self.z_buf)
        self.g_buf.fill(1.0)
        self.ns.lif_backward(self.g_buf, tape, out=self.g_buf)
        return z


class TorchForward(H.Case):
    def __init__(self, params):
        import torch
        from torch_snn import lif_feed_forward

        torch.set_num_threads(params["threads"])
        self.torch, self.lif = torch, lif_feed_forward
        self.xt = torch.from_numpy(_input(params["n"]))

    def step(self):
        with self.torch.no_grad():
            return self.lif(self.xt)


class TorchForwardBackward(TorchForward):
    def step(self):
        xr = self.xt.clone().requires_grad_(True)
        z = self.lif(xr)
        z.sum().backward()
        return z


FACTORIES = {
    "ns_fwd": NumbaspikeForward,
    "torch_fwd": TorchForward,
    "ns_fwd_bwd": NumbaspikeForwardBackward,
    "ns_fwd_bwd_out": NumbaspikeForwardBackwardOut,
    "torch_fwd_bwd": TorchForwardBackward,
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="time", help=argparse.SUPPRESS)
    parser.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        H._worker(FACTORIES, args.worker, json.loads(args.params), args.mode)
        return

    threads = machine.n_threads()
    print(f"each function in its own process; torch threads {threads}, numba its default")
    print(
        "| N | numbaspike fwd | torch fwd | ratio | numbaspike fwd+bwd | out= | torch fwd+bwd "
        "| ratio | rate |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        params = {"n": n, "threads": threads}
        res = H.time_sides(__file__, {side: params for side in FACTORIES}, args.repeats)
        med = {side: r["median"] * 1e3 for side, r in res.items()}
        nf, tf, nb, no, tb = (med[k] for k in FACTORIES)
        print(
            f"| {n} | {nf:.1f} ms | {tf:.1f} ms | {tf / nf:.1f}x | {nb:.1f} ms | {no:.1f} ms "
            f"| {tb:.1f} ms | {tb / nb:.1f}x | {res['ns_fwd']['info']['rate']:.3f} |",
            flush=True,
        )
    with tempfile.TemporaryDirectory() as cache:
        imp, cold = first_call_seconds(cache)
        _, warm = first_call_seconds(cache)
    print(
        f"import numbaspike {imp:.2f} s; first lif_forward+lif_backward: {cold:.1f} s cold, "
        f"{warm:.1f} s with the on-disk cache"
    )


if __name__ == "__main__":
    main()
