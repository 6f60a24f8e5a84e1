"""The live feed: frames for the canvas components over plain HTTP, outside Streamlit's reruns.

A Streamlit rerun per frame costs a round trip through the script thread, the websocket and
React (250-500 ms on a 2-core machine): it capped the live views near 2-4 frames/s. Here the
page asks for frames itself: one GET per frame returns the next message of every channel
(the graph, the curves) from one frame of the run; the page sends the next request while it
paints the last frame and applies the answer once that paint is done, at most MAX_FPS times a
second (common.js). Nothing piles up (one request in flight per page) and the training process
never waits for the browser (it answers between chunks of steps).

    feed = open_feed(owner, "dashboard", lambda owner: owner.next_frame(),
                     {"graph": live_graph.GraphChannel(...), "curves": live_curves.CurvesChannel(...)})
    live_graph.feed_view(feed.url, ...)   # the component subscribes; see live_graph.js

A channel is an object with `message(view, have) -> bytes`: the next message against what the
page holds (`have`: the sequence number the page last applied; a mismatch gets a full message).
`source(owner)` returns the run's next frame (it gets the owner each time, so the feed holds no
strong reference to it). The route is served by the app's st.App (app/main.py, `routes()`);
pages run without it (AppTest, the component demo pages) fall back to frames by fragment
reruns: `available()` says which.

Feeds are found by an unguessable token; they end with their owner (a weak reference: the
browser session's state), when a newer one of the same owner and name opens, when their run
ends (the answer is 410 and the page reruns for a new feed), or after IDLE_S without a request.
"""
from __future__ import annotations

import secrets
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Callable, Protocol

from ..public import XSRF_COOKIE, cookie_identity
from .wire import pack_parts, unpack_parts  # noqa: F401  (unpack_parts: for tests and tools)

PATH = "/api/deepr/feed"
MAX_FPS = 12          # frames a page asks for per second at most (the rest is training's)
IDLE_S = 600.0        # a feed nobody asked for this long is dropped
_ENABLED = False      # set by routes(): this process serves PATH


class Channel(Protocol):
    def message(self, view, have: int) -> bytes: ...


@dataclass
class Feed:
    token: str
    source: Callable[[object], object]    # owner -> the run's next frame (a views.RunView)
    channels: dict[str, Channel]
    owner: weakref.ref
    name: str
    browser: str | None = None    # the opener's browser identity (public.cookie_identity), if known
    last_used: float = field(default_factory=time.monotonic)
    served: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"{PATH}/{self.token}"

    def next(self, have: dict[str, int]) -> bytes:
        """One frame: the next message of each channel the page asked for (by name, with the
        sequence number it holds), packed with the frame's step and whether the run plays."""
        with self.lock:  # one frame at a time per feed (a page has one request in flight)
            self.last_used = time.monotonic()
            owner = self.owner()
            if owner is None:
                raise RuntimeError("the page that opened this feed is gone")
            view = self.source(owner)
            parts = {name: ch.message(view, have[name]) for name, ch in self.channels.items()
                     if name in have}
            self.served += 1
        return pack_parts({"step": int(view.step), "playing": bool(getattr(view, "playing", False))}, parts)


_feeds: dict[str, Feed] = {}
_lock = threading.Lock()


def open_feed(owner: object, name: str, source: Callable[[object], object],
              channels: dict[str, Channel], browser: str | None = None) -> Feed:
    """A new feed for `owner` (any object; the feed ends when it is garbage-collected). An
    older feed of the same owner and name ends now. With `browser`, only requests that carry
    that browser's cookie are served: a leaked feed URL shows nothing to anyone else."""
    feed = Feed(secrets.token_urlsafe(18), source, dict(channels), weakref.ref(owner), name, browser)
    with _lock:
        _prune(time.monotonic())
        for token, old in list(_feeds.items()):
            if old.owner() is owner and old.name == name:
                del _feeds[token]
        _feeds[feed.token] = feed
    return feed


def close_feed(feed: Feed | None) -> None:
    if feed is not None:
        with _lock:
            _feeds.pop(feed.token, None)


def get(token: str) -> Feed | None:
    with _lock:
        _prune(time.monotonic())  # a closed tab's feed goes at the next request of any tab
        return _feeds.get(token)


def _prune(now: float) -> None:
    for token, feed in list(_feeds.items()):
        if feed.owner() is None or now - feed.last_used > IDLE_S:
            del _feeds[token]


def parse_have(query, names) -> dict[str, int]:
    """{channel: sequence number} from the query (?graph=12&curves=9); ValueError names the
    field and what is allowed."""
    if not query:
        raise ValueError(f"name at least one channel with the sequence number the page holds, "
                         f"e.g. ?{next(iter(names), 'graph')}=-1 (channels: {', '.join(names)})")
    have = {}
    for name, value in query.items():
        if name not in names:
            raise ValueError(f"{name}: not a channel of this feed (channels: {', '.join(names)})")
        try:
            have[name] = int(value)
        except ValueError:
            raise ValueError(f"{name}: the sequence number the page holds, a whole number; "
                             f"got {value!r}") from None
    return have


async def endpoint(request):
    """GET PATH/{token}?<channel>=<seq held>&...: the next frame's messages (feed.next)."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import PlainTextResponse, Response

    feed = get(request.path_params["token"])
    if request.method != "GET":  # HEAD: says whether the feed exists, builds no frame
        return Response(status_code=200 if feed is not None else 404)
    if feed is None:
        return PlainTextResponse("no such feed (the tab's run ended or the server restarted)",
                                 status_code=404)
    if feed.browser is not None and cookie_identity(request.cookies.get(XSRF_COOKIE, "")) != feed.browser:
        return PlainTextResponse("this feed belongs to another browser session", status_code=403)
    try:
        have = parse_have(request.query_params, feed.channels)
    except ValueError as exc:
        return PlainTextResponse(str(exc), status_code=400)
    try:  # the frame comes over a pipe from the training process: not on the event loop
        body = await run_in_threadpool(feed.next, have)
    except RuntimeError as exc:  # its run ended or changed: the page reruns and gets a new feed
        close_feed(feed)
        return PlainTextResponse(str(exc), status_code=410)
    return Response(body, media_type="application/octet-stream", headers={"Cache-Control": "no-store"})


def routes() -> list:
    """The feed's route, for st.App(routes=...); marks this process as serving it."""
    global _ENABLED
    from starlette.routing import Route
    _ENABLED = True
    return [Route(PATH + "/{token}", endpoint, methods=["GET"])]


def available() -> bool:
    """Whether pages can use the feed: this server answers it (the app started by `streamlit run
    app/main.py`) and serves the app at the root (st.App mounts its routes at the root, so behind
    a proxy that forwards only server.baseUrlPath they would not be reached); else the views take
    their frames by fragment reruns."""
    if not _ENABLED:
        return False
    import streamlit as st
    return not (st.get_option("server.baseUrlPath") or "").strip("/")
