r"""The Randman random-manifold spike-timing task (Zenke & Vogels 2021).

F. Zenke and T. P. Vogels, "The remarkable robustness of surrogate gradient learning for
instilling complex function in spiking neural networks", Neural Computation 33(4):899-925
(2021). Reimplemented here from the paper's description (no download).

Each class :math:`k` is a smooth random :math:`D`-dimensional manifold embedded in the unit
hypercube of :math:`N` units. Coordinate :math:`n` of the manifold at intrinsic position
:math:`u \in [0, 1]^D` is a product over manifold dimensions of random smooth 1-D functions

.. math::

    y_n(u) = \prod_{d=1}^{D} \sum_{j=0}^{J-1} \frac{a_{ndj}}{(j + 1)^{\alpha}}
             \sin\!\big(2\pi\,(j\, u_d\, f_{ndj} + \varphi_{ndj})\big),

with :math:`a, f, \varphi \sim U[0, 1)` drawn once per class (the constant term's amplitude
:math:`a_{nd0}` is zero), and :math:`J = \lceil 10^{3/\alpha} \rceil` Fourier terms (the
higher ones would have amplitude below :math:`10^{-3}`). Larger :math:`\alpha` gives smoother
manifolds. A sample of class :math:`k` is a point :math:`u \sim U[0, 1)^D` on manifold
:math:`k`; each coordinate is min-max scaled over the class's samples into [0, 1) and gives
the time of that unit's spike, ``bin = floor(y * steps)``. Every unit thus fires exactly
``n_spikes_per_unit`` times in every sample (one independent manifold per spike), so spike
counts carry no information: only the timing does.
"""

from __future__ import annotations

import math

import numpy as np

from ._checks import finite_float, make_rng, positive_int
from .dataset import SpikeDataset

__all__ = ["make_randman"]

#: Fourier terms whose amplitude 1/(j+1)^alpha falls below this are dropped.
PRECISION = 1e-3
#: Upper bound on the number of Fourier terms (reached only for very rough manifolds).
MAX_TERMS = 1000


def _n_terms(alpha: float) -> int:
    return int(min(math.ceil(PRECISION ** (-1.0 / alpha)), MAX_TERMS))


def _manifold_coordinates(u: np.ndarray, params: np.ndarray, alpha: float) -> np.ndarray:
    """Evaluate one random manifold.

    Parameters
    ----------
    u : (M, D) intrinsic coordinates in [0, 1).
    params : (N, D, 3, J) amplitudes, frequencies and phases in [0, 1).

    Returns
    -------
    (M, N) embedding coordinates (not yet scaled).
    """
    n_terms = params.shape[-1]
    j = np.arange(n_terms, dtype=np.float64)
    spectrum = 1.0 / (j + 1.0) ** alpha
    out = np.ones((u.shape[0], params.shape[0]))
    for d in range(u.shape[1]):
        amp = params[:, d, 0, :] * spectrum  # (N, J)
        freq = params[:, d, 1, :] * j  # (N, J)
        phase = params[:, d, 2, :]  # (N, J)
        arg = u[:, d, None, None] * freq[None] + phase[None]  # (M, N, J)
        out *= np.einsum("mnj,nj->mn", np.sin(2.0 * np.pi * arg), amp)
    return out


def make_randman(
    n_classes: int = 10,
    n_units: int = 100,
    steps: int = 100,
    n_samples_per_class: int = 150,
    dim_manifold: int = 1,
    alpha: float = 2.0,
    n_spikes_per_unit: int = 1,
    seed: int | np.random.Generator | None = 0,
) -> SpikeDataset:
    """Generate a Randman spike-timing classification dataset.

    Parameters
    ----------
    n_classes : int
        Number of classes (one random manifold each).
    n_units : int
        Input units ``N`` (embedding dimension).
    steps : int
        Time bins ``T``; spike times span the whole window.
    n_samples_per_class : int
        Samples drawn from each class manifold (total ``n_classes * n_samples_per_class``).
    dim_manifold : int
        Intrinsic dimension ``D`` of the manifolds; larger is harder.
    alpha : float
        Smoothness (power-spectrum fall-off exponent); smaller is rougher and harder.
    n_spikes_per_unit : int
        Spikes per unit and sample (each from its own independent manifold).
    seed : int, numpy.random.Generator or None
        The same seed gives the same dataset.

    Returns
    -------
    SpikeDataset
        ``n_classes * n_samples_per_class`` samples in random order, ``steps`` bins,
        ``n_units`` inputs; each sample has ``n_units * n_spikes_per_unit`` events.

    Notes
    -----
    The defaults (10 classes, 100 units, 100 steps, 150 samples per class, 1-D manifolds,
    ``alpha = 2``, as in Randman's reference generator except for fewer samples) make a
    well-posed task: logistic regression on the spike times reaches about 99 % test
    accuracy, while a spiking network has to learn to read the timing from the spikes. A
    feed-forward 100 -> 128 LIF -> 10 network trained with BPTT reaches about 80 % test
    accuracy after 10 epochs (about 1.5 minutes of CPU); ``dim_manifold=2`` or smaller
    ``alpha`` make it harder.
    """
    n_classes = positive_int("n_classes", n_classes)
    n_units = positive_int("n_units", n_units)
    steps = positive_int("steps", steps)
    n_samples_per_class = positive_int("n_samples_per_class", n_samples_per_class)
    dim_manifold = positive_int("dim_manifold", dim_manifold)
    alpha = finite_float("alpha", alpha, 0.0, low_open=True)
    n_spikes_per_unit = positive_int("n_spikes_per_unit", n_spikes_per_unit)
    rng = make_rng("seed", seed)
    n_terms = _n_terms(alpha)

    m = n_samples_per_class
    per_sample = n_units * n_spikes_per_unit
    times = np.empty((n_classes, m, n_spikes_per_unit, n_units), np.int32)
    for k in range(n_classes):
        params = rng.random((n_spikes_per_unit, n_units, dim_manifold, 3, n_terms))
        params[:, :, :, 0, 0] = 0.0  # no constant offset (Randman's use_bias=False)
        u = rng.random((m, dim_manifold))
        for s in range(n_spikes_per_unit):
            y = _manifold_coordinates(u, params[s], alpha)
            lo, hi = y.min(axis=0), y.max(axis=0)
            y = (y - lo) / (hi - lo + 1e-7)  # [0, 1) per unit over the class's samples
            times[k, :, s] = np.minimum(np.floor(y * steps), steps - 1).astype(np.int32)

    order = rng.permutation(n_classes * m)
    times = times.reshape(n_classes * m, per_sample)[order]
    labels = np.repeat(np.arange(n_classes, dtype=np.int64), m)[order]
    units = np.tile(np.arange(n_units, dtype=np.int32), n_spikes_per_unit)
    offsets = np.arange(n_classes * m + 1, dtype=np.int64) * per_sample
    return SpikeDataset._trusted(
        offsets,
        np.ascontiguousarray(times.reshape(-1)),
        np.tile(units, n_classes * m),
        labels,
        steps,
        n_units,
        n_classes,
    )
