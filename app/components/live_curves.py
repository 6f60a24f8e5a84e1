"""The live curves: accuracy and loss, theta walks of the tracked connections, and transitions
(pruned / activated per step per layer) on canvases in the browser (Streamlit custom components
v2, no iframe), with a marker at every hyperparameter change of the run.

The browser holds the history. Python sends it once (a "full" message) and then, per frame,
only what changed since the previous frame (a "delta"): per series the points from the first
one that differs, which is an append while the run goes on and a resend of that series when the
engine's down-sampling merged its points (telemetry.Downsampled doubles its stride when full,
rewriting the history); likewise the change log from its first changed entry (the engine
extends the last change while a slider is dragged). Messages, pacing and reports are those of
the live graph (live_graph.py): binary messages, deltas chained so that a missed message does
not cost a resync, and in the default "pull" pace the page's report is its request for the
next frame.

Per tick, from a fragment (one call; frame() once per tick, it takes the run's events):

    @st.fragment(run_every=live_curves.run_every("curves", playing))
    def views():
        f = run.frame()
        live_curves.live_curves(live_curves.from_view(f, run_id=run.run_id), key="curves",
                                playing=f.playing)

Beside the live graph in the same fragment, let the graph pace the frames and pass
pace="follow" here (two components that both ask for frames would each rerun the fragment).
"""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import streamlit as st

from app.components import live_graph as lg

ASSETS = Path(__file__).with_suffix("")
CHARTS = ("accuracy", "walks", "transitions")
SERIES = {"accuracy": ("loss", "train_acc", "test_acc", "test_loss"), "walks": ("theta",),
          "transitions": ("pruned", "activated")}
SCALES = ("linear", "sqrt", "log")
_STATE = "_deepr_live_curves"

_component = st.components.v2.component(
    "deepr_live_curves",
    js=(ASSETS.parent / "common.js").read_text(encoding="utf-8")
    + (ASSETS / "live_curves.js").read_text(encoding="utf-8"),
    css=(ASSETS / "live_curves.css").read_text(encoding="utf-8"),
)


# -- data in ----------------------------------------------------------------------------------
@dataclass
class CurvesData:
    step: int
    series: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (steps, values: rows or rows x n)
    changes: list[tuple] = field(default_factory=list)  # (step, field, old, new), the whole run
    tracked_layer: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    tracked_pos: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    theta_min: list[float] | None = None  # soft-Deep R, per layer
    metrics: dict = field(default_factory=dict)
    n_layers: int = 0
    run_id: str = ""                      # a new id sends everything again


def from_view(view, run_id: str = "") -> CurvesData:
    """From a views.RunView (BackgroundSession.frame() or TrainingSession.snapshot())."""
    tel = view.telemetry
    series = {name: tel.series[name].arrays() for name in SERIES["accuracy"] if name in tel.series}
    series["theta"] = tel.tracked_theta.arrays()
    series["pruned"] = tel.pruned.arrays()
    series["activated"] = tel.activated.arrays()
    tm = (view.hyperparams or {}).get("theta_min")
    tm = [float(t) for t in (tm if isinstance(tm, (list, tuple)) else [tm]) if t is not None] or None
    return CurvesData(step=int(view.step), series=series, changes=list(tel.changes),
                      tracked_layer=np.asarray(tel.tracked_layer), tracked_pos=np.asarray(tel.tracked_pos),
                      theta_min=tm, metrics=dict(view.metrics), n_layers=len(view.layers), run_id=str(run_id))


# -- change labels ----------------------------------------------------------------------------
SHORT = {"temperature": "T", "theta_min": "θ_min", "k": "K", "batch_size": "batch",
         "connectivity": "conn", "lr_decay": "lr decay", "eval_every": "eval every",
         "noise_scale": "noise", "update_every": "every", "drop_fraction": "drop"}


def fmt_value(v, sci: bool | None = None) -> str:
    """As people write numbers: 1e-6, 2.5e-5, 0.05, 300; lists of at most 4 entries. sci forces
    (or forbids) the exponent form; by default it is used below 0.01 and from 1e5."""
    if isinstance(v, (list, tuple, np.ndarray)):
        v = list(v)
        return "[" + ", ".join(fmt_value(x, sci) for x in v[:4]) + (", …" if len(v) > 4 else "") + "]"
    if v is None:
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    x = float(v)
    if not math.isfinite(x):
        return "—" if math.isnan(x) else str(x)
    if x == 0:
        return "0"
    if sci if sci is not None else (abs(x) < 0.01 or abs(x) >= 1e5):
        mant, exp = f"{x:.2e}".split("e")
        return f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"
    return f"{x:.3g}"


