"""Plotly figures for the dashboard, built from a session snapshot and its telemetry (pure
functions: no Streamlit here, so they are testable and timeable on their own)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from deepr_engine.run.telemetry import Telemetry, lifetime_bin_edges
from deepr_engine.theory import theta_density

LAYER_COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
_BASE = dict(margin=dict(l=40, r=10, t=30, b=30), height=300, plot_bgcolor="white",
             legend=dict(orientation="h", y=1.12))


def _fig(**kw) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(**(_BASE | kw))
    fig.update_xaxes(gridcolor="#eee")
    fig.update_yaxes(gridcolor="#eee")
    return fig


def accuracy_figure(tel: Telemetry) -> go.Figure:
    """Train (per-step, averaged when down-sampled) and test accuracy and loss, with a marker
    and label at each hyperparameter change."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for name, color, dash, sec in (("train_acc", "#1f77b4", "solid", False),
                                   ("test_acc", "#ff7f0e", "solid", False),
                                   ("loss", "#1f77b4", "dot", True), ("test_loss", "#ff7f0e", "dot", True)):
        steps, vals = tel.series[name].arrays()
        fig.add_trace(go.Scatter(x=steps, y=vals, name=name.replace("_", " "), mode="lines",
                                 line=dict(color=color, dash=dash)), secondary_y=sec)
    for step, name, old, new in list(tel.changes)[-20:]:
        fig.add_vline(x=step, line=dict(color="#888", dash="dash", width=1))
        fig.add_annotation(x=step, y=1.0, yref="paper", text=f"{name}: {_fmt(old)} → {_fmt(new)}",
                           showarrow=False, textangle=-90, xanchor="right", yanchor="top",
                           font=dict(size=9, color="#555"))
    fig.update_layout(**(_BASE | dict(height=320, uirevision="acc")))
    fig.update_yaxes(title_text="accuracy", range=[0, 1.02], secondary_y=False)
    fig.update_yaxes(title_text="loss", secondary_y=True, showgrid=False)
    fig.update_xaxes(title_text="step")
    return fig


