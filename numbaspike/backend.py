"""Backend selection (``"cpu" | "cuda" | "auto"``) and the CUDA side of the functional API.

This is the only module of the package that imports ``numba.cuda``, and it does so lazily:
``import numbaspike`` works on a machine without a CUDA driver (or without ``numba.cuda``
at all), and only a call with ``backend="cuda"`` touches the GPU. The CUDA kernels
(:mod:`numbaspike.kernels.cuda`) are imported on first use.

* :func:`resolve_backend` turns a backend name into ``"cpu"`` or ``"cuda"``; ``"auto"`` is
  ``"cuda"`` when :func:`numba.cuda.is_available` says so. Under numba's simulator
  (``NUMBA_ENABLE_CUDASIM=1``) CUDA counts as available and the kernels run on the CPU,
  one Python thread per CUDA thread — slow, for testing only.
* :func:`to_device`, :func:`to_host` and :func:`is_device_array` move and recognise arrays;
  any object with ``__cuda_array_interface__`` (a numba ``DeviceNDArray``, a CuPy array, a
  PyTorch CUDA tensor) counts as a device array and is used without a copy.
* ``lif_forward_cuda`` and its siblings implement :func:`numbaspike.functional.lif_forward`
  & co. for ``backend="cuda"``: the same checks at the boundary (shape, dtype, contiguity,
  finiteness — the latter by a reduction kernel, copying to the host only to report the
  first bad index), the same kernels' arguments, and device arrays in the tapes, outputs
  and gradients (scalar parameter gradients are Python floats).
"""

from __future__ import annotations

import functools

import numpy as np

from . import lif_records as records
from .models.li import LIParameters
from .models.lif import LIFParameters
from .params import check_time_step
from .validation import (
    FLOAT_DTYPES,
    as_float_array,
    broadcast_state,
    check_all_finite,
    check_positive_int,
)

__all__ = [
    "BACKENDS",
    "CUDA_INSTALL_HINT",
    "cuda_available",
    "is_device_array",
    "resolve_backend",
    "to_device",
    "to_host",
]

#: Accepted values of the ``backend`` argument.
BACKENDS = ("cpu", "cuda", "auto")

#: How to get a working CUDA backend (quoted in the error when it is missing).
CUDA_INSTALL_HINT = (
    "install the 'cuda' extra with `pip install numbaspike[cuda]` (numba-cuda; CuPy is "
    "optional and speeds up the recurrent products) on a machine with an NVIDIA GPU and "
    "driver, or set NUMBA_ENABLE_CUDASIM=1 to run the CUDA kernels in numba's (slow) simulator"
)


def _numba_cuda():
    from numba import cuda

    return cuda


def _simulator_enabled() -> bool:
    from numba import config

    return bool(config.ENABLE_CUDASIM)


@functools.lru_cache(maxsize=1)
def _cuda_status() -> tuple[bool, str]:
    """``(available, reason)``; the reason says why not, for the error message."""
    try:
        cuda = _numba_cuda()
    except Exception as exc:  # numba built without CUDA support, or numba-cuda broken
        return False, f"numba.cuda cannot be imported ({type(exc).__name__}: {exc})"
    try:
        if cuda.is_available():
            return True, ""
    except Exception as exc:
        return False, f"numba.cuda.is_available() failed ({type(exc).__name__}: {exc})"
    return False, "numba.cuda found no usable CUDA driver and GPU"


def cuda_available() -> bool:
    """Whether ``backend="cuda"`` can run here (a GPU with its driver, or the simulator)."""
    return _cuda_status()[0]


def resolve_backend(backend: str) -> str:
    """Resolve a ``backend`` argument to ``"cpu"`` or ``"cuda"``.

    Parameters
    ----------
    backend : {"cpu", "cuda", "auto"}
        ``"auto"`` picks ``"cuda"`` when :func:`cuda_available`, else ``"cpu"``.

    Returns
    -------
    str
        ``"cpu"`` or ``"cuda"``.

    Raises
    ------
    ValueError
        For an unknown name.
    RuntimeError
        For ``"cuda"`` when CUDA is not available (the message says how to install it).
    """
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of 'cpu', 'cuda', 'auto'; got {backend!r}")
    if backend == "cpu":
        return "cpu"
    if backend == "auto":
        return "cuda" if cuda_available() else "cpu"
    if not cuda_available():
        reason = _cuda_status()[1] or "it was reported unavailable"
        raise RuntimeError(
            f"backend='cuda' was requested but CUDA is not available: {reason}. "
            f"To use it, {CUDA_INSTALL_HINT}."
        )
    return "cuda"


