"""Sweeps on Ray Tune: grid and random search over RunConfig fields, several seeds per setting,
every trial a TrainingSession that is selected on a validation split and reports its test
accuracy beside it.

    run_sweep(preset("digits-demo").replace(steps=300), grid={"alpha": [1e-5, 1e-4]},
              random={"lr": Random("log", 0.01, 1)}, samples=4, seeds=2, out="runs/sweep")

Trials are generated here (random samples from a seeded generator), so the same call gives the
same trials and a re-run with the same `out` skips the ones results.csv already holds (a trial
is keyed by its whole config, seed included). Ray only executes them: locally on this machine's
cores by default, or on an existing cluster with `address`; as plain Ray tasks (least overhead
per trial) or, for ASHA early stopping, as Ray Tune trials that report every tenth of their steps.
"""
from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import os
import sys
import time
import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import RunConfig

RESULT_COLUMNS = ["seed", "val_acc", "test_acc", "connectivity", "turnover", "status", "seconds",
                  "steps_done", "dead_outputs", "cpu_seconds", "note", "key"]
FINISHED = ("ok", "diverged", "stopped")   # "error" trials run again on a re-run
REPORTS = 10                               # progress points per trial (ASHA rungs, turnover window)
DEFAULT_VAL_FRACTION = 0.2


@dataclass(frozen=True)
class Random:
    """A random-search range: kind "log" (log-uniform, 0 < low < high) or "uniform"."""
    kind: str
    low: float
    high: float

    def __post_init__(self):
        if self.kind not in ("log", "uniform"):
            raise ValueError(f"range kind must be log or uniform, got {self.kind!r}")
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"range needs finite low < high, got {self.low:g}:{self.high:g}")
        if self.kind == "log" and self.low <= 0:
            raise ValueError(f"a log range needs 0 < low, got {self.low:g}")

    def sample(self, rng: np.random.Generator) -> float:
        if self.kind == "log":
            return float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))
        return float(rng.uniform(self.low, self.high))


# -- specs --------------------------------------------------------------------------------------
def _field_types() -> dict:
    return typing.get_type_hints(RunConfig)


def _check_field(name: str, flag: str) -> type:
    types = _field_types()
    if name == "seed":
        raise ValueError(f"{flag}: seed is not swept here; use --seeds N (seeds per setting)")
    if name not in types:
        allowed = ", ".join(f for f in types if f != "seed")
        raise ValueError(f"{flag}: unknown field {name!r}; allowed: {allowed}")
    return types[name]


def parse_value(name: str, text: str, flag: str = "--grid"):
    """One value of a field from text; list fields take '/'-separated entries (64/32)."""
    typ = _check_field(name, flag)
    text = text.strip()
    if typing.get_origin(typ) is list:
        inner = typing.get_args(typ)[0]
        try:
            values = [inner(v) for v in text.split("/") if v.strip()]
            if not values:
                raise ValueError
            return values
        except ValueError:
            raise ValueError(f"{flag} {name}: takes {inner.__name__}s separated by '/', got {text!r}")
    if typ is bool:
        if text.lower() in ("true", "1", "yes", "on"):
            return True
        if text.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"{flag} {name}: takes true or false, got {text!r}")
    try:
        if typ is int:
            v = float(text)           # 1e3 is fine for an integer field
            if not v.is_integer():
                raise ValueError
            return int(v)
        return typ(text)
    except ValueError:
        raise ValueError(f"{flag} {name}: takes a {typ.__name__}, got {text!r}")


def parse_grid(spec: str) -> tuple[str, list]:
    """'alpha=1e-5,1e-4' -> ('alpha', [1e-05, 0.0001])."""
    name, sep, values = spec.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not values.strip():
        raise ValueError(f"--grid takes FIELD=V1,V2,..., got {spec!r}")
    out = [parse_value(name, v, "--grid") for v in values.split(",") if v.strip()]
    if not out:
        raise ValueError(f"--grid {name}: no values in {spec!r}")
    return name, out


def parse_random(spec: str) -> tuple[str, Random]:
    """'lr=log:0.01:1' or 'drop_fraction=uniform:0.1:0.5'."""
    name, sep, rng = spec.partition("=")
    name = name.strip().replace("-", "_")
    parts = rng.split(":")
    if not sep or len(parts) != 3:
        raise ValueError(f"--random takes FIELD=log:LOW:HIGH or FIELD=uniform:LOW:HIGH, got {spec!r}")
    typ = _check_field(name, "--random")
    inner = typing.get_args(typ)[0] if typing.get_origin(typ) is list else typ
    if inner not in (int, float):
        raise ValueError(f"--random {name}: only numeric fields take a range; use --grid for it")
    try:
        low, high = float(parts[1]), float(parts[2])
    except ValueError:
        raise ValueError(f"--random {name}: LOW and HIGH must be numbers, got {rng!r}")
    try:
        return name, Random(parts[0].strip(), low, high)
    except ValueError as exc:
        raise ValueError(f"--random {name}: {exc}")


