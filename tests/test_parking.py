"""Parked runs: a private folder, touch keeps an open tab's runs, expiry and every removal say
why, park() frees the process and the run comes back, a crashed process restarts from its last
park and says how many steps were lost."""
import os
import stat
import time

import pytest

from deepr_engine.run import parking
from deepr_engine.run.background import BackgroundSession

from helpers import wait_until


@pytest.fixture(autouse=True)
def lot(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPR_PARK_DIR", str(tmp_path / "lot"))
    monkeypatch.setenv("DEEPR_PARK_MAX_AGE_S", "3600")
    return tmp_path / "lot"


def fake_park(run_id: str, age_s: float) -> None:
    p = parking.checkpoint_path(run_id)
    p.write_bytes(b"x")
    os.utime(p, (time.time() - age_s,) * 2)


def test_the_folder_is_private_and_ids_are_checked(lot):
    assert stat.S_IMODE(parking.root().stat().st_mode) == 0o700
    assert not parking.valid_id("../../etc/passwd") and parking.valid_id("a" * 32)
    assert parking.gone_reason("../x").startswith("no run with this id")


def test_expiry_spares_touched_runs_and_leaves_the_reason():
    old, kept = "a" * 32, "b" * 32
    fake_park(old, 7200), fake_park(kept, 7200)
    parking.touch([kept])                       # an open tab holds it
    assert parking.clean() == [old]
    assert not parking.checkpoint_path(old).exists() and parking.checkpoint_path(kept).exists()
    assert "expired at" in parking.gone_reason(old) and "kept 1 h" in parking.gone_reason(old)


def test_a_record_from_another_server_reads_as_a_restart(monkeypatch):
    rid = "c" * 32
    parking.note(rid, summary="x")
    monkeypatch.setitem(parking.BOOT, "id", "another-server")
    assert "server restarted" in parking.gone_reason(rid)


def test_bad_max_age_names_the_setting(monkeypatch):
    monkeypatch.setenv("DEEPR_PARK_MAX_AGE_S", "soon")
    with pytest.raises(ValueError, match="DEEPR_PARK_MAX_AGE_S"):
        parking.max_age_s()


def test_park_frees_the_process_and_the_run_comes_back_where_it_was():
    r = BackgroundSession("spiral-demo")
    try:
        r.step(23)
        first = r.process
        r.park()
        assert not first.is_alive() and os.path.exists(r.park_path)
        assert BackgroundSession.reattach(r.run_id) is r
        assert r.frame().step == 23 and r.alive and r.restart_note == ""
    finally:
        r.close()
    assert "closed at" in parking.gone_reason(r.run_id)
    assert BackgroundSession.reattach(r.run_id) is None


def test_a_killed_process_restarts_from_its_last_park_and_says_what_was_lost():
    r = BackgroundSession("spiral-demo")
    try:
        r.step(30)
        r.park()                         # the last park (a training run parks every PARK_EVERY_S)
        r.step(12)
        assert r.frame().step == 42
        r.process.kill()
        r.process.join(5)
        assert r.frame().step == 30
        assert "exit code -9" in r.restart_note and "12 steps lost" in r.restart_note
    finally:
        r.close()


def test_a_training_run_parks_on_its_own_every_park_every_s():
    r = BackgroundSession("spiral-demo", steps_per_frame=5, max_steps_per_second=200, park_every_s=0.5)
    try:
        r.play()
        assert wait_until(lambda: os.path.exists(r.park_path), timeout=20)
    finally:
        r.close()


def test_a_process_that_dies_during_a_request_keeps_its_park_and_comes_back():
    import threading
    r = BackgroundSession("spiral-demo")
    try:
        r.step(30)
        r.park()
        r.frame()                                    # back in a new process; its park stays
        threading.Timer(1.0, r.process.kill).start()  # dies while a long request runs
        with pytest.raises(RuntimeError, match="ended unexpectedly"):
            r.step(10**6)
        assert os.path.exists(r.park_path)            # not deleted as if the run were closed
        assert r.frame().step == 30 and "exit code -9" in r.restart_note
    finally:
        r.close()