def _small_or_huge(v) -> bool:
    if isinstance(v, (list, tuple, np.ndarray)):
        return any(_small_or_huge(x) for x in v)
    return isinstance(v, (float, np.floating)) and math.isfinite(v) and v != 0 and (abs(v) < 0.01 or abs(v) >= 1e5)


def change_label(change) -> str:
    """"T 1e-6 → 1e-5": both sides in one notation (exponents when either side needs them)."""
    _, name, old, new = change[:4]
    sci = _small_or_huge(old) or _small_or_huge(new)
    return f"{SHORT.get(name, name)} {fmt_value(old, sci)} → {fmt_value(new, sci)}"


# -- what was sent, per key -------------------------------------------------------------------
@dataclass
class _Sent:
    sig: tuple
    seq: int = 0
    step: int = 0
    series: dict = field(default_factory=dict)    # name -> (steps int64, values float32) the page holds
    changes: list = field(default_factory=list)   # [step, field, label] the page holds
    meta: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    # pacing, as live_graph._Sent (live_graph's report helpers read these names)
    sent_at: deque = field(default_factory=lambda: deque(maxlen=64))
    reports: deque = field(default_factory=lambda: deque(maxlen=32))
    resync_done: int = -1
    last_report_ms: float = -1.0
    last_full_seq: int = 0
    payload: tuple = ({}, {})
    chain: deque = field(default_factory=lambda: deque(maxlen=lg.CHAIN))
    last_bytes: int = 0
    counts: dict = field(default_factory=lambda: {"full": 0, "delta": 0, "same": 0, "rewrites": 0})


def _store() -> dict:
    return st.session_state.setdefault(_STATE, {})


def _rows(steps, values) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(steps, dtype=np.int64).reshape(-1)
    v = np.asarray(values, dtype=np.float32)
    if len(s) == 0:  # an empty series (no step yet) has no width: keep one from its shape
        return s, np.zeros((0, v.shape[1] if v.ndim == 2 else 1), np.float32)
    return s, v.reshape(len(s), -1)


def first_difference(old: tuple[np.ndarray, np.ndarray], new: tuple[np.ndarray, np.ndarray]) -> int:
    """Index of the first point where `new` differs from `old` (steps or values, NaN equal to
    NaN); the length of the common prefix. A different width (another tracked set) is 0."""
    (os_, ov), (ns, nv) = old, new
    if ov.shape[1:] != nv.shape[1:]:
        return 0
    n = min(len(os_), len(ns))
    a, b = ov[:n], nv[:n]
    same = (os_[:n] == ns[:n]) & np.all((a == b) | (np.isnan(a) & np.isnan(b)), axis=1)
    bad = np.flatnonzero(~same)
    return int(bad[0]) if len(bad) else n


