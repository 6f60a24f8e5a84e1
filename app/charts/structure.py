"""Plotly figures of the active network's structure (deepr_engine.run.topology's summary): the
in- and out-degree distributions per layer, and reach, dead units and paths over the run. Pure
functions of the summary and the telemetry (testable without Streamlit)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from deepr_engine.run.views import TelemetryView

from .figures import add_changes, last_step, layout
from .palette import LAYER_COLORS

LABELS = {"inputs_reaching": "inputs reaching an output", "outputs_reached": "outputs reached from an input",
          "dead_units": "dead hidden units", "log10_paths": "log10 input→output paths"}


def degree_figure(summary: dict) -> go.Figure:
    """Per layer: how many units have each in-degree (its output units) and out-degree (its
    input units), as bars."""
    n = len(summary["in_degree"])
    fig = make_subplots(rows=1, cols=2, subplot_titles=("in-degree (the layer's outputs)",
                                                        "out-degree (the layer's inputs)"))
    fig.update_layout(**layout(height=320, barmode="group", uirevision="degrees", margin=dict(l=40, r=10, t=30, b=70),
                               legend=dict(orientation="h", y=-0.3)))
    for col, key in ((1, "in_degree"), (2, "out_degree")):
        for i in range(n):
            h = np.asarray(summary[key][i])
            fig.add_trace(go.Bar(x=np.arange(len(h)), y=h, name=f"L{i}", legendgroup=f"L{i}",
                                 showlegend=col == 1, marker_color=LAYER_COLORS[i % 8],
                                 hovertemplate=f"L{i}: %{{y}} units of degree %{{x}}<extra></extra>"),
                          row=1, col=col)
        fig.update_xaxes(title_text="degree", row=1, col=col)
    fig.update_yaxes(title_text="units", row=1, col=1)
    return fig


def history_figure(tel: TelemetryView) -> go.Figure:
    """The topology columns at each evaluation: reach and dead units (left axis), log10 paths
    (right axis); every hyperparameter change marked."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.update_layout(**layout(height=320, uirevision="topology", margin=dict(l=40, r=10, t=60, b=30),
                              legend=dict(orientation="h", y=1.2)))
    series = tel.topology
    if series is not None:
        steps, vals = series.arrays()
        if vals.size:
            vals = np.atleast_2d(vals)
            for j, name in enumerate(tel.topology_columns):
                y = np.where(np.isfinite(vals[:, j]), vals[:, j], np.nan)
                fig.add_trace(go.Scatter(x=steps, y=y, mode="lines+markers", name=LABELS.get(name, name),
                                         line=dict(color=LAYER_COLORS[j % 8], dash="dot" if name == "log10_paths"
                                                   else "solid"), marker=dict(size=3)),
                              secondary_y=name == "log10_paths")
    add_changes(fig, tel.changes, last_step(tel))
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="units", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text="log10 paths", secondary_y=True)
    return fig
