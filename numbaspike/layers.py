r"""Layers: ``Linear``, ``LIF``, ``LIFRecurrent`` and ``LI`` on time-major arrays (T, B, N).

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
import numbers
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from . import backend as _backend
from . import functional as F
from .compact_tape import check_sparse_tol
from .kernels import projection
from .layers_cuda import host, linear_backward_cuda, linear_forward_cuda
from .models.li import LI_NEURON_FIELDS, LIParameters
from .models.lif import LIF_NEURON_FIELDS, LIFParameters
from .runtime import array_pool
from .spike_events import SpikeEvents
from .validation import as_float_array, check_all_finite, check_positive_int, sum_is_finite

__all__ = ["Layer", "Linear", "LIF", "LIFRecurrent", "LI"]

_DTYPES = {"float32": np.float32, "float64": np.float64}


def _as_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _check_scale(scale, dtype: np.dtype) -> float:
    """The initial-weight gain as a float, or a ``ValueError`` naming ``scale``."""
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, numbers.Real):
        raise ValueError(f"scale must be a finite real number, got {scale!r}")
    value = float(scale)
    # refused here: NaN or inf weights would only surface later, blamed on the input
    if not math.isfinite(value):
        raise ValueError(f"scale must be a finite real number, got {value}")
    if abs(value) > float(np.finfo(dtype).max):  # the initial weights are at most |scale|
        raise ValueError(f"scale={value} overflows {dtype} weights")
    return value


def _on_device_input(name: str, x, n_in: int, dtype):
    """A CUDA layer's input: a device array, or a host array checked and copied to the device."""
    x = _backend.device_float_array(name, x, ndim=3, dtype=dtype, shape_doc=f"(T, B, {n_in})")
    if x.shape[2] != n_in:
        raise ValueError(f"{name} must have shape (T, B, {n_in}), got {tuple(x.shape)}")
    return x


def _no_out_on_cuda(layer: Layer, out) -> None:
    if out is not None and layer.backend == "cuda":
        raise ValueError("out is only supported on the CPU backend")


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check_layer_input(name: str, x, n_in: int, dtype, check_finite: bool = True) -> np.ndarray:
    x = as_float_array(
        name, x, ndim=3, dtype=dtype, shape_doc=f"(T, B, {n_in})", check_finite=check_finite
    )
    if x.shape[2] != n_in:
        raise ValueError(f"{name} must have shape (T, B, {n_in}), got {x.shape}")
    return x


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


class Layer:
    """Base class: parameter bookkeeping shared by all layers."""

    n_in: int
    n_out: int
    dtype: np.dtype
    #: Where the layer computes: ``"cpu"`` or ``"cuda"`` (resolved from the ``backend``
    #: argument; not part of :meth:`config`, so that checkpoints move between machines).
    backend: str = "cpu"

    def __init__(self) -> None:
        self._params: dict[str, np.ndarray] = {}
        self._grads: dict[str, np.ndarray] = {}

    def _add_param(self, name: str, value: np.ndarray) -> None:
        self._params[name] = np.array(value, dtype=self.dtype, order="C")  # owned, writeable
        self._grads[name] = np.zeros_like(self._params[name])

    def parameters(self) -> dict[str, np.ndarray]:
        """Trainable arrays, by name (updated in place by optimisers)."""
        return dict(self._params)

    def gradients(self) -> dict[str, np.ndarray]:
        """Accumulated gradients, same names and shapes as :meth:`parameters`."""
        return dict(self._grads)

    def zero_grad(self) -> None:
        for g in self._grads.values():
            g.fill(0)

    def constrain(self) -> None:
        """Project parameters back to their valid range after an optimiser step."""

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad_y, tape, need_input_grad: bool = True):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)[0]


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


#: Smallest learned inverse time constant :meth:`_NeuronLayer.constrain` allows (1/s).
TAU_INV_MIN = 1e-3

#: How far above ``v_reset`` :meth:`_NeuronLayer.constrain` keeps a learned ``v_th``.
V_TH_MARGIN = 1e-3


