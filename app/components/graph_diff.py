"""The live graph's diff: what changed in the network since the page's last message.

The page holds the network (live_graph.js). A "full" message carries the layout and every drawn
edge; a "delta" only what changed since the page's last message: edges pruned (with their
lifetime, so a brief probe and the death of an established connection look different) and
revived, weights that moved by more than MOVE_FRACTION of the layer's scale, connections that
were revived and pruned again between two frames (probes), dead units when they change, and per
layer the counts of every pruned, revived and probe event (the counters).

Graphs above SAMPLE_LIMIT active edges draw a fixed sample of positions (a hash of layer and
position below a threshold, so a drawn position stays drawn while it lives and its prunes and
revivals show); the canvas says so, and the counters count every edge.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..charts.palette import is_probe
from .sync import Sent
from .wire import half

SAMPLE_LIMIT = 12_000     # edges drawn at most (canvas 2D stays well under a frame budget)
MOVE_FRACTION = 0.02      # a weight is re-sent when it moved this much of its layer's scale
PROBE_CAP = 64            # probe flashes drawn per layer per frame (Deep R can probe thousands;
                          # the counters count all of them)


# -- data in ----------------------------------------------------------------------------------
@dataclass
class LayerData:
    """One rewired Linear layer: shape (out, in); positions are row-major flat indices
    (row = output unit, col = input unit)."""
    shape: tuple[int, int]
    active_pos: np.ndarray                   # sorted flat indices of the active connections
    active_weight: np.ndarray                # their weights, same order
    pruned: np.ndarray | None = None         # pruned since the previous frame (or last step)
    activated: np.ndarray | None = None      # revived since the previous frame (or last step)
    pruned_lifetime: np.ndarray | None = None  # steps each pruned one lived, if known


@dataclass
class GraphData:
    step: int
    layers: list[LayerData]
    image_shape: tuple[int, int] | None = None  # the input layer drawn as this pixel grid
    run_id: str = ""                             # a new id sends the whole graph again

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.layers[0].shape[1], *[l.shape[0] for l in self.layers]) if self.layers else ()


def layer_data(d) -> LayerData:
    """One layer from a frame's layer: a dict or an object with the same names (a
    views.LayerView): `active_pos`/`active_weight` (or dense `active`/`weight`), and optional
    `pruned`, `activated`, `pruned_lifetime` (or `pruned_age`)."""
    get = d.get if isinstance(d, dict) else (lambda k: getattr(d, k, None))
    if get("active_pos") is not None:
        pos = np.asarray(get("active_pos"), dtype=np.int64).reshape(-1)
        w = np.asarray(get("active_weight"), dtype=np.float32).reshape(-1)
    else:
        pos = np.flatnonzero(np.asarray(get("active")).reshape(-1))
        w = np.asarray(get("weight"), dtype=np.float32).reshape(-1)[pos]
    if len(pos) > 1 and np.any(pos[1:] < pos[:-1]):
        order = np.argsort(pos, kind="stable")
        pos, w = pos[order], w[order]

    def opt(*names):
        for n in names:
            if get(n) is not None:
                return np.asarray(get(n), dtype=np.int64).reshape(-1)
        return None
    return LayerData(tuple(int(s) for s in get("shape")), pos, w, opt("pruned"), opt("activated"),
                     opt("pruned_lifetime", "pruned_age"))


def from_layers(layers: Sequence[dict], step: int, image_shape=None, run_id: str = "") -> GraphData:
    """GraphData from per-layer dicts; layers that are not 2-D (conv kernels) are left out."""
    lin = [layer_data(l) for l in layers
           if len(l["shape"] if isinstance(l, dict) else l.shape) == 2]
    sizes = (lin[0].shape[1],) if lin else ()
    if image_shape is not None and (not sizes or int(np.prod(image_shape)) != sizes[0]):
        image_shape = None  # a conv model's first Linear layer is not the image
    return GraphData(int(step), lin, tuple(image_shape) if image_shape is not None else None, str(run_id))


def from_frame(frame, info, run_id: str = "") -> GraphData:
    """From a views.RunView and a background.RunInfo (only `step`, `layers` and
    `info.image_shape` are read)."""
    return from_layers(frame.layers, frame.step, getattr(info, "image_shape", None), run_id)


# -- layout -----------------------------------------------------------------------------------
def column_layout(sizes: Sequence[int], image_shape=None, edges_per_layer: Sequence[int] = ()) -> dict:
    """Column x positions in [0, 1] (of the width right of an image grid, if any). Gaps grow
    with the square root of each layer's edge count, so the dense first layer gets the most
    room instead of a thin strip next to the input grid; no gap is below 45% of the widest."""
    n = len(sizes)
    e = np.asarray(edges_per_layer if len(edges_per_layer) == n - 1 else np.ones(n - 1), dtype=float)
    gaps = np.clip(np.sqrt(e / max(e.max(), 1.0)), 0.45, 1.0) if n > 1 else np.zeros(0)
    grid = image_shape is not None and sizes and int(np.prod(image_shape)) == sizes[0]
    if grid:  # the grid's right edge is x = 0; the first gap still spans to the next column
        x = np.concatenate([[0.0], np.cumsum(gaps) / gaps.sum()])
    else:
        x = np.concatenate([[0.0], np.cumsum(gaps) / max(gaps.sum(), 1e-9)])
    return {"sizes": [int(s) for s in sizes], "grid": list(map(int, image_shape)) if grid else None,
            "x": [round(float(v), 4) for v in x]}


# -- what the page holds ---------------------------------------------------------------------
@dataclass
class _Layer:
    pos: np.ndarray       # drawn (sampled) positions the browser holds, sorted
    w: np.ndarray         # the weights the browser holds for them
    birth: np.ndarray     # step each was first seen (-1: there when the graph was first sent)
    all_pos: np.ndarray   # every active position (counters and dead units)


@dataclass
class GraphSent(Sent):
    layers: list[_Layer] = field(default_factory=list)
    dead: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sample_frac: float = 1.0


def sample_mask(layer: int, pos: np.ndarray, frac: float) -> np.ndarray:
    if frac >= 1.0:
        return np.ones(len(pos), dtype=bool)
    h = (pos.astype(np.uint64) * np.uint64(2654435761) + np.uint64(layer * 40503)) & np.uint64(0xFFFFFFFF)
    return h < np.uint64(int(frac * 2**32))


def _in_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each element of a: whether it is in the sorted array b."""
    if len(b) == 0:
        return np.zeros(len(a), dtype=bool)
    i = np.searchsorted(b, a).clip(0, len(b) - 1)
    return b[i] == a


