"""The dashboard page. Training runs in the tab's own process (BackgroundSession); the page
draws the one frame it fetches per rerun (state.DashboardState) and widget callbacks send what
the user changed. Controls come from the algorithm registry (widgets.py)."""
from __future__ import annotations

import time

import numpy as np
import streamlit as st

from deepr_engine.run import registry
from deepr_engine.run.config import MODEL_KINDS, PRESETS, preset
from deepr_engine.run.data import DATASETS
from deepr_engine.run.views import RunView

from .. import widgets as w
from ..charts import figures
from ..components import feed as live_feed
from ..components import live_curves, live_graph
from ..state import DashboardState, dashboard, describe
from ..urlstate import UISettings, to_query

SLOW_TICK = 3.0      # s between heavy-view refreshes while playing
STATUS_TICK = 1.0    # s between counter refreshes while playing (the live views feed themselves)
HEARTBEAT = 5.0      # s between "tab still open" pings while paused (the run parks after 30 s)
VIEWS = ["Transitions", "Posterior", "Weights", "Decision boundary", "Tracked set", "Change log"]
SETUP_FIELDS = ("dataset", "hidden", "model", "algorithm", "seed")


# -- callbacks: they change the run and the page state; the page then draws ----------------------
def on_preset() -> None:
    s = dashboard()
    key = f"preset{s.gen}"
    name = st.session_state[key]
    if name is None:
        return
    ui = UISettings(name, s.ui.steps_per_frame, s.ui.max_steps_per_second)
    if not s.start(preset(name), ui):  # the selector goes back to the run that is running
        running = w.preset_index(s.ui.preset, s.frame.config) is not None
        st.session_state[key] = s.ui.preset if running else None


def on_setup(field: str) -> None:
    """Data set, hidden sizes, model kind, method or seed changed: a new run with the current
    settings and that change."""
    s = dashboard()
    key, cfg = f"{field}{s.gen}", s.frame.config
    value = st.session_state[key]
    new_cfg = None
    try:
        if value is None:
            raise ValueError("choose one")
        if field == "hidden":
            value = [int(v) for v in str(value).split(",") if v.strip()]
        changes = {field: int(value) if field == "seed" else value}
        n_layers = type(cfg)(**(cfg.to_dict() | changes)).n_rewired_layers
        if len(cfg.connectivity) not in (1, n_layers):  # a new layer count: one value for all
            changes["connectivity"] = [cfg.connectivity[0]]
        new_cfg = cfg.replace(**changes)
    except ValueError as exc:
        s.setup_error = f"{field}: {exc}"
    if new_cfg is None or not s.start(new_cfg):
        st.session_state[key] = (",".join(map(str, cfg.hidden)) if field == "hidden"
                                 else getattr(cfg, field))


def on_live(field: str, key: str) -> None:
    s = dashboard()
    value = w.value_of(field, key)
    if field == "theta_min" and value == 0:
        value = None  # back to the rule of thumb
    _send(s, **{field: value})


def on_conn(_: int) -> None:
    s = dashboard()
    conn = [st.session_state[f"conn{i}_{s.gen}"] for i in range(len(s.frame.layers))]
    _send(s, connectivity=conn)


def on_k_text() -> None:
    s = dashboard()
    text = st.session_state[f"ktext{s.gen}"].strip()
    if not text:
        return
    try:
        ks = [int(v) for v in text.split(",")]
    except ValueError:
        s.live_error = f"K: comma-separated whole numbers, one per layer; got {text!r}"
        return
    if _send(s, k=ks):
        w.set_conn_sliders(ks, s.frame, s.gen)


def _send(s: DashboardState, **changes) -> bool:
    try:
        s.run.set_hyperparams(**changes)
    except ValueError as exc:
        s.live_error = str(exc)
        return False
    s.live_error = ""
    return True


def on_speed() -> None:
    s = dashboard()
    s.ui.steps_per_frame = int(st.session_state[f"spf{s.gen}"])
    s.ui.max_steps_per_second = w.SPEEDS[st.session_state[f"speed{s.gen}"]]
    s.run.set_speed(s.ui.steps_per_frame, s.ui.max_steps_per_second)


