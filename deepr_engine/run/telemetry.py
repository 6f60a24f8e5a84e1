"""What a run records for the dashboard, in bounded memory however long it runs.

Series keep the whole history at progressively coarser resolution: when a series is full,
neighbouring points are merged and its stride doubles, so a 1,000,000-step run still has its
start, middle and end, in at most `capacity` points. The rewiring events themselves (which
positions were pruned and revived) are kept for the last EVENT_STEPS records only, in a ring
with sequence numbers that any number of readers read from their own cursors (EventRing).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from . import topology
from .classify import CLASSES, RewiringClassifier

LIFETIME_BINS = 32  # log2 bins: [0,1), [1,2), [2,4), ... up to 2**30 steps
EVENT_STEPS = 256  # rewiring records (steps, live changes of K) kept for readers that lag
EVENT_CAP = 200_000  # events kept in all of them together (the oldest records go first)
SPARSE_LEDGER_ABOVE = 4_000_000  # positions: above this a layer's per-position records are O(K)
EVER_CAP = 5_000_000  # positions remembered as ever active in an O(K) ledger


class DenseLedger:
    """Per position of a layer: the step it became active, and whether it ever was."""

    def __init__(self, n: int, device):
        self.born = torch.zeros(n, dtype=torch.long, device=device)
        self.ever = torch.zeros(n, dtype=torch.bool, device=device)

    def start(self, active: torch.Tensor) -> None:
        self.ever[active] = True

    def born_at(self, positions: torch.Tensor) -> torch.Tensor:
        return self.born[positions]

    def record(self, step: int, pruned: torch.Tensor, activated: torch.Tensor) -> None:
        self.born[activated] = step
        self.ever[activated] = True

    def ever_fraction(self) -> float:
        return float(self.ever.float().mean())

    def tensors(self, i: int) -> dict:
        return {f"ever_active.{i}": self.ever.to(torch.uint8).cpu(), f"born.{i}": self.born.cpu()}

    def load(self, i: int, tensors: dict) -> None:
        # copies: the tensors may be another live run's (a fork), and record() writes in place
        dev = self.born.device
        self.ever = tensors[f"ever_active.{i}"].to(dev).bool().clone()
        self.born = tensors[f"born.{i}"].to(dev).long().clone()


class SparseLedger:
    """The same records in O(K) for layers too large for per-position arrays (sparse compute):
    the birth steps of the active positions as sorted (position, step) pairs, and the positions
    ever active as a sorted set (up to EVER_CAP; beyond it the fraction is reported as NaN)."""

    def __init__(self, n: int, device):
        self.n, self.device = n, device
        self.pos = torch.zeros(0, dtype=torch.long, device=device)
        self.step = torch.zeros(0, dtype=torch.long, device=device)
        self.ever = torch.zeros(0, dtype=torch.long, device=device)
        self.ever_full = False

    def start(self, active: torch.Tensor) -> None:
        self.pos = active.sort().values
        self.step = torch.zeros_like(self.pos)
        self.ever = self.pos.clone()

    def born_at(self, positions: torch.Tensor) -> torch.Tensor:
        if self.pos.numel() == 0:
            return torch.zeros_like(positions)
        i = torch.searchsorted(self.pos, positions).clamp_(max=len(self.pos) - 1)
        return torch.where(self.pos[i] == positions, self.step[i], 0)

    def record(self, step: int, pruned: torch.Tensor, activated: torch.Tensor) -> None:
        if pruned.numel():
            keep = ~torch.isin(self.pos, pruned)
            self.pos, self.step = self.pos[keep], self.step[keep]
        if activated.numel():
            pos = torch.cat([self.pos, activated])
            order = pos.argsort()
            self.pos = pos[order]
            self.step = torch.cat([self.step, torch.full_like(activated, step)])[order]
            if not self.ever_full:
                new = activated[~torch.isin(activated, self.ever)]
                self.ever = torch.cat([self.ever, new]).sort().values
                self.ever_full = len(self.ever) > EVER_CAP
                if self.ever_full:
                    self.ever = self.ever[:0]

    def ever_fraction(self) -> float:
        return float("nan") if self.ever_full else len(self.ever) / self.n

    def tensors(self, i: int) -> dict:
        return {f"born_pos.{i}": self.pos.cpu(), f"born_step.{i}": self.step.cpu(),
                f"ever_pos.{i}": self.ever.cpu(),
                f"ever_full.{i}": torch.tensor([int(self.ever_full)])}

    def load(self, i: int, tensors: dict) -> None:
        self.pos = tensors[f"born_pos.{i}"].to(self.device).long().clone()
        self.step = tensors[f"born_step.{i}"].to(self.device).long().clone()
        self.ever = tensors[f"ever_pos.{i}"].to(self.device).long().clone()
        self.ever_full = bool(tensors[f"ever_full.{i}"][0])


def ledger(n: int, device):
    return (SparseLedger if n > SPARSE_LEDGER_ABOVE else DenseLedger)(n, device)


class Downsampled:
    """(step, value) pairs; value a float or a fixed-length vector. mode 'mean' merges by
    averaging (losses, counts per step), 'last' by keeping the later point (random walks)."""

    def __init__(self, capacity: int = 1024, mode: str = "mean"):
        if capacity < 4 or capacity % 2:
            raise ValueError("capacity must be an even number >= 4")
        self.capacity, self.mode = capacity, mode
        self.stride = 1
        self.steps: list[int] = []
        self.values: list = []
        self._acc = None
        self._n = 0
        self._arrays = None   # (stride, steps, values) returned by the last arrays() call

    def add(self, step: int, value) -> None:
        value = np.asarray(value, dtype=np.float64)
        if self.mode == "mean":
            self._acc = value.copy() if self._n == 0 else self._acc + value
        else:
            self._acc = value
        self._n += 1
        if self._n >= self.stride:
            self._push(step, self._acc / self._n if self.mode == "mean" else self._acc)
            self._acc, self._n = None, 0

    def _push(self, step: int, value) -> None:
        self.steps.append(int(step))
        self.values.append(value)
        if len(self.steps) >= self.capacity:
            if self.mode == "mean":
                self.values = [(a + b) / 2 for a, b in zip(self.values[0::2], self.values[1::2])]
            else:
                self.values = self.values[1::2]
            self.steps = self.steps[1::2]
            self.stride *= 2

    def __len__(self) -> int:
        return len(self.steps)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values). Not to be modified: a view is taken ten times a second, so the
        arrays of the last call are returned again, or extended (into new arrays) by the points
        added since; built anew only after a merge rewrote the history."""
        if not self.values:
            return np.asarray(self.steps, dtype=np.int64), np.zeros((0,))
        cached = self._arrays
        n = len(self.steps)
        if cached is None or cached[0] != self.stride or len(cached[1]) > n:
            steps, values = np.asarray(self.steps, dtype=np.int64), np.stack(self.values)
        else:
            _, old_steps, old_values = cached
            k = len(old_steps)
            if k == n:
                return old_steps, old_values
            steps = np.concatenate([old_steps, np.asarray(self.steps[k:], dtype=np.int64)])
            values = np.concatenate([old_values, np.stack(self.values[k:])])
        self._arrays = (self.stride, steps, values)
        return steps, values

    def to_dict(self) -> dict:
        return {"capacity": self.capacity, "mode": self.mode, "stride": self.stride,
                "steps": self.steps, "values": [np.asarray(v).tolist() for v in self.values],
                "acc": None if self._acc is None else np.asarray(self._acc).tolist(), "n": self._n}

    @classmethod
    def from_dict(cls, d: dict) -> "Downsampled":
        s = cls(int(d["capacity"]), d["mode"])
        s.stride, s.steps, s._n = int(d["stride"]), [int(x) for x in d["steps"]], int(d["n"])
        s.values = [np.asarray(v, dtype=np.float64) for v in d["values"]]
        s._acc = None if d["acc"] is None else np.asarray(d["acc"], dtype=np.float64)
        return s