def _kernels():
    """The CUDA kernels module (imported on first use; needs a working numba.cuda)."""
    from .kernels import cuda as kernels

    return kernels


# ---------------------------------------------------------------------------------------
# Device arrays
# ---------------------------------------------------------------------------------------


def is_device_array(obj) -> bool:
    """Whether ``obj`` is a CUDA device array.

    True for anything exposing ``__cuda_array_interface__`` (numba ``DeviceNDArray``,
    CuPy arrays, PyTorch CUDA tensors, ...) and, under ``NUMBA_ENABLE_CUDASIM=1``, for the
    simulator's device arrays. Never imports ``numba.cuda`` for a host object.
    """
    if hasattr(obj, "__cuda_array_interface__"):
        return True
    if isinstance(obj, np.ndarray) or obj is None or np.isscalar(obj):
        return False
    if _simulator_enabled():
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        return isinstance(obj, FakeCUDAArray)
    return False


def _as_numba(obj):
    """A numba device array viewing the device array ``obj`` (no copy)."""
    cuda = _numba_cuda()
    if _simulator_enabled():
        return obj
    from numba.cuda.cudadrv.devicearray import DeviceNDArray

    return obj if isinstance(obj, DeviceNDArray) else cuda.as_cuda_array(obj)


def to_device(arr, dtype=None):
    """Return ``arr`` as a C-contiguous numba device array, copying host data to the GPU.

    A device array is returned as is (viewed as a numba array without a copy), or converted
    on the device when ``dtype`` differs. Needs a working CUDA backend.
    """
    resolve_backend("cuda")
    if is_device_array(arr):
        dev = _as_numba(arr)
        if dtype is not None and np.dtype(dev.dtype) != np.dtype(dtype):
            dev = _kernels().cast(dev, dtype)
        return dev
    host = np.ascontiguousarray(arr, dtype=dtype)
    return _numba_cuda().to_device(host)


def to_host(arr) -> np.ndarray:
    """Return ``arr`` as a NumPy array, copying a device array to the host."""
    if is_device_array(arr):
        return _as_numba(arr).copy_to_host()
    return np.asarray(arr)


def device_float_array(
    name: str, value, ndim: int | None = None, dtype=None, shape_doc: str = "", check_finite=True
):
    """Device counterpart of :func:`numbaspike.validation.as_float_array`.

    Host values are checked by ``as_float_array`` and copied to the device; device arrays
    are checked for dtype, rank and C-contiguity, converted on the device to ``dtype`` if
    given, and checked for NaN/inf by a reduction kernel. Errors name ``name``.
    """
    if not is_device_array(value):
        host = as_float_array(name, value, ndim, dtype, shape_doc, check_finite)
        return _numba_cuda().to_device(host)
    arr = _as_numba(value)
    kind = np.dtype(arr.dtype)
    if kind.kind not in "fiub" or kind == np.float16:
        raise TypeError(
            f"{name} must be a float32 or float64 array, got dtype {kind}"
            if dtype is None
            else f"{name} must be a real numeric array, got dtype {kind}"
        )
    if dtype is None and kind not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be a float32 or float64 array, got dtype {kind} "
            f"(convert it to float32 on the device first)"
        )
    if ndim is not None and arr.ndim != ndim:
        expected = shape_doc or f"{ndim} dimensions"
        raise ValueError(f"{name} must have shape {expected}, got shape {tuple(arr.shape)}")
    if arr.size and not arr.is_c_contiguous():
        raise ValueError(
            f"{name} must be a C-contiguous device array, got strides {tuple(arr.strides)} "
            f"for shape {tuple(arr.shape)} (make a contiguous copy on the device first)"
        )
    kernels = _kernels()
    if dtype is not None and kind != np.dtype(dtype):
        arr = kernels.cast(arr, dtype)
    if check_finite and np.dtype(arr.dtype).kind == "f" and kernels.any_nonfinite(arr):
        check_all_finite(name, arr.copy_to_host())  # raises, naming the first bad index
        raise ValueError(f"{name} contains NaN or inf")  # pragma: no cover
    return arr


def _device_input(x):
    x = device_float_array("x", x, ndim=3, shape_doc="(T, B, N)")
    if x.shape[0] == 0 or x.shape[1] == 0 or x.shape[2] == 0:
        raise ValueError(f"x must have non-zero T, B and N, got shape {tuple(x.shape)}")
    return x


