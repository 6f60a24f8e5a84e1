"""The live connectivity graph: a canvas component (Streamlit custom components v2, no iframe).

The browser holds the network. Python sends it once (layout and every active edge: a "full"
message) and then, per frame, only what changed since the previous frame (a "delta"): edges
pruned (with their lifetime, so brief probes and deaths of established connections look
different) and revived, weights that moved by more than `MOVE_FRACTION` of the layer's scale,
and dead units when they change. Fades run in the browser (live_graph/live_graph.js).

Per tick, from a fragment, the caller passes the whole current frame:

    st.fragment(run_every=live_graph.run_every("graph", playing))(views)(run)
    # in views():
    live_graph.live_graph(live_graph.from_frame(frame, run.info, run_id=...), key="graph",
                          playing=frame.playing)

and this module diffs it against what it last sent for that key (kept in st.session_state
under _STATE). Messages are binary (a JSON header, int32/float32/float16 arrays). The page
reports back how far it got (its `report` state: frames applied, last sequence number).
Default pace "pull": each report is also the page's request for the next frame, at most
IN_FLIGHT frames wait for it, so ticks never pile up and the rate follows what this browser
keeps up with; the fragment's run_every is only a slow keepalive. Pace "timer": the fragment's
run_every drives the frames and run_every(key, pace="timer") backs off along TICKS.

Graphs above `SAMPLE_LIMIT` active edges draw a fixed sample of positions (a hash of layer and
position below a threshold, so a drawn position stays drawn while it lives and its prunes and
revivals show); the canvas says so, and the per-layer counters count every edge.
"""
from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import streamlit as st

from app.components import feed

ASSETS = Path(__file__).with_suffix("")
SAMPLE_LIMIT = 12_000     # edges drawn at most (canvas 2D stays well under a frame budget)
MOVE_FRACTION = 0.02      # a weight is re-sent when it moved this much of its layer's scale
PROBE_STEPS = 20          # pruned within this many steps of its revival: a brief probe
PROBE_CAP = 64            # probe flashes drawn per layer per frame (Deep R can probe thousands;
                          # the counters count all of them)
FADE_BUDGET = {"death": 16, "added": 16, "probe": 12}  # fades per frame, all layers (a fair
                          # sample when more: thousands of fading strokes slow a canvas that is
                          # rasterised without a GPU to a few frames/s)
TICKS = (0.1, 0.15, 0.2, 0.3, 0.45, 0.7, 1.0)  # run_every ladder (s): 10 frames/s at best
MIN_TICK = TICKS[0]
KEEPALIVE = 2.0           # run_every in pull pace: only restarts a chain that broke
MAX_BEHIND = 3            # frames in flight before a tick sends nothing new
CHAIN = 2                 # each message also repeats the previous delta: the page can miss a
                          # message (two arriving together render once)
IN_FLIGHT = 2             # pull pace: frames sent ahead of the page's confirmation (the server
                          # builds the next one while the page draws this one)
_STATE = "_deepr_live_graph"
LEGEND = ("blue +, red −, opacity |w|; green: revived, bold dark (light on a dark theme): an "
          "established connection pruned, dotted violet: a brief probe pruned (revived and pruned "
          "again within a few steps), fading over about a second — per frame up to "
          f"{FADE_BUDGET['death']} deaths, {FADE_BUDGET['added']} revivals and {FADE_BUDGET['probe']} "
          "probes (a fair sample when there are more: Deep R can revive and prune hundreds per "
          "frame); hollow units are dead. Counters: every pruned and revived "
          "connection per second, per layer. "
          f"Above {SAMPLE_LIMIT:,} edges a fixed sample is drawn (the canvas says so).")

_component = st.components.v2.component(
    "deepr_live_graph",
    js=(ASSETS.parent / "common.js").read_text(encoding="utf-8")
    + (ASSETS / "live_graph.js").read_text(encoding="utf-8"),
    css=(ASSETS / "live_graph.css").read_text(encoding="utf-8"),
)


THEMES = ("auto", "light", "dark")


