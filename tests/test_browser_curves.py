"""The live curves follow the run on screen in a real browser (Playwright + Debian's chromium,
marked `browser`), paused the whole time: after a Step button, after a preset switch (a new
run, a new feed), after Fork (the fork's history) and after reopening a run from the Runs list.

Each Step button reruns the page, and both views re-subscribe to the feed while the frame that
the first one asked for is in flight; that frame's curves part was dropped as if the curves had
left the feed, and a paused page asks no more, so the curves stayed at the step before."""
import os
import shutil

import pytest

needs_chromium = pytest.mark.skipif(not shutil.which("chromium") and not os.path.exists("/usr/bin/chromium"),
                                    reason="chromium is not installed")

# what the page's curves hold: the step, and the steps of the loss series (one point per step)
HELD = """() => {
  const c = (window.__deeprCurves || {}).curves, g = (window.__deeprGraph || {}).graph;
  if (!c) return null;
  const loss = c.series("loss");
  return {step: c.step, loss: loss ? loss.steps : [], graph: g ? g.step : null};
}"""


@pytest.fixture(scope="module")
def curves_browser():
    from browser import app_and_browser
    with app_and_browser() as served:
        yield served


def _held(page) -> dict:
    return page.evaluate(HELD) or {}


def _shows(page, step: int, first: int | None = None) -> bool:
    """The curves are at `step`, their loss series ends there (and starts at `first`)."""
    h = _held(page)
    loss = h.get("loss") or []
    return (h.get("step") == step and bool(loss) and loss[-1] == step
            and (first is None or loss[0] == first))


def _wait_shows(page, step: int, first: int | None = None, timeout: float = 30) -> None:
    from browser import wait_for
    try:
        wait_for(lambda: _shows(page, step, first), timeout)
    except AssertionError:
        h = _held(page)
        raise AssertionError(f"the curves should show step {step} (their loss from {first}); they hold "
                             f"step {h.get('step')}, loss steps {(h.get('loss') or [])[:3]}…"
                             f"{(h.get('loss') or [])[-3:]}, the graph step {h.get('graph')}") from None


def _step(page, n: int, to: int) -> None:
    from browser import step_counter, wait_for
    page.get_by_role("button", name=f"Step {n}", exact=True).click()
    try:
        wait_for(lambda: step_counter(page) == to, 60)
    except AssertionError:
        raise AssertionError(f"Step {n}: the counter shows {step_counter(page)}, not {to}") from None


@needs_chromium
@pytest.mark.browser
def test_browser_paused_curves_follow_steps_preset_switch_fork_and_reopen(curves_browser):
    from browser import choose, url_of, wait_for
    url, b = curves_browser
    page = b.new_page(viewport={"width": 1400, "height": 1300})
    page.goto(url + "/?preset=digits-demo")
    page.wait_for_selector("#step-counter", timeout=90_000)
    _step(page, 10, 10)
    _wait_shows(page, 10, first=1)

    # a new setup: a new run and a new feed
    choose(page, "Preset", "spiral-demo")
    wait_for(lambda: "dataset=spiral" in url_of(page), 60)
    page.get_by_text("Deep R on spiral").first.wait_for(timeout=60_000)
    wait_for(lambda: _held(page).get("step") == 0, 60)   # the new run's page is drawn
    _step(page, 10, 10)
    _wait_shows(page, 10, first=1)

    # Fork: a new run from this step, whose curves hold the history it was forked with
    page.get_by_role("button", name="Fork", exact=True).click()
    page.get_by_text("Forked at step 10").first.wait_for(timeout=60_000)
    _wait_shows(page, 10, first=1)
    _step(page, 10, 20)
    _wait_shows(page, 20, first=1)

    # reopen the first run from the Runs list: its own curves at its own step
    page.locator('[data-testid="stSidebar"] button').filter(has_text="on digits").first.click()
    wait_for(lambda: "dataset=digits" in url_of(page), 60)
    _wait_shows(page, 10, first=1)
    page.close()