def _shape(name: str, value):
    """A sampled number as the field wants it: int fields rounded, list fields one entry."""
    typ = _field_types()[name]
    inner = typing.get_args(typ)[0] if typing.get_origin(typ) is list else typ
    v = int(round(value)) if inner is int else float(f"{value:.4g}")
    return [v] if typing.get_origin(typ) is list else v


# -- trials -------------------------------------------------------------------------------------
@dataclass
class Trial:
    config: RunConfig
    swept: dict          # field -> value, the setting this trial belongs to

    @property
    def key(self) -> str:
        return trial_key(self.config)


def trial_key(cfg: RunConfig) -> str:
    return hashlib.sha1(cfg.to_json().encode()).hexdigest()[:16]


def build_trials(base: RunConfig, grid: dict | None = None, random: dict | None = None,
                 samples: int = 0, seeds: int = 1, sample_seed: int = 0,
                 val_fraction: float | None = None) -> list[Trial]:
    """Grid x random samples x seeds; every config validated before anything runs."""
    grid, random = dict(grid or {}), dict(random or {})
    if not isinstance(seeds, int) or not 1 <= seeds <= 1000:
        raise ValueError(f"--seeds must be an integer in [1, 1000], got {seeds!r}")
    if random and not (isinstance(samples, int) and 1 <= samples <= 100_000):
        raise ValueError(f"--samples must be an integer in [1, 100000] with --random, got {samples!r}")
    if samples and not random:
        raise ValueError("--samples needs at least one --random FIELD=log:LOW:HIGH")
    both = sorted(set(grid) & set(random))
    if both:
        raise ValueError(f"--grid and --random both set {', '.join(both)}; choose one per field")
    for name, values in grid.items():
        _check_field(name, "--grid")
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"--grid {name}: needs a non-empty list of values, got {values!r}")
    for name, r in random.items():
        _check_field(name, "--random")
        if not isinstance(r, Random):
            raise ValueError(f"--random {name}: needs a Random range, got {r!r}")
    vf = base.val_fraction if val_fraction is None else val_fraction
    if vf == 0:
        vf = DEFAULT_VAL_FRACTION
    base = base.replace(val_fraction=vf)
    if base.val_fraction <= 0:
        raise ValueError("val_fraction must be > 0 in a sweep: trials are selected on validation")
    rng = np.random.default_rng(sample_seed)
    draws = [{n: _shape(n, r.sample(rng)) for n, r in random.items()} for _ in range(samples or 1)]
    names = list(grid)
    trials = []
    for combo in itertools.product(*(grid[n] for n in names)):
        for draw in draws:
            swept = dict(zip(names, combo)) | draw
            for i in range(seeds):
                try:
                    cfg = base.replace(**swept, seed=base.seed + i)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"setting {trial_label(swept)}: {exc}") from None
                trials.append(Trial(cfg, swept))
    return trials


def trial_label(swept: dict) -> str:
    return " ".join(f"{k}={format_value(v)}" for k, v in swept.items()) or "base"


def format_value(v) -> str:
    if isinstance(v, (list, tuple)):
        return "/".join(format_value(x) for x in v)
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


# -- one trial (a plain function: the Ray trainable and the serial loop both call it) ----------
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
        steps = cfg.steps
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
        return {"val_acc": float("nan"), "test_acc": float("nan"), "connectivity": float("nan"),
                "turnover": float("nan"), "status": "error", "seconds": time.perf_counter() - t0,
                "steps_done": 0, "dead_outputs": -1, "cpu_seconds": time.process_time() - c0,
                "note": f"{type(exc).__name__}: {exc}"[:300]}


def _row(s, pruned_at: dict, window: int, status: str, note: str, seconds: float) -> dict:
    ev = s.evaluate()
    done = s.step_count
    start = max(b for b in pruned_at if b <= max(0, done - window))
    turnover = (s.telemetry.total_pruned - pruned_at[start]) * 100 / (done - start) if done > start else 0.0
    last = s.layers[-1].active_mask()
    dead_out = int((~last.reshape(last.shape[0], -1).any(1)).sum())
    return {"val_acc": ev.get("val_acc", float("nan")), "test_acc": ev["test_acc"],
            "connectivity": sum(l.k for l in s.layers) / sum(l.n_positions for l in s.layers),
            "turnover": turnover, "status": status, "seconds": seconds, "steps_done": done,
            "dead_outputs": dead_out, "note": note[:300]}


