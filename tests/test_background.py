"""BackgroundSession: a training session in its own process, steered over a pipe."""
import gc
import os
import time

import numpy as np
import pytest

from deepr_engine.run.background import BackgroundSession
from deepr_engine.run.config import preset

from helpers import wait_until

pytestmark = pytest.mark.slow  # every test starts training processes




@pytest.fixture
def run():
    r = BackgroundSession("spiral-demo")
    yield r
    r.close()


def test_requests_reach_the_session_and_frames_describe_it(run):
    assert run.step(25) == 25
    f = run.frame()
    assert f.step == 25 and not f.playing
    for layer in f.layers:  # weight-shaped arrays rebuilt from the compact form
        assert layer.active_mask().sum() == layer.k == len(layer.active_pos)
        assert np.all(layer.weight()[~layer.active_mask()] == 0)
        assert layer.theta is None  # a frame is compact: no full-size arrays
    run.set_hyperparams(temperature=1e-4, k=[10, 20, 5])
    f = run.frame()
    assert f.hyperparams["temperature"] == 1e-4 and f.hyperparams["k"] == [10, 20, 5]
    assert sorted(c[1] for c in f.telemetry.changes) == ["k", "temperature"]
    assert run.info.is_2d and run.info.points[0].shape[1] == 2


def test_bad_values_raise_in_the_owner_and_change_nothing(run):
    before = run.hyperparams()
    with pytest.raises(ValueError, match="lr"):
        run.set_hyperparams(lr=-1.0, temperature=1e-3)
    assert run.hyperparams() == before
    with pytest.raises(ValueError, match="cannot change"):
        run.set_hyperparams(hidden=[3])
    with pytest.raises(FileNotFoundError):
        BackgroundSession(preset("paper-mnist").replace(data_root="/nonexistent"))


def test_play_trains_between_requests_and_pause_stops_it(run):
    assert run.play()
    assert wait_until(lambda: run.frame().step >= 200)
    run.pause()
    stopped = run.frame().step
    time.sleep(0.5)
    assert run.frame().step == stopped


def test_a_run_nobody_asks_about_parks_and_comes_back_unchanged():
    r = BackgroundSession("spiral-demo", idle_timeout=1.0)
    try:
        r.play()
        assert wait_until(lambda: r.frame().step >= 50)
        first = r.process
        assert wait_until(lambda: not first.is_alive(), timeout=15)  # silence: it parks and exits
        assert os.path.exists(r.park_path)
        f = r.frame()  # the next request brings it back from the parking checkpoint
        assert r.restarts == 1 and r.alive and not f.playing and f.step >= 50
        assert r.step(5) == 5 and r.frame().step == f.step + 5
        assert "test_acc" in r.metrics_csv()
    finally:
        r.close()


def test_closing_or_dropping_the_owner_ends_the_process():
    r = BackgroundSession("spiral-demo")
    p = r.process
    r.close()
    assert wait_until(lambda: not p.is_alive(), timeout=5)
    r = BackgroundSession("spiral-demo")
    p = r.process
    r.play()
    del r
    gc.collect()
    assert wait_until(lambda: not p.is_alive(), timeout=5)


def test_checkpoint_bytes_start_an_identical_run(run):
    run.step(30)
    data = run.checkpoint()
    twin = BackgroundSession(data)
    try:
        a, b = run.frame(), twin.frame()
        assert a.step == b.step == 30
        assert all(np.array_equal(x.active_pos, y.active_pos) for x, y in zip(a.layers, b.layers))
        run.step(10), twin.step(10)
        assert run.frame().metrics == twin.frame().metrics
    finally:
        twin.close()
    with pytest.raises(ValueError, match="safetensors"):
        BackgroundSession(b"not a checkpoint")


def test_a_killed_process_raises_a_clear_error_not_a_hang():
    r = BackgroundSession("spiral-demo")
    r.process.kill()
    r.process.join(5)
    with pytest.raises(RuntimeError, match="ended unexpectedly"):
        r.frame()
    with pytest.raises(RuntimeError, match="ended unexpectedly"):
        r.step(1)
    r.close()


def test_a_dropped_run_parks_and_is_reattached_by_its_id():
    r = BackgroundSession("spiral-demo")
    run_id = r.run_id
    assert BackgroundSession.reattach(run_id) is r  # alive in this process: the same owner
    r.step(17)
    process, park = r.process, r.park_path
    del r
    gc.collect()  # the owner is gone (a closed browser session): the run parks, not ends
    assert not process.is_alive() and os.path.exists(park)
    back = BackgroundSession.reattach(run_id)
    try:
        assert back is not None and back.run_id == run_id and back.frame().step == 17
    finally:
        back.close()
    assert BackgroundSession.reattach(run_id) is None  # closed for good
    assert BackgroundSession.reattach("../../etc/passwd") is None
