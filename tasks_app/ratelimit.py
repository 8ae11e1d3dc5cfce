"""One upstream call budget per Ark account, shared by every process and worker.

Ark allows about 1 list request/s per account (20/s for get and delete). Web
processes, Celery workers and the sync command all spend the same budget, so the
state lives outside any one process, in the shared store (tasks_app/lib/sharedstore.py:
Redis in production, a SQLite file in ARKDASH_DATA_DIR in the embedded default).

The algorithm is GCRA (a token bucket stored as one number per bucket: the
"theoretical arrival time" of the next request). A request is allowed when that
time is no further ahead than the burst tolerance; otherwise the caller learns how
long to wait, sleeps, and asks again. `penalize` pushes the time forward, which
slows every process at once when Ark answers 429.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tasks_app.lib.sharedstore import SharedStore
from tasks_app.lib.sharedstore import store_from_settings as shared_store_from_settings

# We aim 5% under Ark's published rates: network jitter must not turn into 429s.
_HEADROOM = 0.95


class RateLimitWaitTooLong(Exception):
    """The budget is spent for longer than the caller is willing to wait (`max_wait`)."""

    def __init__(self, endpoint: str, wait: float) -> None:
        super().__init__(f"the {endpoint} budget is exhausted for another {wait:.1f}s")
        self.endpoint = endpoint
        self.wait = wait


# --- The limiter ----------------------------------------------------------------------
@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int = 1

    @property
    def interval(self) -> float:
        return 1.0 / self.per_second

    @property
    def tolerance(self) -> float:
        return (self.burst - 1) * self.interval


JITTER_FRACTION = 0.1
JITTER_MAX_SECONDS = 0.02


def sleep_with_jitter(seconds: float) -> None:
    """time.sleep, a little longer at random (up to 10% or 20 ms).

    Processes refused the same grant are told the same wait. Woken in lockstep, they
    all ask at once, and the store's lock (SQLite's busy handler backs off the loser)
    can hand the next grant to the same winner time after time, starving the other
    process for seconds. A little jitter makes the winner random.
    """
    time.sleep(seconds + random.uniform(0, min(seconds * JITTER_FRACTION, JITTER_MAX_SECONDS)))  # noqa: S311


class SharedRateLimiter:
    """The RateLimiter the Ark client calls: one bucket per (scope, endpoint).

    Endpoints without a rate (e.g. "create" when unset) are not limited.
    """

    def __init__(
        self,
        *,
        store: SharedStore,
        scope: str,
        rates: Mapping[str, Rate],
        sleep: Callable[[float], None] | None = None,
        max_wait: float | None = None,
    ) -> None:
        self._store = store
        self._scope = scope
        self._rates = dict(rates)
        self._sleep = sleep or sleep_with_jitter
        self._max_wait = max_wait

    def with_max_wait(self, max_wait: float | None) -> SharedRateLimiter:
        """The same budget, for a caller that would rather give up than wait longer (a web request)."""
        return SharedRateLimiter(
            store=self._store, scope=self._scope, rates=self._rates, sleep=self._sleep, max_wait=max_wait
        )

    def acquire(self, *, endpoint: str) -> None:
        rate = self._rates.get(endpoint)
        if rate is None:
            return
        waited = 0.0
        while True:
            wait = self._store.try_take(self._key(endpoint), interval=rate.interval, tolerance=rate.tolerance)
            if wait <= 0:
                return
            if self._max_wait is not None and waited + wait > self._max_wait:
                raise RateLimitWaitTooLong(endpoint, wait)
            self._sleep(wait)
            waited += wait

    def penalize(self, *, endpoint: str, retry_after: float) -> None:
        rate = self._rates.get(endpoint)
        if rate is None or not math.isfinite(retry_after) or retry_after <= 0:
            return
        # A misbehaving Retry-After must not stall the account for hours.
        delay = min(retry_after, 300.0)
        self._store.push_back(self._key(endpoint), delay=delay, tolerance=rate.tolerance)

    def _key(self, endpoint: str) -> str:
        return f"{self._scope}:{endpoint}"


# --- Wiring from settings ---------------------------------------------------------------
def rates_from_settings() -> dict[str, Rate]:
    from django.conf import settings

    burst = max(1, int(getattr(settings, "ARK_RATE_BURST", 1)))
    per_endpoint = {
        "list": settings.ARK_LIST_RATE_PER_SECOND,
        "get": settings.ARK_GET_RATE_PER_SECOND,
        "delete": getattr(settings, "ARK_DELETE_RATE_PER_SECOND", settings.ARK_GET_RATE_PER_SECOND),
        "create": getattr(settings, "ARK_CREATE_RATE_PER_SECOND", 0.0),
    }
    # A rate of 0 (or less) means "not limited by ArkDash". The headroom keeps two calls
    # spaced exactly one interval apart here from arriving closer than that at Ark.
    return {
        name: Rate(per_second=float(value) * _HEADROOM, burst=burst)
        for name, value in per_endpoint.items()
        if value > 0
    }


def store_from_settings() -> SharedStore:
    from django.conf import settings

    return shared_store_from_settings(
        sqlite_path=str(Path(settings.DATA_DIR) / "ratelimit.sqlite3"), redis_timeout=5.0, sqlite_timeout=30.0
    )


def limiter_for_account(account_id: int) -> SharedRateLimiter:
    """The budget of one Account, shared with every other process using it."""
    from django.conf import settings

    prefix = settings.ARK_RATE_LIMIT_KEY_PREFIX
    return SharedRateLimiter(
        store=store_from_settings(), scope=f"{prefix}:account:{account_id}", rates=rates_from_settings()
    )


# --- One at a time, then a quiet window (Ark callbacks) ---------------------------------
class Coalescer:
    """At most one holder per key across every process, then a quiet window.

    Built on the same store as the budget: `try_start` is a take from a bucket whose
    interval is the longest a holder may take (a crashed holder frees the key then),
    `finish` moves the next grant to the end of the quiet window.
    """

    def __init__(self, store: SharedStore, prefix: str) -> None:
        self._store = store
        self._prefix = prefix

    def try_start(self, key: str, *, max_seconds: float) -> bool:
        return self._store.try_take(f"{self._prefix}:{key}", interval=max_seconds, tolerance=0.0) <= 0

    def finish(self, key: str, *, quiet_seconds: float) -> None:
        self._store.hold(f"{self._prefix}:{key}", seconds=quiet_seconds)


def coalescer_from_settings() -> Coalescer:
    from django.conf import settings

    return Coalescer(store_from_settings(), f"{settings.ARK_RATE_LIMIT_KEY_PREFIX}:coalesce")