def _clean(x):
    """JSON has no NaN: missing values travel as null (drawn as "—")."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _meta(data: CurvesData) -> dict:
    return {"n_layers": int(data.n_layers), "tracked_layer": [int(x) for x in data.tracked_layer],
            "tracked_pos": [int(x) for x in data.tracked_pos],
            "theta_min": [float(t) for t in data.theta_min] if data.theta_min else None}


def _changes(data: CurvesData) -> list:
    return [[int(c[0]), str(c[1]), change_label(c)] for c in data.changes]


def _diff(data: CurvesData, sent: _Sent, names: Sequence[str], full: bool) -> tuple[dict, dict]:
    """The header entry and arrays of one frame against what `sent` holds (all of it when
    full), and `sent` updated to hold it."""
    ops, arrays = {}, {}
    for name in names:
        if name not in data.series:
            continue
        new = _rows(*data.series[name])
        old = sent.series.get(name)
        i = 0 if full or old is None else first_difference(old, new)
        if not full and old is not None and i == len(old[0]) == len(new[0]):
            continue  # unchanged
        if not full and old is not None and i < len(old[0]):
            sent.counts["rewrites"] += 1
        ops[name] = [i, int(len(new[0]) - i), int(new[1].shape[1])]
        arrays[f"s_{name}"], arrays[f"v_{name}"] = new[0][i:], new[1][i:]
        sent.series[name] = (new[0].copy(), new[1].copy())
    entry = {"ops": ops, "step": int(data.step)}
    ch = _changes(data)
    j = 0 if full else next((k for k, (a, b) in enumerate(zip(sent.changes, ch)) if a != b),
                            min(len(sent.changes), len(ch)))
    if full or j < len(sent.changes) or len(ch) > len(sent.changes):
        entry["changes"] = {"from": j, "items": ch[j:]}
    sent.changes = ch
    meta = _meta(data)
    if full or meta != sent.meta:
        entry["meta"] = sent.meta = meta
    metrics = {k: _clean(v) for k, v in data.metrics.items()}
    if full or metrics != sent.metrics:
        entry["metrics"] = sent.metrics = metrics
    return entry, arrays


def _signature(data: CurvesData, charts: tuple) -> tuple:
    return (data.run_id, charts)


def _chained(deltas: list) -> tuple[dict, dict]:
    """Recent deltas in one message, oldest first; the page applies those it lacks."""
    header, arrays = {"kind": "delta", "deltas": []}, {}
    for j, (seq, entry, arr) in enumerate(deltas):
        header["deltas"].append({**entry, "seq": seq, "p": f"d{j}_"})
        arrays.update({f"d{j}_{k}": v for k, v in arr.items()})
    return header, arrays


# -- the feed (feed.py): frames over HTTP, outside Streamlit's reruns ----------------------------
class CurvesChannel:
    """The curves' messages for a feed: everything when the page holds nothing or not what was
    last sent (`have` says), else per series the points from the first that differs, or a
    short "same" message when nothing changed."""

    def __init__(self, charts: Sequence[str] = CHARTS, run_id: str = ""):
        self.charts, self.run_id = _check_charts(charts), str(run_id)
        self.names = [n for c in self.charts for n in SERIES[c]]
        self.sent: _Sent | None = None

    def message(self, view, have: int) -> bytes:
        data = from_view(view, run_id=self.run_id)
        sent = self.sent
        sig = _signature(data, self.charts)
        if sent is None or have != sent.seq or sent.sig != sig or data.step < sent.step:
            sent = self.sent = _Sent(sig, seq=sent.seq if sent is not None else 0)
            entry, arrays = _diff(data, sent, self.names, full=True)
            header = {"kind": "full", **entry}
        else:
            entry, arrays = _diff(data, sent, self.names, full=False)
            if not entry["ops"] and len(entry) == 2:
                return lg.pack({"kind": "same", "seq": sent.seq, "step": data.step}, {})
            header, arrays = _chained([(sent.seq + 1, {"kind": "delta", **entry, "base": sent.seq}, arrays)])
        sent.seq += 1
        sent.step = data.step
        sent.counts[header["kind"]] += 1
        msg = lg.pack({**header, "seq": sent.seq}, arrays)
        sent.last_bytes = len(msg)
        return msg


def feed_view(url: str, *, key: str = "curves", charts: Sequence[str] = CHARTS, height: int = 240,
              columns: int = 1, theme: str = "auto", scale: str = "sqrt", playing: bool = True,
              step: int = 0, channel: str = "curves") -> None:
    """The curves `key`, fed by the feed at `url` (feed.py) on `channel` (a CurvesChannel with
    the same charts); see live_graph.feed_view."""
    charts = _check_charts(charts)
    lg.check_choice("scale", scale, SCALES)
    lg.check_choice("theme", theme, lg.THEMES)
    msg = lg.pack({"kind": "feed", "feed": url, "channel": channel, "key": key, "height": int(height),
                   "columns": max(1, int(columns)), "charts": list(charts), "theme": theme, "scale": scale,
                   "playing": bool(playing), "step": int(step), "max_fps": lg.feed.MAX_FPS}, {})
    _component(key=key, data=msg, height="content", on_report_change=lambda: None)


def _check_charts(charts: Sequence[str]) -> tuple:
    charts = tuple(charts)
    if not charts or any(c not in CHARTS for c in charts):
        raise ValueError(f"charts: one or more of {CHARTS}; got {charts}")
    return charts


def browser_fps(key: str, window: float = 5.0) -> float | None:
    """Frames per second the page applied, from its last reports (its own clock)."""
    sent = _store().get(key)
    if sent is None or len(sent.reports) < 2:
        return None
    now = sent.reports[-1][0]
    recent = [r for t, r in sent.reports if now - t <= window] or [r for _, r in list(sent.reports)[-2:]]
    if len(recent) < 2:
        recent = [r for _, r in list(sent.reports)[-2:]]
    a, b = recent[0], recent[-1]
    dt = (b["ms"] - a["ms"]) / 1e3
    return (b["applied"] - a["applied"]) / dt if dt > 0 else None


def run_every(key: str = "curves", playing: bool = True, pace: str = "pull") -> float | None:
    """run_every (s) for the fragment that calls live_curves: None when paused; in pull pace
    only a keepalive (the page asks for each frame), in timer pace the graph's fastest tick."""
    if not playing:
        return None
    return lg.KEEPALIVE if pace in ("pull", "follow") else lg.MIN_TICK


