"""The serial, batch-parallel and step-parallel kernel variants agree bit for bit, and the
results do not depend on the thread count."""

import os

import numba
import numpy as np
import pytest

import numbaspike as ns
from numbaspike.kernels import cpu


def _run(x, p, w_rec):
    z, tape = ns.lif_forward(x, p, w_rec=w_rec)
    g = ns.lif_backward(np.random.default_rng(9).normal(size=z.shape).astype(x.dtype), tape)
    v, li_tape = ns.li_forward(x, ns.LIParameters(tau_mem_inv=np.linspace(50, 150, x.shape[2])))
    gl = ns.li_backward(np.random.default_rng(8).normal(size=v.shape).astype(x.dtype), li_tape)
    return (
        [z, tape.h, g.x, g.v0, g.i0, g.tau_mem_inv, g.tau_syn_inv, g.v_th, g.v_leak]
        + ([g.w_rec, g.z0] if w_rec is not None else [])
        + [v, gl.x, gl.tau_mem_inv, gl.tau_syn_inv, gl.v_leak]
    )


@pytest.fixture(params=["serial", "batchwise", "stepwise"])
def variant(request, monkeypatch):
    if request.param == "serial":
        monkeypatch.setattr(cpu, "SERIAL_WORK", 1 << 62)
    else:
        monkeypatch.setattr(cpu, "SERIAL_WORK", 0)
    if request.param == "stepwise":  # fewer batch rows than threads -> one region per step
        monkeypatch.setattr(cpu, "get_num_threads", lambda: 1 << 30)
        monkeypatch.setattr(cpu, "STEPWISE_WORK", 0)
    return request.param


