r"""Gradient-correctness toolkit: finite differences, smooth-mode checks and error tables.

A spiking network's forward pass uses the Heaviside step :math:`z = H(h - v_{th})`, whose
derivative is zero almost everywhere; the backward pass uses a surrogate :math:`s` instead.
Finite differences of the step network therefore cannot check the backward code (they
measure 0, or a jump). Every surrogate has a smooth function :math:`F` with :math:`F' = s`
(:mod:`numbaspike.surrogates`); with ``LIFParameters(smooth=True)`` the forward pass uses
:math:`z = F(h - v_{th})`, the model is differentiable, and the *same* BPTT code must
return its exact gradient. That is what this module checks, in float64:

* :func:`check_gradients` — compare any analytic gradient with central finite differences
  of a scalar function (sampled entries and random directions);
* :func:`check_network` — every parameter gradient of a :class:`~numbaspike.network.Sequential`
  (run as a float64, smooth-mode copy) against finite differences of the loss;
* :func:`compare_surrogate_to_smooth` — how close the *surrogate* gradient of a spiking
  network is to the true gradient of the matching smooth network (cosine similarity);
* :func:`run_gradcheck_suite` — every layer kind × surrogate × reset × ``detach_reset`` on
  small random problems (the ``numbaspike gradcheck`` command), optionally also against a
  PyTorch-autograd implementation (:mod:`numbaspike.torch_reference`).

Finite differences
------------------
For an input :math:`\theta` with step :math:`\delta = \epsilon\,\max(1, \mathrm{rms}(\theta))`
and a direction :math:`d` (a unit vector :math:`e_k` for one entry, or a random Gaussian
vector with unit RMS), the central difference is

.. math::

    D_d = \frac{L(\theta + \delta d) - L(\theta - \delta d)}{2\delta}
    \quad\text{(order 2)},\qquad
    D_d = \frac{8(L_{+1} - L_{-1}) - (L_{+2} - L_{-2})}{12\delta}\quad\text{(order 4)}

with :math:`L_{\pm k} = L(\theta \pm k\delta d)`, or a 6-point stencil (order 6), and is
compared with the analytic :math:`a \cdot d`. It carries two errors that have nothing to do
with the gradient: truncation, :math:`O(\delta^{order})`, and rounding. Each evaluation of
:math:`L` is off by a few :math:`\epsilon_{mach}|L|` (:math:`\epsilon_{mach} = 2^{-52}`), and
the stencil divides those errors by :math:`\delta`, so no central difference resolves a
derivative smaller than about :math:`\epsilon_{mach}|L|/\delta`: with :math:`|L| \approx 0.7`
and :math:`\delta = 10^{-4}` that is :math:`1.5 \cdot 10^{-12}`, the whole error of a
correct recurrent-weight gradient of :math:`3 \cdot 10^{-8}`. The *rounding resolution* of a
check is therefore

.. math::

    r = \max\Big(\frac{16\, g_1\, \epsilon_{mach} \max_k |L_k|}{\delta},
    \frac{8\, g_2\, \sigma}{\delta}\Big)

with :math:`g_1` the sum and :math:`g_2` the root sum of squares of the stencil's weights
(order 4: 1.5 and 0.95). The first term (:data:`ROUNDING_SAFETY` = 16 units of
:math:`\epsilon_{mach}` per evaluation: a loss sums the roundings of :math:`T B N` terms over
:math:`T` steps, which add up to a few units) holds a priori. The second covers losses
whose rounding is far larger than :math:`\epsilon_{mach}|L|`, because they are small
results of large intermediate values (a spike count of :math:`F(u) = \arctan(.)/\pi + 1/2`
far below threshold keeps the absolute rounding of the 1/2): when a check misses by more
than ``tol`` and the first term, the noise :math:`\sigma` of :math:`L` along :math:`d` is
measured from fourth differences of :math:`L` at 17 points :math:`\delta/64` apart, and an
error up to :data:`NOISE_SAFETY` = 8 standard deviations of the noise in :math:`D_d` is
rounding. Such a check also halves :math:`\delta` (up to :data:`MAX_HALVINGS` times) while
the truncation error, estimated by Richardson's rule
:math:`|D_d(2h) - D_d(h)|/(2^{order} - 1)`, is above :math:`r`, and is judged at the last
step with the uncertainty :math:`r + ` truncation. Neither term depends on the analytic
gradient, so a wrong gradient cannot widen its own tolerance. The error of one check is

.. math::

    \text{rel} = \frac{|a\cdot d - D_d|}{\max(|a\cdot d|,\ |D_d|,\ S,\ r/\text{tol})},
    \qquad
    S = \text{floor}\cdot\max_k |a_k| \;\text{(entry)}, \qquad
    S = \sum_k |a_k d_k| \;\text{(direction)}

so an entry much smaller than the input's largest gradient is measured against ``floor``
times that scale, a directional derivative against the size it would have without
cancellation, and an error within the resolution counts as at most ``tol``. A check passes
when ``rel <= tol``; a row reports the largest error of its checks, where it occurred, and
the largest resolution.

:math:`F` is not smooth everywhere (superspike and triangle have a kink in :math:`s` at 0,
triangle also at :math:`\pm 1`, boxcar jumps at :math:`\pm\alpha`;
:data:`numbaspike.surrogates.SURROGATE_KINKS`), nor are some losses (a maximum over time
switching steps, a rectifier); a stencil that straddles such a point measures the kink, not
the gradient. :func:`check_network` detects when an evaluation moved some
:math:`u = h - v_{th}` across a kink, or changed which entries of :math:`dL/dy` are zero,
and *excludes* that check: it is counted (per row, in total and in ``str(result)``), never
failed. :func:`run_gradcheck_suite` re-draws its random problem until no membrane is near a
kink and no stencil crosses one.
"""

from __future__ import annotations

import contextlib
import math
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from . import functional as _functional
from .params import LIFParameters, LIParameters
from .surrogates import SURROGATE_KINKS, SURROGATE_NAMES
from .validation import check_positive_int

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
]


@contextlib.contextmanager
def _numba_threads(n: int | None):
    """Run with ``n`` Numba threads (None: unchanged). Finite differences call the kernels
    thousands of times on tiny arrays, where thread start-up costs more than the work."""
    if n is None:
        yield
        return
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(before)


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return f"{value:.2e}"


