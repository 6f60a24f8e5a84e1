"""The dashboard page: one function per UI region; state in st.session_state. Training runs in
the tab's own process (deepr_engine.run.background.BackgroundSession); the page only sends
requests and draws the frames it gets back."""
from __future__ import annotations

import io
import time

import numpy as np
import streamlit as st

from deepr_engine.run.background import BackgroundSession, Frame, RunInfo
from deepr_engine.run.config import ALGORITHM_NAMES, ALGORITHMS, PRESETS, RunConfig, preset
from deepr_engine.run.data import DATASETS

from ..charts import figures, graph, raster
from ..urlstate import UISettings, from_query, to_query

T_VALUES = [0.0] + [float(f"{m}e{e}") for e in range(-14, 0) for m in (1, 3)]
ALPHA_VALUES = [0.0] + [float(f"{m}e{e}") for e in range(-8, 0) for m in (1, 3)]
LR_VALUES = [float(f"{m}e{e}") for e in range(-4, 1) for m in (1, 2, 5)]
BATCH_VALUES = [1, 2, 4, 8, 10, 16, 32, 64, 128, 256]
SPEEDS = {"unlimited": 0.0, "1000 steps/s": 1000.0, "100 steps/s": 100.0, "10 steps/s": 10.0,
          "2 steps/s": 2.0}
LIVE_TICK = 0.23   # s between live frames while playing
BIG_LIVE_TICK = 0.3  # the same for networks too big for plotly (leaves the CPU to training)
CURVE_TICK = 0.6   # s between redraws of the (slowly changing) curves while playing
BIG_GRAPH_TICK = 0.5  # s between redraws of a graph too big for plotly while playing
SLOW_TICK = 3.0    # s between heavy-view refreshes while playing
HEARTBEAT = 5.0    # s between "tab still open" pings while paused (the run parks after 30 s)
VIEWS = ["Transitions", "Posterior", "Weights", "Decision boundary", "Tracked set"]


def _nearest(values, v):
    return min(values, key=lambda x: abs(np.log10(x + 1e-300) - np.log10(v + 1e-300)) if x > 0 and v > 0
               else (0 if x == v else 1e9))


def _fmt(v: float) -> str:
    return "0" if v == 0 else f"{v:.0e}" if v < 0.01 else f"{v:g}"


# -- session lifecycle ---------------------------------------------------------------------------
def _start(source: RunConfig | bytes, ui: UISettings) -> bool:
    """A new run in its own process; on a bad setup the current run stays (or the default
    preset starts when there is none). Returns whether the new run started."""
    old = st.session_state.get("run")
    try:
        run = BackgroundSession(source, steps_per_frame=ui.steps_per_frame,
                                max_steps_per_second=ui.max_steps_per_second)
    except (ValueError, FileNotFoundError) as exc:
        st.session_state["setup_error"] = str(exc)
        if old is not None:
            return False
        run = BackgroundSession(preset("digits-demo"))
    if old is not None:
        old.close()
    st.session_state["run"] = run
    st.session_state["ui"] = ui
    st.session_state["gen"] = st.session_state.get("gen", 0) + 1
    return True


def _run() -> BackgroundSession:
    return st.session_state["run"]


def init_state() -> None:
    if "run" in st.session_state:
        return
    cfg, ui = from_query(dict(st.query_params))
    st.session_state["url_errors"] = list(ui.errors)
    _start(cfg, ui)


# -- sidebar regions ------------------------------------------------------------------------------
def setup_controls(frame: Frame) -> RunConfig | None:
    """Data set, preset, architecture, algorithm, seed: a change starts a new run."""
    ui, cfg = st.session_state["ui"], frame.config
    st.sidebar.header("Setup")
    name = st.sidebar.selectbox("Preset", list(PRESETS), index=list(PRESETS).index(ui.preset), key="preset")
    if name != ui.preset:
        ui.preset = name
        return preset(name)
    dataset = st.sidebar.selectbox("Data set", DATASETS, index=DATASETS.index(cfg.dataset), key="dataset")
    hidden = st.sidebar.text_input("Hidden layer sizes", ",".join(map(str, cfg.hidden)), key="hidden",
                                   help="comma-separated, e.g. 32,16")
    algorithm = st.sidebar.selectbox("Algorithm", ALGORITHMS, index=ALGORITHMS.index(cfg.algorithm),
                                     format_func=ALGORITHM_NAMES.get, key="algorithm",
                                     help="Deep R and soft-Deep R; the others are the methods they are "
                                          "compared with (Compare page)")
    seed = st.sidebar.number_input("Seed", 0, 2**31 - 1, cfg.seed, key="seed")
    try:
        sizes = [int(v) for v in hidden.split(",") if v.strip()]
        new = cfg.replace(dataset=dataset, hidden=sizes, algorithm=algorithm, seed=int(seed),
                          connectivity=cfg.connectivity if len(sizes) == len(cfg.hidden) else [cfg.connectivity[0]])
    except ValueError as exc:
        st.sidebar.error(f"Setup: {exc}")
        return None
    return new if new.to_dict() != cfg.to_dict() else None


