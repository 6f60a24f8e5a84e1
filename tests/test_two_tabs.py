"""Two tabs on one run (a shared ?run= link) in a real browser: every frame is a read, so both
tabs' views stay live whichever tab plays (app/state.py, deepr_engine/run/telemetry.EventRing)."""
from __future__ import annotations

import os
import shutil
import time

import pytest

from browser import launch, step_counter, streamlit_app, url_of, wait_for

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not shutil.which("chromium") and not os.path.exists("/usr/bin/chromium"),
                                 reason="chromium is not installed")]

VIEWS = "[window.__deeprGraph.graph.step, window.__deeprCurves.curves.step]"
APPLIED = "window.__deeprGraph.graph.framesApplied"


def _open(b, url):
    page = b.new_page(viewport={"width": 1400, "height": 1300})
    page.goto(url)
    page.wait_for_selector("#step-counter", timeout=90_000)
    page.wait_for_selector("canvas.dg-base", timeout=90_000)
    wait_for(lambda: page.evaluate("!!(window.__deeprGraph && window.__deeprCurves)"), 60)
    return page


def _shown(page) -> tuple[int, int, int]:
    """(step counter, graph's step, curves' step) in this tab."""
    return (step_counter(page), *page.evaluate(VIEWS))


def test_two_tabs_on_one_run_both_stay_live_when_the_second_plays():
    from playwright.sync_api import sync_playwright

    with streamlit_app() as url, sync_playwright() as p:
        b = launch(p)
        first = _open(b, url + "/?preset=digits-demo")
        wait_for(lambda: "run=" in url_of(first), 30)
        second = _open(b, url_of(first))  # the shared link: the same run
        assert step_counter(second) == step_counter(first) == 0
        second.get_by_role("button", name="Play").click()
        for page in (second, first):  # the first tab notices the run plays and follows it
            wait_for(lambda page=page: min(_shown(page)) >= 100, 90)
        applied = {id(p_): p_.evaluate(APPLIED) for p_ in (first, second)}
        for _ in range(2):  # and both keep moving: counters, graph and curves
            before = {id(p_): _shown(p_) for p_ in (first, second)}
            time.sleep(2.0)
            for page in (first, second):
                now, then = _shown(page), before[id(page)]
                assert all(a > b_ for a, b_ in zip(now, then)), (now, then)
        # each tab's graph kept applying the run's rewiring frames while it played (how many
        # depends on the machine's load; that it keeps going does not)
        for page in (first, second):
            assert page.evaluate(APPLIED) > applied[id(page)] > 0
            assert page.evaluate("Object.values(window.__deeprFeeds)[0].errors") == 0
        second.get_by_role("button", name="Pause").click()
        for page in (first, second):
            wait_for(lambda page=page: page.get_by_role("button", name="Play").count() > 0, 60)
        b.close()


def test_public_two_tabs_of_one_browser_are_one_owner_and_both_stay_live():
    """Public mode ties a run and its feed to the browser (its XSRF cookie). Each page load writes
    that cookie again under a new mask: the second tab must not turn the first tab's feed away
    (403) nor see its own browser's run as someone else's (read-only)."""
    from browser import app_and_browser

    with app_and_browser({"DEEPR_PUBLIC": "1"}) as (url, b):
        ctx = b.new_context(viewport={"width": 1400, "height": 1300})
        first = ctx.new_page()
        first.goto(url + "/?preset=spiral-demo")
        first.wait_for_selector("canvas.dg-base", timeout=90_000)
        wait_for(lambda: "run=" in url_of(first), 30)
        cookie = ctx.cookies()[0]["value"]
        second = ctx.new_page()
        second.goto(url_of(first))
        second.wait_for_selector("canvas.dg-base", timeout=90_000)
        assert ctx.cookies()[0]["value"] != cookie          # the same token, masked anew
        assert second.get_by_text("read-only").count() == 0
        second.get_by_role("button", name="Play").click()   # the owner's controls, in either tab
        for page in (first, second):
            wait_for(lambda page=page: min(_shown(page)) >= 100, 90)
            assert page.evaluate("Object.values(window.__deeprFeeds)[0].errors") == 0
        ctx.close()
