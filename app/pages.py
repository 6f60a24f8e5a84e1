"""The app's pages, named once. main.py builds st.navigation from `build()`; code that sends
the user to another page calls `switch()` with the page's name (st.switch_page needs the very
Page that st.navigation registered for a page defined by a function). This module imports no
page, so any page can use it."""
from __future__ import annotations

from typing import Callable

import streamlit as st

DASHBOARD, COMPARE, SWEEP = "dashboard", "compare", "sweep"
KEY = "pages"   # st.session_state: this tab's Page objects (st.navigation marks the one it
                # returns, so tabs must not share them)


def build(dashboard: Callable, compare: Callable, sweep_file: str) -> list[st.Page]:
    """The pages for st.navigation, kept for switch(). The dashboard is the default page: its
    address is the site's root (`/`), never `/dashboard`."""
    built = st.session_state.get(KEY)
    if built is None:   # the same Page objects on every rerun (switch() from a callback finds them)
        built = st.session_state[KEY] = {
            DASHBOARD: st.Page(dashboard, title="Dashboard", icon="🔌", url_path=DASHBOARD, default=True),
            COMPARE: st.Page(compare, title="Compare", icon="⚖️", url_path=COMPARE),
            SWEEP: st.Page(sweep_file, title="Sweep", icon="🧪", url_path=SWEEP)}
    return list(built.values())


def switch(name: str) -> None:
    """Show the page `name` (DASHBOARD, COMPARE, SWEEP) next; works in a widget callback too.
    A no-op outside the app (no pages built: unit tests)."""
    if name not in (DASHBOARD, COMPARE, SWEEP):
        raise ValueError(f"page: one of {DASHBOARD}, {COMPARE}, {SWEEP}; got {name!r}")
    built = st.session_state.get(KEY)
    if built:
        st.switch_page(built[name])