def _v_th_floor(v_reset: float, dtype: np.dtype) -> np.floating:
    """The lowest learned ``v_th`` allowed: ``v_reset + V_TH_MARGIN`` rounded to ``dtype``,
    or the next value of ``dtype`` above ``v_reset`` where the margin is lost to rounding."""
    # the next value above v_reset as rounded to dtype also lies above v_reset in float64,
    # where LIFParameters compares them
    above = np.nextafter(dtype.type(v_reset), dtype.type(np.inf))
    return max(dtype.type(v_reset + V_TH_MARGIN), above)


class _NeuronLayer(Layer):
    """Shared handling of (optionally learned, per-neuron) neuron parameters."""

    _param_class: type
    _neuron_fields: tuple[str, ...]

    def __init__(self, n: int, p, dt: float, learn, dtype, backend: str = "cpu") -> None:
        super().__init__()
        self.backend = _backend.resolve_backend(backend)
        self.n_in = self.n_out = check_positive_int("n", n)
        self.dtype = _as_dtype(dtype)
        if p is None:
            p = self._param_class()
        if not isinstance(p, self._param_class):
            raise TypeError(f"p must be {self._param_class.__name__}, got {type(p).__name__}")
        if p.size is not None and p.size != self.n_out:
            raise ValueError(f"per-neuron parameters have size {p.size}, layer has n={n}")
        self.p = p
        self.dt = float(dt)
        learn = (learn,) if isinstance(learn, str) else tuple(learn)
        for name in learn:
            if name not in self._neuron_fields:
                raise ValueError(
                    f"learn: unknown parameter {name!r}, expected some of {self._neuron_fields}"
                )
        self.learn = learn
        for name in learn:  # learned parameters live per neuron in the layer's dtype
            self._add_param(name, np.broadcast_to(np.asarray(getattr(p, name)), (self.n_out,)))
        self._check_dt()

    def _check_dt(self) -> None:
        from .params import check_time_step

        check_time_step(self.current_parameters(), self.dt)

    def current_parameters(self):
        """The neuron parameters with the current values of the learned ones."""
        if not self.learn:
            return self.p
        return self.p.replace(**{name: self._params[name] for name in self.learn})

    def constrain(self) -> None:
        r"""Project the learned neuron parameters back into their valid range.

        Called after each optimiser step (:func:`~numbaspike.train.fit` does). Learned
        inverse time constants and a learned threshold are clipped, in place, to

        .. math::

            10^{-3} \le \tau^{-1} \le \frac{0.95}{dt}, \qquad
            v_{th} \ge \max\left(v_{reset} + \delta,\ \operatorname{next}(v_{reset})\right)

        with :math:`\delta` = :data:`V_TH_MARGIN` and :math:`\operatorname{next}` the next
        value of the layer's dtype above ``v_reset`` rounded to it. The first keeps
        :math:`dt\,\tau^{-1} \le 0.95 < 1`, the stable-step rule of
        :func:`~numbaspike.params.check_time_step`, with room for float32 rounding (a
        relative :math:`6 \cdot 10^{-8}`). The second keeps the reset below threshold, as
        :class:`~numbaspike.params.LIFParameters` requires, in float64 and after rounding
        to float32 (for a large :math:`|v_{reset}|` the margin alone is below float32's
        resolution).
        """
        for name in self.learn:
            if name.startswith("tau"):
                lo, hi = self.dtype.type(TAU_INV_MIN), self.dtype.type(0.95 / self.dt)
                np.clip(self._params[name], lo, hi, out=self._params[name])
            elif name == "v_th":
                floor = _v_th_floor(self.p.v_reset, self.dtype)
                np.maximum(self._params[name], floor, out=self._params[name])

    def _set_sparse_tol(self, sparse_tol) -> None:
        self.sparse_tol = check_sparse_tol(sparse_tol)
        if self.sparse_tol is None:
            return
        if self.learn:
            raise ValueError(
                "sparse_tol cannot be combined with learn: the gradients of the neuron "
                "parameters need the membrane of every neuron-step"
            )
        if self.p.smooth:
            raise ValueError("sparse_tol needs binary spikes; it cannot be used with smooth=True")

    def _accumulate(self, grads) -> None:
        for name in self.learn:
            self._grads[name] += host(getattr(grads, name))

    def _config(self, kind: str) -> dict[str, Any]:
        p = {}
        for f in fields(self.p):
            if not f.init:
                continue
            value = getattr(self.p, f.name)
            p[f.name] = value.tolist() if isinstance(value, np.ndarray) else value
        cfg = {"type": kind, "n": self.n_out, "dt": self.dt, "learn": list(self.learn), "p": p}
        if getattr(self, "sparse_tol", None) is not None:
            cfg["sparse_tol"] = self.sparse_tol
        return cfg


