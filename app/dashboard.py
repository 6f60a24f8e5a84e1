"""The dashboard page: one function per UI region; state in st.session_state; all training
goes through the session's API (deepr_engine.session) and the tab's Runner."""
from __future__ import annotations

import time

import numpy as np
import streamlit as st

from deepr_engine import checkpoint
from deepr_engine.config import ALGORITHMS, PRESETS, RunConfig, preset
from deepr_engine.data import DATASETS
from deepr_engine.session import TrainingSession

from . import figures, graph, raster
from .runner import Runner
from .urlstate import UISettings, from_query, to_query

T_VALUES = [0.0] + [float(f"{m}e{e}") for e in range(-14, 0) for m in (1, 3)]
ALPHA_VALUES = [0.0] + [float(f"{m}e{e}") for e in range(-8, 0) for m in (1, 3)]
LR_VALUES = [float(f"{m}e{e}") for e in range(-4, 1) for m in (1, 2, 5)]
BATCH_VALUES = [1, 2, 4, 8, 10, 16, 32, 64, 128, 256]
SPEEDS = {"unlimited": 0.0, "1000 steps/s": 1000.0, "100 steps/s": 100.0, "10 steps/s": 10.0,
          "2 steps/s": 2.0}
LIVE_TICK = 0.25   # s between live frames while playing
SLOW_TICK = 3.0    # s between heavy-view refreshes while playing
VIEWS = ["Transitions", "Posterior", "Weights", "Decision boundary", "Tracked set"]


def _nearest(values, v):
    return min(values, key=lambda x: abs(np.log10(x + 1e-300) - np.log10(v + 1e-300)) if x > 0 and v > 0
               else (0 if x == v else 1e9))


def _fmt(v: float) -> str:
    return "0" if v == 0 else f"{v:.0e}" if v < 0.01 else f"{v:g}"


# -- session lifecycle ---------------------------------------------------------------------------
def _start(cfg: RunConfig, ui: UISettings) -> None:
    old = st.session_state.get("runner")
    if old is not None:
        old.stop()
    try:
        session = TrainingSession(cfg)
    except (ValueError, FileNotFoundError) as exc:
        st.session_state["setup_error"] = str(exc)
        if old is not None:
            return  # keep the run we had
        cfg, session = preset("digits-demo"), TrainingSession("digits-demo")
    st.session_state["runner"] = Runner(session, ui.steps_per_frame, ui.max_steps_per_second)
    st.session_state["ui"] = ui
    st.session_state["gen"] = st.session_state.get("gen", 0) + 1


def _runner() -> Runner:
    return st.session_state["runner"]


def init_state() -> None:
    if "runner" in st.session_state:
        return
    cfg, ui = from_query(dict(st.query_params))
    st.session_state["url_errors"] = list(ui.errors)
    _start(cfg, ui)


# -- sidebar regions ------------------------------------------------------------------------------
def setup_controls() -> RunConfig | None:
    """Data set, preset, architecture, algorithm, seed: a change starts a new run."""
    runner, ui = _runner(), st.session_state["ui"]
    cfg = runner.session.config
    st.sidebar.header("Setup")
    name = st.sidebar.selectbox("Preset", list(PRESETS), index=list(PRESETS).index(ui.preset), key="preset")
    if name != ui.preset:
        ui.preset = name
        return preset(name)
    dataset = st.sidebar.selectbox("Data set", DATASETS, index=DATASETS.index(cfg.dataset), key="dataset")
    hidden = st.sidebar.text_input("Hidden layer sizes", ",".join(map(str, cfg.hidden)), key="hidden",
                                   help="comma-separated, e.g. 32,16")
    algorithm = st.sidebar.radio("Algorithm", ALGORITHMS, index=ALGORITHMS.index(cfg.algorithm),
                                 key="algorithm", horizontal=True)
    seed = st.sidebar.number_input("Seed", 0, 2**31 - 1, cfg.seed, key="seed")
    try:
        sizes = [int(v) for v in hidden.split(",") if v.strip()]
        new = cfg.replace(dataset=dataset, hidden=sizes, algorithm=algorithm, seed=int(seed),
                          connectivity=cfg.connectivity if len(sizes) == len(cfg.hidden) else [cfg.connectivity[0]])
    except ValueError as exc:
        st.sidebar.error(f"Setup: {exc}")
        return None
    return new if new.to_dict() != cfg.to_dict() else None


