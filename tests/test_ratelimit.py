from __future__ import annotations

import multiprocessing
import time
import uuid
from pathlib import Path

import pytest

from tasks_app import ratelimit
from tasks_app.lib.sharedstore import RedisStore, SqliteStore
from tasks_app.ratelimit import (
    Rate,
    RateLimitWaitTooLong,
    SharedRateLimiter,
    limiter_for_account,
)

from .fake_clock import FakeClock
from .services import REDIS_URL


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _limiter(tmp_path: Path, clock: FakeClock, **rates: Rate) -> SharedRateLimiter:
    store = SqliteStore(tmp_path / "buckets.sqlite3", clock=clock)
    return SharedRateLimiter(store=store, scope="acct:1", rates=rates, sleep=clock.sleep)


def test_it_spaces_calls_at_the_configured_rate(tmp_path, clock):
    limiter = _limiter(tmp_path, clock, list=Rate(per_second=1.0))
    grants = []
    for _ in range(4):
        limiter.acquire(endpoint="list")
        grants.append(clock.now)
    assert [b - a for a, b in zip(grants, grants[1:], strict=False)] == pytest.approx([1.0, 1.0, 1.0])


def test_it_allows_a_burst_then_the_steady_rate(tmp_path, clock):
    limiter = _limiter(tmp_path, clock, get=Rate(per_second=10.0, burst=3))
    start = clock.now
    for _ in range(3):
        limiter.acquire(endpoint="get")
    assert clock.now == start  # the burst needed no wait
    limiter.acquire(endpoint="get")
    assert clock.now - start == pytest.approx(0.1)


def test_it_keeps_separate_budgets_per_endpoint_and_scope(tmp_path, clock):
    store = SqliteStore(tmp_path / "buckets.sqlite3", clock=clock)
    rates = {"list": Rate(per_second=1.0), "get": Rate(per_second=1.0)}
    one = SharedRateLimiter(store=store, scope="acct:1", rates=rates, sleep=clock.sleep)
    two = SharedRateLimiter(store=store, scope="acct:2", rates=rates, sleep=clock.sleep)
    one.acquire(endpoint="list")
    one.acquire(endpoint="get")
    two.acquire(endpoint="list")
    assert clock.sleeps == []
    one.acquire(endpoint="list")
    assert clock.sleeps == [pytest.approx(1.0)]


def test_it_does_not_limit_an_endpoint_without_a_rate(tmp_path, clock):
    limiter = _limiter(tmp_path, clock, list=Rate(per_second=1.0))
    for _ in range(50):
        limiter.acquire(endpoint="create")
    assert clock.sleeps == []


def test_it_slows_everyone_down_after_a_penalty(tmp_path, clock):
    store = SqliteStore(tmp_path / "buckets.sqlite3", clock=clock)
    rates = {"list": Rate(per_second=1.0)}
    worker_a = SharedRateLimiter(store=store, scope="acct:1", rates=rates, sleep=clock.sleep)
    worker_b = SharedRateLimiter(store=store, scope="acct:1", rates=rates, sleep=clock.sleep)
    worker_a.acquire(endpoint="list")
    worker_a.penalize(endpoint="list", retry_after=5.0)
    start = clock.now
    worker_b.acquire(endpoint="list")
    assert clock.now - start == pytest.approx(5.0)


def test_it_ignores_a_nonsense_retry_after_and_caps_a_huge_one(tmp_path, clock):
    limiter = _limiter(tmp_path, clock, list=Rate(per_second=100.0))
    limiter.penalize(endpoint="list", retry_after=float("nan"))
    limiter.penalize(endpoint="list", retry_after=-3)
    limiter.acquire(endpoint="list")
    assert clock.sleeps == []
    limiter.penalize(endpoint="list", retry_after=10_000_000)
    start = clock.now
    limiter.acquire(endpoint="list")
    assert clock.now - start == pytest.approx(300.0)


def test_it_gives_up_when_the_wait_exceeds_max_wait(tmp_path, clock):
    limiter = _limiter(tmp_path, clock, get=Rate(per_second=1.0)).with_max_wait(0.5)
    limiter.acquire(endpoint="get")
    with pytest.raises(RateLimitWaitTooLong):
        limiter.acquire(endpoint="get")
    assert clock.sleeps == []


def test_it_builds_account_limiters_from_settings(settings, tmp_path):
    settings.REDIS_URL = ""
    settings.DATA_DIR = tmp_path
    settings.ARK_LIST_RATE_PER_SECOND = 1.0
    settings.ARK_GET_RATE_PER_SECOND = 20.0
    limiter = limiter_for_account(42)
    limiter.acquire(endpoint="list")
    started = time.monotonic()
    limiter.acquire(endpoint="get")  # a separate bucket: no wait behind the list call
    assert time.monotonic() - started < 0.5
    assert (tmp_path / "ratelimit.sqlite3").exists()


# --- Redis ------------------------------------------------------------------------------
@pytest.fixture
def redis_store() -> RedisStore:
    return RedisStore(REDIS_URL)


