"""The live curves canvas component (app/components/live_curves.py + live_curves/*.js): the
Python side's deltas against a real down-sampled telemetry series, and in a real browser
(app/components/curves_demo.py with a real training run, Playwright in Debian's chromium)."""
from __future__ import annotations

import base64
import json
import os
import time

import numpy as np
import pytest

from browser import canvas_pixel, launch, streamlit_app

from app.components import live_curves as lc
from app.components import wire
from deepr_engine.run.telemetry import Downsampled

CURVES = "window.__deeprCurves && window.__deeprCurves.curves"


# -- Python side, no browser -------------------------------------------------------------------
def _apply(held: dict, entry: dict, arrays: dict) -> None:
    """What the page does with one entry (live_curves.js applyEntry), for the protocol test."""
    for name, (start, n, dims) in entry["ops"].items():
        steps, values = held.get(name, (np.zeros(0, np.int64), np.zeros((0, dims), np.float32)))
        assert start <= len(steps), "a gap: the page would ask for everything again"
        held[name] = (np.concatenate([steps[:start], arrays[f"s_{name}"]]),
                      np.concatenate([values[:start], arrays[f"v_{name}"].reshape(n, dims)]))


def test_deltas_append_and_resend_a_series_the_downsampling_rewrote():
    loss, theta = Downsampled(16, "mean"), Downsampled(16, "last")
    rng = np.random.default_rng(0)
    sent, held, kinds = lc.CurvesSent(()), {}, []
    for step in range(1, 120):
        loss.add(step, rng.random())
        theta.add(step, rng.normal(size=3))
        if step % 5:
            continue
        data = lc.CurvesData(step=step, series={"loss": loss.arrays(), "theta": theta.arrays()})
        before = {k: len(v[0]) for k, v in held.items()}
        entry, arrays = lc._diff(data, sent, ["loss", "theta"], full=not held)
        _apply(held, entry, arrays)
        for name, (start, n, _) in entry["ops"].items():
            kinds.append("append" if start == before.get(name, 0) else "rewrite")
            if start < before.get(name, 0):  # only when the engine merged points
                assert loss.stride > 1
        for name, s in (("loss", loss), ("theta", theta)):
            steps, values = s.arrays()
            assert np.array_equal(held[name][0], steps)
            assert np.allclose(held[name][1], np.asarray(values, np.float32).reshape(len(steps), -1))
    assert kinds.count("append") > 20 and 0 < kinds.count("rewrite") < 10, kinds
    # nothing new: no ops
    entry, arrays = lc._diff(data, sent, ["loss", "theta"], full=False)
    assert entry["ops"] == {} and not arrays and set(entry) == {"ops", "step"}


def test_change_labels_and_a_dragged_change_is_resent_from_its_entry():
    assert lc.change_label((10, "temperature", 1e-6, 1e-5)) == "T 1e-6 → 1e-5"
    assert lc.change_label((10, "alpha", 1e-4, 1e-3)) == "alpha 1e-4 → 1e-3"
    assert lc.change_label((10, "k", [410, 154, 80], [369, 138, 72])) == "K [410, 154, 80] → [369, 138, 72]"
    assert lc.change_label((10, "lr", 0.2, 0.1)) == "lr 0.2 → 0.1"
    assert lc.change_label((3, "theta_min", [-0.05], [-0.1])) == "θ_min [-0.05] → [-0.1]"
    sent = lc.CurvesSent(())
    data = lc.CurvesData(step=5, series={}, changes=[(1, "lr", 0.2, 0.1), (4, "temperature", 1e-6, 1e-5)],
                         metrics={"loss": float("nan"), "test_acc": 0.5})
    entry, _ = lc._diff(data, sent, [], full=True)
    assert entry["changes"]["from"] == 0 and len(entry["changes"]["items"]) == 2
    assert entry["metrics"] == {"loss": None, "test_acc": 0.5}  # JSON has no NaN: "—" on the page
    msg = wire.pack(entry, {})
    assert json.loads(msg[4:4 + int.from_bytes(msg[:4], "little")])["metrics"]["loss"] is None
    data.changes[1] = (4, "temperature", 1e-6, 1e-4)  # the engine extended the change (a drag)
    entry, _ = lc._diff(data, sent, [], full=False)
    assert entry["changes"] == {"from": 1, "items": [[4, "temperature", "T 1e-6 → 1e-4"]]}


# -- in the browser ----------------------------------------------------------------------------
def demo_app():
    return streamlit_app(script="app/components/curves_demo.py")


def api(page, expr: str):
    return page.evaluate(f"window.__deeprCurves.curves.{expr}")


def settled(page, after_seq: int = 0, timeout: float = 30.0) -> dict:
    """The engine's series for the frame the canvas shows now (newer than after_seq)."""
    deadline = time.time() + timeout
    while True:
        raw = page.locator("#engine-series").text_content(timeout=30_000)
        eng = json.loads(base64.b64decode(raw))
        if eng["seq"] > after_seq and api(page, "seq") == eng["seq"]:
            return eng
        if time.time() > deadline:
            raise AssertionError(f"canvas at seq {api(page, 'seq')}, engine state at {eng['seq']}")
        time.sleep(0.2)


def assert_same_series(page, eng: dict) -> None:
    for name, (steps, values) in eng["series"].items():
        got = api(page, f"series({json.dumps(name)})")
        assert got["steps"] == steps, name
        a = np.array(got["values"], dtype=float).reshape(len(steps), got["dims"])
        b = np.array(values, dtype=float).reshape(len(steps), got["dims"])
        assert np.array_equal(np.isnan(a), np.isnan(b)) and np.allclose(a[~np.isnan(a)], b[~np.isnan(b)]), name


