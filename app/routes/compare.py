"""The Compare page: 2 to 4 runs side by side on the same data, seed and connectivity, each
with its own algorithm; Play and Step drive all of them together. Every run trains in its own
process (BackgroundSession), so the runs also train in parallel."""
from __future__ import annotations

import time

import numpy as np
import streamlit as st

from deepr_engine.run.background import BackgroundSession, Frame
from deepr_engine.run.config import ALGORITHM_NAMES, ALGORITHMS, PRESETS, RunConfig, preset
from deepr_engine.run.data import DATASETS

from ..charts import figures, raster
from .dashboard import (ALPHA_VALUES, HEARTBEAT, LR_VALUES, T_VALUES, _fmt, _nearest, draw_graph,
                        heartbeat)
from ..urlstate import RunSpec, UISettings, compare_from_query, compare_to_query, run_config

TICK = 0.5             # s between frames while playing (2-4 runs: a slower, steadier page)
RUN_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]


# -- lifecycle ------------------------------------------------------------------------------------
def _start(base: RunConfig, specs: list[RunSpec], ui: UISettings) -> None:
    """Start every run; if any fails, keep the comparison that was there and say why."""
    runs = []
    try:
        for spec in specs:
            runs.append(BackgroundSession(run_config(base, spec), steps_per_frame=ui.steps_per_frame))
    except (ValueError, FileNotFoundError) as exc:
        for r in runs:
            r.close()
        st.session_state["cmp_error"] = f"{ALGORITHM_NAMES[spec.algorithm]}: {exc}"
        if "cmp_runs" in st.session_state:
            return
        base, specs = preset("digits-demo"), [RunSpec("deepr"), RunSpec("set")]
        runs = [BackgroundSession(run_config(base, s)) for s in specs]
    for r in st.session_state.get("cmp_runs", []):
        r.close()
    st.session_state.update(cmp_runs=runs, cmp_base=base, cmp_specs=specs, cmp_ui=ui,
                            cmp_gen=st.session_state.get("cmp_gen", 0) + 1)


def init_state() -> None:
    if "cmp_runs" in st.session_state:
        return
    base, specs, ui = compare_from_query(dict(st.query_params))
    st.session_state["cmp_url_errors"] = list(ui.errors)
    _start(base, specs, ui)


# -- sidebar ------------------------------------------------------------------------------------
def _moved(current: float, shown: float, values: list[float]) -> float:
    """A slider snaps a value that is off its grid (from the URL): unless it was moved, keep it."""
    return current if shown == _nearest(values, current) else shown


