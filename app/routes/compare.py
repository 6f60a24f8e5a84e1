"""The Compare page: 2 to 4 runs side by side on the same data, seed and connectivity, each
with its own method and that method's own hyperparameters (from the registry), or 2 to 4 forks
of one run from the same step (compare_state.open_forks), each with one changed value; Play and
Step drive all of them together. Every run trains in its own process, so they train in
parallel. Curves are plotted against steps (a fork's history before its fork point is its
parent's; a dotted line marks the fork), and the table compares the runs at one step."""
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
    compare().reset()


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


def at_step(series, step: int, default=np.nan):
    """The series' last value at or before `step` (its default before the first point)."""
    x, v = series.arrays()
    i = int(np.searchsorted(x, step, side="right")) - 1
    return v[i] if i >= 0 else default


def smoothed_loss(view: RunView, step: int | None = None) -> float:
    """Mean training loss of the last SMOOTH_POINTS points up to `step` (default: now)."""
    x, v = view.telemetry.series["loss"].arrays()
    if step is not None:
        v = v[:int(np.searchsorted(x, step, side="right"))]
    v = v[np.isfinite(v)][-SMOOTH_POINTS:]
    return float(v.mean()) if len(v) else float("nan")


def pruned_until(view: RunView, step: int) -> int:
    """Connections pruned up to `step`: the run's own total when it is at that step, else the
    per-step counts (each point the mean of the steps since the one before) times their span."""
    if view.step == step:
        return view.telemetry.total_pruned
    x, v = view.telemetry.pruned.arrays()
    n = int(np.searchsorted(x, step, side="right"))
    if n == 0:
        return 0
    counts = v[:n].sum(1) if v.ndim == 2 else v[:n]
    return int(round(float(counts @ np.diff(x[:n], prepend=0))))


def equal_step(frames: list[RunView], budget: int) -> tuple[int, str]:
    """The step the table compares the runs at, and why that one: the budget when every run
    has reached it, else the smallest step all runs have reached."""
    lowest = min(f.step for f in frames)
    if lowest >= budget:
        return budget, f"the step budget ({budget:,})"
    return lowest, "the smallest step all runs have reached"


# How closely each way of keeping K holds it (registry: Algorithm.k_meaning, declared by the
# optimizer as K_MEANING). Exact-K methods hold it every step; magnitude pruning from the end
# of its schedule; L1 shrinkage never goes below it (its floor) and is flagged 5% above;
# soft-Deep R has no hard constraint (Bellec et al. 2018, Algorithm 2: its count drifts around
# the target through theta_min) and the project allows it 25% either way.
K_TOLERANCE = {"active": 0.0, "target": 0.0, "floor": 0.05, "soft": 0.25}


def tolerance_text(view: RunView) -> str:
    """The run's K tolerance in words (the table's "K tolerance" column)."""
    meaning = registry.get(view.config.algorithm).k_meaning
    if meaning == "active":
        return "exact K every step"
    if meaning == "target":
        return f"exact K from step {_reach(view):,} (pruning schedule)"
    if meaning == "floor":
        return f"K is a floor: +{K_TOLERANCE['floor']:.0%} above it at most"
    if meaning == "soft":
        return f"soft: ±{K_TOLERANCE['soft']:.0%} around K"
    return "dense: no K"


def _reach(view: RunView) -> int:
    hp = view.hyperparams
    return hp.get("prune_at", 0) + (hp.get("prune_events", 1) - 1) * hp.get("update_every", 0)


def target_flag(view: RunView, k: int | None = None, step: int | None = None) -> str:
    """Empty when the run holds its K target within its method's tolerance (K_TOLERANCE), else
    why not (yet). k: active connections at `step` (default: now)."""
    meaning = registry.get(view.config.algorithm).k_meaning
    k = sum(l.k for l in view.layers) if k is None else k
    step = view.step if step is None else step
    target, n = sum(w.k_targets(view)), sum(l.n_positions for l in view.layers)
    if meaning not in K_TOLERANCE:
        return ""
    off = (k - target) / target
    if meaning == "target" and step < _reach(view) and off > 0:
        return f"reaches target at step {_reach(view):,}"
    tol = K_TOLERANCE[meaning]
    ok = (-tol <= off <= tol) if meaning != "floor" else (0 <= off <= tol)
    if ok or (meaning in ("active", "target") and k == target):
        return ""
    return f"⚠ target missed: {k / n:.3f} vs {target / n:.3f} ({off:+.0%}; {tolerance_text(view)})"