# batch 22: the recurrent backward's row groups of 5 = a block of 4 rows + 1 row; the
# feed-forward kernels' chunks of the (B*N) axis then end inside batch rows
@pytest.mark.parametrize("recurrent,batch", [(False, 3), (False, 22), (True, 3), (True, 22)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_variants_are_bit_identical(variant, recurrent, dtype, batch):
    rng = np.random.default_rng(0)
    n = cpu.BLOCK + 37  # two neuron blocks, the last partial
    x = rng.normal(0.8, 3.0, (12, batch, n)).astype(dtype)
    w_rec = rng.normal(0, 0.3, (n, n)).astype(dtype) if recurrent else None
    p = ns.LIFParameters(v_th=np.linspace(0.8, 1.2, n), surrogate="atan", alpha=2.0)
    got = _run(x, p, w_rec)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(cpu, "SERIAL_WORK", 1 << 62)
        m.setattr(cpu, "get_num_threads", numba.get_num_threads)
        ref = _run(x, p, w_rec)
    assert 0.01 < got[0].mean() < 0.5
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_array_equal(a, b)


def _backward_kernel(recurrent, gz, h, i1, w_rec, coeffs, param_grads):
    batch, n = gz.shape[1:]
    dtype = gz.dtype.type
    gx, gv, gi = np.empty_like(gz), np.zeros((batch, n), dtype), np.zeros((batch, n), dtype)
    gz_rec = np.zeros((batch, n), dtype)
    param = [np.zeros((batch, n)) for _ in range(4)]
    tape = (gz, h, i1 if param_grads else np.empty((0, 0, 0), dtype), np.zeros((batch, n), dtype))
    modes = (dtype(0), 0, 0, dtype(100), False, False, param_grads)  # SuperSpike, zero reset
    if recurrent:
        cpu.lif_recurrent_backward(*tape, w_rec, *coeffs, *modes, gx, gv, gi, gz_rec, *param)
    else:
        cpu.lif_feed_forward_backward(*tape, *coeffs, *modes, gx, gv, gi, *param)
    return gx, gv, gi, gz_rec


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_default_backward_matches_the_generic_passes(variant, recurrent, dtype):
    """The default mode's one-loop adjoint (_superspike_adjoint_row) gives the bits of the
    separate spike, surrogate and adjoint passes, which the parameter-gradient mode runs."""
    rng = np.random.default_rng(4)
    steps, batch, n = 9, 22, cpu.BLOCK + 37
    gz = rng.normal(size=(steps, batch, n)).astype(dtype)
    h = rng.normal(0.9, 0.5, (steps, batch, n)).astype(dtype)
    i1 = rng.normal(size=(steps, batch, n)).astype(dtype)
    w_rec = rng.normal(0, 0.3, (n, n)).astype(dtype)
    coeffs = [rng.uniform(0.05, 0.2, n), rng.uniform(0.7, 0.9, n), np.zeros(n), np.ones(n)]
    coeffs = [c.astype(dtype) for c in coeffs]  # a_m, decay_s, v_leak, v_th
    fused = _backward_kernel(recurrent, gz, h, i1, w_rec, coeffs, False)
    generic = _backward_kernel(recurrent, gz, h, i1, w_rec, coeffs, True)
    for a, b in zip(fused, generic, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("partials_budget", [cpu.WEIGHT_GRAD_PARTIALS_BUDGET, 0])
def test_results_do_not_depend_on_thread_count(monkeypatch, partials_budget):
    """With 0 bytes for partial gradients, the recurrent weight gradient is computed by
    blocks of presynaptic neurons instead of by chunks of steps."""
    monkeypatch.setattr(cpu, "SERIAL_WORK", 0)
    monkeypatch.setattr(cpu, "WEIGHT_GRAD_PARTIALS_BUDGET", partials_budget)
    rng = np.random.default_rng(1)
    x = rng.normal(0.8, 3.0, (20, 4, 300))
    w = rng.normal(0, 0.2, (300, 300))
    before = ns.get_num_threads()
    try:
        ns.set_num_threads(1)
        one = _run(x, ns.LIFParameters(), w)
        ns.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = _run(x, ns.LIFParameters(), w)
    finally:
        ns.set_num_threads(before)
    for a, b in zip(one, many, strict=True):
        np.testing.assert_array_equal(a, b)


def test_recurrent_weight_grad_strategies_agree(monkeypatch):
    rng = np.random.default_rng(2)
    x = rng.normal(0.8, 3.0, (15, 5, 70))
    w = rng.normal(0, 0.3, (70, 70))
    by_chunks = _run(x, ns.LIFParameters(), w)[-7]
    monkeypatch.setattr(cpu, "WEIGHT_GRAD_PARTIALS_BUDGET", 0)
    by_columns = _run(x, ns.LIFParameters(), w)[-7]
    assert np.abs(by_chunks).max() > 0
    np.testing.assert_allclose(by_chunks, by_columns, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("per_neuron", [False, True], ids=["scalar", "per_neuron"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_feed_forward_chunks_match_torch(per_neuron, dtype, monkeypatch):
    """The feed-forward kernels split the flattened (B*N) axis into chunks that start and
    end inside batch rows, with per-element copies of per-neuron parameters: forward and
    every gradient (inputs, initial state, parameters) agree with PyTorch autograd."""
    import _helpers_torch as H

    monkeypatch.setattr(H, "T", 25)
    monkeypatch.setattr(H, "B", 7)
    monkeypatch.setattr(H, "N", 331)  # B*N = 2317: chunks of 1024 end at neurons 31, 62 ...
    assert H.B * H.N > 2 * cpu.FLAT_CHUNK_MIN and (cpu.FLAT_CHUNK_MIN % H.N) != 0
    case = H.make_lif_case(5, dtype, per_neuron, recurrent=False, explicit_state=True)
    for detach, reset in ((False, "zero"), (True, "subtract")):
        z, final, ours = H.run_lif_numbaspike(case, "superspike", reset, detach, False)
        z_ref, final_ref, ref = H.run_lif_torch(case, "superspike", reset, detach, False)
        np.testing.assert_array_equal(z, z_ref.numpy())
        assert H.RATE_MIN < z.mean() < H.RATE_MAX
        H.assert_grads_close(ours, ref, H.TOLERANCES[dtype], f"{reset} detach={detach}")


@pytest.mark.parametrize("n", [0, -1, 10**6, 1.5])
def test_set_num_threads_rejects_bad_values(n):
    with pytest.raises(ValueError, match="NUMBA_NUM_THREADS"):
        ns.set_num_threads(n)


def _openblas_timeout_after(code: str, env_value: str | None) -> str:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if env_value is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = env_value
    code += "; import os; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_shortens_openblas_spinning_unless_the_user_set_it():
    assert _openblas_timeout_after("import numbaspike", None) == "16"
    assert _openblas_timeout_after("import numbaspike", "28") == "28"  # the user's choice
    # NumPy first: OpenBLAS has read the environment; its pool is restarted to apply it
    assert _openblas_timeout_after("import numpy, numbaspike", None) == "16"
    assert _openblas_timeout_after("import numpy, numbaspike", "28") == "28"
    # ... but not while another Python thread might be inside a BLAS call
    busy = "import numpy, threading, time; threading.Thread(target=time.sleep, args=(1,)).start()"
    assert _openblas_timeout_after(busy + "; import numbaspike", None) == "None"


def test_import_after_numpy_restarts_openblas_with_the_short_timeout():
    import ast
    import subprocess
    import sys

    from numbaspike.runtime.openblas_spinning import loaded_openblas_paths

    if not loaded_openblas_paths():
        pytest.skip("NumPy here does not use OpenBLAS")
    code = (
        "import numpy as np; a = np.ones((256, 256)); a @ a; import ctypes, numbaspike; "
        "from numbaspike.runtime.openblas_spinning import loaded_openblas_paths as paths; "
        "print([ctypes.CDLL(p).openblas_thread_timeout() for p in paths()]); "
        "b = np.arange(65536.0).reshape(256, 256); print(float((b @ b).sum()))"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    timeouts, total = out.stdout.splitlines()
    timeouts = ast.literal_eval(timeouts)
    assert timeouts and all(t == 16 for t in timeouts)
    b = np.arange(65536.0).reshape(256, 256)
    assert float(total) == float((b @ b).sum())  # BLAS still computes after the restart


_FORK_SCRIPT = r"""
import json, multiprocessing as mp, warnings
import numpy as np
import numba
import numbaspike
from numbaspike.kernels import cpu
from numbaspike.layers import LIFRecurrent, Linear
from numbaspike.network import Sequential

cpu.SERIAL_WORK = 0  # every kernel opens parallel regions where it may

def step():
    rng = np.random.default_rng(0)
    x = (rng.random((20, 8, 60)) < 0.05).astype(np.float32)
    net = Sequential(Linear(60, 40, seed=1, scale=20), LIFRecurrent(40, seed=2, scale=2))
    z, tape = net.forward(x)
    net.backward(np.ones_like(z), tape)
    return {k: v.copy() for k, v in net.gradients().items()}

def child(conn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        grads = step()
    conn.send((grads, [str(w.message) for w in caught if w.category is RuntimeWarning]))

parent = step()
layer = numba.threading_layer()
a, b = mp.get_context("fork").Pipe()
p = mp.get_context("fork").Process(target=child, args=(b,))
p.start()
got = a.recv() if a.poll(120) else None
p.join(30)
same = got is not None and all(np.array_equal(parent[k], got[0][k]) for k in parent)
print(json.dumps({"layer": layer, "exitcode": p.exitcode, "same": same,
                  "warnings": got[1] if got else None}))
"""


@pytest.mark.parametrize("layer", [None, "workqueue"])
def test_forked_child_computes_the_same_gradients(layer):
    """GNU OpenMP does not survive fork(): a child forked after the parent's kernels ran
    must still compute (single-threaded, with a warning) instead of being terminated."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    if layer is not None:
        env["NUMBA_THREADING_LAYER"] = layer
    out = subprocess.run(
        [sys.executable, "-c", _FORK_SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["exitcode"] == 0 and res["same"], (res, out.stderr[-3000:])
    if res["layer"] == "omp":
        assert len(res["warnings"]) == 1 and "single-threaded" in res["warnings"][0]
    else:
        assert res["warnings"] == []
    if layer is not None:
        assert res["layer"] == layer


def test_default_threading_layer_is_openmp_where_it_loads():
    import subprocess
    import sys

    code = (
        "import numbaspike, numba\n"
        "from numbaspike.runtime.threads import _openmp_loads\n"
        "print(numba.config.THREADING_LAYER, _openmp_loads())"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "NUMBA_THREADING_LAYER"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    chosen, loads = out.stdout.split()
    assert chosen == ("omp" if loads == "True" else "workqueue")
    env["NUMBA_THREADING_LAYER"] = "workqueue"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split()[0] == "workqueue"  # the user's choice stands


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ({}, "30000"),  # numbaspike's default, set before Numba loads OpenMP
        ({"GOMP_SPINCOUNT": "5"}, "5"),  # the user's value stands
        ({"OMP_WAIT_POLICY": "PASSIVE"}, None),  # so does the user's wait policy
        ({"NUMBA_THREADING_LAYER": "workqueue"}, None),  # no OpenMP: nothing to set
    ],
)
def test_openmp_spin_count_default(preset, expected):
    import os
    import subprocess
    import sys

    code = "import os, numbaspike\nprint(os.environ.get('GOMP_SPINCOUNT'))"
    drop = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "NUMBA_THREADING_LAYER")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(preset)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(expected)
