r"""An independent NumPy integrator of NIR graphs, written from NIR's node definitions.

The node equations are NIR's (https://neuroir.org/docs, the ``nir`` package's docstrings):

* ``Linear``: :math:`y = W x`; ``Affine``: :math:`y = W x + b`;
* ``LIF``: :math:`\tau \dot v = (v_{leak} - v) + R I`, spike :math:`z = [v > v_{threshold}]`,
  then :math:`v \leftarrow v_{reset}` where :math:`z = 1`;
* ``CubaLIF``: :math:`\tau_{syn} \dot I = -I + w_{in} S`,
  :math:`\tau_{mem} \dot v = (v_{leak} - v) + R I`, spike and reset as ``LIF``;
* ``CubaLI``: ``CubaLIF`` without spike and reset; its output is :math:`v`.

Discretisation (the reading numbaspike documents): the input of step :math:`t` is a Dirac
impulse of weight :math:`x_t` at the start of the step. Integrating it moves the state it
drives by its weight over the time constant (``LIF``: :math:`v \mathrel{+}= R x_t / \tau`;
``CubaLIF``/``CubaLI``: :math:`I \mathrel{+}= w_{in} x_t / \tau_{syn}`); then one explicit
Euler step of length ``dt`` of the remaining (impulse-free) dynamics, whose derivative is
taken at the state after the impulse for :math:`I` and at the state before the step for
:math:`v`'s leak. A node's input is the sum over its incoming edges; an edge that closes a
cycle (a recurrent weight) delivers the value its source had one step earlier. Initial
state: :math:`v = v_{leak}`, :math:`I = 0`, no spikes.

This file imports nothing of numbaspike.
"""

from __future__ import annotations

import numpy as np


def _order(nodes: dict, edges: list[tuple[str, str]], start: str) -> tuple[list[str], set]:
    """Nodes in the order of a depth-first walk from ``start``; the edges that close a
    cycle (back edges) are returned apart."""
    succ: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in edges:
        succ[a].append(b)
    order: list[str] = []
    state: dict[str, int] = {}
    back: set = set()

    def visit(k: str) -> None:
        state[k] = 1
        for b in succ[k]:
            if state.get(b) == 1:
                back.add((k, b))
            elif b not in state:
                visit(b)
        state[k] = 2
        order.append(k)

    visit(start)
    order.reverse()
    return order, back


def run_nir_graph(graph, x: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    """Run a flat ``nir.NIRGraph`` on ``x`` (T, B, n_in), float64.

    Returns every node's output per step, by node name: (T, B, n).
    """
    nodes, edges = graph.nodes, list(graph.edges)
    (start,) = [k for k, v in nodes.items() if type(v).__name__ == "Input"]
    order, back = _order(nodes, edges, start)
    preds: dict[str, list[tuple[str, bool]]] = {k: [] for k in nodes}
    for a, b in edges:
        preds[b].append((a, (a, b) in back))
    n_steps, batch, _ = x.shape
    out: dict[str, list[np.ndarray]] = {k: [] for k in nodes}
    state: dict[str, dict[str, np.ndarray]] = {}
    last: dict[str, np.ndarray] = {}

    def value(k: str, n: int) -> np.ndarray:
        node = nodes[k]
        kind = type(node).__name__
        if kind in ("LIF", "CubaLIF", "CubaLI"):
            v_leak = np.asarray(node.v_leak, np.float64)
            state[k] = {"v": np.broadcast_to(v_leak, (batch, n)).copy(), "i": np.zeros((batch, n))}
        return np.zeros((batch, n))

    sizes = {k: _size(v) for k, v in nodes.items()}
    for k in nodes:
        last[k] = value(k, sizes[k])
    for t in range(n_steps):
        now: dict[str, np.ndarray] = {}
        for k in order:
            node = nodes[k]
            kind = type(node).__name__
            if kind == "Input":
                y = np.asarray(x[t], np.float64)
            else:
                s = sum(last[a] if delayed else now[a] for a, delayed in preds[k])
                y = _step(kind, node, s, state.get(k), dt)
            now[k] = y
            out[k].append(y)
        last = now
    return {k: np.stack(v) for k, v in out.items() if v}


def _size(node) -> int:
    kind = type(node).__name__
    if kind in ("Linear", "Affine"):
        return np.asarray(node.weight).shape[0]
    if kind == "Input":
        return int(np.prod(node.input_type["input"]))
    if kind == "Output":
        return int(np.prod(node.output_type["output"]))
    return np.asarray(node.v_leak).shape[0]


def _step(kind: str, node, s: np.ndarray, st: dict | None, dt: float) -> np.ndarray:
    f = lambda name: np.asarray(getattr(node, name), np.float64)  # noqa: E731
    if kind == "Linear":
        return s @ f("weight").T
    if kind == "Affine":
        return s @ f("weight").T + f("bias")
    if kind == "Output":
        return s
    if kind == "LIF":
        v = st["v"]
        v = v + dt / f("tau") * (f("v_leak") - v) + f("r") / f("tau") * s
        z = (v > f("v_threshold")).astype(np.float64)
        st["v"] = np.where(z > 0, f("v_reset"), v)
        return z
    if kind in ("CubaLIF", "CubaLI"):
        i = st["i"] + f("w_in") / f("tau_syn") * s
        v = st["v"]
        v = v + dt / f("tau_mem") * ((f("v_leak") - v) + f("r") * i)
        st["i"] = i * (1.0 - dt / f("tau_syn"))
        if kind == "CubaLI":
            st["v"] = v
            return v
        z = (v > f("v_threshold")).astype(np.float64)
        st["v"] = np.where(z > 0, f("v_reset"), v)
        return z
    raise NotImplementedError(f"no reference for nir.{kind}")
