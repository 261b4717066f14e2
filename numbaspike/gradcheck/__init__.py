r"""Gradient-correctness toolkit: finite differences, smooth-mode checks and error tables.

A spiking network's forward pass uses the Heaviside step :math:`z = H(u)`, whose derivative
is zero almost everywhere; the backward pass uses a surrogate :math:`s` instead. Finite
differences of the step network therefore cannot check the backward code (they measure 0,
or a jump). Every surrogate has a smooth function :math:`F` with :math:`F' = s`
(:mod:`numbaspike.surrogates`); with ``smooth=True`` in a model's parameters the forward pass
uses :math:`z = F(u)`, the model is differentiable, and the *same* BPTT code must return its
exact gradient. That is what this package checks, in float64, one module per tool:

* :mod:`~numbaspike.gradcheck.finite_difference` — :func:`check_gradients` compares any
  analytic gradient with central finite differences of a scalar function (sampled entries
  and random directions), with a rounding resolution that a wrong gradient cannot widen;
* :mod:`~numbaspike.gradcheck.network` — :func:`check_network`: every parameter gradient of
  a :class:`~numbaspike.network.Sequential` (run as a float64, smooth-mode copy,
  :func:`smooth_copy`) against finite differences of the loss, for LIF layers and the layers
  of every registered neuron model;
* :mod:`~numbaspike.gradcheck.surrogate_comparison` — :func:`compare_surrogate_to_smooth`:
  how close the *surrogate* gradient of a spiking network is to the true gradient of the
  matching smooth network (cosine similarity);
* :mod:`~numbaspike.gradcheck.suite` — :func:`run_gradcheck_suite`: every layer kind ×
  surrogate × reset × ``detach_reset`` on small random problems (the ``numbaspike gradcheck``
  command), optionally also against the PyTorch-autograd oracle
  (:mod:`numbaspike.torch_reference`);
* :mod:`~numbaspike.gradcheck.kinks` — where the smooth model is not smooth (kinks of
  :math:`F`, discrete parts of a model) and the NumPy replays of the ``detach_reset`` models.
"""

from __future__ import annotations

from .finite_difference import (
    MAX_HALVINGS,
    NOISE_SAFETY,
    ROUNDING_SAFETY,
    GradCheckResult,
    GradCheckRow,
    _rounding_resolution,
    check_gradients,
    finite_difference,
)
from .network import check_network, smooth_copy
from .suite import (
    SUITE_ALPHA,
    SUITE_KINK_MARGIN,
    SUITE_LAYERS,
    SUITE_MODEL_CASES,
    SUITE_SHAPE,
    GradcheckSuiteReport,
    SuiteCase,
    run_gradcheck_suite,
)
from .surrogate_comparison import (
    SurrogateComparison,
    SurrogateComparisonRow,
    compare_surrogate_to_smooth,
)

__all__ = [
    "GradCheckRow",
    "GradCheckResult",
    "SurrogateComparisonRow",
    "SurrogateComparison",
    "SuiteCase",
    "GradcheckSuiteReport",
    "finite_difference",
    "check_gradients",
    "smooth_copy",
    "check_network",
    "compare_surrogate_to_smooth",
    "run_gradcheck_suite",
    "ROUNDING_SAFETY",
    "NOISE_SAFETY",
    "MAX_HALVINGS",
    "SUITE_ALPHA",
    "SUITE_SHAPE",
    "SUITE_KINK_MARGIN",
    "SUITE_LAYERS",
    "SUITE_MODEL_CASES",
    "_rounding_resolution",
]
