"""The live feed (app/components/feed.py): frames for the canvas components over HTTP.

Without a browser: the graph and curves channels against a real training run, with a Python
model of what the page holds (it applies messages as live_graph.js / live_curves.js do), a lost
response, the feed registry and the HTTP endpoint. The browser side (the page's request loop)
is in test_app.py."""
from __future__ import annotations

import asyncio
import gc

import numpy as np
import pytest
from starlette.requests import Request

from app.components import feed
from app.components import graph_diff as gd
from app.components import live_curves as lc
from app.components import live_graph as lg
from app.components import wire
from deepr_engine.run.config import preset
from deepr_engine.run.session import TrainingSession
from deepr_engine.run.views import run_view


class GraphPage:
    """What the page's graph holds: per layer {position: weight}."""

    def __init__(self):
        self.seq, self.edges, self.step, self.kinds = -1, [], 0, []

    def apply(self, msg: bytes) -> None:
        h, a = wire.unpack(msg)
        self.kinds.append(h["kind"])
        if h["kind"] == "same":
            return
        if h["kind"] == "full":
            self.edges = [dict(zip(a[f"pos{l}"].tolist(), a[f"w{l}"].tolist())) for l in range(len(h["layers"]))]
        else:
            for d in h["deltas"]:
                assert d["base"] == self.seq, "a delta for another state than the page holds"
                get = lambda name, d=d: a.get(d["p"] + name)  # noqa: E731
                for l, m in enumerate(self.edges):
                    for p in (get(f"rm{l}") if get(f"rm{l}") is not None else []):
                        del m[int(p)]
                    for p, w in zip(*(get(f"add{l}"), get(f"addw{l}")) if get(f"add{l}") is not None else ((), ())):
                        m[int(p)] = float(w)
                    if get(f"mv{l}") is not None:
                        for p, w in zip(get(f"mv{l}"), get(f"mvw{l}")):
                            m[int(p)] = float(w)
                    if get(f"wall{l}") is not None:
                        for p, w in zip(sorted(m), get(f"wall{l}")):
                            m[p] = float(w)
        self.seq, self.step = h["seq"], h["step"]


class CurvesPage:
    """What the page's curves hold: per series (steps, values rows)."""

    def __init__(self):
        self.seq, self.series = -1, {}

    def apply(self, msg: bytes) -> None:
        h, a = wire.unpack(msg)
        if h["kind"] == "same":
            return
        entries = [(h, "")] if h["kind"] == "full" else [(d, d["p"]) for d in h["deltas"]]
        if h["kind"] == "full":
            self.series = {}
        for e, prefix in entries:
            if h["kind"] != "full":
                assert e["base"] == self.seq
            for name, (start, n, dims) in e["ops"].items():
                old_s, old_v = self.series.get(name, (np.zeros(0, np.int64), np.zeros((0, dims), np.float32)))
                assert start <= len(old_s)
                s = np.concatenate([old_s[:start], a[prefix + "s_" + name]])
                v = np.concatenate([old_v[:start].reshape(-1, dims), a[prefix + "v_" + name].reshape(-1, dims)])
                self.series[name] = (s, v)
            self.seq = e["seq"] if "seq" in e else h["seq"]
        self.seq = h["seq"]


def _session(**changes) -> TrainingSession:
    return TrainingSession(preset("digits-demo").replace(**changes), telemetry_capacity=16)


def test_graph_channel_keeps_the_page_equal_to_the_engine_and_recovers_a_lost_response():
    s = _session()
    ch, page = lg.GraphChannel(image_shape=(8, 8), run_id="r"), GraphPage()
    cursor = None  # the feed's events cursor (app/state.py keeps it)
    for i in range(25):
        s.step(7)
        if i == 20:  # the reader fell behind the events ring: the graph is sent whole again
            s.step(s.telemetry.events.records.maxlen)
        v = run_view(s, since=cursor, events=cursor is not None)
        cursor = v.events_cursor
        msg = ch.message(v, page.seq)
        if i == 12:
            continue  # this response never reached the page: the next request names an old seq
        page.apply(msg)
        view = run_view(s, events=False)  # the engine now (no step since the message)
        for l, layer in enumerate(view.layers):
            assert sorted(page.edges[l]) == layer.active_pos.tolist()
            held = np.array([page.edges[l][p] for p in layer.active_pos.tolist()])
            scale = np.quantile(np.abs(layer.active_weight), 0.98)
            # weights re-sent once they moved MOVE_FRACTION of the layer's scale (float16 on the wire)
            assert np.abs(held - layer.active_weight).max() <= gd.MOVE_FRACTION * scale * 1.05 + 1e-3
        assert page.step == s.step_count
    # after the lost response and after the lost events: everything again
    assert page.kinds[0] == page.kinds[12] == page.kinds[19] == "full"
    assert page.kinds[1:12] == ["delta"] * 11 and page.kinds[13:19] + page.kinds[20:] == ["delta"] * 10
    same = ch.message(run_view(s, since=cursor), page.seq)  # no step since: nothing new
    assert wire.unpack(same)[0]["kind"] == "same" and len(same) < 100


def test_engine_lifetimes_take_the_last_event_of_a_position():
    rm = np.array([5, 9, 11])
    life = np.array([-1, 40, -1])
    pruned = np.array([5, 11, 5, 7])     # 5 probed twice: the later event (lifetime 3) counts
    lifetime = np.array([90, 2, 3, 60])
    assert gd.engine_lifetimes(rm, life, pruned, lifetime).tolist() == [3, 40, 2]


