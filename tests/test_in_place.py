"""Forward and backward passes with ``out=``: the result written into a given array, or over
the input of the pass (spikes over the input currents, dL/dx over the output gradient); the
results are bit-identical to a fresh array's, and bad ``out`` arrays are refused with an
error that names them."""

from __future__ import annotations

import numpy as np
import pytest

import numbaspike as ns
from numbaspike import layers as L
from numbaspike.kernels import cpu
from numbaspike.network import Sequential

T, B, N = 30, 5, 230  # B*N = 1150: two chunks of the feed-forward kernels


def _case(dtype, recurrent: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.6, 2.0, (T, B, N)).astype(dtype)
    w_rec = (rng.normal(0.0, 0.6 / np.sqrt(N), (N, N))).astype(dtype) if recurrent else None
    grad = (0.5 + rng.standard_normal((T, B, N))).astype(dtype)
    return x, w_rec, grad


def _lif_grads(x, w_rec, grad, p, out_kind: str, **forward):
    z, tape = ns.lif_forward(x, p, w_rec=w_rec, **forward)
    assert 0.01 < z.mean() < 0.5
    g = grad.copy()
    out = {"none": None, "given": np.full_like(g, np.nan), "in_place": g}[out_kind]
    grads = ns.lif_backward(g, tape, out=out)
    if out is not None:
        assert grads.x is out
    if out_kind != "in_place":
        np.testing.assert_array_equal(g, grad)  # the output gradient is left alone
    return grads


