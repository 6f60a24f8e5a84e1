"""What a public demo shows a visitor the server cannot serve yet (a queue) and a visitor who
opened someone else's run (a read-only live view with a Fork button). app/public.py holds the
settings and limits."""
from __future__ import annotations

import threading
import time

import streamlit as st

from .. import public
from ..state import DashboardState, dashboard
from ..text import plain
from . import runs_panel

QUEUE_POLL_S = 5.0
_queue: dict[str, float] = {}   # visitor -> last time its page asked (insertion order = arrival)
_queue_lock = threading.Lock()  # every session's page thread updates it


def queue_position(visitor: str, now: float | None = None) -> int:
    """This visitor's place in the line (1 = next); visitors whose page stopped asking leave it."""
    now = time.monotonic() if now is None else now
    with _queue_lock:
        for v, t in list(_queue.items()):
            if now - t > 3 * QUEUE_POLL_S:
                _queue.pop(v, None)
        _queue[visitor] = now   # updating a key keeps its place (arrival order)
        return list(_queue).index(visitor) + 1


def leave_queue(visitor: str) -> None:
    with _queue_lock:
        _queue.pop(visitor, None)


def waiting_room(s: DashboardState) -> None:
    """No run yet because the server is full (the visitor's place in the line) or this browser
    started its hour's runs in other tabs; retried every few seconds."""
    st.title("DeepR Studio")

    @st.fragment(run_every=QUEUE_POLL_S)
    def retry() -> None:
        d = dashboard()
        own = d.waiting_own   # this browser's own limit: it does not stand in the line
        place = None if own else queue_position(d.visitor)
        if d.run is None and (own or place == 1):   # first in line: the next free room is its
            d.init_from_url(dict(st.query_params))
        if d.run is not None:
            leave_queue(d.visitor)
            st.rerun(scope="app")
        if own:
            st.info(plain(f"This browser has started as many runs as this public demo allows in "
                          f"an hour: {d.waiting}. Its runs stay open in their tabs and links; this "
                          f"page starts a new run when the hour allows (it checks every "
                          f"{QUEUE_POLL_S:g} s)."))
        else:
            st.info(plain(f"This public demo is busy: {d.waiting}. You are number {place} in the "
                          f"queue; this page starts your run as soon as one ends (it checks every "
                          f"{QUEUE_POLL_S:g} s)."))
    retry()


def read_only_bar(s: DashboardState) -> None:
    """Someone else's run: watch it live, or fork it to steer a copy of your own."""
    row = st.container(horizontal=True, gap="small")
    row.button("Fork", key="fork", type="primary", on_click=runs_panel.on_fork,
               help="your own copy of this run at this step, with every control")
    st.info("You are watching a run that another visitor controls (read-only). Fork it to get "
            "your own copy at this step.")
    if public.settings().public:
        st.caption("Public demo: runs are controlled by the browser that started them.")
