"""The Sweep page: choose fields, ranges and a budget, start a sweep, and watch its trials
arrive (table, validation-accuracy heatmap over two fields, parallel coordinates); a trial opens
on the Dashboard with its setup in the URL.

The sweep runs as `python -m deepr_engine sweep ... --out runs/sweeps/<time>` in its own process
group (Ray and its trial workers under it), never in the web server; the page only reads the
folder's results.csv. Stop, a new sweep or the end of the tab's session terminates it.

In a public demo (app/public.py) app/sweep_guard.py checks a request before anything is expanded
or started, the Ray address is the operator's, and a visitor sees their own sweeps only.
"""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import weakref
from pathlib import Path
from urllib.parse import urlencode

import streamlit as st

from deepr_engine.run import sweep as engine
from deepr_engine.run.config import PRESETS, RunConfig, preset

from app import public
from app import sweep_guard as guard
from app.text import plain

ROOT = Path(__file__).resolve().parents[2]
SWEEPS = Path(os.environ.get("DEEPR_SWEEPS") or ROOT / "runs" / "sweeps")   # the sweeps' folders
MODES = ["grid", "log", "uniform"]
POLL = 2.0        # s between reads of results.csv while a sweep runs
DEFAULT_SPACE = [{"field": "lr", "mode": "log", "values": "0.01:1"},
                 {"field": "alpha", "mode": "log", "values": "1e-5:1e-2"},
                 {"field": "temperature", "mode": "grid", "values": "1e-8,1e-6"}]


