"""The guided tour: a scripted demo on the default preset, played from the Dashboard's Tour
button. Its stops (title, what the run does, live settings, how long, the caption) live in
assets/tour.md, so the words can be improved without code.

The tour starts a fresh run of the default preset and moves from stop to stop by itself (each
stop's `seconds`; DEEPR_TOUR_FAST=<factor> shortens them, for tests and demos); Back and Next
move between stops (a stop's settings are the preset's with every `set:` up to that stop, so
going back puts earlier values back), Hold stops the clock, Leave ends the tour and keeps the run
as it is. Changes are made at the start of a full rerun (`apply_pending`, before the sidebar is
drawn), so the sidebar's controls show the tour's values."""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from deepr_engine.run.config import preset

from . import widgets as w
from .urlstate import UISettings

CAPTIONS = Path(__file__).resolve().parents[1] / "assets" / "tour.md"
DEFAULT_PRESET = UISettings().preset
ACTIONS = ("play", "pause", "")
SETTABLE = ("temperature", "alpha", "lr", "connectivity")
_KEY = "tour"


@dataclass(frozen=True)
class Stop:
    title: str
    caption: str
    do: str = ""                       # "play", "pause" or "" (the run goes on as it is)
    sets: tuple = ()                   # ((field, value), ...) in force from this stop on
    seconds: float = 15.0


def _value(name: str, text: str):
    try:
        if name == "connectivity":
            return tuple(float(v) for v in text.split(","))
        return float(text)
    except ValueError:
        raise ValueError(f"set: {name} needs {'comma-separated numbers' if name == 'connectivity' else 'a number'}; "
                         f"got {text!r}") from None


def parse(text: str) -> list[Stop]:
    """The stops of a tour file (see assets/tour.md); ValueError names the stop and the key."""
    stops = []
    for block in re.split(r"^## ", text, flags=re.M)[1:]:
        title, _, body = block.partition("\n")
        lines, i, kw, sets = body.split("\n"), 0, {}, []
        while i < len(lines) and lines[i].strip():
            key, sep, val = lines[i].partition(":")
            key, val = key.strip(), val.strip()
            where = f"tour stop {title.strip()!r}"
            if not sep or key not in ("do", "set", "seconds"):
                raise ValueError(f"{where}: a setting line is 'do: ...', 'set: field=value' or "
                                 f"'seconds: N'; got {lines[i]!r}")
            if key == "do":
                if val not in ACTIONS:
                    raise ValueError(f"{where}: do must be play or pause; got {val!r}")
                kw["do"] = val
            elif key == "seconds":
                try:
                    kw["seconds"] = float(val)
                except ValueError:
                    raise ValueError(f"{where}: seconds must be a number; got {val!r}") from None
                if not 1 <= kw["seconds"] <= 600:
                    raise ValueError(f"{where}: seconds must be in [1, 600]; got {val}")
            else:
                name, eq, v = val.partition("=")
                if not eq or name.strip() not in SETTABLE:
                    raise ValueError(f"{where}: set must be field=value with field one of "
                                     f"{', '.join(SETTABLE)}; got {val!r}")
                sets.append((name.strip(), _value(name.strip(), v.strip())))
            i += 1
        caption = "\n".join(lines[i:]).strip()
        if not caption:
            raise ValueError(f"tour stop {title.strip()!r}: no caption")
        stops.append(Stop(title.strip(), caption, sets=tuple(sets), **kw))
    if not stops:
        raise ValueError("the tour file has no stops ('## Title' sections)")
    return stops


def load(path: Path = CAPTIONS) -> list[Stop]:
    return parse(path.read_text(encoding="utf-8"))


def settings_at(stops: list[Stop], i: int, base) -> dict:
    """The live settings in force at stop i: the base config's value of every field the tour
    sets anywhere, overridden by each `set:` of the stops up to i."""
    fields = {name for s in stops for name, _ in s.sets}
    out = {f: tuple(getattr(base, f)) if f == "connectivity" else getattr(base, f) for f in fields}
    for s in stops[:i + 1]:
        out.update(dict(s.sets))
    return out


def speed_factor() -> float:
    """DEEPR_TOUR_FAST: a factor on every stop's seconds (e.g. 0.05); 1 when unset."""
    text = os.environ.get("DEEPR_TOUR_FAST", "")
    try:
        return min(1.0, max(0.01, float(text))) if text else 1.0
    except ValueError:
        return 1.0


def duration(stops: list[Stop]) -> float:
    return sum(s.seconds for s in stops)


# -- the page's state and callbacks ---------------------------------------------------------------
@dataclass
class TourState:
    active: bool = False
    stop: int = 0
    shown_at: float = 0.0            # monotonic time the stop was applied
    pending: bool = False            # the stop is to be applied at the next full rerun
    held: bool = False               # the clock is stopped (Hold)
    gen: int = -1                    # the dashboard run generation the tour plays on
    stops: list = field(default_factory=list)
    error: str = ""
    visited: list = field(default_factory=list)   # stops applied, in order (shown in the page)


def tour_state() -> TourState:
    if _KEY not in st.session_state:
        st.session_state[_KEY] = TourState()
    return st.session_state[_KEY]