def _table(headers: list[str], rows: list[list[str]], right: Iterable[int] = ()) -> str:
    """Plain-text table with aligned columns (columns in ``right`` are right-aligned)."""
    right = set(right)
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(cells):
        out = [
            c.rjust(w) if k in right else c.ljust(w)
            for k, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


# --------------------------------------------------------------------------------------------
# generic finite-difference check
# --------------------------------------------------------------------------------------------


#: float64 machine epsilon: the unit of the rounding error of one evaluation of the loss.
_EPS64 = float(np.finfo(np.float64).eps)

#: Worst-case rounding gain of each stencil: the sum of the absolute weights of its
#: evaluations over its denominator, in units of 1/step (order 4: (8 + 8 + 1 + 1) / 12).
_NOISE_GAIN = {2: 1.0, 4: 1.5, 6: 11.0 / 6.0}
#: Typical rounding gain: the root sum of squares of the same weights (independent errors).
_NOISE_RMS = {2: math.sqrt(0.5), 4: math.sqrt(130.0) / 12.0, 6: math.sqrt(4214.0) / 60.0}

#: Relative rounding error assumed for one evaluation of the loss, in units of the float64
#: epsilon, for the a-priori resolution (module docstring). A loss is the end of T steps of
#: a recursion and of sums over T*B*N terms whose roundings add up like a random walk; a
#: few eps is typical, 16 leaves room.
ROUNDING_SAFETY = 16.0
#: Multiple of the measured rounding noise (its standard deviation in the finite difference)
#: that an error may reach: far in the tail of the noise, so a false alarm takes a
#: several-sigma coincidence, while a wrong gradient exceeds it by orders of magnitude.
NOISE_SAFETY = 8.0
#: Step halvings a check may take when its first measurement fails (the step falls to 1/16:
#: truncation drops by 16**order, the rounding resolution grows 16-fold).
MAX_HALVINGS = 4
#: The noise probe samples the loss at 2 * _PROBE_HALF_WIDTH + 1 points spaced
#: step / _PROBE_DIVISOR apart, where the smooth part of a fourth difference is 64**4 times
#: smaller than at the stencil's spacing; 13 fourth differences pin the noise down to a few
#: tens of percent.
_PROBE_DIVISOR = 64.0
_PROBE_HALF_WIDTH = 8


def _rounding_resolution(loss_scale: float, step: float, order: int) -> float:
    """A-priori resolution: the smallest derivative a stencil of step ``step`` resolves on a
    loss of size ``loss_scale`` (``ROUNDING_SAFETY * gain * eps * |L| / step``)."""
    return ROUNDING_SAFETY * _NOISE_GAIN[order] * _EPS64 * loss_scale / step


def _probe_noise(fn, inputs, name, d, step, base_value) -> float:
    """Standard deviation of the rounding noise of ``fn`` along ``d``.

    A loss can carry far more rounding than ``eps * |L|``: a small loss computed from large
    intermediate values (a spike count of ``F(u) = atan(.)/pi + 1/2`` far below threshold
    loses the digits of 1/2) keeps their absolute rounding. The probe measures it: at 17
    points a tiny step apart the smooth part of the fourth differences vanishes and what
    is left is noise, of variance ``70 * sigma**2``.
    """
    h = step / _PROBE_DIVISOR
    base = np.asarray(inputs[name], dtype=np.float64)
    values = []
    for k in range(-_PROBE_HALF_WIDTH, _PROBE_HALF_WIDTH + 1):
        if k == 0:
            values.append(base_value)
            continue
        args = dict(inputs)
        args[name] = base + (k * h) * d
        values.append(float(fn(args)))
    v = np.array(values)
    fourth = v[:-4] - 4.0 * v[1:-3] + 6.0 * v[2:-2] - 4.0 * v[3:-1] + v[4:]
    return float(np.sqrt(np.mean(fourth * fourth) / 70.0))


@dataclass
class _Measurement:
    """One check's outcome: ``excluded`` or its error against the analytic value."""

    excluded: bool = False
    err: float = 0.0
    rel: float = 0.0
    numeric: float = math.nan
    resolution: float = 0.0
    step: float = 0.0


def _measure(
    fn, inputs, name, d, a, scale_floor, step, order, tol, crossings, base_value
) -> _Measurement:
    """Compare ``a`` with the central difference along ``d``, refining the step if needed.

    The first stencil uses ``step`` and the a-priori rounding resolution
    (:func:`_rounding_resolution`). If it misses by more than ``tol`` (relative) and more
    than that, the rounding noise along ``d`` is measured (:func:`_probe_noise`) and the
    step is halved up to :data:`MAX_HALVINGS` times; from the second stencil on the
    truncation error is estimated by Richardson's rule ``|D(2h) - D(h)| / (2**order - 1)``.
    Halving stops when the check passes or when the truncation estimate is below the
    rounding resolution (a smaller step would only add noise); the verdict is then taken
    with the uncertainty ``rounding + truncation``. A wrong gradient still fails: the
    uncertainty only depends on ``fn``, never on ``a``. Any evaluation that crosses a kink
    excludes the check.
    """
    before = crossings()
    previous = None
    noise = 0.0
    h = step
    for level in range(MAX_HALVINGS + 1):
        num, loss_scale = _stencil(fn, inputs, name, d, h, order)
        if crossings() != before:
            return _Measurement(excluded=True, step=h)
        rounding = max(
            _rounding_resolution(loss_scale, h, order),
            NOISE_SAFETY * _NOISE_RMS[order] * noise / h,
        )
        truncation = 0.0 if previous is None else abs(previous - num) / (2.0**order - 1.0)
        resolution = rounding + truncation
        err = abs(a - num)
        den = max(abs(a), abs(num), scale_floor, resolution / tol)
        rel = err / den if den > 0 else (0.0 if err == 0 else math.inf)
        if not (math.isfinite(a) and math.isfinite(num) and math.isfinite(resolution)):
            return _Measurement(False, math.inf, math.inf, num, resolution, h)  # never passes
        if err <= max(tol * max(abs(a), abs(num), scale_floor), rounding):
            return _Measurement(False, err, rel, num, resolution, h)
        if previous is None:  # measure the noise once, where it is needed
            noise = _probe_noise(fn, inputs, name, d, step, base_value())
            if crossings() != before:
                return _Measurement(excluded=True, step=h)
            rounding = max(rounding, NOISE_SAFETY * _NOISE_RMS[order] * noise / h)
            if err <= rounding:
                den = max(abs(a), abs(num), scale_floor, rounding / tol)
                return _Measurement(False, err, err / den, num, rounding, h)
        if (previous is not None and truncation <= rounding) or level == MAX_HALVINGS:
            return _Measurement(False, err, rel, num, resolution, h)
        previous, h = num, 0.5 * h
    raise AssertionError("unreachable")  # pragma: no cover


def _real(name: str, value, *, positive: bool = True, upper: float | None = None) -> float:
    """A finite real number (> 0 if ``positive``, else >= 0; <= ``upper``) or a ValueError."""
    bad = isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    )
    if not bad:
        value = float(value)
        bad = not math.isfinite(value) or (value <= 0 if positive else value < 0)
        bad = bad or (upper is not None and value > upper)
    if bad:
        what = "a finite number " + ("> 0" if positive else ">= 0")
        if upper is not None:
            what += f" and <= {upper:g}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


def _count(name: str, value, minimum: int) -> int:
    """An integer >= ``minimum`` or a ValueError naming ``name``."""
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, (int, np.integer))
        or value < minimum
    ):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_order(order) -> int:
    if isinstance(order, (bool, np.bool_)) or order not in _NOISE_GAIN:
        raise ValueError(f"order must be 2, 4 or 6, got {order!r}")
    return int(order)


def _check_fd_settings(
    eps, n_entries, n_directions, tol, floor, order
) -> tuple[float, int, int, float, float, int]:
    """The finite-difference settings shared by the public checks, validated."""
    return (
        _real("eps", eps, upper=1.0),
        _count("n_entries", n_entries, 1),
        _count("n_directions", n_directions, 0),
        _real("tol", tol),
        _real("floor", floor, positive=False, upper=1.0),
        _check_order(order),
    )


@dataclass
class GradCheckRow:
    """Finite-difference check of the gradient of one input.

    Attributes
    ----------
    name : str
        The input (key of ``inputs``).
    shape : tuple of int
    entries, directions : int
        How many single entries and random directions were tried.
    step : float
        Finite-difference step :math:`\\delta` used for this input.
    max_abs_err, max_rel_err : float
        Largest absolute and relative error over the checks that were not excluded (see
        the module docstring).
    worst : str
        Where ``max_rel_err`` occurred: an entry index such as ``"(3, 0, 1)"`` or ``"dir 1"``
        (``"-"`` if every check was excluded).
    analytic, numeric : float
        The analytic and finite-difference values at ``worst``.
    ok : bool
        Whether every check of this input that was not excluded passed.
    note : str
        Why a row failed for a reason other than the error size, or that all its checks
        were excluded.
    excluded : int
        Checks left out because their stencil moved a membrane across a kink of :math:`F`
        (or the loss across a point where it is not smooth): their finite difference says
        nothing about the gradient, so they neither pass nor fail.
    resolution : float
        Largest rounding resolution :math:`r` of the checks (module docstring): an absolute
        error below it is rounding, not a wrong gradient.
    """

    name: str
    shape: tuple[int, ...]
    entries: int
    directions: int
    step: float
    max_abs_err: float
    max_rel_err: float
    worst: str
    analytic: float
    numeric: float
    ok: bool
    note: str = ""
    excluded: int = 0
    resolution: float = 0.0

    @property
    def checks(self) -> int:
        """Entries plus directions tried."""
        return self.entries + self.directions

    @property
    def checked(self) -> int:
        """Checks whose error was measured (tried minus excluded)."""
        return self.checks - self.excluded


@dataclass
class GradCheckResult:
    """Result of :func:`check_gradients` / :func:`check_network`: one row per input.

    ``ok`` is True when every row passed; ``str(result)`` is a table with the checks tried
    and excluded per input and a summary of both in its first line.
    """

    title: str
    rows: list[GradCheckRow]
    tol: float
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def max_rel_err(self) -> float:
        """Largest relative error over all rows (0.0 if there are none)."""
        return max((r.max_rel_err for r in self.rows), default=0.0)

    @property
    def worst_row(self) -> GradCheckRow | None:
        """The row with the largest relative error."""
        return max(self.rows, key=lambda r: r.max_rel_err, default=None)

    @property
    def checks(self) -> int:
        """Checks tried over all rows."""
        return sum(r.checks for r in self.rows)

    @property
    def checked(self) -> int:
        """Checks measured over all rows."""
        return sum(r.checked for r in self.rows)

    @property
    def excluded(self) -> int:
        """Checks excluded over all rows (their stencils crossed a kink)."""
        return sum(r.excluded for r in self.rows)

    def __getitem__(self, name: str) -> GradCheckRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def __str__(self) -> str:
        headers = [
            "input",
            "shape",
            "checks",
            "excluded",
            "step",
            "resolution",
            "max abs err",
            "max rel err",
            "worst",
            "analytic",
            "finite diff",
            "result",
        ]
        rows = [
            [
                r.name,
                "x".join(map(str, r.shape)) or "scalar",
                f"{r.entries}+{r.directions}d",
                str(r.excluded),
                _fmt(r.step),
                _fmt(r.resolution),
                _fmt(r.max_abs_err),
                _fmt(r.max_rel_err),
                r.worst,
                f"{r.analytic:.6g}",
                f"{r.numeric:.6g}",
                ("ok" if r.ok else "FAIL") + (f" ({r.note})" if r.note else ""),
            ]
            for r in self.rows
        ]
        status = "passed" if self.ok else "FAILED"
        lines = [
            f"{self.title} (tol {self.tol:g}): {status}; {self.checked} of {self.checks} "
            f"checks measured, {self.excluded} excluded (stencil crossed a kink)",
            _table(headers, rows, right=(3, 4, 5, 6, 7, 9, 10)),
        ]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"GradCheckResult({self.title!r}, ok={self.ok}, max_rel_err={self.max_rel_err:.3g}, "
            f"checked={self.checked}, excluded={self.excluded})"
        )


