"""Hyperparameter declarations: one `Hyper` per setting, written once by whoever owns it (an
optimizer's `HYPER` table, the run harness for run-wide settings).

From a declaration come: the optimizer's check (a `Hyper` is callable: `HYPER[name](value)`
raises ValueError naming the setting and its range), the RunConfig field (default, range,
help), the CLI flag and its --help line, the app's URL key and live control (label, scale),
the sweep's field list and the README's table (`deepr_engine.run.registry.hyper_table`).

    Hyper("drop_fraction", 0.3, 0.0, 1.0, "fraction of active connections dropped per update",
          scale="fraction", label="Drop fraction", url_key="zeta")
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from . import validate

SCALES = ("log", "int", "fraction", "number", "choice", "text", "bool")


@dataclass(frozen=True)
class Hyper:
    name: str                      # the optimizer's argument (and the RunConfig field unless `field`)
    default: Any                   # the RunConfig default
    low: float | None = None       # allowed range, checked everywhere (None: open end)
    high: float | None = None
    help: str = ""
    live: bool = True              # changeable between steps (set() / the app's live controls)
    scale: str = "log"             # app control: log (1-2-5 slider), int, fraction (0-1 slider),
                                   # number (typed), choice, text, bool
    label: str = ""                # app control's label (default: the name)
    url_key: str = ""              # dashboard URL key (default: the field name; "-" = not in the URL)
    field: str = ""                # RunConfig field when it is not `name` (two methods share one)
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None
    text: Any = ""                 # what neither range nor choices say (or a function giving it)
    floor: float | None = None     # a log slider's smallest positive value (when low is 0 or open)
    zero: str = ""                 # in a RunConfig, 0 means this (resolved before the optimizer)
    typ: Any = None                # RunConfig annotation (default: the default's type)
    value: Callable | None = None  # (cfg, lr) -> the optimizer's value (default: the field's)
    idle: Callable | None = None   # cfg -> why this setting has no effect under cfg, or None
    check_fn: Callable | None = None  # an extra check for what a range cannot say

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"Hyper {self.name}: scale must be one of {', '.join(SCALES)}, "
                             f"got {self.scale!r}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"Hyper {self.name}: low {self.low} > high {self.high}")
        if self.scale == "log" and (self.low is None or self.low <= 0) and not (self.floor or 0) > 0:
            raise ValueError(f"Hyper {self.name}: a log scale from {self.low} needs floor > 0 "
                             f"(the slider's smallest positive value)")

    # -- names ----------------------------------------------------------------------------------
    @property
    def key(self) -> str:
        """The RunConfig field (and CLI flag, sweep field) this declaration feeds."""
        return self.field or self.name

    @property
    def url(self) -> str:
        return "" if self.url_key == "-" else (self.url_key or self.key)

    @property
    def title(self) -> str:
        return self.label or self.key

    @property
    def type(self):
        if self.typ is not None:
            return self.typ
        if isinstance(self.default, bool):
            return bool
        return type(self.default)

    @property
    def is_int(self) -> bool:
        return self.type is int

    # -- checks ---------------------------------------------------------------------------------
    def __call__(self, value) -> None:
        """The optimizer's check (`HYPER[name](value)`): the declared range, 0 excluded when
        0 only means something in a RunConfig (`zero`) and lies outside the range."""
        self.check(value, self.name)

    def check(self, value, name: str | None = None, config: bool = False) -> None:
        name = name or self.key
        if config and self.zero and value == 0 and not isinstance(value, bool):
            return
        if self.choices is not None:
            validate.choice(name, value, self.choices)
        elif self.low is not None or self.high is not None:
            if self.is_int:
                validate.integer(name, value, low=self.low, high=self.high)
            else:
                validate.finite(name, value, low=self.low, high=self.high,
                                low_open=self.low_open, high_open=self.high_open)
        if self.check_fn is not None:
            self.check_fn(value)

    def describe(self) -> str:
        """The allowed values in words: '[0, 1]', '(0, 100]', 'a, b, c'."""
        if self.choices is not None:
            return ", ".join(map(str, self.choices))
        if self.text:
            return self.text() if callable(self.text) else self.text
        lo = "(-inf" if self.low is None else ("(" if self.low_open else "[") + f"{self.low:g}"
        hi = "inf)" if self.high is None else f"{self.high:g}" + (")" if self.high_open else "]")
        rng = f"{lo}, {hi}"
        if self.zero and not (self.low is not None and self.low <= 0):
            return f"0 ({self.zero}) or {rng}"
        return rng + (f" (0: {self.zero})" if self.zero else "")

    def resolve(self, cfg, lr: float | None = None):
        """The value the optimizer gets from a run config."""
        if self.value is not None:
            return self.value(cfg, lr)
        return getattr(cfg, self.key)


def declare(*hypers: Hyper) -> dict[str, Hyper]:
    """An optimizer's `HYPER` table: optimizer argument name -> its declaration."""
    out: dict[str, Hyper] = {}
    for h in hypers:
        if h.name in out:
            raise ValueError(f"hyperparameter {h.name} declared twice")
        out[h.name] = h
    return out