def live_controls(frame: Frame) -> dict:
    """Sliders that act at the next step, without a reset. Returns the requested values."""
    gen, hp = st.session_state["gen"], frame.hyperparams
    st.sidebar.header("Live")
    out = {}
    algorithm = frame.config.algorithm
    if algorithm in ("deepr", "soft-deepr"):  # the others have no noise
        out["temperature"] = st.sidebar.select_slider("Temperature T", T_VALUES,
                                                      _nearest(T_VALUES, hp["temperature"]),
                                                      format_func=_fmt, key=f"T{gen}")
    if algorithm in ("deepr", "soft-deepr", "l1"):
        out["alpha"] = st.sidebar.select_slider("L1 strength alpha", ALPHA_VALUES,
                                                _nearest(ALPHA_VALUES, hp["alpha"]),
                                                format_func=_fmt, key=f"alpha{gen}")
    out["lr"] = st.sidebar.select_slider("Learning rate", LR_VALUES, _nearest(LR_VALUES, hp["lr"]),
                                         format_func=_fmt, key=f"lr{gen}")
    out["batch_size"] = st.sidebar.select_slider("Batch size", BATCH_VALUES,
                                                 _nearest(BATCH_VALUES, hp["batch_size"]), key=f"batch{gen}")
    if algorithm == "dense":
        return out  # every connection stays: no K
    st.sidebar.caption("K: connectivity per layer (active count shown)")
    conn = []
    for i, layer in enumerate(frame.layers):
        c = st.sidebar.slider(f"Layer {i} connectivity", 0.001, 1.0, float(round(layer["connectivity"], 3)),
                              step=0.001, format="%.3f", key=f"conn{i}_{gen}",
                              help=f"{layer['n_positions']} positions")
        conn.append(c)
        st.sidebar.caption(f"Layer {i}: K = {layer['k']} of {layer['n_positions']}")
    out["connectivity"] = conn
    out["k_text"] = st.sidebar.text_input("…or exact K per layer", "", key=f"ktext{gen}",
                                          placeholder=",".join(str(l["k"]) for l in frame.layers))
    if frame.config.algorithm == "soft-deepr":
        tm = st.sidebar.number_input("theta_min (0 = rule of thumb)", max_value=0.0,
                                     value=float(frame.config.theta_min), format="%.3g", key=f"tmin{gen}")
        out["theta_min"] = tm
    return out


def speed_controls(run: BackgroundSession) -> None:
    ui, gen = st.session_state["ui"], st.session_state["gen"]
    ui.steps_per_frame = st.sidebar.slider("Steps per frame", 1, 500, ui.steps_per_frame, key=f"spf{gen}")
    label = next((k for k, v in SPEEDS.items() if v == ui.max_steps_per_second), "unlimited")
    ui.max_steps_per_second = SPEEDS[st.sidebar.selectbox("Speed limit", list(SPEEDS),
                                                          list(SPEEDS).index(label), key=f"speed{gen}")]
    run.set_speed(ui.steps_per_frame, ui.max_steps_per_second)


