"""Where runs wait while no tab shows them: one checkpoint file per parked run in a private
folder, a small record per run (its setup in words, step, accuracy, the tab history it belongs
to), and for a run that is gone, why.

A run parks when its tab shows another run (the tab's history keeps it), when nobody has asked
about it for a while, when its owner is dropped (a closed browser session) and every
`PARK_EVERY_S` while it trains (so a crash loses at most that much). A parked run of an open
tab is touched by the tab and never expires; others expire after `max_age_s()` (default a day,
`DEEPR_PARK_MAX_AGE_S`). Every removal leaves a tombstone that says when and why, so a URL of
a removed run says the true reason, not a guess."""
from __future__ import annotations

import json
import os
import re
import tempfile
import time
import uuid
from pathlib import Path

from .atomic import write_atomic

PARK_EVERY_S = 120.0          # a training run's state reaches disk at least this often
TOMBSTONE_AGE_S = 7 * 86400   # how long "why is it gone" is remembered
BOOT = {"id": uuid.uuid4().hex, "at": time.time()}   # this server process's start
_ID = re.compile(r"[0-9a-f]{32}")


def root() -> Path:
    """The private parking folder (mode 0700): `DEEPR_PARK_DIR`, else one per user under the
    system's temp folder."""
    base = os.environ.get("DEEPR_PARK_DIR") or Path(tempfile.gettempdir()) / f"deepr-studio-{os.getuid()}"
    path = Path(base)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def max_age_s() -> float:
    """How long a parked run nobody touches is kept: DEEPR_PARK_MAX_AGE_S seconds (a day)."""
    text = os.environ.get("DEEPR_PARK_MAX_AGE_S", "86400")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"DEEPR_PARK_MAX_AGE_S must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"DEEPR_PARK_MAX_AGE_S must be > 0 seconds, got {text!r}")
    return value


def valid_id(run_id) -> bool:
    return isinstance(run_id, str) and _ID.fullmatch(run_id) is not None


def checkpoint_path(run_id: str) -> Path:
    return root() / f"{run_id}.safetensors"


def _record_path(run_id: str) -> Path:
    return root() / f"{run_id}.json"


def _tomb_path(run_id: str) -> Path:
    return root() / f"{run_id}.gone.json"


def _write_json(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data))


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


# -- run records ----------------------------------------------------------------------------------
def note(run_id: str, **fields) -> dict:
    """Create or update a run's record (summary, step, test_acc, history, fork...). The record
    says which server started the run, for the 'server restarted' reason."""
    rec = _read_json(_record_path(run_id)) or {"id": run_id, "created": time.time(), "boot": BOOT["id"],
                                               "boot_at": BOOT["at"]}
    rec.update(fields, seen=time.time())
    _write_json(_record_path(run_id), rec)
    return rec


def record(run_id: str) -> dict | None:
    return _read_json(_record_path(run_id)) if valid_id(run_id) else None


def records(run_ids) -> list[dict]:
    return [r for r in map(record, run_ids) if r is not None]


def history_of(run_id: str) -> list[str]:
    """The runs of the tab history this run belongs to (newest first), itself included."""
    rec = record(run_id) or {}
    hist = _read_json(root() / f"history-{rec.get('history', '')}.json") if rec.get("history") else None
    ids = [i for i in (hist or {}).get("runs", []) if valid_id(i)]
    return ids if run_id in ids else [run_id, *ids]


def save_history(history_id: str, run_ids: list[str]) -> None:
    _write_json(root() / f"history-{history_id}.json", {"runs": list(run_ids), "at": time.time()})


def touch(run_ids) -> None:
    """An open tab still holds these runs: their parked files do not expire."""
    now = time.time()
    for rid in run_ids:
        for p in (checkpoint_path(rid), _record_path(rid)):
            try:
                os.utime(p, (now, now))
            except OSError:
                pass


# -- removal and the reason -------------------------------------------------------------------------
def remove(run_id: str, reason: str) -> None:
    """Delete a run's parked state for good and remember why."""
    checkpoint_path(run_id).unlink(missing_ok=True)
    _write_json(_tomb_path(run_id), {"reason": reason, "at": time.time()})


def clean(now: float | None = None, quota_mb: float = 0.0, keep=()) -> list[str]:
    """Expire parked runs nobody touched for max_age_s(); with a quota, remove the least
    recently used parked runs until they fit in `quota_mb`; forget old tombstones and records.
    `keep`: runs training now (their file is their crash recovery), never removed for the quota.
    Returns the removed run ids."""
    now = time.time() if now is None else now
    age, gone = max_age_s(), []
    if quota_mb > 0:
        gone += _fit_quota(quota_mb, now, set(keep))
    for p in root().glob("*.safetensors"):
        try:
            if now - p.stat().st_mtime > age:
                remove(p.stem, f"its parked state expired at {when(now)} (parked runs nobody "
                               f"reopens are kept {age / 3600:g} h)")
                gone.append(p.stem)
        except OSError:
            pass
    for p in root().glob("*.json"):   # records, tombstones, histories
        try:
            if now - p.stat().st_mtime > TOMBSTONE_AGE_S + age:
                p.unlink()
        except OSError:
            pass
    return gone


def _fit_quota(quota_mb: float, now: float, keep: set) -> list[str]:
    files = []
    for p in root().glob("*.safetensors"):
        try:
            st = p.stat()
            files.append((st.st_mtime, st.st_size, p.stem))
        except OSError:
            pass
    total, gone = sum(f[1] for f in files), []
    for _, size, rid in sorted(files):   # least recently used first
        if total <= quota_mb * 2**20:
            break
        if rid in keep:
            continue
        remove(rid, f"it was removed at {when(now)} to keep parked runs within the server's "
                    f"quota (limit park_quota_mb = {quota_mb:,.0f} MB)")
        total -= size
        gone.append(rid)
    return gone


def gone_reason(run_id: str) -> str:
    """Why a run can no longer be opened, as precisely as the records allow."""
    tomb = _read_json(_tomb_path(run_id)) if valid_id(run_id) else None
    if tomb:
        return tomb["reason"]
    rec = record(run_id)
    if rec and rec.get("boot") != BOOT["id"]:
        return (f"the server restarted (at {when(BOOT['at'])}) and the run had not been parked "
                "since it last trained")
    if rec:
        return "its training process ended without leaving a parked state"
    return "no run with this id was made on this server (or its records were removed)"
