"""One sweep trial: its spec (`Trial`), its key, and `run_trial`, the plain function every trial
runs (on a Ray worker or in a serial loop). sweep.py builds the trials and keeps results.csv;
ray_exec.py runs them on Ray; both import this module, neither imports the other's caller."""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from .config import RunConfig

RESULT_COLUMNS = ["seed", "val_acc", "test_acc", "connectivity", "turnover", "status", "seconds",
                  "steps_done", "epochs_done", "dead_outputs", "cpu_seconds", "val_loss", "note",
                  "key"]
REPORTS = 10                               # progress points per trial (ASHA rungs, turnover window)


@dataclass
class Trial:
    config: RunConfig
    swept: dict          # field -> value, the setting this trial belongs to

    @property
    def key(self) -> str:
        return trial_key(self.config)


def trial_key(cfg: RunConfig) -> str:
    return hashlib.sha1(cfg.to_json().encode()).hexdigest()[:16]


def trial_label(swept: dict) -> str:
    return " ".join(f"{k}={format_value(v)}" for k, v in swept.items()) or "base"


def format_value(v) -> str:
    if isinstance(v, (list, tuple)):
        return "/".join(format_value(x) for x in v)
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def format_number(v, spec: str = ".3f") -> str:
    try:
        return format(float(v), spec)
    except (TypeError, ValueError):
        return "-"


def error_metrics(note: str, seconds: float = 0.0, cpu_seconds: float = 0.0) -> dict:
    """The metrics of a trial that failed (or could not start): status error, why in `note`."""
    nan = float("nan")
    return {"val_acc": nan, "val_loss": nan, "test_acc": nan, "connectivity": nan, "turnover": nan,
            "status": "error", "seconds": seconds, "steps_done": 0, "epochs_done": 0,
            "dead_outputs": -1,
            "cpu_seconds": cpu_seconds, "note": note[:300]}


def run_trial(config: dict, report=None) -> dict:
    """Train one config and return its row metrics. Never raises: a diverged run is status
    'diverged' (metrics of its last good step), any exception status 'error'. `report(row)` is
    called after each tenth of the steps but the last (for early stopping)."""
    import torch

    torch.set_num_threads(1)   # one thread per trial: oversubscribed threads are ~100x slower
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        from .session import TrainingSession
        cfg = RunConfig.from_dict(config)
        s = TrainingSession(cfg)
        steps = s.config.steps   # epochs > 0: resolved on the training split the trial uses
        window = max(1, round(steps / REPORTS))
        report_at = {round(steps * i / REPORTS) for i in range(1, REPORTS)} - {0, steps}
        marks = sorted(report_at | {steps, max(0, steps - window)})
        pruned_at = {0: s.telemetry.total_pruned}
        for m in marks:
            if m > s.step_count:
                s.step(m - s.step_count)
            pruned_at[s.step_count] = s.telemetry.total_pruned
            if s.paused_reason:
                break
            if report is not None and m in report_at:
                report(_row(s, pruned_at, window, "ok", "", time.perf_counter() - t0))
        status = "diverged" if s.paused_reason else "ok"
        return _row(s, pruned_at, window, status, s.paused_reason or "", time.perf_counter() - t0) | {
            "cpu_seconds": time.process_time() - c0}
    except Exception as exc:  # a failed trial is a row, not a crashed sweep
        return error_metrics(f"{type(exc).__name__}: {exc}", time.perf_counter() - t0,
                             time.process_time() - c0)


def _row(s, pruned_at: dict, window: int, status: str, note: str, seconds: float) -> dict:
    ev = s.evaluate()
    done = s.step_count
    start = max(b for b in pruned_at if b <= max(0, done - window))
    turnover = (s.telemetry.total_pruned - pruned_at[start]) * 100 / (done - start) if done > start else 0.0
    last = s.layers[-1].active_mask()
    dead_out = int((~last.reshape(last.shape[0], -1).any(1)).sum())
    return {"val_acc": ev.get("val_acc", math.nan), "val_loss": ev.get("val_loss", math.nan),
            "test_acc": ev["test_acc"],
            "connectivity": sum(l.k for l in s.layers) / sum(l.n_positions for l in s.layers),
            "turnover": turnover, "status": status, "seconds": seconds, "steps_done": done,
            "epochs_done": done / s.config.steps_per_epoch(len(s.data.x_train)),
            "dead_outputs": dead_out, "note": note[:300]}
