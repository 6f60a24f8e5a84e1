"""The live graph canvas component (app/components/live_graph.py + live_graph/*.js) in a real
browser: app/components/demo.py with a real training run, driven by Playwright in Debian's
chromium. Plus the Python-side delta logic without a browser."""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from browser import canvas_pixel, launch, streamlit_app

from app.components import graph_diff as gd
from app.components import live_graph as lg
from app.components import wire

GRAPH = "window.__deeprGraph && window.__deeprGraph.graph"


def demo_app():
    return streamlit_app(script="app/components/demo.py")


def graph(page, expr: str):
    return page.evaluate(f"window.__deeprGraph.graph.{expr}")


def engine_state(page) -> dict:
    return json.loads(page.locator("#engine-state").text_content(timeout=30_000))


def settled(page, timeout: float = 30.0) -> dict:
    """Wait until the canvas shows the frame the engine state beside it was written for."""
    deadline = time.time() + timeout
    while True:
        eng = engine_state(page)
        if graph(page, "seq") == eng["seq"]:
            return eng
        if time.time() > deadline:
            raise AssertionError(f"canvas at seq {graph(page, 'seq')}, engine state at {eng['seq']}")
        time.sleep(0.2)


def measure(page, seconds: float) -> dict:
    """Frames the page applied per second (counted in the page) and the median size of the
    delta messages over `seconds` of a playing run. benchmarks can call this too."""
    a0, t0 = page.evaluate(f"[{GRAPH}.framesApplied, performance.now()]")
    sizes, end = [], time.time() + seconds
    while time.time() < end:
        time.sleep(0.25)
        b, kind = page.evaluate(f"[{GRAPH}.lastBytes, {GRAPH}.lastKind]")
        if kind == "delta":
            sizes.append(b)
    a1, t1 = page.evaluate(f"[{GRAPH}.framesApplied, performance.now()]")
    return {"fps": (a1 - a0) / ((t1 - t0) / 1e3), "delta_bytes": float(np.median(sizes)) if sizes else None,
            "resyncs": graph(page, "resyncs"), "edges": graph(page, "edgeCount")}


# -- Python side, no browser -------------------------------------------------------------------
def _layers(pos_lists, shapes, rng):
    return [{"shape": s, "active_pos": np.sort(np.asarray(p)), "active_weight": rng.normal(0, 0.1, len(p))}
            for p, s in zip(pos_lists, shapes)]


def test_delta_holds_exactly_the_engines_changes():
    rng = np.random.default_rng(0)
    shapes = [(6, 16), (3, 6)]
    a = [rng.choice(96, 30, replace=False), rng.choice(18, 9, replace=False)]
    d0 = lg.from_layers(_layers(a, shapes, rng), 0, (4, 4))
    sent = gd.GraphSent(gd.signature(d0))
    gd.full(d0, sent)
    gone = np.sort(a[0])[:3]
    new = np.setdiff1d(np.arange(96), a[0])[:2]
    b = [np.concatenate([np.setdiff1d(a[0], gone), new]), a[1]]
    layers = _layers(b, shapes, rng)
    layers[0]["pruned_age"] = np.array([2, 500, 7])
    layers[0]["pruned"] = gone
    header, arrays = gd.delta(lg.from_layers(layers, 10, (4, 4)), sent)
    assert sorted(arrays["rm0"]) == sorted(gone) and sorted(arrays["add0"]) == sorted(new)
    assert list(arrays["life0"]) == [2, 500, 7]  # the engine's lifetimes, in the same order
    assert header["counts"][0] == [3, 2, 2] and header["counts"][1] == [0, 0, 0]  # 2 probes: lived < palette.PROBE_STEPS
    assert "rm1" not in arrays and "add1" not in arrays
    assert np.array_equal(sent.layers[0].pos, np.sort(b[0]))


def test_weights_that_moved_are_sent_all_at_once_when_most_did():
    rng = np.random.default_rng(2)
    shapes = [(8, 8)]
    pos = [np.sort(rng.choice(64, 20, replace=False))]
    layers = _layers(pos, shapes, rng)
    sent = gd.GraphSent(())
    gd.full(lg.from_layers(layers, 0), sent)
    layers[0]["active_weight"] = layers[0]["active_weight"] * 3  # every weight moved
    _, arrays = gd.delta(lg.from_layers(layers, 1), sent)
    assert "mv0" not in arrays and arrays["wall0"].dtype == np.float16
    assert np.allclose(arrays["wall0"], layers[0]["active_weight"], rtol=1e-3, atol=1e-4)
    layers[0]["active_weight"][3] += 1.0  # one moved
    _, arrays = gd.delta(lg.from_layers(layers, 2), sent)
    assert list(arrays["mv0"]) == [pos[0][3]] and "wall0" not in arrays
    msg = wire.pack({"kind": "delta"}, arrays)
    n = int.from_bytes(msg[:4], "little")
    assert json.loads(msg[4:4 + n])["arrays"]["mvw0"][0] == "f2"


def test_first_layer_gets_the_widest_gap():
    lay = lg.column_layout([64, 32, 16, 10], (8, 8), [410, 154, 80])
    x = np.diff(lay["x"])
    assert lay["grid"] == [8, 8] and x[0] == x.max() and x[0] > 0.4


