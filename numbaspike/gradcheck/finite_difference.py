r"""Finite differences with a resolution: the core of :mod:`numbaspike.gradcheck`.

:func:`check_gradients` compares any analytic gradient with central finite differences of a
scalar function (sampled entries and random directions), :func:`finite_difference` is one
stencil; the result types :class:`GradCheckRow` and :class:`GradCheckResult` and the plain
text tables are shared by the other tools of the package.

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "GradCheckRow",
    "GradCheckResult",
    "finite_difference",
    "check_gradients",
    "ROUNDING_SAFETY",
    "NOISE_SAFETY",
    "MAX_HALVINGS",
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
