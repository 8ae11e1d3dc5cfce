"""tasks_app/lib/sharedstore.py: the buckets and counters every process shares, in Redis and in
the embedded SQLite file, through separate clients as separate processes would use them."""

from __future__ import annotations

import uuid

import pytest

from tasks_app.lib.sharedstore import RedisStore, SqliteStore, store_from_settings
from tasks_app.observability import counters

from .fake_clock import FakeClock
from .services import REDIS_URL

# Long enough that a test on a loaded machine never sees a bucket refill by itself.
INTERVAL = 60.0


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def open_store(request, tmp_path):
    """Opens another client of one store, as another process would."""
    if request.param == "sqlite":
        yield lambda: SqliteStore(tmp_path / "shared.sqlite3")
        return
    counters_key = f"arkdash:test-counters:{uuid.uuid4().hex}"
    yield lambda: RedisStore(REDIS_URL, counters_key=counters_key)
    RedisStore(REDIS_URL, counters_key=counters_key).clear_counters()


@pytest.fixture
def key() -> str:
    return f"test:{uuid.uuid4().hex}"


def test_it_grants_one_request_per_interval_to_every_client(open_store, key):
    first, second = open_store(), open_store()
    assert first.try_take(key, interval=INTERVAL, tolerance=0) == 0.0
    wait = second.try_take(key, interval=INTERVAL, tolerance=0)
    assert INTERVAL / 2 < wait <= INTERVAL
    # A refused request takes nothing: asking again costs no more.
    assert INTERVAL / 2 < first.try_take(key, interval=INTERVAL, tolerance=0) <= INTERVAL


def test_it_allows_a_burst_as_large_as_the_tolerance(open_store, key):
    store = open_store()
    grants = [store.try_take(key, interval=INTERVAL, tolerance=2 * INTERVAL) for _ in range(4)]
    assert grants[:3] == [0.0, 0.0, 0.0]
    assert grants[3] > 0


def test_it_keeps_buckets_apart(open_store, key):
    store = open_store()
    assert store.try_take(key, interval=INTERVAL, tolerance=0) == 0.0
    assert store.try_take(key + ":other", interval=INTERVAL, tolerance=0) == 0.0


def test_a_push_back_delays_every_client_and_never_shortens_a_wait(open_store, key):
    first, second = open_store(), open_store()
    first.push_back(key, delay=INTERVAL, tolerance=0)
    first.push_back(key, delay=1.0, tolerance=0)  # a shorter penalty does not undo the longer one
    assert INTERVAL / 2 < second.try_take(key, interval=1.0, tolerance=0) <= INTERVAL


def test_a_hold_sets_the_next_grant_exactly(open_store, key):
    store = open_store()
    store.hold(key, seconds=INTERVAL)
    assert INTERVAL / 2 < store.try_take(key, interval=1.0, tolerance=0) <= INTERVAL
    store.hold(key, seconds=0)  # unlike a push back, a hold may bring the grant forward
    assert store.try_take(key, interval=1.0, tolerance=0) == 0.0


def test_it_adds_to_counters_from_every_client_and_clears_them(open_store):
    first, second = open_store(), open_store()
    first.add([("calls", 1), ("bytes", 2.5)])
    second.add([("calls", 2)])
    second.add([])  # nothing to add is no write at all
    assert open_store().snapshot() == {"calls": 3.0, "bytes": 2.5}
    first.clear_counters()
    assert second.snapshot() == {}


def test_sqlite_measures_buckets_on_its_clock(tmp_path):
    clock = FakeClock()
    store = SqliteStore(tmp_path / "shared.sqlite3", clock=clock)
    assert store.try_take("k", interval=2.0, tolerance=0) == 0.0
    clock.now += 0.5
    assert store.try_take("k", interval=2.0, tolerance=0) == pytest.approx(1.5)
    clock.now += 1.5
    assert store.try_take("k", interval=2.0, tolerance=0) == 0.0


def test_it_uses_redis_when_redis_url_is_set_else_one_sqlite_file(settings, tmp_path):
    path = str(tmp_path / "from-settings.sqlite3")
    settings.REDIS_URL = ""
    embedded = store_from_settings(sqlite_path=path, redis_timeout=1.0, sqlite_timeout=1.0)
    assert isinstance(embedded, SqliteStore) and str(embedded.path) == path
    assert store_from_settings(sqlite_path=path, redis_timeout=1.0, sqlite_timeout=1.0) is embedded
    settings.REDIS_URL = REDIS_URL
    shared = store_from_settings(sqlite_path=path, redis_timeout=1.0, sqlite_timeout=1.0, counters_key="k")
    assert isinstance(shared, RedisStore) and shared.counters_key == "k"


@pytest.mark.redis
def test_it_sums_counters_from_several_processes_in_redis():
    key = f"arkdash:test-metrics:{uuid.uuid4().hex}"
    worker_a = RedisStore(REDIS_URL, counters_key=key)  # two processes, two clients
    worker_b = RedisStore(REDIS_URL, counters_key=key)
    calls = counters.counter_key("arkdash_upstream_calls", {"endpoint": "list", "outcome": "ok"})
    try:
        counters.write(worker_a, [(calls, 1)])
        counters.write(
            worker_b, [(calls, 2), (counters.counter_key("arkdash_archive_copied_bytes", {"output": "video"}), 1.5)]
        )
        snapshot = counters.read(RedisStore(REDIS_URL, counters_key=key))
    finally:
        worker_a.clear_counters()
    assert snapshot[calls] == 3
    assert snapshot[("arkdash_archive_copied_bytes", (("output", "video"),))] == 1.5


def test_it_sums_counters_from_several_connections_in_sqlite(tmp_path):
    path = tmp_path / "shared.sqlite3"
    calls = counters.counter_key("arkdash_http_responses", {"status_class": "2xx"})
    counters.write(SqliteStore(path), [(calls, 1)])
    counters.write(SqliteStore(path), [(calls, 4)])
    assert counters.read(SqliteStore(path)) == {calls: 5}
