"""Issue 19 in a real browser (Playwright + Debian's chromium, the app in a subprocess): the unit
maps equal the model's activations, hovering links a unit's map and its edges in the graph, the
classified counters equal the engine's events over 200 steps, the topology panel, and the tour
(every stop reached, leaving keeps the run; DEEPR_TOUR_FAST shortens its stops).

The reference runs are fresh TrainingSessions of the same preset and seed, stepped as far as the
page's run (one torch thread, as the app's training process): CPU runs are bit-identical."""
from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest
import torch

from deepr_engine.run import topology
from deepr_engine.run.session import TrainingSession

pytestmark = [pytest.mark.browser, pytest.mark.skipif(
    not shutil.which("chromium") and not os.path.exists("/usr/bin/chromium"), reason="chromium is not installed")]
TOUR_FAST = "0.04"


@pytest.fixture(scope="module")
def browser_app():
    from browser import app_and_browser
    with app_and_browser({"DEEPR_TOUR_FAST": TOUR_FAST}) as served:   # the server reads it
        yield served


def _open(b, url):
    page = b.new_page(viewport={"width": 1400, "height": 1300})
    page.goto(url)
    page.wait_for_selector("#step-counter", timeout=90_000)
    page.wait_for_selector("[data-testid=stButtonGroup] >> text=Change log", timeout=60_000)
    return page


def _view(page, name):
    page.locator("[data-testid=stButtonGroup] button").filter(has_text=name).first.click()


def _reference(name: str, steps: int) -> TrainingSession:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        s = TrainingSession(name)
        s.step(steps)
        return s
    finally:
        torch.set_num_threads(threads)


def _hooked(session, xs) -> list[np.ndarray]:
    from test_insight import hooked_activations
    return hooked_activations(session, xs, xs)


