"""The records of the LIF and LI functional API, below both of its paths.

The state, tape, gradient and simulation records, the coefficients of the tuned kernels and
the checks of :func:`~numbaspike.lif_simulate`'s inputs, shared by the CPU path
(:mod:`numbaspike.functional`) and the CUDA path (:mod:`numbaspike.backend`), so that
neither imports the other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .models import model_of
from .models.li import LIParameters
from .models.lif import LIFParameters
from .validation import check_positive_int

if TYPE_CHECKING:
    from .compact_tape import CompactTape

__all__ = [
    "Coefficients",
    "LIFGradients",
    "LIFState",
    "LIFTape",
    "LIGradients",
    "LIState",
    "LITape",
    "RECORDABLE",
    "Simulation",
    "check_record",
    "coefficients",
    "input_chunks",
]


class LIFState(NamedTuple):
    """State of a LIF layer: membrane ``v``, synaptic current ``i``, last spikes ``z``, each (B, N)."""

    v: np.ndarray
    i: np.ndarray
    z: np.ndarray | None = None


class LIState(NamedTuple):
    """State of a leaky integrator: membrane ``v`` and synaptic current ``i``, each (B, N)."""

    v: np.ndarray
    i: np.ndarray


class Coefficients(NamedTuple):
    """Per-neuron coefficients of the Euler step in the working dtype, each (N,)."""

    a_m: np.ndarray
    decay_s: np.ndarray
    v_leak: np.ndarray
    v_th: np.ndarray
    v_reset: np.floating


def coefficients(p: LIFParameters | LIParameters, dt: float, n: int, dtype) -> Coefficients:
    """The per-neuron coefficients of the tuned kernels, from the model file's rows
    (:data:`numbaspike.models.LIF` / :data:`~numbaspike.models.LI`), in the working dtype."""
    model = model_of(p)
    dtype = np.dtype(dtype)
    rows = model.make_coefficients(p, dt, n, dtype)
    if model.spiking:
        return Coefficients(rows[0], rows[1], rows[2], rows[3], dtype.type(p.v_reset))
    return Coefficients(rows[0], rows[1], rows[2], np.zeros(0, dtype), dtype.type(0))


@dataclass(eq=False)
class LIFTape:
    """What :func:`lif_backward` needs from :func:`lif_forward`.

    Attributes
    ----------
    h : ndarray (T, B, N) or None
        Membrane before reset; the spikes are ``h > v_th`` (or ``F(h - v_th)`` if smooth).
        None when ``compact`` holds the tape instead.
    i1 : ndarray (T, B, N) or None
        Current after the jump, kept only when parameter gradients were requested.
    z : ndarray (T, B, N)
        The returned spikes (a reference; the CPU backward pass recomputes the spikes from
        ``h``, so changing the returned array cannot corrupt the gradients).
    final_state : LIFState
        State after the last step; pass it as ``state`` to continue a simulation.
    backend : {"cpu", "cuda"}
        Where the arrays live (NumPy arrays or CUDA device arrays); :func:`lif_backward`
        runs there.
    compact : CompactTape or None
        With ``sparse_tol``: spikes as bits and the membranes of the active neuron-steps
        (:mod:`numbaspike.compact_tape`).
    """

    p: LIFParameters
    dt: float
    coeffs: Coefficients
    h: np.ndarray | None
    i1: np.ndarray | None
    z: np.ndarray
    v0: np.ndarray
    z0: np.ndarray
    w_rec: np.ndarray | None
    state_given: bool
    final_state: LIFState
    backend: str = "cpu"
    compact: CompactTape | None = None

    @property
    def nbytes(self) -> int:
        """Bytes held by the tape itself (excluding the referenced output)."""
        held = self.compact.nbytes if self.compact is not None else self.h.nbytes
        return held + (0 if self.i1 is None else self.i1.nbytes)


@dataclass(eq=False)
class LIFGradients:
    """Gradients returned by :func:`lif_backward`.

    ``x`` is (T, B, N); ``w_rec`` (N, N) or None; ``v0``, ``i0`` (B, N) are the gradients of
    the initial state and ``z0`` (B, N) that of the initial spikes (recurrent only). Parameter
    gradients have the shape the parameter was given with (float for a scalar, (N,) array
    otherwise) and are None when the forward was run with ``param_grads=False``.
    """

    x: np.ndarray
    w_rec: np.ndarray | None
    v0: np.ndarray
    i0: np.ndarray
    z0: np.ndarray | None
    tau_mem_inv: float | np.ndarray | None
    tau_syn_inv: float | np.ndarray | None
    v_th: float | np.ndarray | None
    v_leak: float | np.ndarray | None


@dataclass(eq=False)
class LITape:
    """What :func:`li_backward` needs: the output membrane (a reference), ``i'`` if parameter
    gradients were requested, the initial membrane, the final state and the ``backend``
    (``"cpu"`` or ``"cuda"``) that holds them."""

    p: LIParameters
    dt: float
    coeffs: Coefficients
    v: np.ndarray
    i1: np.ndarray | None
    v0: np.ndarray
    state_given: bool
    final_state: LIState
    backend: str = "cpu"


@dataclass(eq=False)
class LIGradients:
    """Gradients returned by :func:`li_backward` (shapes as in :class:`LIFGradients`)."""

    x: np.ndarray
    v0: np.ndarray
    i0: np.ndarray
    tau_mem_inv: float | np.ndarray | None
    tau_syn_inv: float | np.ndarray | None
    v_leak: float | np.ndarray | None


@dataclass(eq=False)
class Simulation:
    r"""Result of :func:`lif_simulate`.

    Attributes
    ----------
    steps : int
        Number of simulated steps.
    spike_counts : ndarray (B, N) int64
        Spikes per neuron over the whole run, :math:`\sum_t z_t` (always kept).
    spike_times, spike_batch, spike_neurons : ndarray (S,) int64 or None
        One entry per spike, in time order (only with ``record=(..., "spikes")``).
    v, i : ndarray (T, B, N) or None
        Membrane (after reset) and synaptic-current traces (only with ``"v"`` / ``"i"``
        in ``record``).
    final_state : LIFState
    """

    steps: int
    spike_counts: np.ndarray
    spike_times: np.ndarray | None
    spike_batch: np.ndarray | None
    spike_neurons: np.ndarray | None
    v: np.ndarray | None
    i: np.ndarray | None
    final_state: LIFState

    def spike_raster(self) -> np.ndarray:
        """Dense (T, B, N) uint8 raster rebuilt from the recorded spike events."""
        if self.spike_times is None:
            raise ValueError("spikes were not recorded; pass record=('spikes',) to lif_simulate")
        raster = np.zeros((self.steps, *self.spike_counts.shape), np.uint8)
        raster[self.spike_times, self.spike_batch, self.spike_neurons] = 1
        return raster


RECORDABLE = ("counts", "spikes", "v", "i")


def check_record(record) -> tuple[str, ...]:
    """``record`` of :func:`lif_simulate` as a tuple of known names (a str is one name)."""
    names = (record,) if isinstance(record, str) else record
    try:
        names = tuple(names)
    except TypeError:
        raise ValueError(
            f"record must be a tuple of names from {RECORDABLE}, got {record!r}"
        ) from None
    unknown = [r for r in names if not isinstance(r, str) or r not in RECORDABLE]
    if unknown:
        raise ValueError(f"record must be a subset of {RECORDABLE}, got unknown {unknown}")
    return names


def input_chunks(x, steps, chunk):
    """Yield C-contiguous (t, B, N) chunks from an array, a constant current, or an iterable."""
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], np.ndarray) and x[0].ndim == 3:
        yield from x  # a list of (t, B, N) chunks
        return
    if isinstance(x, np.ndarray) or np.isscalar(x) or isinstance(x, (list, tuple)):
        arr = np.asarray(x)
        if arr.ndim == 3:
            if steps is not None and steps != arr.shape[0]:
                raise ValueError(f"steps={steps} does not match x.shape[0]={arr.shape[0]}")
            for t0 in range(0, arr.shape[0], chunk):
                yield arr[t0 : t0 + chunk]
            return
        if arr.ndim == 2:
            if steps is None:
                raise ValueError(
                    "steps must be given when x is a constant current of shape (B, N)"
                )
            steps = check_positive_int("steps", steps)
            block = np.ascontiguousarray(np.broadcast_to(arr, (min(chunk, steps), *arr.shape)))
            for t0 in range(0, steps, chunk):
                yield block[: min(chunk, steps - t0)]
            return
        raise ValueError(
            f"x must have shape (T, B, N), or (B, N) with steps=, got shape {arr.shape}"
        )
    if isinstance(x, Iterable):
        yield from x
        return
    raise TypeError(
        "x must be an array (T, B, N), a (B, N) constant current, or an iterable of chunks"
    )