def live_controls() -> dict:
    """Sliders that act at the next step, without a reset. Returns the requested values."""
    s, gen = _runner().session, st.session_state["gen"]
    hp = s.hyperparams()
    st.sidebar.header("Live")
    out = {}
    out["temperature"] = st.sidebar.select_slider("Temperature T", T_VALUES, _nearest(T_VALUES, hp["temperature"]),
                                                  format_func=_fmt, key=f"T{gen}")
    out["alpha"] = st.sidebar.select_slider("L1 strength alpha", ALPHA_VALUES, _nearest(ALPHA_VALUES, hp["alpha"]),
                                            format_func=_fmt, key=f"alpha{gen}")
    out["lr"] = st.sidebar.select_slider("Learning rate", LR_VALUES, _nearest(LR_VALUES, hp["lr"]),
                                         format_func=_fmt, key=f"lr{gen}")
    out["batch_size"] = st.sidebar.select_slider("Batch size", BATCH_VALUES,
                                                 _nearest(BATCH_VALUES, hp["batch_size"]), key=f"batch{gen}")
    st.sidebar.caption("K: connectivity per layer (active count shown)")
    conn = []
    for i, layer in enumerate(s.layers):
        c = st.sidebar.slider(f"Layer {i} connectivity", 0.001, 1.0, float(round(layer.connectivity, 3)),
                              step=0.001, format="%.3f", key=f"conn{i}_{gen}",
                              help=f"{layer.n_positions} positions")
        conn.append(c)
        st.sidebar.caption(f"Layer {i}: K = {layer.k} of {layer.n_positions}")
    out["connectivity"] = conn
    k_text = st.sidebar.text_input("…or exact K per layer", "", key=f"ktext{gen}",
                                   placeholder=",".join(str(l.k) for l in s.layers))
    if k_text.strip():
        out["k_text"] = k_text
    if s.config.algorithm == "soft-deepr":
        tm = st.sidebar.number_input("theta_min (0 = rule of thumb)", max_value=0.0,
                                     value=float(s.config.theta_min), format="%.3g", key=f"tmin{gen}")
        out["theta_min"] = tm
    return out


def speed_controls(runner: Runner) -> None:
    ui, gen = st.session_state["ui"], st.session_state["gen"]
    ui.steps_per_frame = st.sidebar.slider("Steps per frame", 1, 500, ui.steps_per_frame, key=f"spf{gen}")
    label = next((k for k, v in SPEEDS.items() if v == ui.max_steps_per_second), "unlimited")
    ui.max_steps_per_second = SPEEDS[st.sidebar.selectbox("Speed limit", list(SPEEDS),
                                                          list(SPEEDS).index(label), key=f"speed{gen}")]
    runner.steps_per_frame, runner.max_steps_per_second = ui.steps_per_frame, ui.max_steps_per_second


def apply_live(values: dict) -> None:
    """Send what changed to the session; a bad value is shown and nothing changes."""
    s = _runner().session
    hp = s.hyperparams()
    changes = {k: values[k] for k in ("temperature", "alpha", "lr", "batch_size") if values[k] != hp[k]}
    if "k_text" in values:
        try:
            changes["k"] = [int(v) for v in values["k_text"].split(",")]
        except ValueError:
            st.sidebar.error(f"K: comma-separated whole numbers, one per layer; got {values['k_text']!r}")
    else:
        current = [round(l.connectivity, 3) for l in s.layers]
        if [round(c, 3) for c in values["connectivity"]] != current:
            changes["connectivity"] = values["connectivity"]
    if "theta_min" in values and values["theta_min"] != s.config.theta_min:
        changes["theta_min"] = values["theta_min"] if values["theta_min"] < 0 else None
    if changes:
        try:
            s.set_hyperparams(**changes)
        except ValueError as exc:
            st.sidebar.error(str(exc))


def file_controls(runner: Runner) -> None:
    st.sidebar.header("Files")
    s = runner.session
    st.sidebar.download_button("Download checkpoint", lambda: checkpoint.to_bytes(s),
                               file_name=f"deepr-step{s.step_count}.safetensors", on_click="ignore",
                               key="dl_ckpt")
    st.sidebar.download_button("Download metrics CSV", lambda: s.metrics_csv(), file_name="metrics.csv",
                               mime="text/csv", on_click="ignore", key="dl_csv")
    up = st.sidebar.file_uploader("Load checkpoint", type=["safetensors"], key="upload")
    if up is not None and st.session_state.get("loaded_upload") != up.file_id:
        st.session_state["loaded_upload"] = up.file_id
        try:
            new = checkpoint.load(up.getvalue())
        except ValueError as exc:
            st.session_state["upload_error"] = str(exc)
        else:
            runner.stop()
            st.session_state["runner"] = Runner(new, runner.steps_per_frame, runner.max_steps_per_second)
            st.session_state["gen"] += 1
            st.session_state.pop("upload_error", None)
            st.rerun()
    if st.session_state.get("upload_error"):
        st.sidebar.error(st.session_state["upload_error"])


