"""LIF layer alone: forward and forward+backward of numbaspike vs the PyTorch reference.

x: float32 currents (T=500, B=16, N) with N in {512, 2048}; loss = sum of spikes (the
backward gets a gradient of ones); medians of alternated runs after warm-up, in one
process. numbaspike is timed with fresh arrays every call and, in the column "out=", with
the spikes and dL/dx written into arrays allocated once (``out=``; only the tape is new),
which separates the kernels from the cost of fresh memory. Also prints the first-call (JIT compile) time of ``lif_forward`` +
``lif_backward`` in a fresh process with an empty Numba cache.

Run: ``python benchmarks/lif_kernels.py [--repeats 7] [--sizes 512 2048]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 2048])
    args = parser.parse_args(argv)

    import torch
    from torch_snn import lif_feed_forward

    import numbaspike as ns

    torch.set_num_threads(2)
    print(f"numba threads {ns.get_num_threads()}, torch threads {torch.get_num_threads()}")
    print(
        "| N | numbaspike fwd | torch fwd | ratio | numbaspike fwd+bwd | out= | torch fwd+bwd "
        "| ratio | rate |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        x = np.random.default_rng(0).normal(0.6, 3.0, (500, 16, n)).astype(np.float32)
        xt = torch.from_numpy(x.copy())

        def ns_fwd(x=x):
            return ns.lif_forward(x, param_grads=False)

        def ns_fwd_bwd(x=x):
            z, tape = ns.lif_forward(x, param_grads=False)
            ns.lif_backward(np.ones_like(z), tape)
            return z

        z_buf, g_buf = np.empty_like(x), np.empty_like(x)

        def ns_fwd_bwd_out(x=x, z_buf=z_buf, g_buf=g_buf):
            z, tape = ns.lif_forward(x, param_grads=False, out=z_buf)
            g_buf.fill(1.0)
            ns.lif_backward(g_buf, tape, out=g_buf)
            return z

        def torch_fwd(xt=xt):
            with torch.no_grad():
                return lif_feed_forward(xt)

        def torch_fwd_bwd(xt=xt):
            xr = xt.clone().requires_grad_(True)
            z = lif_feed_forward(xr)
            z.sum().backward()
            return z

        times = {k: [] for k in ("nf", "tf", "nb", "no", "tb")}
        for f in (ns_fwd, torch_fwd, ns_fwd_bwd, ns_fwd_bwd_out, torch_fwd_bwd):
            f()  # warm-up (compilation)
        for _ in range(args.repeats):
            for key, f in (
                ("nf", ns_fwd),
                ("tf", torch_fwd),
                ("nb", ns_fwd_bwd),
                ("no", ns_fwd_bwd_out),
                ("tb", torch_fwd_bwd),
            ):
                t0 = time.perf_counter()
                f()
                times[key].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        rate = float(ns_fwd()[0].mean())
        print(
            f"| {n} | {med['nf']:.1f} ms | {med['tf']:.1f} ms | {med['tf'] / med['nf']:.1f}x "
            f"| {med['nb']:.1f} ms | {med['no']:.1f} ms | {med['tb']:.1f} ms "
            f"| {med['tb'] / med['nb']:.1f}x | {rate:.3f} |"
        )
    with tempfile.TemporaryDirectory() as cache:
        imp, cold = first_call_seconds(cache)
        _, warm = first_call_seconds(cache)
    print(
        f"import numbaspike {imp:.2f} s; first lif_forward+lif_backward: {cold:.1f} s cold, {warm:.1f} s with the on-disk cache"
    )


if __name__ == "__main__":
    main()
