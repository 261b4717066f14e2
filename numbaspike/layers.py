r"""Layers on time-major arrays (T, B, N): ``Linear`` here, and the neuron layers of
:mod:`numbaspike.neuron_layers` (``Neuron`` and its named forms ``LIF``, ``LIFRecurrent``,
``LI``, ``LIFBox``, ``LSNN``, ...), re-exported.

Every layer has the same small protocol:

* ``forward(x) -> (y, tape)``: run over all time steps;
* ``backward(grad_y, tape, need_input_grad=True) -> grad_x``: accumulate parameter
  gradients into ``layer.gradients()`` and return :math:`\partial L/\partial x` (or ``None``);
  the neuron layers also take ``out=``, an array to write :math:`\partial L/\partial x`
  into, which may be ``grad_y`` itself (an in-place pass that allocates no (T, B, N) array),
  and so does their ``forward`` (``out=x`` writes the output over the input);
* ``parameters()`` / ``gradients()``: ordered name → array mappings (the arrays are
  owned by the layer; optimisers update them in place);
* ``config()``: a JSON-able description from which :func:`numbaspike.network.layer_from_config`
  rebuilds the layer (parameters are saved separately).

A projection over all steps is one matrix product ``(T·B, n_in) @ W.T``. When its input
is sparse (spikes), the event-driven kernels of :mod:`numbaspike.kernels.projection`
are used instead, chosen per call by the measured density: the non-zero entries of the input
are listed once (:func:`~numbaspike.kernels.projection.spike_events`), the forward product
sums the rows of ``W.T`` of the inputs that fired, and the tape keeps the event list (not
the dense input) for the weight gradient. Dense products whose inner dimension is at most
:data:`~numbaspike.kernels.projection.NARROW_K` (a readout's input gradient, a narrow
input) are a Numba kernel too, so that a spiking network's training step need not call
BLAS (see :func:`~numbaspike.kernels.projection.narrow_matmul`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import backend as _backend
from .kernels import projection
from .layer_base import Layer, _as_dtype, _check_layer_input, _check_scale, _rng
from .layers_cuda import linear_backward_cuda, linear_forward_cuda
from .neuron_layers import (
    LI,
    LIF,
    LSNN,
    TAU_INV_MIN,
    V_TH_MARGIN,
    LIFBox,
    LIFBoxRecurrent,
    LIFRecurrent,
    LIFRefrac,
    LIFRefracRecurrent,
    LSNNRecurrent,
    Neuron,
)
from .runtime import array_pool
from .spike_events import SpikeEvents
from .validation import as_float_array, check_all_finite, check_positive_int, sum_is_finite

__all__ = [
    "Layer",
    "Linear",
    "Neuron",
    "LIF",
    "LIFRecurrent",
    "LI",
    "LIFBox",
    "LIFBoxRecurrent",
    "LSNN",
    "LSNNRecurrent",
    "LIFRefrac",
    "LIFRefracRecurrent",
    "TAU_INV_MIN",
    "V_TH_MARGIN",
]


def _check_events(name: str, events, n_in: int):
    """Events given as a layer input: their shape, step count and values."""
    m_rows, cols = events.shape
    if cols != n_in:
        raise ValueError(f"{name} must be events of shape (T*B, {n_in}), got {events.shape}")
    if events.steps is None or events.steps <= 0 or m_rows % events.steps:
        raise ValueError(
            f"{name}: SpikeEvents need steps (T, with T*B rows) to be a layer input, got "
            f"steps={events.steps} for {m_rows} rows (see SpikeDataset.batch_events)"
        )
    if events.row_ptr.shape != (m_rows + 1,) or events.cols.shape != (int(events.row_ptr[-1]),):
        raise ValueError(f"{name}: inconsistent SpikeEvents (row_ptr and cols do not match)")
    cols = events.cols
    if cols.dtype.kind not in "iu" or (cols.size and (cols.min() < 0 or cols.max() >= n_in)):
        raise ValueError(f"{name}: event columns must be integers in [0, {n_in})")
    if events.values is not None and not sum_is_finite(events.values):
        raise ValueError(f"{name} contains NaN or inf event values")
    return events


def _add_matmul_tn(out: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """``out += a.T @ b`` for ``a`` (M, P), ``b`` (M, Q), ``out`` (P, Q); returns False, and
    leaves ``out`` unchanged, if the product is not finite.

    That checks ``a`` for NaN and inf: a non-finite ``a[m, p]`` makes the whole row ``p``
    of ``a.T @ b`` non-finite (even where ``b`` is 0: ``NaN * 0`` and ``inf * 0`` are NaN),
    so one reduction over the (P, Q) product replaces one over ``a``, which is ``M / Q``
    times larger.

    The product goes to a pooled array (recycled from call to call, see
    :mod:`~numbaspike.runtime.array_pool`) by NumPy's BLAS, then is added to ``out``. A BLAS
    ``gemm`` with ``beta = 1`` would need no temporary, but the only one reachable from
    Python, SciPy's, is a second OpenBLAS with its own thread pool: its threads and
    NumPy's then spin against each other on a small machine.
    """
    product = array_pool.empty(out.shape, out.dtype)
    with np.errstate(over="ignore", invalid="ignore"):  # reported by the caller
        np.matmul(a.T, b, out=product)
    if not sum_is_finite(product):
        return False
    out += product
    return True


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b``: by :func:`~numbaspike.kernels.projection.narrow_matmul` (no BLAS, so no
    spinning BLAS threads around the Numba kernels) when the inner dimension is at most
    :data:`~numbaspike.kernels.projection.NARROW_K`, else by NumPy's BLAS."""
    out = array_pool.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
    if a.shape[1] > projection.NARROW_K:
        return np.matmul(a, b, out=out)
    return projection.narrow_matmul(a, b, out)