# -- results.csv ----------------------------------------------------------------------------------
def read_results(path: str | Path) -> list[dict]:
    path = Path(path)
    if path.is_dir():
        path = path / "results.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


class ResultsFile:
    """results.csv, rewritten whole (atomically) after every trial so readers never see half a row."""

    def __init__(self, out: Path, fields: list[str]):
        self.path = out / "results.csv"
        self.rows = read_results(self.path)
        old_cols = list(self.rows[0]) if self.rows else []
        swept = [c for c in old_cols if c not in RESULT_COLUMNS]
        self.columns = swept + [f for f in fields if f not in swept] + RESULT_COLUMNS

    def finished(self) -> set[str]:
        return {r["key"] for r in self.rows if r.get("status") in FINISHED}

    def drop(self, keys: set[str]) -> None:
        self.rows = [r for r in self.rows if r.get("key") not in keys]
        self._write()

    def add(self, row: dict) -> None:
        self.rows.append({c: _cell(row.get(c, "")) for c in self.columns})
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            w.writeheader()
            w.writerows(self.rows)
        os.replace(tmp, self.path)


def _cell(v):
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else ("nan" if math.isnan(v) else str(v))
    if isinstance(v, (list, tuple)):
        return format_value(v)
    return v


# -- running --------------------------------------------------------------------------------------
def run_sweep(base: RunConfig, grid: dict | None = None, random: dict | None = None,
              samples: int = 0, seeds: int = 1, out: str | Path = "runs/sweep",
              address: str | None = None, asha: bool = False, sample_seed: int = 0,
              val_fraction: float | None = None, cpus_per_trial: float = 1.0,
              progress: bool = True, on_result=None, meta: dict | None = None,
              executor: str | None = None) -> list[dict]:
    """Build the trials and run those results.csv does not hold yet; returns this sweep's rows
    (finished earlier or now), each with its swept fields, seed and metrics."""
    trials = build_trials(base, grid, random, samples, seeds, sample_seed, val_fraction)
    fields = list(grid or {}) + list(random or {})
    return run_trials(trials, fields, out, address=address, asha=asha, cpus_per_trial=cpus_per_trial,
                      progress=progress, on_result=on_result, meta=meta, executor=executor)


def run_trials(trials: list[Trial], fields: list[str], out: str | Path, *, address: str | None = None,
               asha: bool = False, cpus_per_trial: float = 1.0, progress: bool = True,
               on_result=None, meta: dict | None = None, executor: str | None = None) -> list[dict]:
    """Run the given trials on Ray (skipping finished ones in out/results.csv). out/trials.json
    maps each row's key to its full config; `meta` (e.g. the preset) goes to out/sweep.json."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; it must be a folder")
    results = ResultsFile(out, fields)
    finished = results.finished()
    unique: dict[str, Trial] = {}
    for t in trials:
        unique.setdefault(t.key, t)
    _write_json(out / "trials.json", _read_json(out / "trials.json")
                | {k: t.config.to_dict() for k, t in unique.items()})   # a row's full setup
    if meta:
        _write_json(out / "sweep.json", meta)
    todo = [t for k, t in unique.items() if k not in finished]
    results.drop({t.key for t in todo})   # earlier error rows of trials that run again
    total, skipped = len(unique), len(unique) - len(todo)
    if progress:
        print(f"sweep: {total} trials, {skipped} already in {results.path}, {len(todo)} to run",
              file=sys.stderr, flush=True)
    if todo:
        executor = executor or ("tune" if asha else "tasks")
        if executor not in ("tune", "tasks") or (asha and executor != "tune"):
            raise ValueError(f"executor must be tune or tasks (ASHA needs tune), got {executor!r}")
        from .ray_exec import run_on_ray
        run_on_ray(todo, results, address, asha, cpus_per_trial, progress, on_result, skipped, total,
                   executor)
    by_key = {r["key"]: r for r in results.rows}
    return [by_key[k] for k in unique if k in by_key]


def format_number(v, spec: str = ".3f") -> str:
    try:
        return format(float(v), spec)
    except (TypeError, ValueError):
        return "-"


def run_serial(trials: list[Trial]) -> list[dict]:
    """The same trials in a plain loop in this process (for comparison with Ray)."""
    return [dict(run_trial(t.config.to_dict()), key=t.key, seed=t.config.seed) for t in trials]

