"""The Compare page: 2 to 4 runs side by side on the same data, seed and connectivity, each
with its own method and that method's own hyperparameters (from the registry); Play and Step
drive all of them together. Every run trains in its own process, so they train in parallel."""
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
from ..components import live_graph
from ..charts.palette import RUN_COLORS
from ..compare_state import CompareState, compare
from ..urlstate import RunSpec, UISettings, compare_from_query, compare_to_query, run_config, run_keys
from ..text import plain

TICK = 1.0             # s between frames while playing (2-4 runs, plotly curves: a steadier page)
HEARTBEAT = 5.0
SMOOTH_POINTS = 20     # training loss in the table: mean of the last points of its series
SHARED = ("dataset", "hidden", "model", "connectivity", "distribution", "seed", "steps")


# -- callbacks ----------------------------------------------------------------------------------
def _restart(s: CompareState, base, specs, key: str | None = None, old=None) -> None:
    if not s.start(base, specs) and key is not None:
        st.session_state[key] = old  # the widget goes back to the comparison that runs


def on_preset() -> None:
    s = compare()
    key = f"c_preset{s.gen}"
    name = st.session_state[key]
    ui = UISettings(name, s.ui.steps_per_frame, s.ui.max_steps_per_second)
    if not s.start(preset(name), [RunSpec(x.algorithm) for x in s.specs], ui):
        st.session_state[key] = s.ui.preset


def _parse(field: str, text):
    if field in ("hidden", "connectivity"):
        conv = int if field == "hidden" else float
        return [conv(v) for v in str(text).split(",") if v.strip()]
    return int(text) if field in ("seed", "steps") else text


def on_shared(field: str) -> None:
    s = compare()
    key = f"c_{field}{s.gen}"
    old = getattr(s.base, field)
    try:
        changes = {field: _parse(field, st.session_state[key])}
        n = type(s.base)(**(s.base.to_dict() | changes)).n_rewired_layers
        if field != "connectivity" and len(s.base.connectivity) not in (1, n):
            changes["connectivity"] = [s.base.connectivity[0]]
        base = s.base.replace(**changes)
    except (ValueError, TypeError) as exc:
        s.error = f"{field}: {exc}"
        st.session_state[key] = ",".join(f"{v:g}" for v in old) if isinstance(old, list) else old
        return
    _restart(s, base, s.specs, key, ",".join(f"{v:g}" for v in old) if isinstance(old, list) else old)


def on_count() -> None:
    s = compare()
    n = st.session_state[f"c_n{s.gen}"]
    specs = list(s.specs[:n])
    names = registry.names()
    while len(specs) < n:
        specs.append(RunSpec(names[(len(specs) + 2) % len(names)]))
    _restart(s, s.base, specs, f"c_n{s.gen}", len(s.specs))


def on_algo(i: int) -> None:
    s = compare()
    key = f"c_algo{i}_{s.gen}"
    specs = list(s.specs)
    keep = {k: v for k, v in specs[i].overrides.items() if k == "lr"}
    specs[i] = RunSpec(st.session_state[key], keep)
    _restart(s, s.base, specs, key, s.specs[i].algorithm)


def on_param(i: int, field: str) -> None:
    s = compare()
    key = f"c_{field}{i}_{s.gen}"
    specs = [RunSpec(x.algorithm, dict(x.overrides)) for x in s.specs]
    value = w.value_of(field, key)
    if value == getattr(s.base, field):
        specs[i].overrides.pop(field, None)
    else:
        specs[i].overrides[field] = value
    _restart(s, s.base, specs)


def on_play() -> None:
    s = compare()
    for r in s.runs:
        r.play(until=s.base.steps)


def on_pause() -> None:
    for r in compare().runs:
        r.pause()


def on_step(n: int) -> None:
    runs = compare().runs
    for r in runs:
        r.pause()
    for r in runs:
        r.step(n)


def on_reset() -> None:
    s = compare()
    s.start(s.base, s.specs)


