"""The Compare page's state: 2 to 4 runs on one shared setup (each its own method and
hyperparameters, or forks of one run from the same step), their frames and the live graphs'
event cursors. Pages draw from this object; only callbacks change it.

Forks (`open_forks`): the parent run is read once as checkpoint bytes and every fork starts
from those bytes, so weights, theta, masks, optimizer state, random generators and data order
are the same in all of them; each then gets one changed hyperparameter. A fork whose value is
the parent's own gets no change at all, so its steps are the parent's next steps.

In a public demo (app/public.py) every run here counts against the server's and the browser
session's run limits (checked before any process starts), gets the public memory and parking
caps and the speed cap, and a setup over a size limit is refused."""
from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import streamlit as st

from deepr_engine.run import checkpoint, registry
from deepr_engine.run.background import BackgroundSession
from deepr_engine.run.config import PRESETS, RunConfig, preset
from deepr_engine.run.views import RunView

from . import pages, public
from .state import START_ERRORS
from .urlstate import RunSpec, UISettings, matching_preset, run_config

# the hyperparameters a fork may change, and how a fork's label names them
FORK_FIELDS = {"temperature": "T", "alpha": "alpha", "connectivity": "K", "lr": "lr"}


def fork_label(field_name: str, value: float) -> str:
    """'T = 1e-6': the field's short name and the value in 3 significant digits."""
    text = re.sub(r"e([+-])0*(\d)", lambda m: "e" + m.group(1).replace("+", "") + m.group(2),
                  f"{value:.3g}")
    return f"{FORK_FIELDS.get(field_name, field_name)} = {text}"


@dataclass
class ForkPoint:
    """Where the Compare page's runs forked off one run: the step, the changed field, one
    value and label per fork, and the parent's checkpoint (Reset starts the forks again)."""
    step: int
    field: str
    values: list[float]
    labels: list[str]
    parent_label: str
    source: bytes = field(repr=False)


@dataclass
class CompareState:
    ui: UISettings = field(default_factory=UISettings)
    base: RunConfig | None = None
    specs: list[RunSpec] = field(default_factory=list)
    runs: list[BackgroundSession] = field(default_factory=list)
    gen: int = 0
    frames: list[RunView] = field(default_factory=list)
    cursors: list = field(default_factory=list)   # the live graphs' events cursor, per run
    playing: bool = False
    url_errors: list[str] = field(default_factory=list)
    error: str = ""
    forks: ForkPoint | None = None  # set while the runs are forks of one run

    def labels(self) -> list[str]:
        """Each run's name on the page: its fork's 'field = value', else its method."""
        if self.forks is not None:
            return list(self.forks.labels)
        names = [registry.label(spec.algorithm) for spec in self.specs]
        for i, spec in enumerate(self.specs):   # one method twice: its own values tell them apart
            if names.count(names[i]) > 1 and spec.overrides:
                names[i] += ", " + ", ".join(fork_label(k, v[0] if isinstance(v, list) else v)
                                             for k, v in spec.overrides.items())
        return names

    def start(self, base: RunConfig, specs: list[RunSpec], ui: UISettings | None = None) -> bool:
        """Start every run; if any fails, keep the comparison that was there and say why."""
        ui = ui or self.ui
        try:
            self.room(len(specs))   # public: before any process starts
        except ValueError as exc:
            self.error = str(exc)
            return False
        runs = []
        try:
            for spec in specs:
                cfg = run_config(base, spec)
                public.check_config(cfg)
                runs.append(BackgroundSession(cfg, steps_per_frame=ui.steps_per_frame, **_options()))
        except START_ERRORS as exc:
            for r in runs:
                r.close()
            self.error = f"{registry.label(spec.algorithm)}: {exc}"
            if self.runs:
                return False
            base, specs = preset("digits-demo"), [RunSpec("deepr"), RunSpec("set")]
            runs = [BackgroundSession(run_config(base, s), **_options()) for s in specs]
        public.STARTS.add(_browser(), len(runs))
        self._adopt(runs, base, specs, ui, None)
        return True

    def room(self, n: int) -> None:
        """Public mode: refuse `n` new processes over max_live_runs / max_runs_per_session (this
        page's runs, which the new ones replace, free their processes; the browser's count is
        this page's and the Dashboard's, in all its tabs). ValueError naming the limit."""
        if not public.settings().public:
            return
        mine = sum(r.alive for r in self.runs)
        public.check_room(n, public.STARTS.count(_browser()), BackgroundSession.live_count() - mine)

    def _adopt(self, runs, base, specs, ui, forks: ForkPoint | None) -> None:
        for r in self.runs:
            r.close()
        self.runs, self.base, self.specs, self.ui, self.forks = runs, base, list(specs), ui, forks
        self.gen += 1
        self.frames, self.cursors = [], [None] * len(runs)

    def start_forks(self, source: bytes, field_name: str, values: list[float],
                    parent_label: str = "") -> None:
        """Replace the comparison with one run per value, each started from the checkpoint
        bytes `source` with `field_name` set to its value (unchanged where the value is the
        run's own). A bad field or value raises ValueError naming it; the comparison that was
        there stays."""
        if field_name not in FORK_FIELDS:
            raise ValueError(f"fork over: one of {', '.join(FORK_FIELDS)}; got {field_name!r}")
        try:
            values = [float(v) for v in values]
        except (TypeError, ValueError):
            raise ValueError(f"{field_name}: fork values must be numbers; got {values!r}") from None
        if not 2 <= len(values) <= 4:
            raise ValueError(f"{field_name}: 2 to 4 fork values; got {len(values)}")
        _check(source, field_name, values)   # before any process starts
        try:
            self.room(len(values))
        except ValueError as exc:
            raise ValueError(f"{field_name}: {exc}") from None
        spf = self.ui.steps_per_frame
        with ThreadPoolExecutor(len(values)) as pool:   # the processes start side by side
            started = [pool.submit(BackgroundSession, source, steps_per_frame=spf, **_options())
                       for _ in values]
        runs = [f.result() for f in started if f.exception() is None]
        public.STARTS.add(_browser(), len(runs))
        try:
            failed = next((f.exception() for f in started if f.exception() is not None), None)
            if failed is not None:
                raise failed
            for run, v in zip(runs, values):
                if v != _current(run, field_name):
                    run.set_hyperparams(**{field_name: v})
            view = runs[0].frame(events=False)
        except START_ERRORS as exc:
            for r in runs:
                r.close()
            raise ValueError(f"{field_name}: {exc}") from exc
        cfg = runs[0].config
        near = matching_preset(cfg) or next((n for n in PRESETS if preset(n).dataset == cfg.dataset),
                                            self.ui.preset)   # the Preset selector's entry
        ui = UISettings(near, self.ui.steps_per_frame, self.ui.max_steps_per_second)
        steps = cfg.steps if view.step < cfg.steps else view.step + cfg.steps  # room to play on
        base = cfg.replace(steps=steps)
        wrap = (lambda v: [v]) if field_name == "connectivity" else (lambda v: v)
        specs = [RunSpec(cfg.algorithm, {field_name: wrap(v)}) for v in values]
        labels = [fork_label(field_name, v) for v in values]
        self._adopt(runs, base, specs, ui, ForkPoint(view.step, field_name, values, labels,
                                                     parent_label, source))

    def reset(self) -> bool:
        """Start the comparison again: forks from their fork point, other runs from step 0."""
        if self.forks is None:
            return self.start(self.base, self.specs)
        f = self.forks
        try:
            self.start_forks(f.source, f.field, f.values, f.parent_label)
        except ValueError as exc:
            self.error = str(exc)
            return False
        return True

    def fetch(self) -> list[RunView]:
        """Every run now, without events (for the controls)."""
        self.frames = [r.frame(events=False) for r in self.runs]
        return self.frames

    def for_fragment(self) -> list[RunView]:
        """The live graphs' next frames: each run's events after its cursor."""
        self.frames = []
        for i, r in enumerate(self.runs):
            view = r.frame(since=self.cursors[i], events=self.cursors[i] is not None)
            self.cursors[i] = view.events_cursor
            self.frames.append(view)
        return self.frames


