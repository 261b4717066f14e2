r"""Losses and activity regularisers with hand-written gradients.

Every loss is an object whose call returns the scalar value *and* the gradient of that value
with respect to the network output, ready to be passed to the matching backward function
(:func:`numbaspike.li_backward`, :func:`numbaspike.lif_backward`)::

    value, grad = loss(output, target)      # grad.shape == output.shape, same dtype

Arrays are time-major: ``output`` is ``(T, B, C)`` (steps, batch, classes/neurons).

Reductions
----------
Unless stated otherwise a loss is **averaged over the batch** (``1/B``) and summed over
everything else that the loss formula sums. The exceptions, chosen to match PyTorch, are the
mean-squared-error losses whose default ``reduction="mean"`` averages over *all* elements like
``torch.nn.MSELoss``; they also accept ``reduction="batchmean"`` (sum / B) and ``"sum"``.

Classification losses (:class:`MaxOverTimeCrossEntropy`, :class:`MeanOverTimeCrossEntropy`,
:class:`SpikeCountCrossEntropy`) reduce the time axis to logits ``(B, C)`` and apply the
softmax cross-entropy

.. math::

    \ell = \frac{1}{B} \sum_b \Big( \log \sum_c e^{z_{bc}} - z_{b y_b} \Big), \qquad
    \frac{\partial \ell}{\partial z_{bc}} = \frac{1}{B}\big(\operatorname{softmax}(z_b)_c
    - [c = y_b]\big),

computed stably with the log-sum-exp shift :math:`z - \max_c z` (in float64 internally).
They also offer ``logits(output) -> (B, C)`` and ``predict(output) -> (B,) int64``.

Regularisers (:class:`FiringRateRegularizer`, :class:`SpikeCountL1`, :class:`SpikeCountL2`)
take only the hidden spikes: ``value, grad = reg(spikes)``.

Bad input raises ``ValueError`` naming the argument (shape mismatch, labels that are not
integers in ``[0, C)``, NaN/inf); an output that is not float32/float64 raises ``TypeError``.

References
----------
F. Zenke and T. P. Vogels (2021). The remarkable robustness of surrogate gradient learning for
instilling complex function in spiking neural networks. *Neural Computation* 33(4), 899-925.

B. Cramer, Y. Stradmann, J. Schemmel and F. Zenke (2022). The Heidelberg spiking data sets for
the systematic evaluation of spiking neural networks. *IEEE TNNLS* 33(7), 2744-2757.

M. C. W. van Rossum (2001). A novel spike distance. *Neural Computation* 13(4), 751-763.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from .runtime import array_pool
from .validation import as_float_array

__all__ = [
    "cross_entropy",
    "accuracy",
    "MaxOverTimeCrossEntropy",
    "MeanOverTimeCrossEntropy",
    "SpikeCountCrossEntropy",
    "MembraneMSE",
    "SpikeCountMSE",
    "VanRossumDistance",
    "FiringRateRegularizer",
    "SpikeCountL1",
    "SpikeCountL2",
]


def _broadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``g`` broadcast to ``shape`` as a new C-contiguous array (see :mod:`numbaspike.runtime.array_pool`)."""
    out = array_pool.empty(shape, g.dtype)
    out[...] = g
    return out


Reduction = Literal["mean", "batchmean", "sum"]
_REDUCTIONS = ("mean", "batchmean", "sum")


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _check_array(name: str, value, ndim: int, shape_doc: str) -> np.ndarray:
    """A non-empty, finite float32/float64 array of rank ``ndim``."""
    arr = as_float_array(name, value, ndim=ndim, shape_doc=shape_doc)
    if arr.size == 0:
        raise ValueError(f"{name} must be non-empty with shape {shape_doc}, got shape {arr.shape}")
    return arr


def _check_target(name: str, value, shape: tuple[int, ...], dtype, shape_doc: str) -> np.ndarray:
    """A finite array of exactly ``shape``, cast to ``dtype`` (booleans/ints allowed)."""
    if value is None:
        raise ValueError(f"{name} must be an array of shape {shape_doc} = {shape}")
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {shape_doc} = {tuple(shape)}, got {arr.shape}")
    return as_float_array(name, arr, dtype=dtype)


