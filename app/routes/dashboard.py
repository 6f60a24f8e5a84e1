"""The dashboard page. Training runs in the tab's own process (BackgroundSession); the page
draws the one frame it fetches per rerun (state.DashboardState) and widget callbacks send what
the user changed. Controls come from the algorithm registry (widgets.py)."""
from __future__ import annotations

import time
from functools import partial

import streamlit as st

from deepr_engine.run import registry
from deepr_engine.run.config import MODEL_KINDS, PRESETS, preset
from deepr_engine.run.data import DATASETS
from deepr_engine.run.views import RunView

from .. import tour
from .. import widgets as w
from .. import public
from . import public_view, replay, run_views, runs_panel
from ..components import feed as live_feed
from ..components import live_curves, live_graph
from ..state import DashboardState, dashboard, describe
from ..text import plain
from ..urlstate import UISettings, holdout_note, to_query

SLOW_TICK = 3.0      # s between heavy-view refreshes while playing
STATUS_TICK = 1.0    # s between counter refreshes while playing (the live views feed themselves)
HEARTBEAT = 5.0      # s between "tab still open" pings while paused (the run parks after 30 s)
SETUP_FIELDS = ("dataset", "hidden", "model", "algorithm", "seed")


def field_errors() -> dict[str, str]:
    """Setup field -> why its last value was refused (shown beside the field until a new run)."""
    return st.session_state.setdefault("setup_field_errors", {})


# -- callbacks: they change the run and the page state; the page then draws ----------------------
# Every callback gets the generation its widget was drawn for: several widgets can change in one
# rerun (type into a field, then click a control), and a callback that ran before this one may
# have started a new run (a new generation) already. Each reads its own widget's key; changes of
# the setup build on the run that is current now, so both of the user's changes apply.
def on_preset(gen: int) -> None:
    s = dashboard()
    key = f"preset{gen}"
    name = st.session_state[key]
    if name is None:
        return
    with s.changing():
        ui = UISettings(name, s.ui.steps_per_frame, s.ui.max_steps_per_second)
        started = s.start(preset(name), ui)
    if started:
        field_errors().clear()
    else:  # the selector goes back to the run that is running
        field_errors()["preset"] = s.setup_error
        s.setup_error = ""
        running = w.preset_index(s.ui.preset, s.run.info.config) is not None
        st.session_state[key] = s.ui.preset if running else None


def setup_change(cfg, field: str, value):
    """The config of a new run: `cfg` with `field` set to the widget's `value` (a hidden-size
    text parsed; one connectivity for all layers when the layer count changes)."""
    if value is None:
        raise ValueError("choose one")
    if field == "hidden":
        try:
            value = [int(v) for v in str(value).split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"comma-separated whole numbers, e.g. 32,16; got {value!r}") from None
        if not value:   # an emptied field is a slip, not a request for a network without hidden layers
            raise ValueError("give at least one hidden layer size, e.g. 32,16")
    changes = {field: int(value) if field == "seed" else value}
    n_layers = type(cfg)(**(cfg.to_dict() | changes)).n_rewired_layers
    if len(cfg.connectivity) not in (1, n_layers):  # a new layer count: one value for all
        changes["connectivity"] = [cfg.connectivity[0]]
    return cfg.replace(**changes)


def on_setup(gen: int, field: str) -> None:
    """Data set, hidden sizes, model kind, method or seed changed: a new run with the current
    run's setup and that change. A bad value keeps the run and says why beside its field."""
    s = dashboard()
    with s.changing():
        key, cfg = f"{field}{gen}", s.run.config
        new_cfg = None
        try:
            new_cfg = setup_change(cfg, field, st.session_state[key])
        except ValueError as exc:
            s.setup_error = str(exc)
        if new_cfg is not None and s.start(new_cfg):
            field_errors().clear()
            return
        field_errors()[field] = s.setup_error
        s.setup_error = ""
        if gen == s.gen:  # the widget shows the running setup again
            st.session_state[key] = (",".join(map(str, cfg.hidden)) if field == "hidden"
                                     else getattr(cfg, field))


def on_live(field: str, key: str) -> None:
    s = dashboard()
    value = w.value_of(field, key)
    if field == "theta_min" and value == 0:
        value = None  # back to the rule of thumb
    _send(s, **{field: value})


def on_conn(gen: int, _: int) -> None:
    s = dashboard()
    conn, keys = [], st.session_state
    while f"conn{len(conn)}_{gen}" in keys:  # the sliders drawn for that generation's layers
        conn.append(keys[f"conn{len(conn)}_{gen}"])
    _send(s, connectivity=conn)


