"""Runs in a real browser (Playwright + Debian's chromium, marked `browser`): a sweep trial's
link opens its setup on the Dashboard, and Fork over puts forks from one step side by side on
Compare with the fork point marked."""
import json
import os
import shutil
from urllib.parse import parse_qsl, urlparse

import pytest

from app.urlstate import from_query
from deepr_engine.run import sweep
from deepr_engine.run.config import preset

needs_chromium = pytest.mark.skipif(not shutil.which("chromium") and not os.path.exists("/usr/bin/chromium"),
                                    reason="chromium is not installed")


def fake_sweep(out):
    """A finished sweep folder as the Sweep page reads it (results.csv, trials.json,
    sweep.json); the first trial is the best on validation."""
    base = preset("spiral-demo").replace(steps=300, hidden=[12, 8])
    trials = sweep.build_trials(base, {"temperature": [1e-6, 1e-5]})
    res = sweep.ResultsFile(out, ["temperature"])
    for i, t in enumerate(trials):
        res.add(t.swept | {"seed": t.config.seed, "key": t.key, "status": "ok", "val_acc": 0.9 - i / 10,
                           "test_acc": 0.8, "connectivity": 0.2, "turnover": 10.0, "seconds": 1.0})
    (out / "trials.json").write_text(json.dumps({t.key: t.config.to_dict() for t in trials}))
    (out / "sweep.json").write_text(json.dumps({"preset": "spiral-demo"}))
    return trials


@pytest.fixture(scope="module")
def runs_browser(tmp_path_factory):
    """The app with its Sweep page reading a folder of its own (DEEPR_SWEEPS), and chromium."""
    from browser import app_and_browser
    sweeps = tmp_path_factory.mktemp("sweeps")
    trials = fake_sweep(sweeps / "20260101-000000")
    with app_and_browser({"DEEPR_SWEEPS": str(sweeps)}) as (url, b):
        yield url, b, trials


@needs_chromium
@pytest.mark.browser
def test_browser_sweep_link_opens_the_trials_setup_with_its_holdout_on_the_dashboard(runs_browser):
    from browser import url_of, wait_for
    url, b, trials = runs_browser
    page = b.new_page(viewport={"width": 1400, "height": 1300})
    page.goto(url + "/sweep")
    link = page.get_by_role("link", name="Open the best trial")
    link.wait_for(timeout=90_000)
    with page.context.expect_page(timeout=30_000) as opened:
        link.click()
    dash = opened.value
    dash.wait_for_selector("#step-counter", timeout=90_000)
    assert "Page not found" not in dash.content()
    dash.get_by_text("trained on 80%, 20% held out for validation").first.wait_for(timeout=30_000)
    # the Dashboard's own URL (rewritten from its run) still holds the trial's whole setup
    wait_for(lambda: "run=" in url_of(dash), 30)
    cfg, ui = from_query(dict(parse_qsl(urlparse(url_of(dash)).query)))
    assert not ui.errors and cfg == trials[0].config, (cfg.to_dict(), trials[0].config.to_dict())
    dash.close()
    page.close()


@needs_chromium
@pytest.mark.browser
@pytest.mark.extended  # the AppTest / node tests cover its parts in the default run
def test_browser_fork_over_t_shows_three_forks_from_one_step_on_compare(runs_browser):
    from browser import url_of, wait_for
    url, b, _ = runs_browser
    page = b.new_page(viewport={"width": 1400, "height": 1300})
    page.goto(url + "/?preset=spiral-demo")
    page.wait_for_selector("#step-counter", timeout=90_000)
    page.get_by_role("button", name="Step 10", exact=True).click()
    wait_for(lambda: page.locator("#step-counter").first.inner_text() == "10", 30)
    page.get_by_role("button", name="Fork over…").click()
    page.get_by_role("button", name="Fork to Compare").click()    # T: 0.1x, 1x and 10x its value
    page.get_by_text("Forks of").first.wait_for(timeout=90_000)
    assert "/compare" in url_of(page)
    wait_for(lambda: page.locator("#step-counter").first.inner_text() == "10,10,10", 60)
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    wait_for(lambda: page.locator(".js-plotly-plot").count() == 4, 30)
    # every chart marks the fork point: its annotation, over a dotted line
    wait_for(lambda: page.get_by_text("fork at 10").count() == 4, 30)
    assert page.locator(".js-plotly-plot .shapelayer path").count() >= 4
    labels = page.locator('[data-testid="stCaptionContainer"]').all_inner_texts()
    assert sum(1 for t in labels if t.startswith(("1. T = ", "2. T = ", "3. T = "))) == 3, labels
    page.close()