def _check_labels(labels, batch: int, num_classes: int, name: str = "labels") -> np.ndarray:
    """Integer class indices of shape ``(batch,)`` in ``[0, num_classes)`` as int64."""
    arr = np.asarray(labels)
    if arr.dtype.kind not in "iu":
        raise ValueError(
            f"{name} must be an integer array of class indices, got dtype {arr.dtype}"
        )
    if arr.shape != (batch,):
        raise ValueError(f"{name} must have shape (B,) = ({batch},), got shape {arr.shape}")
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} must lie in [0, C) = [0, {num_classes}), found {bad}")
    return arr.astype(np.int64, copy=False)


def _check_reduction(reduction: str, allowed: tuple[str, ...] = _REDUCTIONS) -> str:
    if reduction not in allowed:
        raise ValueError(f"reduction must be one of {allowed}, got {reduction!r}")
    return reduction


def _check_nonneg(name: str, value) -> float:
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}") from None
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")
    return x


def _scalar_or_vector(name: str, value, allow_negative: bool = True) -> float | np.ndarray:
    """A finite float or a finite read-only 1-D float64 array (per-neuron value)."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a number or a 1-D array, got bool")
    if np.ndim(value) == 0:
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number or a 1-D array, got {value!r}") from None
        if not math.isfinite(x) or (not allow_negative and x < 0):
            raise ValueError(
                f"{name} must be finite{'' if allow_negative else ' and >= 0'}, got {x}"
            )
        return x
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or a 1-D array of numbers") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"{name} must be a scalar or a non-empty (N,) array, got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)) or (not allow_negative and np.any(arr < 0)):
        raise ValueError(
            f"{name} must be finite{'' if allow_negative else ' and >= 0'} everywhere"
        )
    arr.setflags(write=False)
    return arr


def _check_per_neuron(name: str, value: float | np.ndarray, n: int) -> None:
    if isinstance(value, np.ndarray) and value.shape[0] != n:
        raise ValueError(f"{name} has shape {value.shape} but the spikes have N={n} neurons")


# --------------------------------------------------------------------------------------------
# cross-entropy and accuracy
# --------------------------------------------------------------------------------------------


def _softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy and its float64 gradient w.r.t. validated ``logits``."""
    batch = logits.shape[0]
    z = logits.astype(np.float64, copy=False)
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1)
    rows = np.arange(batch)
    nll = np.log(s) - shifted[rows, labels]
    value = float(nll.mean())
    grad = e / s[:, None]
    grad[rows, labels] -= 1.0
    grad /= batch
    return value, grad


def cross_entropy(logits, labels) -> tuple[float, np.ndarray]:
    r"""Softmax cross-entropy averaged over the batch, and its gradient.

    .. math::

        \ell = \frac{1}{B}\sum_{b=1}^{B}\Big(\log\sum_{c} e^{z_{bc}} - z_{b\,y_b}\Big),\qquad
        \frac{\partial\ell}{\partial z_{bc}} = \frac{\operatorname{softmax}(z_b)_c - [c=y_b]}{B}

    Equal to ``torch.nn.functional.cross_entropy(logits, labels)`` (``reduction="mean"``).

    Parameters
    ----------
    logits : ndarray, shape (B, C), float32 or float64
        Unnormalised class scores.
    labels : ndarray, shape (B,), integer
        Class indices in ``[0, C)``.

    Returns
    -------
    value : float
        The loss.
    grad : ndarray, shape (B, C), dtype of ``logits``
        :math:`\partial \ell / \partial z`.
    """
    z = _check_array("logits", logits, 2, "(B, C)")
    y = _check_labels(labels, z.shape[0], z.shape[1])
    value, grad = _softmax_cross_entropy(z, y)
    return value, grad.astype(z.dtype, copy=False)


