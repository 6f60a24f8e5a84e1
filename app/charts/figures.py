"""Plotly figures for the dashboard, built from a run's typed view (deepr_engine.run.views) and
its telemetry (pure functions: no Streamlit here, so they are testable and timeable on their
own). Backgrounds and fonts are left to Streamlit's theme (light or dark); sign is blue (+) and
red (-) as in the graph; every time chart marks every hyperparameter change of the run."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from deepr_engine.run.telemetry import lifetime_bin_edges
from deepr_engine.run.views import LayerView, RunView, TelemetryView
from deepr_engine.theory import theta_density

from . import changes as ch
from .palette import LAYER_COLORS, SIGN_SCALE

_BASE = dict(margin=dict(l=40, r=10, t=30, b=30), height=300, legend=dict(orientation="h", y=1.12))
MARKER = "#8e44ad"


def _fig(**kw) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(**(_BASE | kw))
    return fig


def add_changes(fig: go.Figure, changes, x_max: float, plot_px: int = 600, rows: int = 3) -> None:
    """A dashed marker at every hyperparameter change; labels (horizontal) in up to `rows`
    rows at the top where they do not overlap, the rest in the marker's hover text."""
    changes = list(changes)
    if not changes:
        return
    per_px = max(x_max, 1.0) / plot_px
    labels = [ch.label(c) for c in changes]
    placed = ch.place([c[0] / per_px for c in changes], [6.2 * len(t) for t in labels], rows)
    for c, text, row in zip(changes, labels, placed):
        fig.add_vline(x=c[0], line=dict(color=MARKER, dash="dash", width=1))
        fig.add_annotation(x=c[0], y=1.0, yref="paper", yshift=-14 * (row or 0),
                           text=text if row is not None else "▾", hovertext=f"step {c[0]}: {text}",
                           showarrow=False, xanchor="left" if row is not None else "center",
                           yanchor="top", font=dict(size=10, color=MARKER))


def layout(**kw) -> dict:
    """The dashboard charts' common layout with `kw` on top (for the figures of other modules)."""
    return _BASE | kw


def last_step(tel: TelemetryView) -> float:
    return _x_max(tel)


def _x_max(tel: TelemetryView) -> float:
    steps = tel.series["loss"].steps
    return float(steps[-1]) if len(steps) else 1.0


def transitions_figure(tel: TelemetryView) -> go.Figure:
    """Connections pruned and activated per step, per layer (mean over down-sampled windows)."""
    fig = _fig(height=280, uirevision="trans")
    for series, dash, label in ((tel.pruned, "solid", "pruned"), (tel.activated, "dot", "activated")):
        steps, vals = series.arrays()
        if vals.size == 0:
            continue
        for i in range(vals.shape[1]):
            fig.add_trace(go.Scatter(x=steps, y=vals[:, i], mode="lines", name=f"L{i} {label}",
                                     line=dict(color=LAYER_COLORS[i % 8], dash=dash)))
    add_changes(fig, tel.changes, _x_max(tel))
    fig.update_xaxes(title_text="step", rangemode="tozero")
    fig.update_yaxes(title_text="connections / step", rangemode="tozero")
    return fig


CLASS_STYLE = {"probe": ("probes (pruned within the probe window)", "#9970ab"),
               "death": ("deaths of established connections", "#4d4d4d"),
               "survived": ("revivals that survived", "#1a9850")}


def classified_figure(tel: TelemetryView) -> go.Figure:
    """Rewiring events per 100 steps, the three classes (deepr_engine.run.classify) stacked, one
    panel per layer; every hyperparameter change marked."""
    classes = tel.classes()
    steps, _ = classes["probe"].arrays()
    n_layers = classes["probe"].values.shape[1] if classes["probe"].values.ndim == 2 else 0
    fig = make_subplots(rows=max(n_layers, 1), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[f"layer {i}" for i in range(n_layers)] or None)
    fig.update_layout(**(_BASE | dict(height=90 + 110 * max(n_layers, 1), uirevision="classes",
                                      margin=dict(l=50, r=10, t=70, b=40), legend=dict(orientation="h", y=0.995, yanchor="top",
                                                                         yref="container"))))
    for i in range(n_layers):
        for name in CLASS_STYLE:
            label, color = CLASS_STYLE[name]
            fig.add_trace(go.Scatter(x=steps, y=100 * classes[name].values[:, i], mode="lines", name=label,
                                     stackgroup=f"L{i}", legendgroup=name, showlegend=i == 0,
                                     line=dict(color=color, width=0.6), fillcolor=color,
                                     hovertemplate=f"L{i} {name}: %{{y:.3g}} per 100 steps at step %{{x}}<extra></extra>"),
                          row=i + 1, col=1)
        fig.update_yaxes(title_text="/100 steps", rangemode="tozero", row=i + 1, col=1)
    add_changes(fig, tel.changes, _x_max(tel))
    fig.update_xaxes(title_text="step", rangemode="tozero", row=max(n_layers, 1), col=1)
    return fig


