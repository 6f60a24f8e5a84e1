"""The Compare page: forks of one run from the same step (compare_state.open_forks), the table
at one step for every run, each method's K tolerance, and the Sweep page's link to the
Dashboard (the trial's whole setup in the URL)."""
import dataclasses
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.compare_state import CompareState, fork_label
from app.routes import compare as page
from app.urlstate import compare_from_query, from_query, holdout_note, matching_preset, to_query, UISettings
from deepr_engine.run import registry, sweep
from deepr_engine.run.background import BackgroundSession
from deepr_engine.run.config import preset
from deepr_engine.run.session import TrainingSession
from deepr_engine.run.views import run_view

ROOT = Path(__file__).resolve().parents[1]


def query(at) -> dict:
    return {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}


@pytest.fixture
def closing():
    """Compare states (and parent runs) started by a test end with it."""
    things = []
    yield things.append
    for x in things:
        runs = x.runs if isinstance(x, CompareState) else [x]
        for r in runs:
            r.close()


# -- forks ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_forks_start_at_the_parents_step_and_the_unchanged_one_continues_it_bit_for_bit(closing):
    parent = BackgroundSession(preset("spiral-demo"))
    closing(parent)
    parent.step(30)
    t = parent.hyperparams()["temperature"]
    s = CompareState()
    closing(s)
    s.start_forks(parent.checkpoint(), "temperature", [t, t * 100, t * 1e4], "spiral")
    frames = s.fetch()
    assert [f.step for f in frames] == [30, 30, 30] and s.forks.step == 30
    assert [f.hyperparams["temperature"] for f in frames] == [t, t * 100, t * 1e4]
    assert s.labels() == [fork_label("temperature", v) for v in (t, t * 100, t * 1e4)]
    assert s.labels()[0] == f"T = {t:.3g}".replace("e-0", "e-")
    before = [f.layers[0].active_pos for f in frames]
    assert all(np.array_equal(before[0], b) for b in before[1:])   # one state at the fork
    for r in [parent, *s.runs]:
        r.step(25)
    views = [r.snapshot(events=False) for r in [parent, *s.runs]]
    same = [all(np.array_equal(a.theta, b.theta) for a, b in zip(views[0].layers, v.layers))
            for v in views[1:]]
    assert same == [True, False, False]   # only the value that changed makes a difference
    assert views[0].metrics == views[1].metrics
    # bad requests name the field and keep the comparison
    runs = list(s.runs)
    with pytest.raises(ValueError, match="alpha"):
        s.start_forks(parent.checkpoint(), "alpha", [1e-3, -1.0])
    with pytest.raises(ValueError, match="fork over: one of temperature"):
        s.start_forks(parent.checkpoint(), "seed", [1, 2])
    with pytest.raises(ValueError, match="2 to 4"):
        s.start_forks(parent.checkpoint(), "lr", [0.1])
    assert s.runs == runs and all(r.alive for r in runs)
    # K: one connectivity target for every layer
    s.start_forks(parent.checkpoint(), "connectivity", [0.1, 0.3], "spiral")
    assert [f.config.connectivity for f in s.fetch()] == [[0.1], [0.3]]
    assert s.labels() == ["K = 0.1", "K = 0.3"] and not any(r.alive for r in runs)


FORKS = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
if __name__ == "__main__":  # training processes re-import this script
    import streamlit as st
    from app.compare_state import open_forks
    from app.routes import compare
    from deepr_engine.run.background import BackgroundSession
    if "parent" not in st.session_state:
        parent = st.session_state["parent"] = BackgroundSession("spiral-demo")
        parent.step(40)
        t = parent.hyperparams()["temperature"]
        open_forks(parent, "temperature", [t, 1e-6, 1e-4], "Deep R on spiral")
    compare.render()
