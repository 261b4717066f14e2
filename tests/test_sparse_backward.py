"""Sparse backward with a compact tape (``sparse_tol``, Perez-Nieves & Goodman 2021).

Oracle: ``tests/reference_torch.py`` with the surrogate derivative masked to the band
``|h - v_th| < band`` (autograd through the whole model). Also: the band is the set where
``s(u) > tol * s(0)`` (checked with the NumPy surrogates of ``tests/reference_numpy.py``), with
``tol = 0`` and a bounded surrogate the gradient equals the exact BPTT gradient, the tape holds
exactly the spikes and the active membranes, chunking and threads do not change the result,
and bad arguments are rejected.
"""

from __future__ import annotations

import zlib

import numba
import numpy as np
import pytest
import torch
from _helpers_torch import ALPHAS
from reference_numpy import surrogate_s as np_surrogate_s

import numbaspike as ns
from numbaspike import compact_tape
from numbaspike.kernels import cpu
from numbaspike.layers import LI, LIF, LIFRecurrent, Linear
from numbaspike.losses import MaxOverTimeCrossEntropy
from numbaspike.network import Sequential
from numbaspike.optim import Adam
from numbaspike.torch_reference import SURROGATES, lif_forward_torch
from numbaspike.train import train_step

T, B, N = 30, 3, 9


# tol = 0 only where "s > 0" is not decided by underflow (exp-based surrogates reach 0 in
# floating point far from threshold, at a point that depends on rounding).
BAND_CASES = [(s, tol) for s in SURROGATES for tol in (1e-3, 0.05, 0.5)] + [
    (s, 0.0) for s in ("superspike", "atan", "triangle", "boxcar")
]


@pytest.mark.parametrize("surrogate,tol", BAND_CASES)
def test_band_is_where_the_surrogate_exceeds_tol_times_its_peak(surrogate, tol):
    alpha = ALPHAS[surrogate]
    band = compact_tape.activity_band(surrogate, alpha, tol)
    peak = float(np_surrogate_s(surrogate, 0.0, alpha))
    if np.isinf(band):
        assert tol == 0.0 and surrogate not in ("triangle", "boxcar")
        assert np_surrogate_s(surrogate, 1e6, alpha) > 0.0
        return
    assert band > 0.0

    def s_both_signs(u):  # s is even; its rounding at large |u| need not be
        return max(np_surrogate_s(surrogate, u, alpha), np_surrogate_s(surrogate, -u, alpha))

    assert s_both_signs(band * (1 - 1e-9)) > tol * peak
    assert s_both_signs(band * (1 + 1e-9)) <= tol * peak


def _case(seed, recurrent, dtype=np.float64, t=T, b=B, n=N):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.8, 3.0, (t, b, n)).astype(dtype)
    w = rng.normal(0.0, 0.4, (n, n)).astype(dtype) if recurrent else None
    v0 = rng.normal(0.0, 0.3, (b, n)).astype(dtype)
    i0 = rng.normal(0.0, 0.3, (b, n)).astype(dtype)
    z0 = (rng.random((b, n)) < 0.3).astype(dtype)
    gz = rng.normal(size=(t, b, n)).astype(dtype)
    return x, w, v0, i0, z0, gz


def _torch_grads(x, w, v0, i0, z0, gz, p: ns.LIFParameters, band):
    xt = torch.tensor(x, requires_grad=True)
    wt = None if w is None else torch.tensor(w, requires_grad=True)
    v0t, i0t = torch.tensor(v0, requires_grad=True), torch.tensor(i0, requires_grad=True)
    z0t = torch.tensor(z0, requires_grad=True)
    z, _ = lif_forward_torch(
        xt, p.tau_mem_inv, p.tau_syn_inv, p.v_leak, p.v_th, p.v_reset, 1e-3, p.surrogate,
        p.alpha, p.reset, p.detach_reset, False, wt, v0t, i0t, z0t if w is not None else None,
        surrogate_band=band,
    )  # fmt: skip
    (z * torch.tensor(gz)).sum().backward()
    out = {"z": z.detach().numpy(), "x": xt.grad.numpy(), "v0": v0t.grad, "i0": i0t.grad}
    out["v0"], out["i0"] = out["v0"].numpy(), out["i0"].numpy()
    if w is not None:
        out["w_rec"], out["z0"] = wt.grad.numpy(), z0t.grad.numpy()
    return out