@pytest.mark.parametrize("serial", [True, False], ids=["serial", "parallel"])
@pytest.mark.parametrize("out_kind", ["given", "in_place"])
@pytest.mark.parametrize(
    "recurrent,param_grads,sparse_tol",
    [(False, False, None), (False, True, None), (True, False, None), (True, True, None),
     (False, None, 1e-3), (True, None, 1e-3)],
)  # fmt: skip
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lif_backward_out_is_bit_identical(
    dtype, recurrent, param_grads, sparse_tol, out_kind, serial, monkeypatch
):
    monkeypatch.setattr(cpu, "SERIAL_WORK", 1 << 62 if serial else 0)
    x, w_rec, grad = _case(dtype, recurrent)
    p = ns.LIFParameters(v_th=np.linspace(0.8, 1.2, N), reset="subtract", surrogate="atan")
    kw = {"param_grads": param_grads, "sparse_tol": sparse_tol}
    ref = _lif_grads(x, w_rec, grad, p, "none", **kw)
    got = _lif_grads(x, w_rec, grad, p, out_kind, **kw)
    for name in ("x", "w_rec", "v0", "i0", "z0", "tau_mem_inv", "tau_syn_inv", "v_th", "v_leak"):
        a, b = getattr(got, name), getattr(ref, name)
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("serial", [True, False], ids=["serial", "parallel"])
@pytest.mark.parametrize("out_kind", ["given", "in_place"])
@pytest.mark.parametrize(
    "recurrent,sparse_tol,smooth",
    [(False, None, False), (True, None, False), (False, None, True), (False, 1e-3, False),
     (True, 1e-3, False)],
)  # fmt: skip
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lif_forward_out_is_bit_identical(
    dtype, recurrent, sparse_tol, smooth, out_kind, serial, monkeypatch
):
    monkeypatch.setattr(cpu, "SERIAL_WORK", 1 << 62 if serial else 0)
    x, w_rec, grad = _case(dtype, recurrent, seed=2)
    p = ns.LIFParameters(v_th=np.linspace(0.8, 1.2, N), smooth=smooth, alpha=5.0)
    z_ref, tape_ref = ns.lif_forward(x, p, w_rec=w_rec, sparse_tol=sparse_tol)
    x_run = x.copy()
    out = x_run if out_kind == "in_place" else np.full_like(x, np.nan)
    z, tape = ns.lif_forward(x_run, p, w_rec=w_rec, sparse_tol=sparse_tol, out=out)
    assert z is out
    np.testing.assert_array_equal(z, z_ref)
    if out_kind == "given":
        np.testing.assert_array_equal(x_run, x)
    for a, b in zip(tape.final_state, tape_ref.final_state, strict=True):
        np.testing.assert_array_equal(a, b)
    got, ref = ns.lif_backward(grad, tape), ns.lif_backward(grad, tape_ref)
    for name in ("x", "w_rec", "v0", "i0", "v_th"):
        a, b = getattr(got, name), getattr(ref, name)
        if b is not None:
            np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("out_kind", ["given", "in_place"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_li_out_is_bit_identical(dtype, out_kind):
    x, _, grad = _case(dtype, False, seed=4)
    p = ns.LIParameters(tau_mem_inv=np.linspace(50.0, 150.0, N))
    v_ref, tape_ref = ns.li_forward(x, p)
    ref = ns.li_backward(grad, tape_ref)
    x_run, g = x.copy(), grad.copy()
    out = x_run if out_kind == "in_place" else np.empty_like(x)
    v, tape = ns.li_forward(x_run, p, out=out)
    assert v is out and not v.flags.writeable
    np.testing.assert_array_equal(v, v_ref)
    out = g if out_kind == "in_place" else np.empty_like(g)
    got = ns.li_backward(g, tape, out=out)
    assert got.x is out
    for name in ("x", "v0", "i0", "tau_mem_inv", "tau_syn_inv", "v_leak"):
        np.testing.assert_array_equal(getattr(got, name), getattr(ref, name), err_msg=name)


def test_layers_take_out_and_network_does_not_overwrite_callers_arrays():
    """Sequential overwrites only gradients it made itself: the caller's ``grad_y`` and
    ``output_grads`` are left as they were, and the gradients equal layer-by-layer ones."""
    rng = np.random.default_rng(3)
    net = Sequential(
        L.Linear(20, N, seed=1, scale=3.0),
        L.LIF(N),
        L.Linear(N, 12, seed=2, scale=3.0),
        L.LIFRecurrent(12, seed=3),
        L.Linear(12, 4, seed=4),
        L.LI(4),
    )
    x = rng.normal(0.5, 1.0, (T, B, 20)).astype(np.float32)
    y, tape = net.forward(x)
    grad_y = rng.standard_normal(y.shape).astype(np.float32)
    hidden = rng.standard_normal(tape.outputs[1].shape).astype(np.float32)
    kept_grad_y, kept_hidden = grad_y.copy(), hidden.copy()
    net.zero_grad()
    net.backward(grad_y, tape, output_grads={1: hidden})
    np.testing.assert_array_equal(grad_y, kept_grad_y)
    np.testing.assert_array_equal(hidden, kept_hidden)
    got = {k: v.copy() for k, v in net.gradients().items()}

    net.zero_grad()  # the same chain by hand, with fresh arrays everywhere
    g = grad_y
    for k in range(len(net) - 1, -1, -1):
        if k == 1:
            g = g + hidden
        g = net[k].backward(g, tape.tapes[k], need_input_grad=k > 0)
    for name, value in net.gradients().items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


@pytest.fixture
def lif_tape():
    x, _, grad = _case(np.float32, False)
    _, tape = ns.lif_forward(x, ns.LIFParameters(), param_grads=True)
    return tape, grad


@pytest.mark.parametrize(
    "make_out,message",
    [
        (lambda g, tape: np.empty(g.shape[1:], g.dtype), "out must have shape"),
        (lambda g, tape: np.empty(g.shape, np.float64), "dtype float32"),
        (lambda g, tape: np.empty(g.shape[::-1], g.dtype).T, "C-contiguous"),
        (lambda g, tape: _read_only(np.empty_like(g)), "writeable"),
        (lambda g, tape: list(g), "NumPy array"),
        (lambda g, tape: tape.h, "tape"),
        (lambda g, tape: tape.i1, "tape"),
    ],
)
def test_bad_out_is_named(lif_tape, make_out, message):
    tape, grad = lif_tape
    with pytest.raises((TypeError, ValueError), match=message) as err:
        ns.lif_backward(grad, tape, out=make_out(grad, tape))
    assert "out" in str(err.value)


def _read_only(a):
    a.flags.writeable = False
    return a


def test_out_overlapping_the_input_partially_is_refused(lif_tape):
    tape, _ = lif_tape
    big = np.ones((T + 1, B, N), np.float32)
    with pytest.raises(ValueError, match="out must be grad_z itself"):
        ns.lif_backward(big[1:], tape, out=big[:-1])
    with pytest.raises(ValueError, match="out must be x itself"):
        ns.lif_forward(big[1:], out=big[:-1])
    with pytest.raises(ValueError, match="out must have shape"):
        ns.li_forward(big[1:], out=big)


def test_non_finite_input_of_in_place_forward_is_reported():
    x, _, _ = _case(np.float32, False)
    x[5, 2, 9] = np.inf
    with pytest.raises(ValueError, match="x holds NaN or inf.*overwritten in place"):
        ns.lif_forward(x, out=x)


def test_non_finite_grad_in_place_is_reported(lif_tape):
    tape, grad = lif_tape
    g = _nan_at(grad)
    with pytest.raises(ValueError, match="grad_z holds NaN or inf.*overwritten in place"):
        ns.lif_backward(g, tape, out=g)
    with pytest.raises(ValueError, match=r"grad_z.*\(3, 1, 7\)"):  # without out: located
        ns.lif_backward(_nan_at(grad), tape)


def _nan_at(grad):
    g = grad.copy()
    g[3, 1, 7] = np.nan
    return g