def _device_w_rec(w_rec, n: int, dtype):
    doc = f"(N, N) = ({n}, {n})"
    w_rec = device_float_array("w_rec", w_rec, ndim=2, dtype=dtype, shape_doc=doc)
    if tuple(w_rec.shape) != (n, n):
        raise ValueError(f"w_rec must have shape {doc}, got {tuple(w_rec.shape)}")
    return w_rec


def _device_output_grad(name: str, grad, shape, dtype):
    grad = device_float_array(name, grad, ndim=3, dtype=dtype, shape_doc=str(tuple(shape)))
    if tuple(grad.shape) != tuple(shape):
        raise ValueError(
            f"{name} must have the shape of the forward output {tuple(shape)}, "
            f"got {tuple(grad.shape)}"
        )
    return grad


def _device_state(name: str, value, batch: int, n: int, dtype):
    """A fresh (B, N) device array from a scalar, (N,) or (B, N) host or device value."""
    if not is_device_array(value):
        return _numba_cuda().to_device(broadcast_state(name, value, batch, n, dtype))
    arr = device_float_array(name, value, dtype=dtype)
    shape = tuple(arr.shape)
    padded = (1,) * (2 - len(shape)) + shape if len(shape) <= 2 else None
    if padded is None or padded[0] not in (1, batch) or padded[1] not in (1, n):
        raise ValueError(f"{name} must broadcast to (B, N) = ({batch}, {n}), got shape {shape}")
    kernels = _kernels()
    out = kernels.empty((batch, n), dtype)
    kernels.broadcast_2d(arr, out)
    return out


def _device_coefficients(coeffs):
    """The per-neuron coefficients of ``lif_records.coefficients`` copied to the device."""
    cuda = _numba_cuda()
    return type(coeffs)(
        cuda.to_device(coeffs.a_m),
        cuda.to_device(coeffs.decay_s),
        cuda.to_device(coeffs.v_leak),
        cuda.to_device(coeffs.v_th),
        coeffs.v_reset,
    )


def _device_initial_state(state, coeffs, batch: int, n: int, dtype):
    """(v0, i0, z0, given) as fresh (B, N) device arrays (device twin of ``_initial_state``)."""
    kernels = _kernels()
    if state is None:
        v0 = kernels.empty((batch, n), dtype)
        kernels.broadcast_2d(coeffs.v_leak, v0)
        return v0, kernels.zeros((batch, n), dtype), kernels.zeros((batch, n), dtype), False
    if not isinstance(state, tuple) or len(state) not in (2, 3):
        raise TypeError("state must be a LIFState / LIState or a tuple (v, i) or (v, i, z)")
    v0 = _device_state("state.v", state[0], batch, n, dtype)
    i0 = _device_state("state.i", state[1], batch, n, dtype)
    if len(state) == 3 and state[2] is not None:
        z0 = _device_state("state.z", state[2], batch, n, dtype)
    else:
        z0 = kernels.zeros((batch, n), dtype)
    return v0, i0, z0, True


def _device_final_adjoints(grad_final_state, batch: int, n: int, dtype):
    kernels = _kernels()
    if grad_final_state is None:
        return kernels.zeros((batch, n), dtype), kernels.zeros((batch, n), dtype)
    gv = _device_state("grad_final_state.v", grad_final_state[0], batch, n, dtype)
    gi = _device_state("grad_final_state.i", grad_final_state[1], batch, n, dtype)
    return gv, gi


def _reduce_param_grad(given, acc, scale: float, extra, dtype):
    """Sum a float64 (B, N) accumulator over the batch on the device (device twin of
    ``functional._reduce_param_grad``): a Python float for a scalar parameter (summed over
    neurons on the host), else an (N,) device array of ``dtype``."""
    kernels = _kernels()
    n = acc.shape[1]
    if np.ndim(given) == 0:
        total = kernels.empty((n,), np.float64)
        kernels.reduce_batch(acc, scale, extra, total)
        return float(total.copy_to_host().sum())
    out = kernels.empty((n,), dtype)
    kernels.reduce_batch(acc, scale, extra, out)
    return out


# ---------------------------------------------------------------------------------------
# The functional API on the GPU (called by numbaspike.functional for backend="cuda")
# ---------------------------------------------------------------------------------------


