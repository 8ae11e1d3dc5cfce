"""ArkClient retries: which failures are retried, how long it waits, the shared rate limiter."""

from __future__ import annotations

import logging

import httpx
import pytest

from tasks_app.ark import (
    ArkAuthenticationError,
    ArkBadRequestError,
    ArkClient,
    ArkConnectionError,
    ArkNotFoundError,
    ArkPermissionError,
    ArkRateLimitedError,
    ArkServerError,
    ArkTimeoutError,
)

KEY = "sk-retry-secret-abcdef"
BASE = "https://ark.example/api/v3"


class FakeArk:
    """Answers with scripted steps in order; records requests."""

    def __init__(self, *steps: httpx.Response | Exception) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


class RecordingLimiter:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def acquire(self, *, endpoint: str) -> None:
        self.calls.append(("acquire", endpoint))

    def penalize(self, *, endpoint: str, retry_after: float) -> None:
        self.calls.append(("penalize", endpoint, retry_after))


def make_client(fake: FakeArk, waits: list[float] | None = None, **kwargs) -> ArkClient:
    sink = waits if waits is not None else []
    return ArkClient(BASE, KEY, transport=httpx.MockTransport(fake), sleep=sink.append, **kwargs)


def ok_task(task_id: str = "cgt-1") -> httpx.Response:
    return httpx.Response(200, json={"id": task_id, "status": "queued"})


def status(code: int, headers: dict[str, str] | None = None, error_code: str = "Err") -> httpx.Response:
    return httpx.Response(
        code, headers=headers, json={"error": {"code": error_code, "message": f"status {code}"}}
    )


def test_it_retries_a_server_error_and_returns_the_later_success():
    fake = FakeArk(status(500), status(502), ok_task())
    waits: list[float] = []

    task = make_client(fake, waits).get_task("cgt-1")

    assert task.id == "cgt-1"
    assert len(fake.requests) == 3
    assert len(waits) == 2


def test_it_stops_after_max_retries_and_raises_the_last_error():
    fake = FakeArk(*[status(500)] * 3)
    waits: list[float] = []

    with pytest.raises(ArkServerError):
        make_client(fake, waits, max_retries=2).get_task("cgt-1")

    assert len(fake.requests) == 3
    assert len(waits) == 2


def test_it_makes_one_attempt_when_retries_are_off():
    fake = FakeArk(status(503))
    waits: list[float] = []

    with pytest.raises(ArkServerError):
        make_client(fake, waits, max_retries=0).get_task("cgt-1")

    assert len(fake.requests) == 1
    assert waits == []


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
    fake = FakeArk(status(code))
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
    fake = FakeArk(failure, ok_task())

    assert make_client(fake).get_task("cgt-1").id == "cgt-1"
    assert len(fake.requests) == 2


def test_it_raises_a_timeout_error_when_every_attempt_times_out():
    fake = FakeArk(*[httpx.ReadTimeout("slow")] * 4)

    with pytest.raises(ArkTimeoutError):
        make_client(fake).list_tasks()

    assert len(fake.requests) == 4


def test_it_waits_with_exponential_backoff_and_full_jitter():
    base, retries = 0.5, 5
    waits: list[float] = []
    for _ in range(40):
        fake = FakeArk(*[status(500)] * (retries + 1))
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
    fake = FakeArk(*[status(500)] * 11)

    with pytest.raises(ArkServerError):
        make_client(fake, waits, max_retries=10, backoff_base=1.0, backoff_max=3.0).get_task("cgt-1")

    assert len(waits) == 10
    assert all(0.0 <= wait <= 3.0 for wait in waits)


def test_it_waits_at_least_retry_after_and_tells_the_limiter():
    limiter = RecordingLimiter()
    fake = FakeArk(status(429, {"Retry-After": "2"}, "RequestBurstTooFast"), ok_task())
    waits: list[float] = []

    make_client(fake, waits, rate_limiter=limiter, backoff_base=0.1).get_task("cgt-1")

    assert len(waits) == 1
    assert 2.0 <= waits[0] <= 30.0
    assert limiter.calls == [("acquire", "get"), ("penalize", "get", 2.0), ("acquire", "get")]


def test_it_gives_up_at_once_when_retry_after_exceeds_backoff_max():
    limiter = RecordingLimiter()
    fake = FakeArk(status(429, {"Retry-After": "120"}, "QuotaExceeded"))
    waits: list[float] = []

    with pytest.raises(ArkRateLimitedError) as caught:
        make_client(fake, waits, rate_limiter=limiter, backoff_max=30.0).list_tasks()

    assert caught.value.retry_after == 120.0
    assert waits == []
    assert len(fake.requests) == 1
    assert ("penalize", "list", 120.0) in limiter.calls


def test_it_penalizes_a_default_pause_when_a_429_has_no_retry_after():
    limiter = RecordingLimiter()
    fake = FakeArk(status(429), ok_task())

    make_client(fake, rate_limiter=limiter).get_task("cgt-1")

    penalties = [call for call in limiter.calls if call[0] == "penalize"]
    assert penalties == [("penalize", "get", 1.0)]


def test_it_acquires_the_limiter_before_every_attempt_with_the_endpoint_name():
    limiter = RecordingLimiter()
    fake = FakeArk(
        status(500),
        httpx.Response(200, json={"total": 0, "items": []}),
        httpx.Response(200, json={"id": "cgt-9"}),
        ok_task(),
    )
    client = make_client(fake, rate_limiter=limiter)

    client.list_tasks()
    client.create_task(model="m", content=[{"type": "text", "text": "x"}])
    client.get_task("cgt-9")

    assert [call for call in limiter.calls if call[0] == "acquire"] == [
        ("acquire", "list"),
        ("acquire", "list"),
        ("acquire", "create"),
        ("acquire", "get"),
    ]


@pytest.mark.parametrize(
    "unsafe",
    [
        status(500),
        status(503),
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
    [status(429, {"Retry-After": "1"}), httpx.ConnectError("refused"), httpx.ConnectTimeout("no route")],
)
def test_it_repeats_a_create_that_surely_did_not_reach_ark(safe):
    fake = FakeArk(safe, httpx.Response(200, json={"id": "cgt-once"}))

    task_id = make_client(fake).create_task(model="m", content=[{"type": "text", "text": "x"}])

    assert task_id == "cgt-once"
    assert len(fake.requests) == 2


def test_it_logs_each_retry_without_the_key(caplog):
    caplog.set_level(logging.DEBUG, logger="tasks_app.ark")
    fake = FakeArk(status(500), status(429, {"Retry-After": "1"}), ok_task())

    make_client(fake).get_task("cgt-1")

    retries = [record for record in caplog.records if "retrying" in record.getMessage()]
    assert len(retries) == 2
    assert "contents/generations/tasks/cgt-1" in retries[0].getMessage()
    assert KEY not in caplog.text
