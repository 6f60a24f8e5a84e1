"""Hyperparameter changes as chart markers: short readable labels ("T 1e-06 → 1e-05") and a
placement that keeps labels from overlapping. The engine already merges the changes of one field
within a second (a slider drag) into one."""
from __future__ import annotations

SHORT = {"temperature": "T", "alpha": "alpha", "lr": "lr", "batch_size": "batch", "k": "K",
         "theta_min": "theta_min", "update_every": "every", "drop_fraction": "drop",
         "t_end": "t_end", "prune_at": "prune at", "prune_events": "prune events",
         "l1_threshold": "L1 thr", "eval_every": "eval every", "lr_decay": "lr decay",
         "noise_scale": "noise", "connectivity": "conn"}


def value(v) -> str:
    """A number as people write it: 1e-05, 0.05, 300; lists with at most 4 entries shown."""
    if isinstance(v, (list, tuple)):
        inner = [value(x) for x in v[:4]]
        return "[" + ", ".join(inner) + (", …" if len(v) > 4 else "") + "]"
    if isinstance(v, float):
        if v == 0:
            return "0"
        return f"{v:.0e}" if abs(v) < 1e-3 or abs(v) >= 1e5 else f"{v:.3g}"
    return "—" if v is None else str(v)


def label(change) -> str:
    step, name, old, new = change[:4]
    return f"{SHORT.get(name, name)} {value(old)} → {value(new)}"


def place(xs: list[float], widths: list[float], rows: int = 3) -> list[int | None]:
    """Row (0 = top) for each label at x (sorted or not) with the given widths, greedily so that
    labels in a row do not overlap; None where no row has room (the marker line stays)."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ends = [-1e18] * rows
    out: list[int | None] = [None] * len(xs)
    for i in order:
        for r in range(rows):
            if xs[i] >= ends[r]:
                out[i] = r
                ends[r] = xs[i] + widths[i] + 4
                break
    return out