def live_curves(data: CurvesData, *, key: str = "curves", charts: Sequence[str] = CHARTS,
                height: int = 240, columns: int = 1, theme: str = "auto", playing: bool = True,
                pace: str = "pull", scale: str = "sqrt") -> dict:
    """Draw (or update) the curves `key` from the whole current run. charts: which of
    "accuracy", "walks", "transitions" (each `height` px, in `columns` columns). scale: the
    transitions chart's first y scale ("linear", "sqrt" or "log" = log10(1 + n); the page has
    buttons to switch). theme: "auto" follows Streamlit's theme. pace as live_graph.live_graph,
    plus "follow": in a fragment that another component paces (the live graph in pull pace),
    this one never asks for frames (a report is a rerun) and takes a delta on every call.

    Returns seq, kind ("full", "delta" or "same"), bytes (this message), browser_fps and counts
    (messages of each kind sent for this key, and series rewrites resent)."""
    charts = _check_charts(charts)
    lg.check_choice("scale", scale, SCALES)
    lg.check_choice("theme", theme, lg.THEMES)
    lg.check_choice("pace", pace, ("pull", "timer", "follow"))
    names = [n for c in charts for n in SERIES[c]]
    store = _store()
    sent: _Sent | None = store.get(key)
    sig = _signature(data, charts)
    resync = False
    if sent is not None:
        _, resync = lg.take_report(sent, lg.read_report(key))
    common = {"key": key, "height": int(height), "columns": max(1, int(columns)), "charts": list(charts),
              "theme": theme, "scale": scale, "playing": bool(playing), "pace": pace,
              "min_interval_ms": int(lg.MIN_TICK * 1000)}
    if sent is None or sent.sig != sig or resync or data.step < sent.step:
        old = sent
        sent = store[key] = _Sent(sig)
        if old is not None:  # the page's history goes on (sequence numbers, reports)
            for name in ("seq", "reports", "resync_done", "last_report_ms", "sent_at", "counts"):
                setattr(sent, name, getattr(old, name))
        entry, arrays = _diff(data, sent, names, full=True)
        header = {"kind": "full", **entry}
        sent.last_full_seq = sent.seq + 1
    elif playing and pace != "follow" and lg.waiting(sent, pace):  # paused: every rerun is the user's
        header, arrays = sent.payload  # the same message again: nothing piles up
    else:
        entry, arrays = _diff(data, sent, names, full=False)
        header = {"kind": "delta", **entry}
        if not entry["ops"] and len(entry) == 2:  # nothing new (paused, or no step since)
            header, arrays = sent.payload
    fresh = header is not sent.payload[0]
    if fresh:
        sent.seq += 1
        sent.step = data.step
        sent.sent_at.append((time.monotonic(), sent.seq))
        sent.counts[header["kind"]] += 1
        if header["kind"] == "delta":
            sent.chain.append((sent.seq, {**header, "base": sent.seq - 1}, arrays))
            # repeat only deltas the page has not confirmed (a rewrite is big)
            seen = int(sent.reports[-1][1].get("seq", -1)) if sent.reports else -1
            header, arrays = _chained([d for d in sent.chain if d[0] > seen])
        else:
            sent.chain.clear()
        sent.payload = (header, arrays)
    else:
        sent.counts["same"] += 1
    msg = lg.pack({**header, **common, "seq": sent.seq}, arrays)
    sent.last_bytes = len(msg)
    _component(key=key, data=msg, height="content", on_report_change=lambda: None)
    return {"seq": sent.seq, "kind": header["kind"] if fresh else "same", "bytes": len(msg),
            "browser_fps": browser_fps(key), "counts": dict(sent.counts)}