def check_choice(name: str, value, allowed) -> None:
    """ValueError naming the argument, the value and what is allowed."""
    if value not in allowed:
        raise ValueError(f"{name}: one of {', '.join(map(str, allowed))}; got {value!r}")


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
    """Adapter for deepr_engine.run.background's Frame and RunInfo (only `step`, `layers` and
    `info.image_shape` are read, so a refactored frame with the same layer keys still fits)."""
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


# -- what was sent, per key -------------------------------------------------------------------
@dataclass
class _Layer:
    pos: np.ndarray       # drawn (sampled) positions the browser holds, sorted
    w: np.ndarray         # the weights the browser holds for them
    birth: np.ndarray     # step each was first seen (-1: there when the graph was first sent)
    all_pos: np.ndarray   # every active position (counters and dead units)


@dataclass
class _Sent:
    sig: tuple
    seq: int = 0
    step: int = 0
    layers: list[_Layer] = field(default_factory=list)
    dead: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sample_frac: float = 1.0
    sent_at: deque = field(default_factory=lambda: deque(maxlen=64))      # (monotonic, seq)
    reports: deque = field(default_factory=lambda: deque(maxlen=32))      # (monotonic, report)
    resync_done: int = -1
    last_report_ms: float = -1.0
    level: int = 0        # index into TICKS
    calm: int = 0         # reports in a row with nothing in flight
    last_bytes: int = 0
    last_kind: str = ""
    skipped: int = 0      # ticks that re-sent the last message because the page was behind
    last_full_seq: int = 0
    payload: tuple = ({}, {})  # the last message's header and arrays (sent again while waiting)
    chain: deque = field(default_factory=lambda: deque(maxlen=CHAIN))  # recent deltas (seq, header, arrays)


def _store() -> dict:
    return st.session_state.setdefault(_STATE, {})


def _sample_mask(layer: int, pos: np.ndarray, frac: float) -> np.ndarray:
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


def _engine_lifetimes(rm: np.ndarray, life: np.ndarray, pruned: np.ndarray, lifetime: np.ndarray) -> np.ndarray:
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


