"""The live curves component on its own, driven by a real training run (a BackgroundSession),
for tests and benchmarks:

    streamlit run app/components/curves_demo.py -- (or with query parameters in the URL:)
    ?preset=digits-demo   any preset whose data is here
    ?play=1               start playing; ?spf=10 steps per chunk, ?rate=0 steps/s limit (0: none)
    ?theme=auto|light|dark  ?scale=sqrt|linear|log  ?columns=1
    ?truth=1              also write the engine's series for the frame the curves got (tests)
"""
from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `app` and `deepr_engine` importable

import numpy as np  # noqa: E402
import streamlit as st  # noqa: E402

from app.components import live_curves as lc  # noqa: E402
from deepr_engine.run.background import BackgroundSession  # noqa: E402


def _truth(data: lc.CurvesData, out: dict) -> str:
    """The engine's series exactly as float32 (what travels), NaN as null."""
    series = {}
    for name, arrays in data.series.items():
        steps, v = lc._rows(*arrays)
        v = v.astype(float)
        series[name] = [steps.tolist(), np.where(np.isfinite(v), v, None).tolist()]
    return json.dumps({"seq": out["seq"], "step": data.step, "series": series,
                       "changes": [lc.change_label(c) for c in data.changes]})


def main() -> None:
    st.set_page_config(page_title="live curves demo", layout="wide")
    q = st.query_params
    name, theme, scale = q.get("preset", "digits-demo"), q.get("theme", "auto"), q.get("scale", "sqrt")
    truth, columns = q.get("truth", "0") == "1", int(q.get("columns", "1"))
    spf, rate = int(q.get("spf", "10")), float(q.get("rate", "0"))

    if st.session_state.get("run_key") != name:
        if "run" in st.session_state:
            st.session_state["run"].close()
        st.session_state["run"] = BackgroundSession(name, steps_per_frame=spf, max_steps_per_second=rate)
        st.session_state["run_key"] = name
        st.session_state["playing"] = q.get("play", "0") == "1" and st.session_state["run"].play()
    run: BackgroundSession = st.session_state["run"]

    cols = st.columns(8)
    if cols[0].button("Step 1", key="step1"):
        run.step(1)
    if cols[1].button("Step 20", key="step20"):
        run.step(20)
    if cols[2].button("Step 1100", key="step1100"):  # past telemetry's 1,024 points: a rewrite
        run.step(1100)
    if cols[3].button("Play", key="play"):
        st.session_state["playing"] = run.play()
    if cols[4].button("Pause", key="pause"):
        run.pause()
        st.session_state["playing"] = False
    hp = run.hyperparams()
    if "temperature" in hp and cols[5].button("T ×10", key="t10"):
        run.set_hyperparams(temperature=hp["temperature"] * 10)
    if "alpha" in hp and cols[6].button("alpha ×10", key="a10"):
        run.set_hyperparams(alpha=hp["alpha"] * 10)
    if cols[7].button("K −10%", key="k90"):
        run.set_hyperparams(k=[max(1, int(k * 0.9)) for k in hp["k"]])
    playing = st.session_state["playing"]

    def live() -> None:
        t0 = time.perf_counter()
        f = run.frame(events=False)  # the curves need no rewiring events
        st.session_state["playing"] = f.playing
        data = lc.from_view(f, run_id=run.run_id)
        out = lc.live_curves(data, key="curves", height=230, columns=columns, theme=theme,
                             playing=f.playing, scale=scale)
        st.caption(f"step <span id='demo-step'>{f.step}</span> · message {out['seq']} ({out['kind']}, "
                   f"<span id='demo-bytes'>{out['bytes']}</span> bytes) · browser "
                   f"{out['browser_fps'] or 0:.1f} frames/s · sent {out['counts']} · "
                   f"<span id='server-ms'>{(time.perf_counter() - t0) * 1e3:.0f}</span> ms here",
                   unsafe_allow_html=True)
        if truth:
            b64 = base64.b64encode(_truth(data, out).encode()).decode()  # markdown leaves it alone
            st.markdown(f"<code id='engine-series' style='display:none'>{b64}</code>", unsafe_allow_html=True)
        if f.playing != playing:
            st.rerun(scope="app")  # the fragment's run_every follows playing/paused

    st.fragment(run_every=lc.run_every("curves", playing))(live)()


# Streamlit runs this file as __main__; the training process re-imports it as __mp_main__ and
# must not draw a page (or start another training process).
if __name__ == "__main__":
    main()