def accuracy(logits_or_pred, labels) -> float:
    """Fraction of correctly classified samples.

    Parameters
    ----------
    logits_or_pred : ndarray, shape (B, C) or (B,)
        Logits (the prediction is their first arg-max along ``C``) or integer predictions.
    labels : ndarray, shape (B,), integer
        True class indices (``>= 0``; with logits also ``< C``).

    Returns
    -------
    float
        ``mean(pred == labels)`` in ``[0, 1]``.
    """
    arr = np.asarray(logits_or_pred)
    if arr.ndim == 2:
        z = _check_array("logits_or_pred", arr, 2, "(B, C)")
        y = _check_labels(labels, z.shape[0], z.shape[1])
        pred = np.argmax(z, axis=1)
    elif arr.ndim == 1:
        if arr.dtype.kind not in "iu":
            raise ValueError(
                "logits_or_pred must be (B, C) logits or (B,) integer predictions, "
                f"got a 1-D array of dtype {arr.dtype}"
            )
        if arr.size == 0:
            raise ValueError("logits_or_pred must be non-empty")
        pred = arr
        y = _check_labels(labels, arr.shape[0], np.iinfo(np.int64).max)
    else:
        raise ValueError(f"logits_or_pred must have shape (B, C) or (B,), got shape {arr.shape}")
    return float(np.mean(pred == y))


# --------------------------------------------------------------------------------------------
# classification losses on time-major outputs
# --------------------------------------------------------------------------------------------


