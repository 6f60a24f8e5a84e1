"""The live graph component on its own, driven by a real training run (a BackgroundSession),
for tests and benchmarks:

    streamlit run app/components/demo.py -- (or with query parameters in the URL:)
    ?preset=digits-demo   any preset whose data is here
    ?size=paper           paper-mnist's network size on the digits data (64-300-100-10,
                          2,352 + 900 + 300 = 3,552 edges, as 784-300-100-10 at 1%/3%/30%)
    ?size=wide            64-1000-300-10 with 35k edges (the canvas draws a sample)
    ?play=1               start playing; ?spf=10 steps per chunk, ?rate=0 steps/s limit (0: none)
    ?pace=timer|pull      who drives the frames (see live_graph.live_graph)
    ?theme=auto|light|dark
    ?truth=1              also write the engine's active set (for the delta test)
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `app` and `deepr_engine` importable

import streamlit as st  # noqa: E402

from app.components import live_graph as lg  # noqa: E402
from deepr_engine.run.background import BackgroundSession  # noqa: E402
from deepr_engine.run.config import preset  # noqa: E402


def main() -> None:
    st.set_page_config(page_title="live graph demo", layout="wide")
    q = st.query_params
    name, size = q.get("preset", "digits-demo"), q.get("size", "")
    pace, theme, truth = q.get("pace", "pull"), q.get("theme", "auto"), q.get("truth", "0") == "1"
    spf, rate = int(q.get("spf", "10")), float(q.get("rate", "0"))

    def config():
        if size == "paper":
            # lr_decay 1: a per-epoch decay on 1,437 digits would freeze the run in seconds
            return preset("paper-mnist").replace(dataset="digits", connectivity=[0.1225, 0.03, 0.3],
                                                 eval_every=1000, lr_decay=1.0)
        if size == "wide":  # 35k edges: above SAMPLE_LIMIT, the canvas draws a sample
            return preset("digits-demo").replace(hidden=[1000, 300], connectivity=[0.3, 0.05, 0.3])
        return preset(name)

    run_key = f"{name}/{size}"
    if st.session_state.get("run_key") != run_key:
        if "run" in st.session_state:
            st.session_state["run"].close()
        st.session_state["run"] = BackgroundSession(config(), steps_per_frame=spf,
                                                        max_steps_per_second=rate)
        st.session_state["run_key"] = run_key
        st.session_state["cursor"] = None
        st.session_state["playing"] = q.get("play", "0") == "1" and st.session_state["run"].play()
    run: BackgroundSession = st.session_state["run"]

    cols = st.columns(4)
    if cols[0].button("Step 1", key="step1"):
        run.step(1)
    if cols[1].button("Step 20", key="step20"):
        run.step(20)
    if cols[2].button("Play", key="play"):
        st.session_state["playing"] = run.play()
    if cols[3].button("Pause", key="pause"):
        run.pause()
        st.session_state["playing"] = False
    playing = st.session_state["playing"]

    def live() -> None:
        t0 = time.perf_counter()
        if pace == "timer" and playing and lg.run_every("graph", pace="timer") != st.session_state.get("tick"):
            st.rerun(scope="app")  # a new interval takes a new fragment (before anything is sent)
        cursor = st.session_state.get("cursor")  # this page's events cursor (a read takes nothing)
        f = run.frame(since=cursor, events=cursor is not None)
        st.session_state["cursor"] = f.events_cursor
        st.session_state["playing"] = f.playing
        out = lg.live_graph(lg.from_frame(f, run.info, run_id=run_key), key="graph", height=380,
                            theme=theme, playing=f.playing, pace=pace)
        st.caption(f"step <span id='demo-step'>{f.step}</span> · message {out['seq']} ({out['kind']}, "
                   f"{out['bytes']:,} bytes) · browser {out['browser_fps'] or 0:.1f} frames/s · "
                   f"behind {out['behind']} · run_every {out['run_every']} · "
                   f"<span id='server-ms'>{(time.perf_counter() - t0) * 1e3:.0f}</span> ms here",
                   unsafe_allow_html=True)
        if truth:  # the engine's own active set, beside the frame the graph got
            layers = lg.from_frame(f, run.info).layers
            state = {"seq": out["seq"], "step": f.step,
                     "layers": [[int(p) for p in l.active_pos] for l in layers],
                     "weights": [[round(float(w), 5) for w in l.active_weight] for l in layers]}
            st.markdown(f"<code id='engine-state'>{json.dumps(state)}</code>", unsafe_allow_html=True)
        if f.playing != playing:
            st.rerun(scope="app")  # the fragment's run_every follows playing/paused

    tick = lg.run_every("graph", playing, pace)
    st.session_state["tick"] = tick
    st.fragment(run_every=tick)(live)()


# Streamlit runs this file as __main__; the training process re-imports it as __mp_main__ and
# must not draw a page (or start another training process).
if __name__ == "__main__":
    main()
