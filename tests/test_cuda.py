"""CUDA backend: the numba.cuda kernels must reproduce the CPU kernels.

Run with ``NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cuda tests/test_cuda.py`` (numba's
simulator: every CUDA thread is a Python thread, so shapes are tiny) or on a machine with a
GPU. Without either, the kernel tests are skipped with the reason below; the backend
resolution tests need neither and always run. The PTX test compiles every kernel with the
real CUDA compiler (NVVM from the CUDA toolkit, no GPU needed) in a subprocess; it runs
with the other CUDA tests and is skipped where the toolkit is missing.

Launches use a small grid (8 threads per block, at most 2 blocks, 4×4 matrix-product tiles
on a grid of at most 2×2) so that every kernel runs several blocks, grid-strides over
(batch, neuron) and hits its bounds guard on the odd sizes used here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import numbaspike.functional as F
from numbaspike import backend
from numbaspike.params import LIFParameters, LIParameters
from numbaspike.surrogates import SURROGATE_NAMES

pytestmark = pytest.mark.cuda

SKIP_REASON = (
    "CUDA is not available: no GPU here and NUMBA_ENABLE_CUDASIM is not set; run "
    "`NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cuda tests/test_cuda.py`"
)
requires_cuda = pytest.mark.skipif(not backend.cuda_available(), reason=SKIP_REASON)

T, B = 6, 2
DT = 2e-3  # a_m = 0.2, a_s = 0.4: neurons reach the threshold within the 6 steps
ALPHA = 5.0  # wide surrogates, so that most steps carry gradient
RTOL = {np.float64: 1e-12, np.float32: 1e-5}


def host(a):
    return a if a is None or isinstance(a, float) else backend.to_host(a)


def assert_close(actual, expected, dtype, what: str) -> None:
    """Relative agreement, measured against the largest magnitude of ``expected``."""
    if expected is None:
        assert actual is None, what
        return
    if isinstance(expected, float):
        assert isinstance(actual, float), f"{what}: expected a Python float, got {type(actual)}"
    else:
        assert backend.is_device_array(actual), f"{what}: expected a device array"
    actual = np.asarray(host(actual))
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, what
    if expected.ndim:
        assert actual.dtype == expected.dtype, what
    rtol = RTOL[dtype]
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def make_inputs(rng, n, dtype, recurrent):
    x = rng.normal(1.0, 2.0, (T, B, n)).astype(dtype)
    w_rec = rng.normal(0.0, 1.0 / np.sqrt(n), (n, n)).astype(dtype) if recurrent else None
    grad = rng.normal(0.0, 1.0, (T, B, n)).astype(dtype)
    return x, w_rec, grad


def compare_lif(rng, p, n, dtype, recurrent, *, state=None, grad_final=None, param_grads=True):
    """Run forward + backward on both backends and compare everything they return."""
    x, w_rec, grad = make_inputs(rng, n, dtype, recurrent)
    z_cpu, tape_cpu = F.lif_forward(x, p, DT, w_rec, state, param_grads=param_grads)
    g_cpu = F.lif_backward(grad, tape_cpu, grad_final)
    z_gpu, tape_gpu = F.lif_forward(
        x, p, DT, w_rec, state, param_grads=param_grads, backend="cuda"
    )
    assert tape_gpu.backend == "cuda" and backend.is_device_array(z_gpu)
    g_gpu = F.lif_backward(grad, tape_gpu, grad_final)
    if p.smooth:
        assert_close(z_gpu, z_cpu, dtype, "z")
    else:
        np.testing.assert_array_equal(host(z_gpu), z_cpu, err_msg="spikes differ")
        assert 0.05 < z_cpu.mean() < 0.9, "test data should be in a spiking regime"
    assert_close(tape_gpu.h, tape_cpu.h, dtype, "tape.h")
    for k, name in enumerate(("v", "i", "z")):
        assert_close(tape_gpu.final_state[k], tape_cpu.final_state[k], dtype, f"final {name}")
    for name in ("x", "w_rec", "v0", "i0", "z0", "tau_mem_inv", "tau_syn_inv", "v_th", "v_leak"):
        assert_close(getattr(g_gpu, name), getattr(g_cpu, name), dtype, f"grad {name}")
    return z_cpu


# ---------------------------------------------------------------------------------------
# Backend resolution (no GPU needed)
# ---------------------------------------------------------------------------------------


def test_resolve_backend_names():
    assert backend.resolve_backend("cpu") == "cpu"
    assert backend.resolve_backend("auto") == ("cuda" if backend.cuda_available() else "cpu")
    for bad in ("gpu", "CUDA", "", None, 1):
        with pytest.raises(ValueError, match="backend"):
            backend.resolve_backend(bad)


def test_unknown_backend_in_functional_api():
    x = np.ones((2, 1, 3), np.float32)
    with pytest.raises(ValueError, match="backend"):
        F.lif_forward(x, backend="gpu")
    with pytest.raises(ValueError, match="backend"):
        F.li_forward(x, backend="tpu")
    with pytest.raises(ValueError, match="backend"):
        F.lif_simulate(x, backend="GPU")
    _, tape = F.lif_forward(x)
    with pytest.raises(ValueError, match="backend"):
        F.lif_backward(np.ones_like(x), tape, backend="gpu")


def test_cuda_unavailable_raises_clear_error(monkeypatch):
    monkeypatch.setattr(backend, "cuda_available", lambda: False)
    monkeypatch.setattr(backend, "_cuda_status", lambda: (False, "no driver (test)"))
    assert backend.resolve_backend("auto") == "cpu"
    with pytest.raises(RuntimeError, match=r"CUDA is not available.*numbaspike\[cuda\]"):
        backend.resolve_backend("cuda")
    x = np.ones((2, 1, 3), np.float32)
    with pytest.raises(RuntimeError, match="numba-cuda"):
        F.lif_forward(x, backend="cuda")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        backend.to_device(x)
    z, _ = F.lif_forward(x, backend="auto")  # falls back to the CPU
    assert isinstance(z, np.ndarray)


def test_host_helpers_without_cuda():
    a = np.arange(3.0)
    assert not backend.is_device_array(a)
    assert not backend.is_device_array(1.0)
    assert backend.to_host(a) is a

    class Fake:
        __cuda_array_interface__ = {"shape": (1,), "typestr": "<f4", "data": (0, False)}

    assert backend.is_device_array(Fake())


def test_import_without_cuda_driver():
    """A fresh interpreter with no simulator: import works, backend='cuda' errors (no GPU)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    code = textwrap.dedent(
        """
        import sys, numpy as np
        import numbaspike
        from numbaspike import backend
        assert "numbaspike.kernels.cuda" not in sys.modules
        if backend.cuda_available():
            print("GPU")
            sys.exit(0)
        try:
            numbaspike.lif_forward(np.ones((2, 1, 3), np.float32), backend="cuda")
        except RuntimeError as exc:
            print("ERR", exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    if out.stdout.startswith("GPU"):
        pytest.skip("a GPU is present: the no-driver error cannot be shown here")
    assert "CUDA is not available" in out.stdout and "numbaspike[cuda]" in out.stdout


PTX_SCRIPT = """
import sys
from numba import cuda, types

try:  # device functions compile for "the current device"; stand in for one
    import numba.cuda.dispatcher as dispatcher

    dispatcher.get_current_device  # noqa: B018
except (ImportError, AttributeError) as exc:
    print("SKIP: this numba.cuda has no patchable dispatcher.get_current_device:", exc)
    sys.exit(0)

class _Device:
    compute_capability = (8, 0)

dispatcher.get_current_device = lambda: _Device()
from numbaspike.kernels import cuda as K

b, i64, f64 = types.boolean, types.int64, types.float64
for ft in (types.float32, types.float64):
    a1, a2, a3, acc = ft[::1], ft[:, ::1], ft[:, :, ::1], f64[:, ::1]
    coef = (a1, a1, a1, a1, ft)
    codes = (i64, i64, f64, b)
    sigs = {
        K._lif_feed_forward_forward: (a3, *coef, *codes, a2, a2, a3, a3, a3, a3, a3, b, b, b, b),
        K._lif_recurrent_forward_step: (
            i64, a3, a2, *coef, *codes, a2, a2, a2, a3, a3, a3, a3, a3, b, b, b, b
        ),
        K._lif_feed_forward_backward: (
            a3, a3, a3, a2, *coef, *codes, b, b, a3, a2, a2, acc, acc, acc, acc
        ),
        K._lif_recurrent_backward_step: (
            i64, a3, a2, a3, a3, a2, *coef, *codes, b, b, a3, a2, a2, acc, acc, acc, acc
        ),
        K._li_forward: (a3, a1, a1, a1, a2, a2, a3, a3, a3, b, b, b),
        K._li_backward: (a3, a3, a3, a2, a1, a1, a1, b, a3, a2, a2, acc, acc, acc),
        K._reduce_batch: (acc, f64, a2, b, a1),
        K._fill: (a1, i64),
        K._copy_cast: (types.float64[::1], a1),
        K._broadcast_2d: (a2, a2),
        K._flag_nonfinite: (a1, types.int32[::1]),
        K._count_spikes: (a3, types.int64[:, ::1]),
        K._matmul_kernel(16): (a2, a2, a2, b, b, b),
    }
    for kernel, sig in sigs.items():
        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(8, 0))
        assert ".entry" in ptx, kernel.py_func.__name__
        assert "ld.local" not in ptx, f"{kernel.py_func.__name__} spills to local memory"
