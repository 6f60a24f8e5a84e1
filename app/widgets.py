"""Widgets both pages share: controls built from the declarations (label, scale, range and help
of each setting's `Hyper`, `registry.CONTROLS`), K controls, number formatting, live images, the graph drawing call
and the heartbeat. Drawing only: callbacks are passed in by the pages."""
from __future__ import annotations

import io
import math
from functools import lru_cache
from typing import Callable

import numpy as np
import streamlit as st

from deepr_engine.run import registry
from deepr_engine.run.config import PRESETS, RunConfig
from deepr_engine.run.views import RunView

from .charts import graph
from .charts.palette import Palette, palette

BATCH_VALUES = [1, 2, 4, 8, 10, 16, 32, 64, 128, 256, 512, 1024]
K_HELP = {
    "active": "K: active connections per layer, exactly, after every step (pruned ones are "
              "replaced by random revivals).",
    "target": "K: the target. Magnitude pruning trains dense and prunes to K at its pruning step.",
    "floor": "K: the floor. L1 shrinkage starts dense and removes weights that shrink to the "
             "threshold, never below K.",
    "soft": "K: the target connectivity. Soft-Deep R's active count drifts around it (no hard K).",
    "none": "Dense training: every connection is active.",
}
SPF_HELP = ("Training steps between two frames of the page. More steps per frame: faster "
            "training, coarser animation (the graph still shows every rewiring since the last frame).")
SPEED_HELP = "Upper bound on training speed, to watch the rewiring slowly; unlimited trains as fast as it can."
SPEEDS = {"unlimited": 0.0, "1000 steps/s": 1000.0, "100 steps/s": 100.0, "10 steps/s": 10.0,
          "2 steps/s": 2.0}


# -- numbers ------------------------------------------------------------------------------------
def fmt(v: float) -> str:
    """Slider labels: 0, 1e-05, 0.05, 2."""
    return "0" if v == 0 else f"{v:.0e}" if abs(v) < 0.01 else f"{v:g}"


def metric(v: float | None, digits: int = 3) -> str:
    """A metric's text: "—" where there is no value yet (step 0, no loss)."""
    if v is None or not math.isfinite(v):
        return "—"
    return f"{v:.{digits}f}"


def nearest(values: list[float], v: float) -> float:
    """The grid value closest to v (in log terms for positive values)."""
    if v in values:
        return v
    pos = [x for x in values if x > 0]
    if v <= 0 or not pos:
        return min(values, key=lambda x: abs(x - v))
    return min(pos, key=lambda x: abs(math.log10(x) - math.log10(v)))


def log_grid(field: str) -> tuple[float, ...]:
    """The values of a log control: 1, 2, 5 per decade over the declared range (from its
    `floor` when the range starts at 0), plus 0 where the declaration allows 0."""
    h = registry.declaration(field)
    return _log_grid(h.low, h.high, h.low_open, h.floor)


@lru_cache(maxsize=64)
def _log_grid(low, high, low_open, floor) -> tuple[float, ...]:
    lo = low if low is not None and low > 0 else floor
    vals = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(high)) + 1)
            for m in (1, 2, 5)]
    vals = [float(f"{v:.0e}") for v in vals if lo * (1 - 1e-9) <= v <= high * (1 + 1e-9)]
    if low is not None and low <= 0 and not (low == 0 and low_open):
        vals.insert(0, 0.0)
    return tuple(vals)


# -- controls from the declarations -------------------------------------------------------------
def init(key: str, value) -> str:
    """A widget's starting value goes through session state (set once per key), so that a
    callback may put it back (a setup that failed) without a second default."""
    if key not in st.session_state:
        st.session_state[key] = value
    return key


def control(where, field: str, value, key: str, on_change: Callable, args: tuple = (),
            start=None, cfg: RunConfig | None = None):
    """One live control for a setting, as its declaration describes it (label, scale, range,
    help). Its callback runs only when the user moves it. `start`: the run's starting value,
    added to a log slider's grid so that the slider shows it exactly (0.3 is not on the 1-2-5
    grid); it stays the same for the run, so the options do not change under the widget.
    `cfg`: the run's config; a setting without effect there (temperature while noise_scale
    sets the noise) is drawn disabled, its help saying why."""
    h = registry.declaration(field)
    why = cfg.idle(field) if cfg is not None else None
    help_ = h.help + (f" — Disabled: {why}." if why else "")
    kw = dict(key=key, help=help_, on_change=on_change, args=args, disabled=bool(why))
    label = h.title
    if h.scale == "log":
        values = sorted(set(log_grid(field)) | ({float(start)} if start is not None else set()))
        init(key, nearest(values, float(value)))
        return where.select_slider(label, values, format_func=fmt, **kw)
    if h.scale == "int" and field == "batch_size":
        values = [b for b in BATCH_VALUES if h.low <= b <= h.high]
        init(key, nearest(values, int(value)))
        return where.select_slider(label, values, **kw)
    if h.scale == "int":
        init(key, int(value))
        return where.number_input(label, min_value=int(h.low), max_value=int(h.high), step=1, **kw)
    if h.scale == "fraction":
        init(key, float(value))
        return where.slider(label, float(h.low), float(h.high), step=0.005, format="%.3f", **kw)
    init(key, float(value))   # number: typed
    return where.number_input(label, min_value=None if h.low is None else float(h.low),
                              max_value=None if h.high is None else float(h.high),
                              format="%.3g", **kw)


def value_of(field: str, key: str):
    """The value a control holds, as the run wants it (ints for int controls)."""
    v = st.session_state[key]
    return int(v) if registry.declaration(field).scale == "int" else float(v)