def lif_forward_cuda(x, p: LIFParameters, dt: float, w_rec, state, param_grads: bool):
    """:func:`numbaspike.functional.lif_forward` with device arrays; returns ``(z, tape)``."""

    if not isinstance(p, LIFParameters):
        raise TypeError(f"p must be LIFParameters, got {type(p).__name__}")
    kernels = _kernels()
    param_grads = bool(param_grads)
    x = _device_input(x)
    dt = check_time_step(p, dt)
    n_steps, batch, n = x.shape
    dtype = np.dtype(x.dtype)
    coeffs = _device_coefficients(records.coefficients(p, dt, n, dtype))
    v, i, z_state, given = _device_initial_state(state, coeffs, batch, n, dtype)
    v0 = kernels.copy(v)
    z0 = kernels.copy(z_state)
    z = kernels.empty(x.shape, dtype)
    h = kernels.empty(x.shape, dtype)
    i1 = kernels.empty(x.shape if param_grads else (0, 0, 0), dtype)
    none = kernels.empty((0, 0, 0), dtype)
    common = (coeffs.a_m, coeffs.decay_s, coeffs.v_leak, coeffs.v_th, coeffs.v_reset)
    codes = (p.reset_code, p.surrogate_code, float(p.alpha), bool(p.smooth))
    if w_rec is None:
        kernels.lif_feed_forward_forward(
            x, *common, *codes, v, i, z, h, i1, none, none, True, True, param_grads, False
        )
        z_state = kernels.copy(z[n_steps - 1])
    else:
        w_rec = _device_w_rec(w_rec, n, dtype)
        kernels.lif_recurrent_forward(
            x, w_rec, *common, *codes, v, i, z_state, z, h, i1, none, none,
            True, True, param_grads, False,
        )  # fmt: skip
    tape = records.LIFTape(
        p=p,
        dt=dt,
        coeffs=coeffs,
        h=h,
        i1=i1 if param_grads else None,
        z=z,
        v0=v0,
        z0=z0,
        w_rec=w_rec,
        state_given=given,
        final_state=records.LIFState(v, i, z_state),
        backend="cuda",
    )
    return z, tape


def lif_backward_cuda(grad_z, tape, grad_final_state=None):
    """:func:`numbaspike.functional.lif_backward` for a tape recorded with ``backend="cuda"``."""

    kernels = _kernels()
    h = tape.h
    n_steps, batch, n = h.shape
    dtype = np.dtype(h.dtype)
    grad_z = _device_output_grad("grad_z", grad_z, h.shape, dtype)
    p, c = tape.p, tape.coeffs
    param_grads = tape.i1 is not None
    gx = kernels.empty(h.shape, dtype)
    gv, gi = _device_final_adjoints(grad_final_state, batch, n, dtype)
    acc_shape = (batch, n) if param_grads else (0, 0)
    g_am, g_decay, g_vth, g_vleak = (kernels.zeros(acc_shape, np.float64) for _ in range(4))
    i1 = tape.i1 if param_grads else kernels.empty((0, 0, 0), dtype)
    common = (c.a_m, c.decay_s, c.v_leak, c.v_th, c.v_reset)
    codes = (p.reset_code, p.surrogate_code, float(p.alpha), bool(p.smooth), bool(p.detach_reset))
    grad_w_rec = grad_z0 = None
    if tape.w_rec is None:
        kernels.lif_feed_forward_backward(
            grad_z, h, i1, tape.v0, *common, *codes, param_grads,
            gx, gv, gi, g_am, g_decay, g_vth, g_vleak,
        )  # fmt: skip
    else:
        grad_z0 = kernels.zeros((batch, n), dtype)
        kernels.lif_recurrent_backward(
            grad_z, h, i1, tape.v0, tape.w_rec, *common, *codes, param_grads,
            gx, gv, gi, grad_z0, g_am, g_decay, g_vth, g_vleak,
        )  # fmt: skip
        # dL/dW_rec = sum_t gx_t^T z_{t-1}, with z_{-1} = z0
        grad_w_rec = kernels.empty((n, n), dtype)
        kernels.matmul(gx[0], tape.z0, grad_w_rec, trans_a=True)
        if n_steps > 1:
            rows = (n_steps - 1) * batch
            kernels.matmul(
                gx[1:].reshape(rows, n),
                tape.z[: n_steps - 1].reshape(rows, n),
                grad_w_rec,
                trans_a=True,
                accumulate=True,
            )
    grads = records.LIFGradients(gx, grad_w_rec, gv, gi, grad_z0, None, None, None, None)
    if param_grads:
        extra = None if tape.state_given else gv  # v0 = v_leak: its gradient joins v_leak's
        dt = tape.dt
        grads.tau_mem_inv = _reduce_param_grad(p.tau_mem_inv, g_am, dt, None, dtype)
        grads.tau_syn_inv = _reduce_param_grad(p.tau_syn_inv, g_decay, -dt, None, dtype)
        grads.v_th = _reduce_param_grad(p.v_th, g_vth, 1.0, None, dtype)
        grads.v_leak = _reduce_param_grad(p.v_leak, g_vleak, 1.0, extra, dtype)
    return grads


