"""Train a recurrent SNN on the Randman random-manifold task with the public API.

Zenke & Vogels (2021), Neural Computation 33:899. Run ``python examples/train_randman.py``
(``--quick`` for a toy-size run).
"""

from __future__ import annotations

import argparse

import numpy as np

from numbaspike import LIFParameters, data
from numbaspike.layers import LI, LIFRecurrent, Linear
from numbaspike.losses import FiringRateRegularizer, MaxOverTimeCrossEntropy
from numbaspike.network import Sequential
from numbaspike.optim import Adam
from numbaspike.train import evaluate, fit


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="toy size (for tests)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    per_class, steps, hidden, epochs = (
        (20, 30, 32, 2) if args.quick else (150, 50, 128, args.epochs)
    )
    dataset = data.make_randman(
        n_classes=10, n_units=100, steps=steps, n_samples_per_class=per_class, seed=args.seed
    )
    train, test = data.train_test_split(dataset, test_fraction=0.2, seed=args.seed)

    rng = np.random.default_rng(args.seed)
    net = Sequential(
        Linear(train.n_inputs, hidden, seed=rng, scale=10.0),
        LIFRecurrent(
            hidden, LIFParameters(surrogate="superspike", alpha=100.0), seed=rng, autapses=False
        ),
        Linear(hidden, train.n_classes, seed=rng),
        LI(train.n_classes),
    )
    loss = MaxOverTimeCrossEntropy()
    # keep hidden neurons from going silent or saturating (layer 1 = the recurrent LIF layer)
    regularizers = [
        (1, FiringRateRegularizer(lower=0.5, upper=20.0, strength_lower=1e-2, strength_upper=1e-3))
    ]
    fit(net, train, loss, Adam(net.parameters(), lr=2e-3), epochs, batch_size=64, val=test,
        seed=args.seed, regularizers=regularizers, progress=not args.quick)  # fmt: skip
    _, accuracy = evaluate(net, test, loss)
    print(f"Randman test accuracy: {accuracy:.3f} (chance 0.100)")
    return accuracy


if __name__ == "__main__":
    main()