def _stencil(fn, inputs, name, direction, step, order) -> tuple[float, float]:
    """``(central difference, largest |fn| on the stencil)``; see :func:`finite_difference`."""
    base = np.asarray(inputs[name], dtype=np.float64)
    values = []

    def at(k: float) -> float:
        args = dict(inputs)
        args[name] = base + (k * step) * direction
        value = float(fn(args))
        values.append(abs(value))
        return value

    if order == 2:
        num = (at(1.0) - at(-1.0)) / (2.0 * step)
    elif order == 4:
        d1, d2 = at(1.0) - at(-1.0), at(2.0) - at(-2.0)  # differences first: exact 0 if flat
        num = (8.0 * d1 - d2) / (12.0 * step)
    else:
        d1, d2, d3 = at(1.0) - at(-1.0), at(2.0) - at(-2.0), at(3.0) - at(-3.0)
        num = (45.0 * d1 - 9.0 * d2 + d3) / (60.0 * step)
    return num, max(values)


def finite_difference(
    fn: Callable[[dict[str, np.ndarray]], float],
    inputs: Mapping[str, np.ndarray],
    name: str,
    direction: np.ndarray,
    step: float,
    order: int = 2,
) -> float:
    """Central finite-difference estimate of the directional derivative of ``fn``.

    Parameters
    ----------
    fn : callable
        Scalar function of a dict of arrays (same keys as ``inputs``).
    inputs : mapping of str to ndarray
        Point of evaluation (not modified; perturbed copies are passed to ``fn``).
    name : str
        The input to perturb.
    direction : ndarray
        Direction with the shape of ``inputs[name]``.
    step : float
        Step :math:`\\delta > 0` along ``direction``.
    order : {2, 4, 6}
        Stencil with 2, 4 or 6 points (truncation error :math:`O(\\delta^{order})`).

    Returns
    -------
    float
        :math:`\\approx \\nabla_{name} fn \\cdot direction`.
    """
    order = _check_order(order)
    step = _real("step", step)
    return _stencil(fn, inputs, name, direction, step, order)[0]


def _sample_entries(analytic: np.ndarray, n: int, rng: np.random.Generator) -> list[int]:
    """Flat indices to check: all if few, else the largest-gradient entry plus random ones."""
    size = analytic.size
    if size <= n:
        return list(range(size))
    first = int(np.argmax(np.abs(analytic)))
    others = rng.choice(size - 1, size=n - 1, replace=False)
    return [first] + [int(k) + (k >= first) for k in others]


def _crossing_counter(fn) -> Callable[[], int]:
    """How often ``fn`` has crossed a kink so far (0 forever if it does not count)."""
    if isinstance(getattr(fn, "crossings", None), (int, np.integer)):
        return lambda: int(fn.crossings)
    return lambda: 0


def check_gradients(
    fn: Callable[[dict[str, np.ndarray]], float],
    inputs: Mapping[str, np.ndarray],
    analytic: Mapping[str, np.ndarray],
    *,
    eps: float = 1e-4,
    n_entries: int = 8,
    n_directions: int = 2,
    tol: float = 1e-6,
    floor: float = 1e-3,
    order: int = 4,
    seed: int | np.random.Generator | None = 0,
    title: str = "gradient check",
) -> GradCheckResult:
    """Compare analytic gradients with central finite differences of a scalar function.

    Parameters
    ----------
    fn : callable
        ``fn(inputs) -> float``: the scalar whose gradient ``analytic`` claims to be. It is
        called with dicts holding perturbed float64 copies of one input at a time. If it has
        an integer attribute ``crossings`` that it increments whenever an evaluation crossed
        a point where it is not smooth (as the objectives of :func:`check_network` do), a
        check during which it grew is excluded and counted instead of measured.
    inputs : mapping of str to ndarray
        Point at which the gradient was computed. Scalars are allowed (0-d arrays).
    analytic : mapping of str to ndarray
        Gradient of ``fn`` w.r.t. some of the inputs (same shapes); only these are checked.
    eps : float
        Relative step, in (0, 1]: input ``name`` is perturbed by
        ``eps * max(1, rms(inputs[name]))``.
    n_entries : int
        Single entries checked per input (>= 1): all of them if there are at most
        ``n_entries``, else the entry with the largest analytic gradient plus random others.
    n_directions : int
        Random Gaussian directions (unit RMS) checked per input (>= 0); they exercise all
        entries at once, so an error in an unsampled entry still shows.
    tol : float
        A check passes when its relative error (module docstring) is at most ``tol``
        (finite, > 0).
    floor : float
        Errors are measured relative to at least ``floor`` times the input's gradient scale
        (in [0, 1]).
    order : {2, 4, 6}
        Finite-difference stencil (:func:`finite_difference`).
    seed : int or numpy.random.Generator, optional
        For the sampled entries and directions.
    title : str
        Heading of the table.

    Returns
    -------
    GradCheckResult
        One :class:`GradCheckRow` per checked input; ``result.ok``, ``str(result)``.

    Raises
    ------
    ValueError
        A setting out of its range (naming it), or an analytic gradient of the wrong shape.
    KeyError
        An analytic gradient for a name that is not an input.

    Examples
    --------
    >>> f = lambda d: float(np.sum(np.sin(d["a"])))
    >>> a = np.linspace(0, 1, 5)
    >>> check_gradients(f, {"a": a}, {"a": np.cos(a)}).ok
    True
    """
    eps, n_entries, n_directions, tol, floor, order = _check_fd_settings(
        eps, n_entries, n_directions, tol, floor, order
    )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    inputs = {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}
    crossings = _crossing_counter(fn)
    base = []

    def base_value() -> float:
        """``fn(inputs)``, evaluated once and only if a noise probe needs it."""
        if not base:
            base.append(float(fn(inputs)))
        return base[0]

    rows = []
    for name, grad in analytic.items():
        if name not in inputs:
            raise KeyError(
                f"analytic gradient for {name!r}, which is not one of the inputs {sorted(inputs)}"
            )
        grad = np.asarray(grad, dtype=np.float64)
        x = inputs[name]
        if grad.shape != x.shape:
            raise ValueError(
                f"analytic[{name!r}] has shape {grad.shape}, input has shape {x.shape}"
            )
        rms = float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0
        step = eps * max(1.0, rms)
        flat = grad.reshape(-1)
        scale = float(np.max(np.abs(flat))) if flat.size else 0.0
        checks = []  # (label, direction, analytic, denominator floor)
        entries = _sample_entries(flat, n_entries, rng)
        for k in entries:
            d = np.zeros(x.size)
            d[k] = 1.0
            label = str(tuple(int(i) for i in np.unravel_index(k, x.shape))) if x.ndim else "()"
            checks.append((label, d.reshape(x.shape), float(flat[k]), floor * scale))
        n_dirs = n_directions if x.size > 1 else 0
        for j in range(n_dirs):
            d = rng.standard_normal(x.shape)
            d /= np.sqrt(np.mean(d * d))
            checks.append(
                (f"dir {j}", d, float(np.sum(grad * d)), float(np.sum(np.abs(grad * d))))
            )
        max_abs = max_rel = resolution = 0.0
        worst, a_w, n_w = "-", math.nan, math.nan
        excluded = 0
        for label, d, a, fl in checks:
            m = _measure(fn, inputs, name, d, a, fl, step, order, tol, crossings, base_value)
            if m.excluded:
                excluded += 1
                continue
            resolution = max(resolution, m.resolution)
            max_abs = max(max_abs, m.err)
            if m.rel > max_rel or worst == "-":
                max_rel, worst, a_w, n_w = m.rel, label, a, m.numeric
        note = ""
        if checks and excluded == len(checks):
            note = "every check excluded: its stencil crossed a kink"
        elif checks and scale <= resolution:  # FD can only bound such a gradient, not check it
            note = "gradient within the FD resolution"
        rows.append(
            GradCheckRow(
                name=name,
                shape=tuple(x.shape),
                entries=len(entries),
                directions=n_dirs,
                step=step,
                max_abs_err=max_abs,
                max_rel_err=max_rel,
                worst=worst,
                analytic=a_w,
                numeric=n_w,
                ok=bool(max_rel <= tol),
                note=note,
                excluded=excluded,
                resolution=resolution,
            )
        )
    return GradCheckResult(title=title, rows=rows, tol=tol)


# --------------------------------------------------------------------------------------------
# kinks of F
# --------------------------------------------------------------------------------------------


def _kink_points(tapes) -> list[tuple[np.ndarray, tuple[float, ...]]]:
    """``(u, kinks)`` for every LIF tape whose ``F`` has kinks (``u = h - v_th``)."""
    out = []
    for t in tapes:
        if isinstance(t, _functional.LIFTape) and t.h is not None:  # not compact tapes
            kinks = tuple(SURROGATE_KINKS[t.p.surrogate](t.p.alpha))
            if kinks:
                out.append((t.h - t.coeffs.v_th, kinks))
    return out


