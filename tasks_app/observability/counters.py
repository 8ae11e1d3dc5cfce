"""Counters shared by every ArkDash process, for /metrics.

Web, workers and beat are separate processes, possibly on separate machines, and the
events worth counting (upstream calls, rate-limit waits, archive copies) happen in the
workers while /metrics is served by the web. So counters live in the shared store
(tasks_app/lib/sharedstore.py): one Redis hash, HINCRBYFLOAT per event, when REDIS_URL
is set; a SQLite file in ARKDASH_DATA_DIR otherwise (ARKDASH_METRICS_SQLITE_PATH).

prometheus_client's multiprocess mode was the other candidate; it needs a directory
shared by all processes (one machine only) and wiping it on restart, so it cannot
count workers scaled out on other hosts.

Counting is best effort: a store that is down is skipped for a few seconds (the
events are lost, never the work), and never raises into the caller.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from tasks_app.lib.sharedstore import SharedStore
from tasks_app.lib.sharedstore import store_from_settings as shared_store_from_settings

logger = logging.getLogger(__name__)

# A counter is identified by its metric name and its label pairs, sorted.
CounterKey = tuple[str, tuple[tuple[str, str], ...]]
# After a failure, the store is not tried again for this long (no stall per event).
_BACKOFF_SECONDS = 5.0
_REDIS_TIMEOUT_SECONDS = 0.5
_SQLITE_TIMEOUT_SECONDS = 5.0


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


def store_from_settings() -> SharedStore:
    from django.conf import settings

    path = getattr(settings, "ARKDASH_METRICS_SQLITE_PATH", "") or str(
        Path(settings.DATA_DIR) / "metrics.sqlite3"
    )
    return shared_store_from_settings(
        sqlite_path=str(path),
        redis_timeout=_REDIS_TIMEOUT_SECONDS,
        sqlite_timeout=_SQLITE_TIMEOUT_SECONDS,
        counters_key=getattr(settings, "ARKDASH_METRICS_REDIS_KEY", "arkdash:metrics"),
    )


def write(store: SharedStore, increments: Iterable[tuple[CounterKey, float]]) -> None:
    """Add to counters in `store` (one round trip)."""
    store.add([(_encode(key), amount) for key, amount in increments])


def read(store: SharedStore) -> dict[CounterKey, float]:
    """Every counter in `store` and its value."""
    values: dict[CounterKey, float] = {}
    for field, value in store.snapshot().items():
        key = _decode(field)
        if key is not None:
            values[key] = value
    return values


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
        write(store_from_settings(), items)
    except Exception as error:  # noqa: BLE001 - Redis down, disk full, locked file...
        _breaker.trip(error)


def snapshot() -> dict[CounterKey, float]:
    """All counters; raises when the store cannot be read (the scrape reports it)."""
    return read(store_from_settings())


def reset_breaker() -> None:
    """Count again right away (tests; an operator who fixed the store need not wait)."""
    _breaker.down_until = 0.0