def apply_live(values: dict, frame: Frame) -> bool:
    """Send what the user moved since the last run of the page; a bad value is shown (until it
    is changed) and nothing changes. Compared with the widgets' previous values, not with the
    run's: K drifts under soft-Deep R and pruning, lr decays per epoch. Returns whether
    anything was sent."""
    gen = st.session_state["gen"]
    prev = st.session_state.get("live_prev")
    st.session_state["live_prev"] = (gen, dict(values))
    if prev is None or prev[0] != gen:
        return False  # first look at this run's widgets: nothing was moved yet
    moved = {k: v for k, v in values.items() if v != prev[1].get(k)}
    if not moved:
        if st.session_state.get("live_error"):
            st.sidebar.error(st.session_state["live_error"])
        return False
    st.session_state.pop("live_error", None)
    changes = {k: moved[k] for k in ("temperature", "alpha", "lr", "batch_size") if k in moved}
    if "k_text" in moved and values["k_text"].strip():
        try:
            changes["k"] = [int(v) for v in values["k_text"].split(",")]
        except ValueError:
            st.session_state["live_error"] = (f"K: comma-separated whole numbers, one per layer; "
                                              f"got {values['k_text']!r}")
    elif "connectivity" in moved:
        changes["connectivity"] = values["connectivity"]
    if "theta_min" in moved:
        changes["theta_min"] = values["theta_min"] if values["theta_min"] < 0 else None
    if changes:
        try:
            _run().set_hyperparams(**changes)
        except ValueError as exc:
            st.session_state["live_error"] = str(exc)
    if st.session_state.get("live_error"):
        st.sidebar.error(st.session_state["live_error"])
        return False
    return bool(changes)


def file_controls(run: BackgroundSession, frame: Frame) -> None:
    st.sidebar.header("Files")
    st.sidebar.download_button("Download checkpoint", run.checkpoint,
                               file_name=f"deepr-step{frame.step}.safetensors", on_click="ignore",
                               key="dl_ckpt")
    st.sidebar.download_button("Download metrics CSV", run.metrics_csv, file_name="metrics.csv",
                               mime="text/csv", on_click="ignore", key="dl_csv")
    up = st.sidebar.file_uploader("Load checkpoint", type=["safetensors"], key="upload")
    if up is not None and st.session_state.get("loaded_upload") != up.file_id:
        st.session_state["loaded_upload"] = up.file_id
        if _start(up.getvalue(), st.session_state["ui"]):
            st.session_state.pop("upload_error", None)
            st.rerun()
        st.session_state["upload_error"] = st.session_state.pop("setup_error")
    if st.session_state.get("upload_error"):
        st.sidebar.error(st.session_state["upload_error"])


# -- main area --------------------------------------------------------------------------------
def transport(run: BackgroundSession, frame: Frame) -> None:
    """Play / Pause, Step 1/10/100, Reset."""
    cols = st.columns([1.2, 1, 1, 1, 1, 6])
    if frame.playing:
        if cols[0].button("Pause", key="pause", type="primary"):
            run.pause()
            st.rerun()
    elif cols[0].button("Play", key="play", type="primary", disabled=bool(frame.paused_reason)):
        run.play()
        st.rerun()
    for col, n in zip(cols[1:4], (1, 10, 100)):
        if col.button(f"Step {n}", key=f"step{n}"):
            run.pause()
            run.step(n)
            st.rerun()
    if cols[4].button("Reset", key="reset"):
        _start(frame.config, st.session_state["ui"])
        st.rerun()
    if frame.paused_reason:
        c = cols[5]
        c.error(frame.paused_reason)
        if c.button("Resume after divergence", key="resume"):
            run.resume()
            st.rerun()


def status_line(frame: Frame) -> None:
    m = frame.metrics
    c = st.columns(5)
    c[0].metric("Step", f"{frame.step:,}")
    c[1].metric("Steps/s", f"{frame.steps_per_second:,.0f}" if frame.playing else "paused")
    c[2].metric("Test accuracy", f"{m['test_acc']:.3f}")
    c[3].metric("Train loss", f"{m['loss']:.3f}")
    c[4].metric("Active connections", f"{sum(l['k'] for l in frame.layers):,}")


def _theta_min(frame: Frame) -> list[float] | None:
    return frame.hyperparams.get("theta_min")


def live_views(run: BackgroundSession) -> None:
    """Redrawn every LIVE_TICK while playing: counters, graph, curves, walks. While playing
    everything here is a server-drawn PNG (cheap for the browser); paused, the same views are
    interactive plotly charts."""
    t0 = time.perf_counter()
    frame = run.frame()
    if frame.playing != st.session_state.get("playing"):
        st.rerun(scope="app")  # the run paused by itself (diverged) or the buttons are stale
    tel = frame.telemetry
    status_line(frame)
    left, right = st.columns([1.25, 1])
    with left:
        st.markdown("**Connectivity graph** — blue +, red −, green: activated last step, grey: pruned; "
                    "white units are dead")
        draw_graph(frame, run.info, interactive=not frame.playing)
    with right:
        st.markdown("**Accuracy and loss**")
        if frame.playing:
            _jpeg("acc", lambda: raster.accuracy_png(tel, size=(520, 300)))
        else:
            st.plotly_chart(figures.accuracy_figure(tel), key="acc_chart", config={"displayModeBar": False})
    st.markdown("**θ random walks** of the tracked connections (grey: dormant)")
    if frame.playing:
        _jpeg("walks", lambda: raster.walks_png(tel, figures.LAYER_COLORS, size=(1160, 250),
                                                theta_min=_theta_min(frame)))
    else:
        st.plotly_chart(figures.walks_figure(tel, theta_min=_theta_min(frame)), key="walks_chart",
                        config={"displayModeBar": False})
    st.session_state["frame_ms"] = (time.perf_counter() - t0) * 1e3
    st.caption(f"frame built in <span id='frame-ms'>{st.session_state['frame_ms']:.0f}</span> ms · "
               f"step counter <span id='step-counter'>{frame.step}</span>", unsafe_allow_html=True)