def _lif_layer_forward(layer: _NeuronLayer, x, w_rec, out):
    """:func:`~numbaspike.lif_forward` with the layer's parameters (``w_rec``: None for a
    feed-forward layer)."""
    _no_out_on_cuda(layer, out)
    if layer.backend == "cuda":
        x = _on_device_input("x", x, layer.n_in, layer.dtype)
    else:
        x = _check_layer_input("x", x, layer.n_in, layer.dtype, check_finite=False)
    return F.lif_forward(
        x,
        layer.current_parameters(),
        layer.dt,
        w_rec=w_rec,
        param_grads=bool(layer.learn),
        sparse_tol=layer.sparse_tol,
        out=out,
        backend=layer.backend,
    )


class LIF(_NeuronLayer):
    r"""Feed-forward LIF neurons (input: currents (T, B, n); output: spikes (T, B, n)).

    Parameters
    ----------
    n : int
    p : LIFParameters, optional
    dt : float
    learn : iterable of str
        Neuron parameters to train per neuron: any of ``tau_mem_inv``, ``tau_syn_inv``,
        ``v_th``, ``v_leak``. After each optimiser step :meth:`constrain` (called by
        :func:`~numbaspike.train.fit`) keeps the learned time constants in
        :math:`[10^{-3}, 0.95/dt]` (a stable Euler step, :math:`dt\,\tau^{-1} < 1`) and a
        learned ``v_th`` at least :data:`V_TH_MARGIN` above ``p.v_reset`` (a reset must
        end below threshold); without it, a step that breaks either rule makes the next
        forward pass raise.
    dtype : float32 or float64
    sparse_tol : float >= 0, optional
        Sparse backward with a compact tape (Perez-Nieves & Goodman 2021; see
        :mod:`numbaspike.compact_tape`): surrogate derivatives at most ``sparse_tol`` times
        their peak count as 0. Not with ``learn`` nor ``p.smooth``; CPU only.
    backend : {"cpu", "cuda", "auto"}
        Where the layer runs (``"cuda"``: device arrays in and out, the functional API's
        CUDA kernels; parameters and gradients stay on the host).
    """

    _param_class = LIFParameters
    _neuron_fields = LIF_NEURON_FIELDS

    def __init__(
        self,
        n: int,
        p: LIFParameters | None = None,
        dt: float = 1e-3,
        learn=(),
        dtype=np.float32,
        sparse_tol: float | None = None,
        backend: str = "cpu",
    ):
        super().__init__(n, p, dt, learn, dtype, backend)
        self._set_sparse_tol(sparse_tol)

    def config(self) -> dict[str, Any]:
        return self._config("LIF")

    def forward(self, x, out=None):
        """Spikes (T, B, n) and the tape; ``out`` as in :func:`~numbaspike.lif_forward`
        (it may be ``x`` itself)."""
        return _lif_layer_forward(self, x, None, out)

    def backward(self, grad_y, tape, need_input_grad: bool = True, out=None):
        """dL/dx (T, B, n); ``out`` as in :func:`~numbaspike.lif_backward` (it may be
        ``grad_y`` itself)."""
        grads = F.lif_backward(grad_y, tape, out=out)
        self._accumulate(grads)
        return grads.x if need_input_grad else None


