"""Plotly figure of a turnover scan (deepr_engine.run.scan): per 100 steps the established
deaths, the probes and the change of test accuracy against T or alpha on log axes, the share of
probes among settled revivals beside the zero-gradient theory (docs/algorithms.md), and the
value in force marked. Pure functions of the scan's rows."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from deepr_engine.run.scan import predicted_probe_fraction

from .figures import CLASS_STYLE, layout

NAMES = {"temperature": "T", "alpha": "alpha"}


def means(rows: list[dict]) -> dict[float, dict]:
    """value -> the mean of each numeric column over the rows that ran ok (repeats)."""
    out: dict[float, dict] = {}
    for v in sorted({r["value"] for r in rows}):
        ok = [r for r in rows if r["value"] == v and r.get("status") == "ok"]
        if ok:
            out[v] = {k: float(np.mean([r[k] for r in ok])) for k in ok[0]
                      if isinstance(ok[0][k], (int, float)) and not isinstance(ok[0][k], bool)}
    return out


def theory_curve(field: str, lo: float, hi: float, lr: float, alpha: float, temperature: float,
                 n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """The predicted probe fraction over a log grid of `field` from lo to hi, the other settings held."""
    xs = np.logspace(math.log10(lo), math.log10(hi), n)
    ys = [predicted_probe_fraction(lr, x if field == "alpha" else alpha, x if field == "temperature" else temperature)
          for x in xs]
    return xs, np.asarray(ys)


def scan_figure(field: str, rows: list[dict], current: float, lr: float, alpha: float,
                temperature: float) -> go.Figure:
    """Three panels sharing a log x axis: deaths and probes per 100 steps (log y); probe fraction,
    measured beside the theory; test accuracy change per 100 steps. A dashed line at `current`."""
    name = NAMES.get(field, field)
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.07, row_heights=[0.4, 0.33, 0.27],
                        subplot_titles=("rewiring events per 100 steps", "share of settled revivals that were "
                                        "probes: measured and zero-gradient theory", "test accuracy change per 100 steps"))
    fig.update_layout(**layout(height=700, uirevision=f"scan-{field}", margin=dict(l=50, r=10, t=30, b=110),
                               legend=dict(orientation="h", y=-0.13, yanchor="top")))
    m = means(rows)
    xs = np.array(list(m), dtype=float)
    col = lambda k: np.array([m[v].get(k, np.nan) for v in m])  # noqa: E731
    for key, cls in (("deaths_per_100", "death"), ("probes_per_100", "probe"), ("survived_per_100", "survived")):
        label, color = CLASS_STYLE[cls]
        y = col(key)
        fig.add_trace(go.Scatter(x=xs, y=np.where(y > 0, y, np.nan), mode="lines+markers", name=label,
                                 line=dict(color=color)), row=1, col=1)
    fig.add_trace(go.Scatter(x=xs, y=col("probe_fraction"), mode="markers", name="probe fraction (measured)",
                             marker=dict(color=CLASS_STYLE["probe"][1], size=9)), row=2, col=1)
    if len(xs):
        lo, hi = float(xs.min()), float(xs.max())
        lo, hi = min(lo, current) / 2, max(hi, current) * 2
        tx, ty = theory_curve(field, lo, hi, lr, alpha, temperature)
        fig.add_trace(go.Scatter(x=tx, y=ty, mode="lines", name="probe fraction (theory, zero gradient)",
                                 line=dict(color="#8e44ad", dash="dash")), row=2, col=1)
    fig.add_trace(go.Scatter(x=xs, y=col("acc_change_per_100"), mode="lines+markers", name="accuracy change",
                             line=dict(color="#2166ac")), row=3, col=1)
    for r in (1, 2, 3):
        fig.add_vline(x=current, line=dict(color="#e67e22", dash="dash", width=1.5), row=r, col=1)
    fig.update_xaxes(type="log", title_text=f"{name} (dashed orange: the value in force, {current:.0e})", row=3, col=1)
    fig.update_xaxes(type="log", row=1, col=1)
    fig.update_xaxes(type="log", row=2, col=1)
    fig.update_yaxes(type="log", title_text="/100 steps", row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], title_text="fraction", row=2, col=1)
    fig.update_yaxes(title_text="Δacc", row=3, col=1)
    return fig
