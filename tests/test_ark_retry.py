"""tasks_app/ark/retry.py's rules, seen through ArkClient: which failures are tried again
(reads for any transient failure; create and delete only when Ark surely did nothing),
and how long the client waits (full-jitter backoff, capped, Retry-After as a floor)."""

from __future__ import annotations

import httpx
import pytest

from tasks_app.ark import (
    ArkAuthenticationError,
    ArkBadRequestError,
    ArkConnectionError,
    ArkNotFoundError,
    ArkPermissionError,
    ArkRateLimitedError,
    ArkServerError,
)

from .ark_fakes import FakeArk, RecordingLimiter, error_answer, make_client, task_answer


def test_it_retries_a_server_error_and_returns_the_later_success():
    fake = FakeArk(error_answer(500), error_answer(502), task_answer())
    waits: list[float] = []

    task = make_client(fake, waits).get_task("cgt-1")

    assert task.id == "cgt-1"
    assert len(fake.requests) == 3
    assert len(waits) == 2


@pytest.mark.parametrize(
    ("code", "error_class"),
    [
        (400, ArkBadRequestError),
        (401, ArkAuthenticationError),
        (403, ArkPermissionError),
        (404, ArkNotFoundError),
    ],
)
def test_it_never_retries_client_errors(code, error_class):
    fake = FakeArk(error_answer(code))
    waits: list[float] = []

    with pytest.raises(error_class):
        make_client(fake, waits).get_task("cgt-1")

    assert len(fake.requests) == 1
    assert waits == []


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("slow"),
        httpx.ConnectTimeout("slow"),
        httpx.ConnectError("refused"),
        httpx.ReadError("reset"),
    ],
)
def test_it_retries_network_failures_of_reads(failure):
    fake = FakeArk(failure, task_answer())

    assert make_client(fake).get_task("cgt-1").id == "cgt-1"
    assert len(fake.requests) == 2


def test_it_waits_with_exponential_backoff_and_full_jitter():
    base, retries = 0.5, 5
    waits: list[float] = []
    for _ in range(40):
        fake = FakeArk(*[error_answer(500)] * (retries + 1))
        with pytest.raises(ArkServerError):
            make_client(fake, waits, max_retries=retries, backoff_base=base, backoff_max=100.0).get_task(
                "cgt-1"
            )

    per_attempt = [waits[n::retries] for n in range(retries)]
    for n, samples in enumerate(per_attempt):
        ceiling = base * 2**n
        assert all(0.0 <= wait <= ceiling for wait in samples), (n, samples)
    # Full jitter: waits are spread out, and later attempts may wait longer.
    assert len(set(per_attempt[0])) > 30
    assert max(per_attempt[4]) > base * 2**3


def test_it_caps_every_wait_at_backoff_max():
    waits: list[float] = []
    fake = FakeArk(*[error_answer(500)] * 11)

    with pytest.raises(ArkServerError):
        make_client(fake, waits, max_retries=10, backoff_base=1.0, backoff_max=3.0).get_task("cgt-1")

    assert len(waits) == 10
    assert all(0.0 <= wait <= 3.0 for wait in waits)


def test_it_waits_at_least_retry_after_and_tells_the_limiter():
    limiter = RecordingLimiter()
    fake = FakeArk(error_answer(429, "RequestBurstTooFast", headers={"Retry-After": "2"}), task_answer())
    waits: list[float] = []

    make_client(fake, waits, rate_limiter=limiter, backoff_base=0.1).get_task("cgt-1")

    assert len(waits) == 1
    assert 2.0 <= waits[0] <= 30.0
    assert limiter.calls == [("acquire", "get"), ("penalize", "get", 2.0), ("acquire", "get")]


def test_it_gives_up_at_once_when_retry_after_exceeds_backoff_max():
    limiter = RecordingLimiter()
    fake = FakeArk(error_answer(429, "QuotaExceeded", headers={"Retry-After": "120"}))
    waits: list[float] = []

    with pytest.raises(ArkRateLimitedError) as caught:
        make_client(fake, waits, rate_limiter=limiter, backoff_max=30.0).list_tasks()

    assert caught.value.retry_after == 120.0
    assert waits == []
    assert len(fake.requests) == 1
    assert ("penalize", "list", 120.0) in limiter.calls


@pytest.mark.parametrize(
    "unsafe",
    [
        error_answer(500),
        error_answer(503),
        httpx.ReadTimeout("sent, no answer"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("reset"),
    ],
)
def test_it_never_repeats_a_create_that_may_have_reached_ark(unsafe):
    fake = FakeArk(unsafe, httpx.Response(200, json={"id": "cgt-dup"}))

    with pytest.raises((ArkServerError, ArkConnectionError)):
        make_client(fake).create_task(model="m", content=[{"type": "text", "text": "x"}])

    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    "safe",
    [
        error_answer(429, headers={"Retry-After": "1"}),
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("no route"),
    ],
)
def test_it_repeats_a_create_that_surely_did_not_reach_ark(safe):
    fake = FakeArk(safe, httpx.Response(200, json={"id": "cgt-once"}))

    task_id = make_client(fake).create_task(model="m", content=[{"type": "text", "text": "x"}])

    assert task_id == "cgt-once"
    assert len(fake.requests) == 2