def test_curves_channel_appends_and_resends_what_the_downsampling_rewrote():
    s = _session()
    ch, page = lc.CurvesChannel(run_id="r"), CurvesPage()
    kinds = []
    for i in range(30):
        s.step(5)
        if i == 20:
            s.set_hyperparams(temperature=2e-5)
        msg = ch.message(run_view(s), page.seq)
        kinds.append(wire.unpack(msg)[0]["kind"])
        page.apply(msg)
        view = run_view(s)
        for name in ch.names:
            if name not in view.telemetry.series and name not in ("theta", "pruned", "activated"):
                continue
            want = lc.from_view(view).series[name]
            got = page.series[name]
            assert np.array_equal(got[0], want[0])
            assert np.allclose(got[1], np.asarray(want[1], np.float32).reshape(len(want[0]), -1), equal_nan=True)
    assert kinds[0] == "full" and set(kinds[1:]) == {"delta"}
    assert ch.sent.counts["rewrites"] > 0  # capacity 16: merges happened and were resent


def test_feed_packs_every_channel_of_one_frame_and_parses_the_query():
    class Owner:
        frames = 0

        def next_frame(self):
            self.frames += 1
            return type("View", (), {"step": 10 * self.frames, "playing": True})()

    class Echo:
        def message(self, view, have):
            return f"{view.step}:{have}".encode()

    owner = Owner()
    f = feed.open_feed(owner, "t", lambda o: o.next_frame(), {"a": Echo(), "b": Echo()})
    head, parts = feed.unpack_parts(f.next({"a": 3, "b": -1}))
    assert head == {"step": 10, "playing": True}
    assert parts == {"a": b"10:3", "b": b"10:-1"}
    assert feed.unpack_parts(f.next({"b": 4}))[1] == {"b": b"20:4"}  # only the channels asked for
    assert owner.frames == 2  # one frame per request, whatever the number of channels
    with pytest.raises(ValueError, match="c: not a channel of this feed"):
        feed.parse_have({"c": "1"}, f.channels)
    with pytest.raises(ValueError, match="a: the sequence number"):
        feed.parse_have({"a": "x"}, f.channels)


def test_feeds_end_with_their_owner_or_a_newer_feed():
    class Owner:
        pass

    a, b = Owner(), Owner()
    f1 = feed.open_feed(a, "dashboard", lambda o: None, {})
    f2 = feed.open_feed(b, "dashboard", lambda o: None, {})
    assert feed.get(f1.token) is f1 and feed.get(f2.token) is f2
    f3 = feed.open_feed(a, "dashboard", lambda o: None, {})  # a new run of the same tab
    assert feed.get(f1.token) is None and feed.get(f3.token) is f3
    assert f3.token != f1.token and len(f3.token) >= 24  # not guessable
    del b
    gc.collect()
    assert feed.get(f2.token) is None  # the browser session's state is gone
    feed.close_feed(f3)
    assert feed.get(f3.token) is None


def _get(token: str, query: str = "", method: str = "GET", cookie: str | None = None):
    headers = [(b"cookie", f"_streamlit_xsrf={cookie}".encode())] if cookie else []
    scope = {"type": "http", "method": method, "path": f"{feed.PATH}/{token}", "query_string": query.encode(),
             "headers": headers, "path_params": {"token": token}}
    return asyncio.run(feed.endpoint(Request(scope)))


def test_endpoint_answers_frames_and_says_what_is_wrong():
    s = _session()

    class Owner:
        def next_frame(self):
            s.step(3)
            return run_view(s, playing=True)

    owner = Owner()
    f = feed.open_feed(owner, "http", lambda o: o.next_frame(),
                       {"graph": lg.GraphChannel((8, 8)), "curves": lc.CurvesChannel()})
    r = _get(f.token, "graph=-1&curves=-1")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    head, parts = feed.unpack_parts(r.body)
    assert head["step"] == 3 and head["playing"] is True
    assert wire.unpack(parts["graph"])[0]["kind"] == "full" and wire.unpack(parts["curves"])[0]["kind"] == "full"
    assert _get("no-such-token").status_code == 404
    bad = _get(f.token, "graph=x")
    assert bad.status_code == 400 and b"graph: the sequence number" in bad.body
    step = s.step_count
    empty = _get(f.token, "")
    assert empty.status_code == 400 and b"channels: graph, curves" in empty.body
    assert _get(f.token, "graph=1", method="HEAD").status_code == 200
    assert s.step_count == step  # neither built a frame

    ended = feed.open_feed(owner, "ended", lambda o: (_ for _ in ()).throw(RuntimeError("the training process ended")),
                           {})
    r = _get(ended.token, "x=1")
    assert r.status_code == 400  # the query is checked first
    ended.channels["x"] = None
    r = _get(ended.token, "x=1")
    assert r.status_code == 410 and b"ended" in r.body
    assert feed.get(ended.token) is None  # closed: the page's next rerun opens a new feed


def test_a_feed_bound_to_a_browser_refuses_another_browsers_requests():
    from app.public import cookie_identity
    s = _session()

    class Owner:
        def next_frame(self):
            return run_view(s, playing=False)

    owner = Owner()
    f = feed.open_feed(owner, "bound", lambda o: o.next_frame(), {"graph": lg.GraphChannel((8, 8))},
                       browser=cookie_identity("2|aa|bb|1"))
    assert _get(f.token, "graph=-1", cookie="2|aa|bb|1").status_code == 200
    # the same browser after it loaded another tab: its token under a new mask (aa^bb == cc^dd)
    assert _get(f.token, "graph=-1", cookie="2|cc|dd|1").status_code == 200
    for other in ("2|aa|bc|1", None):   # another browser's cookie, or none: the token alone is not enough
        r = _get(f.token, "graph=-1", cookie=other)
        assert r.status_code == 403 and b"another browser session" in r.body
