"""Public mode (app/public.py): each limit refused with a message naming it, server-side fields
never taken from visitors, a run= link of another browser read-only (with Fork), a full server
queues a new visitor, a run process over its memory limit ends with a message while the server
keeps serving, parked runs kept within a quota."""
import os

import pytest
from streamlit.testing.v1 import AppTest

from app import public
from app.state import DashboardState
from deepr_engine.run import checkpoint, parking
from deepr_engine.run.background import BackgroundSession
from deepr_engine.run.config import preset
from deepr_engine.run.session import TrainingSession

from test_app import MAIN, shown, state


@pytest.fixture
def public_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPR_PUBLIC", "1")
    monkeypatch.setenv("DEEPR_PARK_DIR", str(tmp_path / "lot"))
    public.settings.cache_clear()
    public.STARTS.clear()
    opened = []
    yield opened
    for at in opened:
        s = state(at)
        if s.run is not None and not s.read_only:
            s.run.close()
    public.settings.cache_clear()


def page(opened, query=None, visitor=None):
    """A page; `visitor` stands for another browser (AppTest has no cookies)."""
    at = AppTest.from_file(MAIN, default_timeout=120)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    if visitor:
        at.session_state["dashboard"] = DashboardState(visitor=visitor)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    opened.append(at)
    return at


def test_limits_are_named_settings_with_overrides(monkeypatch):
    monkeypatch.setenv("DEEPR_PUBLIC", "yes")
    monkeypatch.setenv("DEEPR_MAX_UNITS", "64")
    public.settings.cache_clear()
    s = public.settings()
    assert s.public and s["max_units"] == 64 and s["max_positions"] == public.LIMITS["max_positions"].default
    monkeypatch.setenv("DEEPR_MAX_UNITS", "many")
    public.settings.cache_clear()
    with pytest.raises(ValueError, match="max_units"):
        public.settings()
    public.settings.cache_clear()


@pytest.mark.parametrize("changes, limit", [
    ({"hidden": [4096, 4096]}, "max_units"),
    ({"hidden": [8] * 7, "connectivity": [0.5]}, "max_layers"),
    ({"dataset": "mnist", "hidden": [1000, 1000, 900], "connectivity": [0.1]}, "max_positions"),
    ({"dataset": "cifar10", "hidden": [512], "connectivity": [0.1]}, "max_layer_positions"),
])
def test_each_size_limit_names_itself_before_anything_is_built(public_mode, changes, limit):
    with pytest.raises(ValueError, match=f"limit {limit}\\)"):
        public.check_config(preset("digits-demo").replace(**changes))


def test_speed_is_capped_and_nothing_is_limited_locally(monkeypatch):
    monkeypatch.delenv("DEEPR_PUBLIC", raising=False)
    public.settings.cache_clear()
    public.check_config(preset("wide-sparse"))     # locally: everything as before
    assert public.speed(0) == 0 and public.run_options() == {}
    monkeypatch.setenv("DEEPR_PUBLIC", "1")
    public.settings.cache_clear()
    assert public.speed(0) == public.speed(10**6) == 400 and public.speed(50) == 50
    public.settings.cache_clear()


def test_a_url_over_a_limit_says_which_and_a_default_run_starts(public_mode):
    at = page(public_mode, {"hidden": "4096,4096"})
    assert any("limit max_units" in m for m in shown(at.error))
    assert state(at).run.config.hidden == preset("digits-demo").hidden


def test_server_fields_from_an_upload_are_refused(public_mode):
    at = page(public_mode)
    s = state(at)
    data = checkpoint.to_bytes(TrainingSession(preset("spiral-demo").replace(data_root="/tmp/elsewhere")))
    before = s.run.run_id
    assert not s.load(data)
    assert "data_root" in s.upload_error and s.run.run_id == before


def test_another_browsers_run_link_is_read_only_with_fork(public_mode):
    owner = page(public_mode)
    rid = state(owner).run.run_id
    other = page(public_mode, {"run": rid}, visitor="another browser")
    s = state(other)
    assert s.run.run_id == rid and s.read_only
    assert not [b for b in other.button if b.key in ("play", "reset", "step10")]
    other.button(key="fork").click().run()
    assert s.run.run_id != rid and not s.read_only
    assert any(b.key == "play" for b in other.button)
    assert state(owner).run.alive            # the owner's run went on


