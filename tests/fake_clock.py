"""A clock for tests of the rate limiter and the shared store: it moves only when told to."""

from __future__ import annotations


class FakeClock:
    """Reads as `now`; `sleep` moves it on and records the wait, so tests see exact waits, instantly."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
