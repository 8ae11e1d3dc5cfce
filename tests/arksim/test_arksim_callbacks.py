"""arksim: callbacks POST the task object on each status change, with retries, never crashing the sim."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from arksim import SimClock, Simulator

from .support import KEY, START

HOOK = "https://dash.example/hooks/ark/s3cret-path/"


class Receiver:
    """A callback endpoint: records bodies and answers with the next scripted status."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.calls: list[dict] = []
        self.urls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        self.calls.append(json.loads(request.content))
        return httpx.Response(self.statuses.pop(0) if self.statuses else 200)

    @property
    def seen(self) -> list[str]:
        return [call["status"] for call in self.calls]


def _sim(receiver: Receiver | httpx.BaseTransport) -> Simulator:
    transport = receiver if isinstance(receiver, httpx.BaseTransport) else httpx.MockTransport(receiver)
    return Simulator(api_keys=(KEY,), clock=SimClock(START), callback_transport=transport)


def _create(ark: Simulator, text: str = "a cat") -> str:
    return ark.create_task(
        {
            "model": "doubao-seedance-1-0-pro-250528",
            "content": [{"type": "text", "text": text}],
            "callback_url": HOOK,
        }
    )


def test_it_posts_the_task_object_on_each_status_change() -> None:
    receiver = Receiver()
    ark = _sim(receiver)
    task_id = _create(ark)
    assert receiver.seen == ["queued"]
    ark.advance(5)
    ark.advance(20)
    assert receiver.seen == ["queued", "running", "succeeded"]
    assert set(receiver.urls) == {HOOK}
    final = receiver.calls[-1]
    assert final == ark.task_json(task_id)
    assert "video_url" in final["content"]
    assert [call["updated_at"] - START for call in receiver.calls] == [0, 5, 25]


def test_it_sends_each_intermediate_state_when_time_jumps() -> None:
    receiver = Receiver()
    ark = _sim(receiver)
    _create(ark, "x [fail]")
    ark.advance(3600)
    assert receiver.seen == ["queued", "running", "failed"]
    assert receiver.calls[-1]["error"]["code"] == "OutputVideoSensitiveContentDetected.PolicyViolation"
    assert "content" not in receiver.calls[1]


def test_it_calls_back_when_a_task_expires() -> None:
    receiver = Receiver()
    ark = _sim(receiver)
    ark.add_task(status="queued", callback_url=HOOK, execution_expires_after=3600, queue_seconds=1e9)
    ark.advance(3600)
    assert receiver.seen == ["expired"]


def test_it_retries_a_final_callback_three_times() -> None:
    receiver = Receiver(500, 500, 500, 500, 500)
    ark = _sim(receiver)
    ark.add_task(status="running", callback_url=HOOK)
    ark.advance(20)
    assert receiver.seen == ["succeeded"] * 4
    assert ark.stats()["callback_failures"] == 4


def test_it_stops_retrying_once_acknowledged() -> None:
    receiver = Receiver(500, 204)
    ark = _sim(receiver)
    ark.add_task(status="running", callback_url=HOOK)
    ark.advance(20)
    assert receiver.seen == ["succeeded", "succeeded"]
    assert (ark.stats()["callbacks"], ark.stats()["callback_failures"]) == (1, 1)


def test_it_does_not_retry_a_running_callback() -> None:
    receiver = Receiver(500)
    ark = _sim(receiver)
    ark.add_task(status="queued", callback_url=HOOK)
    ark.advance(5)
    assert receiver.seen == ["running"]


def test_it_survives_a_receiver_that_cannot_be_reached_and_logs_no_secret_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    ark = _sim(httpx.MockTransport(unreachable))
    caplog.set_level(logging.INFO, logger="arksim")
    task_id = _create(ark)
    ark.advance(25)
    assert ark.task_json(task_id)["status"] == "succeeded"
    assert ark.stats()["callback_failures"] == 1 + 1 + 4
    assert "dash.example" in caplog.text and "s3cret-path" not in caplog.text


def test_it_lets_a_receiver_read_the_task_back_from_the_simulator() -> None:
    statuses_read: list[str] = []
    ark: Simulator

    def reread(request: httpx.Request) -> httpx.Response:
        # What ArkDash's hook does: never trust the body, re-read the task by id.
        task_id = json.loads(request.content)["id"]
        with httpx.Client(transport=ark.transport(), headers={"Authorization": f"Bearer {KEY}"}) as client:
            statuses_read.append(client.get(f"http://arksim.test/api/v3/contents/generations/tasks/{task_id}")
                                 .json()["status"])  # fmt: skip
        return httpx.Response(200)

    ark = _sim(httpx.MockTransport(reread))
    _create(ark)
    ark.advance(25)
    assert statuses_read == ["queued", "succeeded", "succeeded"]


def test_it_delivers_changes_that_fell_due_before_a_create() -> None:
    receiver = Receiver()
    ark = _sim(receiver)
    ark.add_task(status="queued", callback_url=HOOK)
    ark.clock.advance(5)  # no tick: the create below applies the change
    _create(ark)
    assert receiver.seen == ["running", "queued"]
