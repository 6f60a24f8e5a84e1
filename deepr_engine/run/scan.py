"""Turnover against T or alpha: short forks of a run from its current state, one per value (and
repeat), run in parallel, each measuring per 100 steps the established deaths, the brief probes,
the revivals that survived (classify.py) and the change of test accuracy; beside them what the
theory predicts for a connection whose gradient is zero (docs/algorithms.md, "Turnover").

    table = turnover_scan(session, field="temperature", values=[1e-7, 1e-6, 1e-5], steps=100)
    print(table.to_csv())

CLI: python -m deepr_engine scan --preset spiral-demo --field temperature --values 1e-7,1e-6,1e-5
"""
from __future__ import annotations

import csv
import io
import math
import multiprocessing
import os
import threading
import time
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .classify import CLASSES, PROBE_STEPS

FIELDS = ("temperature", "alpha")
COLUMNS = ("field", "value", "repeat", "steps", "status", "deaths_per_100", "probes_per_100",
           "survived_per_100", "revivals_per_100", "probe_fraction", "predicted_probe_fraction",
           "acc_before", "acc_after", "acc_change_per_100", "lr", "alpha", "temperature",
           "deaths_per_100_by_layer", "probes_per_100_by_layer", "survived_per_100_by_layer")
NUMERIC = tuple(c for c in COLUMNS if c not in ("field", "status", "repeat") and "by_layer" not in c)


# -- theory: a connection revived at theta 0 whose gradient is zero -----------------------------
def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def p_above_zero(lr: float, alpha: float, temperature: float, n: int) -> float:
    """P(theta_n > 0 | theta_0 = 0) for theta <- theta - lr*alpha + sqrt(2 lr T) N(0, 1), without
    the pruning barrier: theta_n ~ N(-n lr alpha, 2 n lr T), so Phi(-n lr alpha / sqrt(2 n lr T))."""
    mean, var = n * lr * alpha, 2.0 * n * lr * temperature
    if var <= 0:
        return 0.0 if mean >= 0 else 1.0
    return _phi(-mean / math.sqrt(var))


def survival(lr: float, alpha: float, temperature: float, n: int) -> np.ndarray:
    """q[m] = P(theta_1 >= 0, ..., theta_m >= 0 | theta_0 = 0) for m = 0..n: the chance that a
    connection revived at 0 with zero gradient is still active after m updates (Deep R prunes at
    the first theta < 0). Sparre Andersen's theorem (Feller, An Introduction to Probability
    Theory and Its Applications II, 2nd ed., XII.7) for a walk with continuous increments:
    sum_m q[m] s^m = exp(sum_k s^k / k * P(theta_k > 0)); the coefficients by the recurrence
    m q[m] = sum_{k=1..m} P(theta_k > 0) q[m-k]."""
    p = np.array([p_above_zero(lr, alpha, temperature, k) for k in range(1, n + 1)])
    q = np.zeros(n + 1)
    q[0] = 1.0
    for m in range(1, n + 1):
        q[m] = float(np.dot(p[:m], q[m - 1::-1])) / m
    return q


def predicted_probe_fraction(lr: float, alpha: float, temperature: float,
                             n: int = PROBE_STEPS) -> float:
    """The chance that a connection revived at theta 0 with zero gradient is pruned again as a
    probe: within n - 1 updates (it is pruned with lifetime < n steps), 1 - survival[n - 1]."""
    if n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    return float(1.0 - survival(lr, alpha, temperature, n - 1)[n - 1])


