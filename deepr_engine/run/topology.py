"""The active network as a graph: which inputs still reach an output, which units are cut off,
how degrees are distributed, how many input-to-output paths there are.

`build` turns a run's layers (a TrainingSession, a RunView, the session's rewired layers, or
(weight_shape, active positions) pairs) into a `Topology`: units per level (level 0 the
inputs, the last the outputs) and per layer the edges as two int arrays, in O(K) numpy.
`summary` answers the questions from those arrays (reachability and the path count by
dynamic programming over the levels, one bincount per layer: a sparse matrix-vector product,
never path enumeration); `to_digraph` gives the same network as a networkx.DiGraph for
anything else networkx answers.

Which layers: the chain of consecutive rewired layers ending at the output layer, each one's
inputs being the previous one's outputs. A Conv2d layer counts by channel: an edge from input
channel a to output channel b when any kernel tap between them is active. A Linear layer after
a conv layer groups its inputs by channel (nn.Flatten order: channel-major) when its input
count is a multiple of the conv's channel count. A layer that fits neither rule ends the chain
(the layers before it are left out: `Topology.layers` names the ones taken).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CSV_COLUMNS = ("inputs_reaching", "outputs_reached", "dead_units", "log10_paths")


@dataclass
class Topology:
    sizes: list[int]                          # units per level: inputs, hidden..., outputs
    edges: list[tuple[np.ndarray, np.ndarray]]  # per layer (src unit, dst unit), int64
    layers: list[int]                         # the rewired layers' indices, in order
    by_channel: list[bool]                    # per layer: its units are channels

    @property
    def n_edges(self) -> int:
        return int(sum(len(s) for s, _ in self.edges))


def _pairs(source) -> list[tuple[tuple, np.ndarray]]:
    """(weight_shape, active flat positions) per rewired layer, from any accepted source."""
    layers = getattr(source, "layers", source)
    out = []
    for item in layers:
        if hasattr(item, "active_idx"):       # a rewired layer (layer_api.Rewired)
            out.append((tuple(item.weight_shape), item.active_idx.detach().cpu().numpy()))
        elif hasattr(item, "active_pos"):     # a views.LayerView
            out.append((tuple(item.shape), np.asarray(item.active_pos)))
        else:
            shape, pos = item
            out.append((tuple(shape), np.asarray(pos)))
    if not out:
        raise ValueError("topology needs at least one rewired layer")
    return out


def _layer_edges(shape: tuple, pos: np.ndarray):
    """(n_in, n_out, src, dst, by_channel) of one layer's active positions."""
    pos = np.asarray(pos, dtype=np.int64)
    if len(shape) == 2:
        n_out, n_in = shape
        return n_in, n_out, pos % n_in, pos // n_in, False
    if len(shape) == 4:
        n_out, n_in = shape[0], shape[1]
        taps = int(np.prod(shape[2:]))
        pair = np.unique((pos // (n_in * taps)) * n_in + (pos // taps) % n_in)
        return n_in, n_out, pair % n_in, pair // n_in, True
    raise ValueError(f"topology takes Linear (2-D) or Conv2d (4-D) weights, got shape {shape}")


def build(source) -> Topology:
    """The active network's levels and edges (see the module's docstring for the layer rule)."""
    pairs = _pairs(source)
    n_in, n_out, src, dst, chan = _layer_edges(*pairs[-1])
    sizes, edges, taken, by_channel = [n_in, n_out], [(src, dst)], [len(pairs) - 1], [chan]
    for j in range(len(pairs) - 2, -1, -1):
        p_in, p_out, p_src, p_dst, p_chan = _layer_edges(*pairs[j])
        src, dst = edges[0]
        if p_out != sizes[0]:
            if not (p_chan and not by_channel[0] and sizes[0] % p_out == 0):
                break
            group = sizes[0] // p_out        # a Linear after a conv: its inputs by channel
            pair = np.unique((src // group) * sizes[1] + dst)
            edges[0] = (pair // sizes[1], pair % sizes[1])
            sizes[0] = p_out
        sizes.insert(0, p_in)
        edges.insert(0, (p_src, p_dst))
        taken.insert(0, j)
        by_channel.insert(0, p_chan)
    return Topology(sizes, edges, taken, by_channel)


def _as_topology(obj) -> Topology:
    if isinstance(obj, Topology):
        return obj
    if hasattr(obj, "graph") and hasattr(obj, "edges") and "sizes" in getattr(obj, "graph", {}):
        return from_digraph(obj)
    return build(obj)


def _reach(topo: Topology) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per level: reached from some input (forward), reaching some output (backward)."""
    fwd = [np.ones(topo.sizes[0], dtype=bool)]
    for (src, dst), n in zip(topo.edges, topo.sizes[1:]):
        fwd.append(np.bincount(dst, weights=fwd[-1][src], minlength=n) > 0)
    bwd = [np.ones(topo.sizes[-1], dtype=bool)]
    for (src, dst), n in zip(reversed(topo.edges), reversed(topo.sizes[:-1])):
        bwd.insert(0, np.bincount(src, weights=bwd[0][dst], minlength=n) > 0)
    return fwd, bwd


def log10_paths(topo: Topology) -> float:
    """log10 of the number of input-to-output paths (-inf when there is none): the count per
    unit carried level by level in float64, rescaled by its maximum each level (log offset)."""
    count, offset = np.ones(topo.sizes[0]), 0.0
    for (src, dst), n in zip(topo.edges, topo.sizes[1:]):
        count = np.bincount(dst, weights=count[src], minlength=n)
        top = count.max(initial=0.0)
        if top <= 0:
            return float("-inf")
        count /= top
        offset += np.log10(top)
    return float(offset + np.log10(count.sum()))


def summary(obj) -> dict:
    """Reachability, dead units, degree distributions and the path count of a Topology, a
    DiGraph from `to_digraph`, a TrainingSession, a RunView or a list of layers.

    n_inputs, n_outputs; inputs_reaching (inputs with a path to some output); outputs_reached
    (outputs with a path from some input); dead_units (hidden units on no input-to-output path)
    and dead_per_level (per hidden level); log10_paths; per layer in_degree / out_degree
    (np.bincount histograms: entry d = units with degree d, over the layer's output / input
    units) and their means; layers (the rewired layers taken) and by_channel."""
    topo = _as_topology(obj)
    fwd, bwd = _reach(topo)
    alive = [f & b for f, b in zip(fwd, bwd)]
    dead = [int((~a).sum()) for a in alive[1:-1]]
    in_deg, out_deg = [], []
    for (src, dst), n_in, n_out in zip(topo.edges, topo.sizes[:-1], topo.sizes[1:]):
        in_deg.append(np.bincount(np.bincount(dst, minlength=n_out)))
        out_deg.append(np.bincount(np.bincount(src, minlength=n_in)))
    mean = lambda h: float((np.arange(len(h)) * h).sum() / max(h.sum(), 1))  # noqa: E731
    return {"n_inputs": topo.sizes[0], "n_outputs": topo.sizes[-1],
            "inputs_reaching": int(bwd[0].sum()), "outputs_reached": int(fwd[-1].sum()),
            "dead_units": int(sum(dead)), "dead_per_level": dead, "log10_paths": log10_paths(topo),
            "in_degree": in_deg, "out_degree": out_deg,
            "in_degree_mean": [mean(h) for h in in_deg], "out_degree_mean": [mean(h) for h in out_deg],
            "sizes": list(topo.sizes), "layers": list(topo.layers), "by_channel": list(topo.by_channel),
            "n_edges": topo.n_edges}


def csv_row(obj) -> list[float]:
    """The CSV_COLUMNS of `summary` (what telemetry records at each evaluation)."""
    s = summary(obj)
    return [float(s[c]) for c in CSV_COLUMNS]


def to_digraph(obj):
    """A networkx.DiGraph of the active network, built in O(K): node id = offset of its level +
    unit index, with attributes level and unit; every edge has attribute layer (the rewired
    layer's index). graph.graph holds sizes, layers and by_channel (summary reads them back)."""
    import networkx as nx   # only here: sessions and views do not pay its import
    topo = _as_topology(obj)
    offsets = np.concatenate([[0], np.cumsum(topo.sizes)])
    g = nx.DiGraph(sizes=list(topo.sizes), layers=list(topo.layers), by_channel=list(topo.by_channel))
    for level, n in enumerate(topo.sizes):
        ids = range(int(offsets[level]), int(offsets[level + 1]))
        g.add_nodes_from(ids, level=level)
        nx.set_node_attributes(g, dict(zip(ids, range(n))), "unit")
    for k, ((src, dst), layer) in enumerate(zip(topo.edges, topo.layers)):
        pairs = np.stack([src + offsets[k], dst + offsets[k + 1]], 1).tolist()
        g.add_edges_from(pairs, layer=layer)
    return g


def from_digraph(g) -> Topology:
    """The Topology of a graph laid out by `to_digraph` (node ids by level offsets); edges added
    since count too, as long as they go from one level to the next."""
    sizes = [int(n) for n in g.graph["sizes"]]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    e = np.asarray(list(g.edges()), dtype=np.int64).reshape(-1, 2)
    level = np.searchsorted(offsets, e[:, 0], side="right") - 1
    if len(e) and (np.any(np.searchsorted(offsets, e[:, 1], side="right") - 1 != level + 1)
                   or e.max() >= offsets[-1] or e.min() < 0):
        raise ValueError("graph edges must go from one level to the next (a graph from to_digraph)")
    edges = [(e[level == k, 0] - offsets[k], e[level == k, 1] - offsets[k + 1])
             for k in range(len(sizes) - 1)]
    return Topology(sizes, edges, list(g.graph.get("layers", range(len(edges)))),
                    list(g.graph.get("by_channel", [False] * len(edges))))