def class_rows(tel: TelemetryView) -> list[dict]:
    """Per layer (and all layers): each class since the start and per 100 steps over the last
    `class_window` steps (the engine's exact counts)."""
    names = list(CLASS_STYLE)
    n = len(tel.class_totals.get("probe", []))
    rows = []
    for i in list(range(n)) + ["all"]:
        pick = (lambda a: float(np.sum(a))) if i == "all" else (lambda a, i=i: float(a[i]))
        rows.append({"layer": str(i)} | {f"{c} total": int(pick(tel.class_totals[c])) for c in names}
                    | {f"{c} /100 steps": pick(tel.class_rates[c]) for c in names})
    return rows


def raster_figure(tel: TelemetryView) -> go.Figure:
    """Active (dark) / dormant (light) state of the tracked connections over time."""
    steps, walks = tel.tracked_theta.arrays()
    fig = _fig(height=280, uirevision="raster")
    if walks.size:
        labels = [f"L{l}:{p}" for l, p in zip(tel.tracked_layer, tel.tracked_pos)]
        fig.add_trace(go.Heatmap(x=steps, y=labels, z=(walks >= 0).T.astype(float), showscale=False,
                                 colorscale=[[0, "#f0f0f0"], [1, "#08519c"]], zmin=0, zmax=1,
                                 hovertemplate="%{y} step %{x}: %{z}<extra></extra>"))
    fig.update_xaxes(title_text="step")
    return fig


def lifetime_figure(tel: TelemetryView) -> go.Figure:
    edges = lifetime_bin_edges()
    labels = ["0"] + [f"{int(e)}–{int(2 * e - 1)}" if e > 1 else "1" for e in edges[1:]]
    fig = _fig(height=280, barmode="group", uirevision="life")
    last = int(np.max(np.nonzero(tel.lifetimes.sum(0))[0], initial=0)) + 1
    for i, row in enumerate(tel.lifetimes):
        fig.add_trace(go.Bar(x=labels[:last], y=row[:last], name=f"L{i}", marker_color=LAYER_COLORS[i % 8]))
    fig.update_xaxes(title_text="steps active before pruned")
    fig.update_yaxes(title_text="connections", type="log")
    return fig


def ever_active_figure(tel: TelemetryView) -> go.Figure:
    steps, vals = tel.ever_active_frac.arrays()
    fig = _fig(height=280, uirevision="ever")
    for i in range(vals.shape[1] if vals.ndim == 2 else 0):
        fig.add_trace(go.Scatter(x=steps, y=vals[:, i], name=f"L{i}", line=dict(color=LAYER_COLORS[i % 8])))
    fig.update_yaxes(title_text="fraction of positions ever active", range=[0, 1.02])
    fig.update_xaxes(title_text="step")
    return fig


def posterior_figure(view: RunView, alpha: float, temperature: float,
                     theta_min: list[float] | None) -> go.Figure:
    """Histogram of theta (active only for Deep R; all for soft-Deep R) against the density of
    docs/algorithms.md for the current alpha and T (zero-gradient theory). The log axis spans
    three decades below the highest bar, so the theory's tail does not flatten the bars."""
    soft = theta_min is not None
    thetas = np.concatenate([l.theta.ravel() if soft and l.theta is not None else l.active_theta
                             for l in view.layers])
    fig = _fig(height=320, uirevision="post")
    if thetas.size == 0:
        return fig
    lo = min(thetas.min(), min(theta_min) if soft else 0.0)
    hi = max(np.quantile(thetas, 0.995), 1e-12)
    bins = np.linspace(lo, hi, 81)
    hist, edges = np.histogram(thetas, bins=bins, density=True)
    mids = (edges[:-1] + edges[1:]) / 2
    fig.add_trace(go.Bar(x=mids, y=hist, width=np.diff(edges), name="θ (histogram)",
                         marker_color="#9ecae1"))
    grid = np.linspace(lo, hi, 400)
    dens = theta_density(grid, alpha, temperature, min(theta_min) if soft else None)
    if np.all(np.isfinite(dens)):
        fig.add_trace(go.Scatter(x=grid, y=dens, name="theory (zero gradient)",
                                 line=dict(color="#de2d26", width=2)))
    fig.add_vline(x=0, line=dict(color="#888", width=1))
    fig.update_xaxes(title_text="θ")
    peak = float(hist.max()) if hist.size and hist.max() > 0 else 1.0
    fig.update_yaxes(title_text="density (log)", type="log",
                     range=[np.log10(peak) - 3, np.log10(peak) + 0.3])
    return fig


# Views that draw every position of a layer do so up to this many positions (a 4096x4096
# heatmap is 16.8M numbers, about 130 MB of JSON for the browser); larger layers show a block.
FULL_VIEW_POSITIONS = 250_000
BLOCK = 256  # rows and columns of the block a larger layer shows