def pack(header: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """A 4-byte header length, the JSON header, padding to 4 bytes, then the arrays (int32,
    float32 or float16, each padded to 4 bytes)."""
    meta, parts, off = {}, [], 0
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        a = np.ascontiguousarray(arr, dtype=np.float16 if arr.dtype == np.float16 else
                                 np.int32 if arr.dtype.kind in "iub" else np.float32)
        meta[name] = [{np.int32: "i4", np.float32: "f4", np.float16: "f2"}[a.dtype.type], off, int(a.size)]
        raw = a.tobytes() + b"\0" * ((-a.nbytes) % 4)
        parts.append(raw)
        off += len(raw)
    head = json.dumps({**header, "arrays": meta}, separators=(",", ":")).encode()
    pad = b"\0" * ((-(4 + len(head))) % 4)
    return len(head).to_bytes(4, "little") + head + pad + b"".join(parts)


def unpack(msg: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """The inverse of pack: (header without "arrays", {name: array}); what the page decodes."""
    n = int.from_bytes(msg[:4], "little")
    header = json.loads(msg[4:4 + n])
    start = (4 + n + 3) & ~3
    dtypes = {"i4": np.int32, "f4": np.float32, "f2": np.float16}
    arrays = {name: np.frombuffer(msg, dtype=dtypes[dt], count=count, offset=start + off)
              for name, (dt, off, count) in header.pop("arrays", {}).items()}
    return header, arrays


def _half(w: np.ndarray) -> np.ndarray:
    """Weights travel as float16 (3 significant digits: more than the drawing or the hover
    text shows); what the page holds is this rounding."""
    return np.asarray(w, dtype=np.float32).astype(np.float16)


def _full(data: GraphData, sent: _Sent) -> tuple[dict, dict]:
    total = sum(len(l.active_pos) for l in data.layers)
    sent.sample_frac = min(1.0, SAMPLE_LIMIT / max(total, 1))
    arrays, sent.layers = {}, []
    for i, l in enumerate(data.layers):
        keep = _sample_mask(i, l.active_pos, sent.sample_frac)
        pos, w = l.active_pos[keep], _half(l.active_weight[keep])
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


def _delta(data: GraphData, sent: _Sent, probe_steps: int = PROBE_STEPS) -> tuple[dict, dict]:
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
            n_probes = int((l.pruned_lifetime <= probe_steps).sum())
        s.all_pos = l.active_pos.copy()
        # drawing: the sampled positions only
        keep = _sample_mask(i, l.active_pos, sent.sample_frac)
        pos, w = l.active_pos[keep], _half(l.active_weight[keep]).astype(np.float32)
        stays = _in_sorted(s.pos, pos)
        is_new = ~_in_sorted(pos, s.pos)
        rm, rm_birth = s.pos[~stays], s.birth[~stays]
        life = np.where(rm_birth >= 0, data.step - rm_birth, -1)
        if l.pruned_lifetime is None:  # lifetimes from our own frames (a frame's steps apart)
            n_probes = int(((life >= 0) & (life <= probe_steps)).sum())
        counts.append([int(n_pruned), int(n_added), min(n_probes, int(n_pruned))])
        if l.pruned is not None and l.pruned_lifetime is not None and len(l.pruned) == len(l.pruned_lifetime):
            life = _engine_lifetimes(rm, life, l.pruned, l.pruned_lifetime)
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
            probe = probe[_sample_mask(i, probe, sent.sample_frac)]
            if len(probe) > PROBE_CAP:
                probe = np.sort(np.random.default_rng(data.step).choice(probe, PROBE_CAP, replace=False))
        moves = ((f"wall{i}", _half(w)),) if every else \
            ((f"mv{i}", pos[~is_new][moved]), (f"mvw{i}", _half(cur_w[moved])))
        for name, arr in ((f"rm{i}", rm), (f"life{i}", life), (f"add{i}", pos[is_new]),
                          (f"addw{i}", _half(w[is_new])), *moves, (f"probe{i}", probe)):
            if len(arr):
                arrays[name] = arr
        s.pos, s.w, s.birth = pos, weights, births
    dead = dead_units(data)
    if not np.array_equal(dead, sent.dead):
        arrays["dead"] = sent.dead = dead
    return {"kind": "delta", "base": sent.seq, "counts": counts}, arrays


def _chained(deltas: list) -> tuple[dict, dict]:
    """Deltas in one message, oldest first; the page applies those it does not have yet."""
    header, arrays = {"kind": "delta", "deltas": []}, {}
    for j, (seq, h, arr) in enumerate(deltas):
        header["deltas"].append({"seq": seq, "base": h["base"], "counts": h["counts"],
                                 "dead": "dead" in arr, "p": f"d{j}_"})
        arrays.update({f"d{j}_{k}": v for k, v in arr.items()})
    return header, arrays


def _signature(data: GraphData) -> tuple:
    return (data.run_id, tuple(l.shape for l in data.layers), data.image_shape)


# -- the feed (feed.py): frames over HTTP, outside Streamlit's reruns ----------------------------
class GraphChannel:
    """The graph's messages for a feed: the whole graph when the page holds nothing or not what
    was last sent (`have`, the sequence number it applied, says which), else the delta since
    the last message, or a short "same" message when nothing changed (paused)."""

    def __init__(self, image_shape=None, run_id: str = "", probe_steps: int = PROBE_STEPS):
        self.image_shape, self.run_id, self.probe_steps = image_shape, str(run_id), int(probe_steps)
        self.sent: _Sent | None = None

    def message(self, view, have: int) -> bytes:
        data = from_layers(view.layers, view.step, self.image_shape, self.run_id)
        sent = self.sent
        if sent is None or have != sent.seq or sent.sig != _signature(data) or data.step < sent.step:
            sent = self.sent = _Sent(_signature(data), seq=sent.seq if sent is not None else 0)
            header, arrays = _full(data, sent)
        else:
            header, arrays = _delta(data, sent, self.probe_steps)
            if not arrays and not any(any(c) for c in header["counts"]):
                return pack({"kind": "same", "seq": sent.seq, "step": data.step}, {})
            header, arrays = _chained([(sent.seq + 1, header, arrays)])
        sent.seq += 1
        sent.step = data.step
        msg = pack({**header, "seq": sent.seq, "step": data.step, "probe_steps": self.probe_steps}, arrays)
        sent.last_bytes, sent.last_kind = len(msg), header["kind"]
        return msg


def feed_view(url: str, *, key: str = "live_graph", height: int = 400, theme: str = "auto",
              playing: bool = True, step: int = 0, channel: str = "graph") -> None:
    """The canvas `key`, fed by the feed at `url` (feed.py) on `channel`: while `playing` the
    page asks for frames itself; paused, it asks once whenever `step` differs from the step it
    shows (after Step 10, say). Cheap to call on every rerun: the subscription is all it sends."""
    check_choice("theme", theme, THEMES)
    msg = pack({"kind": "feed", "feed": url, "channel": channel, "key": key, "height": int(height),
                "theme": theme, "playing": bool(playing), "step": int(step), "max_fps": feed.MAX_FPS,
                "fade_budget": FADE_BUDGET}, {})
    _component(key=key, data=msg, height="content", on_report_change=lambda: None)


# -- the component ---------------------------------------------------------------------------
def read_report(key: str) -> dict | None:
    """The page's last report (its component state), readable before the component is mounted
    in this run."""
    try:
        state = st.session_state[key]
    except (KeyError, AttributeError):
        return None
    rep = state.get("report") if hasattr(state, "get") else None
    return rep if isinstance(rep, dict) else None


def take_report(sent: _Sent, rep: dict | None) -> tuple[bool, bool]:
    """Record the page's report: (it is new, the page asked for the whole graph again)."""
    if not rep or rep.get("ms") == sent.last_report_ms:
        return False, False
    sent.last_report_ms = rep.get("ms")
    sent.reports.append((time.monotonic(), rep))
    resync = rep.get("resync")
    # a page that missed a frame asks once per frame it could not apply; a full message sent
    # after the one it names already answers it
    if resync is not None and resync > sent.resync_done and resync >= sent.last_full_seq:
        sent.resync_done = int(resync)
        return True, True
    return True, False


def _behind(sent: _Sent) -> int:
    """Frames sent that the page had not drawn when it last reported, minus those it had no
    chance to see yet (sent after the report left the page is unknowable: counted as seen)."""
    if not sent.reports:
        return 0
    when, rep = sent.reports[-1]
    sent_by_then = max((q for t, q in sent.sent_at if t <= when), default=sent.seq)
    return max(0, sent_by_then - int(rep.get("seq", 0)))


def waiting(sent: _Sent, pace: str) -> bool:
    """Whether this tick should send nothing new. pull: IN_FLIGHT frames wait for the page's
    confirmation (so frames never pile up); timer: frames are piling up."""
    if pace == "pull":
        return not sent.reports or int(sent.reports[-1][1].get("seq", -1)) <= sent.seq - IN_FLIGHT
    return _behind(sent) > MAX_BEHIND


def browser_fps(key: str, window: float = 5.0) -> float | None:
    """Frames per second the page applied, from its last reports (its own clock)."""
    sent = _store().get(key)
    if sent is None or len(sent.reports) < 2:
        return None
    now = sent.reports[-1][0]
    recent = [r for t, r in sent.reports if now - t <= window]
    if len(recent) < 2:
        recent = [r for _, r in list(sent.reports)[-2:]]
    a, b = recent[0], recent[-1]
    dt = (b["ms"] - a["ms"]) / 1e3
    return (b["applied"] - a["applied"]) / dt if dt > 0 else None


def run_every(key: str, playing: bool = True, pace: str = "pull") -> float | None:
    """The run_every (s) for the fragment that calls live_graph(key): None when paused;
    KEEPALIVE in pull pace (the page itself asks for frames); in timer pace TICKS[0] while the
    page keeps up, one rung longer per report that finds frames piling up in it, one rung
    shorter after three calm reports (it changes at most once per report; a new run_every takes
    an app rerun, which re-mounts the canvas: one full message)."""
    if not playing:
        return None
    if pace == "pull":
        return KEEPALIVE
    sent = _store().get(key)
    return TICKS[sent.level] if sent is not None else TICKS[0]


def _adapt(sent: _Sent) -> None:
    """On each new report."""
    behind = _behind(sent)
    if behind >= 2:
        sent.level, sent.calm = min(len(TICKS) - 1, sent.level + 1), 0
    elif behind == 0:
        sent.calm += 1
        if sent.calm >= 3 and sent.level > 0:
            sent.level, sent.calm = sent.level - 1, 0


def live_graph(data: GraphData, *, key: str = "live_graph", height: int = 400, theme: str = "auto",
               playing: bool = True, pace: str = "pull", probe_steps: int = PROBE_STEPS) -> dict:
    """Draw (or update) the live graph `key` from the whole current frame. Returns what was
    sent and what the page last reported: seq, kind ("full", "delta" or "same": nothing new
    because the page is behind or the step did not change), bytes, edges (drawn), browser_fps,
    behind (frames sent but not drawn at the page's last report), run_every.

    theme: "auto" follows Streamlit's theme, "light"/"dark" force one. pace: "timer" (the
    caller's fragment run_every drives the frames; take it from run_every(key)) or "pull" (the
    page asks for the next frame once it has drawn the last one, at most every MIN_TICK s; give
    the fragment run_every=KEEPALIVE)."""
    check_choice("theme", theme, THEMES)
    check_choice("pace", pace, ("timer", "pull"))
    store = _store()
    sent: _Sent | None = store.get(key)
    sig = _signature(data)
    resync = False
    if sent is not None:
        new, resync = take_report(sent, read_report(key))
        if new:
            _adapt(sent)
    common = {"key": key, "step": data.step, "height": int(height), "theme": theme,
              "playing": bool(playing), "pace": pace, "min_interval_ms": int(MIN_TICK * 1000),
              "probe_steps": int(probe_steps), "fade_budget": FADE_BUDGET}
    if sent is None or sent.sig != sig or resync or data.step < sent.step:
        old = sent
        sent = store[key] = _Sent(sig)
        if old is not None:  # the page's history goes on (sequence numbers, adaptive tick)
            for name in ("seq", "reports", "resync_done", "level", "calm", "last_report_ms", "sent_at"):
                setattr(sent, name, getattr(old, name))
        header, arrays = _full(data, sent)
        sent.last_full_seq = sent.seq + 1
    elif playing and waiting(sent, pace):  # paused, every rerun is the user's: always send
        header, arrays = sent.payload  # the same message again: nothing new piles up
        sent.skipped += 1
    else:
        header, arrays = _delta(data, sent, probe_steps)
        if not arrays and not any(any(c) for c in header["counts"]):
            header, arrays = sent.payload  # nothing changed (paused): no new frame
    fresh = header is not sent.payload[0]
    if fresh:
        sent.seq += 1
        sent.step = data.step
        sent.sent_at.append((time.monotonic(), sent.seq))
        if header["kind"] == "delta":
            sent.chain.append((sent.seq, header, arrays))
            header, arrays = _chained(list(sent.chain))
        else:
            sent.chain.clear()
        sent.payload = (header, arrays)
    msg = pack({**header, **common, "seq": sent.seq}, arrays)
    sent.last_bytes, sent.last_kind = len(msg), header["kind"]
    _component(key=key, data=msg, height="content", on_report_change=lambda: None)
    return {"seq": sent.seq, "kind": header["kind"] if fresh else "same", "bytes": len(msg),
            "edges": sum(len(l.pos) for l in sent.layers), "browser_fps": browser_fps(key),
            "behind": _behind(sent), "run_every": run_every(key, playing, pace), "skipped": sent.skipped}
