"""The dashboard's Units view: what each unit computes, live (components/unit_maps.py).

On 2-D data every hidden and output unit's map over the input plane; on image data (an MLP)
every first-layer unit's receptive field. While the app serves the feed the maps take their
frames over it (a feed of their own, opened per run, asked only while this view is on the page);
otherwise each rerun of the views' fragment sends the whole maps."""
from __future__ import annotations

import streamlit as st

from ..components import feed as live_feed
from ..components import unit_maps
from ..state import DashboardState, dashboard

_FEED = "units_feed"


def supported(info, view) -> str:
    """"maps", "fields", or "" when the view has nothing to show for this run."""
    if info.is_2d:
        return "maps"
    if info.image_shape and view.config.model == "mlp" and len(view.layers[0].shape) == 2:
        return "fields"
    return ""


def units_feed(s: DashboardState, image_shape) -> live_feed.Feed:
    """This tab's maps feed for its current run (a new run, a new feed; the old one ends)."""
    held = st.session_state.get(_FEED)
    if held is None or held[0] != s.gen or live_feed.get(held[1].token) is None:
        channel = unit_maps.UnitsChannel(s.run, image_shape)
        feed = live_feed.open_feed(s, "units", lambda owner: owner.recent_view(within=0.5), {"units": channel},
                                   browser=s.browser())
        st.session_state[_FEED] = held = (s.gen, feed)
    return held[1]


def message(s: DashboardState, view, mode: str) -> bytes:
    """The whole maps of the run now (without the feed)."""
    if mode == "fields":
        return unit_maps.fields_message(view.layers[0], s.run.info.image_shape, view.step, view.step + 1)
    maps = s.run.unit_maps(unit_maps.grid(), unit_maps.grid(), unit_maps.MAX_UNITS)
    return unit_maps.maps_message(maps, view.layers, maps["step"] + 1)


def units(view) -> None:
    s = dashboard()
    info = s.run.info
    mode = supported(info, view)
    if not mode:
        st.info("Unit maps are drawn for 2-D data (each unit over the input plane) and for image "
                "data with an MLP (each first-layer unit's receptive field).")
        return
    if mode == "maps":
        st.caption("What each unit computes: its activation over the input plane (hidden units "
                   "after their nonlinearity, output units as logits), blue +, red −, white 0, "
                   "scaled per layer. Hover a map to outline the unit's fan-in and fan-out edges in "
                   "the graph; hover a unit in the graph to outline its map.")
    else:
        st.caption("Receptive fields: each first-layer hidden unit's incoming weights as an image "
                   "(blue +, red −, dormant connections white). Hover a field to outline the "
                   "unit's edges in the graph; hover a hidden unit in the graph to outline its field.")
    if live_feed.available():
        feed = units_feed(s, info.image_shape if mode == "fields" else None)
        unit_maps.feed_view(feed.url, key="units", playing=view.playing, step=view.step)
    else:
        unit_maps.unit_maps_view(message(s, view, mode), key="units")