def on_upload() -> None:
    s = dashboard()
    up = st.session_state.get(f"upload{s.gen}")
    if up is not None:
        s.load(up.getvalue())


def on_play() -> None:
    dashboard().run.play()


def on_pause() -> None:
    dashboard().run.pause()


def on_step(n: int) -> None:
    run = dashboard().run
    run.pause()
    run.step(n)


def on_reset() -> None:
    s = dashboard()
    s.start(s.frame.config if s.frame is not None else s.run.config)


def on_resume() -> None:
    dashboard().run.resume()


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
        s.live_error = ""
    except ValueError as exc:
        s.live_error = f"Tracked set: {exc}"


# -- sidebar ------------------------------------------------------------------------------------
def setup_controls(s: DashboardState, view: RunView) -> None:
    """Preset, data set, architecture, method, seed: a change starts a new run."""
    sb, cfg, g = st.sidebar, view.config, s.gen
    sb.header("Setup")
    idx = w.preset_index(s.ui.preset, cfg)
    sb.selectbox("Preset", list(PRESETS), key=w.init(f"preset{g}", None if idx is None else s.ui.preset),
                 on_change=on_preset, placeholder="custom setup (see below)",
                 help="A preset is a whole setup: data, network, method, seed and hyperparameters.")
    sb.selectbox("Data set", DATASETS, key=w.init(f"dataset{g}", cfg.dataset),
                 on_change=on_setup, args=("dataset",))
    sb.text_input("Hidden layer sizes", key=w.init(f"hidden{g}", ",".join(map(str, cfg.hidden))),
                  on_change=on_setup, args=("hidden",), help="comma-separated, e.g. 32,16")
    sb.segmented_control("Model", MODEL_KINDS, key=w.init(f"model{g}", cfg.model), on_change=on_setup,
                         args=("model",), help="mlp: fully connected; conv: two rewired conv layers "
                                               "before the fully connected ones (image data)")
    sb.selectbox("Algorithm", registry.names(), key=w.init(f"algorithm{g}", cfg.algorithm),
                 format_func=registry.label, on_change=on_setup, args=("algorithm",),
                 help="Deep R and soft-Deep R; the others are the methods they are compared with")
    sb.number_input("Seed", 0, 2**31 - 1, key=w.init(f"seed{g}", cfg.seed), on_change=on_setup,
                    args=("seed",))


def live_controls(s: DashboardState, view: RunView) -> None:
    """The method's live controls from the registry; each acts at the next step, no reset."""
    sb, hp, g = st.sidebar, view.hyperparams, s.gen
    sb.header("Live")
    for field in registry.get(view.config.algorithm).controls:
        value = hp.get(field, getattr(view.config, field))
        if field == "theta_min":
            value = view.config.theta_min
        key = f"{field}{g}"
        w.control(sb, field, value, key, on_live, (field, key), start=getattr(s.run.info.config, field))
    w.k_controls(sb, view, g, on_conn, on_k_text)
    if s.live_error:
        sb.error(s.live_error)
    sb.slider("Steps per frame", 1, 500, key=w.init(f"spf{g}", s.ui.steps_per_frame), on_change=on_speed,
              help=w.SPF_HELP)
    label = next((k for k, v in w.SPEEDS.items() if v == s.ui.max_steps_per_second), "unlimited")
    sb.selectbox("Speed limit", list(w.SPEEDS), key=w.init(f"speed{g}", label),
                 on_change=on_speed, help=w.SPEED_HELP)


def file_controls(s: DashboardState, view: RunView) -> None:
    sb, run = st.sidebar, s.run
    sb.header("Files")
    sb.download_button("Download checkpoint", run.checkpoint, file_name=f"deepr-step{view.step}.safetensors",
                       on_click="ignore", key="dl_ckpt")
    sb.download_button("Download metrics CSV", run.metrics_csv, file_name="metrics.csv", mime="text/csv",
                       on_click="ignore", key="dl_csv", help="step, series, value, previous; "
                       "hyperparameter changes as change:<field> rows")
    sb.file_uploader("Load checkpoint", type=["safetensors"], key=f"upload{s.gen}", on_change=on_upload,
                     help="Continues the uploaded run with its own setup (safetensors; nothing is unpickled)")
    if s.upload_error:
        sb.error(s.upload_error)
    sb.toggle("Developer info", key="debug", help="frame build time and the run's id")


