"""Typed page state: one small object per page behind st.session_state, and the run lifecycle
the pages' callbacks use (start, reattach, load). Pages draw from these objects; only callbacks
change them.

Every view is a read (it takes nothing from the run): any number of tabs and views can ask for
one. The rewiring events come with a cursor (views.RunView.events_cursor): the live views keep
theirs, so they see every event once, and feed the graph's fading trail (the PNG download) with
them; the other views ask for frames without events."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import streamlit as st

from deepr_engine.run import parking, registry
from deepr_engine.run.background import BackgroundSession
from deepr_engine.run.config import RunConfig, preset
from deepr_engine.run.views import RunView

from .charts.graph import EventTrail
from .components import feed as live_feed
from . import public
from .history import RunHistory
from .urlstate import UISettings

START_ERRORS = (ValueError, FileNotFoundError, RuntimeError)


def checkpoint_config(data: bytes) -> RunConfig:
    """An uploaded checkpoint's config, read from its header (no tensor loaded, nothing built)."""
    import json

    from deepr_engine.run.checkpoint import read_metadata
    try:
        return RunConfig.from_dict(json.loads(read_metadata(data)["config"]))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"checkpoint: not a DeepR Studio checkpoint ({exc})") from None


def describe(cfg: RunConfig) -> str:
    """A run's setup in a few words: method, data, model, seed."""
    model = "conv + " if cfg.model == "conv" else ""
    return (f"{registry.label(cfg.algorithm)} on {cfg.dataset}, {model}hidden "
            f"{','.join(map(str, cfg.hidden))}, seed {cfg.seed}")


