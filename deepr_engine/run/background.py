"""BackgroundSession: a TrainingSession in its own process, steered over a pipe.

A web server that trains in a thread shares one interpreter lock with its drawing, so training
slows to a crawl while a page is live. Here the session lives in a child process (one per run):
it steps while playing and answers requests between chunks of `steps_per_frame` steps.

Lifetime: every request counts as a heartbeat. A child that hears nothing for `idle_timeout`
seconds (its browser tab is gone, or hidden and throttled) writes its state to a parking
checkpoint and exits; the next request from the owner starts a new child from that checkpoint,
so nothing is lost. Closing the owner (or its garbage collection, or the owner's process
dying) ends the child at once. The pipe carries only our own messages; user files are never
unpickled (checkpoints are safetensors, see checkpoint.py).
"""
from __future__ import annotations

import multiprocessing as mp
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import memory_cap, parking
from .config import RunConfig
from .views import RunView, run_view

MAX_RESTARTS = 20    # a run whose park cannot come back stops being restarted
_ERRORS = {"ValueError": ValueError, "FileNotFoundError": FileNotFoundError}


@dataclass
class RunInfo:
    """What does not change during a run (sent once when the child is ready)."""
    config: RunConfig
    n_features: int
    n_classes: int
    image_shape: tuple | None
    is_2d: bool
    device: str
    points: tuple | None         # (x, y) training points of 2-D data, for the decision boundary


# -- the child ----------------------------------------------------------------------------------
class _WallRate:
    """Steps per second of wall-clock time, measured by the training loop between chunks at
    least 0.05 s apart (what a viewer sees, requests, pauses and speed limits included),
    smoothed; frames only read it."""

    def __init__(self):
        self.t, self.step, self.rate = time.monotonic(), 0, 0.0

    def update(self, step: int, playing: bool) -> float:
        now = time.monotonic()
        if not playing:
            self.rate = 0.0
        elif now - self.t > 0.05:
            r = (step - self.step) / (now - self.t)
            self.rate = r if self.rate == 0 else 0.7 * self.rate + 0.3 * r
        else:
            return self.rate
        self.t, self.step = now, step
        return self.rate


def _info(session) -> RunInfo:
    d = session.data
    points = (d.x_train.cpu().numpy(), d.y_train.cpu().numpy()) if d.is_2d else None
    return RunInfo(config=session.config, n_features=d.n_features, n_classes=d.n_classes,
                   image_shape=d.image_shape, is_2d=d.is_2d, device=session.device.type, points=points)