def _kink_distance(points) -> float:
    """Smallest distance of any ``u`` to a kink of its ``F`` (inf if there are no kinks)."""
    best = math.inf
    for u, kinks in points:
        for k in kinks:
            best = min(best, float(np.min(np.abs(u - k))))
    return best


def _kink_signature(points) -> list[np.ndarray]:
    """Which side of each kink every ``u`` lies on (to detect a stencil crossing one)."""
    return [np.stack([u > k for k in kinks]) for u, kinks in points]


def _same_signature(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def _lif_replay(x, p: LIFParameters, dt: float, z_reset, w_rec=None, state=None):
    """Smooth-mode LIF forward in NumPy with the spikes of the reset term held at ``z_reset``.

    With ``detach_reset=True`` the backward pass computes the gradient of the model in which
    the reset sees the spikes as constants; this is that model, for finite differences.
    At the point where ``z_reset`` was recorded it reproduces the kernel's forward.
    Returns ``(z, u, (v_T, i_T))`` with ``u = h - v_th`` (T, B, N).
    """
    from .kernels.cpu import surrogate_smooth_array
    from .surrogates import surrogate_code

    n_steps, batch, n = x.shape
    a_m = dt * np.broadcast_to(np.asarray(p.tau_mem_inv, np.float64), (n,))
    decay = 1.0 - dt * np.broadcast_to(np.asarray(p.tau_syn_inv, np.float64), (n,))
    v_leak = np.broadcast_to(np.asarray(p.v_leak, np.float64), (n,))
    v_th = np.broadcast_to(np.asarray(p.v_th, np.float64), (n,))
    code, alpha = surrogate_code(p.surrogate), float(p.alpha)
    if state is None:
        v, i, z = (
            np.broadcast_to(v_leak, (batch, n)).copy(),
            np.zeros((batch, n)),
            np.zeros((batch, n)),
        )
    else:
        v, i = np.array(state[0], np.float64), np.array(state[1], np.float64)
        z = (
            np.array(state[2], np.float64)
            if len(state) > 2 and state[2] is not None
            else np.zeros((batch, n))
        )
    zs, us = np.empty((n_steps, batch, n)), np.empty((n_steps, batch, n))
    for t in range(n_steps):
        xt = x[t] if w_rec is None else x[t] + z @ w_rec.T
        i1 = i + xt
        h = v + a_m * ((v_leak - v) + i1)
        i = i1 * decay
        u = us[t]
        np.subtract(h, v_th, out=u)
        z = zs[t]
        surrogate_smooth_array(code, u.reshape(-1), alpha, z.reshape(-1))  # the kernel's F
        zr = z_reset[t]
        v = (1.0 - zr) * h + zr * p.v_reset if p.reset == "zero" else h - zr * (v_th - p.v_reset)
    return zs, us, (v, i)


# --------------------------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------------------------


def smooth_copy(net, dtype=np.float64, smooth: bool | None = True):
    """A copy of a :class:`~numbaspike.network.Sequential` in ``dtype``, optionally in smooth mode.

    The copy is rebuilt with ``Sequential.from_config`` and gets the current parameter
    values; with ``smooth=True`` (``False``) every ``LIF``/``LIFRecurrent`` layer's
    parameters are replaced by ``p.replace(smooth=True)`` (``False``), with ``None`` they are
    kept; smooth copies drop ``sparse_tol`` (the smooth model has no sparse backward). The
    original network is not touched.
    """
    from .network import Sequential

    if not isinstance(net, Sequential):
        raise TypeError(f"net must be a numbaspike Sequential, got {type(net).__name__}")
    cfg = net.config()
    for c in cfg:
        c["dtype"] = np.dtype(dtype).name
        if smooth is not None and c.get("type") in ("LIF", "LIFRecurrent"):
            c["p"]["smooth"] = bool(smooth)
            if smooth:  # the smooth model has no sparse backward: its gradient is exact
                c.pop("sparse_tol", None)
    try:
        copy = Sequential.from_config(cfg)
    except ValueError as err:
        raise TypeError(
            f"cannot rebuild the network from its config ({err}); gradcheck supports the "
            "built-in layers"
        ) from None
    copy.load_parameters({k: np.asarray(v, dtype=dtype) for k, v in net.parameters().items()})
    return copy


def _loss_target(target, dtype):
    """Float targets in the working dtype; labels and other arrays unchanged."""
    if isinstance(target, np.ndarray) and target.dtype.kind == "f":
        return target.astype(dtype)
    return target


def _detached(layer) -> bool:
    p = getattr(layer, "p", None)
    return isinstance(p, LIFParameters) and p.detach_reset


class _NetworkObjective:
    """``params -> loss`` of a (smooth) network, with optional input ``"x"``.

    Counts evaluations that crossed a point where the objective is not smooth, relative to
    the base point: a membrane across a kink of ``F``, or the loss across one of its own
    kinks, seen as a change in which entries of ``dloss/dy`` are zero (the time step of a
    maximum over time, the active side of a rectifier). After :meth:`freeze`, layers with ``detach_reset=True`` run :func:`_lif_replay` with the
    reset spikes of the base point held constant (the function whose gradient the detached
    backward computes).
    """

    def __init__(self, net, x, loss, target) -> None:
        from .layers import LIFRecurrent

        self.net, self.x, self.loss, self.target = net, x, loss, target
        self.signature = None
        self.frozen: dict[int, np.ndarray] = {}
        self.crossings = 0
        self._params = net.parameters()
        self._loaded: dict[str, np.ndarray] = {}  # the array last copied into each parameter
        self._no_autapses = {
            f"{k}.w_rec"
            for k, layer in enumerate(net.layers)
            if isinstance(layer, LIFRecurrent) and not layer.autapses
        }

    def _load(self, params) -> None:
        """Copy the values of ``params`` that changed since the last call into the network.

        Finite differences perturb one parameter at a time and pass the others as the same
        array objects, so copying by identity skips nearly every copy and the validation of
        ``Sequential.load_parameters`` (perturbed neuron parameters are still validated by
        the layers' forward passes).
        """
        for name, value in params.items():
            if self._loaded.get(name) is value:
                continue
            if name not in self._params:
                raise KeyError(
                    f"unknown parameter {name!r}; the network has {sorted(self._params)}"
                )
            self._params[name][...] = value
            if name in self._no_autapses:  # a diagonal that is not a parameter stays 0
                np.fill_diagonal(self._params[name], 0.0)
            self._loaded[name] = value

    def forward(self, x):
        """``(y, tape or None, kink points)``; the tape only without frozen layers."""
        if not self.frozen:
            y, tape = self.net.forward(x)
            return y, tape, _kink_points(tape.tapes)
        points = []
        for k, layer in enumerate(self.net.layers):
            if k in self.frozen:
                p = layer.current_parameters()
                w_rec = layer.parameters().get("w_rec")
                x, u, _ = _lif_replay(x, p, layer.dt, self.frozen[k], w_rec=w_rec)
                kinks = tuple(SURROGATE_KINKS[p.surrogate](p.alpha))
                if kinks:
                    points.append((u, kinks))
            else:
                x, tape = layer.forward(x)
                points += _kink_points([tape])
        return x, None, points

    def run(self, inputs: Mapping[str, np.ndarray]):
        self._load({k: v for k, v in inputs.items() if k != "x"})
        y, tape, points = self.forward(inputs.get("x", self.x))
        value, grad = self.loss(y, self.target)
        return float(value), grad, tape, points

    def freeze(self, tape) -> None:
        """Hold the reset spikes of ``detach_reset`` layers at their values in ``tape``."""
        self.frozen = {
            k: tape.outputs[k].copy()
            for k, layer in enumerate(self.net.layers)
            if _detached(layer)
        }

    @staticmethod
    def signature_of(points, grad_y) -> list[np.ndarray]:
        """Side of every kink of every membrane, and the zero pattern of ``dloss/dy``."""
        return [*_kink_signature(points), np.asarray(grad_y) != 0]

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> float:
        value, grad_y, _, points = self.run(inputs)
        if self.signature is not None and not _same_signature(
            self.signature, self.signature_of(points, grad_y)
        ):
            self.crossings += 1
        return value


def check_network(
    net,
    x: np.ndarray,
    loss,
    target,
    *,
    params: Iterable[str] | None = None,
    input_grad: bool = False,
    eps: float = 1e-4,
    n_entries: int = 8,
    n_directions: int = 2,
    tol: float = 1e-6,
    floor: float = 1e-3,
    order: int = 4,
    seed: int | None = 0,
    threads: int | None = 1,
) -> GradCheckResult:
    """Check every parameter gradient of a network against finite differences, in smooth mode.

    A float64 copy of ``net`` is built with every LIF/LIFRecurrent layer in smooth mode
    (:func:`smooth_copy`, ``p.replace(smooth=True)``); its ``backward`` gradients
    (``net.gradients()``) are compared with central finite differences of
    ``loss(net(x), target)`` by :func:`check_gradients`. ``net`` itself is not modified.

    Parameters
    ----------
    net : Sequential
    x : ndarray (T, B, n_in)
        Input; use something on which the membranes stay away from the kinks of ``F``.
    loss : callable
        ``loss(y, target) -> (value, dvalue/dy)``, e.g. :class:`numbaspike.losses.MembraneMSE`.
    target
        Passed to ``loss`` (float arrays are cast to float64).
    params : iterable of str, optional
        Parameter names (``"<layer>.<name>"``) to check; default all.
    input_grad : bool
        Also check the gradient w.r.t. ``x`` (row ``"x"``).
    eps, n_entries, n_directions, tol, floor, order, seed
        As in :func:`check_gradients`.
    threads : int or None
        Numba threads while checking (default 1: the many small forward passes of finite
        differences are faster without thread start-up); None leaves the setting alone.

    Returns
    -------
    GradCheckResult
        A row per parameter. A check (entry or direction) whose finite-difference stencil
        moved a membrane :math:`u = h - v_{th}` across a kink of :math:`F`, or the loss
        across one of its kinks (e.g. a maximum over time moving to another step), is
        excluded, never failed: the rows count the excluded checks and the notes give the
        total and the smallest distance of a membrane to a kink.

    Raises
    ------
    ValueError
        A setting out of its range, naming it (``tol`` NaN, infinite or <= 0, ...).
    KeyError
        An unknown parameter name in ``params``.
    """
    _check_fd_settings(eps, n_entries, n_directions, tol, floor, order)
    if threads is not None:
        check_positive_int("threads", threads)
    with _numba_threads(threads):
        result, _, _ = _check_network(
            net, x, loss, target, params=params, input_grad=input_grad, eps=eps,
            n_entries=n_entries, n_directions=n_directions, tol=tol, floor=floor, order=order,
            seed=seed,
        )  # fmt: skip
    return result


def _check_network(
    net,
    x,
    loss,
    target,
    *,
    params,
    input_grad,
    eps,
    n_entries,
    n_directions,
    tol,
    floor,
    order,
    seed,
):
    """:func:`check_network`, also returning the smallest kink distance and the crossings."""
    smooth = smooth_copy(net, np.float64, smooth=True)
    x64 = np.ascontiguousarray(x, dtype=np.float64)
    obj = _NetworkObjective(smooth, x64, loss, _loss_target(target, np.float64))
    base = {k: v.copy() for k, v in smooth.parameters().items()}
    names = list(base) if params is None else list(params)
    unknown = sorted(set(names) - set(base))
    if unknown:
        raise KeyError(f"unknown parameters {unknown}; the network has {sorted(base)}")
    smooth.zero_grad()
    value, grad_y, tape, points = obj.run(base)
    obj.signature = obj.signature_of(points, grad_y)  # before backward, which may reuse grad_y
    gx = smooth.backward(grad_y, tape, need_input_grad=input_grad)
    analytic = {
        k: np.array(g, dtype=np.float64) for k, g in smooth.gradients().items() if k in names
    }
    if input_grad:
        analytic["x"] = np.asarray(gx, dtype=np.float64)
    dist = _kink_distance(points)
    notes = [f"loss {value:.6g}"]
    if math.isfinite(dist):
        notes.append(f"closest membrane to a kink of F: |u - kink| = {dist:.2e}")
    replay_ok = True
    if any(_detached(layer) for layer in smooth.layers):
        obj.freeze(tape)
        replayed = obj(base)
        replay_ok = abs(replayed - value) <= 1e-10 * max(1.0, abs(value))
        notes.append(
            "detach_reset layers: finite differences hold the reset spikes at their values "
            f"(NumPy replay of the forward; loss {replayed:.6g} vs kernel {value:.6g})"
        )
    inputs = dict(base)
    if input_grad:
        inputs["x"] = x64
    rng = np.random.default_rng(seed)
    rows = []
    for name, g in analytic.items():
        r = check_gradients(
            obj, inputs, {name: g}, eps=eps, n_entries=n_entries, n_directions=n_directions,
            tol=tol, floor=floor, order=order, seed=rng,
        )  # fmt: skip
        row = r.rows[0]
        if not replay_ok:
            row.ok = False
            row.note = "NumPy replay differs from the kernel forward"
        rows.append(row)
    obj._load(base)
    result = GradCheckResult(
        title="network gradient check (float64, smooth mode)", rows=rows, tol=tol, notes=notes
    )
    if result.excluded:
        result.notes.append(
            f"{result.excluded} checks excluded: a stencil point moved a membrane across a "
            "kink of F or the loss across one of its kinks (a smaller eps excludes fewer)"
        )
    return result, dist, result.excluded


@dataclass
class SurrogateComparisonRow:
    """Surrogate gradient vs the smooth model's finite-difference gradient for one parameter.

    Attributes
    ----------
    name : str
        Parameter name, or ``"all"`` for the concatenation of every compared parameter.
    size : int
    method : str
        ``"full FD"`` or ``"<k> directions"`` (random projections, see
        :func:`compare_surrogate_to_smooth`).
    cosine : float
        Cosine similarity of the surrogate gradient and the smooth model's FD gradient
        (``nan`` when either is exactly zero).
    rel_err : float
        ``|g_surrogate - g_fd| / |g_fd|``.
    norm_surrogate, norm_smooth : float
        The two norms (in the compared subspace).
    fd_err : float
        ``|g_fd - g_smooth| / |g_smooth|`` where ``g_smooth`` is the smooth model's own
        backward gradient: how far the finite differences are from the exact gradient. When
        it is not small the smooth model is too stiff for the step ``eps`` (sharp
        surrogates make its loss vary on tiny scales; lower ``eps``) or a stencil crossed a
        kink of ``F`` (see the notes).
    cosine_exact : float
        Cosine similarity of the surrogate gradient and ``g_smooth`` (no finite-difference
        error; trustworthy where :func:`check_network` passes for the smooth model).
    """

    name: str
    size: int
    method: str
    cosine: float
    rel_err: float
    norm_surrogate: float
    norm_smooth: float
    fd_err: float
    cosine_exact: float


@dataclass
class SurrogateComparison:
    """Result of :func:`compare_surrogate_to_smooth`: a row per parameter and one for all."""

    rows: list[SurrogateComparisonRow]
    title: str = "surrogate gradient vs smooth-model finite differences"
    notes: list[str] = field(default_factory=list)

    @property
    def cosine(self) -> dict[str, float]:
        """Cosine similarity per parameter name (and ``"all"``)."""
        return {r.name: r.cosine for r in self.rows}

    def __getitem__(self, name: str) -> SurrogateComparisonRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def __str__(self) -> str:
        headers = [
            "parameter", "size", "method", "cosine", "rel err", "|surrogate|", "|smooth FD|",
            "FD vs exact", "cosine vs exact",
        ]  # fmt: skip
        rows = [
            [
                r.name,
                str(r.size),
                r.method,
                f"{r.cosine:.6f}",
                _fmt(r.rel_err),
                _fmt(r.norm_surrogate),
                _fmt(r.norm_smooth),
                _fmt(r.fd_err),
                f"{r.cosine_exact:.6f}",
            ]  # fmt: skip
            for r in self.rows
        ]
        lines = [self.title, _table(headers, rows, right=(1, 3, 4, 5, 6, 7, 8))]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _cosine(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float]:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    cos = float(np.dot(a, b) / (na * nb)) if na > 0 and nb > 0 else math.nan
    rel = float(np.linalg.norm(a - b) / nb) if nb > 0 else (0.0 if na == 0 else math.inf)
    return cos, rel, na, nb


def _network_gradients(net, x, loss, target) -> dict[str, np.ndarray]:
    net.zero_grad()
    y, tape = net.forward(x)
    _, grad_y = loss(y, target)
    net.backward(grad_y, tape)
    return {k: np.array(g, dtype=np.float64) for k, g in net.gradients().items()}


def compare_surrogate_to_smooth(
    net,
    x: np.ndarray,
    loss,
    target,
    *,
    params: Iterable[str] | None = None,
    max_full: int = 256,
    n_directions: int = 16,
    eps: float = 1e-8,
    order: int = 4,
    seed: int | None = 0,
    threads: int | None = 1,
) -> SurrogateComparison:
    """How well the surrogate gradient of a spiking network matches a true gradient.

    The surrogate gradient is the backward pass of ``net`` as it is (step forward,
    surrogate backward), computed on a float64 copy. The reference is the gradient of the
    *matching smooth model* (every LIF layer with ``smooth=True``, so ``z = F(h - v_th)``),
    measured by central finite differences of the loss, independently of the backward code.

    For a parameter with at most ``max_full`` entries the full finite-difference gradient is
    measured; for a larger one, ``n_directions`` random directions :math:`d_j` are used and
    the vectors :math:`(g \\cdot d_j)_j` are compared instead (a random projection, which
    preserves cosines approximately).

    Parameters
    ----------
    net : Sequential
        The spiking network (any dtype; not modified).
    x, loss, target
        As in :func:`check_network`.
    params : iterable of str, optional
        Parameters to compare; default all.
    max_full, n_directions, seed
        See above.
    eps, order
        Finite-difference step and stencil (:func:`finite_difference`). The default step is
        small because a smooth model with a sharp surrogate is very stiff; check the
        ``fd_err`` column.
    threads : int or None
        Numba threads while measuring (as in :func:`check_network`).

    Returns
    -------
    SurrogateComparison
        Per parameter (and ``"all"``, the concatenation): cosine similarity, relative
        error, both norms, ``fd_err`` (the distance of the finite differences from the smooth
        model's exact backward gradient) and ``cosine_exact`` (the cosine against that exact
        gradient). A cosine near 1 means the surrogate gradient points where the smooth
        model's loss decreases fastest.

    Raises
    ------
    ValueError
        A setting out of its range, naming it (``eps`` outside (0, 1], ``order`` not 2, 4
        or 6, ``max_full`` < 0, ``n_directions`` < 1, ``threads`` < 1).

    Notes
    -----
    The smooth model approximates the spiking one only for surrogates whose ``F`` tends to
    the step (sigmoid and atan for large ``alpha``, boxcar for small ``alpha``); for the
    others (superspike, tanh, erfc, triangle) ``F`` is a small odd function and the smooth
    model is a different network. Layers with ``detach_reset=True`` keep it for the
    surrogate gradient; the reference is always the full gradient of the smooth model.
    """
    _real("eps", eps, upper=1.0)
    _check_order(order)
    _count("max_full", max_full, 0)
    _count("n_directions", n_directions, 1)
    if threads is not None:
        check_positive_int("threads", threads)
    with _numba_threads(threads):
        return _compare_surrogate_to_smooth(
            net, x, loss, target, params, max_full, n_directions, eps, order, seed
        )


def _compare_surrogate_to_smooth(
    net, x, loss, target, params, max_full, n_directions, eps, order, seed
):
    step_net = smooth_copy(net, np.float64, smooth=None)  # as it is: step (or smooth) mode
    x64 = np.ascontiguousarray(x, dtype=np.float64)
    tgt = _loss_target(target, np.float64)
    base = {k: v.copy() for k, v in step_net.parameters().items()}
    names = list(base) if params is None else list(params)
    unknown = sorted(set(names) - set(base))
    if unknown:
        raise KeyError(f"unknown parameters {unknown}; the network has {sorted(base)}")
    sur = _network_gradients(step_net, x64, loss, tgt)

    smooth = smooth_copy(net, np.float64, smooth=True)
    for layer in smooth.layers:  # the exact gradient of the smooth model: no detaching
        if isinstance(getattr(layer, "p", None), LIFParameters):
            layer.p = layer.p.replace(detach_reset=False)
    exact = _network_gradients(smooth, x64, loss, tgt)
    obj = _NetworkObjective(smooth, x64, loss, tgt)
    _, grad_y, _, points = obj.run(base)
    obj.signature = obj.signature_of(points, grad_y)
    rng = np.random.default_rng(seed)
    rows, all_a, all_b, all_e = [], [], [], []
    for name in names:
        theta = base[name]
        step = eps * max(1.0, float(np.sqrt(np.mean(theta * theta))))
        g, e = sur[name].reshape(-1), exact[name].reshape(-1)
        if theta.size <= max_full:
            dirs = np.eye(theta.size)
            a, ex, method = g, e, "full FD"
        else:
            dirs = rng.standard_normal((n_directions, theta.size))
            dirs /= np.sqrt(np.mean(dirs * dirs, axis=1, keepdims=True))
            a, ex, method = dirs @ g, dirs @ e, f"{n_directions} directions"
        fd = np.array(
            [finite_difference(obj, base, name, d.reshape(theta.shape), step, order) for d in dirs]
        )
        cos, rel, na, nb = _cosine(a, fd)
        fd_err = _cosine(fd, ex)[1]
        cos_exact = _cosine(a, ex)[0]
        rows.append(
            SurrogateComparisonRow(
                name, int(theta.size), method, cos, rel, na, nb, fd_err, cos_exact
            )
        )
        all_a.append(a)
        all_b.append(fd)
        all_e.append(ex)
    obj._load(base)
    if len(rows) > 1:
        cos, rel, na, nb = _cosine(np.concatenate(all_a), np.concatenate(all_b))
        fd_err = _cosine(np.concatenate(all_b), np.concatenate(all_e))[1]
        cos_exact = _cosine(np.concatenate(all_a), np.concatenate(all_e))[0]
        rows.append(
            SurrogateComparisonRow(
                "all",
                sum(r.size for r in rows),
                "concatenated",
                cos,
                rel,
                na,
                nb,
                fd_err,
                cos_exact,
            )
        )
    notes = []
    if obj.crossings:
        notes.append(
            f"{obj.crossings} finite-difference evaluations moved a membrane across a kink of F; "
            "their entries are unreliable (lower eps)"
        )
    return SurrogateComparison(rows, notes=notes)


# --------------------------------------------------------------------------------------------
# the suite
# --------------------------------------------------------------------------------------------

#: alpha per surrogate in the suite: sharp enough to be interesting, smooth enough for FD.
SUITE_ALPHA = {
    "superspike": 5.0,
    "sigmoid": 5.0,
    "atan": 3.0,
    "tanh": 3.0,
    "erfc": 3.0,
    "triangle": 0.5,
    "boxcar": 0.5,
}
#: Problem size of the suite: steps, batch, neurons.
SUITE_SHAPE = (20, 2, 4)
#: The suite re-draws a problem whose membranes come closer than this to a kink of F.
SUITE_KINK_MARGIN = 1e-3
_SUITE_DRAWS = 25
_LIF_FIELDS = ("tau_mem_inv", "tau_syn_inv", "v_th", "v_leak")
_LI_FIELDS = ("tau_mem_inv", "tau_syn_inv", "v_leak")


class _SuiteLoss:
    """``L = sum(R * y) + 0.25 * sum(y**2)``: a fixed random, nonlinear readout of the output."""

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = weights

    def __call__(self, y, target=None):
        value = float(np.sum(self.weights * y) + 0.25 * np.sum(y * y))
        return value, self.weights + 0.5 * y


def _neuron_draw(rng, n: int, lif: bool) -> dict[str, np.ndarray]:
    out = {
        "tau_mem_inv": rng.uniform(150.0, 250.0, n),
        "tau_syn_inv": rng.uniform(150.0, 300.0, n),
        "v_leak": rng.uniform(-0.1, 0.1, n),
    }
    if lif:
        out["v_th"] = rng.uniform(0.8, 1.2, n)
    return out


class _LayerProblem:
    """A random problem for one functional layer (``lif_forward``/``li_forward``), float64.

    ``LIF``: feed-forward, default initial state (so ``v_leak`` also sets ``v0``).
    ``LIFRecurrent``: recurrent weights, a given initial state ``(v0, i0, z0)`` and a loss that
    also reads the final state (the truncated-BPTT path). ``LI``: given state, final-state loss.
    """

    def __init__(self, kind: str, p, rng: np.random.Generator) -> None:
        n_steps, batch, n = SUITE_SHAPE
        self.kind, self.p, self.dt = kind, p, 1e-3
        lif = kind != "LI"
        self.fields = _LIF_FIELDS if lif else _LI_FIELDS
        self.inputs = {"x": rng.normal(0.3, 0.35, (n_steps, batch, n))}
        if kind == "LIFRecurrent":
            self.inputs["w_rec"] = rng.normal(0.0, 0.6 / math.sqrt(n), (n, n))
        if kind != "LIF":
            self.inputs["v0"] = rng.uniform(-0.2, 0.8, (batch, n))
            self.inputs["i0"] = rng.uniform(-0.5, 1.5, (batch, n))
        if kind == "LIFRecurrent":
            self.inputs["z0"] = rng.uniform(0.0, 1.0, (batch, n))
        self.inputs.update(_neuron_draw(rng, n, lif))
        self.loss = _SuiteLoss(rng.normal(0.0, 1.0, (n_steps, batch, n)))
        self.final_weights = None if kind == "LIF" else rng.normal(0.0, 1.0, (2, batch, n))
        self.signature = None
        self.frozen = None  # reset spikes held constant (detach_reset), set by analytic()
        self.crossings = 0

    def _params(self, inputs, smooth):
        values = {k: inputs[k] for k in self.fields}
        if self.kind == "LI":
            return LIParameters(**values)
        return self.p.replace(smooth=smooth, **values)

    def run(self, inputs, smooth: bool = True):
        """``(loss, dloss/dy, tape or None, kink points)``; the replay (no tape) once frozen."""
        x = inputs["x"]
        p = self._params(inputs, smooth)
        tape = None
        if self.kind == "LI":
            y, tape = _functional.li_forward(x, p, self.dt, state=(inputs["v0"], inputs["i0"]))
            final, points = tape.final_state, []
        elif self.frozen is not None:
            w_rec = inputs.get("w_rec")
            state = None if self.kind == "LIF" else (inputs["v0"], inputs["i0"], inputs["z0"])
            y, u, final = _lif_replay(x, p, self.dt, self.frozen, w_rec=w_rec, state=state)
            kinks = tuple(SURROGATE_KINKS[p.surrogate](p.alpha))
            points = [(u, kinks)] if kinks else []
        else:
            if self.kind == "LIF":
                y, tape = _functional.lif_forward(x, p, self.dt)
            else:
                state = (inputs["v0"], inputs["i0"], inputs["z0"])
                y, tape = _functional.lif_forward(
                    x, p, self.dt, w_rec=inputs["w_rec"], state=state
                )
            final, points = tape.final_state, _kink_points([tape])
        value, grad_y = self.loss(y)
        if self.final_weights is not None:
            value += float(
                np.sum(self.final_weights[0] * final[0]) + np.sum(self.final_weights[1] * final[1])
            )
        return value, grad_y, tape, points

    def __call__(self, inputs) -> float:
        value, _, _, points = self.run(inputs)
        if self.signature is not None and not _same_signature(
            self.signature, _kink_signature(points)
        ):
            self.crossings += 1
        return value

    def analytic(self, smooth: bool = True):
        """``(gradients, loss, kink points)`` from the hand-written backward (looked up on the
        module at call time). In smooth mode with ``detach_reset`` it also freezes the reset
        spikes for the finite differences."""
        self.frozen = None
        value, grad_y, tape, points = self.run(self.inputs, smooth)
        final = (
            None if self.final_weights is None else (self.final_weights[0], self.final_weights[1])
        )
        if self.kind == "LI":
            g = _functional.li_backward(grad_y, tape, grad_final_state=final)
        else:
            g = _functional.lif_backward(grad_y, tape, grad_final_state=final)
        grads = {"x": g.x}
        if self.kind != "LIF":
            grads["v0"], grads["i0"] = g.v0, g.i0
        if self.kind == "LIFRecurrent":
            grads["w_rec"], grads["z0"] = g.w_rec, g.z0
        for k in self.fields:
            grads[k] = getattr(g, k)
        if smooth and self.kind != "LI" and self.p.detach_reset:
            self.frozen = tape.z.copy()
        grads = {k: np.asarray(grads[k], dtype=np.float64) for k in self.inputs}
        return grads, value, points

    def torch_gradients(self, smooth: bool = True) -> dict[str, np.ndarray]:
        """The same gradients from :mod:`numbaspike.torch_reference` (PyTorch autograd)."""
        import torch

        from . import torch_reference as ref

        t = {
            k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
            for k, v in self.inputs.items()
        }
        neuron = {k: t[k] for k in self.fields}
        if self.kind == "LI":
            y, (v_fin, i_fin) = ref.li_forward(
                t["x"], LIParameters(), self.dt, state=(t["v0"], t["i0"]), **neuron
            )
        elif self.kind == "LIF":
            y, (v_fin, i_fin, _) = ref.lif_forward(
                t["x"], self.p.replace(smooth=smooth), self.dt, **neuron
            )
        else:
            state = (t["v0"], t["i0"], t["z0"])
            y, (v_fin, i_fin, _) = ref.lif_forward(
                t["x"],
                self.p.replace(smooth=smooth),
                self.dt,
                w_rec=t["w_rec"],
                state=state,
                **neuron,
            )
        w = torch.tensor(self.loss.weights)
        value = torch.sum(w * y) + 0.25 * torch.sum(y * y)
        if self.final_weights is not None:
            fw = torch.tensor(self.final_weights)
            value = value + torch.sum(fw[0] * v_fin) + torch.sum(fw[1] * i_fin)
        value.backward()
        return {k: v.grad.numpy().copy() for k, v in t.items()}


class _NetworkProblem:
    """Linear(3→4) → LIFRecurrent(4, all neuron parameters learned) → Linear(4→2, bias) → LI(2, learned)."""

    def __init__(self, p, rng: np.random.Generator) -> None:
        from .layers import LI, LIFRecurrent, Linear
        from .network import Sequential

        n_steps, batch, n = SUITE_SHAPE
        f64 = np.float64
        lif = _neuron_draw(rng, n, True)
        li = _neuron_draw(rng, 2, False)
        self.net = Sequential(
            Linear(3, n, seed=rng, dtype=f64),
            LIFRecurrent(n, p.replace(**lif), learn=_LIF_FIELDS, seed=rng, scale=1.0, dtype=f64),
            Linear(n, 2, bias=True, seed=rng, dtype=f64),
            LI(2, LIParameters(**li), learn=_LI_FIELDS, dtype=f64),
        )
        params = self.net.parameters()
        params["0.weight"][...] = rng.normal(0.2, 0.25, (n, 3))
        params["1.w_rec"][...] = rng.normal(0.0, 0.6 / math.sqrt(n), (n, n))
        params["2.weight"][...] = rng.normal(0.0, 0.5, (2, n))
        self.x = rng.uniform(0.0, 2.0, (n_steps, batch, 3))
        self.loss = _SuiteLoss(rng.normal(0.0, 1.0, (n_steps, batch, 2)))

    def kink_distance(self) -> float:
        net = smooth_copy(self.net, np.float64, smooth=True)
        return _kink_distance(_kink_points(net.forward(self.x)[1].tapes))

    def analytic(self, smooth: bool) -> dict[str, np.ndarray]:
        net = smooth_copy(self.net, np.float64, smooth=smooth)
        net.zero_grad()
        y, tape = net.forward(self.x)
        net.backward(self.loss(y)[1], tape)
        return {k: np.array(v) for k, v in net.gradients().items()}

    def torch_gradients(self, smooth: bool) -> dict[str, np.ndarray]:
        import torch

        from . import torch_reference as ref

        t = {k: torch.tensor(v, requires_grad=True) for k, v in self.net.parameters().items()}
        y = ref.network_forward(self.net, torch.tensor(self.x), t, smooth=smooth)
        w = torch.tensor(self.loss.weights)
        (torch.sum(w * y) + 0.25 * torch.sum(y * y)).backward()
        return {k: v.grad.numpy().copy() for k, v in t.items()}


def _torch_error(ours: Mapping[str, np.ndarray], theirs: Mapping[str, np.ndarray]) -> float:
    """max over inputs of max|ours - theirs| / max|theirs|."""
    worst = 0.0
    for k, ref in theirs.items():
        a = np.asarray(ours[k], dtype=np.float64)
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        err = float(np.max(np.abs(a - ref))) if ref.size else 0.0
        rel = err / scale if scale > 0 else (0.0 if err == 0 else math.inf)
        worst = max(worst, rel if math.isfinite(rel) else math.inf)
    return worst


@dataclass
class SuiteCase:
    """One case of :func:`run_gradcheck_suite`.

    Attributes
    ----------
    layer : str
        ``"LIF"``, ``"LIFRecurrent"``, ``"LI"`` or ``"Sequential"``.
    surrogate, reset : str
        ``"-"`` for the leaky integrator.
    detach : bool or None
        ``detach_reset`` (None for the leaky integrator).
    alpha : float or None
    result : GradCheckResult or None
        Finite-difference check of every input (None if no valid problem was found).
    torch_smooth, torch_step : float or None
        Largest relative difference to the PyTorch reference in smooth and in step
        (spiking) mode, when ``torch=True``.
    draws : int
        Random problems drawn until one kept its membranes away from the kinks of F.
    note : str
    """

    layer: str
    surrogate: str
    reset: str
    detach: bool | None
    alpha: float | None
    result: GradCheckResult | None
    torch_smooth: float | None = None
    torch_step: float | None = None
    draws: int = 1
    note: str = ""
    tol: float = 1e-6

    @property
    def name(self) -> str:
        """E.g. ``"LIFRecurrent/sigmoid/subtract/detach"``."""
        if self.layer == "LI":
            return "LI"
        tail = "detach" if self.detach else "attached"
        return f"{self.layer}/{self.surrogate}/{self.reset}/{tail}"

    @property
    def ok(self) -> bool:
        if self.result is None or not self.result.ok:
            return False
        return all(e is None or e <= self.tol for e in (self.torch_smooth, self.torch_step))


@dataclass
class GradcheckSuiteReport:
    """Result of :func:`run_gradcheck_suite`: ``ok``, ``cases`` and a table as ``str(report)``."""

    cases: list[SuiteCase]
    tol: float
    seed: int
    torch: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return bool(self.cases) and all(c.ok for c in self.cases)

    @property
    def failures(self) -> list[SuiteCase]:
        return [c for c in self.cases if not c.ok]

    @property
    def max_rel_err(self) -> float:
        return max(
            (c.result.max_rel_err for c in self.cases if c.result is not None), default=math.inf
        )

    @property
    def checks(self) -> int:
        """Finite-difference checks tried over all cases."""
        return sum(c.result.checks for c in self.cases if c.result is not None)

    @property
    def excluded(self) -> int:
        """Checks excluded over all cases (their stencils crossed a kink)."""
        return sum(c.result.excluded for c in self.cases if c.result is not None)

    def __str__(self) -> str:
        headers = [
            "layer",
            "surrogate",
            "alpha",
            "reset",
            "detach",
            "FD max rel err",
            "worst input",
        ]
        if self.torch:
            headers += ["torch smooth", "torch step"]
        headers.append("result")
        rows = []
        for c in self.cases:
            worst = c.result.worst_row if c.result is not None else None
            row = [
                c.layer,
                c.surrogate,
                "-" if c.alpha is None else f"{c.alpha:g}",
                c.reset,
                "-" if c.detach is None else ("yes" if c.detach else "no"),
                _fmt(c.result.max_rel_err) if c.result is not None else "-",
                worst.name if worst is not None else "-",
            ]
            if self.torch:
                row += [_fmt(c.torch_smooth), _fmt(c.torch_step)]
            row.append(("ok" if c.ok else "FAIL") + (f" ({c.note})" if c.note else ""))
            rows.append(row)
        right = [2, 5] + ([7, 8] if self.torch else [])
        n_fail = len(self.failures)
        head = (
            f"numbaspike gradcheck: analytic BPTT vs central finite differences, float64, smooth "
            f"mode, T,B,N = {SUITE_SHAPE}; relative error tolerance {self.tol:g}, seed {self.seed}"
        )
        lines = [head, _table(headers, rows, right=right), ""]
        for c in self.failures:
            lines.append(f"FAILED: {c.name}")
            if c.result is not None:
                lines.append(str(c.result))
            lines.append("")
        summary = (
            f"{len(self.cases)} cases, {len(self.cases) - n_fail} passed, {n_fail} failed; "
            f"{self.checks} checks, {self.excluded} excluded; "
            f"largest FD relative error {_fmt(self.max_rel_err)}; {self.seconds:.1f} s"
        )
        lines.append(("OK: " if self.ok else "FAILED: ") + summary)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"GradcheckSuiteReport(ok={self.ok}, cases={len(self.cases)}, failures={len(self.failures)})"


def _import_torch_reference():
    try:
        import torch  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "run_gradcheck_suite(torch=True) / `numbaspike gradcheck --torch` needs PyTorch "
            "(pip install torch)"
        ) from err
    from . import torch_reference

    return torch_reference


