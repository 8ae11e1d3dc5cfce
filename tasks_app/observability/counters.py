"""Counters shared by every ArkDash process, for /metrics.

Web, workers and beat are separate processes, possibly on separate machines, and the
events worth counting (upstream calls, rate-limit waits, archive copies) happen in the
workers while /metrics is served by the web. So counters live outside any process:

- Redis (when REDIS_URL is set, i.e. production): one hash, HINCRBYFLOAT per event.
  Every worker on every machine already reaches this Redis (it is the broker), and a
  restarted process does not reset anything.
- a SQLite file in ARKDASH_DATA_DIR otherwise (the laptop setup: one machine).

prometheus_client's multiprocess mode was the other candidate; it needs a directory
shared by all processes (one machine only) and wiping it on restart, so it cannot
count workers scaled out on other hosts.

Counting is best effort: a store that is down is skipped for a few seconds (the
events are lost, never the work), and never raises into the caller.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)

# A counter is identified by its metric name and its label pairs, sorted.
CounterKey = tuple[str, tuple[tuple[str, str], ...]]
# After a failure, the store is not tried again for this long (no stall per event).
_BACKOFF_SECONDS = 5.0
_REDIS_TIMEOUT_SECONDS = 0.5


def counter_key(name: str, labels: Mapping[str, str] | None = None) -> CounterKey:
    return name, tuple(sorted((str(k), str(v)) for k, v in (labels or {}).items()))


def _encode(key: CounterKey) -> str:
    return json.dumps([key[0], [list(pair) for pair in key[1]]], separators=(",", ":"))


def _decode(field: str | bytes) -> CounterKey | None:
    try:
        name, pairs = json.loads(field)
        return str(name), tuple((str(k), str(v)) for k, v in pairs)
    except (ValueError, TypeError):
        return None  # not ours: ignore rather than fail the scrape


class CounterStore(Protocol):
    def add(self, increments: Iterable[tuple[CounterKey, float]]) -> None:
        """Add to several counters at once (one round trip)."""

    def snapshot(self) -> dict[CounterKey, float]:
        """Every counter and its value."""

    def clear(self) -> None:
        """Forget everything (tests, harness)."""


class RedisCounterStore:
    def __init__(self, url: str, *, key: str) -> None:
        import redis

        self.key = key
        self._redis = redis.Redis.from_url(
            url, socket_timeout=_REDIS_TIMEOUT_SECONDS, socket_connect_timeout=_REDIS_TIMEOUT_SECONDS
        )

    def add(self, increments: Iterable[tuple[CounterKey, float]]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for key, amount in increments:
            pipe.hincrbyfloat(self.key, _encode(key), amount)
        pipe.execute()

    def snapshot(self) -> dict[CounterKey, float]:
        values: dict[CounterKey, float] = {}
        for field, value in self._redis.hgetall(self.key).items():
            key = _decode(field)
            if key is not None:
                values[key] = float(value)
        return values

    def clear(self) -> None:
        self._redis.delete(self.key)


class SqliteCounterStore:
    """Counters in a SQLite file: fine for the processes of one machine (the embedded setup)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connection().execute(
            "CREATE TABLE IF NOT EXISTS counter (key TEXT PRIMARY KEY, value REAL NOT NULL)"
        )

    def _connection(self) -> sqlite3.Connection:
        # One connection per thread and process: a forked worker must not share its parent's.
        held = getattr(self._local, "db", None)
        if held is None or held[0] != os.getpid():
            db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = held = (os.getpid(), db)
        return held[1]

    def add(self, increments: Iterable[tuple[CounterKey, float]]) -> None:
        rows = [(_encode(key), float(amount)) for key, amount in increments]
        if not rows:
            return
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT INTO counter (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
                rows,
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def snapshot(self) -> dict[CounterKey, float]:
        values: dict[CounterKey, float] = {}
        for field, value in self._connection().execute("SELECT key, value FROM counter"):
            key = _decode(field)
            if key is not None:
                values[key] = float(value)
        return values

    def clear(self) -> None:
        self._connection().execute("DELETE FROM counter")


# --- the store for this process, from settings --------------------------------------------


def store_from_settings() -> CounterStore:
    from django.conf import settings

    if settings.REDIS_URL:
        return _redis_store(
            settings.REDIS_URL, getattr(settings, "ARKDASH_METRICS_REDIS_KEY", "arkdash:metrics")
        )
    path = getattr(settings, "ARKDASH_METRICS_SQLITE_PATH", "") or str(
        Path(settings.DATA_DIR) / "metrics.sqlite3"
    )
    return _sqlite_store(str(path))


@cache
def _redis_store(url: str, key: str) -> RedisCounterStore:
    return RedisCounterStore(url, key=key)


@cache
def _sqlite_store(path: str) -> SqliteCounterStore:
    return SqliteCounterStore(Path(path))


class _Breaker:
    """Skips the store for a while after it failed, and logs that once per outage."""

    def __init__(self) -> None:
        self.down_until = 0.0
        self.lock = threading.Lock()

    def closed(self) -> bool:
        return time.monotonic() >= self.down_until

    def trip(self, error: Exception) -> None:
        with self.lock:
            if self.closed():
                logger.warning(
                    "metrics store unavailable, counting paused for %.0fs: %s", _BACKOFF_SECONDS, error
                )
            self.down_until = time.monotonic() + _BACKOFF_SECONDS


_breaker = _Breaker()


def increment(name: str, labels: Mapping[str, str] | None = None, amount: float = 1.0) -> None:
    add_many([(counter_key(name, labels), amount)])


def add_many(increments: Iterable[tuple[CounterKey, float]]) -> None:
    """Count events; never raises (metrics must not break the work they describe)."""
    items = [(key, amount) for key, amount in increments if amount]
    if not items or not _breaker.closed():
        return
    try:
        store_from_settings().add(items)
    except Exception as error:  # noqa: BLE001 - Redis down, disk full, locked file...
        _breaker.trip(error)


def snapshot() -> dict[CounterKey, float]:
    """All counters; raises when the store cannot be read (the scrape reports it)."""
    return store_from_settings().snapshot()


def reset_breaker() -> None:
    """Count again right away (tests; an operator who fixed the store need not wait)."""
    _breaker.down_until = 0.0
