"""The Compare page's state: 2 to 4 runs on one shared setup (each its own method and
hyperparameters, or forks of one run from the same step), their frames and the live graphs'
event cursors. Pages draw from this object; only callbacks change it."""
from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from deepr_engine.run import registry
from deepr_engine.run.background import BackgroundSession
from deepr_engine.run.config import RunConfig, preset
from deepr_engine.run.views import RunView

from .state import START_ERRORS
from .urlstate import RunSpec, UISettings, run_config


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

    def start(self, base: RunConfig, specs: list[RunSpec], ui: UISettings | None = None) -> bool:
        """Start every run; if any fails, keep the comparison that was there and say why."""
        ui = ui or self.ui
        runs = []
        try:
            for spec in specs:
                runs.append(BackgroundSession(run_config(base, spec), steps_per_frame=ui.steps_per_frame))
        except START_ERRORS as exc:
            for r in runs:
                r.close()
            self.error = f"{registry.label(spec.algorithm)}: {exc}"
            if self.runs:
                return False
            base, specs = preset("digits-demo"), [RunSpec("deepr"), RunSpec("set")]
            runs = [BackgroundSession(run_config(base, s)) for s in specs]
        for r in self.runs:
            r.close()
        self.runs, self.base, self.specs, self.ui = runs, base, list(specs), ui
        self.gen += 1
        self.frames, self.cursors = [], [None] * len(runs)
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


def compare() -> CompareState:
    if "compare" not in st.session_state:
        st.session_state["compare"] = CompareState()
    return st.session_state["compare"]