"""


@pytest.mark.slow
def test_compare_page_shows_forks_with_their_labels_and_the_fork_point_on_every_chart(closing):
    at = AppTest.from_string(FORKS, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    s = at.session_state["compare"]
    closing(s)
    closing(at.session_state["parent"])
    rows = at.dataframe[0].value
    assert list(rows["run"])[1:] == ["T = 1e-6", "T = 0.0001"] and list(rows["step now"]) == [40] * 3
    charts = at.get("plotly_chart")
    assert len(charts) == 4
    for c in charts:   # a dotted vertical line at the fork step, x axis in steps
        spec = c.proto.spec.replace(" ", "")
        assert '"type":"line"' in spec and '"x0":40' in spec and '"dash":"dot"' in spec
        assert '"text":"step"' in spec
    assert any("Forks of Deep R on spiral at step 40" in i.value.replace("&#44;", ",").replace("&#58;", ":")
               .replace("&#40;", "(").replace("&#41;", ")") for i in at.info)
    at.button(key="c_step10").click().run()
    assert [f.step for f in s.fetch()] == [50] * 3
    at.button(key="c_reset").click().run()   # the forks again, from their fork point
    assert [f.step for f in s.fetch()] == [40] * 3 and s.forks.step == 40


def test_runs_of_one_method_are_named_by_their_own_values():
    from app.urlstate import RunSpec
    s = CompareState(specs=[RunSpec("deepr", {"temperature": 1e-7}), RunSpec("deepr", {}),
                            RunSpec("set", {"lr": 0.1})])
    assert s.labels() == ["Deep R, T = 1e-7", "Deep R", registry.label("set")]
    assert [fork_label("alpha", 3e-4), fork_label("connectivity", 0.25), fork_label("lr", 1.5e12)] == \
        ["alpha = 0.0003", "K = 0.25", "lr = 1.5e12"]


# -- the table at one step ------------------------------------------------------------------------
def test_the_table_compares_the_runs_at_the_smallest_step_they_all_reached():
    cfg = preset("spiral-demo").replace(eval_every=10, steps=200)
    short, long_ = TrainingSession(cfg), TrainingSession(cfg)
    short.step(25)
    long_.step(40)
    a, b = run_view(short), run_view(long_)
    assert page.equal_step([a, b], 200) == (25, "the smallest step all runs have reached")
    assert page.equal_step([a, b], 25) == (25, "the step budget (25)")
    # the longer run's numbers at step 25 are the shorter one's now (same seed, same steps)
    assert page.pruned_until(b, 25) == a.telemetry.total_pruned > 0
    assert page.pruned_until(b, 40) == b.telemetry.total_pruned > a.telemetry.total_pruned
    assert page.at_step(b.telemetry.series["test_acc"], 25) == a.metrics["test_acc"]
    assert page.smoothed_loss(b, 25) == pytest.approx(page.smoothed_loss(a))
    assert np.array_equal(page.at_step(b.telemetry.active, 25), [l.k for l in a.layers])
    assert np.isnan(page.at_step(b.telemetry.series["test_acc"], -1))


def _with_k(view, ks):
    return dataclasses.replace(view, layers=[dataclasses.replace(l, k=k) for l, k in zip(view.layers, ks)])


@pytest.mark.parametrize("algorithm,off,flagged", [
    ("soft-deepr", 0.20, False), ("soft-deepr", -0.20, False), ("soft-deepr", 0.30, True),
    ("soft-deepr", -0.30, True), ("deepr", 0.0, False), ("deepr", 0.02, True),
    ("l1", 0.04, False), ("l1", 0.10, True), ("l1", -0.02, True), ("dense", 0.5, False)])
def test_each_method_is_flagged_only_beyond_its_k_tolerance(algorithm, off, flagged):
    session = TrainingSession(preset("spiral-demo").replace(algorithm=algorithm, hidden=[40, 40],
                                                            connectivity=[0.3]))
    view = run_view(session)
    from app.widgets import k_targets
    targets = k_targets(view)
    moved = _with_k(view, [round(t * (1 + off)) for t in targets])
    flag = page.target_flag(moved)
    assert bool(flag) == flagged, flag
    text = page.tolerance_text(view)
    expected = {"soft": "±25%", "active": "exact K", "floor": "+5%", "none": "no K"}
    assert expected[registry.get(algorithm).k_meaning] in text
    if flagged:
        assert flag.startswith("⚠ target missed") and text in flag


# -- the Sweep page's link ------------------------------------------------------------------------
def test_a_sweep_trials_link_carries_its_whole_setup_and_the_holdout():
    from app.routes import sweep as sweep_page
    base = preset("digits-demo").replace(steps=300, lr_decay=0.95, eval_every=50)
    trials = sweep.build_trials(base, {"temperature": [1e-6]},
                                dict([sweep.parse_random("lr=log:0.01:1")]), samples=2, seeds=2)
    for trial in trials:
        cfg = trial.config
        url = sweep_page.dashboard_url(cfg.to_dict(), "digits-demo")
        assert url.startswith("./?")   # the Dashboard: the app's root, not /dashboard
        q = dict(parse_qsl(urlparse(url).query))
        assert q["val_fraction"] == "0.2" and "data_root" not in q and "device" not in q
        back, ui = from_query(q)
        assert not ui.errors and back == cfg, (back.to_dict(), cfg.to_dict())
        assert holdout_note(back) == "trained on 80%, 20% held out for validation"
        assert matching_preset(back) is None
    assert holdout_note(preset("digits-demo")) == "" and matching_preset(preset("digits-demo")) == "digits-demo"
    # a setting equal to the preset's stays out of the dashboard's usual URLs
    assert "val_fraction" not in to_query(preset("digits-demo"), UISettings())


# -- moved from test_app.py (the table's step column is "step now") -------------------------------
COMPARE = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
if __name__ == "__main__":  # training processes re-import this script
    from app.routes import compare
    compare.render()
"""