@dataclass
class DashboardState:
    ui: UISettings = field(default_factory=UISettings)
    run: BackgroundSession | None = None
    gen: int = 0                    # bumps with every new run: its widgets start afresh
    frame: RunView | None = None    # the latest view of the run
    cursor: int | None = None       # the live views' events cursor (None: from the next frame on)
    playing: bool = False           # as the page last drew it
    trail: EventTrail = field(default_factory=EventTrail)
    url_errors: list[str] = field(default_factory=list)
    notice: str = ""                # "loaded: step N, ..." or "the run in the URL is gone ..."
    setup_error: str = ""
    live_error: str = ""
    upload_error: str = ""
    frame_ms: float = 0.0
    feed: live_feed.Feed | None = None   # the live views' frames over HTTP (components/feed.py)
    feed_gen: int = -1
    read_at: float = 0.0            # when `frame` was read from the run (monotonic)
    history: RunHistory = field(default_factory=RunHistory)   # this tab's runs (history.py)
    url_run: str = ""               # the run id this tab last wrote into the URL
    waiting: str = ""               # public mode: why this visitor has no run yet (server full)
    waiting_own: bool = False       # ... because this browser reached its own limit (no queue)
    read_only: bool = False         # public mode: the run on screen is someone else's
    visitor: str = ""               # public mode: who this browser is (owner of its runs)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    # -- lifecycle (called from init and from callbacks) ----------------------------------------
    def changing(self) -> threading.RLock:
        """Held while a callback reads the run's setup and starts the next run: two changes that
        reach the server at once (a text field's blur and a click) apply one after the other,
        the second on top of the first, instead of both on the old setup (the last one to
        finish winning)."""
        return self._lock

    def start(self, source: RunConfig | bytes, ui: UISettings | None = None) -> bool:
        """A new run in its own process. On a bad setup the current run stays (the default
        preset starts when there is none) and `setup_error` says why. Returns whether the new
        run started."""
        ui = ui or self.ui
        try:
            self.admit(source)
            run = BackgroundSession(source, steps_per_frame=ui.steps_per_frame,
                                    max_steps_per_second=public.speed(ui.max_steps_per_second),
                                    **public.run_options())
        except public.ServerFull as exc:   # a new visitor waits; a visitor with a run keeps it
            self.setup_error, self.waiting = (str(exc), "") if self.run is not None else ("", str(exc))
            self.waiting_own = False
            return False
        except START_ERRORS as exc:
            self.setup_error = str(exc)
            if self.run is not None:
                return False
            try:   # the default run needs room too
                public.check_room(1, self.starts(), BackgroundSession.live_count())
            except (public.ServerFull, public.BrowserLimit) as full:   # or its hour, in other tabs
                self.waiting, self.waiting_own = str(full), isinstance(full, public.BrowserLimit)
                return False
            ui = UISettings(steps_per_frame=ui.steps_per_frame,
                            max_steps_per_second=ui.max_steps_per_second)
            run = BackgroundSession(preset(ui.preset), max_steps_per_second=public.speed(0),
                                    **public.run_options())
        public.STARTS.add(self.who())
        self.waiting, self.waiting_own = "", False
        self._adopt(run, ui)
        return True

    def admit(self, source: RunConfig | bytes | None) -> None:
        """Public mode: the setup within the limits (an upload's config read without building
        anything) and room on the server; this tab's own run frees its process when replaced."""
        if not public.settings().public:
            return
        if source is not None:   # None: a fork (the setup of a run this server already runs)
            public.check_config(source if isinstance(source, RunConfig) else checkpoint_config(source))
        mine = int(self.run is not None and self.run.alive)
        public.check_room(1, self.starts(), BackgroundSession.live_count() - mine)

    def who(self) -> str:
        """This browser, for the server's count of the runs it started (public.STARTS)."""
        return self.visitor or public.visitor_id()

    def starts(self) -> int:
        """Runs this browser started within the hour: the Dashboard's and the Compare page's,
        in any of its tabs (a reload does not start the count again)."""
        return public.STARTS.count(self.who())

    def _adopt(self, run: BackgroundSession, ui: UISettings) -> None:
        """Put `run` on screen; the run that was there parks and stays in the Runs list."""
        with self._lock:
            if self.run is not None and self.run is not run:
                self.shelve()
            rec = parking.record(run.run_id) or {}
            owner = rec.get("owner") or self.visitor
            self.read_only = public.settings().public and owner != self.visitor
            self.history.add(run.run_id, record=not self.read_only,   # a viewer never writes the
                             summary=describe(run.config), preset=ui.preset or "", owner=owner)  # owner's record
            self.run, self.ui = run, ui
            ui.run_id = run.run_id
            self.gen += 1
            self.frame, self.cursor, self.live_error, self.notice = None, None, "", ""
            self.trail.clear()
            live_feed.close_feed(self.feed)
            self.feed = None

    def shelve(self) -> None:
        """Park the run on screen (its process ends; the Runs list can reopen it)."""
        view = self.frame
        if view is not None:
            self.history.note(self.run.run_id, step=view.step, test_acc=view.metrics.get("test_acc"))
        if self.read_only:   # someone else's run: it goes on for its owner
            return
        if not self.run.alive:   # parked already, or its process died: nothing to do
            return
        try:
            self.run.pause()
            self.run.park()
        except RuntimeError:   # it died just now: its last park (if any) stays reopenable
            pass

    def adopt_fork(self, run: BackgroundSession, parent_id: str, step: int) -> None:
        """Put a fork on screen; its record says where it forked off (the parent is parked)."""
        public.STARTS.add(self.who())
        self._adopt(run, self.ui)
        self.history.note(run.run_id, fork={"parent": parent_id, "step": step}, step=step)
        self.notice = f"Forked at step {step:,}: this is a new run; the original is in the Runs list."

    def open_run(self, run_id: str) -> bool:
        """Reopen one of this tab's runs (or any run by its id) at its step; False, with the
        reason in `notice`, when it is gone."""
        with self._lock:
            if self.run is not None and run_id == self.run.run_id:
                return True
            try:
                self.admit(None)
            except ValueError as exc:
                self.notice = f"The run {run_id[:8]}… cannot be reopened now: {exc}."
                return False
            run = BackgroundSession.reattach(run_id, steps_per_frame=self.ui.steps_per_frame,
                                             max_steps_per_second=public.speed(self.ui.max_steps_per_second),
                                             **public.run_options())
            if run is None:
                self.notice = f"The run {run_id[:8]}… cannot be reopened: {parking.gone_reason(run_id)}."
                return False
            rec = parking.record(run_id) or {}
            ui = UISettings(rec.get("preset") or "digits-demo", self.ui.steps_per_frame, self.ui.max_steps_per_second)
            self._adopt(run, ui)
            self.notice = ""
            return True

    def init_from_url(self, params: dict[str, str]) -> None:
        """First run of the page: the URL's run if it still exists, else its setup."""
        from .urlstate import from_query
        cfg, ui = from_query(params)
        self.url_errors = list(ui.errors)
        self.url_run = ui.run_id   # read, not a navigation: Back/Forward are later changes of it
        if ui.run_id:
            run = BackgroundSession.reattach(ui.run_id, steps_per_frame=ui.steps_per_frame,
                                             max_steps_per_second=public.speed(ui.max_steps_per_second),
                                             **public.run_options())
            if run is not None:
                self.history.adopt(ui.run_id)
                self._adopt(run, ui)
                return
            wanted = ui.run_id   # (starting a run gives `ui` the new run's id)
            if parking.record(wanted):   # a reopened tab: its other runs may be there
                self.history.adopt(wanted)
            self.start(cfg, ui)
            self.notice = (f"The run in this URL ({wanted[:8]}…) is gone: "
                           f"{parking.gone_reason(wanted)}. Started a new run from the URL's setup.")
            return
        self.start(cfg, ui)

    def load(self, data: bytes) -> bool:
        """Continue an uploaded checkpoint (its own setup, whatever the sidebar showed)."""
        if not self.start(data):
            self.upload_error, self.setup_error = self.setup_error, ""
            return False
        view = self.fetch()
        self.upload_error = ""
        self.notice = f"loaded: step {view.step:,}, {describe(view.config)}"
        return True

    def browser(self) -> str | None:
        """This tab's browser identity when it comes from the browser's cookie (the feed's
        requests carry it too), else None."""
        return None if not self.visitor or self.visitor.startswith("session-") else self.visitor

    # -- views ------------------------------------------------------------------------------
    def fetch(self) -> RunView:
        """The run now for this rerun's controls and slower views (no events: those are the live
        views')."""
        with self._lock:  # the feed takes frames from a server thread
            self.frame = self.run.frame(events=False)
            self.read_at = time.monotonic()
            return self.frame

    def for_fragment(self) -> RunView:
        """The live views' next frame: the rewiring events after their cursor (the first frame
        starts the cursor), kept in the trail for the graph's PNG."""
        with self._lock:
            view = self.run.frame(since=self.cursor, events=self.cursor is not None)
            self.cursor = view.events_cursor
            self.trail.add(view.layers)
            self.frame, self.read_at = view, time.monotonic()
            return view

    def with_trail(self, fn):
        """fn(trail) under the lock (the feed adds to the trail from a server thread)."""
        with self._lock:
            return fn(self.trail)

    def snapshot(self) -> RunView:
        """A full view (theta and sign), for the posterior and weight views."""
        return self.run.snapshot(events=False)

    # -- the feed: live frames over HTTP ------------------------------------------------------
    def live_feed(self, channels) -> live_feed.Feed:
        """This run's feed, opened on first use with `channels()` (a new run, a new feed; the
        old one ends)."""
        if self.feed is None or self.feed_gen != self.gen or live_feed.get(self.feed.token) is None:
            gen = self.gen
            self.feed = live_feed.open_feed(self, "dashboard", lambda s: s.feed_frame(gen), channels(),
                                            browser=self.browser())
            self.feed_gen = gen
        return self.feed

    def feed_frame(self, gen: int) -> RunView:
        """The feed's next frame, for the run it was opened for only."""
        with self._lock:
            if gen != self.gen:
                raise RuntimeError("this tab started another run")
            return self.for_fragment()

    def recent_view(self, within: float = 2.0) -> RunView:
        """The latest frame if it was read lately (by the feed, or by this rerun: one pipe round
        trip fewer), else a new one without events."""
        with self._lock:
            if self.frame is not None and time.monotonic() - self.read_at < within:
                return self.frame
            return self.fetch()


def dashboard() -> DashboardState:
    if "dashboard" not in st.session_state:
        st.session_state["dashboard"] = DashboardState()
    return st.session_state["dashboard"]
