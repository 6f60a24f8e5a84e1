"""The live connectivity graph: a canvas component (Streamlit custom components v2, no iframe).

The browser holds the network; Python sends it once and then per frame only what changed
(graph_diff.py), in the binary framing of wire.py, with the sync protocol of sync.py. Fades,
counters and hover run in the browser (live_graph/live_graph.js). Frames reach the page in one
of two ways:

- the feed (feed.py, HTTP: the dashboard in the app): the page asks for each frame itself;
  `GraphChannel` answers, `feed_view` subscribes the canvas;
- Streamlit reruns (pages without the feed: AppTest, the compare page, demo.py): a fragment
  calls `live_graph(data, ...)` with the whole current frame on every run, pacing as sync.py
  says, e.g.

    st.fragment(run_every=live_graph.run_every("graph", playing))(views)()
    # in views(): live_graph.live_graph(live_graph.from_frame(frame, run.info), key="graph")

Colours and the probe threshold are palette.py's, sent with the data (the PNG export draws the
same).
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from ..charts.palette import PROBE_STEPS, graph_js
from . import feed, sync
from .graph_diff import (SAMPLE_LIMIT, GraphData, GraphSent, LayerData, column_layout,  # noqa: F401
                         delta, from_frame, from_layers, full, signature)
from .wire import THEMES, check_choice, pack

ASSETS = Path(__file__).with_suffix("")
FADE_BUDGET = {"death": 16, "added": 16, "probe": 12}  # fades per frame, all layers (a fair
                          # sample when more: thousands of fading strokes slow a canvas that is
                          # rasterised without a GPU to a few frames/s)
KEEPALIVE, MIN_TICK = sync.KEEPALIVE, sync.MIN_TICK
_STATE = "_deepr_live_graph"
LEGEND = ("blue +, red −, opacity |w|; green: revived, bold dark (light on a dark theme): an "
          "established connection pruned, dotted violet: a brief probe pruned (revived and pruned "
          f"again within {PROBE_STEPS} steps), fading over about a second — per frame up to "
          f"{FADE_BUDGET['death']} deaths, {FADE_BUDGET['added']} revivals and {FADE_BUDGET['probe']} "
          "probes (a fair sample when there are more: Deep R can revive and prune hundreds per "
          "frame); hollow units are dead. Counters, per layer and per 100 steps (over the last "
          "100 steps or more): deaths of established connections, probes, revivals. Hover a unit: "
          "its fan-in and fan-out edges (and its map in the Units view). "
          f"Above {SAMPLE_LIMIT:,} edges a fixed sample is drawn (the canvas says so).")

_component = st.components.v2.component(
    "deepr_live_graph",
    js=(ASSETS.parent / "common.js").read_text(encoding="utf-8")
    + (ASSETS / "live_graph.js").read_text(encoding="utf-8"),
    css=(ASSETS / "live_graph.css").read_text(encoding="utf-8"),
)


def _style(theme: str, height: int) -> dict:
    """What the canvas needs besides the data (sent with every subscription or message)."""
    check_choice("theme", theme, THEMES)
    return {"height": int(height), "theme": theme, "palette": graph_js(), "probe_steps": PROBE_STEPS,
            "fade_budget": FADE_BUDGET}


# -- the feed (feed.py): frames over HTTP, outside Streamlit's reruns ----------------------------
class GraphChannel:
    """The graph's messages for a feed (sync.feed_message): the whole graph when the page holds
    nothing or not what was last sent, or when the view's rewiring events do not follow the
    last ones (the reader's cursor fell behind); else the delta, or a short "same" message."""

    def __init__(self, image_shape=None, run_id: str = ""):
        self.image_shape, self.run_id = image_shape, str(run_id)
        self.sent: GraphSent | None = None
        self.cursor: int | None = None   # the events cursor of the last view sent

    def message(self, view, have: int) -> bytes:
        data = from_layers(view.layers, view.step, self.image_shape, self.run_id)
        since = getattr(view, "events_since", None)
        follows = getattr(view, "events_complete", True) and (self.cursor is None or since == self.cursor)
        self.cursor = getattr(view, "events_cursor", None)
        return sync.feed_message(self, signature(data), data.step, have, GraphSent,
                                 lambda sent: full(data, sent), lambda sent: delta(data, sent),
                                 follows=follows)


def feed_view(url: str, *, key: str = "live_graph", height: int = 400, theme: str = "auto",
              playing: bool = True, step: int = 0, channel: str = "graph") -> None:
    """The canvas `key`, fed by the feed at `url` (feed.py) on `channel`: while `playing` the
    page asks for frames itself; paused, it asks once whenever `step` differs from the step it
    shows (after Step 10, say). Cheap to call on every rerun: the subscription is all it sends."""
    msg = pack({"kind": "feed", "feed": url, "channel": channel, "key": key, **_style(theme, height),
                "playing": bool(playing), "step": int(step), "max_fps": feed.MAX_FPS}, {})
    _component(key=key, data=msg, height="content", on_report_change=lambda: None)


# -- Streamlit reruns --------------------------------------------------------------------------
def run_every(key: str = "graph", playing: bool = True, pace: str = "pull") -> float | None:
    """The run_every (s) for the fragment that calls live_graph(key) (sync.run_every)."""
    return sync.run_every(playing, pace)


def browser_fps(key: str, window: float = 5.0) -> float | None:
    """Frames per second the page applied, from its last reports (its own clock)."""
    return sync.browser_fps(st.session_state.get(_STATE, {}).get(key), window)


def live_graph(data: GraphData, *, key: str = "live_graph", height: int = 400, theme: str = "auto",
               playing: bool = True, pace: str = "pull") -> dict:
    """Draw (or update) the live graph `key` from the whole current frame. pace: "pull" (the
    page asks for the next frame once it has drawn the last; give the fragment
    run_every(key, playing)), "timer" (the caller's fragment run_every drives the frames) or
    "follow" (another view in the fragment paces). theme: "auto" follows Streamlit's theme.
    Returns seq, kind ("full", "delta" or "same"), bytes, edges (drawn), browser_fps, behind
    (frames sent but not drawn at the page's last report)."""
    store = st.session_state.setdefault(_STATE, {})
    common = {"key": key, **_style(theme, height), "playing": bool(playing), "pace": pace,
              "min_interval_ms": int(sync.MIN_TICK * 1000)}
    msg, sent, kind = sync.rerun_message(store, key, signature(data), data.step, playing, pace, GraphSent,
                                         lambda s: full(data, s), lambda s: delta(data, s), common)
    _component(key=key, data=msg, height="content", on_report_change=lambda: None)
    return {"seq": sent.seq, "kind": kind, "bytes": len(msg), "edges": sum(len(l.pos) for l in sent.layers),
            "browser_fps": sync.browser_fps(sent), "behind": sync.behind(sent),
            "run_every": run_every(key, playing, pace)}