def test_big_graphs_draw_a_fixed_documented_sample():
    rng = np.random.default_rng(1)
    shape = (400, 784)
    pos = rng.choice(400 * 784, 2 * gd.SAMPLE_LIMIT, replace=False)
    d = lg.from_layers(_layers([pos], [shape], rng), 0)
    sent = gd.GraphSent(gd.signature(d))
    header, arrays = gd.full(d, sent)
    assert header["sample"]["total"] == 2 * gd.SAMPLE_LIMIT
    assert 0.4 * gd.SAMPLE_LIMIT < len(arrays["pos0"]) <= 1.1 * gd.SAMPLE_LIMIT
    again = gd.sample_mask(0, np.sort(pos), sent.sample_frac)
    assert np.array_equal(np.sort(pos)[again], arrays["pos0"])  # the same rule every frame


# -- in the browser ----------------------------------------------------------------------------
@pytest.mark.browser
def test_canvas_renders_applies_deltas_and_follows_the_theme():
    from playwright.sync_api import sync_playwright

    with demo_app() as url, sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/?truth=1&theme=auto")
            page.wait_for_function(f"{GRAPH} && {GRAPH}.framesApplied > 0", timeout=60_000)
            eng = settled(page)
            assert graph(page, "edges()") == eng["layers"]
            canvas = page.locator("canvas.dg-base")
            assert int(canvas.get_attribute("data-edges")) == sum(map(len, eng["layers"])) > 600
            assert graph(page, "theme") == "light"

            # step until the engine has pruned something; each frame must arrive as a delta
            pruned_seen = 0
            for _ in range(6):
                before = eng
                page.get_by_role("button", name="Step 20").click()
                page.wait_for_function(f"window.__deeprGraph.graph.seq > {before['seq']}", timeout=30_000)
                eng = settled(page)
                assert graph(page, "lastKind") == "delta"
                assert int(canvas.get_attribute("data-last-bytes")) < 20_000
                drawn = graph(page, "edges()")
                assert drawn == eng["layers"]
                for layer, (ps, ws) in enumerate(zip(eng["layers"], eng["weights"])):
                    got = np.array(page.evaluate(f"{ps}.map(p => window.__deeprGraph.graph.weight({layer}, p))"))
                    # weights travel as float16 and are re-sent once they moved MOVE_FRACTION
                    # of the layer's scale (its 98th percentile of |w|)
                    scale = np.quantile(np.abs(ws), 0.98)
                    assert np.abs(got - np.array(ws)).max() <= gd.MOVE_FRACTION * scale + 2e-3 * np.abs(ws).max()
                for layer, (old, new) in enumerate(zip(before["layers"], eng["layers"])):
                    for p in set(old) - set(new):  # pruned in the engine: gone from the canvas
                        assert not page.evaluate(f"window.__deeprGraph.graph.hasEdge({layer}, {p})")
                        pruned_seen += 1
                if pruned_seen >= 3:
                    break
            assert pruned_seen >= 3, "the run pruned nothing in 120 steps"
            assert graph(page, "resyncs") == 0

            # hover: an edge under the mouse is described
            box = canvas.bounding_box()
            hit = None
            for fx in np.linspace(0.35, 0.6, 12):
                for fy in np.linspace(0.2, 0.8, 12):
                    hit = page.evaluate(f"window.__deeprGraph.graph.edgeAt({box['width'] * fx}, {box['height'] * fy})")
                    if hit:
                        page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
                        break
                if hit:
                    break
            assert hit and hit["theta"] == pytest.approx(abs(hit["weight"]))
            page.wait_for_function("() => { const t = [...document.querySelectorAll('*')].map(e => e.shadowRoot)"
                                   ".filter(Boolean).map(r => r.querySelector('.dg-tip')).find(Boolean);"
                                   " return t && !t.hidden && t.textContent.includes('θ'); }", timeout=5_000)
            shots = os.environ.get("LIVE_GRAPH_SHOTS")  # a folder for screenshots, if wanted
            if shots:
                page.screenshot(path=os.path.join(shots, "live_graph_light.png"))
            light_bg = canvas_pixel(page, "canvas.dg-base")

            # a playing run in a dark colour scheme: Streamlit goes dark, so does the canvas; the
            # page pulls frames itself and applies every one as a delta
            dark = browser.new_page(viewport={"width": 1100, "height": 800}, color_scheme="dark")
            dark.goto(url + "/?play=1")
            dark.wait_for_function(f"{GRAPH} && {GRAPH}.framesApplied > 0", timeout=60_000)
            m = measure(dark, 4.0)
            assert m["fps"] > 0.5 and m["delta_bytes"] and m["resyncs"] == 0, m
            assert dark.evaluate("window.__deeprGraph.graph.theme") == "dark"
            assert dark.locator("canvas.dg-base").get_attribute("data-theme") == "dark"
            dark_bg = canvas_pixel(dark, "canvas.dg-base")
            if shots:
                dark.screenshot(path=os.path.join(shots, "live_graph_dark.png"))
            assert sum(light_bg[:3]) > 600 and sum(dark_bg[:3]) < 150, (light_bg, dark_bg)
            assert not errors, errors
        finally:
            browser.close()