def setup_controls() -> tuple[RunConfig, list[RunSpec]] | None:
    """The shared setup and the runs; returns the new setup when something changed."""
    base, specs, ui = (st.session_state[k] for k in ("cmp_base", "cmp_specs", "cmp_ui"))
    gen = st.session_state["cmp_gen"]
    sb = st.sidebar
    sb.header("Shared setup")
    name = sb.selectbox("Preset", list(PRESETS), index=list(PRESETS).index(ui.preset), key=f"c_preset{gen}")
    if name != ui.preset:
        ui.preset = name
        return preset(name), specs
    dataset = sb.selectbox("Data set", DATASETS, index=DATASETS.index(base.dataset), key=f"c_dataset{gen}")
    hidden = sb.text_input("Hidden layer sizes", ",".join(map(str, base.hidden)), key=f"c_hidden{gen}")
    conn = sb.text_input("Connectivity", ",".join(f"{c:g}" for c in base.connectivity), key=f"c_conn{gen}",
                         help="one fraction for all layers, or one per layer")
    dist = sb.radio("Spread one value over the layers", ["uniform", "erk"], horizontal=True,
                    index=["uniform", "erk"].index(base.distribution), key=f"c_dist{gen}",
                    help="erk: Erdos-Renyi-Kernel (Evci et al. 2020), denser small layers")
    seed = sb.number_input("Seed", 0, 2**31 - 1, base.seed, key=f"c_seed{gen}")
    steps = sb.number_input("Step budget", 10, 10**7, base.steps, step=100, key=f"c_steps{gen}",
                            help="Play stops every run here; RigL anneals and magnitude pruning "
                                 "prunes relative to it")
    sb.header("Runs")
    n = sb.slider("Number of runs", 2, 4, len(specs), key=f"c_n{gen}")
    new_specs = []
    for i in range(n):
        old = specs[i] if i < len(specs) else RunSpec(ALGORITHMS[(i + 2) % len(ALGORITHMS)])
        c1, c2 = sb.columns([3, 2])
        algo = c1.selectbox(f"Run {i + 1}", ALGORITHMS, index=ALGORITHMS.index(old.algorithm),
                            format_func=ALGORITHM_NAMES.get, key=f"c_algo{i}_{gen}")
        lr = c2.select_slider("lr", LR_VALUES, _nearest(LR_VALUES, old.overrides.get("lr", base.lr)),
                              format_func=_fmt, key=f"c_lr{i}_{gen}")
        overrides = {k: v for k, v in old.overrides.items() if k != "lr"}
        lr = _moved(old.overrides.get("lr", base.lr), lr, LR_VALUES)
        if lr != base.lr:
            overrides["lr"] = lr
        if algo in ("deepr", "soft-deepr", "l1"):  # the methods with an L1 term (and noise)
            with sb.expander(f"Run {i + 1}: alpha" + (" and T" if algo != "l1" else "")):
                for fname, label, values in (("alpha", "L1 strength alpha", ALPHA_VALUES),
                                             ("temperature", "Temperature T", T_VALUES)):
                    if fname == "temperature" and algo == "l1":
                        continue
                    start = overrides.get(fname, getattr(base, fname))
                    v = _moved(start, st.select_slider(label, values, _nearest(values, start),
                                                       format_func=_fmt, key=f"c_{fname}{i}_{gen}"), values)
                    if v != getattr(base, fname):
                        overrides[fname] = v
                    else:
                        overrides.pop(fname, None)
        new_specs.append(RunSpec(algo, overrides))
    try:
        sizes = [int(v) for v in hidden.split(",") if v.strip()]
        conns = [float(v) for v in conn.split(",") if v.strip()]
        new = base.replace(dataset=dataset, hidden=sizes, connectivity=conns, distribution=dist,
                           seed=int(seed), steps=int(steps))
        for s in new_specs:
            run_config(new, s)  # each run's settings are valid too
    except ValueError as exc:
        sb.error(f"Setup: {exc}")
        return None
    if new.to_dict() != base.to_dict() or new_specs != specs:
        return new, new_specs
    return None


# -- main area ----------------------------------------------------------------------------------
def transport(runs: list[BackgroundSession], frames: list[Frame], budget: int) -> None:
    cols = st.columns([1.4, 1, 1, 1, 6])
    playing = any(f.playing for f in frames)
    if playing:
        if cols[0].button("Pause all", key="c_pause", type="primary"):
            for r in runs:
                r.pause()
            st.rerun()
    elif cols[0].button("Play all", key="c_play", type="primary",
                        disabled=all(f.step >= budget or f.paused_reason for f in frames),
                        help=f"every run trains until step {budget:,}"):
        for r in runs:
            r.play(until=budget)
        st.rerun()
    for col, n in zip(cols[1:3], (10, 100)):
        if col.button(f"Step {n}", key=f"c_step{n}"):
            for r in runs:
                r.pause()
            for r in runs:
                r.step(n)
            st.rerun()
    if cols[3].button("Reset", key="c_reset"):
        _start(*(st.session_state[k] for k in ("cmp_base", "cmp_specs", "cmp_ui")))
        st.rerun()


