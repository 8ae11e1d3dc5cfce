"""The official SDK pointed at ArkDash, itself pointed at the simulator: Ark's create, get, list, delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from volcenginesdkarkruntime._exceptions import ArkBadRequestError, ArkNotFoundError

from tasks_app.models import AuditEntry, Task

from .gateway_support import make_token, sdk

# Fixtures shared by the gateway tests.

pytestmark = pytest.mark.django_db

TEXT = [{"type": "text", "text": "a red panda drinking tea"}]


@pytest.fixture
def client(sim, account, operator, in_process_django):
    return sdk(in_process_django, make_token(operator, [account]))


def test_it_creates_a_task_that_is_mirrored_before_the_answer(sim, account, client):
    created = client.content_generation.tasks.create(
        model="doubao-seedance-1-0-pro-250528", content=TEXT, return_last_frame=True, ratio="9:16"
    )
    task = Task.objects.get(account=account, ark_id=created.id)
    assert task.status == "queued" and task.ratio == "9:16"
    upstream = sim.task_json(created.id)
    assert upstream["status"] == "queued"
    assert task.gateway_origin.endpoint == "doubao-seedance-1-0-pro-250528"


def test_it_adds_arkdash_s_own_callback_url_to_the_create(sim, account, client):
    created = client.content_generation.tasks.create(model="doubao-seedance-1-0-pro-250528", content=TEXT)
    sent = sim._tasks[created.id].callback_url
    assert sent == f"http://testserver/gateway/hooks/{account.callback_secret}/"


def test_it_gets_a_task_with_the_sdk(sim, mirror, client):
    task_id = sim.add_task(status="succeeded", return_last_frame=True)
    mirror(task_id)
    task = client.content_generation.tasks.get(task_id=task_id)
    body = sim.task_json(task_id)
    assert (task.id, task.status, task.created_at) == (task_id, "succeeded", body["created_at"])
    assert task.content.video_url == body["content"]["video_url"]  # not archived yet: Ark's URL
    assert task.usage.total_tokens == body["usage"]["total_tokens"] > 0


def test_it_lists_tasks_with_the_sdks_filters_and_no_upstream_call(sim, mirror, client):
    start = int(sim.clock.now())
    done = [sim.add_task(status="succeeded", created_at=start - 100 - n) for n in range(3)]
    for task_id in done:
        mirror(task_id)
    queued = sim.add_task(status="queued", created_at=start - 1)
    mirror(queued)
    sim.reset_stats()
    page = client.content_generation.tasks.list(page_num=1, page_size=2, status="succeeded")
    assert page.total == 3 and [item.id for item in page.items] == done[:2]
    by_ids = client.content_generation.tasks.list(task_ids=[done[0], done[2]])
    assert sorted(item.id for item in by_ids.items) == sorted([done[0], done[2]])
    by_model = client.content_generation.tasks.list(model=sim.task_json(queued)["model"], status="queued")
    assert by_model.total == 1 and by_model.items[0].id == queued
    assert client.content_generation.tasks.list(service_tier="flex").total == 0
    assert sim.stats()["list"] == 0 and sim.stats()["get"] == 0


def test_it_lists_by_the_endpoint_id_a_gateway_create_was_sent_to(sim, client):
    created = client.content_generation.tasks.create(model="ep-20250528154802-pro01", content=TEXT)
    page = client.content_generation.tasks.list(model="ep-20250528154802-pro01")
    assert [item.id for item in page.items] == [created.id]


def test_it_cancels_and_deletes_with_the_sdk_through_the_audited_services(sim, mirror, client):
    queued, finished, running = sim.add_task(), sim.add_task(status="failed"), sim.add_task(status="running")
    for task_id in (queued, finished, running):
        mirror(task_id)
    client.content_generation.tasks.delete(queued)
    client.content_generation.tasks.delete(finished)
    assert client.content_generation.tasks.get(task_id=queued).status == "cancelled"
    with pytest.raises(ArkNotFoundError):
        client.content_generation.tasks.get(task_id=finished)
    with pytest.raises(ArkBadRequestError) as refused:
        client.content_generation.tasks.delete(running)
    assert refused.value.code == "InvalidParameter.TaskStatus"
    assert sim.task_json(finished) is None and sim.task_json(queued)["status"] == "cancelled"
    audit = {(entry.ark_id, entry.action, entry.result) for entry in AuditEntry.objects.all()}
    assert audit == {(queued, "cancel", "done"), (finished, "delete", "done"), (running, "delete", "refused")}
    assert Task.objects.get(ark_id=finished).gone_upstream_at is not None  # history kept, hidden like Ark


def test_it_lists_and_reads_a_task_ten_days_old(sim, mirror, client):
    task_id = sim.add_task(status="succeeded")
    old = datetime.now(UTC) - timedelta(days=10)
    mirror(task_id, ark_created_at=old, ark_updated_at=old, gone_upstream_at=old + timedelta(days=7))
    assert client.content_generation.tasks.get(task_id=task_id).id == task_id
    page = client.content_generation.tasks.list(task_ids=[task_id])
    assert page.total == 1 and page.items[0].created_at == int(old.timestamp())
    assert [item.id for item in client.content_generation.tasks.list().items] == [task_id]


def test_it_creates_3d_tasks_with_options_in_extra_body(sim, account, client):
    created = client.content_generation.tasks.create(
        model="doubao-seed3d-1-0-250928",
        content=[{"type": "image_url", "image_url": {"url": "https://example.com/chair.png"}}],
        extra_body={"fileformat": "obj"},
    )
    assert Task.objects.get(ark_id=created.id).kind == "3d"
    assert sim.task_json(created.id)["fileformat"] == "obj"
