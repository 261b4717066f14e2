"""Forward-only simulation of the generic neuron models (:func:`numbaspike.neuron_simulate`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kernels.neuron_driver import cpu_kernels, run_rows
from .lif_records import input_chunks
from .validation import as_float_array, check_all_finite, check_positive_int, sum_is_finite

__all__ = ["SimulationRecord", "simulate"]


@dataclass(eq=False)
class SimulationRecord:
    """Result of :func:`numbaspike.neuron_simulate` for a generic model.

    Attributes
    ----------
    steps : int
    spike_counts : ndarray (B, N) int64
        Spikes per neuron over the run (always kept; in smooth mode, the steps with
        :math:`F(u) > 0`).
    spikes : ndarray (T, B, N) or None
        The raster (``record`` with ``"spikes"``).
    traces : dict of str to ndarray (T, B, N)
        The state variables named in ``record``, after each step.
    final_state : dict of str to ndarray (B, N)
    """

    steps: int
    spike_counts: np.ndarray
    spikes: np.ndarray | None
    traces: dict
    final_state: dict


def _check_record(model, record) -> tuple[str, ...]:
    known = ("counts", "spikes", *model.state)
    names = (record,) if isinstance(record, str) else record
    try:
        names = tuple(names)
    except TypeError:
        raise ValueError(f"record must be a tuple of names from {known}, got {record!r}") from None
    unknown = [r for r in names if not isinstance(r, str) or r not in known]
    if unknown:
        raise ValueError(
            f"record must be a subset of {known} for the {model.name} model, got unknown {unknown}"
        )
    return names


def simulate(model, x, p, dt, w_rec, state, steps, record, chunk, backend) -> SimulationRecord:
    """Run ``model`` forward over ``x`` (T, B, N), a (B, N) constant current for ``steps``, or
    an iterable of (t, B, N) chunks, keeping the spike counts and what ``record`` names."""
    from .neuron import _check_size, _initial_state, _state_items

    if backend not in ("cpu", "auto"):
        raise ValueError(f"backend={backend!r} is not implemented for the {model.name} model yet")
    record = _check_record(model, record)
    chunk = check_positive_int("chunk", chunk)
    dt = model.check(p, dt)
    counts = state_now = coeffs = w_t = None
    spikes, traces = [], {name: [] for name in model.state if name in record}
    total = 0
    for block in input_chunks(x, steps, chunk):
        block = np.ascontiguousarray(
            as_float_array("x", block, ndim=3, shape_doc="(t, B, N)", check_finite=False)
        )
        t_len, batch, n = block.shape
        if state_now is None:
            dtype = block.dtype
            _check_size(p, n)
            coeffs = model.make_coefficients(p, dt, n, dtype)
            modes = model.modes(p, dtype)
            forward, _ = cpu_kernels(model, modes)
            if w_rec is not None:
                w = as_float_array("w_rec", w_rec, ndim=2, dtype=dtype, shape_doc=f"({n}, {n})")
                if w.shape != (n, n):
                    raise ValueError(f"w_rec must have shape ({n}, {n}), got {w.shape}")
                w_t = np.ascontiguousarray(w.T)
            else:
                w_t = np.zeros((0, 0), dtype)
            items = _state_items(state, model, w_rec is not None)
            state_now = _initial_state(model, p, items, batch, n, dtype)
            counts = np.zeros((batch, n), np.int64)
            scratch = np.empty((model.tape_rows, 1, batch, n), dtype)
        elif block.shape[1:] != state_now.shape[1:] or block.dtype != state_now.dtype:
            raise ValueError(
                f"every chunk of x must have shape (t, {state_now.shape[1]}, "
                f"{state_now.shape[2]}) and dtype {state_now.dtype}, got {block.shape} {block.dtype}"
            )
        z = np.empty_like(block)
        if traces:  # one step at a time, to read the state after each
            for t in range(t_len):
                step = (block[t : t + 1], w_t, coeffs, modes, state_now, z[t : t + 1])
                run_rows(forward, batch, *step, scratch, False)
                for name in traces:
                    traces[name].append(state_now[model.state.index(name)].copy())
        else:
            run_rows(forward, batch, block, w_t, coeffs, modes, state_now, z, scratch, False)
        if not sum_is_finite(state_now):
            check_all_finite("x", block)
            raise ValueError("the state overflowed (x or w_rec is too large)")
        counts += (z > 0).sum(axis=0)
        if "spikes" in record:
            spikes.append(z)
        total += t_len
    if state_now is None:
        raise ValueError("x holds no steps")
    final = {name: state_now[row] for row, name in enumerate(model.state)}
    if w_rec is not None:
        final["z"] = state_now[-1]
    return SimulationRecord(
        steps=total,
        spike_counts=counts,
        spikes=np.concatenate(spikes) if spikes else None,
        traces={name: np.stack(values) for name, values in traces.items()},
        final_state=final,
    )
