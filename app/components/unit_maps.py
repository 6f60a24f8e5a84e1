"""Unit maps: what each unit computes, drawn in the browser beside the graph (a canvas
component, Streamlit custom components v2, no iframe).

- 2-D data: small multiples of every hidden unit's activation (after its nonlinearity) and every
  output unit's logit over the input plane, from the run's `unit_maps(xs, ys)` (one read of the
  model on a GRID x GRID grid);
- image data (an MLP): each first-layer hidden unit's incoming weights as an image, its
  receptive field, built from the frame's active connections (O(K)).

Frames come like the graph's: over the feed (feed.py, `UnitsChannel`) while the dashboard is
served with it, else by fragment reruns (`unit_maps_view(message(...))`). Every message is whole
(a few tens of kB); a channel answers "same" when nothing new happened or when the last message
is younger than MIN_INTERVAL_S.

Hover links the units with the graph through one window event, `deepr:unit` ({source, col,
unit}; col: the graph's column, 1 = the first hidden layer; -1: nothing hovered): hovering a map
outlines that unit's fan-in and fan-out edges in the graph (live_graph.js), hovering a unit in
the graph outlines its map here.
"""
from __future__ import annotations

import time
import weakref
from pathlib import Path

import numpy as np
import streamlit as st

from ..charts.palette import graph_js
from . import feed
from .wire import THEMES, check_choice, half, pack

ASSETS = Path(__file__).with_suffix("")
GRID = 48              # points per side of the 2-D maps
EXTENT = 2.5           # the maps cover [-EXTENT, EXTENT]^2 (the decision boundary's square)
MAX_UNITS = 64         # maps per layer at most (the rest are said, not drawn)
MIN_INTERVAL_S = 0.2   # at most 5 new messages a second (the graph's frames come up to 12)

_component = st.components.v2.component(
    "deepr_unit_maps",
    js=(ASSETS.parent / "common.js").read_text(encoding="utf-8")
    + (ASSETS / "unit_maps.js").read_text(encoding="utf-8"),
    css=(ASSETS / "unit_maps.css").read_text(encoding="utf-8"),
)


def grid() -> np.ndarray:
    return np.linspace(-EXTENT, EXTENT, GRID)


def _layer_title(i: int, n_layers: int, units: int, shown: int) -> str:
    kind = "output" if i == n_layers - 1 else f"hidden layer {i + 1}"
    more = f" (first {shown} of {units})" if shown < units else ""
    return f"{kind}: {units} unit{'s' if units != 1 else ''}{more}"


def maps_message(maps: dict, layers, seq: int) -> bytes:
    """A message of 2-D maps: `maps` is the run's unit_maps answer, `layers` the frame's
    LayerViews (for the unit counts)."""
    out = maps["layers"]
    head = {"kind": "full", "mode": "maps", "seq": int(seq), "step": int(maps["step"]), "nx": GRID,
            "ny": GRID, "extent": [-EXTENT, EXTENT, -EXTENT, EXTENT], "layers": []}
    arrays = {}
    for i, m in enumerate(out):
        units = layers[i].shape[0] if i < len(layers) else m.shape[0]
        scale = float(np.abs(m).max()) if m.size else 1.0
        head["layers"].append({"col": i + 1, "units": int(m.shape[0]), "scale": max(scale, 1e-6),
                               "title": _layer_title(i, len(out), units, m.shape[0]),
                               "what": "logit" if i == len(out) - 1 else "activation"})
        arrays[f"m{i}"] = half(m.reshape(-1))
    return pack(head, arrays)


def receptive_fields(layer, image_shape: tuple[int, int], max_units: int = MAX_UNITS) -> np.ndarray:
    """(units, h*w) incoming weights of the first `max_units` units of a first layer, from its
    active connections only (dormant: 0)."""
    n_out, n_in = layer.shape
    units = min(n_out, max_units)
    img = np.zeros((units, n_in), dtype=np.float32)
    keep = layer.active_pos < units * n_in   # rows are the units: positions row * n_in + col
    pos = layer.active_pos[keep]
    img[pos // n_in, pos % n_in] = layer.active_weight[keep]
    return img


def fields_message(layer, image_shape: tuple[int, int], step: int, seq: int) -> bytes:
    """A message of receptive fields (image data)."""
    img = receptive_fields(layer, image_shape)
    h, w = image_shape
    scale = float(np.abs(img).max()) if img.size else 1.0
    head = {"kind": "full", "mode": "fields", "seq": int(seq), "step": int(step), "nx": int(w), "ny": int(h),
            "layers": [{"col": 1, "units": int(img.shape[0]), "scale": max(scale, 1e-6), "what": "weight",
                        "title": "receptive fields of " + _layer_title(0, 2, layer.shape[0], img.shape[0])}]}
    return pack(head, {"m0": half(img.reshape(-1))})


class UnitsChannel:
    """The maps' messages for a feed: a new message when the run moved on (or the page holds
    another one), at most one per MIN_INTERVAL_S; else "same"."""

    def __init__(self, run, image_shape=None):
        self._run = weakref.ref(run)
        self.image_shape = image_shape
        self.seq, self.step, self.at = 0, -1, 0.0

    def message(self, view, have: int) -> bytes:
        fresh = have == self.seq and self.seq > 0
        if fresh and (view.step == self.step or time.monotonic() - self.at < MIN_INTERVAL_S):
            return pack({"kind": "same", "seq": self.seq, "step": self.step}, {})
        run = self._run()
        if run is None:
            raise RuntimeError("the run of these maps ended")
        self.seq += 1
        self.at = time.monotonic()
        if self.image_shape is not None:
            self.step = int(view.step)
            return fields_message(view.layers[0], self.image_shape, view.step, self.seq)
        maps = run.unit_maps(grid(), grid(), MAX_UNITS)
        self.step = int(maps["step"])
        return maps_message(maps, view.layers, self.seq)


def _style(theme: str, height: int) -> dict:
    check_choice("theme", theme, THEMES)
    return {"theme": theme, "palette": graph_js(), "height": int(height)}


def feed_view(url: str, *, key: str = "units", theme: str = "auto", playing: bool = True,
              step: int = 0, channel: str = "units", height: int = 0) -> None:
    """The maps `key`, fed by the feed at `url` on `channel` (as live_graph.feed_view)."""
    msg = pack({"kind": "feed", "feed": url, "channel": channel, "key": key, **_style(theme, height),
                "playing": bool(playing), "step": int(step), "max_fps": feed.MAX_FPS}, {})
    _component(key=key, data=msg, height="content", on_report_change=lambda: None)


def unit_maps_view(message: bytes, *, key: str = "units", theme: str = "auto", height: int = 0) -> None:
    """The maps `key` from one whole message (maps_message / fields_message), without the feed."""
    from .wire import unpack
    head, arrays = unpack(message)
    _component(key=key, data=pack({**head, "key": key, **_style(theme, height)}, arrays),
               height="content", on_report_change=lambda: None)
