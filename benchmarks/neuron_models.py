"""Every neuron model's recurrent layer, forward + backward, against the tuned LIF kernels.

One (T, B, N) recurrent layer per model (``numbaspike.neuron_forward`` /
``neuron_backward``; LIF runs on its hand-tuned kernels, the other models on the generic
driver of ``numbaspike/kernels/neuron_driver.py``), float32, inputs scaled so that each
model's spike rate is in the same range; medians of alternated repeats after one warm-up
call (which compiles). Prints a Markdown table with each model's time relative to LIF.

    python benchmarks/neuron_models.py [--steps 50] [--batch 64] [--neurons 128] [--repeats 9]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import numbaspike as ns
import numbaspike.models  # noqa: F401  (ns.models)

#: Input gain per model: LIFBox has no synaptic current (its input acts within one step).
GAIN = {"lif": 1.0, "lif_box": 5.0, "lsnn": 1.0, "lif_refrac": 1.0}


def _parameters(name: str):
    if name == "lif":
        return ns.LIFParameters()
    return ns.models.model_named(name).parameters()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--neurons", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    t, b, n = args.steps, args.batch, args.neurons
    rng = np.random.default_rng(0)
    base = rng.normal(0.5, 2.0, (t, b, n)).astype(np.float32) * 10
    w_rec = rng.normal(0.0, 1.0 / np.sqrt(n), (n, n)).astype(np.float32)
    cases = {}
    for name in GAIN:
        p = _parameters(name)
        x = base * np.float32(GAIN[name])
        z, tape = ns.neuron_forward(x, p, w_rec=w_rec)  # compiles
        ns.neuron_backward(np.ones_like(z), tape)
        cases[name] = (p, x, float(z.mean()))
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, (p, x, _) in cases.items():
            start = time.perf_counter()
            z, tape = ns.neuron_forward(x, p, w_rec=w_rec)
            ns.neuron_backward(np.ones_like(z), tape)
            times[name].append(time.perf_counter() - start)
    lif = statistics.median(times["lif"])
    print(f"recurrent layer, T={t} B={b} N={n}, float32, {ns.get_num_threads()} threads, "
          f"median of {args.repeats}")  # fmt: skip
    print("| model | spike rate | forward + backward | / LIF |")
    print("|---|---:|---:|---:|")
    for name, (_, _, rate) in cases.items():
        median = statistics.median(times[name])
        print(f"| {name} | {rate:.1%} | {median * 1e3:.1f} ms | {median / lif:.2f} |")


if __name__ == "__main__":
    main()