# -- the table ----------------------------------------------------------------------------------
@dataclass
class ScanTable:
    field: str
    current: float                   # the value in force in the scanned run
    rows: list[dict] = dc_field(default_factory=list)
    cancelled: bool = False
    columns: tuple[str, ...] = COLUMNS

    def to_csv(self) -> str:
        out = io.StringIO()
        w = csv.DictWriter(out, fieldnames=list(self.columns), lineterminator="\n")
        w.writeheader()
        for r in sorted(self.rows, key=lambda r: (r["value"], r["repeat"])):
            w.writerow({c: ";".join(f"{v:.6g}" for v in r[c]) if isinstance(r.get(c), list)
                        else (f"{r[c]:.6g}" if isinstance(r.get(c), float) else r.get(c, ""))
                        for c in self.columns})
        return out.getvalue()

    def summary(self) -> list[dict]:
        """One row per value: the numeric columns' means over the repeats that ran ok, n_ok."""
        out = []
        for v in sorted({r["value"] for r in self.rows}):
            ok = [r for r in self.rows if r["value"] == v and r["status"] == "ok"]
            row = {"field": self.field, "value": v, "n_ok": len(ok)}
            row |= {c: float(np.mean([r[c] for r in ok])) if ok else float("nan")
                    for c in NUMERIC if c != "value"}
            out.append(row)
        return out


# -- one fork -----------------------------------------------------------------------------------
def _measure(fork, field: str, value: float, repeat: int, steps: int, noise_seed: int,
             cancel: threading.Event | None = None) -> dict:
    """Run `fork` (already at the new value) for `steps` steps and count what happened."""
    if getattr(fork.optimizer, "generator", None) is not None:
        fork.optimizer.generator.manual_seed(noise_seed)   # repeat r: the same noise for every value
    tel = fork.telemetry
    acc0 = fork.evaluate()["test_acc"]
    totals0, pruned0, done = tel.classifier.totals.copy(), tel.total_pruned, 0
    while done < steps and not (cancel is not None and cancel.is_set()):
        n = fork.step(min(10, steps - done))
        done += n
        if n == 0:
            break
    acc1 = fork.evaluate()["test_acc"]
    hp = fork.hyperparams()
    lr, alpha, temp = float(fork.lr), float(hp["alpha"]), float(hp["temperature"])
    per = 100.0 / max(done, 1)
    d = (tel.classifier.totals - totals0) * per                # (classes, layers) per 100 steps
    by = dict(zip(CLASSES, d))
    settled = by["probe"].sum() + by["survived"].sum()
    return {"field": field, "value": float(value), "repeat": int(repeat), "steps": done,
            "status": "diverged" if fork.paused_reason else ("ok" if done == steps else "cancelled"),
            "deaths_per_100": float(by["death"].sum()), "probes_per_100": float(by["probe"].sum()),
            "survived_per_100": float(by["survived"].sum()),
            "revivals_per_100": float((tel.total_pruned - pruned0) * per),
            "probe_fraction": float(by["probe"].sum() / settled) if settled else float("nan"),
            "predicted_probe_fraction": predicted_probe_fraction(lr, alpha, temp),
            "acc_before": float(acc0), "acc_after": float(acc1),
            "acc_change_per_100": float((acc1 - acc0) * per), "lr": lr, "alpha": alpha,
            "temperature": temp, "deaths_per_100_by_layer": by["death"].tolist(),
            "probes_per_100_by_layer": by["probe"].tolist(),
            "survived_per_100_by_layer": by["survived"].tolist()}


def _error_row(job: dict, exc: BaseException) -> dict:
    return {"field": job["field"], "value": float(job["value"]), "repeat": job["repeat"], "steps": 0,
            "status": f"error: {type(exc).__name__}: {exc}"}


_WORKER_STATE: dict = {}


def _init_worker(ckpt: bytes) -> None:
    import torch
    torch.set_num_threads(1)
    _WORKER_STATE["ckpt"] = ckpt


def _run_job(job: dict) -> dict:
    from . import checkpoint
    try:
        fork = checkpoint.load(_WORKER_STATE["ckpt"], n_tracked=0)
        fork.set_hyperparams(**{job["field"]: job["value"]})
        return _measure(fork, job["field"], job["value"], job["repeat"], job["steps"], job["seed"])
    except Exception as exc:   # noqa: BLE001 -- a row says what went wrong; the scan goes on
        return _error_row(job, exc)


def _fork_here(session, job: dict, cancel) -> dict:
    try:
        if hasattr(session, "fork"):
            fork = session.fork(**{job["field"]: job["value"]})
        else:
            from . import checkpoint
            fork = checkpoint.load(checkpoint.to_bytes(session), n_tracked=0)
            fork.set_hyperparams(**{job["field"]: job["value"]})
        return _measure(fork, job["field"], job["value"], job["repeat"], job["steps"], job["seed"], cancel)
    except Exception as exc:   # noqa: BLE001
        return _error_row(job, exc)