@dataclass(eq=False)
class LinearTape:
    """What :meth:`Linear.backward` needs of the input of one :meth:`Linear.forward` call.

    Attributes
    ----------
    x : ndarray, shape (T·B, n_in), or None
        Dense path: the input as given (a reference). None on the sparse path.
    sparse : bool
        Whether the event-driven (sparse) path was taken.
    shape : tuple of int
        ``(T, B, n_in)``, the shape of the input.
    events : SpikeEvents or None
        Sparse path: the events of the (T·B, n_in) input (the dense input is not kept).
    """

    x: np.ndarray | None
    sparse: bool
    shape: tuple[int, int, int]
    events: SpikeEvents | None = None


class Linear(Layer):
    r"""Dense projection :math:`y_t = x_t W^\top (+ b)` applied at every step.

    Parameters
    ----------
    n_in, n_out : int
    bias : bool
        Add a learned bias (default False, as is usual for SNN projections).
    seed : int or numpy.random.Generator, optional
        Initialisation: :math:`W, b \sim U(-1/\sqrt{n_{in}}, 1/\sqrt{n_{in}})`, PyTorch's
        ``nn.Linear`` default.
    scale : float
        Multiplies the initial weights (SNNs often need a larger gain to spike at all).
        Must be a finite real number.
    dtype : float32 or float64
    backend : {"cpu", "cuda", "auto"}
        ``"cuda"``: dense products on the GPU (:mod:`numbaspike.layers_cuda`), device arrays
        in and out; the event-driven path of sparse inputs is the CPU's.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        bias: bool = False,
        seed=None,
        scale: float = 1.0,
        dtype=np.float32,
        backend: str = "cpu",
    ) -> None:
        super().__init__()
        self.backend = _backend.resolve_backend(backend)
        self.n_in = check_positive_int("n_in", n_in)
        self.n_out = check_positive_int("n_out", n_out)
        self.dtype = _as_dtype(dtype)
        self.bias = bool(bias)
        self.scale = _check_scale(scale, self.dtype)
        rng = _rng(seed)
        bound = 1.0 / math.sqrt(self.n_in)
        self._add_param("weight", rng.uniform(-bound, bound, (self.n_out, self.n_in)) * self.scale)
        if self.bias:
            self._add_param("bias", rng.uniform(-bound, bound, self.n_out) * self.scale)

    @property
    def weight(self) -> np.ndarray:
        return self._params["weight"]

    def config(self) -> dict[str, Any]:
        return {"type": "Linear", "n_in": self.n_in, "n_out": self.n_out, "bias": self.bias}

    def forward(self, x) -> tuple[np.ndarray, LinearTape]:
        """Project ``x`` (T, B, n_in) to (T, B, n_out).

        ``x`` may also be the events of such an input
        (:class:`~numbaspike.spike_events.SpikeEvents` with ``steps``, e.g. from
        :meth:`~numbaspike.data.SpikeDataset.batch_events`): the event-driven path then
        runs on them directly, with no dense input to build or scan."""
        w = self._params["weight"]
        if self.backend == "cuda":
            if isinstance(x, SpikeEvents):
                raise ValueError(
                    "x: SpikeEvents feed the event-driven CPU path; a Linear layer with "
                    "backend='cuda' takes a dense (T, B, n_in) array"
                )
            y, (flat, shape) = linear_forward_cuda(self, x)
            return y, LinearTape(flat, False, shape)
        if isinstance(x, SpikeEvents):
            events = _check_events("x", x, self.n_in)
            shape = (events.steps, events.shape[0] // events.steps, self.n_in)
            sparse = True
        else:
            x = _check_layer_input("x", x, self.n_in, self.dtype, check_finite=False)
            shape = x.shape
            flat = x.reshape(-1, self.n_in)
            sparse = projection.use_sparse_path(projection.density(flat), self.n_out)
            if sparse:
                events = projection.spike_events(flat)
                # NaN and inf are events: their finiteness is that of the event values
                # (None: all exactly 1), not a pass over the whole input
                if events.values is not None and not sum_is_finite(events.values):
                    check_all_finite("x", x)
        if sparse:
            y = array_pool.empty((events.shape[0], self.n_out), self.dtype)
            projection.events_matmul(events, np.ascontiguousarray(w.T), y)
            tape = LinearTape(None, True, shape, events)
        else:
            check_all_finite("x", x)
            y = _matmul(flat, w.T)
            tape = LinearTape(flat, False, shape)
        if self.bias:
            y += self._params["bias"]
        return y.reshape(shape[0], shape[1], self.n_out), tape

    def backward(
        self,
        grad_y,
        tape: LinearTape,
        need_input_grad: bool = True,
        *,
        grad_y_finite: bool = False,
    ):
        r""":math:`\partial L/\partial W = g^\top x`, :math:`\partial L/\partial x = g W`.

        ``grad_y`` is checked for NaN and inf unless ``grad_y_finite`` says that it is known
        to be finite: :class:`~numbaspike.network.Sequential` sets it when ``grad_y`` is the
        input gradient of a neuron layer's backward pass, which is finite when that pass
        returns (each step's input gradient is the synaptic adjoint carried to the step
        before, so a NaN or inf at any step would reach the initial-state gradients that
        the pass checks). On the event path that check is a pass over all of ``grad_y``
        (6.5 MB in the SHD-sized step, 0.2-0.5 ms); the dense path checks ``grad_y`` through
        its product with the input in any case.
        """
        if self.backend == "cuda":
            return linear_backward_cuda(self, grad_y, (tape.x, tape.shape), need_input_grad)
        n_steps, batch, _ = tape.shape
        g = as_float_array(
            "grad_y",
            grad_y,
            ndim=3,
            dtype=self.dtype,
            check_finite=tape.sparse and not grad_y_finite,
        )
        if g.shape != (n_steps, batch, self.n_out):
            raise ValueError(
                f"grad_y must have shape {(n_steps, batch, self.n_out)}, got {g.shape}"
            )
        g = g.reshape(-1, self.n_out)
        if tape.sparse:
            projection.events_weight_grad(tape.events, g, self._grads["weight"])
        else:
            if not _add_matmul_tn(self._grads["weight"], g, tape.x):
                check_all_finite("grad_y", g.reshape(n_steps, batch, self.n_out))
                raise ValueError(
                    "grad_y is finite but the weight gradient overflowed (grad_y or the layer "
                    "input is too large, or the input was changed after the forward pass)"
                )
        if self.bias:
            self._grads["bias"] += g.sum(axis=0)
        if not need_input_grad:
            return None
        return _matmul(g, self._params["weight"]).reshape(n_steps, batch, self.n_in)