print("PTX OK")
"""


@requires_cuda
def test_kernels_compile_to_ptx():
    """Compile every kernel for sm_80 with the real numba.cuda (typing + NVVM), no GPU needed.

    The simulator runs kernels as Python and so cannot catch what only the CUDA compiler
    rejects (non-literal shared-array shapes, untypable unifications, ...)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    probe = "from numba.cuda.cudadrv import nvvm; print(nvvm.is_available())"
    found = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    if found.stdout.strip() != "True":
        pytest.skip("NVVM (CUDA toolkit) not found: cannot compile the kernels to PTX here")
    out = subprocess.run(
        [sys.executable, "-c", PTX_SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    if out.returncode == 0 and out.stdout.startswith("SKIP"):
        pytest.skip(out.stdout.strip())
    assert out.returncode == 0 and "PTX OK" in out.stdout, out.stderr[-4000:]


# ---------------------------------------------------------------------------------------
# Kernels against the CPU kernels
# ---------------------------------------------------------------------------------------


@requires_cuda
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matmul_tiled_kernel_matches_numpy(small_grid, rng, dtype):
    from numba import cuda

    kernels = small_grid
    m, k, n = 5, 7, 9  # none a multiple of the 4×4 tile; 2×2 grid < 3×2 tiles
    for trans_a in (False, True):
        for trans_b in (False, True):
            a = rng.normal(size=(k, m) if trans_a else (m, k)).astype(dtype)
            b = rng.normal(size=(n, k) if trans_b else (k, n)).astype(dtype)
            expected = (a.T if trans_a else a) @ (b.T if trans_b else b)
            out = cuda.to_device(np.full((m, n), np.nan, dtype))
            kernels.matmul(
                cuda.to_device(a), cuda.to_device(b), out, trans_a=trans_a, trans_b=trans_b,
                use_cupy=False,
            )  # fmt: skip
            assert_close(out, expected, dtype, f"matmul trans_a={trans_a} trans_b={trans_b}")
            kernels.matmul(
                cuda.to_device(a), cuda.to_device(b), out, trans_a=trans_a, trans_b=trans_b,
                accumulate=True, use_cupy=False,
            )  # fmt: skip
            assert_close(out, 2 * expected, dtype, "matmul accumulate")
    # other tile edges and an uncapped grid
    a = rng.normal(size=(3, 10)).astype(dtype)
    b = rng.normal(size=(10, 6)).astype(dtype)
    for tile, grid in ((2, None), (8, 1)):
        out = cuda.device_array((3, 6), dtype)
        kernels.matmul(
            cuda.to_device(a), cuda.to_device(b), out, tile=tile, max_grid=grid, use_cupy=False
        )
        assert_close(out, a @ b, dtype, f"matmul tile={tile}")


@requires_cuda
@pytest.mark.parametrize("surrogate", SURROGATE_NAMES)
def test_lif_every_surrogate(small_grid, rng, surrogate):
    p = LIFParameters(surrogate=surrogate, alpha=ALPHA)
    compare_lif(rng, p, 13, np.float64, recurrent=False)


@requires_cuda
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("detach", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_lif_reset_detach_recurrent(small_grid, rng, reset, detach, recurrent):
    p = LIFParameters(alpha=ALPHA, reset=reset, detach_reset=detach)
    compare_lif(rng, p, 11, np.float64, recurrent)


@requires_cuda
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_lif_float32(small_grid, rng, recurrent):
    p = LIFParameters(surrogate="atan", alpha=ALPHA, reset="subtract")
    compare_lif(rng, p, 37, np.float32, recurrent)


@requires_cuda
@pytest.mark.parametrize(
    ("surrogate", "recurrent", "dtype"),
    [
        ("sigmoid", False, np.float64),
        ("superspike", True, np.float64),
        ("tanh", False, np.float32),
    ],
)
def test_lif_smooth(small_grid, rng, surrogate, recurrent, dtype):
    p = LIFParameters(surrogate=surrogate, alpha=2.0, smooth=True, reset="subtract")
    compare_lif(rng, p, 9, dtype, recurrent)


@requires_cuda
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_lif_per_neuron_parameters_state_and_final_gradient(small_grid, rng, recurrent):
    n = 10
    p = LIFParameters(
        tau_mem_inv=rng.uniform(80, 150, n),
        tau_syn_inv=rng.uniform(150, 250, n),
        v_th=rng.uniform(0.8, 1.2, n),
        v_leak=rng.uniform(-0.1, 0.1, n),
        v_reset=-0.1,
        surrogate="erfc",
        alpha=ALPHA,
    )
    state = F.LIFState(
        rng.uniform(0, 0.5, (B, n)), rng.uniform(0, 1, n), (rng.random((B, n)) < 0.3) * 1.0
    )
    grad_final = (rng.normal(size=(B, n)), rng.normal(size=n))
    compare_lif(rng, p, n, np.float64, recurrent, state=state, grad_final=grad_final)
    compare_lif(rng, p, n, np.float64, recurrent, param_grads=False)


@requires_cuda
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("per_neuron", [False, True], ids=["scalar", "per_neuron"])
def test_li_matches_cpu(small_grid, rng, dtype, per_neuron):
    n = 21
    if per_neuron:
        p = LIParameters(tau_mem_inv=rng.uniform(80, 150, n), v_leak=rng.uniform(-1, 1, n))
    else:
        p = LIParameters(tau_syn_inv=150.0, v_leak=0.3)
    x, _, grad = make_inputs(rng, n, dtype, False)
    state = (rng.normal(size=(B, n)), 0.5) if per_neuron else None
    grad_final = (rng.normal(size=n), rng.normal(size=(B, n)))
    v_cpu, tape_cpu = F.li_forward(x, p, DT, state)
    v_gpu, tape_gpu = F.li_forward(x, p, DT, state, backend="cuda")
    assert_close(v_gpu, v_cpu, dtype, "v")
    for k, name in enumerate(("v", "i")):
        assert_close(tape_gpu.final_state[k], tape_cpu.final_state[k], dtype, f"final {name}")
    g_cpu = F.li_backward(grad, tape_cpu, grad_final)
    g_gpu = F.li_backward(grad, tape_gpu, grad_final)
    for name in ("x", "v0", "i0", "tau_mem_inv", "tau_syn_inv", "v_leak"):
        assert_close(getattr(g_gpu, name), getattr(g_cpu, name), dtype, f"grad {name}")


@requires_cuda
def test_launch_configuration_does_not_change_results(small_grid, rng, monkeypatch):
    """Default-sized blocks (one partly idle block) and one thread per block give the same."""
    p = LIFParameters(alpha=ALPHA)
    x, _, grad = make_inputs(rng, 7, np.float64, False)
    z_ref, tape = F.lif_forward(x, p, DT)
    gx_ref = F.lif_backward(grad, tape).x
    for tpb, blocks in ((128, 65535), (1, 3)):
        monkeypatch.setattr(small_grid, "THREADS_PER_BLOCK", tpb)
        monkeypatch.setattr(small_grid, "MAX_BLOCKS", blocks)
        z, tape = F.lif_forward(x, p, DT, backend="cuda")
        np.testing.assert_array_equal(host(z), z_ref)
        assert_close(F.lif_backward(grad, tape).x, gx_ref, np.float64, f"gx tpb={tpb}")
    with pytest.raises(ValueError, match="threads_per_block"):
        small_grid.launch_config(10, threads_per_block=0)


# ---------------------------------------------------------------------------------------
# Device arrays at the boundary
# ---------------------------------------------------------------------------------------


@requires_cuda
def test_device_arrays_in_and_out(small_grid, rng):
    from numba import cuda

    n, dtype = 6, np.float32
    p = LIFParameters(alpha=ALPHA)
    x, w_rec, grad = make_inputs(rng, n, dtype, True)
    state_host = (np.full(n, 0.1, dtype), rng.normal(size=(B, n)).astype(dtype))
    z_cpu, tape_cpu = F.lif_forward(x, p, DT, w_rec, state_host)
    g_cpu = F.lif_backward(grad, tape_cpu)
    state = tuple(cuda.to_device(s) for s in state_host)
    z, tape = F.lif_forward(cuda.to_device(x), p, DT, cuda.to_device(w_rec), state, backend="cuda")
    assert backend.is_device_array(tape.h) and backend.is_device_array(tape.final_state.v)
    np.testing.assert_array_equal(host(z), z_cpu)
    grads = F.lif_backward(cuda.to_device(grad), tape, backend="auto")
    for name in ("x", "w_rec", "v0", "i0", "z0", "tau_mem_inv", "tau_syn_inv", "v_th", "v_leak"):
        assert_close(getattr(grads, name), getattr(g_cpu, name), dtype, f"grad {name}")
    # a float64 gradient for a float32 tape is converted on the device
    grads64 = F.lif_backward(cuda.to_device(grad.astype(np.float64)), tape)
    assert_close(grads64.x, g_cpu.x, dtype, "converted grad_z")
    # the final state continues a simulation on the device
    z2, _ = F.lif_forward(cuda.to_device(x), p, DT, w_rec, tape.final_state, backend="cuda")
    z_cont, _ = F.lif_forward(x, p, DT, w_rec, tape_cpu.final_state)
    np.testing.assert_array_equal(host(z2), z_cont)
    # to_device / to_host
    dev = backend.to_device(x, np.float64)
    assert backend.is_device_array(dev) and np.dtype(dev.dtype) == np.float64
    assert backend.to_device(dev) is dev
    np.testing.assert_array_equal(backend.to_host(backend.to_device(dev, np.float32)), x)


@requires_cuda
def test_device_array_validation(small_grid):
    from numba import cuda

    good = np.ones((3, 2, 4), np.float32)
    bad = good.copy()
    bad[1, 0, 2] = np.nan
    with pytest.raises(ValueError, match=r"x contains NaN \(first at index \(1, 0, 2\)\)"):
        F.lif_forward(cuda.to_device(bad), backend="cuda")
    bad[1, 0, 2] = -np.inf
    with pytest.raises(ValueError, match="x contains inf"):
        F.li_forward(cuda.to_device(bad), backend="cuda")
    with pytest.raises(TypeError, match="x must be a float32 or float64 array"):
        F.lif_forward(cuda.to_device(good.astype(np.int32)), backend="cuda")
    with pytest.raises(ValueError, match=r"x must have shape \(T, B, N\)"):
        F.lif_forward(cuda.to_device(good[0]), backend="cuda")
    with pytest.raises(ValueError, match="x must have non-zero"):
        F.lif_forward(cuda.to_device(good[:0]), backend="cuda")
    with pytest.raises(ValueError, match="C-contiguous"):
        F.lif_forward(cuda.to_device(good).T, backend="cuda")
    with pytest.raises(ValueError, match=r"w_rec must have shape \(N, N\)"):
        F.lif_forward(good, w_rec=cuda.to_device(np.ones((4, 3))), backend="cuda")
    with pytest.raises(ValueError, match="state.v must broadcast"):
        F.lif_forward(good, state=(cuda.to_device(np.ones(3)), 0.0), backend="cuda")
    _, tape = F.lif_forward(cuda.to_device(good), backend="cuda")
    with pytest.raises(ValueError, match="grad_z must have the shape of the forward output"):
        F.lif_backward(cuda.to_device(good[:2]), tape)
    with pytest.raises(ValueError, match="grad_z contains NaN"):
        F.lif_backward(cuda.to_device(np.full_like(good, np.nan)), tape)
    with pytest.raises(ValueError, match="does not match the tape"):
        F.lif_backward(good, tape, backend="cpu")
    _, tape_li = F.li_forward(good, backend="cuda")
    with pytest.raises(ValueError, match="does not match the tape"):
        F.li_backward(good, tape_li, backend="cpu")


# ---------------------------------------------------------------------------------------
# Forward-only simulation
# ---------------------------------------------------------------------------------------


@requires_cuda
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_simulate_matches_cpu(small_grid, rng, recurrent):
    n, dtype = 9, np.float64
    p = LIFParameters(reset="subtract")
    x, w_rec, _ = make_inputs(rng, n, dtype, recurrent)
    rec = ("spikes", "v", "i")
    cpu = F.lif_simulate(x, p, DT, w_rec, record=rec, chunk=4)
    x_in = backend.to_device(x) if recurrent else x  # both host and device input
    gpu = F.lif_simulate(x_in, p, DT, w_rec, record=rec, chunk=4, backend="cuda")
    assert gpu.steps == cpu.steps == T
    np.testing.assert_array_equal(host(gpu.spike_counts), cpu.spike_counts)
    for name in ("spike_times", "spike_batch", "spike_neurons"):
        np.testing.assert_array_equal(getattr(gpu, name), getattr(cpu, name))
    np.testing.assert_array_equal(gpu.spike_raster(), cpu.spike_raster())
    assert_close(gpu.v, cpu.v, dtype, "v trace")
    assert_close(gpu.i, cpu.i, dtype, "i trace")
    for k in range(3):
        assert_close(gpu.final_state[k], cpu.final_state[k], dtype, "final state")


@requires_cuda
def test_simulate_device_inputs(small_grid, rng):
    from numba import cuda

    n, dtype = 5, np.float32
    p = LIFParameters()
    current = rng.normal(1.0, 1.0, (B, n)).astype(dtype)
    cpu = F.lif_simulate(current, p, DT, steps=7, chunk=3, record=("spikes",))
    gpu = F.lif_simulate(
        cuda.to_device(current), p, DT, steps=7, chunk=3, record=("spikes",), backend="cuda"
    )
    np.testing.assert_array_equal(host(gpu.spike_counts), cpu.spike_counts)
    assert cpu.spike_times is not None and cpu.spike_times.size > 0
    np.testing.assert_array_equal(gpu.spike_times, cpu.spike_times)
    x = rng.normal(1.0, 2.0, (T, B, n)).astype(dtype)
    chunks = iter([cuda.to_device(x[:2]), x[2:]])  # chunks: one on the device, one not
    gpu = F.lif_simulate(chunks, p, DT, record=("v",), backend="cuda")
    cpu = F.lif_simulate(x, p, DT, record=("v",))
    assert gpu.spike_times is None
    assert_close(gpu.v, cpu.v, dtype, "v trace")
    np.testing.assert_array_equal(host(gpu.spike_counts), cpu.spike_counts)
    with pytest.raises(ValueError, match="steps must be given"):
        F.lif_simulate(cuda.to_device(current), p, DT, backend="cuda")
    with pytest.raises(ValueError, match="every chunk of x must have shape"):
        F.lif_simulate(iter([x[:2], x[2:, :, :3]]), p, DT, backend="cuda")


@requires_cuda
def test_out_is_refused_on_the_cuda_backend(rng):
    x = rng.normal(1.0, 2.0, (T, B, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="out is only supported on the CPU backend"):
        F.lif_forward(x, LIFParameters(), DT, backend="cuda", out=x)
    with pytest.raises(ValueError, match="out is only supported on the CPU backend"):
        F.li_forward(x, LIParameters(), DT, backend="cuda", out=x)
    z, tape = F.lif_forward(x, LIFParameters(), DT, backend="cuda")
    g = np.ones(x.shape, np.float32)
    with pytest.raises(ValueError, match="out is only supported on the CPU backend"):
        F.lif_backward(g, tape, out=g)
    v, li_tape = F.li_forward(x, LIParameters(), DT, backend="cuda")
    with pytest.raises(ValueError, match="out is only supported on the CPU backend"):
        F.li_backward(g, li_tape, out=g)