class LIFRecurrent(_NeuronLayer):
    r"""Recurrent LIF neurons: the current jump is :math:`x_t + W_{rec} z_{t-1}` (Norse ``lif_step``).

    ``w_rec`` (n, n) is owned and trained by the layer. Initialised like ``nn.Linear``
    (:math:`U(-1/\sqrt n, 1/\sqrt n)`) times ``scale`` (a finite real number);
    ``autapses=False`` keeps its diagonal 0. Other parameters (``backend`` included), and
    the range :meth:`~_NeuronLayer.constrain` keeps learned ones in, as in :class:`LIF`.
    """

    _param_class = LIFParameters
    _neuron_fields = LIF_NEURON_FIELDS

    def __init__(
        self,
        n: int,
        p: LIFParameters | None = None,
        dt: float = 1e-3,
        learn=(),
        seed=None,
        scale: float = 1.0,
        autapses: bool = True,
        dtype=np.float32,
        sparse_tol: float | None = None,
        backend: str = "cpu",
    ):
        super().__init__(n, p, dt, learn, dtype, backend)
        self._set_sparse_tol(sparse_tol)
        self.autapses = bool(autapses)
        scale = _check_scale(scale, self.dtype)
        bound = 1.0 / math.sqrt(n)
        self._add_param("w_rec", _rng(seed).uniform(-bound, bound, (n, n)) * scale)
        if not self.autapses:
            np.fill_diagonal(self._params["w_rec"], 0)

    def config(self) -> dict[str, Any]:
        cfg = self._config("LIFRecurrent")
        cfg["autapses"] = self.autapses
        return cfg

    def forward(self, x, out=None):
        """Spikes (T, B, n) and the tape; ``out`` as in :func:`~numbaspike.lif_forward`."""
        return _lif_layer_forward(self, x, self._params["w_rec"], out)

    def backward(self, grad_y, tape, need_input_grad: bool = True, out=None):
        """dL/dx (T, B, n); ``out`` as in :func:`~numbaspike.lif_backward` (it may be
        ``grad_y`` itself)."""
        grads = F.lif_backward(grad_y, tape, out=out)
        self._accumulate(grads)
        grad_w = host(grads.w_rec)
        if not self.autapses:
            np.fill_diagonal(grad_w, 0)
        self._grads["w_rec"] += grad_w
        return grads.x if need_input_grad else None


class LI(_NeuronLayer):
    """Leaky-integrator readout (input: currents (T, B, n); output: membrane (T, B, n)).

    ``learn``: any of ``tau_mem_inv``, ``tau_syn_inv``, ``v_leak``, with the time constants
    kept in range by :meth:`~_NeuronLayer.constrain` as in :class:`LIF`; ``backend`` as in
    :class:`LIF`.
    """

    _param_class = LIParameters
    _neuron_fields = LI_NEURON_FIELDS

    def __init__(
        self,
        n: int,
        p: LIParameters | None = None,
        dt: float = 1e-3,
        learn=(),
        dtype=np.float32,
        backend: str = "cpu",
    ):
        super().__init__(n, p, dt, learn, dtype, backend)

    def config(self) -> dict[str, Any]:
        return self._config("LI")

    def forward(self, x, out=None):
        """Membranes (T, B, n) and the tape; ``out`` as in :func:`~numbaspike.li_forward`."""
        _no_out_on_cuda(self, out)
        if self.backend == "cuda":
            x = _on_device_input("x", x, self.n_in, self.dtype)
        else:
            x = _check_layer_input("x", x, self.n_in, self.dtype, check_finite=False)
        return F.li_forward(
            x,
            self.current_parameters(),
            self.dt,
            param_grads=bool(self.learn),
            out=out,
            backend=self.backend,
        )

    def backward(self, grad_y, tape, need_input_grad: bool = True, out=None):
        """dL/dx (T, B, n); ``out`` as in :func:`~numbaspike.li_backward`."""
        grads = F.li_backward(grad_y, tape, out=out)
        self._accumulate(grads)
        return grads.x if need_input_grad else None
