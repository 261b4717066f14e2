"""CUDA driver of the generic neuron models: it must reproduce the CPU driver.

For every registered model that runs on the generic driver
(:func:`numbaspike.models.registered_models`, so a new model enrols by being registered; LIF
and LI have tuned CUDA kernels of their own, checked in ``test_cuda.py``), feed-forward and recurrent, both resets, smooth and not:

* the launchers of :func:`numbaspike.kernels.neuron_driver_cuda.cuda_kernels` against those
  of :func:`numbaspike.kernels.neuron_driver.cpu_kernels` on the same arrays (output,
  state, tape; input gradient, state adjoints, parameter accumulators);
* :func:`numbaspike.neuron_cuda.neuron_forward_cuda` / ``neuron_backward_cuda`` against
  :func:`numbaspike.neuron.neuron_forward` / ``neuron_backward`` (default and given state,
  scalar and per-neuron parameters, host and device inputs, final-state gradients).

float64, to 1e-12 relative to the largest magnitude; spikes exactly. Run with
``NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cuda tests/test_neuron_cuda.py`` (numba's
simulator: tiny shapes) or on a GPU. Launches use a small grid (8 threads per block, at most
2 blocks) so that every kernel grid-strides and hits its bounds guard. The PTX test compiles
every model's kernels with the real CUDA compiler (NVVM, no GPU needed) in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from numbaspike import backend
from numbaspike.kernels.neuron_driver import cpu_kernels
from numbaspike.models import registered_models
from numbaspike.neuron import _initial_state, neuron_backward, neuron_forward

pytestmark = pytest.mark.cuda

SKIP_REASON = (
    "CUDA is not available: no GPU here and NUMBA_ENABLE_CUDASIM is not set; run "
    "`NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cuda tests/test_neuron_cuda.py`"
)
requires_cuda = pytest.mark.skipif(not backend.cuda_available(), reason=SKIP_REASON)

MODELS = sorted(name for name, m in registered_models().items() if m.specialised is None)
T, B, N = 6, 2, 3
DT = 2e-3  # a_m = 0.2, a_s = 0.4 at the default rates: neurons fire within the 6 steps
ALPHA = 5.0  # wide surrogates, so that most steps carry gradient
RTOL = 1e-12
DTYPE = np.float64


def host(a):
    return a if a is None or isinstance(a, float) else backend.to_host(a)


def assert_close(actual, expected, what: str) -> None:
    """Relative agreement, measured against the largest magnitude of ``expected``."""
    actual = np.asarray(host(actual))
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, what
    assert actual.dtype == expected.dtype, what
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def make_params(model, rng, *, reset="zero", smooth=False, per_neuron=True):
    """The model's default parameters, perturbed per neuron (or as scalars), with the modes.

    The reset is detached in smooth mode only and the surrogate is always SuperSpike, so that
    the tests need few mode combinations: the CPU kernels compile once per combination (tens
    of seconds each); the PTX test compiles other surrogates for the GPU."""
    p = model.parameters()
    values = {}
    for name in type(p).neuron_fields:
        default = float(np.asarray(getattr(p, name)))
        spread = (
            default * rng.uniform(0.8, 1.2, N) if default != 0.0 else rng.uniform(-0.1, 0.1, N)
        )
        values[name] = spread if per_neuron else float(spread[0])
    return p.replace(
        **values, v_reset=-0.2, surrogate="superspike", alpha=ALPHA, reset=reset,
        detach_reset=smooth, smooth=smooth,
    )  # fmt: skip


def spiking_input(model, p, rng, w_rec=None) -> np.ndarray:
    """An input whose scale puts the CPU run in a spiking regime (a fair share of spikes)."""
    noise = rng.normal(1.0, 1.0, (T, B, N))
    for gain in (1.0, 2.0, 4.0, 8.0, 16.0):
        x = gain * noise
        z, _ = neuron_forward(x, p.replace(smooth=False, detach_reset=False), DT, w_rec)
        if 0.1 <= z.mean() <= 0.7:
            return x
    raise AssertionError(f"{model.name}: no input scale gives a spiking regime")


def recurrent_weights(rng):
    return rng.normal(0.0, 1.0 / np.sqrt(N), (N, N))


# ---------------------------------------------------------------------------------------
# The launchers against the CPU kernels
# ---------------------------------------------------------------------------------------


def run_both(model, p, x, w_rec, state, gz, gstate_final, keep_tape=True, rows=(0, B)):
    """Forward and backward with the CPU kernels and the CUDA launchers on copies, over the
    batch rows ``rows[0] .. rows[1] - 1``."""
    from numbaspike.kernels.neuron_driver_cuda import cuda_kernels

    coeffs = model.make_coefficients(p, DT, N, np.dtype(DTYPE))
    modes = model.modes(p, np.dtype(DTYPE))
    recurrent = w_rec is not None
    w = w_rec if recurrent else np.zeros((0, 0))
    w_t = np.ascontiguousarray(w.T)
    slots = T if keep_tape else 1
    shapes = {"z": x.shape, "tape": (model.tape_rows, slots, B, N)}
    out = {}
    for target in ("cpu", "cuda"):
        if target == "cuda":
            forward, backward = cuda_kernels(model, modes)
            dev = backend.to_device
        else:
            forward, backward = cpu_kernels(model, modes)
            dev = np.array
        s = dev(state)
        z = dev(np.zeros(shapes["z"]))
        tape = dev(np.zeros(shapes["tape"]))
        forward(*rows, dev(x), dev(w_t), dev(coeffs), modes, s, z, tape, keep_tape)
        result = {"z": z, "state": s, "tape": tape}
        if keep_tape:
            gstate = dev(gstate_final)
            gx = dev(np.zeros(shapes["z"]))
            gp = dev(np.zeros((len(model.grad_rows), B, N)))
            backward(*rows, dev(gz), dev(w), dev(coeffs), modes, dev(state), tape, gstate, gx, gp)
            result.update(gx=gx, gstate=gstate, gp=gp)
        out[target] = result
    return out


def launcher_case(model, rng, reset, smooth, recurrent):
    p = make_params(model, rng, reset=reset, smooth=smooth)
    w_rec = recurrent_weights(rng) if recurrent else None
    x = spiking_input(model, p, rng, w_rec)
    items = {"v": rng.uniform(-0.2, 0.6, (B, N))}
    if recurrent:
        items["z"] = (rng.random((B, N)) < 0.5).astype(DTYPE)
    state = _initial_state(model, p, items, B, N, DTYPE)
    gz = rng.normal(0.0, 1.0, x.shape)
    gstate = rng.normal(0.0, 1.0, state.shape)
    if not recurrent:
        gstate[-1] = 0.0  # a feed-forward layer's spikes have no adjoint of their own
    return p, x, w_rec, state, gz, gstate


@requires_cuda
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("smooth", [False, True], ids=["step", "smooth"])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("name", MODELS)
def test_launchers_match_cpu_kernels(small_grid, rng, name, reset, smooth, recurrent):
    model = registered_models()[name]
    p, x, w_rec, state, gz, gstate = launcher_case(model, rng, reset, smooth, recurrent)
    out = run_both(model, p, x, w_rec, state, gz, gstate)
    cpu, gpu = out["cpu"], out["cuda"]
    if smooth:
        assert_close(gpu["z"], cpu["z"], "z")
    else:
        np.testing.assert_array_equal(host(gpu["z"]), cpu["z"], err_msg="spikes differ")
        assert cpu["z"].any(), "test data should be in a spiking regime"
    for key in ("state", "tape", "gx", "gstate", "gp"):
        assert_close(gpu[key], cpu[key], key)


@requires_cuda
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("name", MODELS)
def test_launchers_scratch_tape(small_grid, rng, name, recurrent):
    """``keep_tape=False``: a (K, 1, B, N) scratch that every step overwrites."""
    model = registered_models()[name]
    p, x, w_rec, state, gz, gstate = launcher_case(model, rng, "zero", False, recurrent)
    out = run_both(model, p, x, w_rec, state, gz, gstate, keep_tape=False)
    np.testing.assert_array_equal(host(out["cuda"]["z"]), out["cpu"]["z"])
    for key in ("state", "tape"):
        assert_close(out["cuda"][key], out["cpu"][key], key)


@requires_cuda
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_launchers_row_range(small_grid, rng, recurrent):
    """``b0, b1`` select the batch rows computed, as on the CPU; the others stay untouched."""
    model = registered_models()[MODELS[0]]
    p, x, w_rec, state, gz, gstate = launcher_case(model, rng, "zero", False, recurrent)
    out = run_both(model, p, x, w_rec, state, gz, gstate, rows=(1, 2))
    cpu, gpu = out["cpu"], out["cuda"]
    assert not cpu["z"][:, 0].any() and cpu["z"][:, 1].any()
    np.testing.assert_array_equal(host(gpu["z"]), cpu["z"])
    for key in ("state", "tape", "gx", "gstate", "gp"):
        assert_close(gpu[key], cpu[key], key)


@requires_cuda
def test_kernels_cached_per_model_and_modes(rng):
    from numbaspike.kernels.neuron_driver_cuda import cuda_kernels

    for name in MODELS:
        model = registered_models()[name]
        p = make_params(model, rng)
        modes = model.modes(p, np.dtype(DTYPE))
        kernels = cuda_kernels(model, modes)  # compiles nothing yet: kernels compile on launch
        assert cuda_kernels(model, model.modes(p.replace(alpha=2.0), np.dtype(DTYPE))) is kernels
        assert cuda_kernels(model, model.modes(p.replace(smooth=True), np.dtype(DTYPE))) is not (
            kernels
        )
        forward, backward = kernels
        assert forward is kernels.forward and backward is kernels.backward, name


# ---------------------------------------------------------------------------------------
# neuron_forward_cuda / neuron_backward_cuda against neuron_forward / neuron_backward
# ---------------------------------------------------------------------------------------


def compare_public(model, p, x, w_rec, state, grad_y, grad_final, *, device_inputs):
    from numbaspike.neuron_cuda import neuron_backward_cuda, neuron_forward_cuda

    z_cpu, tape_cpu = neuron_forward(x, p, DT, w_rec, state)
    g_cpu = neuron_backward(grad_y, tape_cpu, grad_final)

    def dev(a):
        return backend.to_device(a) if device_inputs and isinstance(a, np.ndarray) else a

    def dev_map(m):
        return None if m is None else {k: dev(v) for k, v in m.items()}

    z_gpu, tape_gpu = neuron_forward_cuda(dev(x), p, DT, dev(w_rec), dev_map(state), model)
    assert backend.is_device_array(z_gpu) and backend.is_device_array(tape_gpu.tape)
    g_gpu = neuron_backward_cuda(dev(grad_y), tape_gpu, dev_map(grad_final))
    if p.smooth:
        assert_close(z_gpu, z_cpu, "z")
    else:
        np.testing.assert_array_equal(host(z_gpu), z_cpu, err_msg="spikes differ")
    assert_close(tape_gpu.tape, tape_cpu.tape, "tape")
    assert_close(tape_gpu.state0, tape_cpu.state0, "state0")
    assert tape_gpu.given == tape_cpu.given and tape_gpu.modes == tape_cpu.modes
    assert sorted(tape_gpu.final_state) == sorted(tape_cpu.final_state)
    for name, value in tape_cpu.final_state.items():
        assert backend.is_device_array(tape_gpu.final_state[name]), name
        assert_close(tape_gpu.final_state[name], value, f"final {name}")
    assert sorted(g_gpu) == sorted(g_cpu)
    for name, expected in g_cpu.items():
        actual = g_gpu[name]
        if name in model.learnable:  # host values, as on the CPU
            assert type(actual) is type(expected), name
        else:
            assert backend.is_device_array(actual), name
        assert_close(actual, expected, f"grad {name}")


@requires_cuda
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("name", MODELS)
def test_public_default_state(small_grid, rng, name, recurrent):
    """Default initial state (its parameter-owned variables pass gradient to the owner),
    per-neuron parameters, host inputs."""
    model = registered_models()[name]
    p = make_params(model, rng, reset="subtract")
    w_rec = recurrent_weights(rng) if recurrent else None
    x = spiking_input(model, p, rng, w_rec)
    grad_y = rng.normal(0.0, 1.0, x.shape)
    compare_public(model, p, x, w_rec, None, grad_y, None, device_inputs=False)


@requires_cuda
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("name", MODELS)
def test_public_given_state(small_grid, rng, name, recurrent):
    """Given initial state (device arrays), scalar parameters (float gradients), smooth mode
    and dL/d(final state), with device inputs."""
    model = registered_models()[name]
    p = make_params(model, rng, smooth=True, per_neuron=False)
    w_rec = recurrent_weights(rng) if recurrent else None
    x = spiking_input(model, p, rng, w_rec)
    grad_y = rng.normal(0.0, 1.0, x.shape)
    state = {"v": rng.uniform(-0.2, 0.6, (B, N))}
    grad_final = {"v": rng.normal(0.0, 1.0, (B, N))}
    if recurrent:
        state["z"] = rng.uniform(0.0, 1.0, N)  # (N,): broadcast over the batch
        grad_final["z"] = rng.normal(0.0, 1.0, (B, N))
    compare_public(model, p, x, w_rec, state, grad_y, grad_final, device_inputs=True)


@requires_cuda
def test_public_float32(small_grid, rng):
    """float32 end to end: device arrays of float32, parameter gradients in float64 on the
    host, as on the CPU. (The simulator computes float32 steps with NumPy's scalar promotion,
    the CPU with Numba's, so the values agree only to float32 rounding.) One model: the
    plumbing is the model's, and each compile of the CPU kernels for float32 takes a minute;
    the PTX test compiles every model's kernels for float32."""
    from numbaspike.neuron_cuda import neuron_backward_cuda, neuron_forward_cuda

    model = registered_models()[MODELS[0]]
    p = make_params(model, rng)
    x = spiking_input(model, p, rng).astype(np.float32)
    grad_y = rng.normal(0.0, 1.0, x.shape).astype(np.float32)
    z_cpu, tape_cpu = neuron_forward(x, p, DT)
    g_cpu = neuron_backward(grad_y, tape_cpu)
    z_gpu, tape_gpu = neuron_forward_cuda(x, p, DT, None, None, model)
    g_gpu = neuron_backward_cuda(grad_y, tape_gpu)
    np.testing.assert_array_equal(host(z_gpu), z_cpu, err_msg="spikes differ")
    assert z_gpu.dtype == tape_gpu.tape.dtype == np.float32
    assert sorted(g_gpu) == sorted(g_cpu)
    for key, expected in g_cpu.items():
        actual = np.asarray(host(g_gpu[key]))
        assert actual.dtype == np.asarray(expected).dtype, key
        scale = float(np.max(np.abs(expected)))
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * scale, err_msg=key)