# -- the scan -----------------------------------------------------------------------------------
def _check(field: str, values, steps, repeats, workers, session) -> list[float]:
    from .session import live_fields
    if field not in FIELDS:
        raise ValueError(f"field must be one of {', '.join(FIELDS)}; got {field!r}")
    if field not in live_fields(session.config.algorithm):
        raise ValueError(f"field {field!r}: {session.config.algorithm} has no {field} "
                         f"(the scan needs deepr or soft-deepr)")
    why = session.config.idle(field)
    if why:
        raise ValueError(f"field {field!r}: no effect in this run: {why}")
    vals = list(values)
    if not vals or len(vals) > 64:
        raise ValueError(f"values must list 1 to 64 numbers, got {len(vals)}")
    for v in vals:
        if not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 < v <= 100:
            raise ValueError(f"values: each must be a number in (0, 100], got {v!r}")
    for name, v, hi in (("steps", steps, 10**6), ("repeats", repeats, 100)):
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= hi:
            raise ValueError(f"{name} must be an integer in [1, {hi}], got {v!r}")
    if workers is not None and (not isinstance(workers, int) or not 0 <= workers <= 64):
        raise ValueError(f"workers must be None or an integer in [0, 64], got {workers!r}")
    return [float(v) for v in vals]


def turnover_scan(source, field: str = "temperature", values: Sequence[float] = (1e-7, 1e-6, 1e-5),
                  steps: int = 100, repeats: int = 1, workers: int | None = None,
                  cancel: threading.Event | None = None,
                  on_result: Callable[[dict], None] | None = None, seed: int = 0) -> ScanTable:
    """Fork the run `source` (a TrainingSession, or a checkpoint file's path or bytes) once per
    value and repeat, set `field` to the value, run `steps` steps and measure (per 100 steps):
    established deaths, probes, survived revivals, all revivals, the probe fraction among the
    settled revivals beside predicted_probe_fraction, and the test accuracy change.

    workers: processes (spawned, one torch thread each; None: min(forks, cpu_count - 1, 4));
    0 runs the forks here, one after another (session.fork when the session has it). Repeat r of
    every value draws the same noise (seed * 1000 + r). cancel: set the event to stop; the rows
    finished so far are returned with table.cancelled True. on_result(row) is called as each
    fork finishes (from this thread, or the pool's result thread)."""
    from . import checkpoint
    session = source if hasattr(source, "step") else checkpoint.load(
        source if isinstance(source, (bytes, bytearray)) else Path(source), n_tracked=0)
    vals = _check(field, values, steps, repeats, workers, session)
    table = ScanTable(field, float(session.hyperparams()[field]))
    jobs = [{"field": field, "value": v, "repeat": r, "steps": steps, "seed": seed * 1000 + r}
            for r in range(repeats) for v in vals]
    if workers is None:
        workers = max(1, min(len(jobs), (os.cpu_count() or 2) - 1, 4))
    lock = threading.Lock()

    def done(row: dict) -> None:
        with lock:
            table.rows.append(row)
        if on_result is not None:
            on_result(row)

    if workers == 0:
        for job in jobs:
            if cancel is not None and cancel.is_set():
                break
            row = _fork_here(session, job, cancel)
            if row["status"] != "cancelled":
                done(row)
        table.cancelled = cancel is not None and cancel.is_set()
        return table
    ckpt = checkpoint.to_bytes(session)
    pool = multiprocessing.get_context("spawn").Pool(min(workers, len(jobs)), _init_worker, (ckpt,))
    try:
        pending = [pool.apply_async(_run_job, (job,), callback=done) for job in jobs]
        while not all(p.ready() for p in pending):
            if cancel is not None and cancel.is_set():
                table.cancelled = True
                break
            time.sleep(0.05)
    finally:
        if table.cancelled:
            pool.terminate()
        else:
            pool.close()
        pool.join()
    return table