def table(frames: list[RunView], s: CompareState) -> None:
    at, why = equal_step(frames, s.base.steps)
    rows = []
    for label, f in zip(s.labels(), frames):
        t = w.totals(f)
        n = sum(l.n_positions for l in f.layers)
        active = at_step(f.telemetry.active, at, None)
        k = int(round(float(np.sum(active)))) if active is not None else t["k"]
        rows.append({"run": label, "step now": f.step,
                     "test accuracy": round(float(at_step(f.telemetry.series["test_acc"], at)), 4),
                     "train loss (smoothed)": round(smoothed_loss(f, at), 4),
                     "active connections": k, "connectivity": round(k / n, 4),
                     "target": round(t["target_k"] / n, 4),
                     "K tolerance": tolerance_text(f),
                     "K status": target_flag(f, k, at) or "ok",
                     "turnover (pruned)": pruned_until(f, at),
                     "ever active": round(_ever(f, at, t), 4),
                     "wall time now (s)": round(f.train_seconds, 1),
                     "status": f.paused_reason or ("training" if f.playing else "paused")})
    st.dataframe(rows, hide_index=True, width="stretch")
    st.caption(f"Compared at <span id='equal-step'>{at}</span>: {why}. Test accuracy is the last "
               f"evaluation at or before it; step now, wall time and status are now.",
               unsafe_allow_html=True)


def _ever(view: RunView, step: int, t: dict) -> float:
    """Fraction of positions ever active up to `step` (per-layer fractions weighted by size)."""
    v = at_step(view.telemetry.ever_active_frac, step, None)
    if v is None or np.ndim(v) != 1:
        return float(t["ever"][-1])
    sizes = np.array([l.n_positions for l in view.layers], dtype=float)
    return float(v @ sizes / sizes.sum())


def _curves(frames: list[RunView], what: str, labels: list[str]):
    out = []
    for i, (f, label) in enumerate(zip(frames, labels)):
        tel = f.telemetry
        if what in ("test_acc", "loss"):
            x, y = tel.series[what].arrays()
        elif what == "turnover":
            x, v = tel.pruned.arrays()
            y = v.sum(1) if v.ndim == 2 else v
        else:
            t = w.totals(f)
            x, y = t["ever_steps"], t["ever"]
        out.append((f"{i + 1}. {label}", x, y))
    return out


CHARTS = [("test_acc", "test accuracy"), ("loss", "train loss"),
          ("turnover", "connections pruned per step"), ("ever", "fraction of positions ever active")]


def chart(curves, title: str, log: bool, s: CompareState):
    """One overlay of the runs' curves against steps; forks get their fork point marked."""
    fig = figures.overlay_figure(curves, title, RUN_COLORS, log=log)
    fig.update_xaxes(title_text="step", title_standoff=0)
    fig.update_layout(height=300, margin=dict(b=45), legend=dict(y=-0.3))   # below the axis title
    if s.forks is not None:
        fig.add_vline(x=s.forks.step, line=dict(color="#888", dash="dot", width=1.5),
                      annotation_text=f"fork at {s.forks.step:,}", annotation_position="top left",
                      annotation_font_size=10)
    return fig


def live_views() -> None:
    s = compare()
    t0 = time.perf_counter()
    frames = s.for_fragment()
    playing = any(f.playing for f in frames)
    if playing != s.playing:
        st.rerun(scope="app")  # a run reached the budget or diverged: refresh the buttons
    table(frames, s)
    labels = s.labels()
    cols = st.columns(2)
    for j, (what, title) in enumerate(CHARTS):
        curves, log = _curves(frames, what, labels), what == "turnover"
        with cols[j % 2]:
            st.plotly_chart(chart(curves, title + (" (log)" if log else ""), log, s),
                            key=f"c_chart{what}", config={"displaylogo": False})
    st.markdown("**Connectivity graphs**", help=live_graph.LEGEND)
    gcols = st.columns(len(frames))
    for i, (col, f, r) in enumerate(zip(gcols, frames, s.runs)):
        with col:
            st.caption(f"{i + 1}\\. {labels[i]} · step {f.step:,}")   # not a Markdown list
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
    if not s.runs:   # a public demo at its run limits: nothing started (compare_state.room)
        st.title("Compare")
        st.error(plain(f"Setup not applied: {s.error}"))
        s.error = ""
        st.button("Try again", key="c_retry")
        return
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
    if s.forks is not None:
        f = s.forks
        st.info(plain(f"Forks of {f.parent_label or 'one run'} at step {f.step:,}: the same state "
                      f"(weights, theta, masks, optimizer, random generators, data order); only "
                      f"{f.field} differs ({', '.join(f.labels)}). Changing the setup in the "
                      f"sidebar starts new runs from step 0; Reset starts the forks again."),
                icon="🍴")
    frames = w.fetch_or_offer_restart(lambda: s.fetch(), "start the comparison again "
                                      "from its setup.", "c_restart", on_reset)
    if frames is None:
        return
    transport(s, frames)
    s.playing = any(f.playing for f in frames)
    st.fragment(run_every=TICK if s.playing else None)(live_views)()
    if not s.playing:
        st.fragment(run_every=HEARTBEAT)(w.heartbeat)(s.runs)