# -- K ----------------------------------------------------------------------------------------
def k_targets(view: RunView) -> list[int]:
    """Per layer the K the method aims at: the config's connectivity (spread by its
    distribution) times the layer size."""
    shapes = [l.shape for l in view.layers]
    conn = view.config.layer_connectivity(shapes)
    return [max(1, round(c * l.n_positions)) for c, l in zip(conn, view.layers)]


def k_target_connectivity(view: RunView) -> list[float]:
    """What the URL stores: the K target as connectivity. Exact-K methods: the K now (typed
    values included); the others: their configured target, not the count they have now."""
    alg = registry.get(view.config.algorithm)
    if alg.k_meaning != "active" or view.config.global_k:
        return list(view.config.connectivity)
    conn = view.config.layer_connectivity([l.shape for l in view.layers])
    return [c if round(c * l.n_positions) == l.k else l.k / l.n_positions  # the config's when it fits
            for c, l in zip(conn, view.layers)]


def k_caption(view: RunView, i: int) -> str:
    layer, meaning = view.layers[i], registry.get(view.config.algorithm).k_meaning
    text = f"Layer {i}: K = {layer.k:,} of {layer.n_positions:,}"
    if meaning in ("target", "floor", "soft"):
        target = k_targets(view)[i]
        if meaning == "target":
            at = view.hyperparams.get("prune_at", 0)
            text += f" · target {target:,}" + (f" (from step {at:,})" if layer.k > target else "")
        elif meaning == "floor":
            text += f" · floor {target:,}"
        else:
            text += f" · target {target:,} (drifts)"
    return text


def k_controls(where, view: RunView, gen: int, on_conn: Callable, on_text: Callable) -> None:
    """Connectivity per layer (a slider, the K target) with the real K as caption, and an
    exact-K text field."""
    alg = registry.get(view.config.algorithm)
    if alg.k_meaning == "none":
        where.caption(K_HELP["none"])
        return
    conn = k_target_connectivity(view)
    conn = conn if len(conn) == len(view.layers) else conn * len(view.layers)
    for i, layer in enumerate(view.layers):
        lo = 0.001
        init(f"conn{i}_{gen}", min(1.0, max(lo, round(conn[i], 3))))
        where.slider(f"Layer {i} connectivity", lo, 1.0, step=0.001,
                     format="%.3f", key=f"conn{i}_{gen}", on_change=on_conn, args=(i,),
                     help=f"{K_HELP[alg.k_meaning]} This layer has {layer.n_positions:,} positions.")
        where.caption(k_caption(view, i))
    where.text_input("…or exact K per layer", key=init(f"ktext{gen}", ""), on_change=on_text,
                     placeholder=",".join(str(l.k) for l in view.layers),
                     help="Comma-separated whole numbers, one per layer. " + K_HELP[alg.k_meaning])


def set_conn_sliders(ks: list[int], view: RunView, gen: int) -> None:
    """After an exact K: the sliders show it (called from a callback, before they are drawn)."""
    for i, (k, layer) in enumerate(zip(ks, view.layers)):
        st.session_state[f"conn{i}_{gen}"] = min(1.0, max(0.001, round(k / layer.n_positions, 3)))


NOT_SETUP = ("steps", "device", "data_root", "download")   # where and how long, not what


def preset_index(name: str, cfg: RunConfig) -> int | None:
    """The preset selector's position, or None ("custom") when the run did not start from
    exactly that preset's setup (a sweep trial's lr or validation hold-out, a loaded
    checkpoint, another data set or method). `cfg` is the run's starting config: live changes
    made since do not turn a preset run into a custom one."""
    p = PRESETS.get(name)
    same = p is not None and all(v == getattr(cfg, f) for f, v in p.to_dict().items() if f not in NOT_SETUP)
    return list(PRESETS).index(name) if same else None


# -- images -------------------------------------------------------------------------------------
def theme() -> Palette:
    return palette(getattr(st.context.theme, "type", None))


def encode(img, fmt_: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt_, **({"quality": 85} if fmt_ == "JPEG" else {}))
    return buf.getvalue()


# -- the graph as a PNG file (the live graph is the canvas component) ------------------------
def graph_png(view: RunView, info, trail: graph.EventTrail) -> bytes:
    layout = graph.layout_for(view.layers, info.n_features, info.image_shape)
    return encode(graph.raster_graph(view.layers, layout, theme(), trail.fading(), (1400, 840)), "PNG")


def fetch_or_offer_restart(fetch: Callable, message: str, key: str, on_restart: Callable):
    """The page's frame(s) from `fetch()`; None after saying that a training process died
    (killed, out of memory) and offering to start again."""
    try:
        return fetch()
    except RuntimeError as exc:
        st.error(f"{exc}: {message}")
        st.button("Start again", key=key, type="primary", on_click=on_restart)
        return None


# -- lifetime -----------------------------------------------------------------------------------
def heartbeat(runs) -> None:
    """Tells paused runs that their tab is still open (a run with no news for 30 s parks)."""
    for run in runs:
        run.heartbeat()


def totals(view: RunView) -> dict:
    """Whole-network numbers of a view: K, connectivity, ever-active fraction (per-layer
    fractions weighted by layer size)."""
    sizes = np.array([l.n_positions for l in view.layers], dtype=float)
    k = sum(l.k for l in view.layers)
    steps, v = view.telemetry.ever_active_frac.arrays()
    ever = (v @ sizes / sizes.sum()) if v.ndim == 2 and len(steps) else np.array([k / sizes.sum()])
    return {"k": k, "connectivity": k / sizes.sum(), "ever_steps": steps, "ever": ever,
            "target_k": sum(k_targets(view))}
