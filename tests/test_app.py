"""The dashboard: app logic with Streamlit's AppTest, and one real-browser run (Playwright +
Debian's chromium) that presses Play, waits for training and moves a slider."""
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.urlstate import from_query, to_query

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


def app(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=120)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def frame(at):
    """The tab's run as the page sees it (the run itself lives in its own process)."""
    return at.session_state["run"].frame()


def test_step_buttons_advance_the_counter():
    at = app()
    assert frame(at).step == 0
    at.button(key="step10").click().run()
    assert frame(at).step == 10
    at.button(key="step1").click().run()
    assert frame(at).step == 11
    assert "Step" in [m.label for m in at.metric]


def test_live_sliders_change_the_sessions_hyperparameters_without_reset():
    at = app()
    at.button(key="step10").click().run()
    gen = at.session_state["gen"]
    at.select_slider(key=f"T{gen}").set_value(1e-4).run()
    at.select_slider(key=f"alpha{gen}").set_value(3e-3).run()
    at.slider(key=f"conn0_{gen}").set_value(0.1).run()
    f = frame(at)
    assert f.step == 10  # no reset
    assert f.hyperparams["temperature"] == 1e-4
    assert f.hyperparams["alpha"] == 3e-3
    assert f.layers[0]["k"] == round(0.1 * f.layers[0]["n_positions"])
    assert {c[1] for c in f.telemetry.changes} >= {"temperature", "alpha", "k"}
    assert at.query_params["T"] == ["0.0001"] or at.query_params["T"] == "0.0001"


def test_bad_typed_k_shows_an_error_and_the_run_keeps_its_settings():
    at = app()
    gen = at.session_state["gen"]
    ks = frame(at).hyperparams["k"]
    at.text_input(key=f"ktext{gen}").input("5,nope,3").run()
    assert any("K" in e.value for e in at.error)
    at.text_input(key=f"ktext{gen}").input("999999,1,1").run()
    assert any("k[0]" in e.value for e in at.error)
    assert frame(at).hyperparams["k"] == ks
    at.text_input(key=f"ktext{gen}").input("100,50,40").run()
    assert frame(at).hyperparams["k"] == [100, 50, 40]


def test_url_parameters_set_up_the_run_and_round_trip():
    at = app({"preset": "spiral-demo", "lr": "0.2", "T": "1e-05", "hidden": "8,8", "seed": "3"})
    f = frame(at)
    assert f.config.dataset == "spiral" and f.config.hidden == [8, 8] and f.config.seed == 3
    assert f.hyperparams["lr"] == 0.2 and f.hyperparams["temperature"] == 1e-5
    q = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    cfg, ui = from_query(q)
    assert not ui.errors
    assert cfg.to_dict() == f.config.replace(lr=0.2, temperature=1e-5).to_dict() | {
        "connectivity": cfg.connectivity, "eval_every": cfg.eval_every, "steps": cfg.steps}


def test_bad_url_values_show_errors_and_fall_back():
    at = app({"lr": "-3", "preset": "nope", "T": "abc"})
    msgs = " ".join(e.value for e in at.error)
    assert "lr" in msgs and "preset" in msgs and "T" in msgs
    assert frame(at).config.dataset == "digits"


def test_url_round_trip_pure():
    cfg, ui = from_query({"preset": "digits-demo", "conn": "0.1,0.2,0.3", "algo": "soft-deepr"})
    q = to_query(cfg, ui)
    cfg2, ui2 = from_query(q)
    assert cfg2.to_dict() == cfg.to_dict() and not ui2.errors


def test_algorithm_switch_starts_a_soft_deepr_run():
    at = app()
    at.selectbox(key="algorithm").set_value("soft-deepr").run()
    assert frame(at).config.algorithm == "soft-deepr"
    assert at.session_state["gen"] == 2


def test_reruns_send_nothing_the_user_did_not_move():
    # soft-Deep R's K drifts while it trains: a rerun must not push the slider's old K back
    at = app({"algo": "soft-deepr"})
    at.button(key="step100").click().run()
    at.button(key="step100").click().run()
    f = frame(at)
    assert f.hyperparams["k"] != [round(c * l["n_positions"]) for c, l in
                                  zip(f.config.layer_connectivity(), f.layers)]  # it drifted
    assert list(f.telemetry.changes) == []


def test_comparison_methods_show_only_their_own_controls():
    at = app({"algo": "set"})
    gen = at.session_state["gen"]
    keys = {w.key for w in at.select_slider}
    assert f"lr{gen}" in keys and f"T{gen}" not in keys and f"alpha{gen}" not in keys
    at.slider(key=f"conn0_{gen}").set_value(0.05).run()
    f = frame(at)
    assert f.layers[0]["k"] == round(0.05 * f.layers[0]["n_positions"])
    at = app({"algo": "dense"})
    assert not [w for w in at.slider if w.key and w.key.startswith("conn")]


# -- real browser ---------------------------------------------------------------------------
browser = pytest.mark.skipif(not shutil.which("chromium") and not os.path.exists("/usr/bin/chromium"),
                             reason="chromium is not installed")


