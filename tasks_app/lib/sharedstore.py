"""State shared by every ArkDash process: rate-limit buckets and counters.

Web processes, Celery workers and beat are separate processes, possibly on separate
machines, so what they share lives outside any one of them:

- Redis when REDIS_URL is set (production): every process on every machine already
  reaches it (it is the broker), and a restarted process resets nothing;
- a SQLite file in ARKDASH_DATA_DIR otherwise (the embedded setup: the processes of one
  machine, no server). BEGIN IMMEDIATE serialises them.

Both give the same atomic operations:
- buckets for the rate limiter (tasks_app/ratelimit.py), each one number, the
  "theoretical arrival time" of the next request (GCRA): `try_take`, `push_back`, `hold`;
- counters for /metrics (tasks_app/observability/counters.py): `add`, `snapshot`,
  `clear_counters`.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Protocol

# Expiry of idle bucket keys: far beyond any interval or penalty the limiter uses.
IDLE_TTL_SECONDS = 3600


class SharedStore(Protocol):
    """Where shared state lives. Every operation is atomic across processes."""

    def try_take(self, key: str, *, interval: float, tolerance: float) -> float:
        """Take one request from the bucket: 0.0 if granted, else seconds until it could be (not taken)."""

    def push_back(self, key: str, *, delay: float, tolerance: float) -> None:
        """No request may be granted for `delay` seconds from now."""

    def hold(self, key: str, *, seconds: float) -> None:
        """The next request is granted `seconds` from now, no sooner and no later."""

    def add(self, increments: Iterable[tuple[str, float]]) -> None:
        """Add to several counters at once (one round trip)."""

    def snapshot(self) -> dict[str, float]:
        """Every counter and its value."""

    def clear_counters(self) -> None:
        """Forget every counter (tests, harness)."""


# --- Redis -------------------------------------------------------------------------
# Redis' own clock (TIME) is the one clock all machines agree on. Floats are passed as
# strings because Lua numbers returned to Redis are truncated to integers.
_NOW_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

_TAKE_LUA = _NOW_LUA + """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local ttl_ms = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then return string.format('%.6f', wait) end
redis.call('SET', KEYS[1], string.format('%.6f', tat + interval), 'PX', ttl_ms)
return '0'
"""

_PUSH_LUA = _NOW_LUA + """
local delay = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local ttl_ms = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local target = now + delay + tolerance
if target > tat then
  redis.call('SET', KEYS[1], string.format('%.6f', target), 'PX', ttl_ms)
end
return 1
"""

_HOLD_LUA = _NOW_LUA + """
local seconds = tonumber(ARGV[1])
local ttl_ms = tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('%.6f', now + seconds), 'PX', ttl_ms)
return 1
"""


class RedisStore:
    """Buckets as one key each (expiring when idle); counters as the fields of one hash."""

    def __init__(self, url: str, *, timeout: float = 5.0, counters_key: str = "arkdash:metrics") -> None:
        import redis

        self.counters_key = counters_key
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
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

    def add(self, increments: Iterable[tuple[str, float]]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for key, amount in increments:
            pipe.hincrbyfloat(self.counters_key, key, amount)
        pipe.execute()

    def snapshot(self) -> dict[str, float]:
        return {
            (field.decode() if isinstance(field, bytes) else field): float(value)
            for field, value in self._redis.hgetall(self.counters_key).items()
        }

    def clear_counters(self) -> None:
        self._redis.delete(self.counters_key)


def _ttl_ms(seconds: float) -> int:
    return int((seconds + IDLE_TTL_SECONDS) * 1000)


# --- SQLite (embedded default) -------------------------------------------------------
class SqliteStore:
    """Buckets and counters in two tables of one SQLite file."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._timeout = timeout
        self._local = threading.local()
        with self._transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS bucket (key TEXT PRIMARY KEY, tat REAL NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS counter (key TEXT PRIMARY KEY, value REAL NOT NULL)")

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
                db.execute("DELETE FROM bucket WHERE tat < ?", (now - IDLE_TTL_SECONDS,))

    def add(self, increments: Iterable[tuple[str, float]]) -> None:
        rows = [(key, float(amount)) for key, amount in increments]
        if not rows:
            return
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO counter (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
                rows,
            )

    def snapshot(self) -> dict[str, float]:
        return {key: float(value) for key, value in self._connection().execute("SELECT key, value FROM counter")}

    def clear_counters(self) -> None:
        self._connection().execute("DELETE FROM counter")

    def _connection(self) -> sqlite3.Connection:
        # One connection per thread and process (a forked child must not reuse its parent's).
        pid_and_db = getattr(self._local, "db", None)
        if pid_and_db is None or pid_and_db[0] != os.getpid():
            db = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # losing the last write on power loss is harmless
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


# --- The store for this process, from settings --------------------------------------


def store_from_settings(
    *, sqlite_path: str, redis_timeout: float, sqlite_timeout: float, counters_key: str = "arkdash:metrics"
) -> SharedStore:
    """Redis when REDIS_URL is set, else the SQLite file at `sqlite_path`; one per process.

    The rate limiter and the counters each ask with their own file and timeouts: counting
    must never stall the work it counts, while a call waits its turn.
    """
    from django.conf import settings

    if settings.REDIS_URL:
        return _redis_store(settings.REDIS_URL, redis_timeout, counters_key)
    return _sqlite_store(sqlite_path, sqlite_timeout)


@cache
def _redis_store(url: str, timeout: float, counters_key: str) -> RedisStore:
    return RedisStore(url, timeout=timeout, counters_key=counters_key)


@cache
def _sqlite_store(path: str, timeout: float) -> SqliteStore:
    return SqliteStore(Path(path), timeout=timeout)