def _rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("reset,detach", [("zero", False), ("subtract", False), ("zero", True)])
@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("tol", [0.05, 0.5])
def test_sparse_backward_matches_autograd_with_the_masked_surrogate(
    surrogate, reset, detach, recurrent, tol
):
    p = ns.LIFParameters(surrogate=surrogate, alpha=ALPHAS[surrogate], reset=reset,
                         detach_reset=detach)  # fmt: skip
    x, w, v0, i0, z0, gz = _case(
        zlib.crc32(repr((surrogate, reset, detach, recurrent)).encode()), recurrent
    )
    state = (v0, i0, z0) if recurrent else (v0, i0)
    z, tape = ns.lif_forward(x, p, w_rec=w, state=state, sparse_tol=tol)
    assert tape.h is None and tape.compact is not None
    assert 0.01 < z.mean() < 0.5
    assert 0.0 < tape.compact.active_fraction < 1.0
    g = ns.lif_backward(gz, tape)
    ref = _torch_grads(x, w, v0, i0, z0, gz, p, tape.compact.band)
    np.testing.assert_array_equal(z, ref["z"])
    for key, got in (("x", g.x), ("v0", g.v0), ("i0", g.i0)) + (
        (("w_rec", g.w_rec), ("z0", g.z0)) if recurrent else ()
    ):
        assert _rel(got, ref[key]) < 1e-10, key
    assert g.tau_mem_inv is None and g.v_th is None


