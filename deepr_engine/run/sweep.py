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

A swept field that has no effect in a trial (another method's setting, temperature while
noise_scale sets the noise) is not varied in it, and refused when it acts in no trial. The best
trial (`best_row`) is the `ok` row with the highest val_acc; ties go to the lower val_loss, then
to the earlier trial. `edge_warnings` says when the best value sits on the edge of its range.
"""
from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import sys
import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import ray_exec, registry
from .atomic import write_atomic
from .config import RunConfig
from .selection import best_row, edge_warnings, ranges_of, summary  # noqa: F401
from .trials import (REPORTS, RESULT_COLUMNS, Trial, error_metrics, format_number, format_value,  # noqa: F401
                     run_trial, trial_key, trial_label)

FINISHED = ("ok", "diverged", "stopped")   # "error" trials run again on a re-run
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
def sweep_fields() -> dict:
    """Every setting a sweep can vary: field -> its type (RunConfig fields and the registered
    methods' extra settings), seed excluded (use seeds=N)."""
    return {k: h.type for k, h in registry.declarations().items() if k != "seed"}


def _field_types() -> dict:
    return {k: h.type for k, h in registry.declarations().items()}


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
    trials, seen, used = [], set(), set()
    reasons: dict[str, str] = {}
    for combo in itertools.product(*(grid[n] for n in names)):
        for draw in draws:
            swept = dict(zip(names, combo)) | draw
            for i in range(seeds):
                # a field without effect in this trial (another method's setting, temperature
                # while noise_scale sets the noise) is not varied in it
                idle = {k: registry.foreign(swept.get("algorithm", base.algorithm), k) for k in swept}
                swept = {k: v for k, v in swept.items() if not idle[k]}
                cfg = _config(base, swept, i)
                idle |= {k: cfg.idle(k) for k in swept}
                if any(idle[k] for k in swept):
                    swept = {k: v for k, v in swept.items() if not idle[k]}
                    cfg = _config(base, swept, i)
                reasons.update({k: why for k, why in idle.items() if why})
                used.update(swept)
                t = Trial(cfg, swept)
                if t.key not in seen:
                    seen.add(t.key)
                    trials.append(t)
    for name in [*grid, *random]:
        if name not in used:
            flag = "--grid" if name in grid else "--random"
            raise ValueError(f"{flag} {name}: has no effect in any trial: {reasons.get(name, '')}")
    return trials


def _config(base: RunConfig, swept: dict, i: int) -> RunConfig:
    try:
        return base.replace(**swept, seed=base.seed + i)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"setting {trial_label(swept)}: {exc}") from None


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
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True))


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
        f = io.StringIO(newline="")
        w = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(self.rows)
        write_atomic(self.path, f.getvalue())


def _cell(v):
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else ("nan" if math.isnan(v) else str(v))
    if isinstance(v, (list, tuple)):
        return format_value(v)
    return v


# -- running --------------------------------------------------------------------------------------
class SweepRows(list):
    """A sweep's rows (dicts, results.csv's cells), plus `best` (the row chosen on validation,
    see best_row) and `warnings` (a best value on the edge of its swept range)."""

    def __init__(self, rows, best=None, warnings=()):
        super().__init__(rows)
        self.best = best
        self.warnings = list(warnings)


def run_sweep(base: RunConfig, grid: dict | None = None, random: dict | None = None,
              samples: int = 0, seeds: int = 1, out: str | Path = "runs/sweep",
              address: str | None = None, asha: bool = False, sample_seed: int = 0,
              val_fraction: float | None = None, cpus_per_trial: float = 1.0,
              progress: bool = True, on_result=None, meta: dict | None = None,
              executor: str | None = None) -> SweepRows:
    """Build the trials and run those results.csv does not hold yet; returns this sweep's rows
    (finished earlier or now), each with its swept fields, seed and metrics, with `.best` and
    `.warnings` (printed to stderr too, with progress)."""
    trials = build_trials(base, grid, random, samples, seeds, sample_seed, val_fraction)
    fields = list(grid or {}) + list(random or {})
    meta = dict(meta or {}) | {"ranges": ranges_of(grid, random)}
    return run_trials(trials, fields, out, address=address, asha=asha, cpus_per_trial=cpus_per_trial,
                      progress=progress, on_result=on_result, meta=meta, executor=executor)


