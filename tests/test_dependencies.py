"""The core needs only numpy, numba and tqdm: optional packages are never imported by a
training step, and are not needed for one."""

import subprocess
import sys

BLOCKED = ("scipy", "torch", "matplotlib", "h5py", "sklearn", "nir")

TRAIN_STEP = r"""
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # any import of it now raises ImportError
import numpy as np
from numbaspike.layers import LI, LIF, LIFRecurrent, Linear
from numbaspike.losses import MaxOverTimeCrossEntropy
from numbaspike.network import Sequential
from numbaspike.optim import Adam
from numbaspike.train import train_step

rng = np.random.default_rng(0)
x = (rng.random((12, 8, 40)) < 0.1).astype(np.float32)  # spikes: the event-driven path
currents = rng.normal(size=(12, 8, 40)).astype(np.float32)  # the dense (BLAS) path
labels = rng.integers(0, 3, 8)
for inputs in (x, currents):
    net = Sequential(
        Linear(40, 30, seed=1, scale=3.0), LIFRecurrent(30), Linear(30, 30, seed=2),
        LIF(30), Linear(30, 3, seed=3), LI(3),
    )
    loss, _ = train_step(net, inputs, labels, MaxOverTimeCrossEntropy(), Adam(net.parameters()))
    assert np.isfinite(loss)
print("ok")
"""


def test_a_training_step_needs_no_optional_package():
    code = TRAIN_STEP.format(blocked=BLOCKED)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")