_NONE = np.zeros(0, dtype=np.int64)


@dataclass
class Events:
    """A reader's share of the rewiring events: per layer `pruned` positions (with `pruned_age`,
    the steps each had been active) and `activated` positions, oldest first; `since` is the
    cursor asked for, `cursor` the one to ask with next time. `complete` is False when events
    after `since` were already dropped from the ring (the reader fell behind, or holds a cursor
    of another run): it then gets what the ring holds and should redraw from a full view."""
    since: int | None
    cursor: int
    complete: bool
    layers: list[dict[str, np.ndarray]]


class EventRing:
    """The rewiring events of the last EVENT_STEPS records (one per step, or per live change of
    K), at most EVENT_CAP events in all. Each record has a sequence number; a reader keeps the
    number of the last record it saw (its cursor) and asks for what came after it, so any number
    of readers see every event and reading changes nothing."""

    def __init__(self, n_layers: int, steps: int = EVENT_STEPS, cap: int = EVENT_CAP, seq: int = 0):
        self.n_layers, self.cap = n_layers, cap
        self.seq = seq                           # the number of the newest record
        self.records: deque = deque(maxlen=steps)  # (seq, step, [(pruned, age, activated)] per layer)
        self.size = 0                            # events held

    @staticmethod
    def _count(layers) -> int:
        return sum(len(r[0]) + len(r[2]) for r in layers)

    def add(self, step: int, layers: list[tuple]) -> None:
        if len(self.records) == self.records.maxlen:
            self.size -= self._count(self.records[0][2])
        self.seq += 1
        self.records.append((self.seq, int(step), layers))
        self.size += self._count(layers)
        while self.size > self.cap and len(self.records) > 1:
            self.size -= self._count(self.records.popleft()[2])

    @property
    def oldest(self) -> int:
        """The sequence number of the oldest record held (seq + 1 when none is)."""
        return self.records[0][0] if self.records else self.seq + 1

    def since(self, cursor: int | None) -> Events:
        """Events of the records after `cursor` (None: every record held)."""
        if cursor is None:
            recs, complete = list(self.records), True
        else:
            cursor = int(cursor)
            complete = self.oldest - 1 <= cursor <= self.seq
            recs = [r for r in self.records if r[0] > cursor] if cursor <= self.seq else list(self.records)
        layers = []
        for i in range(self.n_layers):
            parts = [r[2][i] for r in recs] if recs else []
            cat = lambda k: np.concatenate([p[k] for p in parts]) if parts else _NONE  # noqa: E731
            layers.append({"pruned": cat(0), "pruned_age": cat(1), "activated": cat(2)})
        return Events(cursor, self.seq, complete, layers)

    def steps(self) -> list[int]:
        """The training steps whose events the ring holds, oldest first."""
        return sorted({r[1] for r in self.records})

    def at_step(self, step: int) -> list[dict[str, np.ndarray]] | None:
        """One step's events per layer (a live change of K at that step included): pruned with
        age and theta before / after the step (empty when the method does not report theta),
        activated. None when the ring no longer holds the step."""
        recs = [r[2] for r in self.records if r[1] == step]
        if not recs:
            return None
        keys = ("pruned", "pruned_age", "activated", "theta_before", "theta_after")
        out = []
        for i in range(self.n_layers):
            parts = [rec[i] for rec in recs]
            layer = {}
            for j, k in enumerate(keys):
                arrays = [p[j] for p in parts if len(p) > j and len(p[j])]
                layer[k] = np.concatenate(arrays) if arrays else (_NONE if j < 3 else np.zeros(0, np.float32))
            out.append(layer)
        return out