def _browser() -> str:
    """This browser (public.STARTS counts the runs it started)."""
    board = st.session_state.get("dashboard")
    return board.who() if board is not None else public.visitor_id()


def _options() -> dict:
    """A Compare run's process options: nothing locally; in public mode the speed cap and the
    memory and parking caps."""
    if not public.settings().public:
        return {}
    return {"max_steps_per_second": public.speed(0), **public.run_options()}


def _check(source: bytes, field_name: str, values: list[float]) -> None:
    """Each value as the checkpoint's setup would take it (RunConfig's checks: range, and a
    setting without effect refused); ValueError naming the field."""
    try:
        cfg = RunConfig.from_dict(json.loads(checkpoint.read_metadata(source)["config"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"{field_name}: the run to fork is not a checkpoint ({exc})") from exc
    why = cfg.idle(field_name)
    if why:
        raise ValueError(f"{field_name}: {why}")
    for v in values:
        cfg.replace(**{field_name: [v] if field_name == "connectivity" else v})


def _current(run: BackgroundSession, field_name: str) -> float | None:
    """The run's value of a fork field now (K: its one connectivity target, None if per layer)."""
    if field_name == "connectivity":
        conn = run.config.connectivity
        return conn[0] if len(set(conn)) == 1 else None
    return run.hyperparams().get(field_name)


def open_forks(parent: BackgroundSession, field_name: str, values: list[float],
               parent_label: str = "") -> None:
    """Fork `parent` at its current step once per value of `field_name` (temperature, alpha,
    connectivity or lr; 2 to 4 values) onto the Compare page, replacing its comparison, and
    show the Compare page (also from a widget callback). The parent is paused, then read once
    (one checkpoint: the fork step is the step it shows); it stays as it is. Raises ValueError
    naming the field on a bad value (nothing changes but the pause)."""
    parent.pause()
    source = parent.checkpoint()
    compare().start_forks(source, field_name, values, parent_label)
    pages.switch(pages.COMPARE)


def compare() -> CompareState:
    if "compare" not in st.session_state:
        st.session_state["compare"] = CompareState()
    return st.session_state["compare"]
