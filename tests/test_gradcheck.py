"""The user-facing gradient toolkit: numbaspike.gradcheck and ``numbaspike gradcheck``.

The suite must pass on the shipped kernels and must *fail* (naming the case) when a
backward pass is perturbed; check_network must pass on a small network and point at the
parameter whose gradient a broken layer corrupts; compare_surrogate_to_smooth must report
cosine 1 where the surrogate gradient is provably the true gradient.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import numbaspike.functional as functional
import numbaspike.gradcheck as gc
from numbaspike import cli
from numbaspike.layers import LI, LIF, LIFRecurrent, Linear
from numbaspike.losses import MeanOverTimeCrossEntropy, MembraneMSE
from numbaspike.network import Sequential
from numbaspike.params import LIFParameters, LIParameters

try:
    import torch  # noqa: F401

    HAVE_TORCH = True
except ImportError:  # pragma: no cover - torch is a test dependency
    HAVE_TORCH = False

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------
# the suite and the command
# --------------------------------------------------------------------------------------------


def test_cli_gradcheck_passes_on_the_lif_and_li_layers(monkeypatch, capsys):
    """The LIF/LI part of the default suite (with the PyTorch comparison when available)
    passes; the registered models' cases are in test_gradcheck_models.py and in the slow
    test below (each of their mode combinations compiles a driver: minutes in all)."""
    _small_suite(monkeypatch, models=())
    argv = ["gradcheck"] + (["--torch"] if HAVE_TORCH else [])
    rc = cli.main(argv)
    out = capsys.readouterr().out
    assert rc == 0, out
    n_cases = 2 * 7 * 2 * 2 + 1 + 7
    assert f"OK: {n_cases} cases, {n_cases} passed, 0 failed" in out
    for name in ("superspike", "boxcar", "LIFRecurrent", "Sequential", "LI"):
        assert name in out
    if HAVE_TORCH:
        assert "torch smooth" in out and "torch step" in out


@pytest.mark.slow  # ~4 minutes on 2 cores, most of it compiling the models' drivers
def test_cli_gradcheck_passes_on_shipped_kernels(capsys):
    """The whole default suite (with the PyTorch comparison when available) passes."""
    argv = ["gradcheck"] + (["--torch"] if HAVE_TORCH else [])
    rc = cli.main(argv)
    out = capsys.readouterr().out
    assert rc == 0, out
    n_models = len(gc.suite.suite_models())
    n_cases = 2 * 7 * 2 * 2 + 1 + 7 + n_models * (2 * len(gc.SUITE_MODEL_CASES) + 1)
    assert n_models >= 3  # LIFBox, LSNN, LIFRefrac at least
    assert f"OK: {n_cases} cases, {n_cases} passed, 0 failed" in out
    for name in ("superspike", "boxcar", "LIFRecurrent", "Sequential", "LI", "lsnn-rec"):
        assert name in out
    for name in ("lif_box", "lif_refrac", "Sequential(lsnn)"):
        assert name in out
    if HAVE_TORCH:
        assert "torch smooth" in out and "torch step" in out


def _small_suite(monkeypatch, **restrict):
    """Make ``numbaspike gradcheck`` run a subset of the suite (the CLI imports it lazily)."""
    monkeypatch.setattr(
        gc, "run_gradcheck_suite", functools.partial(gc.run_gradcheck_suite, **restrict)
    )


def test_cli_gradcheck_fails_when_lif_backward_is_perturbed(monkeypatch, capsys):
    """A 1e-5 relative error in one parameter gradient is enough to fail, and is named."""
    original = functional.lif_backward

    def perturbed(grad_z, tape, grad_final_state=None):
        grads = original(grad_z, tape, grad_final_state)
        grads.v_th = grads.v_th * (1.0 + 1e-5)
        return grads

    monkeypatch.setattr(functional, "lif_backward", perturbed)
    _small_suite(monkeypatch, layers=("LIF", "LI"), surrogates=("sigmoid",))
    rc = cli.main(["gradcheck"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "FAILED: LIF/sigmoid/zero/attached" in out
    assert "FAILED: 5 cases, 1 passed, 4 failed" in out  # the LI case is unaffected
    failing_rows = [
        line for line in out.splitlines() if line.startswith("v_th") and "FAIL" in line
    ]
    assert failing_rows


def test_suite_fails_when_a_kernel_is_perturbed(monkeypatch):
    """Perturbing the compiled LI backward kernel (what functional calls) is caught."""
    from numbaspike.kernels import cpu

    original = cpu.li_backward

    def perturbed(*args):
        original(*args)
        args[8][...] *= 1.0 + 1e-4  # gx, the input gradient

    monkeypatch.setattr(cpu, "li_backward", perturbed)
    report = gc.run_gradcheck_suite(layers=("LI",))
    assert not report.ok
    (case,) = report.failures
    assert case.name == "LI"
    assert not case.result["x"].ok
    assert case.result["tau_mem_inv"].ok  # the parameter gradients are not touched
    assert "FAILED: LI" in str(report)


def test_suite_fails_when_detached_gradient_is_wrong(monkeypatch):
    """The detach_reset cases are checked against the frozen-reset model, not waved through."""
    original = functional.lif_backward

    def ignore_detach(grad_z, tape, grad_final_state=None):
        tape.p = tape.p.replace(detach_reset=False)  # compute the attached gradient instead
        return original(grad_z, tape, grad_final_state)

    monkeypatch.setattr(functional, "lif_backward", ignore_detach)
    report = gc.run_gradcheck_suite(layers=("LIF",), surrogates=("atan",))
    failed = {c.name for c in report.failures}
    assert failed == {"LIF/atan/zero/detach", "LIF/atan/subtract/detach"}


def test_suite_report_api():
    report = gc.run_gradcheck_suite(layers=("LIF",), surrogates=("triangle",), seed=3)
    assert report.ok and len(report.cases) == 4  # no model case uses triangle
    for case in report.cases:
        assert case.result.max_rel_err < 1e-7  # ample margin below the 1e-6 tolerance
        names = {r.name for r in case.result.rows}
        assert names == {"x", "tau_mem_inv", "tau_syn_inv", "v_th", "v_leak"}
    assert "LIF/triangle/subtract/detach" in [c.name for c in report.cases]
    assert report.checks == sum(c.result.checks for c in report.cases) > 0
    assert report.excluded == 0  # the suite re-draws problems whose stencils cross a kink
    assert f"{report.checks} checks, 0 excluded" in str(report)
    with pytest.raises(ValueError, match="layers"):
        gc.run_gradcheck_suite(layers=("Conv",))
    with pytest.raises(ValueError, match="surrogates"):
        gc.run_gradcheck_suite(surrogates=("relu",))


def test_torch_option_needs_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="PyTorch"):
        gc.run_gradcheck_suite(torch=True, layers=("LI",))


# --------------------------------------------------------------------------------------------
# check_gradients
# --------------------------------------------------------------------------------------------


def test_check_gradients_passes_and_fails_with_the_worst_entry():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 4))
    b = np.array(0.7)

    def f(d):
        return float(np.sum(np.sin(d["a"]) * d["b"]) + d["b"] ** 3)

    good = {"a": np.cos(a) * b, "b": np.sum(np.sin(a)) + 3 * b**2}
    result = gc.check_gradients(f, {"a": a, "b": b}, good, n_entries=12)
    assert result.ok, str(result)
    assert result["a"].entries == 12 and result["a"].directions == 2
    assert result.max_rel_err < 1e-9

    bad = dict(good)
    bad["a"] = good["a"].copy()
    bad["a"][2, 1] *= 1.001
    result = gc.check_gradients(f, {"a": a, "b": b}, bad, n_entries=12)
    assert not result.ok
    assert result["a"].worst == "(2, 1)"
    assert result["b"].ok
    text = str(result)
    assert "FAIL" in text and "(2, 1)" in text and "max rel err" in text


def test_check_gradients_validates_its_arguments():
    f = lambda d: float(np.sum(d["a"]))  # noqa: E731
    with pytest.raises(KeyError, match="not one of the inputs"):
        gc.check_gradients(f, {"a": np.ones(2)}, {"c": np.ones(2)})
    with pytest.raises(ValueError, match="shape"):
        gc.check_gradients(f, {"a": np.ones(2)}, {"a": np.ones(3)})
    with pytest.raises(ValueError, match="order"):
        gc.finite_difference(f, {"a": np.ones(2)}, "a", np.ones(2), 1e-3, order=3)
    for step in (0.0, -1e-3, math.nan, math.inf, "1e-3"):
        with pytest.raises(ValueError, match="step"):
            gc.finite_difference(f, {"a": np.ones(2)}, "a", np.ones(2), step)


BAD_TOLS = [math.nan, math.inf, -math.inf, 0.0, -1e-6, "1e-6", None, True, [1e-6]]
#: other settings that would make nonsense: a step of 0, NaN or above 1, no entries, ...
BAD_SETTINGS = [
    ("eps", 0.0), ("eps", math.nan), ("eps", -1e-4), ("eps", 2.0), ("eps", "1e-4"),
    ("n_entries", 0), ("n_entries", 2.5), ("n_entries", True), ("n_directions", -1),
    ("floor", -0.1), ("floor", math.nan), ("floor", 1.5), ("order", 3), ("order", True),
]  # fmt: skip


def _tiny_check(**kw):
    f = lambda d: float(np.sum(np.sin(d["a"])))  # noqa: E731
    a = np.linspace(0.0, 1.0, 3)
    return gc.check_gradients(f, {"a": a}, {"a": np.cos(a)}, **kw)


@pytest.mark.parametrize("tol", BAD_TOLS, ids=repr)
def test_every_check_rejects_a_bad_tol(tol):
    """NaN passes no comparison and inf/0 every or none: a nonsense tolerance is an error
    naming ``tol``, raised before any work (the suite would otherwise run for seconds)."""
    net = _lif_net(LIFParameters(surrogate="sigmoid", alpha=5.0))
    x, target = _membrane_problem()
    with pytest.raises(ValueError, match="tol"):
        _tiny_check(tol=tol)
    with pytest.raises(ValueError, match="tol"):
        gc.check_network(net, x, MembraneMSE(), target, tol=tol)
    with pytest.raises(ValueError, match="tol"):
        gc.run_gradcheck_suite(tol=tol)


@pytest.mark.parametrize(("name", "value"), BAD_SETTINGS, ids=repr)
def test_every_check_rejects_nonsense_settings(name, value):
    net = _lif_net(LIFParameters(surrogate="sigmoid", alpha=5.0))
    x, target = _membrane_problem()
    with pytest.raises(ValueError, match=name):
        _tiny_check(**{name: value})
    with pytest.raises(ValueError, match=name):
        gc.check_network(net, x, MembraneMSE(), target, **{name: value})
    with pytest.raises(ValueError, match=name):
        gc.run_gradcheck_suite(**{name: value})


def test_the_other_public_checks_reject_nonsense_settings():
    net = _lif_net(LIFParameters(surrogate="sigmoid", alpha=5.0))
    x, target = _membrane_problem()
    for name, value in [("threads", 0), ("threads", 1.5)]:
        with pytest.raises(ValueError, match=name):
            gc.check_network(net, x, MembraneMSE(), target, **{name: value})
    for name, value in [("seed", -1), ("seed", 1.5), ("seed", "0")]:
        with pytest.raises(ValueError, match=name):
            gc.run_gradcheck_suite(**{name: value})
    bad = [("eps", math.nan), ("eps", 0.0), ("order", 5), ("max_full", -1),
           ("n_directions", 0), ("threads", 0)]  # fmt: skip
    for name, value in bad:
        with pytest.raises(ValueError, match=name):
            gc.compare_surrogate_to_smooth(net, x, MembraneMSE(), target, **{name: value})


def test_good_settings_of_other_numeric_types_are_accepted():
    result = _tiny_check(tol=np.float32(1e-6), eps=np.float64(1e-4), n_entries=np.int64(3))
    assert result.ok and result.tol == pytest.approx(1e-6)
    assert _tiny_check(tol=1, floor=0).ok  # ints are numbers too


# --------------------------------------------------------------------------------------------
# check_network
# --------------------------------------------------------------------------------------------


def _lif_net(p: LIFParameters, seed: int = 0, recurrent: bool = False) -> Sequential:
    rng = np.random.default_rng(seed)
    learn = ("tau_mem_inv", "tau_syn_inv", "v_th", "v_leak")
    hidden = LIFRecurrent(6, p, learn=learn, seed=1) if recurrent else LIF(6, p, learn=learn)
    net = Sequential(
        Linear(5, 6, seed=2),
        hidden,
        Linear(6, 3, bias=True, seed=3),
        LI(3, LIParameters(), learn="v_leak"),
    )
    params = net.parameters()
    params["0.weight"][...] = rng.normal(0.5, 0.5, (6, 5))
    params["2.weight"][...] = rng.normal(0.0, 1.0, (3, 6))
    return net


def _membrane_problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (25, 2, 5)).astype(np.float32)
    target = rng.normal(0.0, 0.1, (25, 2, 3)).astype(np.float32)
    return x, target


@pytest.mark.parametrize("recurrent", [False, True])
def test_check_network_passes_on_a_float32_network(recurrent):
    net = _lif_net(LIFParameters(surrogate="sigmoid", alpha=5.0), recurrent=recurrent)
    before = {k: v.copy() for k, v in net.parameters().items()}
    x, target = _membrane_problem()
    result = gc.check_network(net, x, MembraneMSE(), target, input_grad=True)
    assert result.ok, str(result)
    assert {r.name for r in result.rows} == set(net.parameters()) | {"x"}
    for k, v in net.parameters().items():  # the network itself is untouched
        assert v.dtype == np.float32
        np.testing.assert_array_equal(v, before[k])
    assert "network gradient check" in str(result)


def test_check_network_with_detach_reset_and_classification_loss():
    p = LIFParameters(surrogate="atan", alpha=3.0, detach_reset=True, reset="subtract")
    net = _lif_net(p, recurrent=True)
    x, _ = _membrane_problem(1)
    labels = np.array([0, 2])
    result = gc.check_network(net, x, MeanOverTimeCrossEntropy(), labels)
    assert result.ok, str(result)
    assert any("detach_reset" in n for n in result.notes)


def test_check_network_detects_a_broken_layer_backward(monkeypatch):
    original = LIF.backward

    def broken(self, grad_y, tape, need_input_grad=True, out=None):
        g = original(self, grad_y, tape, need_input_grad, out=out)
        return None if g is None else g * (1.0 + 1e-4)

    monkeypatch.setattr(LIF, "backward", broken)
    net = _lif_net(LIFParameters(surrogate="sigmoid", alpha=5.0))
    x, target = _membrane_problem()
    result = gc.check_network(net, x, MembraneMSE(), target)
    assert not result.ok
    assert not result["0.weight"].ok  # upstream of the broken layer
    for name in ("1.v_th", "2.weight", "2.bias", "3.v_leak"):
        assert result[name].ok, name
    assert "FAIL" in str(result)


def test_check_network_excludes_a_stencil_across_a_kink():
    """superspike's F has a kink at u = 0; a huge step moves membranes across it. Such a
    check measures the kink, not the gradient: it is excluded and counted, never failed."""
    net = _lif_net(LIFParameters(surrogate="superspike", alpha=5.0))
    x, target = _membrane_problem()
    good = gc.check_network(net, x, MembraneMSE(), target, params=["1.v_th"])
    assert good.ok, str(good)
    assert good.excluded == 0 and good.checked == good.checks == 6 + 2  # entries + directions
    assert any("closest membrane to a kink" in n for n in good.notes)
    coarse = gc.check_network(net, x, MembraneMSE(), target, params=["1.v_th"], eps=0.05, order=2)
    row = coarse["1.v_th"]
    assert row.excluded > 0 and row.checked == row.checks - row.excluded
    assert coarse.ok, str(coarse)  # never FAIL for a crossing
    assert coarse.excluded == row.excluded
    text = str(coarse)
    assert f"{row.checked} of {row.checks} checks measured, {row.excluded} excluded" in text
    assert any(f"{row.excluded} checks excluded" in n for n in coarse.notes)


def test_a_wrong_gradient_still_fails_next_to_excluded_checks(monkeypatch):
    """Exclusion is per check: the checks that did not cross a kink still catch an error."""
    original = LIF.backward

    def broken(self, grad_y, tape, need_input_grad=True, out=None):
        g = original(self, grad_y, tape, need_input_grad, out=out)
        self._grads["v_th"] *= 1.02
        return g

    monkeypatch.setattr(LIF, "backward", broken)
    net = _lif_net(LIFParameters(surrogate="superspike", alpha=5.0))
    x, target = _membrane_problem()
    coarse = gc.check_network(net, x, MembraneMSE(), target, params=["1.v_th"], eps=0.05, order=2)
    row = coarse["1.v_th"]
    assert 0 < row.excluded < row.checks
    assert not row.ok and not coarse.ok


def test_check_network_rejects_unknown_parameters():
    net = _lif_net(LIFParameters())
    x, target = _membrane_problem()
    with pytest.raises(KeyError, match="unknown parameters"):
        gc.check_network(net, x, MembraneMSE(), target, params=["9.weight"])


# --------------------------------------------------------------------------------------------
# compare_surrogate_to_smooth
# --------------------------------------------------------------------------------------------


def test_surrogate_gradient_is_exact_where_the_step_is_locally_constant():
    """boxcar: F is exactly the step outside |u| < alpha, and s = 0 there. With no membrane
    within alpha of threshold the smooth model *is* the spiking network near this point, so
    the surrogate gradient must equal its finite-difference gradient (cosine 1)."""
    alpha = 1e-4
    net = _lif_net(LIFParameters(surrogate="boxcar", alpha=alpha))
    x, target = _membrane_problem()
    _, tape = gc.smooth_copy(net, smooth=False).forward(x.astype(np.float64))
    u = tape.tapes[1].h - tape.tapes[1].coeffs.v_th
    assert np.min(np.abs(u)) > 10 * alpha and 0.02 < tape.outputs[1].mean() < 0.5  # precondition
    cmp = gc.compare_surrogate_to_smooth(net, x, MembraneMSE(), target)
    for name in ("2.weight", "2.bias", "3.v_leak", "all"):
        assert cmp[name].cosine > 1 - 1e-9, str(cmp)
        assert cmp[name].rel_err < 1e-5
    # no gradient reaches the input weights through s = 0, in either model
    assert cmp["0.weight"].norm_surrogate == 0.0 and cmp["0.weight"].norm_smooth == 0.0
    assert math.isnan(cmp["0.weight"].cosine)
    assert "cosine" in str(cmp)


def test_smooth_network_compares_with_itself_and_random_projections():
    """A network already in smooth mode: its 'surrogate' gradient is the exact gradient."""
    net = _lif_net(LIFParameters(surrogate="sigmoid", alpha=4.0, smooth=True), recurrent=True)
    x, target = _membrane_problem()
    cmp = gc.compare_surrogate_to_smooth(net, x, MembraneMSE(), target, max_full=8, n_directions=6)
    assert cmp["0.weight"].method == "6 directions"
    assert cmp["1.v_th"].method == "full FD"
    for row in cmp.rows:
        assert row.cosine > 1 - 1e-8, str(cmp)
        assert row.fd_err < 1e-6 and row.cosine_exact > 1 - 1e-12


def test_surrogate_gradient_differs_from_a_different_smooth_model():
    """Sanity: for a step network the comparison is not trivially 1."""
    net = _lif_net(LIFParameters(surrogate="sigmoid", alpha=4.0))
    x, target = _membrane_problem()
    cmp = gc.compare_surrogate_to_smooth(
        net, x, MembraneMSE(), target, params=["0.weight", "1.v_th"]
    )
    assert [r.name for r in cmp.rows] == ["0.weight", "1.v_th", "all"]
    assert cmp["all"].fd_err < 1e-4
    assert -1.0 <= cmp["all"].cosine < 0.999


# --------------------------------------------------------------------------------------------
# the example
# --------------------------------------------------------------------------------------------


def test_gradient_study_example_runs_at_toy_size(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "gradient_study", ROOT / "examples" / "gradient_study.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "study.png"
    assert module.main(["--quick", "--out", str(out), "--surrogates", "sigmoid", "boxcar"]) == 0
    assert out.exists() and out.stat().st_size > 1000
    text = capsys.readouterr().out
    assert "cos all" in text and "boxcar" in text


def test_networks_with_a_sparse_backward_layer_are_checked_and_compared():
    """check_network checks the smooth model (whose copy drops sparse_tol: it has no sparse
    backward); compare_surrogate_to_smooth compares the *sparse* surrogate gradient with it:
    with a tiny tolerance it is the plain surrogate gradient, with a large one it differs."""
    x, target = _membrane_problem()

    def net_with(tol):
        net = Sequential(
            Linear(5, 6, seed=2),
            LIFRecurrent(6, LIFParameters(surrogate="sigmoid", alpha=5.0), seed=1, sparse_tol=tol),
            Linear(6, 3, bias=True, seed=3),
            LI(3),
        )
        net.parameters()["0.weight"][...] = np.random.default_rng(0).normal(0.5, 0.5, (6, 5))
        return net

    result = gc.check_network(net_with(1e-3), x, MembraneMSE(), target)
    assert result.ok, str(result)
    rows = {
        tol: gc.compare_surrogate_to_smooth(net_with(tol), x, MembraneMSE(), target)["1.w_rec"]
        for tol in (None, 1e-9, 0.5)
    }
    assert rows[1e-9].norm_surrogate == pytest.approx(rows[None].norm_surrogate, rel=1e-6)
    assert rows[1e-9].cosine == pytest.approx(rows[None].cosine, abs=1e-6)
    assert abs(rows[0.5].norm_surrogate / rows[None].norm_surrogate - 1) > 0.01
    assert rows[0.5].norm_smooth == rows[None].norm_smooth  # the same smooth model