# -- the sweep process ------------------------------------------------------------------------------
def _terminate(proc: subprocess.Popen) -> None:
    """SIGTERM the sweep's process group (the CLI shuts its Ray down), SIGKILL what is left."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


class SweepProcess:
    """One sweep command in its own process group; ends with its owner (the tab's session)."""

    def __init__(self, args: list[str], out: Path):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.args = args
        log = open(out / "log.txt", "ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen([sys.executable, "-m", "deepr_engine", "sweep", *args,
                                      "--out", str(out)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        log.close()
        self._finalizer = weakref.finalize(self, _terminate, self.proc)
        guard.started(self)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        self._finalizer()


# -- the search space ----------------------------------------------------------------------------
def sweep_args(preset_name: str, steps: int, seeds: int, samples: int, space: list[dict],
               asha: bool = False, address: str = "") -> list[str]:
    """The CLI arguments for a space given as rows {field, mode, values}; raises ValueError
    (naming the field) for a bad row, so nothing starts."""
    args = ["--preset", preset_name, "--steps", str(int(steps)), "--seeds", str(int(seeds))]
    grid, rand = {}, {}
    for row in space:
        name = str(row.get("field") or "").strip()
        values = str(row.get("values") or "").strip()
        mode = row.get("mode") or "grid"
        if not name:
            continue
        if mode not in MODES:
            raise ValueError(f"{name}: mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode == "grid":
            grid.update([engine.parse_grid(f"{name}={values}")])
            args += ["--grid", f"{name}={values}"]
        else:
            rand.update([engine.parse_random(f"{name}={mode}:{values}")])
            args += ["--random", f"{name}={mode}:{values}"]
    if rand:
        args += ["--samples", str(int(samples))]
    engine.build_trials(preset(preset_name).replace(steps=int(steps)), grid, rand,
                        int(samples) if rand else 0, int(seeds))   # validates every trial
    if asha:
        args.append("--asha")
    if address.strip():
        args += ["--address", address.strip()]
    return args


def n_trials(args: list[str]) -> int:
    """How many trials the command runs (a setting without effect in a trial is not varied
    there, so this can be less than the product of the value counts)."""
    return len(trials(args))


def trials(args: list[str]) -> list:
    """The trials the command runs (sweep.Trial: config and swept values)."""
    from deepr_engine.run.cli import build_parser
    ns = build_parser().parse_args(["sweep", *args])
    grid = dict(engine.parse_grid(spec) for spec in ns.grid)
    rand = dict(engine.parse_random(spec) for spec in ns.random)
    base = preset(ns.preset) if ns.steps is None else preset(ns.preset).replace(steps=ns.steps)
    samples = ns.samples if ns.samples is not None else (8 if rand else 0)
    return engine.build_trials(base, grid, rand, samples, ns.seeds)


# -- reading a sweep folder ----------------------------------------------------------------------------
def load(out: Path):
    """(rows as a DataFrame, swept fields, trials.json, sweep.json) of a sweep folder."""
    import pandas as pd
    rows = engine.read_results(out)
    swept = [c for c in (rows[0] if rows else {}) if c not in engine.RESULT_COLUMNS]
    df = pd.DataFrame(rows)
    for c in ["val_acc", "val_loss", "test_acc", "connectivity", "turnover", "seconds", "seed", *swept]:
        if c in df:
            num = pd.to_numeric(df[c], errors="coerce")
            if num.notna().all():
                df[c] = num
    configs = engine._read_json(out / "trials.json")
    meta = engine._read_json(out / "sweep.json")
    return df, swept, configs, meta


def sort_trials(df):
    """Best first: validation accuracy down, then validation loss up, then trial order (the
    rule sweep.best_row states)."""
    import pandas as pd
    if "val_acc" not in df:
        return df
    keys = pd.DataFrame({"acc": -pd.to_numeric(df["val_acc"], errors="coerce"),
                         "loss": pd.to_numeric(df.get("val_loss", pd.Series(index=df.index, dtype=float)),
                                               errors="coerce"),
                         "order": range(len(df))}, index=df.index)
    order = keys.sort_values(["acc", "loss", "order"], na_position="last").index
    return df.loc[order]


def dashboard_url(config: dict, preset_name: str) -> str:
    """The Dashboard (the app's default page, at the site's root) with the trial's whole setup
    in the URL, its validation hold-out included: `./?preset=...&val_fraction=0.2&...`,
    relative to this page so that a server under a base path works too."""
    from app.urlstate import UISettings, to_query
    cfg = RunConfig.from_dict(config)
    q = to_query(cfg, UISettings(preset=preset_name if preset_name in PRESETS else "digits-demo"))
    return "./?" + urlencode(q)


def _binned(series, max_levels: int = 10):
    """Labels for a heatmap axis: the values themselves, or (log-)bins for a random field."""
    import numpy as np
    import pandas as pd
    if series.nunique() <= max_levels or not pd.api.types.is_numeric_dtype(series):
        return series.map(engine.format_value if not pd.api.types.is_numeric_dtype(series)
                          else lambda v: f"{v:.3g}"), sorted(series.unique())
    lo, hi = float(series.min()), float(series.max())
    log = lo > 0 and hi / lo > 10
    edges = np.geomspace(lo, hi, 7) if log else np.linspace(lo, hi, 7)
    cats = pd.cut(series, edges, include_lowest=True, duplicates="drop")
    labels = cats.map(lambda iv: f"{iv.left:.2g}-{iv.right:.2g}").astype(str)
    return labels, [f"{iv.left:.2g}-{iv.right:.2g}" for iv in cats.cat.categories]


def heatmap(df, fx: str, fy: str):
    import plotly.graph_objects as go
    ok = df[df["status"].isin(["ok", "stopped"])].copy()
    ok["val_acc"] = ok["val_acc"].astype(float)
    ok["_x"], xs = _binned(ok[fx])
    ok["_y"], ys = _binned(ok[fy])
    xs = [x if isinstance(x, str) else f"{x:.3g}" for x in xs]
    ys = [y if isinstance(y, str) else f"{y:.3g}" for y in ys]
    table = ok.groupby(["_y", "_x"])["val_acc"].agg(["mean", "count"])
    z = [[table["mean"].get((y, x), math.nan) for x in xs] for y in ys]
    text = [[f"{table['mean'][(y, x)]:.3f} (n={table['count'][(y, x)]})" if (y, x) in table.index else ""
             for x in xs] for y in ys]
    fig = go.Figure(go.Heatmap(z=z, x=xs, y=ys, text=text, texttemplate="%{text}", colorscale="Viridis",
                               colorbar=dict(title="val acc"), hoverongaps=False))
    fig.update_layout(xaxis_title=fx, yaxis_title=fy, height=420, margin=dict(l=10, r=10, t=30, b=10),
                      title="mean validation accuracy (over seeds)", xaxis_type="category",
                      yaxis_type="category")
    return fig


def parallel(df, swept: list[str]):
    import numpy as np
    import plotly.graph_objects as go
    ok = df[df["status"].isin(["ok", "stopped"])]
    dims = []
    for f in swept:
        col = ok[f]
        if np.issubdtype(col.dtype, np.number):
            v = col.astype(float)
            if (v > 0).all() and v.max() / v.min() > 10:
                dims.append(dict(label=f"log10 {f}", values=np.log10(v)))
            else:
                dims.append(dict(label=f, values=v))
        else:
            cats = sorted(col.astype(str).unique())
            dims.append(dict(label=f, values=col.astype(str).map(cats.index), tickvals=list(range(len(cats))),
                             ticktext=cats))
    for m in ("val_acc", "test_acc", "turnover"):
        dims.append(dict(label=m, values=ok[m].astype(float)))
    fig = go.Figure(go.Parcoords(line=dict(color=ok["val_acc"].astype(float), colorscale="Viridis",
                                           showscale=True), dimensions=dims))
    fig.update_layout(height=380, margin=dict(l=60, r=40, t=40, b=20))
    return fig


# -- the page ----------------------------------------------------------------------------------
def controls() -> None:
    pub = public.settings().public
    sb = st.sidebar
    sb.header("Sweep setup")
    name = sb.selectbox("Preset", list(PRESETS), index=list(PRESETS).index("digits-demo"), key="sw_preset")
    steps = sb.number_input("Steps per trial", 10, 10**7, 1000, step=100, key="sw_steps")
    seeds = sb.number_input("Seeds per setting", 1, 20, 1, key="sw_seeds")
    samples = sb.number_input("Random samples", 1, 1000, 8, key="sw_samples",
                              help="settings drawn from the log / uniform ranges (per grid point)")
    asha = sb.checkbox("Early stopping (ASHA)", key="sw_asha",
                       help="weak trials stop after a fraction of their steps (status 'stopped')")
    if pub:   # the operator's cluster only (setting sweep_address); no field to type one
        typed, address = st.session_state.get("sw_address", ""), guard.address("")
    else:
        typed = address = sb.text_input("Ray cluster address", "", key="sw_address",
                                        help="empty: a local Ray on this machine's cores; or e.g. ray://head:10001")
    fields = [f for f in engine.sweep_fields() if not (pub and f in public.SERVER_FIELDS)]   # all but seed
    st.subheader("Search space")
    st.caption("grid: comma-separated values (list fields: '/' inside a value, e.g. 64/32); "
               "log / uniform: LOW:HIGH. Every trial holds out 20% of the training data; "
               "trials are compared on that validation split (ties: lower validation loss, then "
               "the earlier trial), test accuracy is shown beside it. A field without effect in "
               "the setup (another method's setting; temperature while noise_scale > 0) is refused.")
    space = st.data_editor(DEFAULT_SPACE, num_rows="dynamic", key="sw_space", width="stretch",
                           column_config={
                               "field": st.column_config.SelectboxColumn("field", options=fields, required=True),
                               "mode": st.column_config.SelectboxColumn("mode", options=MODES, required=True),
                               "values": st.column_config.TextColumn("values", required=True)})
    proc: SweepProcess | None = st.session_state.get("sw_proc")
    running = proc is not None and proc.running
    try:
        guard.check_space(name, steps, seeds, samples, list(space), typed)   # public: before expanding
        args = sweep_args(name, steps, seeds, samples, list(space), asha, address)
        planned = trials(args)
        guard.check_trials(planned)
        st.caption(f"{len(planned)} trials of {steps} steps" + ("" if pub else
                   f": `python -m deepr_engine sweep {' '.join(args)}`"))
    except ValueError as exc:
        args = None
        st.error(plain(f"Search space: {exc}"))
    c1, c2 = st.columns(2)
    if c1.button("Start sweep", type="primary", disabled=args is None or running, key="sw_start"):
        try:
            guard.check_start()   # public: room for one more sweep on this server
        except ValueError as exc:
            st.session_state["sw_refused"] = str(exc)
            st.rerun()
        if proc is not None:
            proc.stop()
        out = guard.new_folder(SWEEPS)
        if pub:
            guard.claim(out, guard.visitor_of_page())
        st.session_state["sw_proc"] = SweepProcess(args, out)
        st.session_state["sw_dir"] = str(out)
        st.rerun()
    if st.session_state.get("sw_refused"):
        st.error(plain(st.session_state.pop("sw_refused")))
    if c2.button("Stop", disabled=not running, key="sw_stop"):
        proc.stop()
        st.rerun()


def results_view(out: Path, running: bool) -> None:
    df, swept, configs, meta = load(out)
    log = out / "log.txt"
    text = log.read_text(errors="replace") if log.exists() else ""
    lines = (guard.redact(text, out, ROOT) if public.settings().public else text).splitlines()
    head = next((ln for ln in lines if ln.startswith("sweep: ")), "")
    where = out.name if public.settings().public else out
    st.caption(f"{where} · {'running' if running else 'not running'} · {len(df)} trials finished"
               + (f" of {head.split()[1]}" if head else ""))
    if not running and any(ln.startswith(("Traceback", "error:")) for ln in lines[-40:]):
        st.error(plain("The sweep process failed: " + lines[-1]))
    with st.expander("Progress log"):
        st.code("\n".join(lines[-40:]) or "(nothing yet)")
    if df.empty:
        st.info("No finished trial yet." if running else "This folder has no results.csv yet.")
        return
    best, warnings = engine.summary(engine.read_results(out), meta.get("ranges", {}))
    for msg in warnings:
        st.warning(f"{msg} (best trial on validation: seed {best['seed']})")
    shown = df.drop(columns=[c for c in ("key", "note") if c in df])
    shown = sort_trials(shown)
    st.markdown("**Trials** (best validation accuracy first, ties by lower validation loss, then "
                "trial order; select a row to open it on the Dashboard)")
    numbers = {c: st.column_config.NumberColumn(c, format="%.4g") for c in shown.columns
               if c not in ("seed", "steps_done", "dead_outputs") and shown[c].dtype.kind == "f"}
    event = st.dataframe(shown, width="stretch", hide_index=True, on_select="rerun",
                         selection_mode="single-row", key=f"sw_table_{out.name}", column_config=numbers)
    picked = event.selection.rows if event is not None and hasattr(event, "selection") else []
    row = df.loc[shown.index[picked[0] if picked else 0]]   # the selected trial, else the best
    cfg = configs.get(row["key"])
    if cfg is not None:
        which = "trial" if picked else "the best trial,"
        st.link_button(f"Open {which} seed {row['seed']} ({', '.join(f'{f}={row[f]}' for f in swept)}) "
                       f"on the Dashboard", dashboard_url(cfg, meta.get("preset", "digits-demo")),
                       help="its exact setup, the validation hold-out included (the Dashboard "
                            "trains it from step 0 on the same split)")
    varied = [f for f in swept if df[f].nunique() > 1]
    if len(varied) >= 2:
        c1, c2 = st.columns(2)
        fx = c1.selectbox("Heatmap x", varied, index=0, key="sw_hx")
        fy = c2.selectbox("Heatmap y", [f for f in varied if f != fx], index=0, key="sw_hy")
        st.plotly_chart(heatmap(df, fx, fy), width="stretch", key=f"sw_heat_{out.name}")
    elif varied:
        st.caption("The heatmap needs two swept fields with more than one value.")
    if varied and (df["status"].isin(["ok", "stopped"])).any():
        st.plotly_chart(parallel(df, varied), width="stretch", key=f"sw_par_{out.name}")


def render() -> None:
    st.title("Sweep")
    controls()
    proc: SweepProcess | None = st.session_state.get("sw_proc")
    folders = sorted((p for p in SWEEPS.glob("*") if p.is_dir()), reverse=True) if SWEEPS.exists() else []
    folders = guard.visible(folders, guard.visitor_of_page() if public.settings().public else "")
    current = st.session_state.get("sw_dir")
    if current and Path(current) not in folders:
        folders.insert(0, Path(current))
    if not folders:
        st.info("No sweep yet: set the search space and press Start sweep.")
        return
    names = [str(p) for p in folders]
    pick = st.selectbox("Sweep folder", names, index=names.index(current) if current in names else 0,
                        key="sw_folder", format_func=lambda p: Path(p).name if public.settings().public else p)
    out = Path(pick)
    running = proc is not None and proc.running and Path(proc.out) == out
    st.fragment(run_every=POLL if running else None)(_live)(out, running)


def _live(out: Path, running: bool) -> None:
    proc = st.session_state.get("sw_proc")
    now_running = proc is not None and proc.running and Path(proc.out) == out
    results_view(out, now_running)
    if running and not now_running:
        st.rerun()   # the sweep ended: redraw the page once without polling


if __name__ == "__main__":   # st.navigation runs this file as a page (app/main.py)
    render()
