"""The dashboard's Topology view: the active network as a directed graph (deepr_engine.run.topology,
networkx's questions answered in O(K) numpy): which inputs still reach an output, which outputs
are reached, which hidden units are cut off, how many input-to-output paths there are, the
degree distributions per layer, and how these changed over the run (recorded at every
evaluation)."""
from __future__ import annotations

import math
import time

import streamlit as st

from deepr_engine.run import topology
from deepr_engine.run.views import RunView

from ..charts import structure


def topology_panel(view: RunView) -> None:
    t0 = time.perf_counter()
    try:
        s = topology.summary(view)
    except ValueError as exc:
        st.info(f"No topology for this network: {exc}")
        return
    ms = (time.perf_counter() - t0) * 1e3
    row = st.container(horizontal=True, gap="medium", key="topology_metrics")
    row.metric("Inputs reaching an output", f"{s['inputs_reaching']:,} of {s['n_inputs']:,}", width="content",
               help="input units with at least one active path to some output unit")
    row.metric("Outputs reached", f"{s['outputs_reached']:,} of {s['n_outputs']:,}", width="content",
               help="output units with at least one active path from some input: an output not "
                    "reached answers with its bias only")
    row.metric("Dead hidden units", f"{s['dead_units']:,}", width="content",
               help="hidden units on no input-to-output path (per level: "
                    + ", ".join(map(str, s["dead_per_level"])) + ")")
    paths = s["log10_paths"]
    row.metric("Input→output paths", "none" if paths == -math.inf else f"10^{paths:.1f}", width="content",
               help="the number of distinct directed paths from an input to an output (log10)")
    unit = "channels" if any(s["by_channel"]) else "units"
    st.caption(f"{s['n_edges']:,} active connections over levels of {', '.join(map(str, s['sizes']))} {unit}; "
               f"summary computed in {ms:.1f} ms from this frame (O(K), numpy). "
               "`deepr_engine.run.topology.to_digraph(view)` gives the same network as a networkx.DiGraph.")
    a, b = st.columns(2)
    a.plotly_chart(structure.degree_figure(s), key="degree_chart")
    b.plotly_chart(structure.history_figure(view.telemetry), key="topology_chart")
    st.markdown("<span id='topology-summary' data-inputs='%d' data-outputs='%d' data-dead='%d' hidden></span>"
                % (s["inputs_reaching"], s["outputs_reached"], s["dead_units"]), unsafe_allow_html=True)
