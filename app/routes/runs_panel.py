"""The tab's runs on the Dashboard: the Runs list (reopen any earlier run at its step), the
browser's Back / Forward (they follow the `run=` in the URL), Fork (a copy of the run at this
step) and Fork over (2-4 values of T, alpha, K or lr from this state, side by side on the
Compare page). The history itself is app/history.py; the forks' Compare side is
app/compare_state.py."""
from __future__ import annotations

import time

import streamlit as st

from deepr_engine.run.views import RunView

from .. import public
from ..compare_state import FORK_FIELDS, open_forks
from ..history import age
from ..state import DashboardState, dashboard, describe
from ..text import plain


# -- callbacks ----------------------------------------------------------------------------------
def on_open_run(run_id: str) -> None:
    s = dashboard()
    with s.changing():
        s.open_run(run_id)


def on_fork() -> None:
    """A new run from this one's state at this step (same hyperparameters: it continues exactly
    as this run would); this run is kept in the Runs list."""
    s = dashboard()
    with s.changing():
        parent, step = s.run, s.frame.step if s.frame is not None else 0
        try:
            s.admit(None)
        except ValueError as exc:
            s.setup_error = str(exc)
            return
        if not s.read_only:   # someone else's run goes on for its owner
            parent.pause()
        try:
            child = parent.fork(**public.run_options())
        except (RuntimeError, ValueError) as exc:
            s.setup_error = f"Fork: {exc}"
            return
        s.history.note(parent.run_id, step=step)
        s.adopt_fork(child, parent.run_id, step)


def on_fork_over(gen: int) -> None:
    s = dashboard()
    field = st.session_state[f"forkfield{gen}"]
    text = st.session_state.get(f"forkvalues{gen}{field}", "")
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        s.live_error = f"Fork over {FORK_FIELDS[field]}: comma-separated numbers; got {text!r}"
        return
    try:
        open_forks(s.run, field, values, parent_label=describe(s.run.config))
    except (ValueError, RuntimeError) as exc:
        s.live_error = f"Fork over {FORK_FIELDS[field]}: {exc}"


# -- drawing -------------------------------------------------------------------------------------
def follow_url(s: DashboardState) -> None:
    """Back / Forward: the URL names another run than the one on screen, and this tab did not
    write it (a rerun after a callback that started a run still shows the old id for a moment)."""
    url_run = st.query_params.get("run", "")
    if s.run is not None and url_run and url_run not in (s.run.run_id, s.url_run):
        with s.changing():
            s.open_run(url_run)


def runs_list(s: DashboardState) -> None:
    """The sidebar's Runs: setup, step, test accuracy and age of each run this tab made."""
    entries = s.history.entries(s.run.run_id)
    with st.sidebar.expander(f"Runs ({len(s.history.runs)})", expanded=len(entries) > 1):
        now = time.time()
        for e in entries:
            here = e["id"] == s.run.run_id
            if here and s.frame is not None:   # the run on screen: as it is now
                e.update(step=s.frame.step, test_acc=s.frame.metrics.get("test_acc"), seen=now)
            acc = e.get("test_acc")
            label = (f"{e.get('summary', '?')} · step {e.get('step', 0):,}"
                     + (f" · acc {acc:.3f}" if isinstance(acc, float) and acc == acc else "")
                     + f" · {age(now - e.get('seen', now))} ago")
            if e.get("fork"):
                label += f" · fork at step {e['fork']['step']:,}"
            if here:
                st.markdown(f"**▶ {plain(label.rsplit(' · ', 1)[0])}** (on screen)")
            elif e["gone"]:
                st.caption(plain(f"{label}: gone — {e['gone']}"))
            else:
                st.button(label, key=f"open_{e['id']}", on_click=on_open_run, args=(e["id"],),
                          width="stretch", help="reopen this run at its step (this one is kept)")
        st.caption("Runs not on screen are parked (no process); an open tab keeps them, a closed "
                   "tab's runs stay reopenable for a day.")


def fork_controls(row, s: DashboardState, view: RunView) -> None:
    """Fork and Fork over in the transport row."""
    row.button("Fork", key="fork", on_click=on_fork, help="a new run from this step with the same "
               "state (weights, theta, optimizer, random generators, data order); this run is kept")
    g = s.gen
    with row.popover("Fork over…", help="2-4 runs from this state that differ in one value, on Compare"):
        hp = view.hyperparams
        fields = [f for f in FORK_FIELDS if f in hp or f == "connectivity"]
        field = st.selectbox("Value to vary", fields, key=f"forkfield{g}", format_func=FORK_FIELDS.get)
        now = hp.get(field) if field != "connectivity" else view.config.connectivity[0]
        # the middle value is the run's own, exactly: that fork is the unchanged control
        low, high = (now / 2, min(1.0, now * 2)) if field == "connectivity" else (now * 0.1, now * 10)
        st.text_input("Values (2-4, comma-separated)", key=f"forkvalues{g}{field}",
                      value=f"{low:.3g},{now!r},{high:.3g}" if now else "")
        st.button("Fork to Compare", key="forkover", on_click=on_fork_over, args=(g,), type="primary")