def _fmt(v) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _joined(steps: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Several curves as one trace: concatenated, separated by NaN gaps."""
    n, m = columns.shape
    xs = np.full((m, n + 1), np.nan)
    ys = np.full((m, n + 1), np.nan)
    xs[:, :n] = steps
    ys[:, :n] = columns.T
    return xs.ravel(), ys.ravel()


def walks_figure(tel: Telemetry, selected: list[int] | None = None,
                 theta_min: list[float] | None = None) -> go.Figure:
    """theta of the tracked connections over time. Active stretches are drawn solid and
    coloured by layer; dormant stretches thin and grey (Deep R: flat until revived at 0;
    soft-Deep R: still walking, down to theta_min). One trace per layer and state keeps
    the frame cheap to build and send."""
    steps, walks = tel.tracked_theta.arrays()
    fig = _fig(height=340, uirevision="walks")
    if walks.size == 0:
        return fig
    cols = np.arange(walks.shape[1]) if selected is None else \
        np.array([c for c in selected if c < walks.shape[1]], dtype=int)
    walks = walks[:, cols]
    layers = tel.tracked_layer[cols]
    xs, ys = _joined(steps, walks)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="#bbb", width=1),
                             name="dormant", hoverinfo="skip"))
    for layer in np.unique(layers):
        sel = layers == layer
        xs, ys = _joined(steps, np.where(walks[:, sel] >= 0, walks[:, sel], np.nan))
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"layer {layer} (active)",
                                 line=dict(color=LAYER_COLORS[int(layer) % 8], width=2),
                                 hovertemplate="step %{x}, θ=%{y:.3g}<extra></extra>"))
    fig.add_hline(y=0, line=dict(color="black", width=1))
    for tm in sorted(set(theta_min or [])):
        fig.add_hline(y=tm, line=dict(color="#888", dash="dot", width=1),
                      annotation_text=f"θ_min {tm:.2g}", annotation_font_size=9)
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="θ")
    return fig


def transitions_figure(tel: Telemetry) -> go.Figure:
    """Connections pruned and activated per step, per layer (mean over down-sampled windows)."""
    fig = _fig(height=280, uirevision="trans")
    for series, dash, label in ((tel.pruned, "solid", "pruned"), (tel.activated, "dot", "activated")):
        steps, vals = series.arrays()
        if vals.size == 0:
            continue
        for i in range(vals.shape[1]):
            fig.add_trace(go.Scatter(x=steps, y=vals[:, i], mode="lines", name=f"L{i} {label}",
                                     line=dict(color=LAYER_COLORS[i % 8], dash=dash)))
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="connections / step")
    return fig


def raster_figure(tel: Telemetry) -> go.Figure:
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


def lifetime_figure(tel: Telemetry) -> go.Figure:
    edges = lifetime_bin_edges()
    labels = ["0"] + [f"{int(e)}–{int(2 * e - 1)}" if e > 1 else "1" for e in edges[1:]]
    fig = _fig(height=280, barmode="group", uirevision="life")
    last = int(np.max(np.nonzero(tel.lifetimes.sum(0))[0], initial=0)) + 1
    for i, row in enumerate(tel.lifetimes):
        fig.add_trace(go.Bar(x=labels[:last], y=row[:last], name=f"L{i}", marker_color=LAYER_COLORS[i % 8]))
    fig.update_xaxes(title_text="steps active before pruned")
    fig.update_yaxes(title_text="connections", type="log")
    return fig


def ever_active_figure(tel: Telemetry) -> go.Figure:
    steps, vals = tel.ever_active_frac.arrays()
    fig = _fig(height=280, uirevision="ever")
    for i in range(vals.shape[1] if vals.ndim == 2 else 0):
        fig.add_trace(go.Scatter(x=steps, y=vals[:, i], name=f"L{i}", line=dict(color=LAYER_COLORS[i % 8])))
    fig.update_yaxes(title_text="fraction of positions ever active", range=[0, 1.02])
    fig.update_xaxes(title_text="step")
    return fig


def posterior_figure(snapshot: dict, alpha: float, temperature: float,
                     theta_min: list[float] | None) -> go.Figure:
    """Histogram of theta (active only for Deep R; all for soft-Deep R) against the spec's
    density for the current alpha and T (zero-gradient theory)."""
    soft = theta_min is not None
    thetas = np.concatenate([l["theta"].ravel() if soft else l["theta"].ravel()[l["active"].ravel()]
                             for l in snapshot["layers"]])
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
    fig.add_vline(x=0, line=dict(color="black", width=1))
    fig.update_xaxes(title_text="θ")
    fig.update_yaxes(title_text="density", type="log")
    return fig


def weights_figure(layer: dict, title: str) -> go.Figure:
    """Signed sparse weight matrix (rows: outputs, columns: inputs); dormant exactly 0."""
    w = layer["weight"].reshape(layer["shape"][0], -1)
    top = float(np.abs(w).max()) or 1.0
    fig = _fig(height=260, title=dict(text=title, font=dict(size=12)), uirevision=title)
    fig.add_trace(go.Heatmap(z=w, zmin=-top, zmax=top, colorscale="RdBu", reversescale=True,
                             hovertemplate="out %{y}, in %{x}: %{z:.3g}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return fig


def fan_in_images(layer: dict, image_shape: tuple[int, int], max_units: int = 64) -> np.ndarray:
    """The first layer's hidden units' incoming weights as images, tiled into one grid image
    (values in [0, 1]: 0.5 is zero weight)."""
    h, w = image_shape
    wts = layer["weight"].reshape(layer["shape"][0], h, w)[:max_units]
    n = len(wts)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), 0.5)
    top = np.abs(wts).max() or 1.0
    for i, img in enumerate(wts):
        r, c = divmod(i, cols)
        grid[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = 0.5 + 0.5 * img / top
    return grid


def fan_out_image(layer: dict, image_shape: tuple[int, int]) -> np.ndarray:
    """Active outgoing connections per input pixel."""
    return layer["active"].reshape(layer["shape"][0], -1).sum(0).reshape(image_shape)


def image_figure(img: np.ndarray, title: str, colorscale="RdBu", zmid=None) -> go.Figure:
    fig = _fig(height=300, title=dict(text=title, font=dict(size=12)), uirevision=title)
    fig.add_trace(go.Heatmap(z=img, colorscale=colorscale, reversescale=colorscale == "RdBu",
                             zmid=zmid, showscale=colorscale != "RdBu"))
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
                   colors: list[str]) -> go.Figure:
    """One line per run (label, steps, values) on shared axes."""
    fig = _fig(height=280, uirevision=title, title=dict(text=title, font=dict(size=13)),
               margin=dict(l=40, r=10, t=40, b=30), legend=dict(orientation="h", y=-0.12))
    for i, (label, x, y) in enumerate(curves):
        fig.add_trace(go.Scatter(x=x, y=y, name=label, mode="lines",
                                 line=dict(color=colors[i % len(colors)], width=2)))
    return fig
