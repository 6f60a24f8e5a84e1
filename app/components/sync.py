"""The live views' sync protocol, Python side (common.js has the page's side): sequence
numbers, full and delta messages, and how a page that lost a message gets the whole state
again. Shared by the graph and the curves and by both ways frames reach the page.

- Every message has a sequence number `seq`; a delta names the one it applies to (`base`) and
  is sent chained with the recent deltas the page has not confirmed, so a message that arrives
  late or twice costs nothing; the page applies the deltas it lacks.
- The feed (feed.py, HTTP): each request names the `seq` the page holds; anything but the last
  one sent (a lost response, a new canvas) gets a full message, so does a new run, a step that
  went back, or a view whose rewiring events do not follow the last ones sent.
- Streamlit reruns (pages without the feed: AppTest, the compare page, the demo pages): the
  page's component state (`report`) says what it applied and, after a gap, asks for a full
  message (`resync`). Pace "pull": the report is also the request for the next frame (at most
  IN_FLIGHT frames wait for the page's confirmation); "timer": the caller's fragment run_every
  drives the frames (the page only reports; nothing new is sent while MAX_BEHIND frames wait);
  "follow": another view in the same fragment paces, this one takes a delta on every call.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import streamlit as st

from .wire import check_choice, pack

CHAIN = 2          # deltas repeated in one message (two arriving together render once)
IN_FLIGHT = 2      # pull pace: frames sent ahead of the page's confirmation
MAX_BEHIND = 3     # timer pace: frames in flight before a call sends nothing new
MIN_TICK = 0.1     # s: the page asks at most this often (pull pace)
KEEPALIVE = 2.0    # s: run_every in pull pace (only restarts a chain that broke)
PACES = ("pull", "timer", "follow")

# what a new full message keeps from the last state of the same key (the page's history)
_CARRIED = ("seq", "reports", "resync_done", "last_report_ms", "sent_at", "counts")


@dataclass
class Sent:
    """What one view's page was sent (a component key, or a feed channel); subclasses add
    what the page holds."""
    sig: tuple
    seq: int = 0
    step: int = 0
    sent_at: deque = field(default_factory=lambda: deque(maxlen=64))   # (monotonic, seq)
    reports: deque = field(default_factory=lambda: deque(maxlen=32))   # (monotonic, report)
    resync_done: int = -1
    last_report_ms: float = -1.0
    last_full_seq: int = 0
    payload: tuple = ({}, {})   # the last message's header and arrays (sent again while waiting)
    chain: deque = field(default_factory=lambda: deque(maxlen=CHAIN))  # (seq, entry, arrays)
    last_bytes: int = 0
    last_kind: str = ""
    counts: dict = field(default_factory=lambda: {"full": 0, "delta": 0, "same": 0, "rewrites": 0})


Full = Callable[[Sent], tuple[dict, dict]]            # -> (header, arrays), sent updated
Delta = Callable[[Sent], "tuple[dict, dict] | None"]  # -> (entry, arrays), None: nothing new


def chained(deltas: list) -> tuple[dict, dict]:
    """Deltas (seq, entry, arrays) in one message, oldest first; each entry's arrays under its
    own prefix."""
    header, arrays = {"kind": "delta", "deltas": []}, {}
    for j, (seq, entry, arr) in enumerate(deltas):
        header["deltas"].append({**entry, "seq": seq, "p": f"d{j}_"})
        arrays.update({f"d{j}_{k}": v for k, v in arr.items()})
    return header, arrays


def _sent_one(sent: Sent, header: dict, arrays: dict, step: int, extra: dict) -> bytes:
    msg = pack({**header, **extra, "seq": sent.seq, "step": step}, arrays)
    sent.last_bytes, sent.last_kind = len(msg), header["kind"]
    return msg


# -- the feed ----------------------------------------------------------------------------------
def feed_message(holder, sig: tuple, step: int, have: int, new: Callable[..., Sent],
                 full: Full, delta: Delta, extra: dict | None = None, follows: bool = True) -> bytes:
    """A feed channel's next message; `holder.sent` is what the page was sent. Full when the
    page holds anything but the last message (`have`), for a new signature, a step that went
    back, or when the view does not follow the last one (`follows`: its events)."""
    extra = extra or {}
    sent = holder.sent
    if sent is None or have != sent.seq or sent.sig != sig or step < sent.step or not follows:
        sent = holder.sent = new(sig, seq=sent.seq if sent is not None else 0)
        header, arrays = full(sent)
    else:
        got = delta(sent)
        if got is None:
            sent.counts["same"] += 1
            return pack({"kind": "same", "seq": sent.seq, "step": step}, {})
        entry, arrays = got
        header, arrays = chained([(sent.seq + 1, {**entry, "base": sent.seq}, arrays)])
    sent.seq += 1
    sent.step = step
    sent.counts[header["kind"]] += 1
    return _sent_one(sent, header, arrays, step, extra)


# -- Streamlit reruns ----------------------------------------------------------------------------
def read_report(key: str) -> dict | None:
    """The page's last report (its component state), readable before the component is mounted
    in this run."""
    try:
        state = st.session_state[key]
    except (KeyError, AttributeError):
        return None
    rep = state.get("report") if hasattr(state, "get") else None
    return rep if isinstance(rep, dict) else None


def take_report(sent: Sent, rep: dict | None) -> tuple[bool, bool]:
    """Record the page's report: (it is new, the page asked for the whole state again)."""
    if not rep or rep.get("ms") == sent.last_report_ms:
        return False, False
    sent.last_report_ms = rep.get("ms")
    sent.reports.append((time.monotonic(), rep))
    resync = rep.get("resync")
    # a page that missed a frame asks once per frame it could not apply; a full message sent
    # after the one it names already answers it
    if resync is not None and resync > sent.resync_done and resync >= sent.last_full_seq:
        sent.resync_done = int(resync)
        return True, True
    return True, False