def test_browser_unit_maps_equal_the_model_and_hover_links_them_with_the_graph(browser_app):
    from app.components.unit_maps import grid
    from browser import wait_for
    url, b = browser_app
    page = _open(b, url + "/?preset=spiral-demo")
    page.get_by_role("button", name="Step 10", exact=True).click()
    _view(page, "Units")
    units = "window.__deeprUnits && window.__deeprUnits.units"
    wait_for(lambda: page.evaluate(f"{units} && {units}.step") == 10, 60)
    ref = _reference("spiral-demo", 10)
    want = _hooked(ref, grid())
    layers = page.evaluate(f"{units}.layers()")
    assert [(l["col"], l["units"]) for l in layers] == [(i + 1, w.shape[0]) for i, w in enumerate(want)]
    maps = page.evaluate("(u => u.layers().map((l, li) => Array.from({length: l.units}, (_, j) => u.map(li, j))))"
                         "(window.__deeprUnits.units)")
    for li, w in enumerate(want):
        got = np.array(maps[li], dtype=np.float32).reshape(w.shape)
        np.testing.assert_allclose(got, w, rtol=2e-3, atol=2e-3, err_msg=f"layer {li}")
    # hover the map of hidden unit 5 of the second hidden layer: its edges in the graph
    page.locator("canvas.um-cell[data-col='2'][data-unit='5']").hover()
    wait_for(lambda: page.evaluate("window.__deeprGraph.graph.highlighted()") is not None, 10)
    hl = page.evaluate("window.__deeprGraph.graph.highlighted()")
    l_in, l_out = ref.layers[1].active_idx.sort().values, ref.layers[2].active_idx.sort().values
    assert (hl["col"], hl["unit"]) == (2, 5)
    assert hl["fanIn"] == [p for p in l_in.tolist() if p // 16 == 5]        # row 5 of 16 -> 16
    assert hl["fanOut"] == [p for p in l_out.tolist() if p % 16 == 5]       # column 5 of 16 -> 2
    # hover unit 3 of the first hidden layer in the graph: its map is outlined
    page.locator("canvas.dg-base").scroll_into_view_if_needed()
    x, y = page.evaluate("window.__deeprGraph.graph.unitXY(1, 3)")
    box = page.locator("canvas.dg-base").bounding_box()
    page.mouse.move(box["x"] + x, box["y"] + y)
    wait_for(lambda: page.evaluate(f"{units}.highlighted()") == [1, 3], 10)
    assert page.locator("canvas.um-cell.hl").count() == 1
    assert page.locator("canvas.um-cell.hl").get_attribute("data-unit") == "3"
    page.close()


def _classified(session_name: str, steps: int, probe_steps: int = 20) -> np.ndarray:
    """(probe, death, survived) x layer from the optimizer's own events, step by step, with the
    lifetimes kept here (not by the code under test): a pruned connection that had been active
    fewer than probe_steps steps is a probe, else a death; a revival still active probe_steps
    steps later survived."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    s = TrainingSession(session_name)
    born = [np.full(l.n_positions, -1, np.int64) for l in s.layers]
    for b, l in zip(born, s.layers):
        b[l.active_idx.numpy()] = 0
    out = np.zeros((3, len(s.layers)), np.int64)
    revived, probed = {}, {}
    for t in range(1, steps + 1):
        s.step(1)
        for i, ev in enumerate(s.optimizer.last_events):
            p, a = ev["pruned"].numpy(), ev["activated"].numpy()
            age = t - born[i][p]
            probe = age < probe_steps
            out[0, i] += probe.sum()
            out[1, i] += (~probe).sum()
            for birth in (t - age[probe]).tolist():
                probed[(birth, i)] = probed.get((birth, i), 0) + 1
            born[i][a] = t
            revived[(t, i)] = revived.get((t, i), 0) + len(a)
    for (birth, i), n in revived.items():
        if birth + probe_steps <= steps:
            out[2, i] += max(n - probed.get((birth, i), 0), 0)
    torch.set_num_threads(threads)
    return out


def test_browser_classified_counters_equal_the_engines_events_over_200_steps(browser_app):
    from browser import wait_for
    url, b = browser_app
    page = _open(b, url + "/?preset=digits-demo")
    for step in ("100", "200"):
        page.get_by_role("button", name="Step 100", exact=True).click()
        wait_for(lambda: page.locator("#class-totals").get_attribute("data-step", timeout=2000) == step, 60)
    got = np.array([[int(v) for v in row.split(",")]
                    for row in page.locator("#class-totals").get_attribute("data-v").split(";")])
    want = _classified("digits-demo", 200)
    np.testing.assert_array_equal(got, want)
    assert want[0].sum() > want[1].sum() > 0 and want[2].sum() > 0   # all three classes occur
    # the table shows the same totals ("all" row)
    row = page.locator("table tr").filter(has_text="all").first.inner_text().split()
    assert [int(v.replace(",", "")) for v in row[1:4]] == want.sum(1).tolist()
    # the topology panel, for the same frame
    _view(page, "Topology")
    page.wait_for_selector("#topology-summary", state="attached", timeout=30_000)
    ref = topology.summary(_reference("digits-demo", 200))
    el = page.locator("#topology-summary")
    assert (int(el.get_attribute("data-inputs")), int(el.get_attribute("data-outputs")),
            int(el.get_attribute("data-dead"))) == (ref["inputs_reaching"], ref["outputs_reached"], ref["dead_units"])
    assert page.get_by_text("Inputs reaching an output").count() >= 1
    assert page.locator(".js-plotly-plot").count() >= 2     # degrees and history drawn
    page.close()


def _click(page, key: str, done, tries: int = 3) -> None:
    """Click the button with this key until done() (a click on a copy that a rerun was replacing
    is lost)."""
    from browser import wait_for
    for _ in range(tries):
        button = page.locator(f".st-key-{key} button:visible")   # (a tooltip keeps a hidden copy)
        if button.count():   # else the click is being handled (a new run can take long)
            button.first.click(timeout=10_000)
        try:
            return wait_for(done, 60)
        except AssertionError:
            continue
    raise AssertionError(f"clicking {key} had no effect")


@pytest.mark.extended  # the AppTest / node tests cover its parts in the default run
def test_browser_tour_reaches_every_stop_back_and_leave_keeps_the_run(browser_app):
    from app import tour
    from browser import step_counter, url_of, wait_for
    url, b = browser_app
    page = _open(b, url + "/?preset=spiral-demo")
    n = len(tour.load())
    shown = "(e => e && [e.dataset.stop, e.dataset.visited])(document.querySelector('#tour-stop'))"
    stop = lambda: (page.evaluate(shown) or [None])[0]  # noqa: E731  (one read: reruns replace it)
    _click(page, "tour_start", lambda: stop() is not None)
    wait_for(lambda: stop() == str(n - 1), 180)      # it moves on by itself
    assert page.evaluate(shown)[1] == ",".join(map(str, range(n)))   # every stop applied and drawn, in order
    assert page.get_by_text(tour.load()[-1].title).count() >= 1
    q = url_of(page)
    assert "preset=digits-demo" in q and "T=0.0001" in q and "alpha=0.01" in q    # the tour's settings
    _click(page, "tour_back", lambda: stop() == str(n - 2))
    run = url_of(page).split("run=")[1].split("&")[0]
    _click(page, "tour_leave", lambda: page.evaluate(shown) is None)
    assert url_of(page).split("run=")[1].split("&")[0] == run       # the same run
    step = step_counter(page)
    wait_for(lambda: step_counter(page) > step, 30)                  # still playing
    page.close()
