"""A checkpoint's JSON metadata checked before anything is built: the config (through
RunConfig: errors name the field), the session's counters (steps non-negative integers, lr
finite and in its declared range, the data position inside the training set), the optimizer's
param groups (every hyperparameter through its method's declared check), its extra state and
the telemetry (series well formed, tracked connections inside the network). Each error names
the entry and what is allowed; the tensors are checked in ckpt_check.py."""
from __future__ import annotations

import json
import math
from numbers import Real

from .. import validate
from . import registry
from .classify import RewiringClassifier
from .config import RunConfig
from .telemetry import LIFETIME_BINS, Downsampled

MAX_COUNT = 10**15   # steps, events: far above any real run, below float64's exact integers
MAX_CAPACITY = 1 << 20


def _json(meta: dict, key: str, kind: type):
    if key not in meta:
        raise ValueError(f"{key}: missing")
    try:
        value = json.loads(meta[key])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{key}: not JSON ({exc})") from None
    if not isinstance(value, kind):
        raise ValueError(f"{key}: expected a JSON {kind.__name__}, got {type(value).__name__}")
    return value


def config_of(meta: dict) -> RunConfig:
    d = _json(meta, "config", dict)
    try:
        return RunConfig.from_dict(d)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config: {exc}") from None


def count(name: str, value, high: int = MAX_COUNT) -> int:
    return validate.integer(name, value, low=0, high=high)


def _number(name: str, value, nan_ok: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) or nan_ok and math.isnan(value)):
        raise ValueError(f"{name} must be finite, got {value}")


def _plain(name: str, value, depth: int = 0) -> None:
    """A setting a check does not know: finite numbers, text, booleans, null, or lists of them."""
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, list) and depth < 2:
        for i, v in enumerate(value):
            _plain(f"{name}[{i}]", v, depth + 1)
        return
    _number(name, value)


def check_session(meta: dict, n_train: int) -> dict:
    """The session's counters; returns them parsed."""
    s = _json(meta, "session", dict)
    count("session.step_count", s.get("step_count"))
    registry.declaration("lr").check(s.get("lr"), "session.lr")
    validate.finite("session.train_seconds", s.get("train_seconds", 0.0), low=0.0)
    if s.get("paused_reason") is not None and not isinstance(s["paused_reason"], str):
        raise ValueError("session.paused_reason must be text or null")
    last = s.get("last")
    if not isinstance(last, dict):
        raise ValueError("session.last must be a JSON object of metrics")
    for k, v in last.items():
        _number(f"session.last.{k}", v, nan_ok=True)
    if s.get("fork") is not None and not isinstance(s["fork"], dict):
        raise ValueError("session.fork must be an object or null")
    b = s.get("batch")
    if not isinstance(b, dict):
        raise ValueError("session.batch must be a JSON object")
    count("session.batch.epoch", b.get("epoch"))
    validate.integer("session.batch.batch_size", b.get("batch_size"), low=1, high=n_train)
    validate.integer("session.batch.pos", b.get("pos"), low=0, high=n_train)
    return s


def check_optimizer(meta: dict, cfg: RunConfig, positions: list[int]) -> None:
    """Param groups (one per rewired layer, then one for the other parameters when there are
    any), per-parameter counters and the method's extra state."""
    alg = registry.get(cfg.algorithm)
    checks = alg.optimizer.COMMON | alg.optimizer.HYPER
    groups = _json(meta, "param_groups", list)
    n = len(positions)
    want = n + (1 if cfg.bias else 0)
    if len(groups) != want:
        raise ValueError(f"param_groups: expected {want} groups (one per rewired layer"
                         f"{', one for the biases' if cfg.bias else ''}), got {len(groups)}")
    n_params = 0
    for gi, g in enumerate(groups):
        name = f"param_groups[{gi}]"
        if not isinstance(g, dict):
            raise ValueError(f"{name} must be a JSON object")
        layer = gi if gi < n else None
        if g.get("layer_index") != layer:
            raise ValueError(f"{name}.layer_index must be {layer}, got {g.get('layer_index')!r}")
        params = g.get("params")
        if not isinstance(params, list) or not params:
            raise ValueError(f"{name}.params must be a non-empty list")
        n_params += len(params)
        for key, value in g.items():
            if key in ("layer_index", "params"):
                continue
            if key in checks:
                checks[key](value)
            elif key == "k" and layer is not None:
                validate.integer(f"{name}.k", value, low=0, high=positions[layer])
            else:
                _plain(f"{name}.{key}", value)
    for key, value in _json(meta, "opt_state", dict).items():
        pid, _, what = key.partition(".")
        if not pid.isdigit() or int(pid) >= n_params or not what:
            raise ValueError(f"opt_state: {key!r} is not <param 0-{n_params - 1}>.<name>")
        count(f"opt_state.{key}", value)
    extra = _json(meta, "opt_extra", dict)
    count("opt_extra.step_count", extra.get("step_count", 0))
    for key, value in extra.items():
        if isinstance(value, list):
            if len(value) != n:
                raise ValueError(f"opt_extra.{key}: one entry per rewired layer ({n}), got {len(value)}")
            for i, v in enumerate(value):
                validate.integer(f"opt_extra.{key}[{i}]", v, low=0, high=positions[i])
        else:
            count(f"opt_extra.{key}", value)


