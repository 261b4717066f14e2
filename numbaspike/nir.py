r"""Model exchange through NIR, the Neuromorphic Intermediate Representation.

NIR (Pedersen et al. 2024, "Neuromorphic intermediate representation: a unified instruction
set for interoperable brain-inspired computing", Nature Communications 15:8122) describes a
network as a graph of continuous-time nodes. :func:`to_nir` / :func:`save` write a
:class:`~numbaspike.network.Sequential` as such a graph, :func:`from_nir` / :func:`load` read
one back. The ``nir`` package is an optional extra (``pip install "numbaspike[nir]"``).

Reading of the node equations
-----------------------------
numbaspike's inputs are read as Dirac impulses :math:`S(t) = \sum_t x_t\,\delta(t - t\,\Delta t)`
arriving at the start of each step; a step then integrates the node's equations with one
explicit Euler step whose derivative is taken at the state at the start of the step and at
the synaptic current just after the impulse. Under that reading the layers and NIR's nodes
are the same systems:

=====================  ==========================  =========================================
numbaspike layer        NIR node                    parameters
=====================  ==========================  =========================================
``Linear``             ``nir.Linear``              ``weight`` (out, in)
``Linear(bias=True)``  ``nir.Affine``              ``weight``, ``bias``
``LIF``                ``nir.CubaLIF``             :math:`\tau_{syn} = 1/\tau_{syn}^{-1}`,
                                                   :math:`\tau_{mem} = 1/\tau_{mem}^{-1}`,
                                                   :math:`r = 1`, :math:`w_{in} = \tau_{syn}`
``LIFBox``             ``nir.LIF``                 :math:`\tau = 1/\tau_{mem}^{-1}`,
                                                   :math:`r = \Delta t`
``LI``                 ``nir.CubaLI``              as ``LIF``, without threshold and reset
recurrent form         neuron node + ``nir.Linear`` ``w_rec`` on an edge from the node back
                                                   to itself (one step of delay)
=====================  ==========================  =========================================

with ``v_leak``, ``v_threshold = v_th`` and ``v_reset`` as they are. For ``nir.CubaLIF``
(:math:`\tau_{syn}\dot I = -I + w_{in} S`, :math:`\tau_{mem}\dot v = (v_{leak} - v) + r I`),
one step is

.. math::

    I^+ = I_{t-1} + \frac{w_{in}}{\tau_{syn}} x_t, \qquad
    v_t = v_{t-1} + \frac{\Delta t}{\tau_{mem}}\bigl((v_{leak} - v_{t-1}) + r I^+\bigr), \qquad
    I_t = I^+ \Bigl(1 - \frac{\Delta t}{\tau_{syn}}\Bigr),

then :math:`z_t = [v_t > v_{threshold}]` and :math:`v_t \leftarrow v_{reset}` where
:math:`z_t = 1`: numbaspike's LIF step exactly when :math:`r\,w_{in}/\tau_{syn} = 1`. For
``nir.LIF`` (:math:`\tau \dot v = (v_{leak} - v) + r S`) the impulse moves the membrane by
:math:`r x_t / \tau`: :math:`v_t = v_{t-1} + \frac{\Delta t}{\tau}(v_{leak} - v_{t-1}) +
\frac{r}{\tau} x_t`, numbaspike's LIFBox step when :math:`r = \Delta t`. On import, any other
:math:`r\,w_{in}/\tau_{syn}` (or :math:`r/\Delta t`) per neuron is folded into the rows of the
node's incoming weights (the preceding ``Linear`` and the recurrent one), which is the same
network.

What NIR cannot say is kept in each node's ``metadata`` and restored on import: ``dt``,
``surrogate``, ``alpha``, ``reset``, ``detach_reset``, ``smooth``, ``dtype``, the learned
parameters (``learn``), which parameters were per neuron (``per_neuron``), ``autapses``, and
the inverse time constants themselves (so that ``1/(1/x)`` rounding cannot change them). A
file without that metadata imports with numbaspike's defaults (superspike, alpha 100, zero
reset, attached, float32, nothing learned) and needs ``dt``.

What one side cannot say is an error naming the layer or node, never a different network:
exporting a subtractive reset (NIR resets to ``v_reset``) or a model without a NIR node
(LSNN, LIFRefrac); importing per-neuron ``v_reset`` values that differ, ``nir.LI`` (no
synaptic current), a graph that is not a chain with optional self-loops, or nodes that
numbaspike has no layer for (``Conv2d``, ``SumPool2d``, ``Flatten``, ``Delay``, ``Threshold``,
``IF``, ``I``, ``Scale``, ...).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .layers import Linear
from .network import Sequential
from .neuron_layers import Neuron, named_form

__all__ = ["NIRError", "describe", "from_nir", "load", "save", "to_nir"]

_SPIKE_DEFAULTS = {
    "surrogate": "superspike",
    "alpha": 100.0,
    "reset": "zero",
    "detach_reset": False,
    "smooth": False,
}
#: The NIR node of each numbaspike neuron model that has one.
_NODE_OF_MODEL = {"lif": "CubaLIF", "lif_box": "LIF", "li": "CubaLI"}
#: Parameters of the NIR node types numbaspike reads (required, then optional).
_NODE_FIELDS = {
    "Input": (("shape",), ()),
    "Output": (("shape",), ()),
    "Linear": (("weight",), ()),
    "Affine": (("weight", "bias"), ()),
    "CubaLIF": (("tau_syn", "tau_mem", "r", "v_leak", "v_threshold"), ("v_reset", "w_in")),
    "LIF": (("tau", "r", "v_leak", "v_threshold"), ("v_reset",)),
    "CubaLI": (("tau_syn", "tau_mem", "r", "v_leak"), ("w_in",)),
    "NIRGraph": (("nodes", "edges"), ()),
}


class NIRError(ValueError):
    """A network that NIR cannot hold, or a NIR graph or file that numbaspike cannot read."""


def _nir():
    try:
        return importlib.import_module("nir")
    except ImportError:
        raise ImportError(
            "model exchange through NIR needs the nir package: pip install 'numbaspike[nir]'"
        ) from None


# ---------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------


def _network_dt(net: Sequential) -> float | None:
    steps = {layer.dt for layer in net.layers if isinstance(layer, Neuron)}
    if len(steps) > 1:
        raise NIRError(
            f"the neuron layers have different time steps {sorted(steps)}: NIR files carry "
            "one dt per network here"
        )
    return steps.pop() if steps else None


def _per_neuron(value, n: int) -> np.ndarray:
    return np.array(np.broadcast_to(np.asarray(value, np.float64), (n,)))


def _neuron_node(nir, k: int, layer: Neuron):
    name = layer.model.name
    kind = _NODE_OF_MODEL.get(name)
    if kind is None:
        raise NIRError(
            f"layer {k} ({type(layer).__name__}): NIR has no node for the {name} model "
            f"(exportable: {sorted(_NODE_OF_MODEL)})"
        )
    p = layer.current_parameters()
    n = layer.n_out
    meta: dict[str, Any] = {"numbaspike_model": name, "dt": float(layer.dt)}
    meta["dtype"] = layer.dtype.name
    meta["learn"] = ",".join(layer.learn)
    meta["per_neuron"] = ",".join(
        f for f in layer.model.learnable if np.ndim(getattr(layer.p, f)) > 0
    )
    if layer.model.spiking:
        if p.reset != "zero":
            raise NIRError(
                f"layer {k} ({type(layer).__name__}): NIR's {kind} resets the membrane to "
                f"v_reset; reset={p.reset!r} has no NIR equivalent (use reset='zero')"
            )
        for field in _SPIKE_DEFAULTS:
            meta[field] = getattr(p, field)
        meta["alpha"] = float(p.alpha)
    if layer.recurrent:
        meta["autapses"] = bool(layer.autapses)
    tau_mem_inv = _per_neuron(p.tau_mem_inv, n)
    meta["tau_mem_inv"] = tau_mem_inv
    v_leak = _per_neuron(p.v_leak, n)
    if kind == "LIF":
        return nir.LIF(
            tau=1.0 / tau_mem_inv, r=np.full(n, float(layer.dt)), v_leak=v_leak,
            v_threshold=_per_neuron(p.v_th, n), v_reset=np.full(n, float(p.v_reset)),
            metadata=meta,
        )  # fmt: skip
    tau_syn_inv = _per_neuron(p.tau_syn_inv, n)
    meta["tau_syn_inv"] = tau_syn_inv
    tau_syn = 1.0 / tau_syn_inv
    common = {"tau_syn": tau_syn, "tau_mem": 1.0 / tau_mem_inv, "r": np.ones(n), "v_leak": v_leak}
    if kind == "CubaLI":
        return nir.CubaLI(**common, w_in=tau_syn.copy(), metadata=meta)
    return nir.CubaLIF(
        **common, v_threshold=_per_neuron(p.v_th, n), v_reset=np.full(n, float(p.v_reset)),
        w_in=tau_syn.copy(), metadata=meta,
    )  # fmt: skip


def to_nir(net: Sequential):
    """The NIR graph of ``net`` (a :class:`~numbaspike.network.Sequential`).

    Nodes are named ``"input"``, ``"0"``, ``"1"``, ... (the layer indices), ``"<k>.w_rec"``
    for the recurrent weights of layer ``k`` and ``"output"``; edges run along the chain,
    plus ``k -> k.w_rec -> k`` for a recurrent layer. Parameters are float64 arrays of the
    layer's values (per neuron for the neuron nodes); see the module docstring for the
    mapping and the metadata.

    Raises
    ------
    NIRError
        Naming the layer, for a layer NIR cannot hold (a subtractive reset, LSNN, LIFRefrac,
        a layer type without a NIR node) or neuron layers with different ``dt``.
    ImportError
        Without the ``nir`` package (``pip install 'numbaspike[nir]'``).
    """
    nir = _nir()
    if not isinstance(net, Sequential):
        raise TypeError(f"net must be a Sequential, got {type(net).__name__}")
    dt = _network_dt(net)
    nodes: dict[str, Any] = {
        "input": nir.Input(input_type={"input": np.array([net.layers[0].n_in])})
    }
    edges: list[tuple[str, str]] = []
    previous = "input"
    for k, layer in enumerate(net.layers):
        name = str(k)
        if isinstance(layer, Linear):
            weight = np.array(layer.parameters()["weight"], np.float64)
            if layer.bias:
                bias = np.array(layer.parameters()["bias"], np.float64)
                nodes[name] = nir.Affine(weight=weight, bias=bias, metadata=_dtype_meta(layer))
            else:
                nodes[name] = nir.Linear(weight=weight, metadata=_dtype_meta(layer))
        elif isinstance(layer, Neuron):
            nodes[name] = _neuron_node(nir, k, layer)
            if layer.recurrent:
                w_rec = np.array(layer.parameters()["w_rec"], np.float64)
                nodes[f"{name}.w_rec"] = nir.Linear(weight=w_rec)
                edges += [(name, f"{name}.w_rec"), (f"{name}.w_rec", name)]
        else:
            raise NIRError(f"layer {k} ({type(layer).__name__}): no NIR node for this layer type")
        edges.append((previous, name))
        previous = name
    nodes["output"] = nir.Output(output_type={"output": np.array([net.layers[-1].n_out])})
    edges.append((previous, "output"))
    meta: dict[str, Any] = {"written_by": "numbaspike"}
    if dt is not None:
        meta["dt"] = dt
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def _dtype_meta(layer) -> dict[str, Any]:
    return {"dtype": layer.dtype.name}


def save(net: Sequential, path: str | os.PathLike) -> Path:
    """Write ``net`` to a ``.nir`` file (HDF5, through ``nir.write``); returns its path."""
    graph = to_nir(net)
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True)
    _nir().write(path, graph)
    return path


# ---------------------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------------------


def _text(value) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf8")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return _text(value[()])
    return value


def _check_file(path: Path) -> None:
    """Name the file and the node for what ``nir.read`` would report without them."""
    import h5py

    if not path.is_file():
        raise FileNotFoundError(f"NIR file not found: {path}")
    try:
        handle = h5py.File(path, "r")
    except OSError:
        raise NIRError(f"{path}: not an HDF5 file (a .nir file is HDF5)") from None
    with handle as f:
        if "node" not in f or not isinstance(f["node"], h5py.Group) or "type" not in f["node"]:
            raise NIRError(f"{path}: an HDF5 file but not a NIR graph (no 'node' group)")
        _check_group(path, f["node"], "graph")


def _check_group(path: Path, group, where: str) -> None:
    import h5py

    kind = _text(group["type"][()]) if "type" in group else None
    if kind not in _NODE_FIELDS:
        return  # an unsupported node: reported by from_nir, which names it
    required, _ = _NODE_FIELDS[kind]
    missing = [f for f in required if f not in group]
    if missing:
        raise NIRError(f"{path}: node {where!r} ({kind}) misses its parameters {missing}")
    if kind == "NIRGraph":
        for name, node in group["nodes"].items():
            if isinstance(node, h5py.Group):
                inner = name if where == "graph" else f"{where}.{name}"
                _check_group(path, node, inner)


def _flatten(nir, graph) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Nodes and edges of ``graph`` with nested graphs (e.g. snnTorch's recurrent layers)
    replaced by their nodes, named ``"<outer>.<inner>"``."""
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    entry: dict[str, list[str]] = {}
    exit_: dict[str, list[str]] = {}
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            inner_nodes, inner_edges = _flatten(nir, node)
            ins = [k for k, v in inner_nodes.items() if isinstance(v, nir.Input)]
            outs = [k for k, v in inner_nodes.items() if isinstance(v, nir.Output)]
            entry[name] = [b for a, b in inner_edges if a in ins]
            exit_[name] = [a for a, b in inner_edges if b in outs]
            for key, value in inner_nodes.items():
                if key not in ins and key not in outs:
                    nodes[f"{name}.{key}"] = value
            edges += [
                (f"{name}.{a}", f"{name}.{b}")
                for a, b in inner_edges
                if a not in ins and b not in outs
            ]
            entry[name] = [f"{name}.{b}" for b in entry[name]]
            exit_[name] = [f"{name}.{a}" for a in exit_[name]]
        else:
            nodes[name] = node
    for a, b in graph.edges:
        for src in exit_.get(a, [a]):
            for dst in entry.get(b, [b]):
                edges.append((src, dst))
    return nodes, edges