def _layer_case(kind, p, tol, seed, use_torch, check_kw) -> SuiteCase:
    alpha = None if kind == "LI" else float(p.alpha)
    case = SuiteCase(
        kind,
        p.surrogate if p else "-",
        p.reset if p else "-",
        p.detach_reset if p else None,
        alpha,
        None,
        tol=tol,
    )
    for draw in range(_SUITE_DRAWS):
        rng = np.random.default_rng([seed, zlib.crc32(case.name.encode()), draw])
        prob = _LayerProblem(kind, p, rng)
        analytic, value, points = prob.analytic(smooth=True)
        if _kink_distance(points) < SUITE_KINK_MARGIN:
            continue
        prob.signature = _kink_signature(points)
        if prob.frozen is not None:
            replayed = prob(prob.inputs)
            if abs(replayed - value) > 1e-10 * max(1.0, abs(value)):
                case.note = f"NumPy replay of the forward differs from the kernel ({replayed!r} vs {value!r})"
                return case
        result = check_gradients(
            prob, prob.inputs, analytic, tol=tol, seed=rng, title=case.name, **check_kw
        )
        if prob.crossings:
            continue
        case.result, case.draws = result, draw + 1
        if use_torch:
            case.torch_smooth = _torch_error(analytic, prob.torch_gradients(smooth=True))
            step_grads, _, _ = prob.analytic(smooth=False)
            case.torch_step = _torch_error(step_grads, prob.torch_gradients(smooth=False))
        return case
    case.draws = _SUITE_DRAWS
    case.note = f"no problem kept its membranes {SUITE_KINK_MARGIN:g} away from the kinks of F"
    return case