@requires_cuda
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the simulator's arithmetic on inf
def test_public_non_finite_inputs_named(small_grid, rng):
    from numbaspike.neuron_cuda import neuron_backward_cuda, neuron_forward_cuda

    model = registered_models()[MODELS[0]]
    p = make_params(model, rng)
    x = rng.normal(1.0, 1.0, (T, B, N))
    x[2, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"x contains NaN \(first at index \(2, 1, 0\)\)"):
        neuron_forward_cuda(x, p, DT, None, None, model)
    x[2, 1, 0] = 0.0
    _, tape = neuron_forward_cuda(x, p, DT, None, None, model)
    grad_y = np.ones_like(x)
    grad_y[4, 0, 2] = np.inf
    with pytest.raises(ValueError, match=r"grad_y contains inf \(first at index \(4, 0, 2\)\)"):
        neuron_backward_cuda(grad_y, tape)
    with pytest.raises(ValueError, match="grad_y must have shape"):
        neuron_backward_cuda(np.ones((T, B, N + 1)), tape)
    with pytest.raises(ValueError, match="x must have non-zero"):
        neuron_forward_cuda(np.ones((0, B, N)), p, DT, None, None, model)
    _, cpu_tape = neuron_forward(x, p, DT)
    with pytest.raises(TypeError, match="neuron_forward_cuda"):
        neuron_backward_cuda(grad_y, cpu_tape)