def on_k_text(gen: int) -> None:
    s = dashboard()
    text = st.session_state[f"ktext{gen}"].strip()
    if not text:
        return
    try:
        ks = [int(v) for v in text.split(",")]
    except ValueError:
        s.live_error = f"K: comma-separated whole numbers, one per layer; got {text!r}"
        return
    if _send(s, k=ks) and gen == s.gen and s.frame is not None:
        w.set_conn_sliders(ks, s.frame, gen)


def _send(s: DashboardState, **changes) -> bool:
    try:
        s.run.set_hyperparams(**changes)
    except ValueError as exc:
        s.live_error = str(exc)
        return False
    s.live_error = ""
    return True


def on_speed(gen: int) -> None:
    s = dashboard()
    s.ui.steps_per_frame = int(st.session_state[f"spf{gen}"])
    s.ui.max_steps_per_second = w.SPEEDS[st.session_state[f"speed{gen}"]]
    s.run.set_speed(s.ui.steps_per_frame, public.speed(s.ui.max_steps_per_second))


def on_upload(gen: int) -> None:
    s = dashboard()
    up = st.session_state.get(f"upload{gen}")
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


# -- sidebar ------------------------------------------------------------------------------------
def setup_controls(s: DashboardState, view: RunView) -> None:
    """Preset, data set, architecture, method, seed: a change starts a new run; a refused value
    is said beside its field."""
    sb, cfg, g = st.sidebar, view.config, s.gen
    errors = field_errors()
    sb.header("Setup")
    idx = w.preset_index(s.ui.preset, s.run.info.config)
    sb.selectbox("Preset", list(PRESETS), key=w.init(f"preset{g}", None if idx is None else s.ui.preset),
                 on_change=on_preset, args=(g,), placeholder="custom",
                 help="A preset is a whole setup: data, network, method, seed and hyperparameters.")
    setup_error(sb, errors, "preset")
    sb.selectbox("Data set", DATASETS, key=w.init(f"dataset{g}", cfg.dataset),
                 on_change=on_setup, args=(g, "dataset"))
    setup_error(sb, errors, "dataset")
    sb.text_input("Hidden layer sizes", key=w.init(f"hidden{g}", ",".join(map(str, cfg.hidden))),
                  on_change=on_setup, args=(g, "hidden"), help="comma-separated, e.g. 32,16")
    setup_error(sb, errors, "hidden")
    sb.segmented_control("Model", MODEL_KINDS, key=w.init(f"model{g}", cfg.model), on_change=on_setup,
                         args=(g, "model"), help="mlp: fully connected; conv: two rewired conv layers "
                                                 "before the fully connected ones (image data)")
    setup_error(sb, errors, "model")
    sb.selectbox("Algorithm", registry.names(), key=w.init(f"algorithm{g}", cfg.algorithm),
                 format_func=registry.label, on_change=on_setup, args=(g, "algorithm"),
                 help="Deep R and soft-Deep R; the others are the methods they are compared with")
    setup_error(sb, errors, "algorithm")
    sb.number_input("Seed", 0, 2**31 - 1, key=w.init(f"seed{g}", cfg.seed), on_change=on_setup,
                    args=(g, "seed"))
    setup_error(sb, errors, "seed")


def setup_error(where, errors: dict[str, str], field: str) -> None:
    if errors.get(field):
        where.error(plain(f"{field}: {errors[field]} (the run is kept)"), icon=":material/error:")


def live_controls(s: DashboardState, view: RunView) -> None:
    """The method's live controls from the registry; each acts at the next step, no reset."""
    sb, hp, g = st.sidebar, view.hyperparams, s.gen
    sb.header("Live")
    for field in registry.get(view.config.algorithm).controls:
        value = hp.get(field, getattr(view.config, field))
        if field == "theta_min":
            value = view.config.theta_min
        key = f"{field}{g}"
        w.control(sb, field, value, key, on_live, (field, key), start=getattr(s.run.info.config, field),
                  cfg=view.config)
    w.k_controls(sb, view, g, partial(on_conn, g), partial(on_k_text, g))
    if s.live_error:
        sb.error(plain(s.live_error))
    sb.slider("Steps per frame", 1, 500, key=w.init(f"spf{g}", s.ui.steps_per_frame), on_change=on_speed, args=(g,),
              help=w.SPF_HELP)
    label = next((k for k, v in w.SPEEDS.items() if v == s.ui.max_steps_per_second), "unlimited")
    sb.selectbox("Speed limit", list(w.SPEEDS), key=w.init(f"speed{g}", label),
                 on_change=on_speed, args=(g,), help=w.SPEED_HELP)