@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("surrogate", ["triangle", "boxcar"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tol_zero_with_a_bounded_surrogate_is_the_exact_gradient(surrogate, recurrent, dtype):
    p = ns.LIFParameters(surrogate=surrogate, alpha=ALPHAS[surrogate])
    x, w, v0, i0, z0, gz = _case(3, recurrent, dtype)
    z, dense_tape = ns.lif_forward(x, p, w_rec=w, param_grads=False)
    zs, tape = ns.lif_forward(x, p, w_rec=w, sparse_tol=0.0)
    np.testing.assert_array_equal(z, zs)
    exact, sparse = ns.lif_backward(gz, dense_tape), ns.lif_backward(gz, tape)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for key in ("x", "v0", "i0") + (("w_rec", "z0") if recurrent else ()):
        assert _rel(getattr(sparse, key), getattr(exact, key)) < tol, key


def test_compact_tape_holds_the_spikes_and_the_active_membranes():
    p = ns.LIFParameters(surrogate="superspike", alpha=5.0)
    x, w, *_ = _case(4, True, t=25, b=4, n=21)  # 21 neurons: a partial last byte
    _, dense = ns.lif_forward(x, p, w_rec=w, param_grads=False)
    z, tape = ns.lif_forward(x, p, w_rec=w, sparse_tol=0.2)
    ct = tape.compact
    unpacked = np.unpackbits(ct.bits, axis=2, bitorder="little")[:, :, :21]
    np.testing.assert_array_equal(unpacked, z)
    u = dense.h - p.v_th
    active = np.abs(u) < tape.compact.band
    rows = active.reshape(-1, 21)
    np.testing.assert_array_equal(np.diff(ct.row_ptr), rows.sum(axis=1))
    np.testing.assert_array_equal(ct.cols, np.nonzero(rows)[1])
    np.testing.assert_array_equal(ct.h, dense.h.reshape(-1, 21)[rows])
    assert ct.active_fraction == pytest.approx(active.mean())
    assert tape.nbytes < dense.nbytes / 2


def test_chunked_forward_gives_the_same_tape_and_gradients(monkeypatch):
    p = ns.LIFParameters(surrogate="atan", alpha=2.0, reset="subtract")
    x, w, v0, i0, z0, gz = _case(5, True, t=23, b=3, n=10)
    z1, t1 = ns.lif_forward(x, p, w_rec=w, state=(v0, i0, z0), sparse_tol=1e-2)
    monkeypatch.setattr(compact_tape, "CHUNK_ELEMENTS", 70)  # 2 steps per chunk, 12 chunks
    z2, t2 = ns.lif_forward(x, p, w_rec=w, state=(v0, i0, z0), sparse_tol=1e-2)
    np.testing.assert_array_equal(z1, z2)
    for name in ("bits", "row_ptr", "cols", "h"):
        np.testing.assert_array_equal(getattr(t1.compact, name), getattr(t2.compact, name))
    for a, b in zip(t1.final_state, t2.final_state, strict=True):
        np.testing.assert_array_equal(a, b)
    g1, g2 = ns.lif_backward(gz, t1), ns.lif_backward(gz, t2)
    np.testing.assert_array_equal(g1.x, g2.x)
    np.testing.assert_array_equal(g1.w_rec, g2.w_rec)


@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_sparse_backward_variants_and_thread_counts_agree(monkeypatch, recurrent):
    p = ns.LIFParameters(surrogate="sigmoid", alpha=5.0)
    x, w, v0, i0, z0, gz = _case(6, recurrent, np.float32, t=40, b=8, n=300)

    def run():
        z, tape = ns.lif_forward(x, p, w_rec=w, sparse_tol=1e-2)
        g = ns.lif_backward(gz, tape)
        return [z, tape.compact.h, g.x, g.v0] + ([g.w_rec, g.z0] if recurrent else [])

    monkeypatch.setattr(cpu, "SERIAL_WORK", 1 << 62)
    serial = run()
    monkeypatch.setattr(cpu, "SERIAL_WORK", 0)
    before = ns.get_num_threads()
    try:
        ns.set_num_threads(1)
        one = run()
        ns.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = run()
    finally:
        ns.set_num_threads(before)
    for a, b, c in zip(serial, one, many, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_recurrent_network_with_sparse_backward_learns_and_round_trips_its_config():
    rng = np.random.default_rng(7)
    x = (rng.random((30, 16, 12)) < 0.2).astype(np.float64)
    labels = np.arange(16) % 3
    x[:, labels == 1, :6] *= 3.0  # class-dependent input so there is something to learn
    net = Sequential(
        Linear(12, 24, seed=0, scale=8.0, dtype=np.float64),
        LIFRecurrent(24, seed=1, sparse_tol=1e-2, dtype=np.float64),
        Linear(24, 3, seed=2, dtype=np.float64),
        LI(3, dtype=np.float64),
    )
    loss_fn = MaxOverTimeCrossEntropy()
    opt = Adam(net.parameters(), lr=1e-2)
    losses = [train_step(net, x, labels, loss_fn, opt)[0] for _ in range(30)]
    assert losses[-1] < 0.8 * losses[0]
    rebuilt = Sequential.from_config(net.config())
    assert rebuilt.layers[1].sparse_tol == 1e-2


@pytest.mark.parametrize("bad", [-1e-3, float("nan"), float("inf")])
def test_bad_sparse_tol_values_are_rejected(bad):
    with pytest.raises(ValueError, match="sparse_tol"):
        ns.lif_forward(np.ones((2, 1, 3)), sparse_tol=bad)
    with pytest.raises(ValueError, match="sparse_tol"):
        LIF(3, sparse_tol=bad)


@pytest.mark.parametrize("bad", ["0.1", True, [0.1]])
def test_sparse_tol_of_the_wrong_type_is_rejected(bad):
    with pytest.raises(TypeError, match="sparse_tol"):
        ns.lif_forward(np.ones((2, 1, 3)), sparse_tol=bad)


def test_sparse_tol_conflicts_are_explained():
    x = np.ones((2, 1, 3))
    with pytest.raises(ValueError, match="smooth"):
        ns.lif_forward(x, ns.LIFParameters(smooth=True), sparse_tol=0.1)
    with pytest.raises(ValueError, match="param_grads"):
        ns.lif_forward(x, sparse_tol=0.1, param_grads=True)
    with pytest.raises(ValueError, match="CPU"):
        ns.lif_forward(x, sparse_tol=0.1, backend="cuda")
    with pytest.raises(ValueError, match="learn"):
        LIFRecurrent(3, learn=("v_th",), sparse_tol=0.1)
    with pytest.raises(ValueError, match="smooth"):
        LIF(3, ns.LIFParameters(smooth=True), sparse_tol=0.1)
    _, tape = ns.lif_forward(np.ones((2, 2, 3)), sparse_tol=0.1)
    with pytest.raises(ValueError, match="grad_z"):
        ns.lif_backward(np.ones((2, 1, 3)), tape)