@pytest.mark.redis
def test_it_spaces_calls_with_redis(redis_store):
    limiter = SharedRateLimiter(
        store=redis_store, scope=f"test:{uuid.uuid4()}", rates={"list": Rate(per_second=20.0)}
    )
    started = time.monotonic()
    for _ in range(6):
        limiter.acquire(endpoint="list")
    # Five intervals of 50 ms after the first, immediate grant.
    assert 0.22 <= time.monotonic() - started < 1.0


@pytest.mark.redis
def test_it_shares_a_penalty_through_redis(redis_store):
    scope = f"test:{uuid.uuid4()}"
    rates = {"get": Rate(per_second=100.0)}
    SharedRateLimiter(store=redis_store, scope=scope, rates=rates).penalize(endpoint="get", retry_after=0.4)
    started = time.monotonic()
    SharedRateLimiter(store=redis_store, scope=scope, rates=rates).acquire(endpoint="get")
    assert 0.3 <= time.monotonic() - started < 1.0


# --- Two real OS processes hammering one budget ------------------------------------------
RATE = 10.0
HAMMER_SECONDS = 1.6


def _hammer(store_kind: str, location: str, scope: str, ready, out: multiprocessing.Queue) -> None:
    store = RedisStore(location) if store_kind == "redis" else SqliteStore(Path(location))
    limiter = SharedRateLimiter(store=store, scope=scope, rates={"list": Rate(per_second=RATE)})
    grants = []
    # Both start together: on a loaded machine one process may be ready a second later than
    # the other, which then had the whole window to itself.
    ready.wait(timeout=30)
    until = time.time() + HAMMER_SECONDS
    while True:
        limiter.acquire(endpoint="list")
        now = time.time()
        if now >= until:
            break
        grants.append(now)
    out.put(grants)


def _run_two_processes(store_kind: str, location: str) -> list[float]:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    scope = f"test:{uuid.uuid4()}"
    ready = ctx.Barrier(2)
    workers = [ctx.Process(target=_hammer, args=(store_kind, location, scope, ready, out)) for _ in range(2)]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
        assert worker.exitcode == 0
    assert all(results), "each process must get some of the budget"
    return sorted(grant for grants in results for grant in grants)


def _max_in_any_second(grants: list[float]) -> int:
    best = 0
    for i, start in enumerate(grants):
        best = max(best, sum(1 for g in grants[i:] if g < start + 1.0))
    return best


def _assert_within_budget(grants: list[float]) -> None:
    # GCRA without burst: in any one-second window at most RATE grants (+2 for the jitter of
    # recording the time after the grant on a loaded machine; a broken limiter gives hundreds).
    assert _max_in_any_second(grants) <= RATE + 2
    # ...and the budget is used, not starved by the contention.
    assert len(grants) >= RATE * HAMMER_SECONDS * 0.7


def test_it_holds_the_budget_across_two_processes_embedded(tmp_path):
    _assert_within_budget(_run_two_processes("sqlite", str(tmp_path / "buckets.sqlite3")))


@pytest.mark.redis
def test_it_holds_the_budget_across_two_processes_with_redis():
    _assert_within_budget(_run_two_processes("redis", REDIS_URL))


def test_its_sleeps_run_a_little_past_the_wait_at_random(monkeypatch):
    """So processes told the same wait do not all wake in lockstep (see sleep_with_jitter)."""
    slept: list[float] = []
    monkeypatch.setattr(ratelimit.time, "sleep", slept.append)
    for wait in [1.0] * 20 + [0.05] * 20:
        ratelimit.sleep_with_jitter(wait)
    long, short = slept[:20], slept[20:]
    assert all(1.0 <= s <= 1.02 for s in long) and all(0.05 <= s <= 0.055 for s in short)
    assert len(set(long)) > 10 and len(set(short)) > 10


# --- Coalescer (callback re-reads) ----------------------------------------------------------
def test_it_lets_one_holder_at_a_time_then_keeps_a_quiet_window(tmp_path, clock):
    from tasks_app.ratelimit import Coalescer

    coalescer = Coalescer(SqliteStore(tmp_path / "buckets.sqlite3", clock=clock), "test")

    assert coalescer.try_start("task-1", max_seconds=10.0)
    assert not coalescer.try_start("task-1", max_seconds=10.0)  # in flight
    assert coalescer.try_start("task-2", max_seconds=10.0)  # another key is free
    coalescer.finish("task-1", quiet_seconds=2.0)
    clock.now += 1.9
    assert not coalescer.try_start("task-1", max_seconds=10.0)  # the quiet window
    clock.now += 0.2
    assert coalescer.try_start("task-1", max_seconds=10.0)
    clock.now += 10.1  # a holder that died frees the key after max_seconds
    assert coalescer.try_start("task-1", max_seconds=10.0)


@pytest.mark.redis
def test_it_coalesces_through_redis(redis_store):
    from tasks_app.ratelimit import Coalescer

    coalescer = Coalescer(redis_store, f"test:{uuid.uuid4()}")

    assert coalescer.try_start("task-1", max_seconds=30.0)
    assert not coalescer.try_start("task-1", max_seconds=30.0)
    coalescer.finish("task-1", quiet_seconds=0.0)
    assert coalescer.try_start("task-1", max_seconds=30.0)
    coalescer.finish("task-1", quiet_seconds=30.0)
    assert not coalescer.try_start("task-1", max_seconds=30.0)