def _jpeg(name: str, draw, every: float = CURVE_TICK) -> None:
    """A live image redrawn at most every `every` seconds; in between the same bytes go out
    again, which the browser already holds (same media URL: no fetch, no decode)."""
    cache = st.session_state.setdefault("jpeg_cache", {})
    when, data = cache.get(name, (-1e9, None))
    if time.monotonic() - when >= every:
        buf = io.BytesIO()
        draw().save(buf, format="JPEG", quality=85)
        data = buf.getvalue()
        cache[name] = (time.monotonic(), data)
    st.image(data, width="stretch")


def draw_graph(frame: Frame, info: RunInfo, interactive: bool, key: str = "graph_chart") -> None:
    lin = [l for l in frame.layers if len(l["shape"]) == 2]
    sizes = [info.n_features, *frame.config.hidden, info.n_classes]
    image_shape = info.image_shape
    if frame.config.model == "conv":
        st.info("Graph shows the fully connected layers only (the conv kernels are in Weights).")
        sizes, image_shape = [lin[0]["shape"][1], *[l["shape"][0] for l in lin]], None
    layout = graph.layered_layout(tuple(sizes), image_shape)
    big = graph.n_edges(lin) > graph.PLOTLY_EDGE_LIMIT
    if interactive and not big:
        st.plotly_chart(graph.plotly_graph(lin, layout), key=key, config={"displayModeBar": False})
    else:  # a big graph refreshes more slowly while playing (drawing it is the costly part)
        _jpeg(key, lambda: graph.raster_graph(lin, layout, size=(660, 380)),
              every=BIG_GRAPH_TICK if big and not interactive else 0.0)


def slow_views(run: BackgroundSession) -> None:
    """Heavier views, refreshed every SLOW_TICK while playing."""
    view = st.session_state.get("view", VIEWS[0])
    if view == "Tracked set":
        tracked_controls(run)
        return
    info = run.info
    if view == "Transitions":
        frame = run.frame()
        tel = frame.telemetry
        a, b = st.columns(2)
        if frame.playing:  # images while playing (cheap for the browser), plotly when paused
            c = figures.LAYER_COLORS
            with a:
                _jpeg("trans", lambda: raster.transitions_png(tel, c), every=0)
                _jpeg("life", lambda: raster.lifetime_png(tel, c), every=0)
            with b:
                _jpeg("raster", lambda: raster.tracked_raster_png(tel), every=0)
                _jpeg("ever", lambda: raster.ever_active_png(tel, c), every=0)
            return
        a.plotly_chart(figures.transitions_figure(tel), key="trans_chart")
        b.plotly_chart(figures.raster_figure(tel), key="raster_chart")
        a.plotly_chart(figures.lifetime_figure(tel), key="life_chart")
        b.plotly_chart(figures.ever_active_figure(tel), key="ever_chart")
    elif view == "Posterior":
        snap = run.snapshot()
        hp = snap["hyperparams"]
        st.plotly_chart(figures.posterior_figure(snap, hp["alpha"], hp["temperature"], hp.get("theta_min")),
                        key="post_chart")
        st.caption("Theory: density of θ with zero gradient (spec) — exponential with mean T/α on "
                   "active θ; for soft-Deep R flat on [θ_min, 0).")
    elif view == "Weights":
        snap = run.snapshot()
        cols = st.columns(min(3, len(snap["layers"])))
        for i, layer in enumerate(snap["layers"]):
            cols[i % len(cols)].plotly_chart(figures.weights_figure(layer, f"Layer {i} weights {layer['shape']}"),
                                             key=f"w_chart{i}")
        if info.image_shape and info.config.model == "mlp":
            a, b = st.columns(2)
            a.plotly_chart(figures.image_figure(figures.fan_in_images(snap["layers"][0], info.image_shape),
                                                "Fan-in masks of hidden units", zmid=0.5), key="fanin_chart")
            b.plotly_chart(figures.image_figure(figures.fan_out_image(snap["layers"][0], info.image_shape),
                                                "Active outgoing connections per pixel", colorscale="Viridis"),
                           key="fanout_chart")
    elif view == "Decision boundary":
        if info.is_2d:
            xs = np.linspace(-2.5, 2.5, 80)
            x, y = info.points
            st.plotly_chart(figures.boundary_figure(xs, xs, run.predict_grid(xs, xs), x, y), key="boundary_chart")
        else:
            st.info("The decision boundary is drawn for 2-D data sets (spiral, moons, circles, xor, blobs).")


