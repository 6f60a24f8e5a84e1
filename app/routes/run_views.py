"""The dashboard's slower views under the View selector (transitions, posterior, weights,
decision boundary, tracked set, change log), refreshed every few seconds while playing.

Every view here is bounded whatever the layer size: the weights come from the frame's active
connections (O(K)) and a layer above `figures.FULL_VIEW_POSITIONS` shows a block of itself; a
full-size snapshot (theta of every position, for soft-Deep R's posterior) is fetched only when the
model has at most `SNAPSHOT_POSITIONS` positions. A wide-sparse layer of 10^8 positions never
crosses the pipe or the websocket whole."""
from __future__ import annotations

import numpy as np
import streamlit as st

from deepr_engine.run import registry
from deepr_engine.run.classify import PROBE_STEPS
from deepr_engine.run.views import RunView

from ..charts import changes, figures
from ..state import dashboard
from ..text import plain
from .topology_view import topology_panel
from .turnover_view import turnover_panel
from .units_view import units

VIEWS = ["Transitions", "Units", "Topology", "Turnover", "Posterior", "Weights", "Decision boundary",
         "Tracked set", "Change log"]
SNAPSHOT_POSITIONS = 4_000_000  # full-size theta and sign: 64 MB through the pipe at most


def slow_views() -> None:
    """The chosen view, from the latest frame (no frame of its own: frames are read, not taken)."""
    s = dashboard()
    view = s.frame
    if view is None:
        return
    choice = st.session_state.get("view") or VIEWS[0]
    {"Transitions": transitions, "Units": units, "Topology": topology_panel, "Turnover": turnover_panel,
     "Posterior": posterior, "Weights": weights,
     "Decision boundary": boundary, "Tracked set": tracked}.get(choice, change_log)(view)


def transitions(view: RunView) -> None:
    tel = view.telemetry
    class_counters(view)
    st.plotly_chart(figures.classified_figure(tel), key="classes_chart")
    a, b = st.columns(2)
    a.plotly_chart(figures.transitions_figure(tel), key="trans_chart")
    b.plotly_chart(figures.raster_figure(tel), key="raster_chart")
    a.plotly_chart(figures.lifetime_figure(tel), key="life_chart")
    b.plotly_chart(figures.ever_active_figure(tel), key="ever_chart")


def class_counters(view: RunView) -> None:
    """Every rewiring event classified once (the engine's counts): since the start and per 100
    steps over the last steps, per layer."""
    tel = view.telemetry
    if not tel.class_totals:
        return
    rows = figures.class_rows(tel)
    head = ("| layer | probes | deaths | survived | probes /100 steps | deaths /100 steps | survived /100 steps |\n"
            "|---|---:|---:|---:|---:|---:|---:|\n")
    body = "".join(f"| {r['layer']} | {r['probe total']:,} | {r['death total']:,} | {r['survived total']:,} | "
                   f"{r['probe /100 steps']:,.1f} | {r['death /100 steps']:,.1f} | {r['survived /100 steps']:,.1f} |\n"
                   for r in rows)
    totals = ";".join(",".join(str(int(v)) for v in tel.class_totals[c]) for c in ("probe", "death", "survived"))
    st.markdown(f"**Rewiring events by class** at step {view.step:,}: a probe was pruned within "
                f"{PROBE_STEPS} steps of its revival, a death is the pruning of an established connection, "
                f"a survivor a revival still active {PROBE_STEPS} steps later; rates over the last "
                f"{tel.class_window} steps.<span id='class-totals' data-step='{view.step}' data-v='{totals}' "
                f"hidden></span>\n\n" + head + body, unsafe_allow_html=True)