def test_a_full_server_queues_a_new_visitor(public_mode, monkeypatch):
    monkeypatch.setenv("DEEPR_MAX_LIVE_RUNS", "1")
    public.settings.cache_clear()
    first = page(public_mode)
    assert state(first).run is not None
    second = page(public_mode, visitor="another browser")
    assert state(second).run is None
    assert any("number 1 in the queue" in m and "max_live_runs" in m for m in shown(second.info))


def test_a_browsers_identity_survives_the_cookies_new_mask_on_every_page_load():
    # two page loads of one chromium context (read off the app's server): one token, two masks
    first = "2|ab0d37c6|d80966074fc2e8442534c431a5ed108d|1796227824"
    second = "2|f864ee8d|8b60bf4c1cab310f765d1d7af684c9c6|1796227824"
    other = "2|ab0d37c6|d80966074fc2e8442534c431a5ed108e|1796227824"   # another token
    assert first != second and public.cookie_identity(first) == public.cookie_identity(second)
    assert public.cookie_identity(other) != public.cookie_identity(first)
    assert public.cookie_identity("2|zz|11|1") != public.cookie_identity("2|zz|12|1")   # not hex: as text


def test_a_browsers_run_count_is_the_servers_over_an_hour_and_stays_bounded():
    log = public.StartLog(window_s=3600, max_browsers=3)
    log.add("a", 2, now=0.0)
    log.add("a", 1, now=100.0)
    assert log.count("a", now=200.0) == 3
    assert log.count("a", now=3650.0) == 1     # the first two started more than an hour ago
    assert log.count("a", now=3800.0) == 0
    for b in "bcde":
        log.add(b, now=10.0 + ord(b))
    assert log.count("b", now=200.0) == 0 and log.count("e", now=200.0) == 1   # least recent went


def test_a_browsers_runs_count_in_all_its_tabs_and_a_reload_does_not_reset_them(public_mode, monkeypatch):
    monkeypatch.setenv("DEEPR_MAX_RUNS_PER_SESSION", "2")
    public.settings.cache_clear()
    first = page(public_mode, visitor="browser v")
    again = page(public_mode, visitor="browser v")          # a reload or a second tab: run 2
    assert state(first).run is not None and state(again).run is not None
    third = page(public_mode, visitor="browser v")          # run 3 of this browser: refused
    assert state(third).run is None
    assert any("as many runs as this public demo allows in an hour" in m and
               "limit max_runs_per_session" in m for m in shown(third.info))
    assert not any("queue" in m for m in shown(third.info))  # it keeps no one else waiting
    other = page(public_mode, visitor="browser w")           # another browser is not affected
    assert state(other).run is not None
    assert public.STARTS.count("browser v") == 2 and public.STARTS.count("browser w") == 1


def test_a_run_over_its_memory_limit_ends_with_a_message_and_the_server_goes_on(public_mode):
    big = preset("digits-demo").replace(hidden=[3000, 3000])   # ~9M positions: > 100 MB
    with pytest.raises(ValueError, match="run_memory_mb = 40 MB"):
        BackgroundSession(big, memory_mb=40, memory_name="run_memory_mb")
    ok = BackgroundSession("spiral-demo", memory_mb=400, memory_name="run_memory_mb")
    try:
        assert ok.step(5) == 5
    finally:
        ok.close()


def test_parked_runs_are_kept_within_the_quota_oldest_first(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPR_PARK_DIR", str(tmp_path / "lot"))
    for i, rid in enumerate(("a" * 32, "b" * 32, "c" * 32)):
        p = parking.checkpoint_path(rid)
        p.write_bytes(b"x" * 2**20)
        os.utime(p, (1000 + i, 1000 + i))
    assert parking.clean(now=2000, quota_mb=2.5) == ["a" * 32]
    assert "limit park_quota_mb = 2 MB" in parking.gone_reason("a" * 32) or \
        "park_quota_mb" in parking.gone_reason("a" * 32)


def test_a_crash_shows_no_traceback_in_public_mode(public_mode):
    import streamlit as st
    at = page(public_mode)
    assert st.get_option("client.showErrorDetails") == "none"
    st.set_option("client.showErrorDetails", "full")
