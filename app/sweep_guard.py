"""The Sweep page in a public demo (app/public.py): what a visitor may ask of a sweep, checked
before anything is expanded or started, and whose sweeps a visitor sees.

- Sizes first, by arithmetic on the fields' text: trials = product of the grid fields' value
  counts x random samples (when a field is random) x seeds, never by expanding the grid; steps
  per trial; sweeps running on this server now. Each refusal names the limit and its value.
- Fields: the server-side ones (data_root, download, device) are never taken from the Sweep
  table; the Ray address is the operator's (setting sweep_address), never a visitor's.
- Owners: the page writes the visitor's id into each sweep folder it starts (owner.txt) and
  lists a visitor's own folders only; messages and logs shown to a visitor carry no server path.
Locally (public mode off) none of this applies."""
from __future__ import annotations

import math
import re
import secrets
import sys
import time
import weakref
from pathlib import Path

from deepr_engine.run import sweep as engine
from deepr_engine.run.config import PRESETS

from . import public

OWNER_FILE = "owner.txt"
_started: "weakref.WeakSet" = weakref.WeakSet()   # the sweep processes this server started


# -- sizes and fields, before anything is expanded -------------------------------------------
def trial_count(space: list[dict], samples: int, seeds: int) -> int:
    """Trials of a search space from the text of its rows: grid value counts multiplied (a field
    given twice: its last row, as the page's arguments take it), x samples when a field is
    random, x seeds. An upper bound of what runs (a setting without effect in a trial is not
    varied there)."""
    grid, rand = {}, False
    for row in space:
        name = str(row.get("field") or "").strip()
        if not name:
            continue
        if (row.get("mode") or "grid") == "grid":
            grid[name] = sum(1 for v in str(row.get("values") or "").split(",") if v.strip())
        else:
            grid.pop(name, None)
            rand = True
    return math.prod(grid.values()) * (int(samples) if rand else 1) * int(seeds)


def check_space(preset_name: str, steps: int, seeds: int, samples: int, space: list[dict],
                typed_address: str = "", s: public.Settings | None = None) -> None:
    """Public mode: refuse a sweep request over a limit or with a field a visitor never sets,
    from the rows' text alone (nothing parsed into values, nothing expanded). ValueError naming
    the limit or the field; a no-op locally."""
    s = s or public.settings()
    if not s.public:
        return
    if str(typed_address or "").strip():
        raise ValueError("Ray cluster address: set by the server's operator (setting "
                         "sweep_address), not by visitors, in a public demo")
    if preset_name not in PRESETS:
        raise ValueError(f"preset: one of {', '.join(PRESETS)}; got {str(preset_name)[:40]!r}")
    allowed = [f for f in engine.sweep_fields() if f not in public.SERVER_FIELDS]
    for row in space:
        name = str(row.get("field") or "").strip()
        if name in public.SERVER_FIELDS:
            raise ValueError(f"{name}: set by the server's operator, not by visitors, in a public "
                             f"demo (the Sweep table cannot vary it)")
        if name and name not in allowed:
            raise ValueError(f"field: one of {', '.join(allowed)}; got {name[:40]!r}")
    for name, value in (("steps", steps), ("seeds", seeds), ("samples", samples)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: a whole number >= 1; got {str(value)[:40]!r}")
    if steps > s["sweep_max_steps"]:
        raise s.refuse("sweep_max_steps", steps)
    n = trial_count(space, samples, seeds)
    if n > s["sweep_max_trials"]:
        raise s.refuse("sweep_max_trials", n)


def check_trials(trials: list, s: public.Settings | None = None) -> None:
    """Public mode: every trial's setup within the run limits (sizes, server fields) and its
    steps within sweep_max_steps (a grid over steps, or a preset that counts epochs, included);
    called on the trials that the size check above let through (a few dozen at most)."""
    s = s or public.settings()
    if not s.public:
        return
    for t in trials:
        cfg = t.config
        if cfg.epochs > 0:
            raise ValueError(f"epochs: a public demo's sweep trains a number of steps (limit "
                             f"sweep_max_steps = {s['sweep_max_steps']:,.0f}); this setup trains "
                             f"{cfg.epochs:g} epochs")
        if cfg.steps > s["sweep_max_steps"]:
            raise s.refuse("sweep_max_steps", cfg.steps)
        public.check_config(cfg, s)


def check_start(s: public.Settings | None = None) -> None:
    """Public mode: room for one more sweep on this server (limit sweep_max_concurrent)."""
    s = s or public.settings()
    if not s.public:
        return
    n = running()
    if n + 1 > s["sweep_max_concurrent"]:
        raise ValueError(f"{n} sweep{'s are' if n != 1 else ' is'} running on this server; this "
                         f"public demo runs at most {s['sweep_max_concurrent']:,.0f} at once "
                         f"(limit sweep_max_concurrent); try again when it ends")


def address(typed: str, s: public.Settings | None = None) -> str:
    """The Ray cluster the sweep joins: the visitor's field locally, the operator's setting in
    public mode."""
    s = s or public.settings()
    return s.sweep_address if s.public else typed


# -- the sweeps this server runs, and whose they are -----------------------------------------
def started(proc) -> None:
    """Count `proc` (anything with `.running`) among this server's sweeps while it runs."""
    _started.add(proc)


def running() -> int:
    return sum(1 for p in list(_started) if p.running)


def new_folder(root: Path, s: public.Settings | None = None) -> Path:
    """The folder for a new sweep, chosen by the server: the time, and in public mode a random
    tail (two visitors in the same second get two folders)."""
    s = s or public.settings()
    name = time.strftime("%Y%m%d-%H%M%S")
    return root / (f"{name}-{secrets.token_hex(3)}" if s.public else name)


def claim(out: Path, visitor: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / OWNER_FILE).write_text(visitor)


def owner(out: Path) -> str:
    try:
        return (out / OWNER_FILE).read_text().strip()
    except OSError:
        return ""


def visible(folders: list[Path], visitor: str, s: public.Settings | None = None) -> list[Path]:
    """The sweep folders a visitor sees: all locally, their own in public mode."""
    s = s or public.settings()
    if not s.public:
        return folders
    return [p for p in folders if visitor and owner(p) == visitor]


def visitor_of_page() -> str:
    """This browser's id (the Dashboard's, when it has one; else public.visitor_id())."""
    import streamlit as st
    d = st.session_state.get("dashboard")
    return (getattr(d, "visitor", "") or "") or public.visitor_id()


# -- what a visitor reads ---------------------------------------------------------------------
_FRAME = re.compile(r'^\s*File ".*", line \d+')


def redact(text: str, out: Path, root: Path) -> str:
    """`text` without this server's paths (the sweep folder becomes its name, the code's and
    Python's folders '...'), and without a traceback's file lines."""
    lines = [ln for ln in text.splitlines() if not _FRAME.match(ln)]
    text = "\n".join(lines)
    for path, shown in sorted(((str(out), out.name), (str(out.parent), "sweeps"), (str(root), "..."),
                               (sys.prefix, "..."), (str(Path.home()), "~")),
                              key=lambda kv: -len(kv[0])):
        if path and path not in ("/", "."):
            text = text.replace(path, shown)
    return text
