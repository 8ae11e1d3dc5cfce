"""arksim works with the official Ark SDK (volcenginesdkarkruntime) pointed at it in server mode."""

from __future__ import annotations

import pytest
from volcenginesdkarkruntime import Ark
from volcenginesdkarkruntime._exceptions import ArkAuthenticationError, ArkBadRequestError, ArkNotFoundError

from arksim import Simulator
from arksim.server import ServerHandle

from .support import KEY, START


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
    task_id = ark.add_task(status="succeeded", return_last_frame=True)
    task = client.content_generation.tasks.get(task_id=task_id)
    assert (task.id, task.status, task.created_at) == (task_id, "succeeded", START)
    assert task.content.video_url == ark.output_url(task_id, "video")
    assert task.usage.total_tokens == task.usage.completion_tokens > 0


def test_it_lists_tasks_with_the_sdks_filters(ark: Simulator, client: Ark) -> None:
    done = [ark.add_task(status="succeeded", created_at=START - n) for n in range(3)]
    ark.add_task(status="queued", endpoint="ep-20250528154802-pro01")
    page = client.content_generation.tasks.list(page_num=1, page_size=2, status="succeeded")
    assert page.total == 3 and [item.id for item in page.items] == done[:2]
    by_ids = client.content_generation.tasks.list(task_ids=[done[0], done[2]])
    assert sorted(item.id for item in by_ids.items) == sorted([done[0], done[2]])
    by_endpoint = client.content_generation.tasks.list(model="ep-20250528154802-pro01")
    assert by_endpoint.total == 1 and by_endpoint.items[0].status == "queued"
    assert client.content_generation.tasks.list(service_tier="flex").total == 0


def test_it_cancels_and_deletes_with_the_sdk(ark: Simulator, client: Ark) -> None:
    queued, finished, running = ark.add_task(), ark.add_task(status="failed"), ark.add_task(status="running")
    client.content_generation.tasks.delete(queued)
    client.content_generation.tasks.delete(finished)
    assert client.content_generation.tasks.get(task_id=queued).status == "cancelled"
    with pytest.raises(ArkNotFoundError):
        client.content_generation.tasks.get(task_id=finished)
    with pytest.raises(ArkBadRequestError) as refused:
        client.content_generation.tasks.delete(running)
    assert refused.value.code == "InvalidParameter.TaskStatus"


def test_it_reports_a_wrong_key_as_the_sdks_authentication_error(server: ServerHandle) -> None:
    client = Ark(base_url=server.base_url, api_key="nope", max_retries=0, timeout=10)
    with pytest.raises(ArkAuthenticationError) as raised:
        client.content_generation.tasks.list()
    assert raised.value.code == "AuthenticationError"
