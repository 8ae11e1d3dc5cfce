"""arksim: injected faults, per-key rate limits with Retry-After, and call statistics (in-process)."""

from __future__ import annotations

import time

import httpx
import pytest

from arksim import SimClock, Simulator

from .support import KEY, OTHER_KEY, START, TASKS, api_client


def test_it_delays_a_call_for_a_latency_fault(ark: Simulator, api: httpx.Client) -> None:
    ark.faults.inject("list", "latency", latency=0.2)
    started = time.monotonic()
    response = api.get(TASKS)
    assert time.monotonic() - started >= 0.2
    assert response.status_code == 200


def test_it_answers_429_with_retry_after_for_a_429_fault(ark: Simulator, api: httpx.Client) -> None:
    ark.faults.inject("get", "429", retry_after=7)
    response = api.get(f"{TASKS}/cgt-20250101000000-abcde")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json()["error"]["code"] == "RateLimitExceeded.EndpointRPMExceeded"
    assert ark.stats()["get_429"] == 1


@pytest.mark.parametrize(("status", "expected"), [(None, 500), (503, 503)])
def test_it_answers_a_server_error_for_a_500_fault(
    ark: Simulator, api: httpx.Client, status: int | None, expected: int
) -> None:
    ark.faults.inject("create", "500", status=status)
    response = api.post(
        TASKS, json={"model": "doubao-seedance-1-0-pro-250528", "content": [{"type": "text", "text": "x"}]}
    )
    assert response.status_code == expected
    assert response.json()["error"]["code"] == "InternalServiceError"
    assert api.get(TASKS).json()["total"] == 0  # the create did not happen


def test_it_drops_the_connection_for_a_drop_fault(ark: Simulator, api: httpx.Client) -> None:
    ark.faults.inject("delete", "drop")
    with pytest.raises(httpx.RemoteProtocolError):
        api.delete(f"{TASKS}/cgt-20250101000000-abcde")
    assert api.delete(f"{TASKS}/cgt-20250101000000-abcde").status_code == 404  # one time only


def test_it_cuts_the_body_half_way_for_a_truncate_fault(ark: Simulator, api: httpx.Client) -> None:
    ark.add_task(status="succeeded")
    ark.faults.inject("list", "truncate")
    response = api.get(TASKS)
    announced = int(response.headers["Content-Length"])
    assert len(response.content) == announced // 2
    with pytest.raises(ValueError):
        response.json()


def test_it_announces_more_than_it_sends_for_a_bad_length_fault(ark: Simulator) -> None:
    task_id = ark.add_task(status="succeeded")
    ark.faults.inject("output", "bad_length")
    with httpx.Client(transport=ark.transport()) as client:
        response = client.get(ark.output_url(task_id, "video"))
    assert len(response.content) == ark.output_size(task_id, "video")
    assert int(response.headers["Content-Length"]) > len(response.content)


def test_it_truncates_output_downloads_too(ark: Simulator) -> None:
    task_id = ark.add_task(status="succeeded")
    ark.faults.inject("output", "truncate")
    with httpx.Client(transport=ark.transport()) as client:
        response = client.get(ark.output_url(task_id, "video"))
        again = client.get(ark.output_url(task_id, "video"))
    assert int(response.headers["Content-Length"]) == ark.output_size(task_id, "video")
    assert len(response.content) == ark.output_size(task_id, "video") // 2
    assert len(again.content) == ark.output_size(task_id, "video")


def test_it_applies_a_fault_times_times_then_answers_normally(ark: Simulator, api: httpx.Client) -> None:
    ark.faults.inject("*", "500", times=2)
    statuses = [api.get(TASKS).status_code, api.get(f"{TASKS}/x").status_code, api.get(TASKS).status_code]
    assert statuses == [500, 500, 200]
    assert ark.stats()["faults"] == 2


def test_it_forgets_faults_on_clear(ark: Simulator, api: httpx.Client) -> None:
    ark.faults.inject("list", "500", times=5)
    ark.faults.clear()
    assert api.get(TASKS).status_code == 200


@pytest.mark.parametrize(
    "kwargs",
    [
        {"endpoint": "upload", "kind": "500"},
        {"endpoint": "get", "kind": "teapot"},
        {"endpoint": "get", "kind": "500", "times": 0},
        {"endpoint": "get", "kind": "latency", "latency": -1},
        {"endpoint": "get", "kind": "500", "status": 200},
    ],
)
def test_it_rejects_meaningless_faults(ark: Simulator, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ark.faults.inject(kwargs.pop("endpoint"), kwargs.pop("kind"), **kwargs)


def test_it_limits_list_calls_per_key_and_says_when_to_retry() -> None:
    ark = Simulator(api_keys=(KEY, OTHER_KEY), clock=SimClock(START), list_rate_per_second=1.0)
    with api_client(ark) as api, api_client(ark, OTHER_KEY) as other:
        assert api.get(TASKS).status_code == 200
        limited = api.get(TASKS)
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "1"
        assert limited.json()["error"]["code"] == "RateLimitExceeded.EndpointRPMExceeded"
        assert other.get(TASKS).status_code == 200  # another key has its own budget
        ark.advance(1)
        assert api.get(TASKS).status_code == 200
    assert (ark.stats()["list"], ark.stats()["list_429"]) == (4, 1)


def test_it_rounds_retry_after_up_to_whole_seconds() -> None:
    ark = Simulator(api_keys=(KEY,), clock=SimClock(START), list_rate_per_second=0.4)
    with api_client(ark) as api:
        api.get(TASKS)
        assert api.get(TASKS).headers["Retry-After"] == "3"  # 2.5 s to the next token


@pytest.mark.parametrize(("method", "endpoint"), [("GET", "get"), ("DELETE", "delete")])
def test_it_limits_get_and_delete_at_their_own_rates(method: str, endpoint: str) -> None:
    ark = Simulator(
        api_keys=(KEY,), clock=SimClock(START), get_rate_per_second=20.0, delete_rate_per_second=20.0
    )
    with api_client(ark) as api:
        statuses = [api.request(method, f"{TASKS}/cgt-20250101000000-abcde").status_code for _ in range(21)]
    assert statuses == [404] * 20 + [429]
    assert ark.stats()[f"{endpoint}_429"] == 1


def test_it_counts_calls_per_endpoint_and_resets(ark: Simulator, api: httpx.Client) -> None:
    task_id = ark.add_task(status="succeeded")
    api.get(TASKS)
    api.get(f"{TASKS}/{task_id}")
    api.get(f"{TASKS}/{task_id}")
    api.post(
        TASKS, json={"model": "doubao-seedance-1-0-pro-250528", "content": [{"type": "text", "text": "x"}]}
    )
    api.delete(f"{TASKS}/{task_id}")
    api.get(ark.output_url(task_id, "video"))
    api.get("http://arksim.test/_sim/stats")  # the control plane is not counted
    stats = ark.stats()
    assert {name: stats[name] for name in ("list", "get", "create", "delete", "output")} == {
        "list": 1, "get": 2, "create": 1, "delete": 1, "output": 1,
    }  # fmt: skip
    ark.reset_stats()
    assert ark.stats()["get"] == 0 and ark.stats()["list_429"] == 0