def compare_app(query_: dict) -> AppTest:
    at = AppTest.from_string(COMPARE, default_timeout=120)
    for k, v in query_.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_compare_page_runs_methods_side_by_side_and_flags_a_missed_target(closing):
    at = compare_app({"runs": "deepr,set,l1", "conn": "0.1", "steps": "60", "r1_every": "20"})
    s = at.session_state["compare"]
    closing(s)
    assert [r.config.algorithm for r in s.runs] == ["deepr", "set", "l1"]
    assert s.runs[1].config.update_every == 20
    first = [f.layers[0].active_pos for f in s.frames[:2]]
    assert np.array_equal(first[0], first[1])  # same seed: same initial mask
    keys = {x.key for x in at.get("number_input")} | {x.key for x in at.get("slider")}
    assert f"c_update_every1_{s.gen}" in keys and f"c_drop_fraction1_{s.gen}" in keys
    at.button(key="c_play").click().run()
    deadline = time.time() + 60
    while time.time() < deadline and any(r.frame().playing for r in s.runs):
        time.sleep(0.2)
    at.run()
    rows = at.dataframe[0].value
    assert list(rows["step now"]) == [60, 60, 60]
    assert list(rows["run"]) == [registry.label(a) for a in ("deepr", "set", "l1")]
    assert "train loss (smoothed)" in rows.columns
    assert rows["K status"][2].startswith("⚠ target missed") and rows["K status"][0] == "ok"
    assert "floor" in rows["K tolerance"][2] and rows["K tolerance"][0] == "exact K every step"
    assert any("Compared at <span id='equal-step'>60</span>: the step budget" in c.value for c in at.caption)
    q = query(at)
    assert q["runs"] == "deepr,set,l1" and q["r1_every"] == "20" and q["steps"] == "60"
    assert any('"type":"log"' in c.proto.spec.replace(" ", "")
               for c in at.get("plotly_chart"))


def test_compare_page_rejects_a_bad_run_list(closing):
    at = compare_app({"runs": "deepr,nope"})
    closing(at.session_state["compare"])
    assert any("runs" in e.value for e in at.error)
    assert len(at.session_state["compare"].runs) == 3
    assert compare_from_query({"runs": "deepr,nope"})[2].errors


@pytest.mark.slow
def test_a_trial_reopened_from_its_link_reaches_the_tables_numbers():
    """The Dashboard's run of a trial's URL (steps in frames of 10, tracked connections, its
    own evaluations) ends where the trial did: same test and validation accuracy."""
    from deepr_engine.run.trials import run_trial
    trial = sweep.build_trials(preset("spiral-demo").replace(steps=150, eval_every=50),
                               {"lr": [0.2]})[0]
    row = run_trial(trial.config.to_dict())
    cfg, ui = from_query(to_query(trial.config, UISettings("spiral-demo")))
    assert not ui.errors and cfg.val_fraction == 0.2
    s = TrainingSession(cfg)
    s.track_default()
    while s.step_count < cfg.steps:
        s.step(10)
    ev = s.evaluate()
    assert (ev["test_acc"], ev["val_acc"]) == (row["test_acc"], row["val_acc"])
    assert run_view(s).metrics["test_acc"] == row["test_acc"]
