"""The live curves canvas component (app/components/live_curves.py + live_curves/*.js): the
Python side's deltas against a real down-sampled telemetry series, and in a real browser
(app/components/curves_demo.py with a real training run, Playwright in Debian's chromium)."""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

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





# -- the feed's request loop (common.js) in node, no browser ------------------------------------
FEED_LOOP = r"""
globalThis.window = globalThis;
globalThis.requestAnimationFrame = (f) => setTimeout(f, 0);
const asked = [];  // requests in flight: {q, answer(bytes)}
globalThis.fetch = (url) => new Promise((resolve) => asked.push({ q: url.split("?")[1], answer: (b64) => {
  const u8 = Uint8Array.from(Buffer.from(b64, "base64"));
  resolve({ ok: true, status: 200, arrayBuffer: async () => u8.buffer });
} }));
%COMMON%
const FRAMES = %FRAMES%;
const until = async (cond) => { for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 2)); };
const drawn = [];
const view = (key) => ({ key, seq: -1, root: { isConnected: true }, setStateValue: () => {} });
const G = view("graph"), C = view("curves");
// apply: as the views do (a full message, or a delta on the seq held); the curves can be told
// to find a gap (a delta whose base they lack: deltasToApply leaves seq -1)
let gap = false;
const apply = (name) => (S, h) => {
  drawn.push(`${name}@${h.step}`);
  S.seq = name === "curves" && gap ? -1 : h.seq;
  if (name === "curves") gap = false;
};
// a rerun of the page: the graph subscribes first (its column comes first), then the curves
const rerun = (step) => {
  for (const [ch, S] of [["graph", G], ["curves", C]])
    feedSubscribe({ feed: "/f", channel: ch, key: S.key, playing: false, step, max_fps: 1000 }, S, apply(ch));
};
(async () => {
  const F = () => window.__deeprFeeds["/f"];
  const serve = async (frame) => { await until(() => asked.length); const r = asked.shift(); r.answer(FRAMES[frame]); return r.q; };
  const log = [];
  rerun(0);
  log.push(await serve("step0"), await serve("step0"));
  await until(() => !F().running);
  rerun(10);                      // Step 10: both views subscribe again while the frame is asked
  log.push(await serve("step10"));
  await until(() => !F().running);
  gap = true;
  rerun(20);
  log.push(await serve("step20"));
  await until(() => asked.length || !F().running);
  const after = asked.length ? await serve("step20") : null;
  await until(() => !F().running);
  console.log(JSON.stringify({ log, after, drawn }));
})();
"""


def _feed_frame(step: int) -> str:
    parts = {ch: wire.pack({"kind": "full", "seq": step + 1, "step": step}, {}) for ch in ("graph", "curves")}
    return base64.b64encode(wire.pack_parts({"step": step, "playing": False}, parts)).decode()


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")
def test_feed_loop_applies_a_paused_steps_frame_to_views_that_subscribed_again():
    """A Step reruns the page: the graph's subscription asks for the frame and the curves
    subscribe again while it is in flight; its curves part must still be drawn (it was dropped:
    the curves stayed at the step before, paused, with nothing asking again). A view that finds a
    gap (a delta it lacks the base of) asks again at once, paused too."""
    common = (Path(lc.__file__).parent / "common.js").read_text(encoding="utf-8")
    frames = {f"step{s}": _feed_frame(s) for s in (0, 10, 20)}
    script = FEED_LOOP.replace("%COMMON%", common).replace("%FRAMES%", json.dumps(frames))
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    # the first frame is the graph's alone (the curves subscribe after it is asked), then theirs
    assert got["log"] == ["graph=-1", "graph=1&curves=-1", "graph=1&curves=1", "graph=11&curves=11"], got
    curves = [d for d in got["drawn"] if d.startswith("curves")]
    assert curves[:2] == ["curves@0", "curves@10"], got
    # the curves found a gap at step 20: the loop asks for their whole state without a new step
    assert got["after"] == "graph=21&curves=-1", got
    assert curves[2:] == ["curves@20", "curves@20"], got