def _serve(conn, source, options: dict) -> None:
    """Child main loop: build the session, then alternate between requests and steps."""
    import torch

    from . import checkpoint
    from .session import TrainingSession

    torch.set_num_threads(options["threads"])
    if options.get("memory_mb") and not torch.cuda.is_available():   # CUDA maps huge address ranges
        memory_cap.limit(options["memory_mb"])
    try:
        session = checkpoint.load(source) if isinstance(source, bytes) else TrainingSession(source)
    except Exception as exc:  # reported to the owner, who raises it
        if memory_cap.out_of_memory(exc):
            exc = ValueError(memory_cap.message(options, "building it"))
        conn.send(("error", type(exc).__name__, str(exc)))
        return
    conn.send(("ok", _info(session)))
    spf, max_rate = options["steps_per_frame"], options["max_steps_per_second"]
    playing, last_seen, idle = False, time.monotonic(), options["idle_timeout"]
    until = None  # playing stops at this step

    wall = _WallRate()
    wall.step = session.step_count
    parked_at = time.monotonic()   # training parks every PARK_EVERY_S: a crash loses at most that

    def handle(op, args, kw):
        nonlocal playing, spf, max_rate, until
        if op == "frame":  # a read: any number of tabs may ask (the rate is kept by the loop)
            return run_view(session, playing=playing, steps_per_second=wall.rate if playing else 0.0,
                            since=kw.get("since"), events=kw.get("events", True))
        if op == "snapshot":
            return session.snapshot(*args, **kw)
        if op == "play":
            if not playing:  # the rate is measured from here
                wall.update(session.step_count, False)
            until = kw.get("until")
            playing = session.paused_reason is None and (until is None or session.step_count < until)
            return playing
        if op == "pause":
            playing = False
            wall.update(session.step_count, False)
            return None
        if op == "speed":
            spf, max_rate = int(kw["steps_per_frame"]), float(kw["max_steps_per_second"])
            return None
        if op == "checkpoint":
            return checkpoint.to_bytes(session)
        if op == "fork":   # the fork's state as checkpoint bytes (it records the fork point)
            return checkpoint.to_bytes(session.fork(**kw))
        if op in ("step", "set_hyperparams", "resume", "track", "track_default", "predict_grid", "unit_maps", "replay",
                  "metrics_csv", "hyperparams", "evaluate"):
            return getattr(session, op)(*args, **kw)
        raise ValueError(f"unknown request {op!r}")

    while True:
        if conn.poll(0 if playing else 0.5):
            try:
                op, args, kw = conn.recv()
            except (EOFError, OSError):
                return  # the owner is gone
            last_seen = time.monotonic()
            if op == "close":
                if kw.get("park"):  # the owner was dropped, not closed: keep the run
                    checkpoint.save(session, options["park_path"])
                return
            try:
                conn.send(("ok", handle(op, args, kw)))
            except Exception as exc:
                conn.send(("error", type(exc).__name__, str(exc)))
            continue
        if time.monotonic() - last_seen > idle:  # nobody is watching: park and exit
            checkpoint.save(session, options["park_path"])
            return
        if playing and time.monotonic() - parked_at > options["park_every_s"]:
            checkpoint.save(session, options["park_path"])
            parked_at = time.monotonic()
        if playing:
            t0 = time.perf_counter()
            want = spf if until is None else min(spf, until - session.step_count)
            try:
                n = session.step(want)
            except Exception as exc:
                if not memory_cap.out_of_memory(exc):
                    raise
                session.paused_reason = memory_cap.message(options, f"step {session.step_count + 1}")
                n = 0
            wall.update(session.step_count, True)
            if n < want or session.paused_reason or (until is not None and session.step_count >= until):
                playing = False
            elif max_rate > 0:
                time.sleep(max(0.0, n / max_rate - (time.perf_counter() - t0)))