def li_forward_cuda(x, p: LIParameters, dt: float, state, param_grads: bool):
    """:func:`numbaspike.functional.li_forward` with device arrays; returns ``(v, tape)``."""

    if not isinstance(p, LIParameters):
        raise TypeError(f"p must be LIParameters, got {type(p).__name__}")
    kernels = _kernels()
    param_grads = bool(param_grads)
    x = _device_input(x)
    dt = check_time_step(p, dt)
    n_steps, batch, n = x.shape
    dtype = np.dtype(x.dtype)
    coeffs = _device_coefficients(records.coefficients(p, dt, n, dtype))
    v, i, _, given = _device_initial_state(state, coeffs, batch, n, dtype)
    v0 = kernels.copy(v)
    out = kernels.empty(x.shape, dtype)
    i1 = kernels.empty(x.shape if param_grads else (0, 0, 0), dtype)
    none = kernels.empty((0, 0, 0), dtype)
    kernels.li_forward(
        x, coeffs.a_m, coeffs.decay_s, coeffs.v_leak, v, i, out, i1, none, True, param_grads, False
    )
    tape = records.LITape(
        p,
        dt,
        coeffs,
        out,
        i1 if param_grads else None,
        v0,
        given,
        records.LIState(v, i),
        backend="cuda",
    )
    return out, tape


def li_backward_cuda(grad_v, tape, grad_final_state=None):
    """:func:`numbaspike.functional.li_backward` for a tape recorded with ``backend="cuda"``."""

    kernels = _kernels()
    v_out = tape.v
    n_steps, batch, n = v_out.shape
    dtype = np.dtype(v_out.dtype)
    grad_v = _device_output_grad("grad_v", grad_v, v_out.shape, dtype)
    p, c = tape.p, tape.coeffs
    param_grads = tape.i1 is not None
    gx = kernels.empty(v_out.shape, dtype)
    gv, gi = _device_final_adjoints(grad_final_state, batch, n, dtype)
    acc_shape = (batch, n) if param_grads else (0, 0)
    g_am, g_decay, g_vleak = (kernels.zeros(acc_shape, np.float64) for _ in range(3))
    i1 = tape.i1 if param_grads else kernels.empty((0, 0, 0), dtype)
    kernels.li_backward(
        grad_v, v_out, i1, tape.v0, c.a_m, c.decay_s, c.v_leak, param_grads,
        gx, gv, gi, g_am, g_decay, g_vleak,
    )  # fmt: skip
    grads = records.LIGradients(gx, gv, gi, None, None, None)
    if param_grads:
        extra = None if tape.state_given else gv
        grads.tau_mem_inv = _reduce_param_grad(p.tau_mem_inv, g_am, tape.dt, None, dtype)
        grads.tau_syn_inv = _reduce_param_grad(p.tau_syn_inv, g_decay, -tape.dt, None, dtype)
        grads.v_leak = _reduce_param_grad(p.v_leak, g_vleak, 1.0, extra, dtype)
    return grads


def _device_input_chunks(x, steps, chunk: int):
    """Like ``lif_records.input_chunks``, also accepting a (T, B, N) or (B, N) device array."""

    if not is_device_array(x):
        yield from records.input_chunks(x, steps, chunk)
        return
    arr = _as_numba(x)
    if arr.ndim == 3:
        if steps is not None and steps != arr.shape[0]:
            raise ValueError(f"steps={steps} does not match x.shape[0]={arr.shape[0]}")
        for t0 in range(0, arr.shape[0], chunk):
            yield arr[t0 : t0 + chunk]
        return
    if arr.ndim == 2:
        if steps is None:
            raise ValueError("steps must be given when x is a constant current of shape (B, N)")
        steps = check_positive_int("steps", steps)
        current = device_float_array("x", arr, ndim=2)
        kernels = _kernels()
        rows, size = min(chunk, steps), current.size
        block = kernels.empty((rows, *current.shape), current.dtype)
        kernels.broadcast_2d(current.reshape(1, size), block.reshape(rows, size))
        for t0 in range(0, steps, chunk):
            yield block[: min(chunk, steps - t0)]
        return
    raise ValueError(
        f"x must have shape (T, B, N), or (B, N) with steps=, got shape {tuple(arr.shape)}"
    )