def _network_case(p, tol, seed, use_torch, check_kw) -> SuiteCase:
    case = SuiteCase(
        "Sequential", p.surrogate, p.reset, p.detach_reset, float(p.alpha), None, tol=tol
    )
    for draw in range(_SUITE_DRAWS):
        rng = np.random.default_rng([seed, zlib.crc32(case.name.encode()), draw])
        prob = _NetworkProblem(p, rng)
        if prob.kink_distance() < SUITE_KINK_MARGIN:
            continue
        result, _, crossings = _check_network(
            prob.net,
            prob.x,
            prob.loss,
            None,
            params=None,
            input_grad=True,
            tol=tol,
            seed=rng,
            **check_kw,
        )
        if crossings:
            continue
        result.title = case.name
        case.result, case.draws = result, draw + 1
        if use_torch:
            case.torch_smooth = _torch_error(prob.analytic(True), prob.torch_gradients(True))
            case.torch_step = _torch_error(prob.analytic(False), prob.torch_gradients(False))
        return case
    case.draws = _SUITE_DRAWS
    case.note = f"no problem kept its membranes {SUITE_KINK_MARGIN:g} away from the kinks of F"
    return case


def run_gradcheck_suite(
    tol: float = 1e-6,
    seed: int = 0,
    torch: bool = False,
    *,
    layers: Iterable[str] = ("LIF", "LIFRecurrent", "LI", "Sequential"),
    surrogates: Iterable[str] = SURROGATE_NAMES,
    eps: float = 7e-5,
    n_entries: int = 4,
    n_directions: int = 2,
    order: int = 6,
    floor: float = 1e-2,
) -> GradcheckSuiteReport:
    """Check the BPTT gradients of every layer kind against finite differences (smooth mode).

    Cases (float64, ``T, B, N =`` :data:`SUITE_SHAPE`, ``alpha`` from :data:`SUITE_ALPHA`):

    * ``LIF`` (feed-forward) and ``LIFRecurrent`` × every surrogate × reset
      (``zero``/``subtract``) × ``detach_reset`` (no/yes): gradients w.r.t. the input, the
      neuron parameters ``tau_mem_inv, tau_syn_inv, v_th, v_leak`` (per neuron) and, for the
      recurrent layer, ``w_rec`` and the initial state ``v0, i0, z0`` (its loss also reads
      the final state, so the truncated-BPTT path is checked too);
    * ``LI``: input, neuron parameters, initial state, final-state loss;
    * ``Sequential`` (Linear → LIFRecurrent → Linear → LI, all neuron parameters learned)
      per surrogate, cycling through reset × detach: every parameter and the input, via
      :func:`check_network`.

    Each case draws a random problem and re-draws it (up to 25 times) until no membrane
    :math:`u = h - v_{th}` is within :data:`SUITE_KINK_MARGIN` of a kink of ``F`` and no
    finite-difference stencil moves one across a kink.

    Parameters
    ----------
    tol : float
        Largest relative error (see :func:`check_gradients`) for a case to pass; finite and
        > 0.
    seed : int
        Seed of the random problems (>= 0).
    torch : bool
        Also compare every case with the PyTorch-autograd implementation
        (:mod:`numbaspike.torch_reference`), in smooth mode and in step (spiking) mode; needs
        PyTorch.
    layers, surrogates : iterable of str
        Restrict the suite (default: everything).
    eps, n_entries, n_directions, order, floor
        Finite-difference settings, as in :func:`check_gradients`. The defaults (sixth-order
        stencil, ``floor=1e-2``) keep the largest error of the default suite near 1e-8 and
        below 1e-7 for every seed tried (0-59), far under the default tolerance.

    Returns
    -------
    GradcheckSuiteReport
        ``report.ok``; ``print(report)`` shows a row per case.

    Raises
    ------
    ValueError
        A setting out of its range, naming it (``tol`` NaN, infinite, <= 0 or not a
        number; ``eps`` outside (0, 1]; ``n_entries`` < 1; ...), or unknown ``layers`` or
        ``surrogates``.
    """
    check_kw = dict(
        zip(
            ("eps", "n_entries", "n_directions", "tol", "floor", "order"),
            _check_fd_settings(eps, n_entries, n_directions, tol, floor, order),
            strict=True,
        )
    )
    tol = check_kw.pop("tol")
    seed = _count("seed", seed, 0)
    if torch:
        _import_torch_reference()
    layers = tuple(layers)
    surrogates = tuple(surrogates)
    unknown = set(layers) - {"LIF", "LIFRecurrent", "LI", "Sequential"}
    if unknown:
        raise ValueError(
            f"layers: unknown {sorted(unknown)}; expected LIF, LIFRecurrent, LI, Sequential"
        )
    for s in surrogates:
        if s not in SURROGATE_KINKS:
            raise ValueError(f"surrogates: unknown {s!r}; expected some of {SURROGATE_NAMES}")
    with _numba_threads(1):  # tiny problems: thread start-up would dominate every call
        return _run_suite(tol, seed, torch, layers, surrogates, check_kw)


