r"""How close a surrogate gradient is to a true gradient: :func:`compare_surrogate_to_smooth`."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ..validation import check_positive_int
from .finite_difference import (
    _check_order,
    _count,
    _fmt,
    _numba_threads,
    _real,
    _table,
    finite_difference,
)
from .network import _loss_target, _NetworkObjective, smooth_copy

__all__ = ["SurrogateComparisonRow", "SurrogateComparison", "compare_surrogate_to_smooth"]


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
    *matching smooth model* (every spiking layer with ``smooth=True``, so ``z = F(u)``),
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
        if hasattr(getattr(layer, "p", None), "detach_reset"):
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
