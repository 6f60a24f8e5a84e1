"""A tab's runs are a history: a preset switch parks the run it replaces (its process ends) and
the Runs list reopens it at its step; Back (the URL's run=) follows; Fork copies the run at its
step; a run that is gone says why. AppTest (the browser flows are in test_browser_runs.py)."""
import pytest
from streamlit.testing.v1 import AppTest

from deepr_engine.run import parking
from deepr_engine.run.background import BackgroundSession

from test_app import MAIN, app, shown, state


@pytest.fixture(autouse=True)
def lot(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPR_PARK_DIR", str(tmp_path / "lot"))


@pytest.fixture
def at():
    at = app()
    yield at
    s = state(at)
    for rid in s.history.runs:
        run = BackgroundSession.reattach(rid)
        if run is not None:
            run.close()


def open_buttons(at):
    return [b for b in at.button if str(b.key).startswith("open_")]


def test_a_preset_switch_keeps_the_run_and_the_runs_list_reopens_it(at):
    s = state(at)
    first = s.run
    at.button(key="step10").click().run()
    at.selectbox(key=f"preset{s.gen}").set_value("spiral-demo").run()
    assert s.run.run_id != first.run_id and not first.alive      # parked: no process
    assert parking.checkpoint_path(first.run_id).exists()
    assert s.history.runs == [s.run.run_id, first.run_id]
    (button,) = open_buttons(at)
    assert "step 10" in button.label and "digits" in button.label
    button.click().run()
    assert s.run.run_id == first.run_id and s.frame.step == 10
    assert at.query_params["run"] == [first.run_id] or at.query_params["run"] == first.run_id


def test_the_urls_run_is_followed_like_back_and_forward(at):
    s = state(at)
    first = s.run.run_id
    at.button(key="step1").click().run()
    at.selectbox(key=f"preset{s.gen}").set_value("spiral-demo").run()
    second = s.run.run_id
    at.query_params["run"] = first            # what Back does to the URL
    at.run()
    assert s.run.run_id == first and s.frame.step == 1
    at.query_params["run"] = second           # Forward
    at.run()
    assert s.run.run_id == second


def test_fork_starts_a_new_run_at_this_step_and_keeps_the_original(at):
    s = state(at)
    at.button(key="step10").click().run()
    parent = s.run.run_id
    at.button(key="fork").click().run()
    assert s.run.run_id != parent and s.frame.step == 10
    assert parking.record(s.run.run_id)["fork"] == {"parent": parent, "step": 10}
    assert any("Forked at step 10" in m for m in shown(at.info))
    assert "fork at step 10" not in open_buttons(at)[0].label and "step 10" in open_buttons(at)[0].label


def test_a_gone_run_says_why(at):
    s = state(at)
    first = s.run.run_id
    at.selectbox(key=f"preset{s.gen}").set_value("spiral-demo").run()
    parking.remove(first, "its parked state expired at 2026-12-02 10:00 UTC")
    fresh = AppTest.from_file(MAIN, default_timeout=120)
    fresh.query_params["run"] = first
    fresh.run()
    assert any("expired at 2026-12-02 10:00 UTC" in m for m in shown(fresh.info))
    state(fresh).run.close()


def test_replay_shows_a_steps_events_as_the_engine_made_them(at):
    """The replayed step's pruned / revived connections are the engine's last_events of that
    step (an independent session with the same setup: CPU runs repeat exactly)."""
    import numpy as np

    from deepr_engine.run.session import TrainingSession
    from app.charts.palette import is_probe
    s = state(at)
    at.button(key="step10").click().run()
    twin = TrainingSession(s.run.info.config)
    twin.step(10)
    rep = s.run.replay(10)
    probes = died = revived = 0
    for layer, ev in zip(rep["layers"], twin.optimizer.last_events):
        assert np.array_equal(layer["pruned"], ev["pruned"].numpy())
        assert np.array_equal(layer["activated"], ev["activated"].numpy())
        if len(ev["pruned"]):
            assert np.allclose(layer["theta_after"], ev["theta_after"].numpy())
        assert len(layer["theta_after"]) == len(layer["pruned"]) and (layer["theta_after"] < 0).all()
        assert (layer["theta_before"] >= 0).all()
        probe = is_probe(layer["pruned_age"])
        probes, died, revived = probes + probe.sum(), died + (~probe).sum(), revived + len(layer["activated"])
    assert revived > 0
    caption = next(c.value for c in at.caption if "replay-counts" in c.value)
    assert f"{died} pruned (established), {probes} probes, {revived} revived" in caption
    assert rep["steps"][-1] == 10 and at.select_slider(key=f"replay{s.gen}_10").value == 10
    at.select_slider(key=f"replay{s.gen}_10").set_value(9).run()
    assert "step 9:" in next(c.value for c in at.caption if "replay-counts" in c.value)