def on_start(s) -> None:
    t = tour_state()
    try:
        t.stops = load()
    except (OSError, ValueError) as exc:
        t.error = f"The tour cannot start: {exc}"
        return
    with s.changing():
        ui = UISettings(DEFAULT_PRESET, s.ui.steps_per_frame, s.ui.max_steps_per_second)
        if not s.start(preset(DEFAULT_PRESET), ui):
            t.error = f"The tour cannot start: {s.setup_error}"
            return
    t.active, t.stop, t.pending, t.held, t.gen, t.error, t.visited = True, 0, True, False, s.gen, "", []


def go(i: int) -> None:
    t = tour_state()
    t.stop, t.pending = max(0, min(len(t.stops) - 1, i)), True


def on_hold() -> None:
    t = tour_state()
    t.held = not t.held
    t.shown_at = time.monotonic()  # Continue gives the stop its whole time again


def on_leave() -> None:
    tour_state().active = False   # the run is kept as it is


def _differs(now, want) -> bool:
    if isinstance(want, tuple):
        return len(now) != len(want) or any(abs(a - b) > 1e-12 for a, b in zip(now, want))
    return abs(float(now) - float(want)) > 1e-15 * max(1.0, abs(float(want)))


def apply_pending(s, view):
    """At the start of a full rerun, before the sidebar is drawn: the tour's stop takes effect
    (settings, play or pause) and the sidebar's controls are set to show it. Returns the view to
    draw (read again after a change). A new run started by the user ends the tour."""
    t = tour_state()
    if t.active and t.gen != s.gen:
        t.active = False
    if not (t.active and t.pending):
        return view
    stop = t.stops[t.stop]
    want = settings_at(t.stops, t.stop, s.run.info.config)
    now = {f: tuple(view.config.connectivity) if f == "connectivity" else view.hyperparams.get(f, getattr(view.config, f))
           for f in want}
    changes = {f: (list(v) if isinstance(v, tuple) else v) for f, v in want.items() if _differs(now[f], v)}
    try:
        if changes:
            s.run.set_hyperparams(**changes)
        if stop.do == "play":
            s.run.play()
        elif stop.do == "pause":
            s.run.pause()
    except (ValueError, RuntimeError) as exc:
        t.error = f"Tour stop {stop.title!r}: {exc}"
    _show_in_sidebar(s, changes)
    t.pending, t.shown_at = False, time.monotonic()
    t.visited.append(t.stop)
    return s.fetch() if (changes or stop.do) else view


def _show_in_sidebar(s, changes: dict) -> None:
    for f, v in changes.items():
        if f == "connectivity":
            for i, c in enumerate(v):
                st.session_state[f"conn{i}_{s.gen}"] = min(1.0, max(0.001, round(c, 3)))
        elif f in ("temperature", "alpha", "lr"):
            start = getattr(s.run.info.config, f)
            st.session_state[f"{f}{s.gen}"] = w.nearest(sorted(set(w.log_grid(f)) | {float(start)}), float(v))


# -- drawing -----------------------------------------------------------------------------------
def panel(s, view) -> None:
    """The Tour button, or while the tour plays its caption, its buttons and its clock."""
    t = tour_state()
    if t.error:
        st.error(t.error)
        t.error = ""
    if not t.active:
        mins = duration(load()) * speed_factor() / 60 if CAPTIONS.exists() else 0
        st.button("Tour", key="tour_start", icon=":material/tour:", on_click=on_start, args=(s,),
                  help=f"A guided demo of about {mins:.1f} minutes on a fresh {DEFAULT_PRESET} run: "
                       "what the noise, alpha and probes are; raise T, raise alpha, lower K. Back and "
                       "Next move between stops; Leave keeps the run as it is.")
        return
    stop, n = t.stops[t.stop], len(t.stops)
    with st.container(border=True, key="tour_box"):
        st.markdown(f"**Tour · stop {t.stop + 1} of {n}: {stop.title}**"
                    f"<span id='tour-stop' data-stop='{t.stop}' data-visited='{','.join(map(str, t.visited))}' hidden></span>", unsafe_allow_html=True)
        st.markdown(stop.caption)   # the project's own file, not user text
        row = st.container(horizontal=True, gap="small")
        row.button("Back", key="tour_back", icon=":material/arrow_back:", on_click=go, args=(t.stop - 1,),
                   disabled=t.stop == 0)
        row.button("Next", key="tour_next", icon=":material/arrow_forward:", on_click=go, args=(t.stop + 1,),
                   disabled=t.stop == n - 1, type="primary")
        row.button("Continue" if t.held else "Hold", key="tour_hold", on_click=on_hold,
                   help="stop or restart the tour's clock (the run is not paused)")
        row.button("Leave tour", key="tour_leave", on_click=on_leave, help="end the tour; the run is kept")
        last = t.stop == n - 1   # nothing moves on from there: no clock
        st.fragment(run_every=None if t.held or last else 0.5)(_clock)()


def _clock() -> None:
    """The time left at this stop; at zero the tour moves on (a full rerun applies the stop)."""
    t = tour_state()
    if not t.active or t.pending:
        return
    stop = t.stops[t.stop]
    left = stop.seconds * speed_factor() - (time.monotonic() - t.shown_at)
    if t.held:
        st.caption("Tour on hold: Continue, Back or Next")
    elif t.stop == len(t.stops) - 1:
        st.caption("Last stop: Leave tour when you are done (the run is kept)")
    elif left <= 0:
        go(t.stop + 1)
        st.rerun(scope="app")
    else:
        st.caption(f"next stop in {left:.0f} s")