def posterior(view: RunView) -> None:
    hp = view.hyperparams
    if "temperature" not in hp:
        st.info(f"{registry.label(view.config.algorithm)} has no temperature: the posterior "
                "view is for Deep R and soft-Deep R.")
        return
    soft = hp.get("theta_min") is not None
    n = sum(l.n_positions for l in view.layers)
    if soft and n <= SNAPSHOT_POSITIONS:
        view = dashboard().snapshot()  # soft-Deep R's dormant theta: full-size
    elif soft:
        st.caption(f"The model has {n:,} positions (more than {SNAPSHOT_POSITIONS:,}): the "
                   "histogram shows the active θ only.")
    st.plotly_chart(figures.posterior_figure(view, hp["alpha"], hp["temperature"], hp.get("theta_min")),
                    key="post_chart")
    st.caption("Theory (docs/algorithms.md): density of θ with zero gradient — exponential with "
               "mean T/α on active θ; for soft-Deep R flat on [θ_min, 0).")


def weights(view: RunView) -> None:
    info = dashboard().run.info
    cols = st.columns(min(3, len(view.layers)))
    for i, layer in enumerate(view.layers):
        fig, note = figures.weights_figure(layer, f"Layer {i} weights {layer.shape}")
        cols[i % len(cols)].plotly_chart(fig, key=f"w_chart{i}")
        if note:
            cols[i % len(cols)].caption(note)
    st.caption("Blue: positive, red: negative (as in the graph); dormant connections are 0.")
    if info.image_shape and view.config.model == "mlp":
        a, b = st.columns(2)
        a.plotly_chart(figures.image_figure(figures.fan_in_images(view.layers[0], info.image_shape),
                                            "Fan-in masks of hidden units", zmid=0.5), key="fanin_chart")
        b.plotly_chart(figures.image_figure(figures.fan_out_image(view.layers[0], info.image_shape),
                                            "Active outgoing connections per pixel", colorscale="Viridis"),
                       key="fanout_chart")


def boundary(view: RunView) -> None:
    run = dashboard().run
    if not run.info.is_2d:
        st.info("The decision boundary is drawn for 2-D data sets (spiral, moons, circles, xor, blobs).")
        return
    xs = np.linspace(-2.5, 2.5, 80)
    x, y = run.info.points
    st.plotly_chart(figures.boundary_figure(xs, xs, run.predict_grid(xs, xs), x, y), key="boundary_chart")


# -- the tracked set: its callbacks and controls --------------------------------------------------
def on_track_sample() -> None:
    dashboard().run.track_default(int(st.session_state["track_n"]))


def on_track() -> None:
    s = dashboard()
    text = st.session_state.get("track_text", "")
    try:
        pairs = [tuple(int(v) for v in item.split(":")) for item in text.split(",") if item.strip()]
        if not pairs or any(len(p) != 2 for p in pairs):
            raise ValueError("each entry must be layer:position, e.g. 0:12")
        s.run.track([p[0] for p in pairs], [p[1] for p in pairs])
        st.session_state["track_error"] = ""
    except ValueError as exc:
        st.session_state["track_error"] = f"Tracked set: {exc}"


def tracked(view: RunView) -> None:
    tel = view.telemetry
    st.write(f"Tracking {len(tel.tracked_pos)} connections: "
             + ", ".join(f"L{l}:{p}" for l, p in zip(tel.tracked_layer, tel.tracked_pos)))
    c1, c2 = st.columns(2)
    c1.number_input("Sample size", 2, 200, max(2, len(tel.tracked_pos)), key="track_n")
    c1.button("Re-sample tracked connections", key="track_sample", on_click=on_track_sample)
    c2.text_input("Track these (layer:position, comma-separated)", key="track_text", placeholder="0:12, 1:40")
    c2.button("Track", key="track_apply", on_click=on_track)
    if st.session_state.get("track_error"):
        c2.error(plain(st.session_state["track_error"]))


def change_log(view: RunView) -> None:
    rows = [{"step": c[0], "change": changes.label(c), "field": c[1]} for c in view.telemetry.changes]
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch")
    else:
        st.caption("No hyperparameter change yet (moves of the live controls are listed here).")