# ---------------------------------------------------------------------------------------
# Real CUDA compiler (no GPU needed)
# ---------------------------------------------------------------------------------------

PTX_SCRIPT = """
import sys
import numpy as np
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
from numbaspike.kernels import neuron_driver_cuda as D
from numbaspike.models import model_named

model = model_named(sys.argv[1])
p = model.parameters()
b, i64 = types.boolean, types.int64
smooth = {"surrogate": "atan", "reset": "subtract", "detach_reset": True, "smooth": True}
for changes in ({}, smooth):
    forward, backward = D.cuda_kernels(model, model.modes(p.replace(**changes), np.dtype("f8")))
    ff, current, step = forward.kernels
    ff_back, adjoint, rec_back = backward.kernels
    for ft in (types.float32, types.float64):
        a2, a3, a4 = ft[:, ::1], ft[:, :, ::1], ft[:, :, :, ::1]
        modes = types.Tuple((i64, ft, i64, b, b))  # model.modes(p, dtype), passed whole
        sigs = {
            ff: (i64, i64, a3, a2, modes, a3, a3, a4, b),
            current: (i64, i64, i64, a3, a2, a3, a2),
            step: (i64, i64, i64, i64, a2, a2, modes, a3, a3, a4),
            ff_back: (i64, i64, a3, a2, modes, a3, a4, a3, a3, a3),
            adjoint: (i64, i64, i64, a3, a2, modes, a3, a4, a3, a3, a3),
            rec_back: (i64, i64, i64, a3, a2, a3),
        }
        for kernel, sig in sigs.items():
            ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(8, 0))
            assert ".entry" in ptx, kernel.py_func.__name__
ptx, _ = cuda.compile_ptx(D._transpose.py_func, (types.float64[:, ::1],) * 2, cc=(8, 0))
print("PTX OK")
"""


@requires_cuda
@pytest.mark.parametrize("name", MODELS)
def test_model_kernels_compile_to_ptx(name):
    """Compile every kernel of the model for sm_80 with the real numba.cuda (typing + NVVM).

    The simulator runs the model's step and adjoint as Python and so cannot catch what only
    the CUDA compiler rejects (a builtin without a CUDA implementation, untypable code)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    probe = "from numba.cuda.cudadrv import nvvm; print(nvvm.is_available())"
    found = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    if found.stdout.strip() != "True":
        pytest.skip("NVVM (CUDA toolkit) not found: cannot compile the kernels to PTX here")
    out = subprocess.run(
        [sys.executable, "-c", PTX_SCRIPT, name],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if out.returncode == 0 and out.stdout.startswith("SKIP"):
        pytest.skip(out.stdout.strip())
    assert out.returncode == 0 and "PTX OK" in out.stdout, out.stderr[-4000:]