def file_controls(s: DashboardState, view: RunView) -> None:
    sb, run = st.sidebar, s.run
    sb.header("Files")
    sb.download_button("Download checkpoint", run.checkpoint, file_name=f"deepr-step{view.step}.safetensors",
                       on_click="ignore", key="dl_ckpt")
    sb.download_button("Download metrics CSV", run.metrics_csv, file_name="metrics.csv", mime="text/csv",
                       on_click="ignore", key="dl_csv", help="step, series, value, previous; "
                       "hyperparameter changes as change:<field> rows")
    sb.file_uploader("Load checkpoint", type=["safetensors"], key=f"upload{s.gen}", on_change=on_upload,
                     args=(s.gen,),
                     help="Continues the uploaded run with its own setup (safetensors; nothing is unpickled)")
    if s.upload_error:
        sb.error(plain(s.upload_error))
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
    row.button("Reset", key="reset", on_click=on_reset, help="the same setup from step 0 (this run "
               "is kept in the Runs list)")
    runs_panel.fork_controls(row, s, view)
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
    s.history.touch()
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


# -- the page -----------------------------------------------------------------------------------
def sync_url(s: DashboardState, view: RunView) -> None:
    """The setup in the URL. Written by every run of the page and its fragments: an update
    sent while a fragment run is in flight can be lost in the browser, the next one repairs it."""
    hp = view.hyperparams
    s.url_run = s.ui.run_id
    st.query_params.from_dict(to_query(view.config, s.ui, lr=hp["lr"], batch_size=hp["batch_size"],
                                       connectivity=w.k_target_connectivity(view)))


def keepalive() -> None:
    """While paused: the run hears from its tab (it parks after 30 s of silence); the URL is
    written again."""
    s = dashboard()
    w.heartbeat([s.run])
    s.history.touch()
    # played from another tab on this run: follow it (the page's own read counts when it is new)
    if s.recent_view(within=1.0).playing != s.playing:
        st.rerun(scope="app")
    if s.frame is not None:
        sync_url(s, s.frame)


def render() -> None:
    s = dashboard()
    s.visitor = s.visitor or public.visitor_id()
    if s.run is None:
        s.init_from_url(dict(st.query_params))
    if s.run is None:   # a public demo at its limit: the visitor waits in line
        return public_view.waiting_room(s)
    runs_panel.follow_url(s)
    for msg in s.url_errors:  # messages quote what users typed or uploaded: shown as text
        st.error(plain(msg))
    if s.notice:
        st.info(plain(s.notice))
    if s.run is not None and s.run.restart_note:
        st.warning(plain(s.run.restart_note))
    if s.setup_error:
        st.error(plain(f"Setup not applied: {s.setup_error}"))
        s.setup_error = ""
    view = w.fetch_or_offer_restart(lambda: s.fetch(), "this run's state is lost. "
                                    "Start it again from its setup.", "restart", on_reset)
    if view is None:
        return
    view = tour.apply_pending(s, view)  # a tour stop takes effect before the sidebar is drawn
    runs_panel.runs_list(s)
    if not s.read_only:
        setup_controls(s, view)
        live_controls(s, view)
        file_controls(s, view)
    sync_url(s, view)
    # Live frames replace elements in place: no fading of the old frame while the next one builds.
    st.html("<style>.stElementContainer[data-stale='true']{opacity:1!important;transition:none!important}"
            "</style>")
    st.title("DeepR Studio")
    note = holdout_note(view.config)
    st.caption(f"{describe(view.config)} · layers {layer_names(view)} · device {s.run.info.device}"
               + (f" · {note}" if note else ""))
    if s.read_only:
        public_view.read_only_bar(s)
    else:
        transport(s, view)
        tour.panel(s, view)
    s.playing = view.playing
    if live_feed.available():
        feed_views(s, view)
    else:
        st.fragment(run_every=live_graph.run_every("graph", view.playing))(live_views)()
    replay.panel(s, view)
    st.segmented_control("View", run_views.VIEWS, default=run_views.VIEWS[0], key="view")
    st.fragment(run_every=SLOW_TICK if view.playing else None)(run_views.slow_views)()
    if not view.playing:
        st.fragment(run_every=HEARTBEAT)(keepalive)()