# -- main area --------------------------------------------------------------------------------
def transport(runner: Runner) -> None:
    """Play / Pause, Step 1/10/100, Reset."""
    cols = st.columns([1.2, 1, 1, 1, 1, 6])
    if runner.playing:
        if cols[0].button("Pause", key="pause", type="primary"):
            runner.pause()
            st.rerun()
    elif cols[0].button("Play", key="play", type="primary", disabled=bool(runner.session.paused_reason)):
        runner.play()
        st.rerun()
    for col, n in zip(cols[1:4], (1, 10, 100)):
        if col.button(f"Step {n}", key=f"step{n}"):
            runner.pause()
            runner.step(n)
    if cols[4].button("Reset", key="reset"):
        _start(runner.session.config, st.session_state["ui"])
        st.rerun()
    if runner.session.paused_reason:
        c = cols[5]
        c.error(runner.session.paused_reason)
        if c.button("Resume after divergence", key="resume"):
            runner.session.resume()
            st.rerun()


def status_line(runner: Runner) -> None:
    s = runner.session
    m = s.last
    c = st.columns(5)
    c[0].metric("Step", f"{s.step_count:,}")
    c[1].metric("Steps/s", f"{s.steps_per_second:,.0f}" if runner.playing else "paused")
    c[2].metric("Test accuracy", f"{m['test_acc']:.3f}")
    c[3].metric("Train loss", f"{m['loss']:.3f}")
    c[4].metric("Active connections", f"{sum(l.k for l in s.layers):,}")


def live_views(runner: Runner) -> None:
    """Redrawn every LIVE_TICK while playing: counters, graph, curves, walks. While playing
    everything here is a server-drawn PNG (cheap for the browser); paused, the same views are
    interactive plotly charts."""
    runner.heartbeat()
    t0 = time.perf_counter()
    s = runner.session
    playing = runner.playing
    with s.reading():
        snap = s.snapshot()
        tms = [g["theta_min"] for g in s.optimizer.rewired_groups] if s.config.algorithm == "soft-deepr" else None
        if playing:
            acc_img = raster.accuracy_png(s.telemetry)
            walks_img = raster.walks_png(s.telemetry, figures.LAYER_COLORS, size=(1400, 300), theta_min=tms)
        else:
            acc_fig = figures.accuracy_figure(s.telemetry)
            walks_fig = figures.walks_figure(s.telemetry, theta_min=tms)
    status_line(runner)
    left, right = st.columns([1.25, 1])
    with left:
        st.markdown("**Connectivity graph** — blue +, red −, green: activated last step, grey: pruned; "
                    "white units are dead")
        draw_graph(snap, s, interactive=not playing)
    with right:
        st.markdown("**Accuracy and loss**")
        if playing:
            st.image(acc_img, width="stretch", output_format="JPEG")
        else:
            st.plotly_chart(acc_fig, key="acc_chart", config={"displayModeBar": False})
    st.markdown("**θ random walks** of the tracked connections (grey: dormant)")
    if playing:
        st.image(walks_img, width="stretch", output_format="JPEG")
    else:
        st.plotly_chart(walks_fig, key="walks_chart", config={"displayModeBar": False})
    st.session_state["frame_ms"] = (time.perf_counter() - t0) * 1e3
    st.caption(f"frame built in {st.session_state['frame_ms']:.0f} ms · step counter "
               f"<span id='step-counter'>{s.step_count}</span>", unsafe_allow_html=True)


def draw_graph(snap: dict, s: TrainingSession, interactive: bool) -> None:
    sizes = [s.data.n_features, *s.config.hidden, s.data.n_classes]
    lin = [l for l in snap["layers"] if len(l["shape"]) == 2]
    if s.config.model == "conv":
        st.info("Graph shows the fully connected layers only (the conv kernels are in Weights).")
        sizes = [lin[0]["shape"][1], *[l["shape"][0] for l in lin]]
    layout = graph.layered_layout(tuple(sizes), s.data.image_shape if s.config.model != "conv" else None)
    if interactive and graph.n_edges(lin) <= graph.PLOTLY_EDGE_LIMIT:
        st.plotly_chart(graph.plotly_graph(lin, layout), key="graph_chart", config={"displayModeBar": False})
    else:
        st.image(graph.raster_graph(lin, layout), width="stretch", output_format="JPEG")


