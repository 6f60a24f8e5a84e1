"""A tab's runs are a history, not a slot: starting a new setup parks the run on screen (its
process ends, its state waits in deepr_engine.run.parking) and the Runs list reopens it at its
step. The history has an id kept in every run's record, so a closed tab reopened on one of its
run URLs finds the others again. Only the run on screen holds a process."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from deepr_engine.run import parking

TOUCH_EVERY_S = 60.0   # an open tab tells the parking lot it still holds its runs this often
SHOWN = 12             # runs listed in the sidebar (older ones stay reopenable by URL)


@dataclass
class RunHistory:
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    runs: list[str] = field(default_factory=list)   # newest first; the run on screen included
    touched: float = 0.0

    def add(self, run_id: str, record: bool = True, **fields) -> None:
        """The run now on screen: first in the list, its record saying which history holds it
        (record=False: someone else's run, listed here only)."""
        if record:
            parking.note(run_id, history=self.id, **fields)
        self.runs = [run_id, *(r for r in self.runs if r != run_id)]
        parking.save_history(self.id, self.runs)

    def note(self, run_id: str, **record) -> None:
        """Update what the list shows of a run (its step and accuracy when it was parked)."""
        parking.note(run_id, **record)

    def adopt(self, run_id: str) -> None:
        """A tab opened on a run's URL takes over that run's history (a reopened tab)."""
        rec = parking.record(run_id) or {}
        self.id = rec.get("history") or self.id
        self.runs = parking.history_of(run_id)

    def entries(self, current: str) -> list[dict]:
        """Records of the listed runs, newest first; a parked run that is gone says why (every
        run but the one on screen has a parking file while it can be reopened)."""
        out = []
        for rid in self.runs[:SHOWN]:
            rec = parking.record(rid) or {"id": rid, "summary": "(no record)"}
            gone = rid != current and not parking.checkpoint_path(rid).exists()
            out.append({**rec, "id": rid, "gone": parking.gone_reason(rid) if gone else ""})
        return out

    def touch(self, force: bool = False) -> None:
        """Keep this tab's parked runs from expiring (called by the page while it is open)."""
        now = time.monotonic()
        if force or now - self.touched > TOUCH_EVERY_S:
            parking.touch(self.runs)
            self.touched = now


def age(seconds: float) -> str:
    """'12 s', '5 min', '3 h' ago."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
