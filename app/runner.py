"""Runner: one training session per browser tab, stepped by a worker thread while playing.

The UI polls snapshots; it never blocks on training. The worker never touches Streamlit and
stops by itself when its tab stops sending heartbeats (closed tab) for `idle_timeout` seconds.
"""
from __future__ import annotations

import threading
import time

from deepr_engine.session import TrainingSession


class Runner:
    def __init__(self, session: TrainingSession, steps_per_frame: int = 10,
                 max_steps_per_second: float = 0.0, idle_timeout: float = 20.0):
        self.session = session
        self.steps_per_frame = steps_per_frame
        self.max_steps_per_second = max_steps_per_second  # 0 = as fast as it goes
        self.idle_timeout = idle_timeout
        self._playing = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_seen = time.monotonic()

    @property
    def playing(self) -> bool:
        return self._playing.is_set() and self._thread is not None and self._thread.is_alive()

    def heartbeat(self) -> None:
        self.last_seen = time.monotonic()

    def play(self) -> None:
        self.heartbeat()
        if self.session.paused_reason:
            return
        self._playing.set()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="deepr-runner", daemon=True)
            self._thread.start()

    def pause(self) -> None:
        self._playing.clear()

    def stop(self, timeout: float = 5.0) -> None:
        self._playing.clear()
        if self._thread is not None:
            self._thread.join(timeout)

    def step(self, n: int) -> int:
        """Synchronous steps (the Step buttons); the worker pauses meanwhile via the lock."""
        return self.session.step(n)

    def _work(self) -> None:
        while self._playing.is_set():
            if time.monotonic() - self.last_seen > self.idle_timeout:
                break  # the tab is gone
            t0 = time.perf_counter()
            n = self.session.step(max(1, int(self.steps_per_frame)))
            if n == 0 or self.session.paused_reason:
                break
            if self.max_steps_per_second > 0:
                wait = n / self.max_steps_per_second - (time.perf_counter() - t0)
                if wait > 0:
                    time.sleep(wait)
        self._playing.clear()