# -- sidebar ------------------------------------------------------------------------------------
def setup_controls(s: CompareState) -> None:
    sb, base, g = st.sidebar, s.base, s.gen
    sb.header("Shared setup")
    sb.selectbox("Preset", list(PRESETS), key=w.init(f"c_preset{g}", s.ui.preset),
                 on_change=on_preset, help="The preset's data, network and hyperparameters for every run")
    sb.selectbox("Data set", DATASETS, key=w.init(f"c_dataset{g}", base.dataset),
                 on_change=on_shared, args=("dataset",))
    sb.text_input("Hidden layer sizes", key=w.init(f"c_hidden{g}", ",".join(map(str, base.hidden))),
                  on_change=on_shared, args=("hidden",))
    sb.segmented_control("Model", MODEL_KINDS, key=w.init(f"c_model{g}", base.model), on_change=on_shared,
                         args=("model",), help="mlp, or conv: two rewired conv layers first (image data)")
    sb.text_input("Connectivity", key=w.init(f"c_connectivity{g}", ",".join(f"{c:g}" for c in base.connectivity)),
                  on_change=on_shared, args=("connectivity",),
                  help="The K target: one fraction for all layers, or one per layer")
    sb.radio("Spread one value over the layers", ["uniform", "erk"], horizontal=True,
             key=w.init(f"c_distribution{g}", base.distribution),
             on_change=on_shared, args=("distribution",),
             help="erk: Erdos-Renyi-Kernel (Evci et al. 2020), denser small layers")
    sb.number_input("Seed", 0, 2**31 - 1, key=w.init(f"c_seed{g}", base.seed), on_change=on_shared,
                    args=("seed",))
    sb.number_input("Step budget", 10, 10**7, step=100, key=w.init(f"c_steps{g}", base.steps), on_change=on_shared,
                    args=("steps",), help="Play stops every run here; RigL's end of updates and "
                                          "magnitude pruning's step default to fractions of it")
    sb.header("Runs")
    sb.slider("Number of runs", 2, 4, key=w.init(f"c_n{g}", len(s.specs)), on_change=on_count)
    for i, spec in enumerate(s.specs):
        names = registry.names()
        sb.selectbox(f"Run {i + 1}", names, format_func=registry.label,
                     key=w.init(f"c_algo{i}_{g}", spec.algorithm), on_change=on_algo, args=(i,))
        with sb.expander(f"Run {i + 1}: {registry.label(spec.algorithm)} settings"):
            own = set(run_keys().values())   # lr and the method's optimizer hyperparameters
            try:
                cfg = run_config(base, spec)
            except ValueError:
                cfg = None
            for field in registry.get(spec.algorithm).controls:
                if field not in own:
                    continue  # shared batch; theta_min and noise_scale follow the shared setup
                value = spec.overrides.get(field, getattr(base, field))
                zero = registry.declaration(field).zero
                if zero and value == 0 and cfg is not None:   # 0: a share of the budget
                    value = registry.declaration(field).resolve(cfg)
                w.control(st, field, value, f"c_{field}{i}_{g}", on_param, (i, field), start=value,
                          cfg=cfg)


# -- main area ----------------------------------------------------------------------------------
def transport(s: CompareState, frames: list[RunView]) -> None:
    row = st.container(horizontal=True, gap="small")
    if any(f.playing for f in frames):
        row.button("Pause all", key="c_pause", type="primary", on_click=on_pause)
    else:
        row.button("Play all", key="c_play", type="primary", on_click=on_play,
                   disabled=all(f.step >= s.base.steps or f.paused_reason for f in frames),
                   help=f"every run trains until step {s.base.steps:,}")
    for n in (10, 100):
        row.button(f"Step {n}", key=f"c_step{n}", on_click=on_step, args=(n,))
    row.button("Reset", key="c_reset", on_click=on_reset)


def smoothed_loss(view: RunView) -> float:
    _, v = view.telemetry.series["loss"].arrays()
    v = v[np.isfinite(v)][-SMOOTH_POINTS:]
    return float(v.mean()) if len(v) else float("nan")


def target_flag(view: RunView, budget: int) -> str:
    """Empty when the run holds its K target, else why not (yet)."""
    alg = registry.get(view.config.algorithm)
    k, target = sum(l.k for l in view.layers), sum(w.k_targets(view))
    n = sum(l.n_positions for l in view.layers)
    if alg.k_meaning in ("active", "none") or abs(k - target) <= 0.05 * target:
        return ""
    if alg.k_meaning == "target":
        hp = view.hyperparams
        reach = hp.get("prune_at", 0) + (hp.get("prune_events", 1) - 1) * hp.get("update_every", 0)
        if view.step < reach:
            return f"reaches target at step {reach:,}"
    if alg.k_meaning == "soft" and abs(k - target) <= 0.25 * target:
        return ""
    return f"⚠ target missed: {k / n:.3f} vs {target / n:.3f}"


