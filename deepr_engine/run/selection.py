"""Choosing among a sweep's trials: the best row on validation (ties broken by a stated rule)
and warnings when the best value of a swept numeric field sits on the edge of its range."""
from __future__ import annotations

import math

from .trials import format_value

EDGE_SHARE = 0.1   # a random range's outer tenth (log scale for log ranges) counts as its edge


def best_row(rows: list[dict]) -> dict | None:
    """The best trial on validation: among the `ok` rows the highest val_acc; a tie goes to the
    lower val_loss, then to the trial that comes first (the sweep's trial order)."""
    ok = [(i, r) for i, r in enumerate(rows) if r.get("status") == "ok" and _num(r.get("val_acc")) is not None]
    if not ok:
        return None
    loss = lambda r: _num(r.get("val_loss")) if _num(r.get("val_loss")) is not None else math.inf
    return min(ok, key=lambda ir: (-_num(ir[1]["val_acc"]), loss(ir[1]), ir[0]))[1]


def ranges_of(grid: dict | None, random: dict | None) -> dict:
    """The swept numeric ranges, as sweep.json stores them (for edge warnings)."""
    out = {}
    for name, values in (grid or {}).items():
        nums = [v for v in (_num(_scalar(v)) for v in values) if v is not None]
        if len(nums) == len(values):
            out[name] = {"kind": "grid", "values": sorted(set(nums))}
    for name, r in (random or {}).items():
        out[name] = {"kind": r.kind, "low": r.low, "high": r.high}
    return out


def edge_warnings(best: dict | None, ranges: dict) -> list[str]:
    """A warning per swept numeric field whose best value sits on the edge of its range: a grid
    of at least 3 values at its lowest or highest value, a random range in its outer tenth
    (EDGE_SHARE; on a log scale for log ranges). The optimum may lie beyond: widen the range."""
    if best is None:
        return []
    out = []
    for name, r in ranges.items():
        v = _num(_scalar(best.get(name)))
        if v is None:
            continue
        if r["kind"] == "grid":
            vals = r["values"]
            if len(vals) < 3:
                continue
            lo, hi = vals[0], vals[-1]
            pos = 0.0 if v <= lo else 1.0 if v >= hi else 0.5
        else:
            lo, hi = r["low"], r["high"]
            f = (lambda x: math.log(x)) if r["kind"] == "log" and v > 0 else (lambda x: x)
            pos = (f(v) - f(lo)) / (f(hi) - f(lo))
        if pos >= 1 - EDGE_SHARE:
            out.append(f"{name}'s best value ({format_value(v)}) is at the top of its range "
                       f"[{format_value(lo)}, {format_value(hi)}]: widen it")
        elif pos <= EDGE_SHARE:
            out.append(f"{name}'s best value ({format_value(v)}) is at the bottom of its range "
                       f"[{format_value(lo)}, {format_value(hi)}]: widen it")
    return out


def summary(rows: list[dict], ranges: dict) -> tuple[dict | None, list[str]]:
    best = best_row(rows)
    return best, edge_warnings(best, ranges)


def _scalar(v):
    if isinstance(v, (list, tuple)):
        return v[0] if len(v) == 1 else None
    return v


def _num(v) -> float | None:
    if isinstance(v, bool) or v is None or v == "":
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None