def _scale(w: np.ndarray) -> float:
    return float(np.quantile(np.abs(w), 0.98)) if len(w) else 1.0


def engine_lifetimes(rm: np.ndarray, life: np.ndarray, pruned: np.ndarray, lifetime: np.ndarray) -> np.ndarray:
    """The lifetimes of the removed edges `rm` as the engine counted them (the last event of a
    position wins), else `life` (from our own frames)."""
    last, idx = np.unique(pruned[::-1], return_index=True)  # the last event of each position
    out = life.copy()
    if len(last) and len(rm):
        i = np.searchsorted(last, rm).clip(0, len(last) - 1)
        hit = last[i] == rm
        out[hit] = lifetime[::-1][idx[i[hit]]]
    return out


def dead_units(data: GraphData) -> np.ndarray:
    """Node ids (columns numbered left to right) of hidden units with no incoming or no
    outgoing active connection."""
    out, off = [], data.sizes[0] if data.layers else 0
    for a, b in zip(data.layers[:-1], data.layers[1:]):
        n = a.shape[0]
        has_in = np.bincount(a.active_pos // a.shape[1], minlength=n)[:n] > 0
        has_out = np.bincount(b.active_pos % b.shape[1], minlength=b.shape[1])[:n] > 0
        out.append(off + np.flatnonzero(~has_in | ~has_out))
        off += n
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)


def full(data: GraphData, sent: GraphSent) -> tuple[dict, dict]:
    total = sum(len(l.active_pos) for l in data.layers)
    sent.sample_frac = min(1.0, SAMPLE_LIMIT / max(total, 1))
    arrays, sent.layers = {}, []
    for i, l in enumerate(data.layers):
        keep = sample_mask(i, l.active_pos, sent.sample_frac)
        pos, w = l.active_pos[keep], half(l.active_weight[keep])
        sent.layers.append(_Layer(pos, w.astype(np.float32), np.full(len(pos), -1, np.int64),
                                  l.active_pos.copy()))
        arrays[f"pos{i}"], arrays[f"w{i}"] = pos, w
    sent.dead = dead_units(data)
    arrays["dead"] = sent.dead
    shown = sum(len(l.pos) for l in sent.layers)
    header = {"kind": "full", "layout": column_layout(data.sizes, data.image_shape,
                                                      [len(l.active_pos) for l in data.layers]),
              "layers": [{"shape": list(l.shape)} for l in data.layers],
              "sample": None if sent.sample_frac >= 1 else {
                  "shown": shown, "total": total,
                  "rule": f"positions whose hash is below {sent.sample_frac:.3f}"}}
    return header, arrays