def weight_block(layer: LayerView, rows: int, cols: int) -> np.ndarray:
    """The effective weights of the first `rows` outputs x `cols` inputs (dormant 0), built
    from the active connections only: O(K), whatever the layer's size. Conv kernels count their
    inputs as in x kh x kw."""
    n_in = layer.n_positions // layer.shape[0]
    rows, cols = min(rows, layer.shape[0]), min(cols, n_in)
    r, c = np.divmod(layer.active_pos, n_in)
    inside = (r < rows) & (c < cols)
    block = np.zeros((rows, cols), dtype=layer.active_weight.dtype)
    block[r[inside], c[inside]] = layer.active_weight[inside]
    return block


def weights_figure(layer: LayerView, title: str) -> tuple[go.Figure, str]:
    """Signed sparse weight matrix (rows: outputs, columns: inputs); dormant exactly 0;
    blue positive, red negative. A layer of more than FULL_VIEW_POSITIONS positions shows its
    first BLOCK x BLOCK block; the caption says so ("" for a whole layer)."""
    n_in = layer.n_positions // layer.shape[0]
    if layer.n_positions <= FULL_VIEW_POSITIONS:
        w, note = weight_block(layer, layer.shape[0], n_in), ""
    else:
        w = weight_block(layer, BLOCK, BLOCK)
        note = (f"{layer.n_positions:,} positions: showing outputs 0-{w.shape[0] - 1} x inputs "
                f"0-{w.shape[1] - 1} ({int(np.count_nonzero(w)):,} of the layer's {layer.k:,} "
                "active connections)")
    top = float(np.abs(w).max()) if w.size else 0.0
    top = top or 1.0
    fig = _fig(height=260, title=dict(text=title, font=dict(size=12)), uirevision=title)
    fig.add_trace(go.Heatmap(z=w, zmin=-top, zmax=top, colorscale=SIGN_SCALE,
                             hovertemplate="out %{y}, in %{x}: %{z:.3g}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return fig, note


def fan_in_images(layer: LayerView, image_shape: tuple[int, int], max_units: int = 64) -> np.ndarray:
    """The first layer's hidden units' incoming weights as images, tiled into one grid image
    (values in [0, 1]: 0.5 is zero weight). O(K): only the first max_units rows are built."""
    h, w = image_shape
    wts = weight_block(layer, max_units, h * w).reshape(-1, h, w)
    n = len(wts)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), 0.5)
    top = np.abs(wts).max() or 1.0
    for i, img in enumerate(wts):
        r, c = divmod(i, cols)
        grid[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = 0.5 + 0.5 * img / top
    return grid


def fan_out_image(layer: LayerView, image_shape: tuple[int, int]) -> np.ndarray:
    """Active outgoing connections per input pixel (O(K))."""
    n_in = layer.n_positions // layer.shape[0]
    return np.bincount(layer.active_pos % n_in, minlength=n_in).reshape(image_shape)


def image_figure(img: np.ndarray, title: str, colorscale=SIGN_SCALE, zmid=None) -> go.Figure:
    fig = _fig(height=300, title=dict(text=title, font=dict(size=12)), uirevision=title)
    fig.add_trace(go.Heatmap(z=img, colorscale=colorscale, zmid=zmid,
                             showscale=colorscale != SIGN_SCALE))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", visible=False)
    fig.update_xaxes(visible=False)
    return fig


def boundary_figure(xs: np.ndarray, ys: np.ndarray, prob: np.ndarray, x: np.ndarray,
                    y: np.ndarray) -> go.Figure:
    """Decision boundary on a 2-D grid with the data points, as in TensorFlow Playground."""
    fig = _fig(height=380, uirevision="boundary", showlegend=False)
    fig.add_trace(go.Heatmap(x=xs, y=ys, z=prob, colorscale="RdBu", zmin=0, zmax=1, showscale=False,
                             opacity=0.6, hoverinfo="skip"))
    fig.add_trace(go.Scattergl(x=x[:, 0], y=x[:, 1], mode="markers",
                               marker=dict(size=5, color=y, colorscale=[[0, "#b2182b"], [0.5, "#f7f7f7"], [1, "#2166ac"]],
                                           line=dict(color="white", width=0.5))))
    fig.update_yaxes(scaleanchor="x")
    return fig


def overlay_figure(curves: list[tuple[str, np.ndarray, np.ndarray]], title: str,
                   colors: list[str], log: bool = False) -> go.Figure:
    """One line per run (label, steps, values) on shared axes (log: a log y axis, zeros left
    out)."""
    fig = _fig(height=280, uirevision=title, title=dict(text=title, font=dict(size=13)),
               margin=dict(l=40, r=10, t=40, b=30), legend=dict(orientation="h", y=-0.12))
    for i, (label, x, y) in enumerate(curves):
        if log:
            y = np.where(np.asarray(y, dtype=float) > 0, y, np.nan)
        fig.add_trace(go.Scatter(x=x, y=y, name=label, mode="lines", connectgaps=False,
                                 line=dict(color=colors[i % len(colors)], width=2)))
    fig.update_xaxes(rangemode="tozero")
    if log:
        fig.update_yaxes(type="log")
    return fig
