"""Typed, detached views of a run for drawing: one for a layer, one for the telemetry, one for
the whole run. Built by `run_view()` only; `TrainingSession.snapshot()` and the frames the
training process sends (background.py) are both such views. Plain numpy and numbers, so a view
crosses a process pipe cheaply and never aliases the run's tensors."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..sparse import model_memory

from .classify import CLASSES
from .config import RunConfig
from .topology import CSV_COLUMNS


@dataclass
class Series:
    """(step, value) points; value a float or a per-layer vector."""
    steps: np.ndarray
    values: np.ndarray

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self.steps, self.values


@dataclass
class LayerView:
    index: int
    shape: tuple
    k: int
    n_positions: int
    active_pos: np.ndarray        # flat positions of the active connections, sorted
    active_weight: np.ndarray     # their weights (sign * theta)
    active_theta: np.ndarray      # their theta
    pruned: np.ndarray            # flat positions pruned after the view's events cursor
    pruned_age: np.ndarray        # steps each of those had been active
    activated: np.ndarray         # flat positions revived after the view's events cursor
    theta: np.ndarray | None = None  # full-size theta and sign: only in a full view
    sign: np.ndarray | None = None

    @property
    def connectivity(self) -> float:
        return self.k / self.n_positions

    def active_mask(self) -> np.ndarray:
        """Weight-shaped booleans."""
        mask = np.zeros(self.n_positions, dtype=bool)
        mask[self.active_pos] = True
        return mask.reshape(self.shape)

    def weight(self) -> np.ndarray:
        """Weight-shaped effective weights (0 where dormant)."""
        w = np.zeros(self.n_positions, dtype=self.active_weight.dtype)
        w[self.active_pos] = self.active_weight
        return w.reshape(self.shape)


@dataclass
class TelemetryView:
    series: dict[str, Series]     # loss, train_acc, test_acc, test_loss
    pruned: Series                # per-layer counts per step
    activated: Series
    active: Series
    ever_active_frac: Series
    dead_units: Series
    tracked_theta: Series
    tracked_layer: np.ndarray
    tracked_pos: np.ndarray
    lifetimes: np.ndarray         # per layer, log2 bins (telemetry.LIFETIME_BINS)
    changes: list[tuple]          # (step, field, old, new)
    notes: list[tuple]
    total_pruned: int
    # every rewiring event classified once (classify.py), per layer: counts per step (mean over
    # each point's span; x100 for per 100 steps), totals since the start, and exact rates per
    # 100 steps over the last `class_window` steps (classify.RATE_STEPS, fewer at the start)
    probes: Series | None = None
    deaths: Series | None = None
    survived: Series | None = None
    class_totals: dict[str, np.ndarray] = field(default_factory=dict)
    class_rates: dict[str, np.ndarray] = field(default_factory=dict)
    class_window: int = 0
    topology: Series | None = None           # one row of topology_columns per evaluation
    topology_columns: tuple[str, ...] = CSV_COLUMNS

    def classes(self) -> dict[str, Series]:
        """{"probe", "death", "survived"} -> per-step counts (they share their steps)."""
        return dict(zip(CLASSES, (self.probes, self.deaths, self.survived)))


@dataclass
class RunView:
    step: int
    epoch: int
    config: RunConfig             # the current settings (live changes included)
    hyperparams: dict
    metrics: dict
    paused_reason: str | None
    layers: list[LayerView]
    telemetry: TelemetryView
    steps_per_second: float = 0.0  # wall clock (the owner of the run measures it)
    train_seconds: float = 0.0
    playing: bool = False
    model_bytes: int = 0          # the model's parameters, gradients and buffers
    process_rss: int = 0          # resident memory of the process that trains (0: unknown)
    events_since: int | None = None  # the cursor the layers' events follow (None: all held)
    events_cursor: int = 0        # the newest record's number: the cursor to read from next
    events_complete: bool = True  # False: some events after events_since were already dropped
    extra: dict = field(default_factory=dict)


def _series(s) -> Series:
    steps, values = s.arrays()
    return Series(steps, values)


def telemetry_view(tel) -> TelemetryView:
    return TelemetryView(
        series={k: _series(v) for k, v in tel.series.items()},
        pruned=_series(tel.pruned), activated=_series(tel.activated), active=_series(tel.active),
        ever_active_frac=_series(tel.ever_active_frac), dead_units=_series(tel.dead_units),
        tracked_theta=_series(tel.tracked_theta), tracked_layer=tel.tracked_layer.copy(),
        tracked_pos=tel.tracked_pos.copy(), lifetimes=tel.lifetimes.copy(),
        changes=list(tel.changes), notes=list(tel.notes), total_pruned=tel.total_pruned,
        probes=_series(tel.classes["probe"]), deaths=_series(tel.classes["death"]),
        survived=_series(tel.classes["survived"]),
        class_totals=dict(zip(CLASSES, tel.classifier.totals.copy())),
        class_rates=dict(zip(CLASSES, tel.classifier.rates())), class_window=tel.classifier.window(),
        topology=_series(tel.topology))


def _rss() -> int:
    """Resident set size of this process in bytes (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _compact_events(ev: dict, n_positions: int) -> dict:
    """Rewiring events as int32 where positions fit (a frame crosses a pipe ten times a second;
    a churning layer has thousands of events per frame)."""
    if n_positions >= 2**31:
        return ev
    return {k: np.minimum(v, 2**31 - 1).astype(np.int32) if k == "pruned_age" else v.astype(np.int32)
            for k, v in ev.items()}


def run_view(session, *, full: bool = False, playing: bool = False,
             steps_per_second: float | None = None, since: int | None = None,
             events: bool = True) -> RunView:
    """The run now. Compact by default: per layer only the active connections; full=True adds
    full-size theta and sign (the posterior and weight views need them). The layers carry the
    rewiring events after the cursor `since` (None: every event the telemetry still holds;
    events=False: none); `events_cursor` is the cursor for the reader's next view. Reading
    changes nothing, so any number of readers each see every event (telemetry.EventRing)."""
    tel = session.telemetry
    ev_all = tel.events_since(since if events else tel.events.seq)  # the newest: nothing after it
    layers = []
    for i, (layer, ev) in enumerate(zip(session.layers, ev_all.layers)):
        # O(K) from the active slots (weight = sign * theta there), so compact layers too
        idx, order = layer.active_idx.sort()
        theta_a, sign_a = (t.detach().index_select(0, order) for t in layer.gather_active())
        lv = LayerView(index=i, shape=layer.weight_shape, k=layer.k,
                       n_positions=layer.n_positions, active_pos=idx.cpu().numpy(),
                       active_weight=(sign_a * theta_a).cpu().numpy(),
                       active_theta=theta_a.cpu().numpy(), **_compact_events(ev, layer.n_positions))
        if full:  # full-size: O(all positions); a compact layer's dormant theta is NaN
            lv.theta = layer.full_theta().detach().cpu().numpy().reshape(lv.shape).copy()
            lv.sign = layer.full_sign().cpu().numpy().astype(np.int8)
        layers.append(lv)
    return RunView(step=session.step_count, epoch=session.batcher.epoch, config=session.config,
                   hyperparams=session.hyperparams(), metrics=dict(session.last),
                   paused_reason=session.paused_reason, layers=layers,
                   telemetry=telemetry_view(session.telemetry),
                   steps_per_second=session.steps_per_second if steps_per_second is None
                   else steps_per_second, train_seconds=session.train_seconds, playing=playing,
                   model_bytes=model_memory(session.model)["total"], process_rss=_rss(),
                   events_since=ev_all.since, events_cursor=ev_all.cursor, events_complete=ev_all.complete)