def _series(name: str, d, width: int | None = None) -> None:
    """A Downsampled series' dict: shape of every field, equal-shape values."""
    if not isinstance(d, dict):
        raise ValueError(f"{name} must be a JSON object")
    cap = validate.integer(f"{name}.capacity", d.get("capacity"), low=4, high=MAX_CAPACITY)
    if cap % 2:
        raise ValueError(f"{name}.capacity must be even, got {cap}")
    validate.choice(f"{name}.mode", d.get("mode"), ("mean", "last"))
    count(f"{name}.stride", d.get("stride"))
    count(f"{name}.n", d.get("n"))
    steps, values = d.get("steps"), d.get("values")
    if not isinstance(steps, list) or not isinstance(values, list) or len(steps) != len(values) \
            or len(steps) > cap:
        raise ValueError(f"{name}: steps and values must be lists of equal length (at most "
                         f"capacity {cap})")
    for i, st in enumerate(steps):
        count(f"{name}.steps[{i}]", st)
    shapes = set()
    for i, v in enumerate(values + ([d["acc"]] if d.get("acc") is not None else [])):
        if isinstance(v, list):
            for j, x in enumerate(v):
                _number(f"{name}.values[{i}][{j}]", x, nan_ok=True)
            shapes.add(len(v))
        else:
            _number(f"{name}.values[{i}]", v, nan_ok=True)
            shapes.add(None)
    if len(shapes) > 1 or width is not None and shapes and shapes != {width}:
        raise ValueError(f"{name}: every value must have the same length"
                         + (f" ({width}: one per rewired layer)" if width is not None else ""))
    try:
        Downsampled.from_dict(d)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{name}: {exc}") from None


def check_telemetry(meta: dict, positions: list[int]) -> None:
    t = _json(meta, "telemetry", dict)
    n = len(positions)
    series = t.get("series")
    if not isinstance(series, dict):
        raise ValueError("telemetry.series must be a JSON object")
    for key, d in series.items():
        _series(f"telemetry.series.{key}", d)
    for key in ("pruned", "activated", "active", "ever_active_frac"):
        _series(f"telemetry.{key}", t.get(key), width=n)
    for key in ("dead_units", "tracked_theta", "topology"):
        if key in t:
            _series(f"telemetry.{key}", t[key])
    classes = t.get("classes", {})
    if not isinstance(classes, dict):
        raise ValueError("telemetry.classes must be a JSON object")
    for key, d in classes.items():
        _series(f"telemetry.classes.{key}", d, width=n)
    life = t.get("lifetimes")
    if not isinstance(life, list) or len(life) != n or any(
            not isinstance(row, list) or len(row) != LIFETIME_BINS for row in life):
        raise ValueError(f"telemetry.lifetimes must be {n} rows of {LIFETIME_BINS} counts")
    for i, row in enumerate(life):
        for j, v in enumerate(row):
            count(f"telemetry.lifetimes[{i}][{j}]", v)
    layer, pos = t.get("tracked_layer"), t.get("tracked_pos")
    if not isinstance(layer, list) or not isinstance(pos, list) or len(layer) != len(pos) \
            or len(pos) > 512:
        raise ValueError("telemetry.tracked_layer / tracked_pos: two equal-length lists (at most 512)")
    for i, (li, p) in enumerate(zip(layer, pos)):
        validate.integer(f"telemetry.tracked_layer[{i}]", li, low=0, high=n - 1)
        validate.integer(f"telemetry.tracked_pos[{i}]", p, low=0, high=positions[li] - 1)
    for key in ("changes", "notes"):
        if not isinstance(t.get(key), list):
            raise ValueError(f"telemetry.{key} must be a list")
    if any(not isinstance(c, list) or len(c) != 4 for c in t["changes"]):
        raise ValueError("telemetry.changes: each entry is [step, name, old, new]")
    count("telemetry.total_pruned", t.get("total_pruned", 0))
    count("telemetry.event_seq", t.get("event_seq", 0))
    if "classifier" in t:
        try:
            RewiringClassifier.from_dict(t["classifier"], n)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"telemetry.classifier: {exc}") from None