def run_trials(trials: list[Trial], fields: list[str], out: str | Path, *, address: str | None = None,
               asha: bool = False, cpus_per_trial: float = 1.0, progress: bool = True,
               on_result=None, meta: dict | None = None, executor: str | None = None,
               gpus_per_trial: float = 0.0) -> SweepRows:
    """Run the given trials on Ray (skipping finished ones in out/results.csv). out/trials.json
    maps each row's key to its full config; `meta` (e.g. the preset, `ranges`) goes to
    out/sweep.json. A bad trial spec (not a Trial, an invalid config, a swept key that is no
    config field) is an `error` row saying why; the other trials run. A row shows only the
    swept fields its method has (build_trials never varies another method's setting)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; it must be a folder")
    executor = executor or ("tune" if asha else "tasks")
    if executor not in ("tune", "tasks") or (asha and executor != "tune"):
        raise ValueError(f"executor must be tune or tasks (ASHA needs tune), got {executor!r}")
    results = ResultsFile(out, list(fields))
    finished = results.finished()
    unique: dict[str, Trial] = {}
    bad: dict[str, tuple[dict, str]] = {}     # key -> (swept, why)
    for t in trials:
        key, why = _spec_problem(t)
        if why:
            bad.setdefault(key, (t.swept if isinstance(getattr(t, "swept", None), dict) else {}, why))
        else:
            unique.setdefault(key, t)
    _write_json(out / "trials.json", _read_json(out / "trials.json")
                | {k: t.config.to_dict() for k, t in unique.items()})   # a row's full setup
    if meta:
        _write_json(out / "sweep.json", meta)
    todo = [t for k, t in unique.items() if k not in finished]
    results.drop({t.key for t in todo} | set(bad))   # earlier error rows of trials that run again
    total, skipped = len(unique) + len(bad), len(unique) - len(todo)
    if progress:
        print(f"sweep: {total} trials, {skipped} already in {results.path}, {len(todo) + len(bad)} "
              f"to run", file=sys.stderr, flush=True)
    by_key = {t.key: t for t in todo}
    count = {"done": skipped}

    def sink(key: str, metrics: dict, status: str | None = None, note: str = "") -> None:
        t = by_key.pop(key, None)
        if t is None:
            return
        row = _cells(t.config, t.swept, results.columns) | {"seed": t.config.seed, "key": key}
        row |= {c: metrics[c] for c in RESULT_COLUMNS if c in metrics and c not in ("seed", "key")}
        if status:
            row["status"] = status
        if note:
            row["note"] = note[:300]
        _add(row, trial_label(t.swept) + f" seed={t.config.seed}")

    def _add(row: dict, label: str) -> None:
        results.add(row)
        count["done"] += 1
        if progress:
            print(f"[{count['done']}/{total}] {label}: {row.get('status')} val "
                  f"{format_number(row.get('val_acc'))} test {format_number(row.get('test_acc'))} "
                  f"({format_number(row.get('seconds'), '.1f')} s)", file=sys.stderr, flush=True)
        if on_result is not None:
            on_result(results.rows[-1])

    for key, (swept, why) in bad.items():   # bad specs: a row each, nothing started
        cells = {f: swept[f] for f in results.columns if f in swept and f not in RESULT_COLUMNS}
        _add(cells | error_metrics(why) | {"seed": "", "key": key}, trial_label(swept))
    if todo:
        ray_exec.run_on_ray([(t.key, t.config.to_dict()) for t in todo], sink, address, asha,
                            cpus_per_trial, executor, gpus_per_trial)
    for t in by_key.values():   # trials Ray never reported (e.g. interrupted sweep) stay unfinished
        if progress:
            print(f"trial {trial_label(t.swept)} seed={t.config.seed} did not finish", file=sys.stderr)
    rows_by_key = {r["key"]: r for r in results.rows}
    rows = [rows_by_key[k] for k in [*unique, *bad] if k in rows_by_key]
    best, warnings = summary(rows, (meta or {}).get("ranges", {}))
    if progress:
        for w in warnings:
            print(f"warning: {w}", file=sys.stderr)
    return SweepRows(rows, best, warnings)


def _spec_problem(t) -> tuple[str, str]:
    """(the trial's key, why it cannot run or '')."""
    if not isinstance(t, Trial):
        return _bad_key(t), f"not a sweep Trial: {type(t).__name__}"
    if not isinstance(t.config, RunConfig):
        return _bad_key(t), f"config must be a RunConfig, got {type(t.config).__name__}"
    if not isinstance(t.swept, dict):
        return _bad_key(t), f"swept must be a dict of field -> value, got {type(t.swept).__name__}"
    try:
        key = t.key
        t.config.validate()
    except Exception as exc:  # an invalid config is that trial's error row
        return _bad_key(t), f"invalid config: {type(exc).__name__}: {exc}"
    known = registry.declarations()
    for name in t.swept:
        if name not in known or name == "seed":
            return _bad_key(t), (f"swept field {name!r} is not a config field; allowed: "
                                  f"{', '.join(k for k in known if k != 'seed')}")
    return key, ""   # another method's field in `swept` is a label only: its cell stays empty


def _bad_key(t) -> str:
    return "bad-" + hashlib.sha1(repr(t).encode()).hexdigest()[:12]


def _cells(cfg: RunConfig, swept: dict, columns: list[str]) -> dict:
    """A row's swept-field cells: only the fields the trial's method has (others stay empty)."""
    own = set(registry.get(cfg.algorithm).keys)
    out = {}
    for f in columns:
        if f in RESULT_COLUMNS or (registry.owners(f) and f not in own):
            continue
        out[f] = swept[f] if f in swept else getattr(cfg, f, "")
    return out


def run_serial(trials: list[Trial]) -> list[dict]:
    """The same trials in a plain loop in this process (for comparison with Ray)."""
    return [dict(run_trial(t.config.to_dict()), key=t.key, seed=t.config.seed) for t in trials]