def tracked_controls(run: BackgroundSession) -> None:
    tel = run.frame().telemetry
    st.write(f"Tracking {len(tel.tracked_pos)} connections: "
             + ", ".join(f"L{l}:{p}" for l, p in zip(tel.tracked_layer, tel.tracked_pos)))
    c1, c2 = st.columns(2)
    n = c1.number_input("Sample size", 2, 200, max(2, len(tel.tracked_pos)), key="track_n")
    if c1.button("Re-sample tracked connections", key="track_sample"):
        run.track_default(int(n))
    text = c2.text_input("Track these (layer:position, comma-separated)", key="track_text",
                         placeholder="0:12, 1:40")
    if c2.button("Track", key="track_apply") and text.strip():
        try:
            pairs = [tuple(int(v) for v in item.split(":")) for item in text.split(",") if item.strip()]
            if any(len(p) != 2 for p in pairs):
                raise ValueError("each entry must be layer:position, e.g. 0:12")
            run.track([p[0] for p in pairs], [p[1] for p in pairs])
        except ValueError as exc:
            st.error(f"Tracked set: {exc}")


def heartbeat(runs: list[BackgroundSession]) -> None:
    """Tells paused runs that their tab is still open (a run with no news for 30 s parks)."""
    for run in runs:
        run.heartbeat()


# -- the page -----------------------------------------------------------------------------------
def render() -> None:
    init_state()
    for msg in st.session_state.get("url_errors", []):
        st.error(msg)
    if st.session_state.get("setup_error"):
        st.error(f"Setup not applied: {st.session_state.pop('setup_error')}")
    run = _run()
    try:
        frame = run.frame()
    except RuntimeError as exc:  # the training process died (killed, out of memory)
        st.error(f"{exc}: this run's state is lost. Start it again from its setup.")
        if st.button("Start again", key="restart", type="primary"):
            _start(run.config, st.session_state["ui"])
            st.rerun()
        return
    new_cfg = setup_controls(frame)
    if new_cfg is not None:
        _start(new_cfg, st.session_state["ui"])
        st.rerun()
    values = live_controls(frame)
    speed_controls(run)
    if apply_live(values, frame):
        frame = run.frame()
    file_controls(run, frame)
    hp = frame.hyperparams
    conn = [round(l["connectivity"], 4) for l in frame.layers]
    st.query_params.from_dict(to_query(frame.config, st.session_state["ui"], lr=hp["lr"], alpha=hp["alpha"],
                                       temperature=hp["temperature"], k_conn=conn,
                                       batch_size=hp["batch_size"]))
    # Live frames replace elements in place: no fading of the old frame while the next one builds.
    st.html("<style>.stElementContainer[data-stale='true']{opacity:1!important;transition:none!important}"
            "</style>")
    st.title("DeepR Studio")
    info = run.info
    st.caption(f"{frame.config.algorithm} on {frame.config.dataset} · layers "
               f"{[info.n_features, *frame.config.hidden, info.n_classes]} · device {info.device}")
    transport(run, frame)
    st.session_state["playing"] = frame.playing
    big = sum(l["k"] for l in frame.layers if len(l["shape"]) == 2) > graph.PLOTLY_EDGE_LIMIT
    tick = BIG_LIVE_TICK if big else LIVE_TICK
    st.fragment(run_every=tick if frame.playing else None)(live_views)(run)
    st.segmented_control("View", VIEWS, default=VIEWS[0], key="view")
    st.fragment(run_every=SLOW_TICK if frame.playing else None)(slow_views)(run)
    if not frame.playing:
        st.fragment(run_every=HEARTBEAT)(heartbeat)([run])