@browser
@pytest.mark.browser
def test_end_to_end_in_chromium(tmp_path):
    from playwright.sync_api import sync_playwright

    from browser import launch, step_counter, streamlit_app
    with streamlit_app() as url, sync_playwright() as p:
        b = launch(p)
        page = b.new_page(viewport={"width": 1500, "height": 1400})
        page.goto(url + "/?preset=digits-demo")
        page.wait_for_selector("text=DeepR Studio", timeout=60_000)
        assert step_counter(page) == 0
        page.get_by_role("button", name="Play").click()
        deadline = time.time() + 60
        while time.time() < deadline and step_counter(page) < 50:
            time.sleep(0.3)
        assert step_counter(page) >= 50
        page.wait_for_selector("img", timeout=30_000)  # the live charts are images while playing
        page.get_by_role("button", name="Pause").click()
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)  # interactive when paused
        # move the temperature slider with the keyboard and check the URL follows
        slider = page.locator('input[aria-label="Temperature T"]')
        assert "T=1e-06" in page.url
        time.sleep(2)  # let the rerun after Pause settle before touching the slider
        for _ in range(3):  # a key press that lands during a rerun can be dropped: retry
            slider.evaluate("el => el.focus()")
            page.keyboard.press("ArrowRight")  # one notch up: 1e-06 -> 3e-06
            deadline = time.time() + 10
            while time.time() < deadline and "T=1e-06" in page.url:
                time.sleep(0.3)
            if "T=1e-06" not in page.url:
                break
        # the session took it: the URL is written from the session's hyperparameters
        assert "T=3e-06" in page.url or "T=1e-05" in page.url
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        shot_dir = os.environ.get("DEEPR_SCREENSHOTS")
        if shot_dir:
            page.screenshot(path=os.path.join(shot_dir, "dashboard.png"), full_page=True)
        # the Compare page: Play all runs both methods to the step budget
        page.goto(url + "/compare?runs=deepr,rigl&steps=150&hidden=32&conn=0.1")
        page.wait_for_selector("#step-counter", timeout=60_000)
        assert page.locator("#step-counter").first.inner_text() == "0,0"
        page.get_by_role("button", name="Play all").click()
        deadline = time.time() + 60
        while time.time() < deadline and page.locator("#step-counter").first.inner_text() != "150,150":
            time.sleep(0.3)
        assert page.locator("#step-counter").first.inner_text() == "150,150"
        page.wait_for_selector("button:has-text('Play all')", timeout=30_000)  # both stopped
        page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
        b.close()


# -- the Compare page ---------------------------------------------------------------------------
COMPARE = f"""
import sys
sys.path.insert(0, {str(Path(MAIN).parents[1])!r})
if __name__ == "__main__":  # training processes re-import this script
    from app.routes import compare
    compare.render()
"""


def compare_app(query: dict) -> AppTest:
    at = AppTest.from_string(COMPARE, default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_compare_page_runs_methods_side_by_side_on_the_same_start():
    at = compare_app({"runs": "deepr,static,set", "conn": "0.1", "steps": "60", "r2_lr": "0.1"})
    runs = at.session_state["cmp_runs"]
    assert [r.config.algorithm for r in runs] == ["deepr", "static", "set"]
    assert runs[2].config.lr == 0.1 and runs[0].config.lr == 0.05
    first = [r.frame().layers[0]["active_pos"] for r in runs]
    assert all(np.array_equal(first[0], p) for p in first[1:])  # same seed: same initial mask
    at.button(key="c_step10").click().run()
    assert [r.frame().step for r in runs] == [10, 10, 10]
    at.button(key="c_play").click().run()
    deadline = time.time() + 60
    while time.time() < deadline and any(r.frame().playing for r in runs):
        time.sleep(0.2)
    assert [r.frame().step for r in runs] == [60, 60, 60]  # everyone stops at the budget
    at.run()
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 3
    q = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert q["runs"] == "deepr,static,set" and q["r2_lr"] == "0.1" and q["steps"] == "60"
    for r in runs:
        r.close()


def test_compare_page_rejects_a_bad_run_list():
    at = compare_app({"runs": "deepr,nope"})
    assert any("runs" in e.value for e in at.error)
    assert len(at.session_state["cmp_runs"]) == 3  # the default comparison instead
    for r in at.session_state["cmp_runs"]:
        r.close()


def test_url_hidden_sizes_with_a_per_layer_preset_keep_one_connectivity():
    cfg, ui = from_query({"preset": "digits-demo", "hidden": "100", "conn": "0.05"})
    assert not ui.errors and cfg.hidden == [100] and cfg.connectivity == [0.05]
    cfg, ui = from_query({"preset": "digits-demo", "hidden": "100"})
    assert not ui.errors and cfg.connectivity == [0.2]


def test_compare_run_settings_from_the_url_survive_the_sliders():
    # 2e-6 is not on the T slider's grid: showing it must not change it (nor restart the runs)
    at = compare_app({"runs": "deepr,soft-deepr", "r0_T": "2e-06", "r1_alpha": "0.001"})
    runs = at.session_state["cmp_runs"]
    assert runs[0].config.temperature == 2e-6 and runs[1].config.alpha == 1e-3
    at.run()
    assert at.session_state["cmp_gen"] == 1
    gen = at.session_state["cmp_gen"]
    at.select_slider(key=f"c_temperature1_{gen}").set_value(1e-5).run()  # moved: a new comparison
    runs = at.session_state["cmp_runs"]
    assert at.session_state["cmp_gen"] == 2 and runs[1].config.temperature == 1e-5
    assert runs[0].config.temperature == 2e-6
    for r in runs:
        r.close()


def test_a_dead_training_process_is_reported_and_can_be_started_again():
    at = app()
    at.button(key="step10").click().run()
    run = at.session_state["run"]
    run.process.kill()
    run.process.join(5)
    at.run()
    assert not at.exception
    assert any("ended unexpectedly" in e.value for e in at.error)
    at.button(key="restart").click().run()
    assert at.session_state["run"] is not run and frame(at).step == 0
    at.button(key="step10").click().run()
    assert frame(at).step == 10
