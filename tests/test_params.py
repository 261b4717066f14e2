"""LIFParameters: the reset must end below threshold (``v_reset < v_th``).

At or above threshold, a reset puts a driven neuron straight back over it, so that it fires
on every step; the rule holds for scalar and per-neuron thresholds, in both reset modes,
for ``replace`` too, and in the dtype the kernels run in.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import numbaspike as ns

DT = 1e-3


def raises_reset_rule(*values: str):
    """``pytest.raises(ValueError)`` whose message names v_reset, v_th and ``values``."""
    pattern = r"(?s)(?=.*\bv_reset\b)(?=.*\bv_th\b)" + "".join(
        rf"(?=.*{re.escape(v)})" for v in values
    )
    return pytest.raises(ValueError, match=pattern)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize(
    "v_th,v_reset",
    [(0.5, 1.0), (1.0, 1.0), (-0.5, 0.0), (0.0, 0.0), (np.float32(0.25), 0.25)],
)
def test_scalar_reset_at_or_above_threshold_is_refused(reset, v_th, v_reset):
    with raises_reset_rule(f"v_reset={float(v_reset)!r}", f"v_th={float(v_th)!r}"):
        ns.LIFParameters(v_th=v_th, v_reset=v_reset, reset=reset)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_per_neuron_threshold_at_or_below_reset_is_refused(reset):
    with raises_reset_rule("v_reset=0.5", "2 of 4 neurons", "v_th[1]=0.5"):
        ns.LIFParameters(v_th=[1.0, 0.5, 0.2, 0.6], v_reset=0.5, reset=reset)
    with raises_reset_rule("v_th[3]=-1.0"):
        ns.LIFParameters(v_th=np.array([0.1, 0.2, 0.3, -1.0], np.float32), reset=reset)
    ns.LIFParameters(v_th=[1.0, 0.51, 0.6], v_reset=0.5, reset=reset)  # all above: fine


def test_replace_checks_the_rule_again():
    p = ns.LIFParameters(v_th=np.linspace(0.8, 1.2, 5), reset="subtract")
    with raises_reset_rule("v_reset=1.0"):
        p.replace(v_reset=1.0)
    with raises_reset_rule("v_th[0]=-0.1"):
        p.replace(v_th=np.full(5, -0.1))
    q = p.replace(v_reset=-2.0, v_th=np.full(5, -1.0))  # both moved together: fine
    assert q.v_reset == -2.0 and np.all(q.v_th == -1.0)


def test_reset_just_below_threshold_is_accepted_and_does_not_fire_again_undriven():
    """v_reset < v_th: a neuron reset by a spike stays below threshold until driven."""
    p = ns.LIFParameters(v_th=0.5, v_reset=0.4999)
    z, _ = ns.lif_forward(np.zeros((30, 1, 2)), p, DT, state=(10.0, 0.0))
    np.testing.assert_array_equal(z[:, 0, 0], np.eye(30)[0])  # one spike, at the first step


def test_rule_is_checked_in_the_working_dtype():
    """Distinct in float64 but equal after rounding to float32: refused for float32 input."""
    p = ns.LIFParameters(v_th=0.1, v_reset=0.1 - 1e-12)
    x = np.ones((5, 2, 3))
    ns.lif_forward(x, p, DT)  # float64: v_reset < v_th holds
    with raises_reset_rule("float32"):
        ns.lif_forward(x.astype(np.float32), p, DT)
    with raises_reset_rule("float32"):
        ns.lif_simulate(x.astype(np.float32), p, DT)
