"""Public mode: the limits that let a stranger's browser use the app on a small shared server.

Off by default (local use: everything as before). On with `DEEPR_PUBLIC=1` or `public = true` in
a `[deepr]` section of `.streamlit/config.toml` (Streamlit logs that it does not know the
section's keys; they are ours). Every limit is a named setting with a default that fits a
2-core, 4 GB machine, overridden by `DEEPR_<NAME>` (e.g. DEEPR_MAX_POSITIONS=500000) or a key of
the same name in `[deepr]`. A request over a limit is refused with a message that names the limit
and its value; sizes are checked from the config, before anything is built."""
from __future__ import annotations

import os
import threading
import time
import tomllib
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml"


@dataclass(frozen=True)
class Limit:
    default: float
    what: str        # "<what> is <n>; this server allows at most <limit>"


LIMITS: dict[str, Limit] = {
    "max_positions": Limit(2_000_000, "positions (possible connections) in the model"),
    "max_layer_positions": Limit(1_000_000, "positions in one layer"),
    "max_units": Limit(1024, "units in a hidden layer"),
    "max_layers": Limit(6, "hidden layers"),
    "max_steps_per_second": Limit(400, "steps per second of one run"),
    "max_live_runs": Limit(6, "runs training on this server at once"),
    "max_runs_per_session": Limit(12, "runs one browser starts within an hour"),
    "run_memory_mb": Limit(1536, "MB of memory one run process may add"),
    "park_quota_mb": Limit(2048, "MB of parked runs on disk"),
    "sweep_max_trials": Limit(32, "trials in one sweep"),
    "sweep_max_steps": Limit(3000, "steps per sweep trial"),
    "sweep_max_concurrent": Limit(1, "sweeps running at once"),
}
# fields a visitor never sets in public mode: they touch the server's files or devices
SERVER_FIELDS = ("data_root", "download", "device")
INPUTS = {"digits": 64, "digits-28": 784, "mnist": 784, "mnist10k": 784, "fashion-mnist": 784,
          "cifar10": 3072}   # toy sets: 2 features


@dataclass(frozen=True)
class Settings:
    public: bool
    limits: dict
    sweep_address: str = ""   # the only Ray cluster a public Sweep page uses ("": a local Ray)

    def __getitem__(self, name: str) -> float:
        return self.limits[name]

    def refuse(self, name: str, amount: float) -> ValueError:
        """The message for a request over the limit `name`: what was asked, the limit, its name."""
        value = self.limits[name]
        return ValueError(f"the request has {amount:,.0f} {LIMITS[name].what}; this public demo "
                          f"allows at most {value:,.0f} (limit {name})")


def _truthy(v) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes", "on")


@lru_cache(maxsize=1)
def settings() -> Settings:
    """Read once per server process (settings.cache_clear() after changing them)."""
    section = {}
    if CONFIG.exists():
        section = tomllib.loads(CONFIG.read_text()).get("deepr", {})
    public = _truthy(os.environ.get("DEEPR_PUBLIC", section.get("public", False)))
    limits = {}
    for name, lim in LIMITS.items():
        raw = os.environ.get(f"DEEPR_{name.upper()}", section.get(name, lim.default))
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"setting {name} (DEEPR_{name.upper()} or [deepr] {name}): a number, "
                             f"got {raw!r}") from None
        if not value > 0:
            raise ValueError(f"setting {name}: must be > 0, got {raw!r}")
        limits[name] = value
    address = os.environ.get("DEEPR_SWEEP_ADDRESS", section.get("sweep_address", ""))
    return Settings(public, limits, str(address).strip())


def layer_shapes(cfg) -> list[tuple[int, ...]]:
    """The rewired layers' weight shapes from the config alone (the network is laid out on the
    meta device: no memory, no time)."""
    import torch

    from deepr_engine.run.models import dense_model
    n_in = INPUTS.get(cfg.dataset, 2)
    image = {64: (8, 8), 784: (28, 28), 3072: (32, 32)}.get(n_in)
    with torch.device("meta"):
        model = dense_model(cfg, n_in, 10, image)
    return [tuple(m.weight.shape) for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]