def _run_suite(tol, seed, torch, layers, surrogates, check_kw) -> GradcheckSuiteReport:
    start = time.perf_counter()
    cases: list[SuiteCase] = []
    combos = [(r, d) for r in ("zero", "subtract") for d in (False, True)]
    for kind in ("LIF", "LIFRecurrent"):
        if kind not in layers:
            continue
        for s in surrogates:
            for reset, detach in combos:
                p = LIFParameters(
                    surrogate=s,
                    alpha=SUITE_ALPHA.get(s, 10.0),
                    reset=reset,
                    detach_reset=detach,
                    v_reset=-0.1,
                )
                cases.append(_layer_case(kind, p, tol, seed, torch, check_kw))
    if "LI" in layers:
        cases.append(_layer_case("LI", None, tol, seed, torch, check_kw))
    if "Sequential" in layers:
        for k, s in enumerate(surrogates):
            reset, detach = combos[k % len(combos)]
            p = LIFParameters(
                surrogate=s,
                alpha=SUITE_ALPHA.get(s, 10.0),
                reset=reset,
                detach_reset=detach,
                v_reset=-0.1,
            )
            cases.append(_network_case(p, tol, seed, torch, check_kw))
    return GradcheckSuiteReport(cases, tol, seed, bool(torch), time.perf_counter() - start)
