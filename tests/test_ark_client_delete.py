"""ArkClient.delete_task: Ark's state table, and never repeating a DELETE blindly."""

from __future__ import annotations

import httpx
import pytest

from tasks_app.ark import (
    ArkBadRequestError,
    ArkClient,
    ArkConnectionError,
    ArkDeleteRefusedError,
    ArkPermissionError,
    ArkProtocolError,
    ArkRateLimitedError,
    ArkServerError,
    ArkTimeoutError,
)

KEY = "sk-delete-secret"
TASK_PATH = "/api/v3/contents/generations/tasks/cgt-1"


class FakeArk:
    def __init__(self, *steps: httpx.Response | Exception) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.url.path == TASK_PATH
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    @property
    def calls(self) -> list[str]:
        return [request.method for request in self.requests]


def make_client(fake: FakeArk) -> ArkClient:
    return ArkClient(
        "https://ark.example/api/v3", KEY, transport=httpx.MockTransport(fake), sleep=lambda s: None
    )


def task(status: str) -> httpx.Response:
    return httpx.Response(
        200, json={"id": "cgt-1", "status": status, "model": "doubao-seedance-1-0-pro-250528"}
    )


def not_found() -> httpx.Response:
    return httpx.Response(404, json={"error": {"code": "NotFound", "message": "task cgt-1 not found"}})


def refused(why: str, status: int = 400, code: str = "InvalidParameter.TaskStatus") -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": why}})


@pytest.mark.parametrize("body", [b"", b"{}"])
def test_it_returns_the_cancelled_task_after_deleting_a_queued_one(body):
    fake = FakeArk(httpx.Response(200, content=body), task("cancelled"))

    result = make_client(fake).delete_task("cgt-1")

    assert result is not None
    assert result.status == "cancelled"
    assert fake.calls == ["DELETE", "GET"]


def test_it_returns_none_after_deleting_a_finished_record():
    fake = FakeArk(httpx.Response(200, json={}), not_found())

    assert make_client(fake).delete_task("cgt-1") is None
    assert fake.calls == ["DELETE", "GET"]


def test_it_returns_none_when_the_record_is_already_gone():
    fake = FakeArk(not_found())

    assert make_client(fake).delete_task("cgt-1") is None
    assert fake.calls == ["DELETE"]


@pytest.mark.parametrize("http_status", [400, 403, 409])
@pytest.mark.parametrize("task_status", ["running", "cancelled"])
def test_it_raises_arks_refusal_once_a_re_read_says_why(http_status, task_status):
    fake = FakeArk(refused("not allowed", http_status, "SomeUndocumentedCode"), task(task_status))

    with pytest.raises(ArkDeleteRefusedError) as caught:
        make_client(fake).delete_task("cgt-1")

    assert caught.value.status == task_status
    assert caught.value.task.status == task_status
    assert caught.value.http_status == http_status
    assert fake.calls == ["DELETE", "GET"]  # never a second DELETE


def test_it_returns_none_when_a_refused_delete_finds_the_record_gone():
    fake = FakeArk(refused("conflict", 409, "Conflict"), not_found())

    assert make_client(fake).delete_task("cgt-1") is None
    assert fake.calls == ["DELETE", "GET"]


def test_it_raises_a_refusal_the_re_read_does_not_explain_as_it_came():
    fake = FakeArk(refused("account overdue", 403, "AccountOverdueError"), task("queued"))

    with pytest.raises(ArkPermissionError) as caught:
        make_client(fake).delete_task("cgt-1")

    assert not isinstance(caught.value, ArkBadRequestError)
    assert caught.value.code == "AccountOverdueError"
    assert fake.calls == ["DELETE", "GET"]