# -- main area ----------------------------------------------------------------------------------
def layer_names(view: RunView) -> str:
    parts = [f"conv {l.shape[1]}→{l.shape[0]} ({l.shape[2]}x{l.shape[3]})" if len(l.shape) == 4
             else f"{l.shape[1]}→{l.shape[0]}" for l in view.layers]
    return ", ".join(parts)


def transport(s: DashboardState, view: RunView) -> None:
    """Play / Pause, Step 1/10/100, Reset, figure downloads."""
    row = st.container(horizontal=True, gap="small")
    if view.playing:
        row.button("Pause", key="pause", type="primary", on_click=on_pause)
    else:
        row.button("Play", key="play", type="primary", on_click=on_play, disabled=bool(view.paused_reason))
    for n in (1, 10, 100):
        row.button(f"Step {n}", key=f"step{n}", on_click=on_step, args=(n,))
    row.button("Reset", key="reset", on_click=on_reset, help="the same setup from step 0")
    with row.popover("Download figures"):
        info = s.run.info
        st.download_button("Graph (PNG)", lambda: s.with_trail(lambda trail: w.graph_png(view, info, trail)),
                           "graph.png", "image/png", on_click="ignore", key="dl_graph")
        st.caption("The live curves have a PNG button each (drawn in the browser); the plotly "
                   "charts below have a camera button in their corner.")
    if view.paused_reason:
        st.error(view.paused_reason)
        st.button("Resume after divergence", key="resume", on_click=on_resume)


def status_line(view: RunView) -> None:
    m = view.metrics
    row = st.container(horizontal=True, gap="medium")
    row.metric("Step", f"{view.step:,}", width="content")
    row.metric("Steps/s", f"{view.steps_per_second:,.0f}" if view.playing else "paused", width="content",
               help="wall clock: steps between two frames over the time between them")
    row.metric("Test accuracy", w.metric(m.get("test_acc")), width="content")
    row.metric("Train loss", w.metric(m.get("loss")), width="content", help="last minibatch")
    row.metric("Active connections", f"{sum(l.k for l in view.layers):,}", width="content")
    mem = view.model_bytes
    row.metric("Memory", f"{mem / 1e6:,.1f} MB" if mem >= 1e6 else f"{mem / 1e3:,.0f} kB", width="content",
               help="the model's parameters, gradients and rewiring state (O(K) in sparse compute)"
                    + (f"; the training process holds {view.process_rss / 1e6:,.0f} MB in all "
                       "(torch, data, telemetry)" if view.process_rss else ""))


def status_block(s: DashboardState, view: RunView) -> None:
    """The counters, the URL and the step counter (read by tests and benchmarks)."""
    status_line(view)
    sync_url(s, view)
    debug = ""
    if st.session_state.get("debug"):
        debug = f" · frame built in <span id='frame-ms'>{s.frame_ms:.0f}</span> ms · run {s.run.run_id}"
        if s.feed is not None:
            debug += f" · feed: {s.feed.served:,} frames served"
    st.caption(f"step <span id='step-counter'>{view.step}</span>{debug}", unsafe_allow_html=True)


def graph_title(view: RunView) -> tuple[list, bool]:
    """The graph's heading; returns the fully connected layers it draws and whether the model
    has conv layers (their kernels are drawn in the Weights view)."""
    st.markdown("**Connectivity graph**", help=live_graph.LEGEND)
    linear = [l for l in view.layers if len(l.shape) == 2]
    conv = len(linear) < len(view.layers)
    if conv:
        st.caption("The graph shows the fully connected layers (the conv kernels are in Weights).")
    return linear, conv


CURVES = dict(key="curves", charts=("accuracy", "walks", "transitions"), height=190)


