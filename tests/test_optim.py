"""Optimisers and gradient clipping against torch.optim / torch.nn.utils, and state round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from numbaspike.optim import SGD, Adam, AdamW, clip_grad_norm

SHAPES = {"w_in": (6, 4), "w_rec": (4, 4), "tau_mem_inv": (4,), "v_th": ()}
STEPS = 20

CONFIGS = [
    ("sgd", SGD, torch.optim.SGD, dict(lr=0.05)),
    ("sgd_momentum", SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9)),
    ("sgd_nesterov", SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True)),
    ("sgd_wd", SGD, torch.optim.SGD, dict(lr=0.05, weight_decay=0.1)),
    ("sgd_dampening", SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.3)),
    (
        "sgd_all",
        SGD,
        torch.optim.SGD,
        dict(lr=0.05, momentum=0.7, dampening=0.1, weight_decay=0.05),
    ),
    ("adam", Adam, torch.optim.Adam, dict(lr=0.01)),
    ("adam_wd", Adam, torch.optim.Adam, dict(lr=0.01, weight_decay=0.1)),
    ("adam_amsgrad", Adam, torch.optim.Adam, dict(lr=0.01, amsgrad=True)),
    (
        "adam_all",
        Adam,
        torch.optim.Adam,
        dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05, amsgrad=True),
    ),
    ("adam_low_beta1", Adam, torch.optim.Adam, dict(lr=0.01, betas=(0.3, 0.9))),
    ("adamw", AdamW, torch.optim.AdamW, dict(lr=0.01)),
    ("adamw_amsgrad", AdamW, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
]
IDS = [c[0] for c in CONFIGS]


def make_params(seed: int, dtype) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: np.asarray(rng.normal(size=s), dtype=dtype) for k, s in SHAPES.items()}


def grad_sequence(seed: int, dtype, steps: int = STEPS) -> list[dict[str, np.ndarray]]:
    """Random gradients with a varying scale (and a shrinking one, to exercise AMSGrad)."""
    rng = np.random.default_rng(seed + 1)
    seq = []
    for t in range(steps):
        scale = 2.0 / (1 + t) if t % 3 else 1.0
        seq.append(
            {k: np.asarray(scale * rng.normal(size=s), dtype=dtype) for k, s in SHAPES.items()}
        )
    return seq


def run_torch(tcls, kwargs, params0, grads, lr_schedule=None):
    tparams = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params0.items()}
    opt = tcls(list(tparams.values()), **kwargs)
    for t, g in enumerate(grads):
        if lr_schedule is not None:
            for group in opt.param_groups:
                group["lr"] = lr_schedule(t)
        for k, p in tparams.items():
            p.grad = torch.tensor(g[k])
        opt.step()
    return {k: p.detach().numpy() for k, p in tparams.items()}


def run_ours(cls, kwargs, params0, grads, lr_schedule=None):
    params = {k: v.copy() for k, v in params0.items()}
    ids = {k: id(v) for k, v in params.items()}
    opt = cls(params, **kwargs)
    for t, g in enumerate(grads):
        if lr_schedule is not None:
            opt.lr = lr_schedule(t)
        opt.step(g)
    assert {k: id(v) for k, v in params.items()} == ids  # updated in place, same objects
    assert opt.step_count == len(grads)
    return params


def assert_params_close(ours, ref, dtype):
    for k in SHAPES:
        assert ours[k].dtype == dtype and ours[k].shape == ref[k].shape
        if dtype == np.float64:
            np.testing.assert_allclose(ours[k], ref[k], rtol=1e-12, atol=1e-14, err_msg=k)
        else:
            # float32 rounding: PyTorch's vectorised kernels use fused multiply-adds, so the
            # two runs differ by a few ulp of the parameter magnitude (~1)
            np.testing.assert_allclose(ours[k], ref[k], rtol=1e-6, atol=1e-6, err_msg=k)


def adam_numpy_reference(kwargs, params0, grads, decoupled=False):
    """Adam written as NumPy array expressions, in PyTorch's order of operations (the
    implementation that the one-pass kernel of numbaspike.kernels.adam replaced)."""
    lr, eps, wd = kwargs.get("lr", 1e-3), kwargs.get("eps", 1e-8), kwargs.get("weight_decay", 0)
    beta1, beta2 = kwargs.get("betas", (0.9, 0.999))
    amsgrad = kwargs.get("amsgrad", False)
    params = {k: v.copy() for k, v in params0.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v2 = {k: np.zeros_like(v) for k, v in params.items()}
    vmax = {k: np.zeros_like(v) for k, v in params.items()}
    for step, g_all in enumerate(grads, start=1):
        step_size = lr / (1 - beta1**step)
        bc2_sqrt = (1 - beta2**step) ** 0.5
        for k, p in params.items():
            t, g = p.dtype.type, g_all[k]
            if wd != 0:
                if decoupled:
                    p *= t(1 - lr * wd)
                else:
                    g = g + t(wd) * p
            w = t(1 - beta1)
            if abs(1 - beta1) < 0.5:  # at::lerp
                m[k] += w * (g - m[k])
            else:
                m[k] = g - (g - m[k]) * (t(1.0) - w)
            v2[k] *= t(beta2)
            v2[k] += t(1 - beta2) * g * g
            if amsgrad:
                np.maximum(vmax[k], v2[k], out=vmax[k])
                denom = np.sqrt(vmax[k])
            else:
                denom = np.sqrt(v2[k])
            denom /= t(bc2_sqrt)
            denom += t(eps)
            upd = t(-step_size) * m[k]
            upd /= denom
            p += upd
    return params


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("name", "cls", "tcls", "kwargs"),
    [c for c in CONFIGS if c[1] is not SGD],
    ids=[c[0] for c in CONFIGS if c[1] is not SGD],
)
def test_adam_kernel_is_bitwise_the_numpy_expressions(name, cls, tcls, kwargs, dtype):
    params0 = make_params(3, dtype)
    grads = grad_sequence(3, dtype)
    ours = run_ours(cls, kwargs, params0, grads)
    ref = adam_numpy_reference(
        {"weight_decay": 1e-2, **kwargs} if cls is AdamW else kwargs,
        params0,
        grads,
        decoupled=cls is AdamW,
    )
    for k in SHAPES:
        np.testing.assert_array_equal(ours[k], ref[k], err_msg=k)


@pytest.mark.parametrize("cls", [Adam, AdamW])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_kernel_in_parallel_blocks_is_bitwise_the_numpy_expressions(cls, amsgrad):
    """A parameter from PARALLEL_MIN_SIZE entries is updated in blocks on both threads
    (and a short last block): the same bits as the NumPy expressions, with 1 or 2 threads."""
    import numbaspike
    from numbaspike.kernels import adam

    size = 5 * adam.BLOCK + 77
    assert size >= adam.PARALLEL_MIN_SIZE
    rng = np.random.default_rng(7)
    params0 = {"w": rng.normal(size=size).astype(np.float32)}
    grads = [{"w": (rng.normal(size=size) / (1 + t)).astype(np.float32)} for t in range(4)]
    kwargs = dict(lr=0.01, weight_decay=0.05, amsgrad=amsgrad)
    ref = adam_numpy_reference(kwargs, params0, grads, decoupled=cls is AdamW)
    before = numbaspike.get_num_threads()
    try:
        for threads in (1, before):
            numbaspike.set_num_threads(threads)
            ours = run_ours(cls, kwargs, params0, grads)
            np.testing.assert_array_equal(ours["w"], ref["w"], err_msg=f"{threads} threads")
    finally:
        numbaspike.set_num_threads(before)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("name", "cls", "tcls", "kwargs"), CONFIGS, ids=IDS)
def test_matches_torch_optim(name, cls, tcls, kwargs, dtype):
    params0 = make_params(0, dtype)
    grads = grad_sequence(0, dtype)
    ours = run_ours(cls, kwargs, params0, grads)
    ref = run_torch(tcls, kwargs, params0, grads)
    assert_params_close(ours, ref, dtype)
    moved = max(np.abs(ours[k] - params0[k]).max() for k in SHAPES)
    assert moved > 1e-2  # the comparison is not vacuous


@pytest.mark.parametrize(("name", "cls", "tcls", "kwargs"), CONFIGS[::3], ids=IDS[::3])
def test_learning_rate_schedule_matches_torch(name, cls, tcls, kwargs):
    params0 = make_params(3, np.float64)
    grads = grad_sequence(3, np.float64)

    def schedule(t):
        return kwargs["lr"] * (0.5 ** (t // 5))

    ours = run_ours(cls, kwargs, params0, grads, schedule)
    ref = run_torch(tcls, kwargs, params0, grads, schedule)
    assert_params_close(ours, ref, np.float64)


def test_adamw_default_weight_decay_and_adam_decoupled_flag():
    params0 = make_params(5, np.float64)
    grads = grad_sequence(5, np.float64)
    a = run_ours(AdamW, dict(lr=0.01), params0, grads)
    b = run_ours(
        Adam, dict(lr=0.01, weight_decay=1e-2, decoupled_weight_decay=True), params0, grads
    )
    c = run_ours(Adam, dict(lr=0.01, weight_decay=1e-2), params0, grads)
    for k in SHAPES:
        np.testing.assert_array_equal(a[k], b[k])
    assert any(not np.array_equal(a[k], c[k]) for k in SHAPES)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("name", "cls", "tcls", "kwargs"), CONFIGS, ids=IDS)
def test_state_dict_npz_round_trip_is_bit_identical(name, cls, tcls, kwargs, dtype, tmp_path):
    params0 = make_params(1, dtype)
    grads = grad_sequence(1, dtype)
    half = STEPS // 2

    full = run_ours(cls, kwargs, params0, grads)

    params = {k: v.copy() for k, v in params0.items()}
    opt = cls(params, **kwargs)
    for g in grads[:half]:
        opt.step(g)
    state = opt.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    np.savez(tmp_path / "opt.npz", **state)
    np.savez(tmp_path / "params.npz", **params)
    del opt, params

    with np.load(tmp_path / "params.npz", allow_pickle=False) as f:
        params = {k: f[k] for k in SHAPES}
    fresh = cls(params, lr=123.0)  # hyper-parameters come back from the state dict
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as f:
        fresh.load_state_dict(f)
    assert fresh.lr == kwargs["lr"] and fresh.step_count == half
    for g in grads[half:]:
        fresh.step(g)
    for k in SHAPES:
        assert params[k].dtype == dtype
        np.testing.assert_array_equal(params[k], full[k], err_msg=k)


def test_state_dict_is_a_copy_and_load_does_not_alias():
    params = make_params(2, np.float64)
    opt = Adam(params, lr=0.01)
    opt.step(grad_sequence(2, np.float64, 1)[0])
    state = opt.state_dict()
    assert set(state) == {"step"} | {f"hparams/{h}" for h in opt.hparams()} | {
        f"{b}/{k}" for b in ("exp_avg", "exp_avg_sq") for k in SHAPES
    }
    state["exp_avg/w_in"][...] = 7.0
    assert not np.any(opt.state["exp_avg"]["w_in"] == 7.0)
    opt.load_state_dict(state)
    state["exp_avg/w_in"][...] = 8.0
    assert np.all(opt.state["exp_avg"]["w_in"] == 7.0)


def test_state_dict_before_first_step_round_trips():
    params0 = make_params(4, np.float64)
    grads = grad_sequence(4, np.float64, 3)
    for cls, kw in [(SGD, dict(lr=0.1, momentum=0.9)), (Adam, dict(lr=0.1))]:
        a = {k: v.copy() for k, v in params0.items()}
        b = {k: v.copy() for k, v in params0.items()}
        opt_a, opt_b = cls(a, **kw), cls(b, **kw)
        opt_b.load_state_dict(opt_a.state_dict())
        for g in grads:
            opt_a.step(g)
            opt_b.step(g)
        for k in SHAPES:
            np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(dtype, max_norm):
    grads = grad_sequence(7, dtype, 1)[0]
    tparams = [
        torch.zeros(s, dtype=torch.from_numpy(np.zeros(1, dtype)).dtype) for s in SHAPES.values()
    ]
    for p, k in zip(tparams, SHAPES, strict=True):
        p.grad = torch.tensor(grads[k].copy())
    ref_total = float(torch.nn.utils.clip_grad_norm_(tparams, max_norm))
    ids = {k: id(v) for k, v in grads.items()}
    total = clip_grad_norm(grads, max_norm)
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    assert total == pytest.approx(ref_total, rel=rtol)
    assert {k: id(v) for k, v in grads.items()} == ids
    for p, k in zip(tparams, SHAPES, strict=True):
        assert grads[k].dtype == dtype
        np.testing.assert_allclose(grads[k], p.grad.numpy(), rtol=rtol, atol=rtol * 1e-3)
    new_total = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads.values()))
    assert new_total <= max_norm * (1 + 1e-6)
    if max_norm > total:
        assert new_total == pytest.approx(total, rel=rtol)


def test_clip_grad_norm_edge_cases():
    assert clip_grad_norm({}, 1.0) == 0.0
    zeros = {"a": np.zeros(3)}
    assert clip_grad_norm(zeros, 1.0) == 0.0 and not zeros["a"].any()
    bad = {"a": np.ones(3), "b": np.array([1.0, np.nan])}
    with pytest.raises(ValueError, match="'b'"):
        clip_grad_norm(bad, 1.0)
    assert np.isnan(clip_grad_norm(bad, 1.0, error_if_nonfinite=False))
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm({"a": np.ones(3)}, -1.0)
    with pytest.raises(TypeError, match="'a'"):
        clip_grad_norm({"a": [1.0, 2.0]}, 1.0)


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (SGD, dict(lr=-0.1), "lr"),
        (SGD, dict(lr=float("nan")), "lr"),
        (SGD, dict(lr=0.1, momentum=-0.5), "momentum"),
        (SGD, dict(lr=0.1, nesterov=True), "nesterov"),
        (SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
        (SGD, dict(lr=0.1, weight_decay=-1.0), "weight_decay"),
        (Adam, dict(lr=-1.0), "lr"),
        (Adam, dict(betas=(1.0, 0.999)), r"betas\[0\]"),
        (Adam, dict(betas=(0.9, -0.1)), r"betas\[1\]"),
        (Adam, dict(betas=0.9), "betas"),
        (Adam, dict(eps=-1e-8), "eps"),
        (Adam, dict(weight_decay=-0.1), "weight_decay"),
        (AdamW, dict(betas=(0.9, 1.5)), r"betas\[1\]"),
    ],
)
def test_bad_hyperparameters(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(make_params(0, np.float64), **kwargs)


def test_lr_attribute_is_validated():
    opt = Adam(make_params(0, np.float64))
    opt.lr = 0.5
    assert opt.lr == 0.5 and opt.state_dict()["hparams/lr"] == 0.5
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -1e-3
    assert opt.lr == 0.5


def test_bad_params():
    with pytest.raises(TypeError, match="params"):
        SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(ValueError, match="empty"):
        SGD({}, lr=0.1)
    with pytest.raises(TypeError, match="'w'"):
        SGD({"w": [1.0, 2.0]}, lr=0.1)
    with pytest.raises(TypeError, match="'w'"):
        SGD({"w": np.zeros(3, dtype=np.int64)}, lr=0.1)
    frozen = np.zeros(3)
    frozen.setflags(write=False)
    with pytest.raises(ValueError, match="'w'"):
        SGD({"w": frozen}, lr=0.1)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_bad_grads_leave_everything_untouched(cls):
    params = make_params(0, np.float32)
    before = {k: v.copy() for k, v in params.items()}
    opt = cls(params, lr=0.1)
    good = grad_sequence(0, np.float32, 1)[0]
    missing = {k: v for k, v in good.items() if k != "w_rec"}
    with pytest.raises(ValueError, match="'w_rec'"):
        opt.step(missing)
    with pytest.raises(ValueError, match="'extra'"):
        opt.step({**good, "extra": np.zeros(2)})
    with pytest.raises(ValueError, match="'tau_mem_inv'"):
        opt.step({**good, "tau_mem_inv": np.zeros(5)})
    nan = {**good, "v_th": np.array(np.nan, dtype=np.float32)}
    with pytest.raises(ValueError, match="'v_th'.*NaN"):
        opt.step(nan)
    inf = {k: v.copy() for k, v in good.items()}
    inf["w_in"][2, 1] = -np.inf
    with pytest.raises(ValueError, match=r"'w_in'.*inf.*\(2, 1\)"):
        opt.step(inf)
    assert opt.step_count == 0
    for k in SHAPES:
        np.testing.assert_array_equal(params[k], before[k])
    opt.step(good)  # and it still works
    assert opt.step_count == 1


def test_float64_grads_are_cast_to_float32_params():
    p32 = make_params(0, np.float32)
    g64 = grad_sequence(0, np.float64, 3)
    g32 = [{k: v.astype(np.float32) for k, v in g.items()} for g in g64]
    a = run_ours(Adam, dict(lr=0.01), p32, g64)
    b = run_ours(Adam, dict(lr=0.01), p32, g32)
    for k in SHAPES:
        assert a[k].dtype == np.float32
        np.testing.assert_array_equal(a[k], b[k])


def test_bad_state_dict():
    params = make_params(0, np.float64)
    opt = Adam(params, lr=0.01, amsgrad=True)
    opt.step(grad_sequence(0, np.float64, 1)[0])
    good = opt.state_dict()
    other = Adam(make_params(0, np.float64), lr=0.5)
    with pytest.raises(ValueError, match="'step'"):
        other.load_state_dict({k: v for k, v in good.items() if k != "step"})
    with pytest.raises(ValueError, match="max_exp_avg_sq/w_rec"):
        other.load_state_dict({k: v for k, v in good.items() if k != "max_exp_avg_sq/w_rec"})
    with pytest.raises(ValueError, match="exp_avg/w_in"):
        other.load_state_dict({**good, "exp_avg/w_in": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="unexpected key 'exp_avg/nope'"):
        other.load_state_dict({**good, "exp_avg/nope": np.zeros(3)})
    with pytest.raises(ValueError, match="betas"):
        other.load_state_dict({**good, "hparams/beta1": np.array(1.5)})
    # a failed load leaves the optimiser as it was
    assert other.lr == 0.5 and other.step_count == 0 and not other.amsgrad and other.state == {}
    other.load_state_dict(good)
    assert other.amsgrad and other.step_count == 1


def test_adam_with_eps_zero_matches_torch_and_names_a_zero_over_zero():
    params = make_params(0, np.float64)
    ref = {k: torch.tensor(v) for k, v in make_params(0, np.float64).items()}
    opt = Adam(params, lr=0.01, eps=0.0)
    topt = torch.optim.Adam(list(ref.values()), lr=0.01, eps=0.0)
    for grads in grad_sequence(3, np.float64, steps=3):
        opt.step(grads)
        for k, t in ref.items():
            t.grad = torch.tensor(grads[k])
        topt.step()
    for k, t in ref.items():
        np.testing.assert_allclose(
            params[k], t.detach().numpy(), rtol=1e-12, atol=1e-14, err_msg=k
        )
    # a gradient that has always been 0 somewhere: m / sqrt(v) = 0 / 0 there
    zero = {k: np.zeros_like(v) for k, v in params.items()}
    fresh = Adam(make_params(1, np.float64), lr=0.01, eps=0.0)
    with pytest.raises(FloatingPointError, match="eps=0 made parameter 'w_in' non-finite"):
        fresh.step(zero)