def table(frames: list[RunView], s: CompareState) -> None:
    rows = []
    for f in frames:
        t = w.totals(f)
        rows.append({"run": registry.label(f.config.algorithm), "step": f.step,
                     "test accuracy": round(f.metrics["test_acc"], 4),
                     "train loss (smoothed)": round(smoothed_loss(f), 4),
                     "active connections": t["k"], "connectivity": round(t["connectivity"], 4),
                     "target": round(t["target_k"] / sum(l.n_positions for l in f.layers), 4),
                     "K status": target_flag(f, s.base.steps) or "ok",
                     "turnover (pruned)": f.telemetry.total_pruned,
                     "ever active": round(float(t["ever"][-1]), 4),
                     "wall time (s)": round(f.train_seconds, 1),
                     "status": f.paused_reason or ("training" if f.playing else "paused")})
    st.dataframe(rows, hide_index=True, width="stretch")


def _curves(frames: list[RunView], what: str):
    out = []
    for i, f in enumerate(frames):
        tel = f.telemetry
        if what in ("test_acc", "loss"):
            x, y = tel.series[what].arrays()
        elif what == "turnover":
            x, v = tel.pruned.arrays()
            y = v.sum(1) if v.ndim == 2 else v
        else:
            t = w.totals(f)
            x, y = t["ever_steps"], t["ever"]
        out.append((f"{i + 1}. {registry.label(f.config.algorithm)}", x, y))
    return out


CHARTS = [("test_acc", "test accuracy"), ("loss", "train loss"),
          ("turnover", "connections pruned per step"), ("ever", "fraction of positions ever active")]


def live_views() -> None:
    s = compare()
    t0 = time.perf_counter()
    frames = s.for_fragment()
    playing = any(f.playing for f in frames)
    if playing != s.playing:
        st.rerun(scope="app")  # a run reached the budget or diverged: refresh the buttons
    table(frames, s)
    cols = st.columns(2)
    for j, (what, title) in enumerate(CHARTS):
        curves, log = _curves(frames, what), what == "turnover"
        with cols[j % 2]:
            st.plotly_chart(figures.overlay_figure(curves, title + (" (log)" if log else ""),
                                                   RUN_COLORS, log=log),
                            key=f"c_chart{what}", config={"displaylogo": False})
    st.markdown("**Connectivity graphs**", help=live_graph.LEGEND)
    gcols = st.columns(len(frames))
    for i, (col, f, r) in enumerate(zip(gcols, frames, s.runs)):
        with col:
            st.caption(f"{i + 1}. {registry.label(f.config.algorithm)} · step {f.step:,}")
            linear = [layer for layer in f.layers if len(layer.shape) == 2]
            image = None if len(linear) < len(f.layers) else r.info.image_shape
            live_graph.live_graph(live_graph.from_layers(linear, f.step, image, r.run_id),
                                  key=f"c_graph{i}", height=340, playing=f.playing, pace="timer")
    ms = (time.perf_counter() - t0) * 1e3
    debug = f" · frame built in <span id='frame-ms'>{ms:.0f}</span> ms" if st.session_state.get("c_debug") else ""
    st.caption(f"steps <span id='step-counter'>{','.join(str(f.step) for f in frames)}</span>{debug}",
               unsafe_allow_html=True)


def render() -> None:
    s = compare()
    if not s.runs:
        base, specs, ui = compare_from_query(dict(st.query_params))
        s.url_errors = list(ui.errors)
        s.start(base, specs, ui)
    for msg in s.url_errors:
        st.error(plain(msg))
    if s.error:
        st.error(plain(f"Setup not applied: {s.error}"))
        s.error = ""
    setup_controls(s)
    st.sidebar.toggle("Developer info", key="c_debug")
    st.query_params.from_dict(compare_to_query(s.base, s.specs, s.ui))
    st.title("Compare")
    b = s.base
    st.caption(f"{b.dataset} · {b.model} · hidden {b.hidden} · connectivity {b.connectivity} "
               f"({b.distribution}) · seed {b.seed} · same data, seed and step budget for every run")
    frames = w.fetch_or_offer_restart(lambda: s.fetch(), "start the comparison again "
                                      "from its setup.", "c_restart", on_reset)
    if frames is None:
        return
    transport(s, frames)
    s.playing = any(f.playing for f in frames)
    st.fragment(run_every=TICK if s.playing else None)(live_views)()
    if not s.playing:
        st.fragment(run_every=HEARTBEAT)(w.heartbeat)(s.runs)