def _chain(nir, nodes: Mapping[str, Any], edges) -> tuple[list[str], dict[str, str]]:
    """The nodes from the input to the output in order, and the recurrent weight node of
    each neuron node that has one; a NIRError for any other graph structure."""
    inputs = [k for k, v in nodes.items() if isinstance(v, nir.Input)]
    outputs = [k for k, v in nodes.items() if isinstance(v, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NIRError(
            f"the graph needs one Input and one Output node, it has inputs {inputs} and "
            f"outputs {outputs}"
        )
    succ: dict[str, list[str]] = {k: [] for k in nodes}
    pred: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in edges:
        if a not in nodes or b not in nodes:
            raise NIRError(f"the edge {a!r} -> {b!r} names a node the graph does not have")
        succ[a].append(b)
        pred[b].append(a)
    loops: dict[str, str] = {}
    for name, node in nodes.items():  # a self-loop: node -> weight -> node, nothing else
        if isinstance(node, (nir.Linear, nir.Affine)) and pred[name] and succ[name]:
            if len(pred[name]) == len(succ[name]) == 1 and pred[name] == succ[name]:
                owner = pred[name][0]
                if isinstance(node, nir.Affine):
                    raise NIRError(
                        f"node {name!r}: a recurrent weight with a bias (nir.Affine) has no "
                        "numbaspike equivalent"
                    )
                loops[owner] = name
    order = [inputs[0]]
    seen = {inputs[0]}
    while order[-1] != outputs[0]:
        here = order[-1]
        nxt = [b for b in succ[here] if b != loops.get(here)]
        if len(nxt) != 1:
            raise NIRError(
                f"the graph is not a chain (with optional self-loops): node {here!r} feeds "
                f"{nxt or 'nothing'}"
            )
        b = nxt[0]
        ins = [a for a in pred[b] if a != loops.get(b)]
        if len(ins) != 1 or b in seen:
            raise NIRError(
                f"the graph is not a chain (with optional self-loops): node {b!r} has inputs {ins}"
            )
        order.append(b)
        seen.add(b)
    unused = sorted(set(nodes) - seen - set(loops.values()))
    if unused:
        raise NIRError(f"the graph has nodes off the input-output chain: {unused}")
    return order, loops


def _metadata(node) -> dict[str, Any]:
    meta = getattr(node, "metadata", None) or {}
    return {k: _text(v) for k, v in meta.items()}


def _names(text) -> tuple[str, ...]:
    return tuple(s for s in str(text or "").split(",") if s)


def _array(node_name: str, field: str, value, n: int | None = None) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0 and n is not None:
        arr = np.full(n, float(arr))
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        raise NIRError(
            f"node {node_name!r}: {field} must have shape ({n if n is not None else 'N'},), "
            f"got {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise NIRError(f"node {node_name!r}: {field} contains NaN or inf")
    return arr


def _exact_inverse(name: str, field: str, tau: np.ndarray, meta: dict, key: str) -> np.ndarray:
    """``1/tau``, or the exact inverse time constant the metadata kept where ``tau`` is still
    the value written from it (a file whose ``tau`` was edited takes ``1/tau``)."""
    if np.any(tau <= 0):
        raise NIRError(f"node {name!r}: {field} must be > 0, got {tau}")
    kept = meta.get(key)
    if kept is not None:
        kept = np.asarray(kept, np.float64)
        if kept.shape == tau.shape and np.all(kept > 0) and np.array_equal(1.0 / kept, tau):
            return kept
    return 1.0 / tau


def _scalar_or_array(values: dict[str, np.ndarray], per_neuron: tuple[str, ...]) -> dict:
    """Per-neuron arrays where the file says so (or where they differ), else scalars."""
    out: dict[str, Any] = {}
    for field, arr in values.items():
        if field in per_neuron or arr.size == 0 or np.any(arr != arr[0]):
            out[field] = arr
        else:
            out[field] = float(arr[0])
    return out


def _neuron_layer(nir, name: str, node, dt_arg, dtype_arg, w_rec):
    """The numbaspike layer of a neuron node, and the factor per neuron to fold into its
    incoming weights (None: 1)."""
    meta = _metadata(node)
    dt = dt_arg if dt_arg is not None else meta.get("dt")
    if dt is None:
        raise NIRError(
            f"node {name!r}: the file gives no dt for it (no numbaspike metadata); pass dt="
        )
    dt = float(dt)
    dtype = dtype_arg or meta.get("dtype") or "float32"
    v_th = None
    if isinstance(node, nir.CubaLIF | nir.LIF):
        v_th = _array(name, "v_threshold", node.v_threshold)
        n = v_th.shape[0]
    else:
        n = _array(name, "v_leak", node.v_leak).shape[0]
    per_neuron = _names(meta.get("per_neuron"))
    values: dict[str, np.ndarray] = {"v_leak": _array(name, "v_leak", node.v_leak, n)}
    if isinstance(node, nir.LIF):
        tau = _array(name, "tau", node.tau, n)
        values["tau_mem_inv"] = _exact_inverse(name, "tau", tau, meta, "tau_mem_inv")
        r = _array(name, "r", node.r, n)
        factor = r / dt
        model = "lif_box"
    else:
        tau_syn = _array(name, "tau_syn", node.tau_syn, n)
        tau_mem = _array(name, "tau_mem", node.tau_mem, n)
        values["tau_syn_inv"] = _exact_inverse(name, "tau_syn", tau_syn, meta, "tau_syn_inv")
        values["tau_mem_inv"] = _exact_inverse(name, "tau_mem", tau_mem, meta, "tau_mem_inv")
        r = _array(name, "r", node.r, n)
        w_in = _array(name, "w_in", node.w_in, n)
        factor = r * w_in / tau_syn
        model = "lif" if isinstance(node, nir.CubaLIF) else "li"
    options: dict[str, Any] = {}
    if v_th is not None:
        values["v_th"] = v_th
        v_reset = _array(name, "v_reset", node.v_reset, n)
        if np.any(v_reset != v_reset[0]):
            raise NIRError(
                f"node {name!r}: per-neuron v_reset values differ ({v_reset.min()} to "
                f"{v_reset.max()}); numbaspike's v_reset is one value per layer"
            )
        options["v_reset"] = float(v_reset[0])
        for field, default in _SPIKE_DEFAULTS.items():
            value = meta.get(field, default)
            options[field] = bool(value) if isinstance(default, bool) else value
        options["alpha"] = float(options["alpha"])
    from .models import model_named

    cls = model_named(model).parameters
    try:
        p = cls(**_scalar_or_array(values, per_neuron), **options)
        recurrent = w_rec is not None
        if recurrent and not model_named(model).spiking:
            raise NIRError(f"node {name!r}: the LI readout has no recurrent form")
        kwargs: dict[str, Any] = {"dt": dt, "learn": _names(meta.get("learn")), "dtype": dtype}
        if recurrent:
            kwargs["autapses"] = bool(meta.get("autapses", True))
        layer = named_form(model, recurrent)(n, p, **kwargs)
    except (TypeError, ValueError) as err:
        if isinstance(err, NIRError):
            raise
        raise NIRError(f"node {name!r} ({type(node).__name__}): {err}") from None
    return layer, (None if np.all(factor == 1.0) else factor)


def _linear_layer(name: str, node, dtype: str):
    weight = np.asarray(node.weight, np.float64)
    if weight.ndim != 2 or not np.all(np.isfinite(weight)):
        raise NIRError(f"node {name!r}: weight must be a finite 2-d array, got {weight.shape}")
    bias = getattr(node, "bias", None)
    layer = Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=dtype)
    layer.parameters()["weight"][...] = weight
    if bias is not None:
        bias = np.asarray(bias, np.float64).reshape(-1)
        if bias.shape != (weight.shape[0],) or not np.all(np.isfinite(bias)):
            raise NIRError(f"node {name!r}: bias must have shape ({weight.shape[0]},)")
        layer.parameters()["bias"][...] = bias
    return layer


def from_nir(graph_or_path, dt: float | None = None, dtype: str | None = None) -> Sequential:
    """A :class:`~numbaspike.network.Sequential` from a NIR graph or ``.nir`` file.

    Parameters
    ----------
    graph_or_path : nir.NIRGraph or path
    dt : float, optional
        Time step of the neuron layers; default the ``dt`` in the file's numbaspike metadata
        (a file without it needs ``dt``). Another ``dt`` than the file's discretises the same
        continuous-time nodes with another step.
    dtype : {"float32", "float64"}, optional
        Default: the file's (float32 for a file without numbaspike metadata).

    Raises
    ------
    NIRError
        Naming the node: a node numbaspike has no layer for, a graph that is not a chain
        (with optional recurrent self-loops), per-neuron ``v_reset`` values that differ,
        mismatched shapes, invalid parameters; for a file, also naming the file when it is
        not HDF5 or not a NIR graph, or misses a parameter.
    """
    nir = _nir()
    if dtype is not None and dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if dt is not None and (isinstance(dt, bool) or not np.isfinite(float(dt)) or dt <= 0):
        raise ValueError(f"dt must be a positive number, got {dt!r}")
    where = None
    if isinstance(graph_or_path, str | os.PathLike):
        where = Path(graph_or_path)
        _check_file(where)
        try:
            graph = nir.read(where)
        except Exception as err:  # nir.read raises whatever its parsing meets
            raise NIRError(f"{where}: not a readable NIR graph ({err})") from None
    else:
        graph = graph_or_path
        if not isinstance(graph, nir.NIRGraph):
            raise TypeError(
                f"graph_or_path must be a nir.NIRGraph or a path, got {type(graph).__name__}"
            )
    try:
        return _build(nir, graph, dt, dtype)
    except NIRError as err:
        if where is not None:
            raise NIRError(f"{where}: {err}") from None
        raise


def _build(nir, graph, dt, dtype) -> Sequential:
    nodes, edges = _flatten(nir, graph)
    order, loops = _chain(nir, nodes, edges)
    for owner, weight in loops.items():
        if not isinstance(nodes[owner], nir.CubaLIF | nir.LIF):
            raise NIRError(
                f"node {weight!r}: a recurrent weight on {owner!r} "
                f"({type(nodes[owner]).__name__}), which emits no spikes"
            )
    layers: list = []
    width = int(np.prod(np.asarray(nodes[order[0]].input_type["input"]).reshape(-1)))
    for name in order[1:-1]:
        node = nodes[name]
        meta = _metadata(node)
        if isinstance(node, nir.Linear | nir.Affine):
            layer = _linear_layer(name, node, dtype or meta.get("dtype") or "float32")
            factor = None
        elif isinstance(node, nir.CubaLIF | nir.LIF | nir.CubaLI):
            w_rec = None
            if name in loops:
                w_rec = np.asarray(nodes[loops[name]].weight, np.float64)
            layer, factor = _neuron_layer(nir, name, node, dt, dtype, w_rec)
            if w_rec is not None:
                if w_rec.shape != (layer.n_out, layer.n_out):
                    raise NIRError(
                        f"node {loops[name]!r}: recurrent weight of shape {w_rec.shape}, "
                        f"node {name!r} has {layer.n_out} neurons"
                    )
                if factor is not None:
                    w_rec = w_rec * factor[:, None]
                layer.parameters()["w_rec"][...] = w_rec
            if factor is not None:
                _fold(name, layers, factor)
        elif isinstance(node, nir.LI):
            raise NIRError(
                f"node {name!r} (LI): numbaspike's LI readout has a synaptic current; nir.LI "
                "has none (export it as nir.CubaLI)"
            )
        else:
            raise NIRError(
                f"node {name!r} ({type(node).__name__}): numbaspike has no layer for this "
                "node (it reads Linear, Affine, CubaLIF, LIF, CubaLI)"
            )
        if layer.n_in != width:
            raise NIRError(
                f"node {name!r} ({type(node).__name__}) takes {layer.n_in} inputs, the node "
                f"before it gives {width}"
            )
        width = layer.n_out
        layers.append(layer)
    if not layers:
        raise NIRError("the graph has no layers between its Input and Output nodes")
    return Sequential(*layers)


def _fold(name: str, layers: list, factor: np.ndarray) -> None:
    """Fold a per-neuron input gain into the rows of the preceding Linear layer."""
    if not layers or not isinstance(layers[-1], Linear):
        raise NIRError(
            f"node {name!r}: its input gain (r * w_in / tau_syn, or r / dt) is not 1 and no "
            "weight precedes it to fold the gain into"
        )
    params = layers[-1].parameters()
    params["weight"][...] = params["weight"] * factor[:, None]
    if "bias" in params:
        params["bias"][...] = params["bias"] * factor


def load(path: str | os.PathLike, dt: float | None = None, dtype: str | None = None):
    """:func:`from_nir` of a ``.nir`` file."""
    return from_nir(Path(path), dt=dt, dtype=dtype)


def describe(net: Sequential) -> str:
    """One line per layer: its type, sizes and parameters (a per-neuron one as its range)."""
    lines = []
    for k, layer in enumerate(net.layers):
        if isinstance(layer, Linear):
            line = f"{k}: Linear {layer.n_in} -> {layer.n_out}" + (" + bias" if layer.bias else "")
        else:
            p = layer.current_parameters()
            fields = []
            for f in (*layer.model.learnable, "v_reset", "reset", "surrogate", "alpha"):
                if not hasattr(p, f):
                    continue
                value = getattr(p, f)
                if np.ndim(value) > 0:
                    fields.append(f"{f}=[{np.min(value):.4g}..{np.max(value):.4g}]")
                else:
                    fields.append(
                        f"{f}={value:.4g}" if not isinstance(value, str) else f"{f}={value}"
                    )
            form = "recurrent " if layer.recurrent else ""
            line = (
                f"{k}: {type(layer).__name__} {form}n={layer.n_out} dt={layer.dt:g} "
                + " ".join(fields)
            )
        lines.append(line + f" ({layer.dtype.name})")
    return "\n".join(lines)
