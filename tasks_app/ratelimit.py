"""One upstream call budget per Ark account, shared by every process and worker.

Ark allows about 1 list request/s per account (20/s for get and delete). Web
processes, Celery workers and the sync command all spend the same budget, so the
state lives outside any one process: in Redis (production) or in a SQLite file in
ARKDASH_DATA_DIR (embedded default, one machine, no server).

The algorithm is GCRA (a token bucket stored as one number per bucket: the
"theoretical arrival time" of the next request). A request is allowed when that
time is no further ahead than the burst tolerance; otherwise the caller learns how
long to wait, sleeps, and asks again. `penalize` pushes the time forward, which
slows every process at once when Ark answers 429.
"""

from __future__ import annotations

import math
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

# We aim 5% under Ark's published rates: network jitter must not turn into 429s.
_HEADROOM = 0.95
# Expiry of idle bucket keys: far beyond any interval or penalty we use.
_IDLE_TTL_SECONDS = 3600


class RateLimitWaitTooLong(Exception):
    """The budget is spent for longer than the caller is willing to wait (`max_wait`)."""

    def __init__(self, endpoint: str, wait: float) -> None:
        super().__init__(f"the {endpoint} budget is exhausted for another {wait:.1f}s")
        self.endpoint = endpoint
        self.wait = wait


class BucketStore(Protocol):
    """Where bucket state lives. Both operations must be atomic across processes."""

    def try_take(self, key: str, *, interval: float, tolerance: float) -> float:
        """Take one request from the bucket: 0.0 if granted, else seconds until it could be (not taken)."""

    def push_back(self, key: str, *, delay: float, tolerance: float) -> None:
        """No request may be granted for `delay` seconds from now."""

    def hold(self, key: str, *, seconds: float) -> None:
        """The next request is granted `seconds` from now, no sooner and no later."""


# --- Redis -------------------------------------------------------------------------
# Redis' own clock (TIME) is the one clock all machines agree on. Floats are passed as
# strings because Lua numbers returned to Redis are truncated to integers.
_TAKE_LUA = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local ttl_ms = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then return string.format('%.6f', wait) end
redis.call('SET', KEYS[1], string.format('%.6f', tat + interval), 'PX', ttl_ms)
return '0'
"""

_PUSH_LUA = """
local delay = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local ttl_ms = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local target = now + delay + tolerance
if target > tat then
  redis.call('SET', KEYS[1], string.format('%.6f', target), 'PX', ttl_ms)