def feed_views(s: DashboardState, view: RunView) -> None:
    """The live views fed over HTTP (components/feed.py): the page asks for each frame itself,
    so no Streamlit rerun per frame; a fragment refreshes the counters every STATUS_TICK."""
    st.fragment(run_every=STATUS_TICK if view.playing else None)(status_fragment)()
    info = s.run.info
    left, right = st.columns([1.25, 1])
    with left:
        _, conv = graph_title(view)
        feed = s.live_feed(lambda: {
            "graph": live_graph.GraphChannel(None if conv else info.image_shape, s.run.run_id),
            "curves": live_curves.CurvesChannel(CURVES["charts"], s.run.run_id)})
        live_graph.feed_view(feed.url, key="graph", height=440, playing=view.playing, step=view.step)
    with right:
        live_curves.feed_view(feed.url, **CURVES, playing=view.playing, step=view.step)


def status_fragment() -> None:
    s = dashboard()
    t0 = time.perf_counter()
    view = s.recent_view()
    if view.playing != s.playing:
        st.rerun(scope="app")  # the run stopped by itself (diverged) or the buttons are stale
    s.frame_ms = (time.perf_counter() - t0) * 1e3
    status_block(s, view)


def live_views() -> None:
    """Without the feed (a server that does not serve it: AppTest), every frame while playing
    is a rerun of this fragment: counters, the graph and the curves. Both are drawn in the
    browser (canvas components): the network and the history go once, then only what changed,
    and the page asks for the next frame when it has drawn the last (no piled-up ticks)."""
    s = dashboard()
    t0 = time.perf_counter()
    view = s.for_fragment()
    if view.playing != s.playing:
        st.rerun(scope="app")  # the run stopped by itself (diverged) or the buttons are stale
    status_block(s, view)
    info = s.run.info
    left, right = st.columns([1.25, 1])
    with left:
        linear, conv = graph_title(view)
        data = live_graph.from_layers(linear, view.step, None if conv else info.image_shape, s.run.run_id)
        live_graph.live_graph(data, key="graph", height=440, playing=view.playing)
    with right:
        live_curves.live_curves(live_curves.from_view(view, run_id=s.run.run_id), **CURVES,
                                playing=view.playing, pace="follow")
    s.frame_ms = (time.perf_counter() - t0) * 1e3  # shown by the next frame (developer info)


def slow_views() -> None:
    """Heavier views, refreshed every SLOW_TICK while playing, from the latest frame (they fetch
    no frame of their own: the graph keeps every event)."""
    s = dashboard()
    view, info = s.frame, s.run.info
    choice = st.session_state.get("view") or VIEWS[0]
    tel = view.telemetry
    if choice == "Transitions":
        a, b = st.columns(2)
        a.plotly_chart(figures.transitions_figure(tel), key="trans_chart")
        b.plotly_chart(figures.raster_figure(tel), key="raster_chart")
        a.plotly_chart(figures.lifetime_figure(tel), key="life_chart")
        b.plotly_chart(figures.ever_active_figure(tel), key="ever_chart")
    elif choice == "Posterior":
        snap = s.snapshot()
        hp = snap.hyperparams
        if "temperature" not in hp:
            st.info(f"{registry.label(snap.config.algorithm)} has no temperature: the posterior "
                    "view is for Deep R and soft-Deep R.")
            return
        st.plotly_chart(figures.posterior_figure(snap, hp["alpha"], hp["temperature"], hp.get("theta_min")),
                        key="post_chart")
        st.caption("Theory (docs/algorithms.md): density of θ with zero gradient — exponential with "
                   "mean T/α on active θ; for soft-Deep R flat on [θ_min, 0).")
    elif choice == "Weights":
        snap = s.snapshot()
        cols = st.columns(min(3, len(snap.layers)))
        for i, layer in enumerate(snap.layers):
            cols[i % len(cols)].plotly_chart(figures.weights_figure(layer, f"Layer {i} weights {layer.shape}"),
                                             key=f"w_chart{i}")
        st.caption("Blue: positive, red: negative (as in the graph); dormant connections are 0.")
        if info.image_shape and snap.config.model == "mlp":
            a, b = st.columns(2)
            a.plotly_chart(figures.image_figure(figures.fan_in_images(snap.layers[0], info.image_shape),
                                                "Fan-in masks of hidden units", zmid=0.5), key="fanin_chart")
            b.plotly_chart(figures.image_figure(figures.fan_out_image(snap.layers[0], info.image_shape),
                                                "Active outgoing connections per pixel", colorscale="Viridis"),
                           key="fanout_chart")
    elif choice == "Decision boundary":
        if info.is_2d:
            xs = np.linspace(-2.5, 2.5, 80)
            x, y = info.points
            st.plotly_chart(figures.boundary_figure(xs, xs, s.run.predict_grid(xs, xs), x, y),
                            key="boundary_chart")
        else:
            st.info("The decision boundary is drawn for 2-D data sets (spiral, moons, circles, xor, blobs).")
    elif choice == "Tracked set":
        tracked_controls(view)
    else:
        change_log(view)


