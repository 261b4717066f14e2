"""Spike datasets and encoders.

* :class:`SpikeDataset` — sparse (event-list) storage of binned spike trains with labels;
  :func:`train_test_split` and :func:`iterate_batches` give time-major ``(T, B, N)`` batches.
* :class:`CurrentDataset` — analog input currents with labels, per time step or constant;
  both datasets derive from :class:`LabeledDataset`.
* :func:`rate_encode`, :func:`latency_encode` — analog values in [0, 1] to spikes.
* :func:`make_randman` — the Randman spike-timing task (Zenke & Vogels 2021), generated.
* :func:`load_shd` / :func:`write_shd_like` — Spiking Heidelberg Digits / SSC HDF5 files
  (needs h5py).
* :func:`load_digits_spikes` — scikit-learn's 8x8 digits as spikes (needs scikit-learn).

h5py and scikit-learn are optional: ``pip install numbaspike[data]``.
"""

from .currents import CurrentDataset
from .dataset import LabeledDataset, SpikeDataset, iterate_batches, train_test_split
from .digits import load_digits_spikes
from .encoders import latency_encode, latency_times, rate_encode
from .randman import make_randman
from .shd import bin_spike_times, load_shd, write_shd_like

__all__ = [
    "CurrentDataset",
    "LabeledDataset",
    "SpikeDataset",
    "bin_spike_times",
    "iterate_batches",
    "latency_encode",
    "latency_times",
    "load_digits_spikes",
    "load_shd",
    "make_randman",
    "rate_encode",
    "train_test_split",
    "write_shd_like",
]