def click_and_settle(page, name: str, eng: dict) -> dict:
    page.get_by_role("button", name=name, exact=True).click()
    page.wait_for_function(f"{CURVES}.seq > {eng['seq']}", timeout=30_000)
    return settled(page, eng["seq"])


@pytest.mark.browser
def test_curves_render_append_mark_changes_and_follow_the_theme(tmp_path):
    from playwright.sync_api import sync_playwright

    shots = os.environ.get("LIVE_CURVES_SHOTS")  # a folder for screenshots, if wanted
    with demo_app() as url, sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1000})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/?truth=1")
            page.wait_for_function(f"{CURVES} && {CURVES}.framesApplied > 0", timeout=60_000)
            eng = settled(page)
            assert api(page, "lastKind") == "full" and api(page, "theme") == "light"
            assert_same_series(page, eng)
            # step 0: no training loss yet, shown as "—" (not "nan")
            readout = page.locator(".lc-chart[data-chart=accuracy] .lc-readout").text_content()
            assert "loss —" in readout and "nan" not in readout.lower()

            # two steps of 20: the second one is an append of 20 points to what the page holds
            eng = click_and_settle(page, "Step 20", eng)
            eng = click_and_settle(page, "Step 20", eng)
            ops = api(page, "lastOps")
            assert api(page, "lastKind") == "delta"
            for name in ("loss", "train_acc", "theta", "pruned", "activated"):  # theta has step 0 too
                assert ops[name]["from"] == ops[name]["held"] >= 20 and ops[name]["n"] == 20, (name, ops)
            assert_same_series(page, eng)

            # a hyperparameter change: a labelled marker on every chart
            eng = click_and_settle(page, "T ×10", eng)
            label = "T 1e-5 → 1e-4"
            assert eng["changes"] == [label]
            assert api(page, "markers()") == [{"step": 40, "field": "temperature", "label": label}]
            for chart in lc.CHARTS:
                drawn = api(page, f"drawn('{chart}')")["markers"]
                assert [(m["label"], m["row"]) for m in drawn] == [(label, 0)], chart
            eng = click_and_settle(page, "Step 20", eng)  # the change stays, the curves go on
            box = page.locator(".lc-chart[data-chart=walks] canvas.lc-base").bounding_box()
            x = api(page, "drawn('walks')")["markers"][0]["x"]
            assert label in api(page, f"hoverAt('walks', {x}, 100)")
            page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5)
            tip = page.locator(".lc-chart[data-chart=walks] .lc-tip")
            tip.wait_for(state="visible", timeout=5_000)
            assert "θ" in tip.text_content()

            # past telemetry's 1,024 points the engine merges neighbours: that series is resent
            eng = click_and_settle(page, "Step 1100", eng)
            ops = api(page, "lastOps")
            assert ops["loss"]["from"] < ops["loss"]["held"], ops
            assert_same_series(page, eng)
            # then appends again: this message (and the previous one, repeated while the page
            # has not confirmed it) carries the new points, not the ~570 held (theta alone ~55 kB)
            for _ in range(2):
                eng = click_and_settle(page, "Step 20", eng)
            ops = api(page, "lastOps")
            assert all(o["from"] == o["held"] for o in ops.values()) and ops["theta"]["held"] > 500, ops
            assert api(page, "lastBytes") < 8_000
            assert_same_series(page, eng)
            assert api(page, "resyncs") == 0
            # the x axis starts at 0 and covers the run; the loss axis from 0
            acc = api(page, "drawn('accuracy')")
            assert acc["xmax"] >= eng["step"] and acc["loss_max"] > 0
            assert api(page, "drawn('transitions')")["y"][0] == 0
            if shots:
                page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.4)
                page.screenshot(path=os.path.join(shots, "live_curves_light.png"), full_page=True)

            # download PNG, drawn in the browser (no server round trip)
            with page.expect_download() as dl:
                page.locator(".lc-chart[data-chart=accuracy] button.lc-png").click()
            png = tmp_path / "acc.png"
            dl.value.save_as(png)
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000
            light_bg = canvas_pixel(page, ".lc-chart[data-chart=accuracy] canvas.lc-base")

            # a playing run in a dark colour scheme: Streamlit goes dark, so do the charts; the
            # page pulls frames and applies them as deltas
            dark = browser.new_page(viewport={"width": 1100, "height": 1000}, color_scheme="dark")
            dark.goto(url + "/?play=1")
            dark.wait_for_function(f"{CURVES} && {CURVES}.framesApplied > 2", timeout=60_000)
            a0, t0 = dark.evaluate(f"[{CURVES}.framesApplied, performance.now()]")
            time.sleep(3.0)
            a1, t1 = dark.evaluate(f"[{CURVES}.framesApplied, performance.now()]")
            assert (a1 - a0) / ((t1 - t0) / 1e3) > 0.5
            assert api(dark, "theme") == "dark" and api(dark, "lastKind") == "delta" and api(dark, "resyncs") == 0
            assert dark.locator(".lc-root").get_attribute("data-theme") == "dark"
            dark_bg = canvas_pixel(dark, ".lc-chart[data-chart=accuracy] canvas.lc-base")
            if shots:
                dark.screenshot(path=os.path.join(shots, "live_curves_dark.png"), full_page=True)
            assert sum(light_bg[:3]) > 600 and sum(dark_bg[:3]) < 150, (light_bg, dark_bg)
            assert not errors, errors
        finally:
            browser.close()