class Telemetry:
    """Per-step metrics, per-layer rewiring counts, tracked theta walks, lifetimes."""

    SERIES = ("loss", "train_acc", "test_acc", "test_loss")

    def __init__(self, layer_positions: list[int], device, capacity: int = 1024):
        self.capacity = capacity
        self.series = {name: Downsampled(capacity, "mean" if name in ("loss", "train_acc") else "last")
                       for name in self.SERIES}
        n = len(layer_positions)
        self.pruned = Downsampled(capacity)        # vector: one entry per layer
        self.activated = Downsampled(capacity)
        self.active = Downsampled(capacity, "last")
        self.ever_active_frac = Downsampled(capacity, "last")
        self.dead_units = Downsampled(capacity, "last")
        self.ledgers = [ledger(p, device) for p in layer_positions]  # birth steps, ever active
        self.lifetimes = np.zeros((n, LIFETIME_BINS), dtype=np.int64)
        self.tracked_layer = np.zeros(0, dtype=np.int64)
        self.tracked_pos = np.zeros(0, dtype=np.int64)
        self.tracked_theta = Downsampled(capacity, "last")
        self.total_pruned = 0                      # connections pruned since the start (turnover)
        self.changes: deque = deque(maxlen=1000)   # hyperparameter changes (step, name, old, new)
        self.notes: deque = deque(maxlen=200)      # divergence and other messages
        self.events = EventRing(n)                 # the last steps' rewiring events, by sequence
        # every event classified once (classify.py): per-step counts per class and layer
        self.classes = {c: Downsampled(capacity) for c in CLASSES}
        self.classifier = RewiringClassifier(n)
        self.topology = Downsampled(capacity, "last")  # topology.CSV_COLUMNS at each evaluation

    def start(self, layers) -> None:
        for led, layer in zip(self.ledgers, layers):
            led.start(layer.active_idx)

    def track(self, layer_index: np.ndarray, positions: np.ndarray) -> None:
        """Replace the tracked set (its past walks go with it: the series restarts)."""
        self.tracked_layer = np.asarray(layer_index, dtype=np.int64)
        self.tracked_pos = np.asarray(positions, dtype=np.int64)
        self.tracked_theta = Downsampled(self.capacity, "last")

    def record_step(self, step: int, loss: float, acc: float, layers, events) -> None:
        self.series["loss"].add(step, loss)
        self.series["train_acc"].add(step, acc)
        self.record_rewiring(step, layers, events)

    def record_rewiring(self, step: int, layers, events) -> None:
        """Pruned / activated counts, lifetimes, ever-active and tracked walks (also called on
        its own for a live change of K, which rewires without a training step)."""
        pruned, activated, record = [], [], []
        for i, (layer, ev) in enumerate(zip(layers, events)):
            p, a = ev["pruned"], ev["activated"]
            pruned.append(p.numel())
            activated.append(a.numel())
            p_np, a_np, life = _NONE, _NONE, _NONE
            if a.numel():
                a_np = a.cpu().numpy().astype(np.int64, copy=False)
            if p.numel():
                life = (step - self.ledgers[i].born_at(p)).cpu().numpy().astype(np.int64, copy=False)
                p_np = p.cpu().numpy().astype(np.int64, copy=False)
                bins = np.minimum(np.floor(np.log2(np.maximum(life, 1))).astype(np.int64) + (life > 0),
                                  LIFETIME_BINS - 1)
                np.add.at(self.lifetimes[i], bins, 1)
            if a.numel() or p.numel():
                self.ledgers[i].record(step, p, a)
            tb, ta = ev.get("theta_before"), ev.get("theta_after")
            theta = (tb.float().cpu().numpy(), ta.float().cpu().numpy()) if tb is not None and p.numel() else ()
            record.append((p_np, life, a_np, *theta))
        self.events.add(step, record)
        counts = self.classifier.add(step, [r[1] for r in record], activated)
        for c, row in zip(CLASSES, counts):
            self.classes[c].add(step, row)
        self.total_pruned += sum(pruned)
        self.pruned.add(step, pruned)
        self.activated.add(step, activated)
        self.active.add(step, [layer.k for layer in layers])
        if len(self.tracked_pos):
            self.tracked_theta.add(step, self.tracked_values(layers))

    def replay(self, step: int) -> list[dict[str, np.ndarray]] | None:
        """The rewiring events of one recent step (EventRing.at_step)."""
        return self.events.at_step(step)

    def events_since(self, cursor: int | None) -> "Events":
        """The rewiring events after `cursor` (see EventRing.since); changes nothing."""
        return self.events.since(cursor)

    def tracked_values(self, layers) -> np.ndarray:
        out = np.empty(len(self.tracked_pos))
        for i, layer in enumerate(layers):
            sel = np.nonzero(self.tracked_layer == i)[0]
            if len(sel):
                pos = torch.as_tensor(self.tracked_pos[sel], device=layer.active_idx.device)
                out[sel] = layer.theta_at(pos).cpu().numpy()  # O(tracked), also on compact layers
        return out

    def record_eval(self, step: int, test_acc: float, test_loss: float, dead: list[int],
                    layers=None) -> None:
        """Test metrics, dead units, ever-active fractions; with `layers`, the topology row
        (topology.CSV_COLUMNS: O(K) numpy, no graph object)."""
        self.series["test_acc"].add(step, test_acc)
        self.series["test_loss"].add(step, test_loss)
        self.dead_units.add(step, dead)
        self.ever_active_frac.add(step, [led.ever_fraction() for led in self.ledgers])
        if layers is not None:
            self.topology.add(step, topology.csv_row(topology.build(layers)))

    def csv_rows(self) -> list[str]:
        """metrics.csv rows (step,series,value,previous) of the classified counts per step
        (probe[i], death[i], survived[i]) and the topology columns (topology:<column>)."""
        lines = []
        for c in CLASSES:
            steps, vals = self.classes[c].arrays()
            for st, row in zip(steps, vals):
                lines += [f"{st},{c}[{i}],{v:.6g}," for i, v in enumerate(np.atleast_1d(row))]
        steps, vals = self.topology.arrays()
        for st, row in zip(steps, vals):
            lines += [f"{st},topology:{name},{v:.6g}," for name, v in zip(topology.CSV_COLUMNS, row)]
        return lines

    def size_in_points(self) -> int:
        """Everything stored, counted in numbers (for the bounded-memory test)."""
        total = 0
        for s in [*self.series.values(), self.pruned, self.activated, self.active,
                  self.ever_active_frac, self.dead_units, self.tracked_theta,
                  *self.classes.values(), self.topology]:
            total += len(s.steps) + sum(np.size(v) for v in s.values)
        return total + self.lifetimes.size + len(self.changes) * 4 + len(self.notes)

    # -- checkpoints ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"series": {k: v.to_dict() for k, v in self.series.items()},
                "pruned": self.pruned.to_dict(), "activated": self.activated.to_dict(),
                "active": self.active.to_dict(), "ever_active_frac": self.ever_active_frac.to_dict(),
                "dead_units": self.dead_units.to_dict(), "lifetimes": self.lifetimes.tolist(),
                "tracked_layer": self.tracked_layer.tolist(), "tracked_pos": self.tracked_pos.tolist(),
                "tracked_theta": self.tracked_theta.to_dict(), "changes": list(self.changes),
                "total_pruned": self.total_pruned, "event_seq": self.events.seq,
                "notes": list(self.notes), "classes": {c: s.to_dict() for c, s in self.classes.items()},
                "classifier": self.classifier.to_dict(), "topology": self.topology.to_dict()}

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for i, led in enumerate(self.ledgers):
            out |= led.tensors(i)
        return out

    def load(self, d: dict, tensors: dict[str, torch.Tensor]) -> None:
        self.series = {k: Downsampled.from_dict(v) for k, v in d["series"].items()}
        for name in ("pruned", "activated", "active", "ever_active_frac", "dead_units", "tracked_theta"):
            setattr(self, name, Downsampled.from_dict(d[name]))
        self.lifetimes = np.asarray(d["lifetimes"], dtype=np.int64)
        self.tracked_layer = np.asarray(d["tracked_layer"], dtype=np.int64)
        self.tracked_pos = np.asarray(d["tracked_pos"], dtype=np.int64)
        self.changes = deque((tuple(c) for c in d["changes"]), maxlen=1000)
        self.notes = deque(d["notes"], maxlen=200)
        self.total_pruned = int(d.get("total_pruned", 0))
        self.events = EventRing(len(self.ledgers), seq=int(d.get("event_seq", 0)))
        n = len(self.ledgers)
        if "classifier" in d:   # checkpoints from before the classes start them afresh
            self.classes = {c: Downsampled.from_dict(d["classes"][c]) for c in CLASSES}
            self.classifier = RewiringClassifier.from_dict(d["classifier"], n)
            self.topology = Downsampled.from_dict(d["topology"])
        else:
            step = int(self.pruned.steps[-1]) if self.pruned.steps else 0
            self.classes = {c: Downsampled(self.capacity) for c in CLASSES}
            self.classifier = RewiringClassifier(n, start_step=step)
            self.topology = Downsampled(self.capacity, "last")
        for i, led in enumerate(self.ledgers):
            led.load(i, tensors)


def lifetime_bin_edges() -> np.ndarray:
    """Left edges of the lifetime histogram bins, in steps: 0, 1, 2, 4, 8, ..."""
    return np.concatenate([[0], 2.0 ** np.arange(LIFETIME_BINS - 1)])
