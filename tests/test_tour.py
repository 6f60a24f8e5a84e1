"""The guided tour (app/tour.py, assets/tour.md): the shipped script, its parser, the settings at
each stop (going back puts earlier values back), and a walk through the dashboard with
Streamlit's AppTest (the tour changes the run and the sidebar shows it; leaving keeps the run)."""
from __future__ import annotations

from pathlib import Path

import pytest

from app import tour
from deepr_engine.run.config import preset

ROOT = Path(__file__).resolve().parents[1]


def test_the_shipped_tour_plays_2_to_3_minutes_on_the_default_preset():
    stops = tour.load()
    base = preset(tour.DEFAULT_PRESET)
    assert 120 <= tour.duration(stops) <= 180
    assert stops[0].do == "pause" and stops[1].do == "play"
    text = " ".join(s.caption for s in stops)
    for words in ("√(2·lr·T)·ν", "lr·α", "probe"):      # tied to the update equation
        assert words in text
    changes = {name: (s, v) for s in stops for name, v in s.sets}
    assert changes["temperature"][1] > base.temperature            # raise T
    assert changes["alpha"][1] > base.alpha                        # raise alpha
    assert all(a < b for a, b in zip(changes["connectivity"][1][:2], base.connectivity[:2]))  # lower K
    for stop, _ in changes.values():
        assert "What to watch" in " ".join(stop.caption.split()) and stop.do == "play"
    final = tour.settings_at(stops, len(stops) - 1, base)
    base.replace(**{k: list(v) if isinstance(v, tuple) else v for k, v in final.items()})  # valid values


def test_settings_at_a_stop_hold_from_there_on_and_go_back():
    stops = tour.parse("## a\ndo: play\n\nfirst\n\n## b\nset: temperature=1e-4\nseconds: 3\n\nsecond\n"
                       "## c\nset: alpha=0.01\nset: temperature=1e-3\n\nthird\n")
    base = preset("digits-demo")
    assert tour.settings_at(stops, 0, base) == {"temperature": base.temperature, "alpha": base.alpha}
    assert tour.settings_at(stops, 1, base) == {"temperature": 1e-4, "alpha": base.alpha}
    assert tour.settings_at(stops, 2, base) == {"temperature": 1e-3, "alpha": 0.01}
    assert stops[1].seconds == 3 and stops[0].do == "play" and stops[2].caption == "third"


@pytest.mark.parametrize("text, words", [
    ("## a\ndo: jump\n\nx", "do must be play or pause"),
    ("## a\nset: batch_size=3\n\nx", "field one of"),
    ("## a\nset: temperature=hot\n\nx", "needs a number"),
    ("## a\nseconds: 0\n\nx", r"seconds must be in \[1, 600\]"),
    ("## a\nwait 3\n\nx", "a setting line is"),
    ("## a\ndo: play\n", "no caption"),
    ("no stops here", "no stops"),
])
def test_a_bad_tour_file_is_refused_naming_the_stop_and_key(text, words):
    with pytest.raises(ValueError, match=words):
        tour.parse(text)


def test_the_tour_in_the_dashboard_back_next_leave():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.query_params["preset"] = "spiral-demo"   # the tour starts a run of the default preset
    at.run()
    at.button(key="tour_start").click().run()
    s = at.session_state["dashboard"]
    try:
        t = at.session_state["tour"]
        assert t.active and t.stop == 0 and s.run.config.dataset == preset(tour.DEFAULT_PRESET).dataset
        raise_t = next(i for i, st in enumerate(t.stops) if dict(st.sets).get("temperature"))
        t.stop, t.pending = raise_t - 1, True   # as if Next had been pressed up to the stop before
        at.run()
        at.button(key="tour_next").click().run()
        want = dict(t.stops[raise_t].sets)["temperature"]
        assert s.run.hyperparams()["temperature"] == want
        assert at.session_state[f"temperature{s.gen}"] == want          # the sidebar shows it
        at.button(key="tour_back").click().run()
        assert s.run.hyperparams()["temperature"] == preset(tour.DEFAULT_PRESET).temperature
        run_id = s.run.run_id
        at.button(key="tour_leave").click().run()
        assert not at.session_state["tour"].active and s.run.run_id == run_id
        assert not at.exception
    finally:   # the runs' processes end with the test
        s.run.close()