end
return 1
"""


_HOLD_LUA = """
local seconds = tonumber(ARGV[1])
local ttl_ms = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('SET', KEYS[1], string.format('%.6f', now + seconds), 'PX', ttl_ms)
return 1
"""


class RedisBucketStore:
    def __init__(self, url: str, *, socket_timeout: float = 5.0) -> None:
        import redis

        self._redis = redis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
        )
        self._take = self._redis.register_script(_TAKE_LUA)
        self._push = self._redis.register_script(_PUSH_LUA)
        self._hold = self._redis.register_script(_HOLD_LUA)

    def try_take(self, key: str, *, interval: float, tolerance: float) -> float:
        ttl_ms = _ttl_ms(interval + tolerance)
        return float(self._take(keys=[key], args=[repr(interval), repr(tolerance), ttl_ms]))

    def push_back(self, key: str, *, delay: float, tolerance: float) -> None:
        self._push(keys=[key], args=[repr(delay), repr(tolerance), _ttl_ms(delay + tolerance)])

    def hold(self, key: str, *, seconds: float) -> None:
        self._hold(keys=[key], args=[repr(max(seconds, 0.0)), _ttl_ms(seconds)])


# --- SQLite (embedded default) -------------------------------------------------------
class SqliteBucketStore:
    """Bucket state in a SQLite file: BEGIN IMMEDIATE serialises processes on one machine."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._local = threading.local()
        with self._transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS bucket (key TEXT PRIMARY KEY, tat REAL NOT NULL)")

    def try_take(self, key: str, *, interval: float, tolerance: float) -> float:
        with self._transaction() as db:
            now = self._clock()
            tat = max(self._tat(db, key), now)
            wait = tat - tolerance - now
            if wait > 0:
                return wait
            self._store(db, key, tat + interval)
            return 0.0

    def push_back(self, key: str, *, delay: float, tolerance: float) -> None:
        with self._transaction() as db:
            target = self._clock() + delay + tolerance
            if target > self._tat(db, key):
                self._store(db, key, target)

    def hold(self, key: str, *, seconds: float) -> None:
        with self._transaction() as db:
            now = self._clock()
            self._store(db, key, now + max(seconds, 0.0))
            # Keys that long ago stopped holding anything back (one per task that called
            # back) are as good as absent: drop them now and then so the file stays small.
            if random.random() < 0.01:  # noqa: S311
                db.execute("DELETE FROM bucket WHERE tat < ?", (now - _IDLE_TTL_SECONDS,))

    def _connection(self) -> sqlite3.Connection:
        # One connection per thread and process (a forked child must not reuse its parent's).
        pid_and_db = getattr(self._local, "db", None)
        if pid_and_db is None or pid_and_db[0] != os.getpid():
            db = sqlite3.connect(self._path, timeout=30.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # losing the last grant on power loss is harmless
            self._local.db = pid_and_db = (os.getpid(), db)
        return pid_and_db[1]

    def _transaction(self) -> _SqliteTransaction:
        return _SqliteTransaction(self._connection())

    @staticmethod
    def _tat(db: sqlite3.Connection, key: str) -> float:
        row = db.execute("SELECT tat FROM bucket WHERE key = ?", (key,)).fetchone()
        return row[0] if row else 0.0

    @staticmethod
    def _store(db: sqlite3.Connection, key: str, tat: float) -> None:
        db.execute(
            "INSERT INTO bucket (key, tat) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET tat = excluded.tat",
            (key, tat),
        )


class _SqliteTransaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        # IMMEDIATE takes the write lock up front, so read-compute-write is atomic.
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


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

    Processes that lost the same slot are told the same wait. Woken in lockstep, they
    all ask at once, and the store's lock (SQLite's busy handler backs off the loser)
    can hand the next slot to the same winner time after time: seen as one of two
    processes getting nothing for 1.6 s. A little jitter makes the winner random.
    """
    time.sleep(seconds + random.uniform(0, min(seconds * JITTER_FRACTION, JITTER_MAX_SECONDS)))  # noqa: S311


class SharedRateLimiter:
    """The RateLimiter the Ark client calls: one bucket per (scope, endpoint).

    Endpoints without a rate (e.g. "create" when unset) are not limited.
    """

    def __init__(
        self,
        *,
        store: BucketStore,
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


def _ttl_ms(seconds: float) -> int:
    return int((seconds + _IDLE_TTL_SECONDS) * 1000)


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


def store_from_settings() -> BucketStore:
    from django.conf import settings

    if settings.REDIS_URL:
        return _redis_store(settings.REDIS_URL)
    return _sqlite_store(str(Path(settings.DATA_DIR) / "ratelimit.sqlite3"))


@cache
def _redis_store(url: str) -> RedisBucketStore:
    return RedisBucketStore(url)


@cache
def _sqlite_store(path: str) -> SqliteBucketStore:
    return SqliteBucketStore(Path(path))


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

    def __init__(self, store: BucketStore, prefix: str) -> None:
        self._store = store
        self._prefix = prefix

    def try_start(self, key: str, *, max_seconds: float) -> bool:
        return self._store.try_take(f"{self._prefix}:{key}", interval=max_seconds, tolerance=0.0) <= 0

    def finish(self, key: str, *, quiet_seconds: float) -> None:
        self._store.hold(f"{self._prefix}:{key}", seconds=quiet_seconds)


def coalescer_from_settings() -> Coalescer:
    from django.conf import settings

    return Coalescer(store_from_settings(), f"{settings.ARK_RATE_LIMIT_KEY_PREFIX}:coalesce")