def _context():
    """forkserver: children start from a server that already imported torch and the engine
    (fast), and never from a copy of the multi-threaded web server (safe)."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    # also what a session imports lazily on its first build (torch's optimizers pull in
    # torch._dynamo, the digits data sklearn): about 5 s that every run process paid again
    ctx.set_forkserver_preload(["deepr_engine.run.session", "deepr_engine.run.checkpoint",
                                "torch._dynamo", "sklearn.datasets"])
    return ctx


def _close(conn, process, run_id: str, park: bool) -> None:
    """End the child; with park, it first writes its parking checkpoint (the run can be
    reattached by its id), else the parking file goes too (and the run is gone for good)."""
    try:
        conn.send(("close", (), {"park": park}))
    except (OSError, ValueError):
        pass
    process.join(10.0 if park else 2.0)
    conn.close()
    if process.is_alive():
        process.kill()
    if not park:
        parking.remove(run_id, f"it was closed at {parking.when(time.time())}")


# -- the owner ----------------------------------------------------------------------------------
class BackgroundSession:
    """Owner side: the same verbs as TrainingSession (step, set_hyperparams, resume, track,
    predict_grid, metrics_csv, ...) plus play/pause, frame() for drawing and checkpoint().

    Every run has a `run_id`. `close()` ends it for good; an owner that is merely dropped
    (garbage-collected: its browser session went away) parks the run instead, so that
    `BackgroundSession.reattach(run_id)` (a reloaded tab) finds it again, alive in this server
    or from its parking file, for a day.
    """

    _live: "weakref.WeakValueDictionary[str, BackgroundSession]" = weakref.WeakValueDictionary()
    _live_lock = threading.Lock()

    @classmethod
    def reattach(cls, run_id: str, **options) -> "BackgroundSession | None":
        """The run with this id: the live owner in this process, or a new one started from the
        run's parking file; None when the run is gone (or the id is not one of ours)."""
        if not parking.valid_id(run_id):
            return None
        with cls._live_lock:
            run = cls._live.get(run_id)
        if run is not None and (run.alive or Path(run.park_path).exists()):
            return run   # live, or parked: its next request brings it back
        path = parking.checkpoint_path(run_id)
        if not path.exists():
            return None
        try:
            return cls(path.read_bytes(), run_id=run_id, **options)
        except (ValueError, RuntimeError, OSError):
            return None

    def __init__(self, source: RunConfig | dict | str | bytes = "digits-demo", *, steps_per_frame: int = 10,
                 max_steps_per_second: float = 0.0, idle_timeout: float = 30.0, threads: int = 1,
                 start_timeout: float = 180.0, run_id: str | None = None,
                 park_every_s: float = parking.PARK_EVERY_S, memory_mb: float = 0.0,
                 memory_name: str = "memory_mb", park_quota_mb: float = 0.0):
        if isinstance(source, str):
            from .config import preset
            source = preset(source)
        elif isinstance(source, dict):
            source = RunConfig.from_dict(source)
        self.options = {"steps_per_frame": int(steps_per_frame), "idle_timeout": float(idle_timeout),
                        "max_steps_per_second": float(max_steps_per_second), "threads": int(threads),
                        "park_every_s": float(park_every_s), "memory_mb": float(memory_mb),
                        "memory_name": memory_name}
        with self._live_lock:
            live = {rid for rid, r in list(self._live.items()) if r.alive}
        parking.clean(quota_mb=park_quota_mb, keep=live)
        self.run_id = run_id or uuid.uuid4().hex
        self.park_path = str(parking.checkpoint_path(self.run_id))
        self.start_timeout = start_timeout
        self.restarts = 0
        self.last_step = 0              # the step of the latest frame (for steps lost in a crash)
        self.restart_note = ""          # why the process was restarted, and what it cost
        self._lock = threading.Lock()
        self._start(source)
        with self._live_lock:
            self._live[self.run_id] = self

    def _start(self, source) -> None:
        ctx = _context()
        ours, theirs = ctx.Pipe()
        opts = {**self.options, "park_path": self.park_path}
        self.process = ctx.Process(target=_serve, args=(theirs, source, opts), daemon=True,
                                   name="deepr-session")
        self.process.start()
        theirs.close()
        self._conn = ours
        self._finalizer = weakref.finalize(self, _close, ours, self.process, self.run_id, True)
        if not ours.poll(self.start_timeout):
            self._drop()
            raise RuntimeError(f"the training process did not start within {self.start_timeout:.0f} s")
        self.info: RunInfo = self._answer()

    def _answer(self):
        try:
            reply = self._conn.recv()
        except (EOFError, OSError) as exc:
            self._drop()
            raise self._ended() from exc
        if reply[0] == "error":
            raise _ERRORS.get(reply[1], RuntimeError)(reply[2])
        return reply[1]

    def _drop(self) -> None:
        """The process died or hangs: end it, but keep the run's parking file (the next request
        restarts the run from its last park)."""
        if self._finalizer.detach() is not None:
            self._conn.close()
        if self.process.is_alive():
            self.process.kill()

    def _ended(self) -> RuntimeError:
        self.process.join(1.0)
        return RuntimeError(f"the training process ended unexpectedly (exit code {self.process.exitcode})")

    def _revive_if_parked(self) -> None:
        """A process that parked (or died after a park) comes back from its parking file."""
        if self.process.is_alive() or not Path(self.park_path).exists() or self.restarts >= MAX_RESTARTS:
            return
        code = self.process.exitcode
        data = Path(self.park_path).read_bytes()
        if self._finalizer.detach() is not None:   # the old pipe (the file stays until started)
            self._conn.close()
        self._start(data)   # the file stays: a crash of the new process comes back to it
        self.restarts += 1
        if code != 0:   # it crashed (or was killed) rather than parked
            self._conn.send(("frame", (), {"events": False}))
            step = self._answer().step
            self.restart_note = (f"the training process ended (exit code {code}) and was restarted "
                                 f"from its last park at step {step:,}: "
                                 f"{max(0, self.last_step - step):,} steps lost")
        with self._live_lock:
            self._live[self.run_id] = self

    def _call(self, op: str, *args, **kw):
        with self._lock:
            self._revive_if_parked()
            try:
                self._conn.send((op, args, kw))
            except (OSError, ValueError) as exc:
                raise self._ended() from exc
            return self._answer()

    # -- control --------------------------------------------------------------------------------
    def play(self, until: int | None = None) -> bool:
        """Train in the background (until step `until`, if given); False if it cannot (diverged,
        or already there)."""
        return self._call("play", until=until)

    def pause(self) -> None:
        self._call("pause")

    def set_speed(self, steps_per_frame: int, max_steps_per_second: float) -> None:
        if (steps_per_frame, max_steps_per_second) != (self.options["steps_per_frame"],
                                                       self.options["max_steps_per_second"]):
            self.options.update(steps_per_frame=int(steps_per_frame),
                                max_steps_per_second=float(max_steps_per_second))
            self._call("speed", steps_per_frame=steps_per_frame, max_steps_per_second=max_steps_per_second)

    def heartbeat(self) -> None:
        self._call("hyperparams")

    # -- the session's verbs ------------------------------------------------------------------
    def park(self) -> None:
        """Write the run to its parking file and end its process (memory goes back); the next
        request, or reattach(run_id) from any tab, brings it back."""
        with self._lock:
            if self.process.is_alive():
                self._end(park=True)

    def frame(self, since: int | None = None, events: bool = True) -> RunView:
        """The run now, for drawing (a compact views.RunView: active connections only, the
        rewiring events after the cursor `since` (None: all the run still holds; events=False:
        none), wall-clock steps/s). A read: it changes nothing, so every tab and view on the run
        can ask; each keeps its own cursor (the view's `events_cursor`)."""
        view = self._call("frame", since=since, events=events)
        self.last_step = view.step
        return view

    def step(self, n: int = 1) -> int:
        return self._call("step", n)

    def set_hyperparams(self, **changes) -> None:
        self._call("set_hyperparams", **changes)

    def hyperparams(self) -> dict:
        return self._call("hyperparams")

    def resume(self) -> None:
        self._call("resume")

    def track(self, layer_index, positions) -> None:
        self._call("track", list(map(int, layer_index)), list(map(int, positions)))

    def track_default(self, n: int = 24) -> None:
        self._call("track_default", n)

    def snapshot(self, since: int | None = None, events: bool = True) -> RunView:
        """A full view (full-size theta and sign too); events as frame()."""
        return self._call("snapshot", since=since, events=events)

    def replay(self, step: int | None = None) -> dict:
        """One recent step's rewiring events (TrainingSession.replay)."""
        return self._call("replay", step)

    def predict_grid(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        return self._call("predict_grid", xs, ys)

    def unit_maps(self, xs: np.ndarray, ys: np.ndarray, max_units: int = 64) -> dict:
        return self._call("unit_maps", xs, ys, max_units)

    def metrics_csv(self) -> str:
        return self._call("metrics_csv")

    def checkpoint(self) -> bytes:
        """The run as checkpoint bytes (checkpoint.py's safetensors format)."""
        return self._call("checkpoint")

    @classmethod
    def live_count(cls) -> int:
        """Runs of this server that hold a training process now."""
        with cls._live_lock:
            return sum(r.alive for r in list(cls._live.values()))

    def fork(self, memory_mb: float | None = None, memory_name: str | None = None,
             park_quota_mb: float = 0.0, **changes) -> "BackgroundSession":
        """A new run in its own process from this run's current state (TrainingSession.fork),
        with `changes` to its live hyperparameters; this run goes on untouched. The new process
        gets this one's options (its own memory limit, when given)."""
        o = self.options
        return BackgroundSession(self._call("fork", **changes), steps_per_frame=o["steps_per_frame"],
                                 max_steps_per_second=o["max_steps_per_second"],
                                 memory_mb=o["memory_mb"] if memory_mb is None else memory_mb,
                                 memory_name=memory_name or o["memory_name"], park_quota_mb=park_quota_mb)

    @property
    def config(self) -> RunConfig:
        return self.info.config

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def _end(self, park: bool) -> None:
        if self._finalizer.detach() is not None:
            _close(self._conn, self.process, self.run_id, park)

    def close(self) -> None:
        """End the run for good (its process and any parking file)."""
        with self._live_lock:
            if self._live.get(self.run_id) is self:
                del self._live[self.run_id]
        self._end(park=False)
