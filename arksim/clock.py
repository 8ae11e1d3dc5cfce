"""The simulator's clock: frozen and moved by hand in tests, following wall time in server mode."""

from __future__ import annotations

import threading
import time


class SimClock:
    """Unix time in seconds as the simulator sees it.

    Frozen by default, so tests decide exactly when time passes (`advance`, `set`) and
    boundaries like "exactly 7 days old" are reproducible. `run()` makes it follow the
    wall clock from its current reading, which is what a server for humans needs.
    """

    def __init__(self, start: float | None = None, *, running: bool = False) -> None:
        # Whole seconds by default: Ark's timestamps and windows are to the second.
        self._base = float(int(time.time())) if start is None else float(start)
        self._anchor: float | None = time.monotonic() if running else None
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now_locked()

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the clock only moves forward; use set() to jump back")
        with self._lock:
            self._base += seconds
            return self._now_locked()

    def set(self, timestamp: float) -> float:
        with self._lock:
            self._base = float(timestamp)
            if self._anchor is not None:
                self._anchor = time.monotonic()
            return self._base

    @property
    def running(self) -> bool:
        return self._anchor is not None

    def run(self) -> None:
        """Follow the wall clock from now on (idempotent)."""
        with self._lock:
            if self._anchor is None:
                self._anchor = time.monotonic()

    def _now_locked(self) -> float:
        if self._anchor is None:
            return self._base
        return self._base + (time.monotonic() - self._anchor)
