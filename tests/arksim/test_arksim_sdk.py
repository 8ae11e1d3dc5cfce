"""arksim works with the official Ark SDK (volcenginesdkarkruntime) pointed at it in server mode."""

from __future__ import annotations

from typing import Any

import pytest
from volcenginesdkarkruntime import Ark
from volcenginesdkarkruntime._exceptions import ArkAPIStatusError, ArkAuthenticationError, ArkNotFoundError

from arksim import SimClock, Simulator
from arksim.server import ServerHandle

from .support import KEY, OTHER_KEY, START

# Every way the simulator can answer what Ark's documents leave open.
MODES: dict[str, dict[str, Any]] = {
    "default": {},
    "oldest-first": {"list_order": "oldest"},
    "shuffled": {"list_order": "shuffled"},
    "small-limits": {"max_task_ids": 2, "max_request_line": 1024},
    "refuse-403": {"refused_delete_status": 403},
    "refuse-409": {"refused_delete_status": 409},
    "grouped-keys": {"key_groups": [[KEY, OTHER_KEY]]},
    "exact-window": {"exact_window": True},
}
# Tasks are seeded a second before the frozen clock: the exact window hides the current second.
BEFORE = START - 1


@pytest.fixture(params=list(MODES))
def ark(request: pytest.FixtureRequest) -> Simulator:
    return Simulator(
        api_keys=(KEY, OTHER_KEY), list_rate_per_second=None, clock=SimClock(START), **MODES[request.param]
    )


@pytest.fixture
def client(server: ServerHandle) -> Ark:
    return Ark(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=10)


def test_it_creates_a_task_with_the_sdk_sending_nulls(ark: Simulator, client: Ark) -> None:
    created = client.content_generation.tasks.create(
        model="doubao-seedance-1-0-pro-250528",
        content=[{"type": "text", "text": "a red panda drinking tea"}],
        return_last_frame=True,
        ratio="9:16",
    )
    task = ark.task_json(created.id)
    assert task["status"] == "queued" and task["ratio"] == "9:16"


def test_it_gets_a_task_with_the_sdk(ark: Simulator, client: Ark) -> None:
    task_id = ark.add_task(status="succeeded", return_last_frame=True, created_at=BEFORE)
    task = client.content_generation.tasks.get(task_id=task_id)
    assert (task.id, task.status, task.created_at) == (task_id, "succeeded", BEFORE)
    assert task.content.video_url == ark.output_url(task_id, "video")
    assert task.usage.total_tokens == task.usage.completion_tokens > 0


def test_it_lists_tasks_with_the_sdks_filters(ark: Simulator, client: Ark) -> None:
    done = [ark.add_task(status="succeeded", created_at=BEFORE - n) for n in range(3)]
    ark.add_task(status="queued", endpoint="ep-20250528154802-pro01", created_at=BEFORE)
    page = client.content_generation.tasks.list(page_num=1, page_size=3, status="succeeded")
    assert page.total == 3 and sorted(item.id for item in page.items) == sorted(done)
    by_ids = client.content_generation.tasks.list(task_ids=[done[0], done[2]])
    assert sorted(item.id for item in by_ids.items) == sorted([done[0], done[2]])
    by_endpoint = client.content_generation.tasks.list(model="ep-20250528154802-pro01")
    assert by_endpoint.total == 1 and by_endpoint.items[0].status == "queued"
    assert client.content_generation.tasks.list(service_tier="flex").total == 0


def test_it_cancels_and_deletes_with_the_sdk(ark: Simulator, client: Ark) -> None:
    queued, finished, running = (ark.add_task(status=status, created_at=BEFORE) for status in ("queued", "failed", "running"))
    client.content_generation.tasks.delete(queued)
    client.content_generation.tasks.delete(finished)
    assert client.content_generation.tasks.get(task_id=queued).status == "cancelled"
    with pytest.raises(ArkNotFoundError):
        client.content_generation.tasks.get(task_id=finished)
    with pytest.raises(ArkAPIStatusError) as refused:
        client.content_generation.tasks.delete(running)
    assert refused.value.status_code == ark.refused_delete_status
    assert client.content_generation.tasks.get(task_id=running).status == "running"


def test_it_reports_a_wrong_key_as_the_sdks_authentication_error(server: ServerHandle) -> None:
    client = Ark(base_url=server.base_url, api_key="nope", max_retries=0, timeout=10)
    with pytest.raises(ArkAuthenticationError) as raised:
        client.content_generation.tasks.list()
    assert raised.value.code == "AuthenticationError"
