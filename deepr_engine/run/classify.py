"""Every rewiring event classified once: a brief probe, the death of an established connection,
or a revival that survived. The one place of the probe rule (the app's palette and charts
import it from here).

- probe: a pruned connection that had been active fewer than PROBE_STEPS steps (revived at
  theta 0 and pruned again near 0); counted at its prune.
- death: a pruned connection that had been active PROBE_STEPS steps or more; counted at its prune.
- survived: a revival still active PROBE_STEPS steps later; counted at step born + PROBE_STEPS,
  so each class is final when it is reported (a revival is a probe or a survivor, never both).

The lifetime rule applies to every prune, so a connection of the initial mask pruned within
its first PROBE_STEPS steps also counts as a probe.
"""
from __future__ import annotations

from collections import deque

import numpy as np

PROBE_STEPS = 20   # a pruned connection that had been active fewer steps was a brief probe
CLASSES = ("probe", "death", "survived")   # stacking order of the charts
RATE_STEPS = 100   # the recent rates cover this many steps (rates are per 100 steps)


def is_probe(age) -> np.ndarray:
    """Which pruned connections were brief probes, from their lifetimes in steps (-1: unknown)."""
    age = np.asarray(age)
    return (age >= 0) & (age < PROBE_STEPS)


def split_pruned(age) -> tuple[np.ndarray, np.ndarray]:
    """(probe, death) masks over pruned connections' lifetimes; an unknown lifetime (-1) is neither."""
    age = np.asarray(age)
    return is_probe(age), age >= PROBE_STEPS


class RewiringClassifier:
    """Counts per class and layer, record by record (one record per step, or per live change
    of K). `add` returns the record's counts as an int array (len(CLASSES), n_layers).

    Survivors need the revivals of the last PROBE_STEPS steps: per birth step, the revivals and
    the probes among them pruned since (`pending`); a birth step is settled once the run is
    PROBE_STEPS steps past it. O(PROBE_STEPS * layers) memory, O(events) work."""

    def __init__(self, n_layers: int, probe_steps: int = PROBE_STEPS, start_step: int = 0):
        self.n_layers, self.probe_steps = n_layers, int(probe_steps)
        self.pending: dict[int, np.ndarray] = {}   # birth step -> [revivals, probes] per layer
        self.totals = np.zeros((len(CLASSES), n_layers), dtype=np.int64)
        self.recent: deque = deque()                # (step, counts) of the last RATE_STEPS steps
        self.start_step = int(start_step)
        self.step = int(start_step)

    def add(self, step: int, pruned_age: list[np.ndarray], activated: list[int]) -> np.ndarray:
        """One record: per layer the lifetimes of the pruned connections (in steps) and the
        number revived at `step`."""
        step = int(step)
        out = np.zeros((len(CLASSES), self.n_layers), dtype=np.int64)
        for i, age in enumerate(pruned_age):
            age = np.asarray(age, dtype=np.int64)
            if not len(age):
                continue
            probe, death = (age >= 0) & (age < self.probe_steps), age >= self.probe_steps
            out[0, i], out[1, i] = int(probe.sum()), int(death.sum())
            if out[0, i]:   # the probes' birth steps: those revivals did not survive
                born, n = np.unique(step - age[probe], return_counts=True)
                for b, c in zip(born.tolist(), n.tolist()):
                    if b in self.pending:
                        self.pending[b][1, i] += c
        if any(activated):
            entry = self.pending.setdefault(step, np.zeros((2, self.n_layers), dtype=np.int64))
            entry[0] += np.asarray(activated, dtype=np.int64)
        for b in [b for b in self.pending if b + self.probe_steps <= step]:
            revived, probes = self.pending.pop(b)
            out[2] += np.maximum(revived - probes, 0)
        self.totals += out
        self.step = max(self.step, step)
        self.recent.append((step, out))
        while self.recent and self.recent[0][0] <= self.step - RATE_STEPS:
            self.recent.popleft()
        return out

    def window(self) -> int:
        """Steps the recent rates cover: RATE_STEPS, fewer at the start of a run."""
        return max(0, min(RATE_STEPS, self.step - self.start_step))

    def rates(self) -> np.ndarray:
        """Counts per 100 steps over the last `window()` steps, (len(CLASSES), n_layers) floats."""
        n = self.window()
        if n == 0 or not self.recent:
            return np.zeros((len(CLASSES), self.n_layers))
        total = np.sum([c for _, c in self.recent], axis=0)
        return total * (100.0 / n)

    def to_dict(self) -> dict:
        return {"probe_steps": self.probe_steps, "totals": self.totals.tolist(),
                "pending": [[b, v.tolist()] for b, v in self.pending.items()],
                "recent": [[s, c.tolist()] for s, c in self.recent],
                "start_step": self.start_step, "step": self.step}

    @classmethod
    def from_dict(cls, d: dict, n_layers: int) -> "RewiringClassifier":
        c = cls(n_layers, int(d["probe_steps"]), int(d["start_step"]))
        c.totals = np.asarray(d["totals"], dtype=np.int64).reshape(len(CLASSES), n_layers)
        c.pending = {int(b): np.asarray(v, dtype=np.int64) for b, v in d["pending"]}
        c.recent = deque((int(s), np.asarray(v, dtype=np.int64)) for s, v in d["recent"])
        c.step = int(d["step"])
        return c
