"""One palette and one probe rule for the live canvases and the PNG export (app/charts/palette.py):
the JavaScript holds no colour of its own, the colours it gets are the ones the PNG draws, and
the live graph and the PNG's trail call the same lifetimes probes."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from app.charts import graph, palette
from app.components import graph_diff as gd
from app.components import live_curves as lc
from app.components import live_graph as lg

COMPONENTS = Path(__file__).resolve().parents[1] / "app" / "components"


def test_the_javascript_holds_no_colour_of_its_own():
    for js in COMPONENTS.rglob("*.js"):
        code = "\n".join(line for line in js.read_text().splitlines() if not line.strip().startswith("//"))
        assert not re.search(r"#[0-9a-fA-F]{6}\b|rgba?\(", code), js.name


def test_the_canvases_get_the_colours_the_png_draws():
    sent = lg._style("auto", 400)
    assert sent["probe_steps"] == palette.PROBE_STEPS
    for name, pal in (("light", palette.LIGHT), ("dark", palette.DARK)):
        js = sent["palette"][name]
        assert (js["probe"], js["death"], js["added"]) == (pal.event("probe"), pal.event("died"), pal.event("revived"))
        assert (js["pos"], js["neg"]) == (pal.pos, pal.neg)
    assert palette.LIGHT.probe == "#9970ab"  # violet, as the legend says
    assert "violet" in lg.LEGEND and f"within {palette.PROBE_STEPS} steps" in lg.LEGEND
    assert lc._style(("accuracy",), 200, 1, "auto", "sqrt")["palette"] == palette.curves_js()


def test_a_probe_in_the_png_is_drawn_in_the_legends_violet():
    layer = type("L", (), {"index": 0, "shape": (2, 2), "n_positions": 4, "active_pos": np.array([0]),
                           "active_weight": np.array([0.5]), "pruned": np.array([3]),
                           "pruned_age": np.array([2]), "activated": np.zeros(0, np.int64)})()
    trail = graph.EventTrail()
    trail.add([layer], now=0.0)
    layout = graph.layout_for([layer], 2, None)
    img = np.asarray(graph.raster_graph([layer], layout, palette.LIGHT, trail.fading(0.0), (200, 120)))
    # a translucent stroke on white: white - pixel points the way white - its colour does
    white = np.array(palette.LIGHT.rgb(palette.LIGHT.bg), float)
    diff = (white - img.reshape(-1, 3)).astype(float)
    diff = diff[np.linalg.norm(diff, axis=1) > 20]

    def along(color: str) -> int:
        d = white - np.array(palette.LIGHT.rgb(color), float)
        return int(((diff @ d) / (np.linalg.norm(diff, axis=1) * np.linalg.norm(d)) > 0.995).sum())
    assert along(palette.LIGHT.probe) > 20 and along("#f39c12") == 0  # violet, not the old orange


def test_the_live_graph_and_the_png_call_the_same_lifetimes_probes():
    ages = np.array([-1, 0, 1, palette.PROBE_STEPS - 1, palette.PROBE_STEPS, palette.PROBE_STEPS + 1, 500])
    want = [False, True, True, True, False, False, False]
    assert palette.is_probe(ages).tolist() == want
    # the live graph's counters (graph_diff.delta) ...
    pos = np.arange(10, 10 + len(ages))
    layers = [{"shape": (4, 8), "active_pos": pos, "active_weight": np.ones(len(pos))}]
    d0 = gd.from_layers(layers, 0)
    sent = gd.GraphSent(gd.signature(d0))
    gd.full(d0, sent)
    layers = [{"shape": (4, 8), "active_pos": np.zeros(0, np.int64), "active_weight": np.zeros(0),
               "pruned": pos, "pruned_age": ages, "activated": np.zeros(0, np.int64)}]
    entry, _ = gd.delta(gd.from_layers(layers, 600), sent)
    assert entry["counts"][0] == [len(ages), 0, sum(want)]
    # ... and the PNG's trail
    view = type("L", (), {"index": 0, "pruned": pos, "pruned_age": ages, "activated": np.zeros(0, np.int64)})()
    trail = graph.EventTrail()
    trail.add([view], now=0.0)
    kinds = {k: len(p) for _, k, p, _ in trail.fading(0.0)}
    assert kinds == {"probe": sum(want), "died": len(ages) - sum(want)}
