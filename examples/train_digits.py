"""Two-layer SNN on the scikit-learn handwritten digits (8x8 images, latency-coded spikes).

Needs the ``data`` extra (scikit-learn). Run ``python examples/train_digits.py``
(``--quick`` for a toy-size run).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from numbaspike import data
from numbaspike.layers import LI, LIF, Linear
from numbaspike.losses import MaxOverTimeCrossEntropy
from numbaspike.network import Sequential
from numbaspike.optim import Adam
from numbaspike.train import evaluate, fit


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="toy size (for tests)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    dataset = data.load_digits_spikes(steps=20, encoding="latency", seed=args.seed)
    if args.quick:
        dataset = dataset.subset(np.arange(200))
    train, test = data.train_test_split(dataset, test_fraction=0.2, seed=args.seed)
    hidden, epochs = (32, 1) if args.quick else (128, args.epochs)

    rng = np.random.default_rng(args.seed)
    net = Sequential(
        Linear(train.n_inputs, hidden, seed=rng, scale=10.0),
        LIF(hidden),
        Linear(hidden, train.n_classes, seed=rng),
        LI(train.n_classes),
    )
    loss = MaxOverTimeCrossEntropy()
    start = time.perf_counter()
    fit(net, train, loss, Adam(net.parameters(), lr=1e-2), epochs, batch_size=64, val=test,
        seed=args.seed, progress=not args.quick)  # fmt: skip
    _, accuracy = evaluate(net, test, loss)
    print(
        f"digits test accuracy: {accuracy:.3f} (chance 0.100) in {time.perf_counter() - start:.1f} s"
    )
    return accuracy


if __name__ == "__main__":
    main()