def slow_views(runner: Runner) -> None:
    """Heavier views, refreshed every SLOW_TICK while playing."""
    s = runner.session
    view = st.session_state.get("view", VIEWS[0])
    if view == "Tracked set":
        tracked_controls(s)
        return
    snap = s.snapshot()
    if view == "Transitions":
        a, b = st.columns(2)
        a.plotly_chart(figures.transitions_figure(s.telemetry), key="trans_chart")
        b.plotly_chart(figures.raster_figure(s.telemetry), key="raster_chart")
        a.plotly_chart(figures.lifetime_figure(s.telemetry), key="life_chart")
        b.plotly_chart(figures.ever_active_figure(s.telemetry), key="ever_chart")
    elif view == "Posterior":
        hp = s.hyperparams()
        st.plotly_chart(figures.posterior_figure(snap, hp["alpha"], hp["temperature"], hp.get("theta_min")),
                        key="post_chart")
        st.caption("Theory: density of θ with zero gradient (spec) — exponential with mean T/α on "
                   "active θ; for soft-Deep R flat on [θ_min, 0).")
    elif view == "Weights":
        cols = st.columns(min(3, len(snap["layers"])))
        for i, layer in enumerate(snap["layers"]):
            cols[i % len(cols)].plotly_chart(figures.weights_figure(layer, f"Layer {i} weights {layer['shape']}"),
                                             key=f"w_chart{i}")
        if s.data.image_shape and s.config.model == "mlp":
            a, b = st.columns(2)
            a.plotly_chart(figures.image_figure(figures.fan_in_images(snap["layers"][0], s.data.image_shape),
                                                "Fan-in masks of hidden units", zmid=0.5), key="fanin_chart")
            b.plotly_chart(figures.image_figure(figures.fan_out_image(snap["layers"][0], s.data.image_shape),
                                                "Active outgoing connections per pixel", colorscale="Viridis"),
                           key="fanout_chart")
    elif view == "Decision boundary":
        if s.data.is_2d:
            xs = np.linspace(-2.5, 2.5, 80)
            x, y = s.data.x_train.cpu().numpy(), s.data.y_train.cpu().numpy()
            st.plotly_chart(figures.boundary_figure(xs, xs, s.predict_grid(xs, xs), x, y), key="boundary_chart")
        else:
            st.info("The decision boundary is drawn for 2-D data sets (spiral, moons, circles, xor, blobs).")


def tracked_controls(s: TrainingSession) -> None:
    tel = s.telemetry
    st.write(f"Tracking {len(tel.tracked_pos)} connections: "
             + ", ".join(f"L{l}:{p}" for l, p in zip(tel.tracked_layer, tel.tracked_pos)))
    c1, c2 = st.columns(2)
    n = c1.number_input("Sample size", 2, 200, max(2, len(tel.tracked_pos)), key="track_n")
    if c1.button("Re-sample tracked connections", key="track_sample"):
        s.track_default(int(n))
    text = c2.text_input("Track these (layer:position, comma-separated)", key="track_text",
                         placeholder="0:12, 1:40")
    if c2.button("Track", key="track_apply") and text.strip():
        try:
            pairs = [tuple(int(v) for v in item.split(":")) for item in text.split(",") if item.strip()]
            if any(len(p) != 2 for p in pairs):
                raise ValueError("each entry must be layer:position, e.g. 0:12")
            s.track([p[0] for p in pairs], [p[1] for p in pairs])
        except ValueError as exc:
            st.error(f"Tracked set: {exc}")


# -- the page -----------------------------------------------------------------------------------
def render() -> None:
    init_state()
    for msg in st.session_state.get("url_errors", []):
        st.error(msg)
    if st.session_state.get("setup_error"):
        st.error(f"Setup not applied: {st.session_state.pop('setup_error')}")
    new_cfg = setup_controls()
    if new_cfg is not None:
        _start(new_cfg, st.session_state["ui"])
        st.rerun()
    runner = _runner()
    values = live_controls()
    speed_controls(runner)
    apply_live(values)
    file_controls(runner)
    s = runner.session
    hp = s.hyperparams()
    conn = [round(l.connectivity, 4) for l in s.layers]
    st.query_params.from_dict(to_query(s.config, st.session_state["ui"], lr=hp["lr"], alpha=hp["alpha"],
                                       temperature=hp["temperature"], k_conn=conn,
                                       batch_size=hp["batch_size"]))
    st.title("DeepR Studio")
    st.caption(f"{s.config.algorithm} on {s.config.dataset} · layers {[s.data.n_features, *s.config.hidden, s.data.n_classes]}"
               f" · device {s.device.type}")
    transport(runner)
    playing = runner.playing
    st.fragment(run_every=LIVE_TICK if playing else None)(live_views)(runner)
    st.segmented_control("View", VIEWS, default=VIEWS[0], key="view")
    st.fragment(run_every=SLOW_TICK if playing else None)(slow_views)(runner)
