"""Argument checks shared by the engine: every error names the field and what is allowed."""
from __future__ import annotations

import math
from numbers import Real


def finite(name: str, value, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False) -> float:
    """Return value as float if it is a finite real in the given range, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
    hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
    allowed = f"{lo or '(-inf'}, {hi or 'inf)'}"
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be in {allowed}, got {value:g}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be in {allowed}, got {value:g}")
    return value


def integer(name: str, value, *, low: int | None = None, high: int | None = None) -> int:
    """Return value as int if it is an integer in [low, high], else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
            isinstance(value, float) and value.is_integer()):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer in [{low if low is not None else '-inf'}, "
                         f"{high if high is not None else 'inf'}], got {value}")
    return value


def choice(name: str, value, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}")
    return value


def per_layer(name: str, value, n_layers: int) -> list:
    """A scalar broadcast to every layer, or a list with exactly one entry per layer."""
    if isinstance(value, (list, tuple)):
        if len(value) != n_layers:
            raise ValueError(f"{name} must have one entry per rewired layer ({n_layers}), "
                             f"got {len(value)}")
        return list(value)
    return [value] * n_layers