def check_config(cfg, s: Settings | None = None) -> None:
    """Refuse a setup over a public limit (no-op locally), naming the limit."""
    s = s or settings()
    if not s.public:
        return
    for f in SERVER_FIELDS:
        if getattr(cfg, f) != getattr(type(cfg)(), f):
            raise ValueError(f"{f}: set by the server's operator, not by visitors, in a public demo")
    if len(cfg.hidden) > s["max_layers"]:
        raise s.refuse("max_layers", len(cfg.hidden))
    if cfg.hidden and max(cfg.hidden) > s["max_units"]:
        raise s.refuse("max_units", max(cfg.hidden))
    sizes = [int(torch_numel(shape)) for shape in layer_shapes(cfg)]
    if max(sizes) > s["max_layer_positions"]:
        raise s.refuse("max_layer_positions", max(sizes))
    if sum(sizes) > s["max_positions"]:
        raise s.refuse("max_positions", sum(sizes))


def torch_numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def run_options(s: Settings | None = None) -> dict:
    """Keyword arguments for every BackgroundSession the app starts (memory and parking caps
    in public mode; nothing locally)."""
    s = s or settings()
    if not s.public:
        return {}
    return {"memory_mb": s["run_memory_mb"], "memory_name": "run_memory_mb",
            "park_quota_mb": s["park_quota_mb"]}


def speed(max_steps_per_second: float, s: Settings | None = None) -> float:
    """A run's speed limit: 0 (unlimited) and anything faster become the public cap."""
    s = s or settings()
    if not s.public:
        return max_steps_per_second
    cap = s["max_steps_per_second"]
    return cap if max_steps_per_second <= 0 else min(max_steps_per_second, cap)


def check_room(new_runs: int, browser_runs: int, live_runs: int, s: Settings | None = None) -> None:
    """Refuse `new_runs` more processes when the server or this browser (`browser_runs` started
    within the hour, `STARTS`) is at its limit."""
    s = s or settings()
    if not s.public:
        return
    if browser_runs + new_runs > s["max_runs_per_session"]:
        raise BrowserLimit(str(s.refuse("max_runs_per_session", browser_runs + new_runs)))
    if live_runs + new_runs > s["max_live_runs"]:
        raise ServerFull(f"the server is full: {live_runs} runs are training (limit max_live_runs "
                         f"= {s['max_live_runs']:,.0f})")


class StartLog:
    """The runs each browser (`visitor_id`) started within the last `window_s`, kept by the server:
    a reload, another tab or the Compare page does not start a browser's count again (it did
    while the count lived in the Streamlit session), and a browser that waits may start more.
    At most `max_browsers` are kept, the least recently active dropped first (memory stays
    bounded whoever comes)."""

    def __init__(self, window_s: float = 3600.0, max_browsers: int = 10_000):
        self.window_s, self.max_browsers = window_s, max_browsers
        self._times: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def count(self, browser: str, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = [t for t in self._times.get(browser, ()) if now - t < self.window_s]
            if recent:
                self._times[browser] = recent
            else:
                self._times.pop(browser, None)
            return len(recent)

    def add(self, browser: str, n: int = 1, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.setdefault(browser, []).extend([now] * n)
            self._times.move_to_end(browser)
            while len(self._times) > self.max_browsers:
                self._times.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._times.clear()


STARTS = StartLog()   # the server's one log (every Streamlit session of this process shares it)


class ServerFull(ValueError):
    """No room for another training process now (a visitor waits in the queue)."""


class BrowserLimit(ValueError):
    """This browser started its hour's runs (max_runs_per_session); it waits outside the queue."""


XSRF_COOKIE = "_streamlit_xsrf"


def cookie_identity(cookie: str) -> str:
    """A browser's identity from its XSRF cookie (the page's and the feed's requests alike).
    The web server (Tornado's XSRF cookie, version 2: `2|mask|masked token|time`) writes the same
    token under a new random mask on every page load, so the cookie's text changes whenever the
    browser opens another tab: the identity is the unmasked token and its time, not the text."""
    import hashlib
    parts = cookie.split("|")
    if len(parts) == 4 and parts[0] == "2":
        try:
            mask, masked = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
        except ValueError:
            mask = b""
        if mask:
            token = bytes(b ^ mask[i % len(mask)] for i, b in enumerate(masked))
            cookie = f"{token.hex()}|{parts[3]}"
    return hashlib.sha256(cookie.encode()).hexdigest()[:32]


def visitor_id() -> str:
    """Who this browser is, for run ownership: a hash of its XSRF cookie (one per browser,
    shared by its tabs, kept across reloads), else this Streamlit session."""
    import streamlit as st
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    cookie = st.context.cookies.get(XSRF_COOKIE) if st.context.cookies else None
    if cookie:
        return cookie_identity(cookie)
    ctx = get_script_run_ctx()
    return f"session-{ctx.session_id if ctx else 'none'}"
