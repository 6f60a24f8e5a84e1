"""The dashboard's Turnover view: how established deaths, probes and accuracy respond to T or
alpha, measured by short forks of the run from its current state (deepr_engine.run.scan), beside
the zero-gradient theory of a revived connection (docs/algorithms.md).

The scan runs in a thread of the server (its forks in worker processes, in parallel where the
machine has cores to spare) while the run and the page go on; the page polls its rows once a
second; Cancel stops it (the pool is terminated, the rows so far are kept)."""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import streamlit as st

from deepr_engine.run import scan
from deepr_engine.run.classify import PROBE_STEPS

from ..charts import turnover
from ..state import dashboard
from ..text import plain

_KEY = "turnover_scan"
DECADES = (-2, -1, 0, 1, 2)   # default values: the current one times these powers of ten
MAX_VALUES = 12


@dataclass
class ScanJob:
    field: str
    values: list[float]
    steps: int
    repeats: int
    at_step: int
    hp: dict                              # lr, alpha, temperature of the run when the scan started
    current: float
    rows: list[dict] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    error: str = ""
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    shown_done: bool = False              # the page has drawn the finished scan's controls

    @property
    def running(self) -> bool:
        return not self.done

    def run(self, ckpt: bytes) -> None:
        try:
            table = scan.turnover_scan(ckpt, self.field, self.values, steps=self.steps, repeats=self.repeats,
                                       cancel=self.cancel, on_result=self.rows.append)
            self.current = table.current
        except Exception as exc:  # shown on the page; the run is not affected
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.seconds = time.monotonic() - self.started
            self.done = True


def default_values(current: float, field_name: str) -> str:
    base = current if current > 0 else (1e-6 if field_name == "temperature" else 1e-4)
    return ", ".join(f"{base * 10.0 ** d:.0e}" for d in DECADES)


def parse_values(text: str) -> list[float]:
    """The scan's values from the text field; ValueError names the field and what is allowed."""
    try:
        vals = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"Values: comma-separated positive numbers, e.g. 1e-6, 1e-5; got {text!r}") from None
    if not 2 <= len(vals) <= MAX_VALUES or any(not math.isfinite(v) or v <= 0 for v in vals):
        raise ValueError(f"Values: 2 to {MAX_VALUES} positive numbers; got {text!r}")
    return sorted(set(vals))


def on_start() -> None:
    s = dashboard()
    ss = st.session_state
    job = ss.get(_KEY)
    if job is not None and job.running:
        return
    fname = ss["scan_field"]
    try:
        values = parse_values(ss["scan_values"])
    except ValueError as exc:
        ss["scan_error"] = str(exc)
        return
    ss["scan_error"] = ""
    view = s.frame if s.frame is not None else s.fetch()
    hp = {"lr": float(view.hyperparams["lr"]), "alpha": float(view.hyperparams["alpha"]),
          "temperature": float(view.hyperparams["temperature"])}
    job = ScanJob(fname, values, int(ss["scan_steps"]), int(ss["scan_repeats"]), view.step, hp, hp[fname])
    ckpt = s.run.checkpoint()   # the run now: the forks start from here
    threading.Thread(target=job.run, args=(ckpt,), daemon=True, name="deepr-turnover-scan").start()
    ss[_KEY] = job


def on_cancel() -> None:
    job = st.session_state.get(_KEY)
    if job is not None:
        job.cancel.set()


def turnover_panel(view) -> None:
    hp = view.hyperparams
    if "temperature" not in hp or "alpha" not in hp:
        st.info("The turnover scan varies T or alpha: it is for Deep R and soft-Deep R.")
        return
    job = st.session_state.get(_KEY)
    running = job is not None and job.running
    c1, c2, c3, c4 = st.columns([1, 2.2, 1, 1])
    fname = c1.selectbox("Scan", scan.FIELDS, key="scan_field", format_func=lambda f: turnover.NAMES[f],
                         disabled=running)
    if st.session_state.get("scan_values_for") != fname:   # a new field: its default values
        st.session_state["scan_values"] = default_values(float(hp[fname]), fname)
        st.session_state["scan_values_for"] = fname
    c2.text_input("Values", key="scan_values", disabled=running,
                  help=f"2 to {MAX_VALUES} positive values; each is one short fork of the run (log axis)")
    c3.number_input("Steps per fork", 20, 5000, 100, step=20, key="scan_steps", disabled=running)
    c4.number_input("Repeats", 1, 5, 1, key="scan_repeats", disabled=running,
                    help="forks per value, each with its own noise (the same noise across values)")
    row = st.container(horizontal=True, gap="small")
    row.button("Start scan", key="scan_start", type="primary", on_click=on_start, disabled=running,
               help="forks of the run as it is now, run in worker processes; the run itself goes on")
    row.button("Cancel", key="scan_cancel", on_click=on_cancel, disabled=not running)
    if st.session_state.get("scan_error"):
        st.error(plain(st.session_state["scan_error"]))
    st.fragment(run_every=1.0 if running else None)(scan_results)()


def scan_results() -> None:
    job = st.session_state.get(_KEY)
    if job is None:
        st.caption("A scan forks the run from its current state once per value, sets T or alpha, "
                   "trains each fork for the steps given and counts per 100 steps what the rewiring "
                   "did. Nothing in the run itself changes.")
        return
    n = len(job.values) * job.repeats
    name = turnover.NAMES[job.field]
    if not job.running and not job.shown_done:
        job.shown_done = True
        st.rerun(scope="app")   # the controls above come back
    if job.running:
        st.caption(f"Scanning {name} from step {job.at_step:,}: {len(job.rows)} of {n} forks done "
                   f"({time.monotonic() - job.started:.0f} s)")
    else:
        why = "cancelled" if job.cancel.is_set() else "done"
        st.caption(f"Scan of {name} from step {job.at_step:,}, {job.steps} steps per fork: {why}, "
                   f"{len(job.rows)} of {n} forks in {job.seconds:.0f} s"
                   f"<span id='scan-state' data-done='1' data-rows='{len(job.rows)}' hidden></span>",
                   unsafe_allow_html=True)
        if st.session_state.get("debug"):
            st.download_button("Scan table (CSV)", _csv(job), "turnover-scan.csv", "text/csv", on_click="ignore")
    if job.error:
        st.error(plain(f"The scan stopped: {job.error}"))
    if job.rows:
        st.plotly_chart(turnover.scan_figure(job.field, list(job.rows), job.current, **job.hp), key="scan_chart")
        st.caption("Theory (docs/algorithms.md, turnover): a connection revived at θ = 0 whose gradient is "
                   "zero walks θ ← θ − lr·α + √(2·lr·T)·ν and is pruned at its first step below 0; the "
                   f"dashed curve is the chance that this happens within {PROBE_STEPS} steps. Where the "
                   "measurement departs from it, the gradient decides a revival's fate more than T and α do.")


def _csv(job: ScanJob) -> str:
    table = scan.ScanTable(job.field, job.current, list(job.rows))
    return table.to_csv()