def tracked_controls(view: RunView) -> None:
    tel = view.telemetry
    st.write(f"Tracking {len(tel.tracked_pos)} connections: "
             + ", ".join(f"L{l}:{p}" for l, p in zip(tel.tracked_layer, tel.tracked_pos)))
    c1, c2 = st.columns(2)
    c1.number_input("Sample size", 2, 200, max(2, len(tel.tracked_pos)), key="track_n")
    c1.button("Re-sample tracked connections", key="track_sample", on_click=on_track_sample)
    c2.text_input("Track these (layer:position, comma-separated)", key="track_text", placeholder="0:12, 1:40")
    c2.button("Track", key="track_apply", on_click=on_track)


def change_log(view: RunView) -> None:
    from ..charts import changes
    rows = [{"step": c[0], "change": changes.label(c), "field": c[1]} for c in view.telemetry.changes]
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch")
    else:
        st.caption("No hyperparameter change yet (moves of the live controls are listed here).")


# -- the page -----------------------------------------------------------------------------------
def sync_url(s: DashboardState, view: RunView) -> None:
    """The setup in the URL. Written by every run of the page and its fragments: an update
    sent while a fragment run is in flight can be lost in the browser, the next one repairs it."""
    hp = view.hyperparams
    st.query_params.from_dict(to_query(view.config, s.ui, lr=hp["lr"], batch_size=hp["batch_size"],
                                       connectivity=w.k_target_connectivity(view)))


def keepalive() -> None:
    """While paused: the run hears from its tab (it parks after 30 s of silence); the URL is
    written again."""
    s = dashboard()
    w.heartbeat([s.run])
    if s.frame is not None:
        sync_url(s, s.frame)


def render() -> None:
    s = dashboard()
    if s.run is None:
        s.init_from_url(dict(st.query_params))
    for msg in s.url_errors:
        st.error(msg)
    if s.notice:
        st.info(s.notice)
    if s.setup_error:
        st.error(f"Setup not applied: {s.setup_error}")
        s.setup_error = ""
    view = w.fetch_or_offer_restart(lambda: s.fetch(force=True), "this run's state is lost. "
                                    "Start it again from its setup.", "restart", on_reset)
    if view is None:
        return
    setup_controls(s, view)
    live_controls(s, view)
    file_controls(s, view)
    sync_url(s, view)
    # Live frames replace elements in place: no fading of the old frame while the next one builds.
    st.html("<style>.stElementContainer[data-stale='true']{opacity:1!important;transition:none!important}"
            "</style>")
    st.title("DeepR Studio")
    st.caption(f"{describe(view.config)} · layers {layer_names(view)} · device {s.run.info.device}")
    transport(s, view)
    s.playing = view.playing
    if live_feed.available():
        feed_views(s, view)
    else:
        st.fragment(run_every=live_graph.run_every("graph", view.playing))(live_views)()
    st.segmented_control("View", VIEWS, default=VIEWS[0], key="view")
    st.fragment(run_every=SLOW_TICK if view.playing else None)(slow_views)()
    if not view.playing:
        st.fragment(run_every=HEARTBEAT)(keepalive)()