def behind(sent: Sent) -> int:
    """Frames sent that the page had not drawn when it last reported (those sent after the
    report left the page are counted as seen)."""
    if not sent.reports:
        return 0
    when, rep = sent.reports[-1]
    sent_by_then = max((q for t, q in sent.sent_at if t <= when), default=sent.seq)
    return max(0, sent_by_then - int(rep.get("seq", 0)))


def confirmed(sent: Sent) -> int:
    return int(sent.reports[-1][1].get("seq", -1)) if sent.reports else -1


def waiting(sent: Sent, pace: str) -> bool:
    """Whether this call should send nothing new: pull, IN_FLIGHT frames wait for the page's
    confirmation; timer, frames pile up in the page; follow, never."""
    if pace == "pull":
        return not sent.reports or confirmed(sent) <= sent.seq - IN_FLIGHT
    return pace == "timer" and behind(sent) > MAX_BEHIND


def browser_fps(sent: Sent | None, window: float = 5.0) -> float | None:
    """Frames per second the page applied, from its last reports (its own clock)."""
    if sent is None or len(sent.reports) < 2:
        return None
    now = sent.reports[-1][0]
    recent = [r for t, r in sent.reports if now - t <= window]
    if len(recent) < 2:
        recent = [r for _, r in list(sent.reports)[-2:]]
    a, b = recent[0], recent[-1]
    dt = (b["ms"] - a["ms"]) / 1e3
    return (b["applied"] - a["applied"]) / dt if dt > 0 else None


def run_every(playing: bool = True, pace: str = "pull") -> float | None:
    """The run_every (s) for the fragment that draws the view: None when paused; KEEPALIVE when
    the page asks for frames itself (pull, follow); MIN_TICK in timer pace."""
    check_choice("pace", pace, PACES)
    if not playing:
        return None
    return MIN_TICK if pace == "timer" else KEEPALIVE


def rerun_message(store: dict, key: str, sig: tuple, step: int, playing: bool, pace: str,
                  new: Callable[..., Sent], full: Full, delta: Delta, extra: dict) -> tuple[bytes, Sent, str]:
    """The message for the component `key` on this rerun: full for a new key or signature, a
    step that went back or the page's resync request; nothing new (the last message again)
    while the page is behind (`waiting`) or nothing changed; else the delta, chained with the
    ones the page has not confirmed. Returns (message, sent, kind: "full", "delta" or "same")."""
    check_choice("pace", pace, PACES)
    sent: Sent | None = store.get(key)
    resync = sent is not None and take_report(sent, read_report(key))[1]
    if sent is None or sent.sig != sig or resync or step < sent.step:
        old = sent
        sent = store[key] = new(sig)
        if old is not None:  # the page's history goes on (sequence numbers, reports)
            for name in _CARRIED:
                setattr(sent, name, getattr(old, name))
        header, arrays = full(sent)
        sent.last_full_seq = sent.seq + 1
        sent.chain.clear()
    elif playing and waiting(sent, pace):  # paused, every rerun is the user's: always send
        header = None
    else:
        got = delta(sent)
        header = None
        if got is not None:
            entry, arrays = got
            sent.chain.append((sent.seq + 1, {**entry, "base": sent.seq}, arrays))
            seen = confirmed(sent)
            header, arrays = chained([d for d in sent.chain if d[0] > seen])
    if header is None:
        sent.counts["same"] += 1
        header, arrays = sent.payload
        return pack({**header, **extra, "seq": sent.seq, "step": sent.step}, arrays), sent, "same"
    sent.seq += 1
    sent.step = step
    sent.sent_at.append((time.monotonic(), sent.seq))
    sent.counts[header["kind"]] += 1
    sent.payload = (header, arrays)
    return _sent_one(sent, header, arrays, step, extra), sent, header["kind"]
