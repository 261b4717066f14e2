"""lif_simulate: forward-only, chunked, tape-free simulation.

It must reproduce lif_forward exactly (spikes, final state, traces) whatever the input
form (array, constant current, iterable of chunks) and chunk size, continue a run from its
final state, and run 100 000 steps in memory independent of the number of steps. By
default it keeps only the spike counts (O(B·N)); the raster and traces only when recorded.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import numbaspike as ns

pytestmark = pytest.mark.usefixtures("single_numba_thread")

DT = 1e-3
T, B, N = 150, 3, 10


def make_input(seed=0, dtype=np.float64, t=T):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.2, 1.0, (t, B, N)).astype(dtype)
    w_rec = rng.normal(0.0, 0.5, (N, N)).astype(dtype)
    state = (
        rng.uniform(0.0, 1.0, (B, N)).astype(dtype),
        rng.uniform(0.0, 1.0, (B, N)).astype(dtype),
        (rng.random((B, N)) < 0.5).astype(dtype),
    )
    return x, w_rec, state


def params(reset="zero", **kw):
    rng = np.random.default_rng(1)
    return ns.LIFParameters(
        tau_mem_inv=rng.uniform(80.0, 150.0, N), v_th=rng.uniform(0.8, 1.2, N), reset=reset, **kw
    )


def assert_same_run(sim, z, tape, spikes=True):
    """A Simulation and a lif_forward run agree exactly (and its spike events, recorded
    with ``record=("spikes",)``, when ``spikes``)."""
    assert sim.steps == z.shape[0]
    if spikes:
        np.testing.assert_array_equal(sim.spike_raster(), z != 0)
        assert np.all(np.diff(sim.spike_times) >= 0)  # events in time order
    else:
        assert_counts_only(sim)
    np.testing.assert_array_equal(sim.spike_counts, (z != 0).sum(axis=0))
    assert sim.spike_counts.dtype == np.int64
    for a, b in zip(sim.final_state, tape.final_state, strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == z.dtype


def assert_counts_only(sim):
    """The default result: spike counts and final state, nothing that grows with T."""
    assert sim.spike_times is None and sim.spike_batch is None and sim.spike_neurons is None
    assert sim.v is None and sim.i is None
    batch, n = sim.spike_counts.shape
    for value in vars(sim).values():
        for arr in value if isinstance(value, tuple) else (value,):
            assert np.ndim(arr) <= 2 and np.size(arr) <= batch * n, np.shape(arr)


@pytest.mark.parametrize("chunk", [1, 7, 150, 1024])
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_array_input_matches_forward(dtype, reset, recurrent, chunk):
    x, w_rec, state = make_input(dtype=dtype)
    w = w_rec if recurrent else None
    p = params(reset)
    z, tape = ns.lif_forward(x, p, DT, w_rec=w, state=state)
    assert 0.02 < z.mean() < 0.5
    sim = ns.lif_simulate(x, p, DT, w_rec=w, state=state, chunk=chunk, record=("spikes",))
    assert_same_run(sim, z, tape)
    assert sim.v is None and sim.i is None
    assert_same_run(ns.lif_simulate(x, p, DT, w_rec=w, state=state, chunk=chunk), z, tape, False)
    # default initial state too
    z0, tape0 = ns.lif_forward(x, p, DT, w_rec=w)
    sim0 = ns.lif_simulate(x, p, DT, w_rec=w, chunk=chunk, record=("counts", "spikes"))
    assert_same_run(sim0, z0, tape0)


@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_constant_input_matches_forward(recurrent):
    x, w_rec, state = make_input()
    w = w_rec if recurrent else None
    current = x[0] * 0.6
    p = params()
    z, tape = ns.lif_forward(np.broadcast_to(current, (T, B, N)), p, DT, w_rec=w, state=state)
    for chunk in (1, 16, 1024):
        sim = ns.lif_simulate(
            current, p, DT, w_rec=w, state=state, steps=T, chunk=chunk, record="spikes"
        )
        assert_same_run(sim, z, tape)
    # a nested list is an array too
    sim = ns.lif_simulate(current.tolist(), p, DT, w_rec=w, state=state, steps=T)
    assert_same_run(sim, z, tape, spikes=False)


@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_iterable_of_chunks_matches_forward(recurrent):
    x, w_rec, state = make_input()
    w = w_rec if recurrent else None
    p = params("subtract")
    z, tape = ns.lif_forward(x, p, DT, w_rec=w, state=state)
    bounds = [0, 1, 2, 30, 31, 100, T]
    pieces = [x[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def gen():
        yield from pieces

    for chunks in (gen(), iter(pieces), map(np.copy, pieces)):
        sim = ns.lif_simulate(chunks, p, DT, w_rec=w, state=state, record=("spikes", "v", "i"))
        assert_same_run(sim, z, tape)
        assert sim.v.shape == (T, B, N)
    # chunk= applies to arrays, not to an iterable: each given chunk is one kernel call
    sim = ns.lif_simulate(iter(pieces), p, DT, w_rec=w, state=state, chunk=2)
    assert_same_run(sim, z, tape, spikes=False)


def test_list_of_chunks_matches_forward():
    x, _, state = make_input()
    p = params()
    z, tape = ns.lif_forward(x, p, DT, state=state)
    sim = ns.lif_simulate([x[:50], x[50:]], p, DT, state=state, record=("spikes",))
    assert_same_run(sim, z, tape)


@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("smooth", [False, True])
def test_continuation_equals_one_long_run(recurrent, smooth):
    x, w_rec, state = make_input()
    w = w_rec if recurrent else None
    p = params(smooth=smooth, surrogate="sigmoid", alpha=5.0)
    long_sim = ns.lif_simulate(x, p, DT, w_rec=w, state=state, record=("spikes", "v", "i"))
    cut = 61
    first = ns.lif_simulate(x[:cut], p, DT, w_rec=w, state=state, record=("spikes", "v", "i"))
    saved = [a.copy() for a in first.final_state]
    second = ns.lif_simulate(
        x[cut:], p, DT, w_rec=w, state=first.final_state, record=("spikes", "v", "i")
    )
    # the state passed in is not modified
    for a, b in zip(saved, first.final_state, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(second.final_state, long_sim.final_state, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.concatenate([first.v, second.v]), long_sim.v)
    np.testing.assert_array_equal(np.concatenate([first.i, second.i]), long_sim.i)
    np.testing.assert_array_equal(first.spike_counts + second.spike_counts, long_sim.spike_counts)
    if not smooth:
        np.testing.assert_array_equal(
            np.concatenate([first.spike_raster(), second.spike_raster()]),
            long_sim.spike_raster(),
        )
    # lif_forward continues from a Simulation's final state the same way
    z2, tape2 = ns.lif_forward(x[cut:], p, DT, w_rec=w, state=first.final_state)
    for a, b in zip(tape2.final_state, long_sim.final_state, strict=True):
        np.testing.assert_array_equal(a, b)
    z_long, _ = ns.lif_forward(x, p, DT, w_rec=w, state=state)
    np.testing.assert_array_equal(z2, z_long[cut:])


@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_recorded_traces_match_forward(dtype, reset, recurrent):
    """record=("v", "i"): v after reset, i after decay, for every step."""
    x, w_rec, state = make_input(dtype=dtype, t=40)
    w = w_rec if recurrent else None
    p = params(reset)
    sim = ns.lif_simulate(x, p, DT, w_rec=w, state=state, record=("v", "i"), chunk=9)
    assert sim.spike_times is None and sim.v.dtype == dtype and sim.v.shape == x.shape
    with pytest.raises(ValueError, match="record"):
        sim.spike_raster()
    z, tape = ns.lif_forward(x, p, DT, w_rec=w, state=state)
    # rebuild v and i from the tape (h, i') exactly as the model defines them
    v_th = np.asarray(p.v_th, dtype)
    decay_s = dtype(1) - (DT * np.asarray(p.tau_syn_inv, np.float64)).astype(dtype)
    if reset == "zero":
        v_expected = np.where(z != 0, dtype(p.v_reset), tape.h)
    else:
        v_expected = tape.h - z * (v_th - dtype(p.v_reset))
    np.testing.assert_array_equal(sim.v, v_expected)
    np.testing.assert_array_equal(sim.i, tape.i1 * decay_s)
    # and from the state lif_forward ends in after t + 1 steps
    for t in (0, 8, 9, 25, 39):
        _, tape_t = ns.lif_forward(x[: t + 1], p, DT, w_rec=w, state=state)
        np.testing.assert_array_equal(sim.v[t], tape_t.final_state.v)
        np.testing.assert_array_equal(sim.i[t], tape_t.final_state.i)
    np.testing.assert_array_equal(sim.spike_counts, (z != 0).sum(axis=0))


LONG_B, LONG_N = 2, 64
#: per-neuron constant current: neurons with x < 0.2 never reach threshold
#: (steady-state current x / a_s = 5 x < v_th = 1), the others fire periodically
LONG_CURRENT = np.broadcast_to(np.linspace(0.0, 1.2, LONG_N), (LONG_B, LONG_N)).astype(np.float32)
LONG_CHUNK = 1024


def long_run(steps: int) -> tuple[ns.Simulation, int]:
    """A forward-only float32 run of ``steps`` steps and its peak traced memory (bytes)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        sim = ns.lif_simulate(
            LONG_CURRENT, ns.LIFParameters(), DT, steps=steps, record=(), chunk=LONG_CHUNK
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return sim, peak


def test_long_run_is_finite_and_memory_is_independent_of_steps():
    long_run(10)  # compile first: compilation allocates far more than the run itself
    short, peak_short = long_run(10_000)
    long, peak_long = long_run(100_000)
    assert long.steps == 100_000
    for a in long.final_state:
        assert a.dtype == np.float32 and np.all(np.isfinite(a))
    assert np.all(long.final_state.v <= 1.0 + 1e-6)  # zero reset: v ends below threshold
    # plausible spike counts: none below rheobase, monotone in the current, periodic firing
    counts = long.spike_counts
    assert np.all(counts[:, LONG_CURRENT[0] < 0.19] == 0)
    assert np.all(counts[:, LONG_CURRENT[0] > 0.25] > 0)
    assert np.all(np.diff(counts, axis=1) >= 0)
    # the strongest current (1.2) drives h from v_reset = 0 to only 0.1 * 6 < v_th in one
    # step, so even the fastest neuron fires at most every other step
    assert counts.max() <= 100_000 // 2
    np.testing.assert_array_equal(counts[0], counts[1])
    # steady firing: 10x the steps gives ~10x the spikes
    firing = short.spike_counts > 0
    ratio = counts[firing] / short.spike_counts[firing]
    assert np.all(np.abs(ratio - 10.0) < 0.1 * 10.0), ratio
    # a short prefix agrees exactly with lif_forward
    head = ns.lif_simulate(LONG_CURRENT, ns.LIFParameters(), DT, steps=3000, record=("spikes",))
    z, _ = ns.lif_forward(
        np.broadcast_to(LONG_CURRENT, (3000, LONG_B, LONG_N)), ns.LIFParameters(), DT
    )
    np.testing.assert_array_equal(head.spike_raster(), z != 0)
    # memory: O(B N chunk), not O(T)
    chunk_bytes = LONG_B * LONG_N * LONG_CHUNK * 4
    assert peak_long <= 1.5 * peak_short, (peak_short, peak_long)
    assert peak_long <= 16 * chunk_bytes, (peak_long, chunk_bytes)
    assert peak_long < 100_000 * LONG_B * LONG_N  # far below one byte per neuron-step


@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_default_records_counts_equal_to_the_recorded_spikes(recurrent):
    x, w_rec, state = make_input()
    w = w_rec if recurrent else None
    p = params("subtract")
    sim = ns.lif_simulate(x, p, DT, w_rec=w, state=state, chunk=40)
    assert_counts_only(sim)
    full = ns.lif_simulate(x, p, DT, w_rec=w, state=state, chunk=40, record=("spikes", "v"))
    np.testing.assert_array_equal(sim.spike_counts, full.spike_raster().sum(axis=0))
    assert 0 < sim.spike_counts.sum() < T * B * N
    for a, b in zip(sim.final_state, full.final_state, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="record"):
        sim.spike_raster()
    # () and "counts" name the same minimal record
    for record in ((), "counts", ["counts"]):
        again = ns.lif_simulate(x, p, DT, w_rec=w, state=state, record=record)
        assert_counts_only(again)
        np.testing.assert_array_equal(again.spike_counts, sim.spike_counts)


def peak_bytes(**kw) -> tuple[ns.Simulation, int]:
    """A float32 run of lif_simulate and its peak traced memory (bytes)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        sim = ns.lif_simulate(**kw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return sim, peak


def test_default_memory_is_independent_of_the_firing_rate():
    """Every neuron firing on every step (the old README example): the default keeps
    counts, O(B·N), where recording the spikes keeps 24 bytes per neuron-step."""
    batch, n, steps, chunk = 2, 64, 20_000, 256
    current = np.full((batch, n), 3.0, np.float32)
    kw = dict(x=current, p=ns.LIFParameters(), dt=DT, steps=steps, chunk=chunk)
    peak_bytes(**{**kw, "steps": 10})  # compile first
    sim, peak = peak_bytes(**kw)
    assert_counts_only(sim)
    assert np.all(sim.spike_counts > 0.99 * steps)  # fires (almost) on every step
    chunk_bytes = chunk * batch * n * 4
    assert peak <= 16 * chunk_bytes, (peak, chunk_bytes)
    recorded, peak_spikes = peak_bytes(**kw, record=("spikes",))
    assert recorded.spike_times.size == sim.spike_counts.sum()
    per_neuron = np.bincount(recorded.spike_neurons, minlength=n)
    np.testing.assert_array_equal(per_neuron, sim.spike_counts.sum(axis=0))
    assert peak_spikes >= 24 * recorded.spike_times.size > 10 * peak


def test_outputs_cannot_corrupt_gradients():
    """Changing a returned output in place must not change the gradients."""
    rng = np.random.default_rng(1)
    x = rng.normal(1.0, 3.0, (20, 2, 5))
    w = rng.normal(0, 0.5, (5, 5))
    z, tape = ns.lif_forward(x, ns.LIFParameters(), w_rec=w)
    g_ref = ns.lif_backward(np.ones_like(z), tape).w_rec.copy()
    z[:] = 0  # the CPU backward recomputes the spikes from the tape
    np.testing.assert_array_equal(ns.lif_backward(np.ones_like(z), tape).w_rec, g_ref)
    v, _ = ns.li_forward(x)
    with pytest.raises(ValueError, match="read-only"):
        v -= 1  # the readout is returned read-only because its tape refers to it