class _TimeReducedCrossEntropy:
    """Cross-entropy on logits obtained by reducing ``(T, B, C)`` over time."""

    #: Averaged over the batch: a shard's value and gradient weigh B_k / B in distributed
    #: training (:mod:`numbaspike.distributed`).
    reduction = "mean"

    def _output(self, output) -> np.ndarray:
        return _check_array("output", output, 3, "(T, B, C)")

    def _reduce(self, out: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _backprop(self, out: np.ndarray, grad_logits: np.ndarray) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover - abstract

    def logits(self, output) -> np.ndarray:
        """Logits ``(B, C)`` (dtype of ``output``) from the ``(T, B, C)`` output."""
        return self._reduce(self._output(output))

    def predict(self, output) -> np.ndarray:
        """Predicted classes ``(B,)`` int64: first arg-max of :meth:`logits` along ``C``."""
        return np.argmax(self.logits(output), axis=1).astype(np.int64)

    def __call__(self, output, target) -> tuple[float, np.ndarray]:
        """Loss value and gradient ``(T, B, C)`` (dtype of ``output``).

        Parameters
        ----------
        output : ndarray, shape (T, B, C), float32 or float64
        target : ndarray, shape (B,), integer labels in ``[0, C)``
        """
        out = self._output(output)
        labels = _check_labels(target, out.shape[1], out.shape[2], name="labels (target)")
        value, g = _softmax_cross_entropy(self._reduce(out), labels)
        return value, self._backprop(out, g)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MaxOverTimeCrossEntropy(_TimeReducedCrossEntropy):
    r"""Cross-entropy on the maximum over time of a leaky-integrator readout.

    The standard readout for the Spiking Heidelberg Digits (Cramer et al. 2022; Zenke &
    Vogels 2021): with the non-spiking output membrane :math:`u_{t,b,c}`,

    .. math::

        z_{bc} = \max_t u_{t,b,c}, \qquad
        \ell = \frac{1}{B}\sum_b \Big(\log\sum_c e^{z_{bc}} - z_{b y_b}\Big),

    .. math::

        \frac{\partial\ell}{\partial u_{t,b,c}} = [t = t^*_{bc}]\;
        \frac{\operatorname{softmax}(z_b)_c - [c = y_b]}{B},\qquad
        t^*_{bc} = \operatorname{argmax}_t u_{t,b,c}

    where on ties :math:`t^*` is the first maximal step (as ``torch.max(u, dim=0)``).

    Call as ``value, grad = loss(output, labels)`` with ``output`` ``(T, B, C)`` and integer
    ``labels`` ``(B,)``; the value is averaged over the batch.
    """

    def _reduce(self, out: np.ndarray) -> np.ndarray:
        return out.max(axis=0)

    def _backprop(self, out: np.ndarray, grad_logits: np.ndarray) -> np.ndarray:
        idx = np.argmax(out, axis=0)
        grad = array_pool.zeros(out.shape, out.dtype)
        np.put_along_axis(grad, idx[None], grad_logits.astype(out.dtype)[None], axis=0)
        return grad


class MeanOverTimeCrossEntropy(_TimeReducedCrossEntropy):
    r"""Cross-entropy on the time average of the readout.

    .. math::

        z_{bc} = \frac{1}{T}\sum_t u_{t,b,c}, \qquad
        \frac{\partial\ell}{\partial u_{t,b,c}} = \frac{1}{T}\,
        \frac{\operatorname{softmax}(z_b)_c - [c = y_b]}{B}

    with :math:`\ell` the batch-mean softmax cross-entropy (see :func:`cross_entropy`).
    """

    def _reduce(self, out: np.ndarray) -> np.ndarray:
        return out.mean(axis=0)

    def _backprop(self, out: np.ndarray, grad_logits: np.ndarray) -> np.ndarray:
        g = (grad_logits / out.shape[0]).astype(out.dtype)
        return _broadcast(g, out.shape)


class SpikeCountCrossEntropy(_TimeReducedCrossEntropy):
    r"""Cross-entropy on the spike count of a spiking output layer.

    .. math::

        z_{bc} = \sum_t s_{t,b,c}, \qquad
        \frac{\partial\ell}{\partial s_{t,b,c}} =
        \frac{\operatorname{softmax}(z_b)_c - [c = y_b]}{B}

    with :math:`\ell` the batch-mean softmax cross-entropy (see :func:`cross_entropy`). Ties
    in the count are resolved by :meth:`predict` towards the lowest class index.
    """

    def _reduce(self, out: np.ndarray) -> np.ndarray:
        return out.sum(axis=0)

    def _backprop(self, out: np.ndarray, grad_logits: np.ndarray) -> np.ndarray:
        g = grad_logits.astype(out.dtype)
        return _broadcast(g, out.shape)


# --------------------------------------------------------------------------------------------
# regression losses
# --------------------------------------------------------------------------------------------


def _mse(diff: np.ndarray, reduction: str, batch: int) -> tuple[float, np.ndarray]:
    if reduction == "mean":
        scale = 1.0 / diff.size
    elif reduction == "batchmean":
        scale = 1.0 / batch
    else:
        scale = 1.0
    value = float(np.sum(np.square(diff, dtype=np.float64)) * scale)
    grad = diff * diff.dtype.type(2.0 * scale)
    return value, grad


class MembraneMSE:
    r"""Mean squared error between the output membrane and a target trace.

    .. math::

        \ell = \kappa \sum_{t,b,c} (u_{t,b,c} - \hat u_{t,b,c})^2, \qquad
        \frac{\partial\ell}{\partial u_{t,b,c}} = 2\kappa\,(u_{t,b,c} - \hat u_{t,b,c})

    with :math:`\kappa = 1/(TBC)` for ``reduction="mean"`` (default, as
    ``torch.nn.MSELoss``), :math:`1/B` for ``"batchmean"`` and :math:`1` for ``"sum"``.

    Parameters
    ----------
    reduction : {"mean", "batchmean", "sum"}
        How the squared errors are reduced.

    Call as ``value, grad = loss(output, target)`` with ``output`` and ``target`` of the same
    shape ``(T, B, C)``; the gradient is with respect to ``output`` only.
    """

    def __init__(self, reduction: Reduction = "mean") -> None:
        self.reduction = _check_reduction(reduction)

    def __call__(self, output, target) -> tuple[float, np.ndarray]:
        out = _check_array("output", output, 3, "(T, B, C)")
        tgt = _check_target("target", target, out.shape, out.dtype, "(T, B, C)")
        return _mse(out - tgt, self.reduction, out.shape[1])

    def __repr__(self) -> str:
        return f"MembraneMSE(reduction={self.reduction!r})"


class SpikeCountMSE:
    r"""Mean squared error between output spike counts and target counts.

    .. math::

        n_{bc} = \sum_t s_{t,b,c},\qquad
        \ell = \kappa \sum_{b,c} (n_{bc} - \hat n_{bc})^2,\qquad
        \frac{\partial\ell}{\partial s_{t,b,c}} = 2\kappa\,(n_{bc} - \hat n_{bc})

    with :math:`\kappa = 1/(BC)` for ``reduction="mean"`` (default), :math:`1/B` for
    ``"batchmean"`` and :math:`1` for ``"sum"``.

    Call as ``value, grad = loss(output, target)`` with spikes ``output`` ``(T, B, C)`` and
    target counts ``target`` ``(B, C)``.
    """

    def __init__(self, reduction: Reduction = "mean") -> None:
        self.reduction = _check_reduction(reduction)

    def __call__(self, output, target) -> tuple[float, np.ndarray]:
        out = _check_array("output", output, 3, "(T, B, C)")
        tgt = _check_target("target", target, out.shape[1:], out.dtype, "(B, C)")
        value, g = _mse(out.sum(axis=0) - tgt, self.reduction, out.shape[1])
        return value, _broadcast(g, out.shape)

    def __repr__(self) -> str:
        return f"SpikeCountMSE(reduction={self.reduction!r})"


class VanRossumDistance:
    r"""Van Rossum distance between output and target spike trains (van Rossum 2001).

    Both trains are filtered by the discrete exponential kernel (unit jump per spike,
    decay :math:`\alpha = 1 - dt\,\tau^{-1}`, :math:`f_{-1} = 0`); by linearity this is the
    filter of the difference :math:`d = s - \hat s`:

    .. math::

        e_t = \alpha\, e_{t-1} + (s_t - \hat s_t), \qquad
        \ell = \frac{dt}{B} \sum_{t,b,n} e_{t,b,n}^2 \quad(\text{``batchmean''}),

    or without the :math:`1/B` for ``reduction="sum"``. (The continuous distance
    :math:`D^2 = \tau^{-1}\int (f - \hat f)^2\,dt` is :math:`\ell\,\tau^{-1}` up to the
    discretisation of the kernel :math:`e^{-t/\tau}` by :math:`\alpha^{t/dt}`.)

    The gradient is computed by the adjoint (reverse-time) filter in :math:`O(T)`:

    .. math::

        a_t = \frac{2\,dt}{B}\, e_t + \alpha\, a_{t+1},\quad a_T = 0, \qquad
        \frac{\partial\ell}{\partial s_t} = a_t.

    Parameters
    ----------
    tau_inv : float or ndarray of shape (N,)
        Inverse kernel time constant :math:`\tau^{-1}` (1/s), > 0, per neuron if an array.
    dt : float
        Time step (s), > 0, with :math:`dt\,\tau^{-1} \le 1`.
    reduction : {"batchmean", "sum"}
        Average over the batch (default) or sum.

    Call as ``value, grad = loss(output, target)`` with spike trains ``output`` and
    ``target`` of the same shape ``(T, B, N)``; the gradient is with respect to ``output``.
    """

    def __init__(
        self,
        tau_inv: float | np.ndarray = 100.0,
        dt: float = 1e-3,
        reduction: Literal["batchmean", "sum"] = "batchmean",
    ) -> None:
        self.tau_inv = _scalar_or_vector("tau_inv", tau_inv, allow_negative=False)
        if np.any(np.asarray(self.tau_inv) <= 0):
            raise ValueError(f"tau_inv must be positive, got {tau_inv!r}")
        self.dt = _check_nonneg("dt", dt)
        if self.dt <= 0:
            raise ValueError(f"dt must be positive, got {dt!r}")
        if np.any(self.dt * np.asarray(self.tau_inv) > 1.0):
            raise ValueError(
                f"dt * tau_inv must be <= 1 (kernel decay 1 - dt*tau_inv >= 0); got dt={self.dt} "
                f"and max tau_inv={np.max(self.tau_inv)}"
            )
        self.reduction = _check_reduction(reduction, ("batchmean", "sum"))

    @property
    def decay(self) -> float | np.ndarray:
        """The per-step kernel decay :math:`\\alpha = 1 - dt\\,\\tau^{-1}`."""
        return 1.0 - self.dt * self.tau_inv

    def __call__(self, output, target) -> tuple[float, np.ndarray]:
        out = _check_array("output", output, 3, "(T, B, N)")
        tgt = _check_target("target", target, out.shape, out.dtype, "(T, B, N)")
        _check_per_neuron("tau_inv", self.tau_inv, out.shape[2])
        dtype = out.dtype
        decay = np.asarray(self.decay, dtype=dtype)
        steps = out.shape[0]
        # forward filter of the difference, in place
        e = out - tgt
        for t in range(1, steps):
            e[t] += decay * e[t - 1]
        scale = self.dt / out.shape[1] if self.reduction == "batchmean" else self.dt
        value = float(np.sum(np.square(e, dtype=np.float64)) * scale)
        # adjoint filter in reverse time, in place: a_t = 2*scale*e_t + decay*a_{t+1}
        e *= dtype.type(2.0 * scale)
        for t in range(steps - 2, -1, -1):
            e[t] += decay * e[t + 1]
        return value, e

    def __repr__(self) -> str:
        return (
            f"VanRossumDistance(tau_inv={self.tau_inv!r}, dt={self.dt!r}, "
            f"reduction={self.reduction!r})"
        )


# --------------------------------------------------------------------------------------------
# activity regularisers
# --------------------------------------------------------------------------------------------


def _check_spikes(spikes) -> np.ndarray:
    return _check_array("spikes", spikes, 3, "(T, B, N)")


class FiringRateRegularizer:
    r"""Keep per-sample spike counts of hidden neurons between a lower and an upper bound.

    With the spike count of neuron :math:`n` for sample :math:`b`,
    :math:`c_{bn} = \sum_t s_{t,b,n}`, and bounds :math:`\nu^{lo}_n, \nu^{up}_n` (spike counts
    per sample, scalars or per neuron):

    .. math::

        R_{lo} &= \lambda_{lo}\,\frac{1}{BN}\sum_{b,n}\operatorname{relu}(\nu^{lo}_n - c_{bn})^2 \\
        R_{up} &= \lambda_{up}\,\frac{1}{BN}\sum_{b,n}\operatorname{relu}(c_{bn} - \nu^{up}_n)^2
        \quad(\texttt{upper\_mode="neuron"}) \\
        R_{up} &= \lambda_{up}\,\frac{1}{B}\sum_{b}\operatorname{relu}\Big(\frac1N\sum_n c_{bn}
        - \nu^{up}\Big)^2 \quad(\texttt{upper\_mode="population"})

    and the value is :math:`R_{lo} + R_{up}` (a term whose bound is ``None`` is absent). The
    gradient w.r.t. every time step is that w.r.t. the count, e.g.
    :math:`\partial R_{lo}/\partial s_{t,b,n} = -2\lambda_{lo}\operatorname{relu}(\nu^{lo}_n -
    c_{bn})/(BN)`.

    This is the activity regularisation of Zenke & Vogels (2021): a per-neuron lower bound on
    the spike count (to prevent silent neurons) together with an upper bound, which they
    place on the population-average count (``upper_mode="population"``, squared). Note that
    the bounds are spike *counts* per sample over the whole ``T`` steps, not rates in Hz
    (multiply a rate by ``T * dt``).

    Parameters
    ----------
    lower, upper : float or ndarray of shape (N,), optional
        Bounds on the per-sample spike count (``>= 0``); ``None`` disables that term.
        ``upper`` must be a scalar when ``upper_mode="population"``.
    strength_lower, strength_upper : float
        :math:`\lambda_{lo}, \lambda_{up} \ge 0`.
    upper_mode : {"neuron", "population"}
        Apply the upper bound to each neuron's count or to the population-average count.

    Call as ``value, grad = reg(spikes)`` with ``spikes`` ``(T, B, N)``.
    """

    #: Averaged over the batch: a shard's value and gradient weigh B_k / B in distributed
    #: training (:mod:`numbaspike.distributed`).
    reduction = "mean"

    def __init__(
        self,
        lower: float | np.ndarray | None = None,
        upper: float | np.ndarray | None = None,
        strength_lower: float = 1.0,
        strength_upper: float = 1.0,
        upper_mode: Literal["neuron", "population"] = "neuron",
    ) -> None:
        self.lower = None if lower is None else _scalar_or_vector("lower", lower, False)
        self.upper = None if upper is None else _scalar_or_vector("upper", upper, False)
        self.strength_lower = _check_nonneg("strength_lower", strength_lower)
        self.strength_upper = _check_nonneg("strength_upper", strength_upper)
        if upper_mode not in ("neuron", "population"):
            raise ValueError(f"upper_mode must be 'neuron' or 'population', got {upper_mode!r}")
        if upper_mode == "population" and isinstance(self.upper, np.ndarray):
            raise ValueError("upper must be a scalar when upper_mode='population'")
        self.upper_mode = upper_mode

    def __call__(self, spikes) -> tuple[float, np.ndarray]:
        s = _check_spikes(spikes)
        _, batch, n = s.shape
        if self.lower is not None:
            _check_per_neuron("lower", self.lower, n)
        if self.upper is not None:
            _check_per_neuron("upper", self.upper, n)
        counts = s.sum(axis=0, dtype=np.float64)  # (B, N)
        value = 0.0
        g = np.zeros_like(counts)
        if self.lower is not None:
            deficit = np.maximum(np.asarray(self.lower) - counts, 0.0)
            value += self.strength_lower * float(np.sum(deficit * deficit)) / (batch * n)
            g -= (2.0 * self.strength_lower / (batch * n)) * deficit
        if self.upper is not None:
            if self.upper_mode == "neuron":
                excess = np.maximum(counts - np.asarray(self.upper), 0.0)
                value += self.strength_upper * float(np.sum(excess * excess)) / (batch * n)
                g += (2.0 * self.strength_upper / (batch * n)) * excess
            else:
                excess = np.maximum(counts.mean(axis=1) - self.upper, 0.0)  # (B,)
                value += self.strength_upper * float(np.sum(excess * excess)) / batch
                g += ((2.0 * self.strength_upper / (batch * n)) * excess)[:, None]
        grad = _broadcast(g.astype(s.dtype), s.shape)
        return value, grad

    def __repr__(self) -> str:
        return (
            f"FiringRateRegularizer(lower={self.lower!r}, upper={self.upper!r}, "
            f"strength_lower={self.strength_lower!r}, strength_upper={self.strength_upper!r}, "
            f"upper_mode={self.upper_mode!r})"
        )


class SpikeCountL1:
    r"""L1 penalty on per-sample spike counts, averaged over batch and neurons.

    .. math::

        c_{bn} = \sum_t s_{t,b,n},\qquad
        R = \frac{\lambda}{BN}\sum_{b,n} |c_{bn}|,\qquad
        \frac{\partial R}{\partial s_{t,b,n}} = \frac{\lambda}{BN}\operatorname{sign}(c_{bn})

    (:math:`\operatorname{sign}(0) = 0`). For non-negative spikes this is
    :math:`\lambda` times the mean spike count per neuron and sample; the SpyTorch-style
    "sum of all spikes" penalty corresponds to :math:`\lambda = \lambda_{sum} B N`.

    Parameters
    ----------
    strength : float
        :math:`\lambda \ge 0`.
    """

    #: Averaged over the batch: a shard's value and gradient weigh B_k / B in distributed
    #: training (:mod:`numbaspike.distributed`).
    reduction = "mean"

    def __init__(self, strength: float = 1.0) -> None:
        self.strength = _check_nonneg("strength", strength)

    def __call__(self, spikes) -> tuple[float, np.ndarray]:
        s = _check_spikes(spikes)
        counts = s.sum(axis=0, dtype=np.float64)
        k = self.strength / counts.size
        value = k * float(np.sum(np.abs(counts)))
        g = (k * np.sign(counts)).astype(s.dtype)
        return value, _broadcast(g, s.shape)

    def __repr__(self) -> str:
        return f"SpikeCountL1(strength={self.strength!r})"


class SpikeCountL2:
    r"""L2 penalty on per-sample spike counts, averaged over batch and neurons.

    .. math::

        c_{bn} = \sum_t s_{t,b,n},\qquad
        R = \frac{\lambda}{BN}\sum_{b,n} c_{bn}^2,\qquad
        \frac{\partial R}{\partial s_{t,b,n}} = \frac{2\lambda}{BN}\,c_{bn}

    Parameters
    ----------
    strength : float
        :math:`\lambda \ge 0`.
    """

    #: Averaged over the batch: a shard's value and gradient weigh B_k / B in distributed
    #: training (:mod:`numbaspike.distributed`).
    reduction = "mean"

    def __init__(self, strength: float = 1.0) -> None:
        self.strength = _check_nonneg("strength", strength)

    def __call__(self, spikes) -> tuple[float, np.ndarray]:
        s = _check_spikes(spikes)
        counts = s.sum(axis=0, dtype=np.float64)
        k = self.strength / counts.size
        value = k * float(np.sum(counts * counts))
        g = (2.0 * k * counts).astype(s.dtype)
        return value, _broadcast(g, s.shape)

    def __repr__(self) -> str:
        return f"SpikeCountL2(strength={self.strength!r})"