def _concatenate(chunks):
    """Concatenate (t, B, N) device arrays along time (device-to-device copies)."""
    if len(chunks) == 1:
        return chunks[0]
    total = sum(c.shape[0] for c in chunks)
    out = _kernels().empty((total, *chunks[0].shape[1:]), chunks[0].dtype)
    t0 = 0
    for c in chunks:
        out[t0 : t0 + c.shape[0]].copy_to_device(c)
        t0 += c.shape[0]
    return out


def lif_simulate_cuda(x, p: LIFParameters, dt: float, w_rec, state, steps, record, chunk):
    """:func:`numbaspike.functional.lif_simulate` on the GPU.

    Spike counts, traces and the final state are device arrays; the spike events
    (``spike_times``, ``spike_batch``, ``spike_neurons``) are NumPy arrays, extracted on the
    host from each chunk's spikes (one copy per chunk, none per step).
    """

    if not isinstance(p, LIFParameters):
        raise TypeError(f"p must be LIFParameters, got {type(p).__name__}")
    record = records.check_record(record)
    chunk = check_positive_int("chunk", chunk)
    dt = check_time_step(p, dt)
    kernels = _kernels()
    counts = coeffs = dtype = none = w_rec_dev = None
    v = i = z_state = None
    traces_v, traces_i, spike_events = [], [], []
    total = 0
    codes = (p.reset_code, p.surrogate_code, float(p.alpha), bool(p.smooth))
    trace = "v" in record or "i" in record
    for raw in _device_input_chunks(x, steps, chunk):
        xc = _device_input(raw)
        n_steps, batch, n = xc.shape
        if coeffs is None:
            dtype = np.dtype(xc.dtype)
            coeffs = _device_coefficients(records.coefficients(p, dt, n, dtype))
            v, i, z_state, _ = _device_initial_state(state, coeffs, batch, n, dtype)
            counts = kernels.zeros((batch, n), np.int64)
            if w_rec is not None:
                w_rec_dev = _device_w_rec(w_rec, n, dtype)
            none = kernels.empty((0, 0, 0), dtype)
        elif tuple(xc.shape[1:]) != tuple(counts.shape) or np.dtype(xc.dtype) != dtype:
            raise ValueError(
                f"every chunk of x must have shape (t, {counts.shape[0]}, {counts.shape[1]}) "
                f"and dtype {dtype}, got {tuple(xc.shape)} {np.dtype(xc.dtype)}"
            )
        z = kernels.empty(xc.shape, dtype)
        v_out = kernels.empty(xc.shape, dtype) if trace else none
        i_out = kernels.empty(xc.shape, dtype) if trace else none
        common = (coeffs.a_m, coeffs.decay_s, coeffs.v_leak, coeffs.v_th, coeffs.v_reset)
        if w_rec is None:
            kernels.lif_feed_forward_forward(
                xc, *common, *codes, v, i, z, none, none, v_out, i_out, True, False, False, trace
            )
            z_state = kernels.copy(z[n_steps - 1])
        else:
            kernels.lif_recurrent_forward(
                xc, w_rec_dev, *common, *codes, v, i, z_state, z, none, none, v_out, i_out,
                True, False, False, trace,
            )  # fmt: skip
        kernels.count_spikes(z, counts)
        if "spikes" in record:
            t_idx, b_idx, n_idx = np.nonzero(z.copy_to_host() != 0)
            spike_events.append((t_idx + total, b_idx, n_idx))
        if "v" in record:
            traces_v.append(v_out)
        if "i" in record:
            traces_i.append(i_out)
        total += n_steps
    if coeffs is None:
        raise ValueError("x holds no time steps")
    if "spikes" in record:
        events = [
            np.concatenate(part).astype(np.int64) for part in zip(*spike_events, strict=True)
        ]
    else:
        events = [None, None, None]
    return records.Simulation(
        steps=total,
        spike_counts=counts,
        spike_times=events[0],
        spike_batch=events[1],
        spike_neurons=events[2],
        v=_concatenate(traces_v) if traces_v else None,
        i=_concatenate(traces_i) if traces_i else None,
        final_state=records.LIFState(v, i, z_state),
    )
