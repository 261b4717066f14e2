"""Scenarios that ``tests/test_distributed.py`` runs under ``mpiexec -n K``.

``python tests/mpi_worker.py SCENARIO OUT`` writes what rank 0 measured to ``OUT`` (JSON).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import numpy as np
from mpi4py import MPI

from numbaspike import data
from numbaspike import layers as L
from numbaspike.losses import FiringRateRegularizer, MaxOverTimeCrossEntropy
from numbaspike.network import Sequential
from numbaspike.optim import Adam
from numbaspike.train import evaluate, fit

COMM = MPI.COMM_WORLD
# 129 samples in batches of 32: the last global batch has one sample, so rank 1's shard
# of it is empty
DATA = data.make_randman(steps=20, seed=0).subset(np.arange(129))


def network() -> Sequential:
    """A small version of the CLI's network (Linear -> recurrent LIF -> Linear -> LI), float64,
    with learned thresholds."""
    rng = np.random.default_rng(0)
    return Sequential(
        L.Linear(DATA.n_inputs, 16, seed=rng, scale=10.0, dtype=np.float64),
        L.LIFRecurrent(16, learn=("v_th",), seed=rng, autapses=False, dtype=np.float64),
        L.Linear(16, DATA.n_classes, seed=rng, dtype=np.float64),
        L.LI(DATA.n_classes, dtype=np.float64),
    )


class SummedCrossEntropy(MaxOverTimeCrossEntropy):
    """The cross-entropy summed over the batch (a ``reduction="sum"`` loss)."""

    reduction = "sum"

    def __call__(self, output, target):
        value, grad = super().__call__(output, target)
        return value * len(target), grad * len(target)


def train(comm, loss, regularizers=(), **kwargs):
    net = network()
    history = fit(
        net, DATA, loss, Adam(net.parameters(), lr=2e-3), 1, batch_size=32, comm=comm,
        progress=False, regularizers=regularizers, **kwargs,
    )  # fmt: skip
    return net, history


def relative(a: Sequential, b: Sequential) -> float:
    """max over parameter arrays of max|a - b| / max|a|."""
    return max(
        float(np.max(np.abs(b.parameters()[k] - v)) / np.max(np.abs(v)))
        for k, v in a.parameters().items()
    )


def equal_to_one_process(out: str) -> None:
    """K ranks against one process, over one epoch: a mean loss with a regulariser, a summed
    loss; two K-rank runs; evaluate; a one-rank communicator against no communicator."""
    result = {}
    reg = [(1, FiringRateRegularizer(lower=0.5, upper=8.0, strength_lower=1e-2))]
    for name, loss, regs in [
        ("mean", MaxOverTimeCrossEntropy(), reg),
        ("sum", SummedCrossEntropy(), ()),
    ]:
        net_k, hist_k = train(COMM, loss, regs, check_every=2)
        again, hist_again = train(COMM, loss, regs)
        if COMM.rank == 0:
            net_1, hist_1 = train(None, loss, regs)
            self_net, self_hist = train(MPI.COMM_SELF, loss, regs)
            result[name] = {
                "params": relative(net_1, net_k),
                "losses": max(
                    abs(a - b) for a, b in zip(hist_1.step_loss, hist_k.step_loss, strict=True)
                ),
                "steps": len(hist_k.step_loss),
                "repeat_identical": all(
                    np.array_equal(v, again.parameters()[k]) for k, v in net_k.parameters().items()
                )
                and hist_again.step_loss == hist_k.step_loss,
                "self_identical": all(
                    np.array_equal(v, self_net.parameters()[k])
                    for k, v in net_1.parameters().items()
                )
                and self_hist.step_loss == hist_1.step_loss,
            }
        if name == "mean":
            shared = evaluate(net_k, DATA, loss, comm=COMM)
            if COMM.rank == 0:
                result["evaluate"] = [list(shared), list(evaluate(net_k, DATA, loss))]
    if COMM.rank == 0:
        with open(out, "w") as f:
            json.dump(result, f)


class Trap:
    """A regulariser that, on one rank and at one step, does ``action`` (reduction mean)."""

    reduction = "mean"

    def __init__(self, action: str, rank: int = 1, at: int = 2) -> None:
        self.action, self.rank, self.at, self.calls = action, rank, at, 0

    def __call__(self, spikes):
        self.calls += 1
        if COMM.rank == self.rank and self.calls == self.at:
            if self.action == "raise":
                raise RuntimeError("boom on purpose")
            if self.action == "hang":
                time.sleep(3600)
            if self.action == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
        return 0.0, np.zeros_like(spikes)


def fault(action: str) -> None:
    # compile the kernels first, without collectives: a rank still compiling when the
    # others wait would be a silent rank for the short timeout
    train(None, MaxOverTimeCrossEntropy(), [(1, Trap("none"))])
    train(COMM, MaxOverTimeCrossEntropy(), [(1, Trap(action))], mpi_timeout=5.0)


class Perturb:
    """A regulariser that, on rank 1 at its second call, changes the network's weights."""

    reduction = "mean"

    def __init__(self) -> None:
        self.net, self.calls = None, 0

    def __call__(self, spikes):
        self.calls += 1
        if COMM.rank == 1 and self.calls == 2:
            self.net.parameters()["0.weight"][0, 0] += 1.0
        return 0.0, np.zeros_like(spikes)


def parameters_diverge() -> None:
    """``check_every=1`` notices parameters that differ between the ranks."""
    net, reg = network(), Perturb()
    reg.net = net
    fit(net, DATA, MaxOverTimeCrossEntropy(), Adam(net.parameters()), 1, batch_size=32,
        comm=COMM, progress=False, regularizers=[(1, reg)], check_every=1)  # fmt: skip


def different_settings() -> None:
    net = network()
    batch = 32 if COMM.rank == 0 else 16
    fit(net, DATA, MaxOverTimeCrossEntropy(), Adam(net.parameters()), 1, batch_size=batch,
        comm=COMM, progress=False)  # fmt: skip


if __name__ == "__main__":
    scenario = sys.argv[1]
    if scenario == "equal":
        equal_to_one_process(sys.argv[2])
    elif scenario == "settings":
        different_settings()
    elif scenario == "diverge":
        parameters_diverge()
    else:
        fault(scenario)