def delta(data: GraphData, sent: GraphSent) -> tuple[dict, dict] | None:
    """The changes since what `sent` holds (None when nothing changed), and `sent` updated."""
    arrays, counts = {}, []
    advanced = data.step > sent.step  # the engine's events belong to a step not yet shown
    for i, (l, s) in enumerate(zip(data.layers, sent.layers)):
        # counters: every edge, sampled or not
        was = _in_sorted(s.all_pos, l.active_pos)
        now_new = ~_in_sorted(l.active_pos, s.all_pos)
        pruned_all, added_all = s.all_pos[~was], l.active_pos[now_new]
        # the engine's lists are events (a position probed twice counts twice); the set
        # difference only sees the net change
        n_pruned, n_added = len(pruned_all), len(added_all)
        if advanced and l.pruned is not None:
            n_pruned = max(n_pruned, len(l.pruned))
        if advanced and l.activated is not None:
            n_added = max(n_added, len(l.activated))
        n_probes = 0
        if advanced and l.pruned is not None and l.pruned_lifetime is not None:
            n_probes = int(is_probe(l.pruned_lifetime).sum())
        s.all_pos = l.active_pos.copy()
        # drawing: the sampled positions only
        keep = sample_mask(i, l.active_pos, sent.sample_frac)
        pos, w = l.active_pos[keep], half(l.active_weight[keep]).astype(np.float32)
        stays = _in_sorted(s.pos, pos)
        is_new = ~_in_sorted(pos, s.pos)
        rm, rm_birth = s.pos[~stays], s.birth[~stays]
        life = np.where(rm_birth >= 0, data.step - rm_birth, -1)
        if l.pruned_lifetime is None:  # lifetimes from our own frames (a frame's steps apart)
            n_probes = int(is_probe(life).sum())
        counts.append([int(n_pruned), int(n_added), min(n_probes, int(n_pruned))])
        if l.pruned is not None and l.pruned_lifetime is not None and len(l.pruned) == len(l.pruned_lifetime):
            life = engine_lifetimes(rm, life, l.pruned, l.pruned_lifetime)
        # weights of edges that stay: re-send those that moved visibly; when most did, all
        # of them in position order (2 bytes each instead of 6)
        old_w = s.w[stays]
        cur_w = w[~is_new]
        moved = np.abs(cur_w - old_w) > MOVE_FRACTION * _scale(w)
        every = moved.sum() * 3 > len(pos)
        if every:
            moved[:] = True
        new_w = old_w.copy()
        new_w[moved] = cur_w[moved]
        births = np.empty(len(pos), np.int64)
        births[~is_new] = s.birth[stays]
        births[is_new] = data.step
        weights = np.empty(len(pos), np.float32)
        weights[~is_new] = new_w
        weights[is_new] = w[is_new]
        # revived and pruned again between two frames: never in either set, shown as a probe
        probe = np.zeros(0, np.int64)
        if advanced and l.pruned is not None and l.activated is not None:
            pruned = l.pruned
            if len(pruned) > 32 * PROBE_CAP:  # thousands of events: at most PROBE_CAP are drawn
                pruned = np.random.default_rng(data.step).choice(pruned, 32 * PROBE_CAP, replace=False)
            probe = np.intersect1d(pruned, l.activated)
            probe = probe[~_in_sorted(probe, s.pos) & ~_in_sorted(probe, pos)]
            probe = probe[sample_mask(i, probe, sent.sample_frac)]
            if len(probe) > PROBE_CAP:
                probe = np.sort(np.random.default_rng(data.step).choice(probe, PROBE_CAP, replace=False))
        moves = ((f"wall{i}", half(w)),) if every else \
            ((f"mv{i}", pos[~is_new][moved]), (f"mvw{i}", half(cur_w[moved])))
        for name, arr in ((f"rm{i}", rm), (f"life{i}", life), (f"add{i}", pos[is_new]),
                          (f"addw{i}", half(w[is_new])), *moves, (f"probe{i}", probe)):
            if len(arr):
                arrays[name] = arr
        s.pos, s.w, s.birth = pos, weights, births
    dead = dead_units(data)
    if not np.array_equal(dead, sent.dead):
        arrays["dead"] = sent.dead = dead
    if not arrays and not any(any(c) for c in counts):
        return None
    return {"counts": counts, "dead": "dead" in arrays}, arrays


def signature(data: GraphData) -> tuple:
    return (data.run_id, tuple(l.shape for l in data.layers), data.image_shape)