def _ever_active(f: Frame) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of all the network's positions ever active, over time (per-layer series
    weighted by layer size)."""
    x, v = f.telemetry.ever_active_frac.arrays()
    sizes = np.array([l["n_positions"] for l in f.layers], dtype=float)
    return x, (v @ sizes / sizes.sum() if v.ndim == 2 else v)


def _totals(f: Frame) -> dict:
    n = sum(l["n_positions"] for l in f.layers)
    k = sum(l["k"] for l in f.layers)
    steps, ever = _ever_active(f)
    return {"k": k, "connectivity": k / n, "ever_active": float(ever[-1]) if len(steps) else k / n}


def table(frames: list[Frame], specs: list[RunSpec]) -> None:
    rows = []
    for f, spec in zip(frames, specs):
        t = _totals(f)
        rows.append({"run": ALGORITHM_NAMES[spec.algorithm], "step": f.step,
                     "test accuracy": round(f.metrics["test_acc"], 4),
                     "train loss": round(f.metrics["loss"], 4),
                     "active connections": t["k"], "connectivity": round(t["connectivity"], 4),
                     "turnover (pruned)": f.telemetry.total_pruned,
                     "ever active": round(t["ever_active"], 4),
                     "wall time (s)": round(f.train_seconds, 1),
                     "status": f.paused_reason or ("training" if f.playing else "paused")})
    st.dataframe(rows, hide_index=True, width="stretch")


def _curves(frames: list[Frame], what: str):
    """(label, steps, values) per run for one compared quantity."""
    out = []
    for i, f in enumerate(frames):
        tel = f.telemetry
        if what in ("test_acc", "loss"):
            x, y = tel.series[what].arrays()
        elif what == "turnover":
            x, v = tel.pruned.arrays()
            y = v.sum(1) if v.ndim == 2 else v
        else:
            x, y = _ever_active(f)
        out.append((f"{i + 1}. {ALGORITHM_NAMES[f.config.algorithm]}", x, y))
    return out


CHARTS = [("test_acc", "test accuracy"), ("loss", "train loss"),
          ("turnover", "connections pruned per step"), ("ever", "fraction of positions ever active")]


def live_views(runs: list[BackgroundSession]) -> None:
    t0 = time.perf_counter()
    frames = [r.frame() for r in runs]
    playing = any(f.playing for f in frames)
    if playing != st.session_state.get("cmp_playing"):
        st.rerun(scope="app")  # a run reached the budget or diverged: refresh the buttons
    table(frames, st.session_state["cmp_specs"])
    cols = st.columns(2)
    for j, (what, title) in enumerate(CHARTS):
        curves = _curves(frames, what)
        with cols[j % 2]:
            if playing:
                y_range = (0, 1.02) if what in ("test_acc", "ever") else None
                st.image(raster.overlay_png(curves, RUN_COLORS, title, y_range=y_range), width="stretch")
            else:
                st.plotly_chart(figures.overlay_figure(curves, title, RUN_COLORS), key=f"c_chart{what}",
                                config={"displayModeBar": False})
    st.markdown("**Connectivity graphs** (blue +, red −, green: activated last step, grey: pruned)")
    gcols = st.columns(len(frames))
    for i, (col, f, r) in enumerate(zip(gcols, frames, runs)):
        with col:
            st.caption(f"{i + 1}. {ALGORITHM_NAMES[f.config.algorithm]} · step {f.step:,}")
            draw_graph(f, r.info, interactive=False, key=f"c_graph{i}")
    ms = (time.perf_counter() - t0) * 1e3
    st.caption(f"frame built in <span id='frame-ms'>{ms:.0f}</span> ms · steps "
               f"<span id='step-counter'>{','.join(str(f.step) for f in frames)}</span>",
               unsafe_allow_html=True)


def render() -> None:
    init_state()
    for msg in st.session_state.get("cmp_url_errors", []):
        st.error(msg)
    if st.session_state.get("cmp_error"):
        st.error(f"Setup not applied: {st.session_state.pop('cmp_error')}")
    changed = setup_controls()
    if changed is not None:
        _start(*changed, st.session_state["cmp_ui"])
        st.rerun()
    runs, base, specs = (st.session_state[k] for k in ("cmp_runs", "cmp_base", "cmp_specs"))
    st.query_params.from_dict(compare_to_query(base, specs, st.session_state["cmp_ui"]))
    st.title("Compare")
    st.caption(f"{base.dataset} · hidden {base.hidden} · connectivity {base.connectivity} "
               f"({base.distribution}) · seed {base.seed} · same data, seed and step budget for every run")
    try:
        frames = [r.frame() for r in runs]
    except RuntimeError as exc:  # a training process died (killed, out of memory)
        st.error(f"{exc}: start the comparison again from its setup.")
        if st.button("Start again", key="c_restart", type="primary"):
            _start(base, specs, st.session_state["cmp_ui"])
            st.rerun()
        return
    transport(runs, frames, base.steps)
    playing = any(f.playing for f in frames)
    st.session_state["cmp_playing"] = playing
    st.fragment(run_every=TICK if playing else None)(live_views)(runs)
    if not playing:
        st.fragment(run_every=HEARTBEAT)(heartbeat)(runs)
