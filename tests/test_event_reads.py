"""Reads that take nothing: the rewiring events carry a sequence number and every reader (the
live feed, the status line, a second tab, a checkpoint) asks for the events after its own
cursor, so all of them see every event (telemetry.EventRing, views.run_view)."""
from __future__ import annotations

import numpy as np

from deepr_engine.run import checkpoint
from deepr_engine.run.config import preset
from deepr_engine.run.session import TrainingSession
from deepr_engine.run.telemetry import EventRing
from deepr_engine.run.views import run_view


def _session() -> TrainingSession:
    return TrainingSession(preset("digits-demo").replace(temperature=1e-4, alpha=1e-2))


def _events(views):
    """Per layer every (pruned, age, activated) event of the views, in order."""
    out = []
    for i in range(len(views[0].layers)):
        out.append({k: np.concatenate([getattr(v.layers[i], k) for v in views]).tolist()
                    for k in ("pruned", "pruned_age", "activated")})
    return out


def test_two_readers_at_different_paces_each_see_every_event():
    s = _session()
    fast = slow = run_view(s, events=False).events_cursor
    first = s.telemetry.total_pruned
    fast_views, slow_views = [], []
    for i in range(12):
        s.step(5)
        v = run_view(s, since=fast)  # the live feed: every chunk
        fast, _ = v.events_cursor, fast_views.append(v)
        if i % 4 == 3:  # a slower reader (another tab, the status line) in between
            v = run_view(s, since=slow)
            slow, _ = v.events_cursor, slow_views.append(v)
    assert fast == slow and all(v.events_complete for v in fast_views + slow_views)
    a, b = _events(fast_views), _events(slow_views)
    assert a == b  # both readers got the same events, in the same order
    n = s.telemetry.total_pruned - first
    assert n > 0 and sum(len(layer["pruned"]) for layer in a) == n
    # and a third reader from the same start still gets them all: nobody took them
    assert _events([run_view(s, since=fast_views[0].events_since)]) == a


def test_a_reader_whose_cursor_fell_out_of_the_ring_is_told_and_gets_what_is_held():
    s = _session()
    cursor = run_view(s, events=False).events_cursor
    ring = s.telemetry.events
    s.step(ring.records.maxlen + 10)
    v = run_view(s, since=cursor)
    assert not v.events_complete and v.events_cursor == ring.seq
    assert sum(len(l.activated) for l in v.layers) == ring.size - sum(len(l.pruned) for l in v.layers)
    ok = run_view(s, since=v.events_cursor)
    assert ok.events_complete and all(len(l.pruned) == 0 for l in ok.layers)
    # a cursor from the future (another run's) is not this run's: told so too
    assert not run_view(s, since=ring.seq + 5).events_complete


def test_the_ring_is_bounded_in_records_and_in_events():
    ring = EventRing(1, steps=8, cap=50)
    ev = lambda n: [(np.arange(n), np.ones(n, np.int64), np.arange(n))]  # noqa: E731
    for step in range(100):
        ring.add(step, ev(3))  # 6 events a record
    assert len(ring.records) == 8 and ring.size == 48 and ring.seq == 100
    ring.add(100, ev(20))  # 40 events: the oldest records go until the cap holds
    assert ring.size <= 50 and ring.records[-1][0] == 101 and len(ring.records) == 2
    ring.add(101, ev(40))  # one record above the cap alone is still kept
    assert len(ring.records) == 1 and ring.size == 80
    got = ring.since(101)
    assert got.complete and got.cursor == 102 and len(got.layers[0]["pruned"]) == 40
    assert not ring.since(100).complete  # record 101 was dropped


def test_no_read_changes_the_run_and_a_checkpoint_keeps_the_sequence():
    s = _session()
    s.step(20)
    cursor = run_view(s, events=False).events_cursor
    s.step(10)
    before = _events([run_view(s, since=cursor)])
    for _ in range(3):  # frames, snapshots, a checkpoint: all reads
        run_view(s, since=cursor)
        s.snapshot(since=cursor)
        data = checkpoint.to_bytes(s)
    assert _events([run_view(s, since=cursor)]) == before
    back = checkpoint.load(data)
    v = run_view(back, since=s.telemetry.events.seq)
    assert v.events_complete and v.events_cursor == s.telemetry.events.seq  # cursors stay valid
    back.step(3)
    assert run_view(back, since=v.events_cursor).events_complete


def test_two_tabs_on_one_background_run_each_see_every_event():
    from deepr_engine.run.background import BackgroundSession
    run = BackgroundSession(preset("digits-demo").replace(temperature=1e-4, alpha=1e-2))
    try:
        a = b = run.frame(events=False).events_cursor   # two tabs' live views
        seen_a, seen_b = [], []
        for i in range(6):
            run.step(4)
            run.frame(events=False)                      # a status line: reads nothing
            v = run.frame(since=a)
            a, _ = v.events_cursor, seen_a.append(v)
            if i % 2:
                v = run.frame(since=b)
                b, _ = v.events_cursor, seen_b.append(v)
        assert a == b and _events(seen_a) == _events(seen_b)
        assert sum(len(l["pruned"]) for l in _events(seen_a)) > 0
        assert all(v.events_complete for v in seen_a + seen_b)
    finally:
        run.close()
