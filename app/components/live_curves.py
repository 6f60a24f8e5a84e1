"""The live curves: accuracy and loss, theta walks of the tracked connections, and transitions
(pruned / activated per step per layer) on canvases in the browser (Streamlit custom components
v2, no iframe), with a marker at every hyperparameter change of the run.

The browser holds the history. Python sends it once (a "full" message) and then, per frame,
only what changed (a "delta"): per series the points from the first one that differs, which is
an append while the run goes on and a resend of that series when the engine's down-sampling
merged its points (telemetry.Downsampled doubles its stride when full, rewriting the history);
likewise the change log from its first changed entry (the engine extends the last change while
a slider is dragged). Framing (wire.py), sync protocol (sync.py) and the two ways frames reach
the page are the live graph's (live_graph.py): `CurvesChannel` + `feed_view` for the feed,
`live_curves(data, ...)` from a fragment, e.g. beside the live graph with pace="follow" (the
graph paces the fragment).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import streamlit as st

from ..charts.palette import curves_js
from . import feed, sync
from .wire import THEMES, check_choice, pack

ASSETS = Path(__file__).with_suffix("")
CHARTS = ("accuracy", "walks", "transitions")
SERIES = {"accuracy": ("loss", "train_acc", "test_acc", "test_loss"), "walks": ("theta",),
          "transitions": ("pruned", "activated")}
SCALES = ("linear", "sqrt", "log")
_STATE = "_deepr_live_curves"

_component = st.components.v2.component(
    "deepr_live_curves",
    js="".join((path.read_text(encoding="utf-8") for path in
                (ASSETS.parent / "common.js", ASSETS / "plot.js", ASSETS / "live_curves.js"))),
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
class CurvesSent(sync.Sent):
    series: dict = field(default_factory=dict)    # name -> (steps int64, values float32) the page holds
    changes: list = field(default_factory=list)   # [step, field, label] the page holds
    meta: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


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


def _diff(data: CurvesData, sent: CurvesSent, names: Sequence[str], full: bool) -> tuple[dict, dict]:
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


def _full(data: CurvesData, sent: CurvesSent, names) -> tuple[dict, dict]:
    entry, arrays = _diff(data, sent, names, full=True)
    return {"kind": "full", **entry}, arrays


def _delta(data: CurvesData, sent: CurvesSent, names) -> tuple[dict, dict] | None:
    entry, arrays = _diff(data, sent, names, full=False)
    return None if not entry["ops"] and len(entry) == 2 else (entry, arrays)


def _style(charts: tuple, height: int, columns: int, theme: str, scale: str) -> dict:
    check_choice("scale", scale, SCALES)
    check_choice("theme", theme, THEMES)
    return {"height": int(height), "columns": max(1, int(columns)), "charts": list(charts), "theme": theme,
            "scale": scale, "palette": curves_js()}


# -- the feed (feed.py): frames over HTTP, outside Streamlit's reruns ----------------------------
class CurvesChannel:
    """The curves' messages for a feed (sync.feed_message): everything when the page holds
    nothing or not what was last sent, else per series the points from the first that differs,
    or a short "same" message when nothing changed."""

    def __init__(self, charts: Sequence[str] = CHARTS, run_id: str = ""):
        self.charts, self.run_id = _check_charts(charts), str(run_id)
        self.names = [n for c in self.charts for n in SERIES[c]]
        self.sent: CurvesSent | None = None

    def message(self, view, have: int) -> bytes:
        data = from_view(view, run_id=self.run_id)
        return sync.feed_message(self, _signature(data, self.charts), data.step, have, CurvesSent,
                                 lambda sent: _full(data, sent, self.names),
                                 lambda sent: _delta(data, sent, self.names))


def feed_view(url: str, *, key: str = "curves", charts: Sequence[str] = CHARTS, height: int = 240,
              columns: int = 1, theme: str = "auto", scale: str = "sqrt", playing: bool = True,
              step: int = 0, channel: str = "curves") -> None:
    """The curves `key`, fed by the feed at `url` (feed.py) on `channel` (a CurvesChannel with
    the same charts); see live_graph.feed_view."""
    charts = _check_charts(charts)
    msg = pack({"kind": "feed", "feed": url, "channel": channel, "key": key,
                **_style(charts, height, columns, theme, scale),
                "playing": bool(playing), "step": int(step), "max_fps": feed.MAX_FPS}, {})
    _component(key=key, data=msg, height="content", on_report_change=lambda: None)


def _check_charts(charts: Sequence[str]) -> tuple:
    charts = tuple(charts)
    if not charts or any(c not in CHARTS for c in charts):
        raise ValueError(f"charts: one or more of {CHARTS}; got {charts}")
    return charts


# -- Streamlit reruns --------------------------------------------------------------------------
def browser_fps(key: str, window: float = 5.0) -> float | None:
    """Frames per second the page applied, from its last reports (its own clock)."""
    return sync.browser_fps(st.session_state.get(_STATE, {}).get(key), window)


def run_every(key: str = "curves", playing: bool = True, pace: str = "pull") -> float | None:
    """run_every (s) for the fragment that calls live_curves (sync.run_every)."""
    return sync.run_every(playing, pace)


def live_curves(data: CurvesData, *, key: str = "curves", charts: Sequence[str] = CHARTS,
                height: int = 240, columns: int = 1, theme: str = "auto", playing: bool = True,
                pace: str = "pull", scale: str = "sqrt") -> dict:
    """Draw (or update) the curves `key` from the whole current run. charts: which of
    "accuracy", "walks", "transitions" (each `height` px, in `columns` columns). scale: the
    transitions chart's first y scale ("linear", "sqrt" or "log" = log10(1 + n); the page has
    buttons to switch). theme: "auto" follows Streamlit's theme. pace as live_graph.live_graph
    ("follow": another view in the same fragment paces; this one takes a delta on every call).

    Returns seq, kind ("full", "delta" or "same"), bytes (this message), browser_fps and counts
    (messages of each kind sent for this key, and series rewrites resent)."""
    charts = _check_charts(charts)
    names = [n for c in charts for n in SERIES[c]]
    store = st.session_state.setdefault(_STATE, {})
    common = {"key": key, **_style(charts, height, columns, theme, scale), "playing": bool(playing),
              "pace": pace, "min_interval_ms": int(sync.MIN_TICK * 1000)}
    msg, sent, kind = sync.rerun_message(store, key, _signature(data, charts), data.step, playing, pace,
                                         CurvesSent, lambda s: _full(data, s, names),
                                         lambda s: _delta(data, s, names), common)
    _component(key=key, data=msg, height="content", on_report_change=lambda: None)
    return {"seq": sent.seq, "kind": kind, "bytes": len(msg), "browser_fps": sync.browser_fps(sent),
            "counts": dict(sent.counts)}
