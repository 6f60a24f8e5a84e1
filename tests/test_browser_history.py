"""Runs are never lost, in chromium: a preset switch then Back reopens the first run at its
step; a closed tab reopened on its URL finds its runs; Fork over T with 3 values shows 3 runs
on Compare from the same step; replay of a step shows that step's events as the engine made
them."""
import os
import shutil

import pytest

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not shutil.which("chromium") and not os.path.exists("/usr/bin/chromium"),
                                 reason="chromium is not installed")]


@pytest.fixture(scope="module")
def browser_app(tmp_path_factory):
    from browser import app_and_browser
    with app_and_browser({"DEEPR_PARK_DIR": str(tmp_path_factory.mktemp("lot"))}) as served:
        yield served


def open_page(b, url):
    page = b.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(url)
    page.wait_for_selector("#step-counter", timeout=90_000)
    return page


def step(page, n: int) -> None:
    from browser import step_counter, wait_for
    before = step_counter(page)
    try:
        page.get_by_role("button", name=f"Step {n}", exact=True).click(timeout=60_000)
    except Exception:
        page.screenshot(path="/tmp/step-failed.png", full_page=True)
        raise
    wait_for(lambda: step_counter(page) == before + n, 60)


def test_preset_switch_then_back_reopens_the_first_run_at_its_step_and_a_closed_tab_finds_its_runs(browser_app):
    from browser import choose, step_counter, url_of, wait_for
    url, b = browser_app
    page = open_page(b, url + "/?preset=digits-demo")
    step(page, 10)
    choose(page, "Preset", "spiral-demo")
    # the new run's page: its counter at 0 (the old run's counter can stand for a moment)
    wait_for(lambda: "dataset=spiral" in url_of(page) and step_counter(page) == 0, 60)
    step(page, 1)
    page.go_back()
    wait_for(lambda: "dataset=digits" in url_of(page) and step_counter(page) == 10, 60)
    page.get_by_text("Deep R on digits").first.wait_for(timeout=30_000)
    address = url_of(page)
    page.close()                                   # the tab is closed ...
    again = open_page(b, address)                  # ... and reopened on its URL
    assert step_counter(again) == 10
    runs = again.locator('[data-testid="stSidebar"] [data-testid="stExpander"]').filter(has_text="Runs (2)")
    runs.first.wait_for(timeout=30_000)
    runs.get_by_role("button").filter(has_text="spiral").first.click()    # reopen the other run
    wait_for(lambda: "dataset=spiral" in url_of(again) and step_counter(again) == 1, 60)
    again.close()


def test_fork_over_T_with_three_values_shows_three_runs_on_compare_from_the_same_step(browser_app):
    from browser import url_of, wait_for
    url, b = browser_app
    page = open_page(b, url + "/?preset=spiral-demo")
    step(page, 10)
    page.get_by_role("button", name="Fork over…").click()
    box = page.get_by_label("Values (2-4, comma-separated)")
    box.fill("1e-7,1e-5,1e-3")
    box.press("Enter")
    page.get_by_role("button", name="Fork to Compare").click()
    wait_for(lambda: "/compare" in url_of(page), 60)
    for label in ("T = 1e-7", "T = 1e-5", "T = 0.001"):
        page.get_by_text(label).first.wait_for(timeout=60_000)
    page.get_by_text("fork at 10").first.wait_for(timeout=30_000)   # the fork point, marked
    page.screenshot(path=os.environ.get("DEEPR_SHOT_DIR", "/tmp") + "/forks-browser.png")
    page.close()


def test_replay_of_a_step_shows_the_engines_events_of_that_step(browser_app):
    from deepr_engine.run.config import preset
    from deepr_engine.run.session import TrainingSession

    from app.charts.palette import is_probe
    url, b = browser_app
    page = open_page(b, url + "/?preset=digits-demo&seed=3")
    step(page, 10)
    twin = TrainingSession(preset("digits-demo").replace(seed=3))   # CPU runs repeat exactly
    twin.step(10)
    ev = twin.optimizer.last_events
    probes = sum(int(is_probe(twin.telemetry.replay(10)[i]["pruned_age"]).sum()) for i in range(len(ev)))
    pruned, revived = sum(len(e["pruned"]) for e in ev), sum(len(e["activated"]) for e in ev)
    want = f"{pruned - probes} pruned (established), {probes} probes, {revived} revived"
    page.locator("#replay-counts").first.wait_for(timeout=30_000)
    assert page.locator("#replay-counts").first.inner_text() == want
    slider = page.get_by_role("slider", name="Step").last
    slider.focus()
    page.keyboard.press("ArrowLeft")                # back one step with the arrow key
    page.get_by_text("step 9:").first.wait_for(timeout=30_000)
    page.close()
