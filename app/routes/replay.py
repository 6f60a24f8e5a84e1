"""Step replay: paused, a timeline under the graph scrubs the last REPLAY_STEPS steps (the run
keeps their rewiring events, telemetry.EventRing). The chosen step's pruned connections (brief
probes apart from established ones) and revived connections are drawn over the network without
fading; hovering one gives its theta before and after the step; a small chart of the window's
rewiring puts a cursor on the step. Click the slider, then the arrow keys step back and forth;
Play leaves replay (the panel is drawn only while paused)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from deepr_engine.run.views import RunView

from ..charts.graph import layout_for
from ..charts.palette import is_probe
from ..state import DashboardState
from ..widgets import theme

REPLAY_STEPS = 200     # steps offered on the timeline (the ring holds 256)
FAINT_EDGES = 4000     # active connections drawn faintly for context (evenly subsampled)


def classify(layer: dict) -> dict[str, np.ndarray]:
    """Index arrays into the step's pruned list: probes and established deaths."""
    probe = is_probe(layer["pruned_age"])
    return {"probe": np.flatnonzero(probe), "died": np.flatnonzero(~probe)}


def counts(layers: list[dict]) -> dict[str, int]:
    out = {"revived": 0, "probe": 0, "died": 0}
    for layer in layers:
        c = classify(layer)
        out["probe"] += len(c["probe"])
        out["died"] += len(c["died"])
        out["revived"] += len(layer["activated"])
    return out


def _segments(xy, a, b):
    """x, y arrays of line segments a[i] -> b[i] with None between them (one plotly trace)."""
    x = np.full(len(a) * 3, np.nan)
    y = np.full(len(a) * 3, np.nan)
    x[0::3], x[1::3] = xy[a, 0], xy[b, 0]
    y[0::3], y[1::3] = xy[a, 1], xy[b, 1]
    return x, y


def figure(view: RunView, info, replay: dict) -> go.Figure:
    """The network (faint: the connections active now) and the step's events, bold."""
    pal = theme()
    lin = [l for l in view.layers if len(l.shape) == 2]
    lay = layout_for(view.layers, info.n_features, info.image_shape)
    fig = go.Figure()
    rng = np.random.default_rng(0)
    ends = {"revived": ([], [], []), "probe": ([], [], []), "died": ([], [], [])}
    for j, l in enumerate(lin):
        n_in = l.shape[1]
        pos = l.active_pos
        if len(pos) > FAINT_EDGES:
            pos = np.sort(rng.choice(pos, FAINT_EDGES, replace=False))
        a, b = lay.offsets[j] + pos % n_in, lay.offsets[j + 1] + pos // n_in
        x, y = _segments(lay.xy, a, b)
        fig.add_trace(go.Scattergl(x=x, y=y, mode="lines", line=dict(color=pal.grid, width=0.6),
                                   hoverinfo="skip", showlegend=False))
        ev = replay["layers"][l.index]
        kinds = classify(ev)
        for kind, positions, text in (
                ("revived", ev["activated"], [f"revived at θ 0 (was dormant)"] * len(ev["activated"])),
                *((k, ev["pruned"][ix], [f"{'probe' if k == 'probe' else 'established'}: lived "
                                         f"{ev['pruned_age'][i]} steps"
                                         + (f"<br>θ {ev['theta_before'][i]:.3g} → {ev['theta_after'][i]:.3g}"
                                            if len(ev["theta_before"]) else "")
                                         for i in ix]) for k, ix in kinds.items())):
            for p, t in zip(positions, text):
                ends[kind][0].append(lay.offsets[j] + p % n_in)
                ends[kind][1].append(lay.offsets[j + 1] + p // n_in)
                ends[kind][2].append(f"layer {l.index}: {p % n_in} → {p // n_in}<br>{t}")
    names = {"revived": "revived", "probe": "pruned (probe)", "died": "pruned (established)"}
    for kind, (a, b, text) in ends.items():
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        x, y = _segments(lay.xy, a, b)
        color = pal.event(kind)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(color=color, width=2.5),
                                 hoverinfo="skip", name=f"{names[kind]} ({len(a)})", legendgroup=kind))
        mid = (lay.xy[a] + lay.xy[b]) / 2 if len(a) else np.zeros((0, 2))
        fig.add_trace(go.Scatter(x=mid[:, 0], y=mid[:, 1], mode="markers", marker=dict(color=color, size=7),
                                 hovertext=text, hoverinfo="text", showlegend=False, legendgroup=kind))
    fig.add_trace(go.Scattergl(x=lay.xy[:, 0], y=lay.xy[:, 1], mode="markers", hoverinfo="skip",
                               marker=dict(size=4, color=pal.node), showlegend=False))
    fig.update_layout(template=pal.plotly_template, height=380, margin=dict(l=4, r=4, t=28, b=4),
                      title=f"step {replay['step']:,}", legend=dict(orientation="h", y=-0.02),
                      xaxis=dict(visible=False), yaxis=dict(visible=False))
    return fig


def window_figure(s: DashboardState, steps: list[int], step: int) -> go.Figure:
    """Pruned and revived per step over the timeline's window, with a cursor on `step`."""
    tel = s.frame.telemetry
    fig = go.Figure()
    pal = theme()
    for name, series, dash, color in (("pruned", tel.pruned, "solid", pal.died),
                                      ("revived", tel.activated, "dot", pal.revived)):
        x, v = series.arrays()
        keep = (x >= steps[0]) & (x <= steps[-1])
        v = np.asarray(v)[keep]
        fig.add_trace(go.Scatter(x=x[keep], y=v.sum(axis=1) if v.ndim > 1 else v, mode="lines", name=name,
                                 line=dict(dash=dash, color=color)))
    fig.add_vline(x=step, line_dash="dot", line_color=pal.marker)
    fig.update_layout(template=pal.plotly_template, height=170, margin=dict(l=4, r=4, t=24, b=4),
                      legend=dict(orientation="h", y=1.15), xaxis_title="step",
                      yaxis_title="per step")
    return fig


def panel(s: DashboardState, view: RunView) -> None:
    """The timeline and the chosen step (paused only)."""
    if view.playing:
        return
    held = s.run.replay(None)["steps"]
    steps = [t for t in held if t > view.step - REPLAY_STEPS]
    with st.expander("Step replay", expanded=bool(steps)):
        if len(steps) < 2:
            st.caption("Replay shows the last steps' rewiring once the run has trained (Play or Step).")
            return
        step = st.select_slider("Step", steps, value=steps[-1], key=f"replay{s.gen}_{view.step}",
                                help="the last steps the run keeps events for; click, then ← → to step")
        rep = s.run.replay(step)
        if rep["layers"] is None:
            st.caption(f"Step {step:,} is no longer kept.")
            return
        c = counts(rep["layers"])
        st.caption(f"step {step:,}: <span id='replay-counts'>{c['died']} pruned (established), "
                   f"{c['probe']} probes, {c['revived']} revived</span>. Faint: the connections "
                   "active now; hover a bold edge's dot for its θ before and after.", unsafe_allow_html=True)
        st.plotly_chart(figure(view, s.run.info, rep), key="replay_graph")
        st.plotly_chart(window_figure(s, steps, step), key="replay_window")