@pytest.mark.parametrize(
    "unknown",
    [
        httpx.Response(500, json={"error": {"code": "InternalServiceError", "message": "oops"}}),
        httpx.ReadTimeout("sent, no answer"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.Response(200, content=b"{", headers={"content-length": "2"}),
    ],
)
def test_it_re_reads_instead_of_repeating_when_the_outcome_is_unknown(unknown):
    fake = FakeArk(unknown, task("cancelled"))

    result = make_client(fake).delete_task("cgt-1")

    assert result is not None and result.status == "cancelled"
    assert fake.calls == ["DELETE", "GET"]


def test_it_returns_none_when_the_re_read_finds_the_record_gone():
    fake = FakeArk(httpx.ReadTimeout("slow"), not_found())

    assert make_client(fake).delete_task("cgt-1") is None
    assert fake.calls == ["DELETE", "GET"]


@pytest.mark.parametrize("unchanged", ["queued", "succeeded"])
def test_it_sends_the_delete_once_more_when_the_re_read_shows_it_did_not_happen(unchanged):
    fake = FakeArk(
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        task(unchanged),
        httpx.Response(200, json={}),
        task("cancelled") if unchanged == "queued" else not_found(),
    )

    result = make_client(fake).delete_task("cgt-1")

    assert fake.calls == ["DELETE", "GET", "DELETE", "GET"]
    assert (result.status if result else None) == ("cancelled" if unchanged == "queued" else None)


def test_it_gives_up_with_the_original_error_when_the_second_delete_is_also_unknown():
    fake = FakeArk(
        httpx.Response(503, json={"error": {"message": "busy"}}),
        task("queued"),
        httpx.Response(503, json={"error": {"message": "still busy"}}),
        task("queued"),
    )

    with pytest.raises(ArkServerError, match="still busy"):
        make_client(fake).delete_task("cgt-1")

    assert fake.calls == ["DELETE", "GET", "DELETE", "GET"]


def test_it_reports_a_refusal_when_the_re_read_shows_the_task_running():
    fake = FakeArk(httpx.ReadTimeout("slow"), task("running"))

    with pytest.raises(ArkBadRequestError, match="running"):
        make_client(fake).delete_task("cgt-1")

    assert fake.calls == ["DELETE", "GET"]


def test_it_raises_the_delete_error_when_the_re_read_fails_too():
    fake = FakeArk(httpx.ReadTimeout("slow"), *[httpx.ConnectError("refused")] * 4)

    with pytest.raises(ArkTimeoutError):
        make_client(fake).delete_task("cgt-1")

    assert fake.calls == ["DELETE", "GET", "GET", "GET", "GET"]


@pytest.mark.parametrize(
    "not_reached", [httpx.ConnectError("refused"), httpx.Response(429, headers={"Retry-After": "0"})]
)
def test_it_repeats_a_delete_that_surely_did_not_reach_ark(not_reached):
    fake = FakeArk(not_reached, httpx.Response(200, json={}), task("cancelled"))

    result = make_client(fake).delete_task("cgt-1")

    assert result is not None and result.status == "cancelled"
    assert fake.calls == ["DELETE", "DELETE", "GET"]


def test_it_raises_rate_limited_when_ark_keeps_refusing_for_load():
    fake = FakeArk(*[httpx.Response(429, headers={"Retry-After": "1"})] * 4)

    with pytest.raises(ArkRateLimitedError):
        make_client(fake).delete_task("cgt-1")

    assert fake.calls == ["DELETE"] * 4


def test_it_propagates_a_failed_re_read_after_a_clean_delete():
    fake = FakeArk(httpx.Response(200, json={}), *[httpx.ReadTimeout("slow")] * 4)

    with pytest.raises(ArkConnectionError):
        make_client(fake).delete_task("cgt-1")

    assert fake.calls == ["DELETE", "GET", "GET", "GET", "GET"]


def test_it_treats_a_garbled_re_read_as_a_protocol_error():
    fake = FakeArk(httpx.Response(200, json={}), *[httpx.Response(200, content=b"not json")] * 4)

    with pytest.raises(ArkProtocolError):
        make_client(fake).delete_task("cgt-1")
