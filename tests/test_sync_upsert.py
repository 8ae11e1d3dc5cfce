"""Mapping Ark's task objects onto mirror rows: what is written, and what is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks_app.ark import ArkTask
from tasks_app.models import Task, TaskStatus
from tasks_app.services.sync import task_upsert_from_ark, tasks_upsert_from_ark

CREATED = 1_763_700_000  # a fixed Unix time


def _video(task_id: str = "cgt-20251121120000-abcde", status: str = "queued", **extra) -> ArkTask:
    body = {
        "id": task_id,
        "model": "doubao-seedance-1-0-pro-250528",
        "status": status,
        "created_at": CREATED,
        "updated_at": CREATED + 60,
        "resolution": "720p",
        "ratio": "16:9",
        "duration": 5,
        "framespersecond": 24,
        "seed": 42,
        "service_tier": "default",
        "execution_expires_after": 172800,
    }
    if status == "succeeded":
        body["content"] = {
            "video_url": f"https://out.example/{task_id}.mp4?sig=one",
            "last_frame_url": f"https://out.example/{task_id}.png?sig=one",
        }
        body["usage"] = {"completion_tokens": 108900, "total_tokens": 108900}
    body.update(extra)
    return ArkTask.from_json(body)


def test_it_creates_a_task_with_every_mirrored_field(account):
    task, changed = task_upsert_from_ark(account=account, ark_task=_video(status="succeeded"))
    assert changed
    task = Task.objects.get(pk=task.pk)
    assert (task.kind, task.status, task.model) == ("video", "succeeded", "doubao-seedance-1-0-pro-250528")
    assert task.ark_created_at == datetime.fromtimestamp(CREATED, tz=UTC)
    assert (task.resolution, task.ratio, task.duration, task.framespersecond, task.seed) == (
        "720p",
        "16:9",
        5,
        24,
        42,
    )
    assert (task.completion_tokens, task.total_tokens) == (108900, 108900)
    assert task.video_url.startswith("https://out.example/")
    assert task.outputs_expire_at == datetime.fromtimestamp(CREATED + 60, tz=UTC) + timedelta(hours=24)
    assert task.raw["id"] == task.ark_id
    assert task.finished_at == datetime.fromtimestamp(CREATED + 60, tz=UTC)
    assert task.last_synced_at is not None


def test_it_maps_3d_parameters(account):
    ark_task = ArkTask.from_json(
        {
            "id": "cgt-20251121120000-3dddd",
            "model": "doubao-seed3d-1-0-250928",
            "status": "running",
            "created_at": CREATED,
            "subdivisionlevel": "high",
            "fileformat": "obj",
        }
    )
    task, _ = task_upsert_from_ark(account=account, ark_task=ark_task)
    task.refresh_from_db()
    assert (task.kind, task.subdivision_level, task.file_format) == ("3d", "high", "obj")
    assert task.started_at is not None


def test_it_writes_nothing_when_nothing_changed(account):
    task_upsert_from_ark(account=account, ark_task=_video())
    before = Task.objects.get()
    with CaptureQueriesContext(connection) as queries:
        _, changed = task_upsert_from_ark(account=account, ark_task=_video())
    assert not changed
    assert not [
        q for q in queries.captured_queries if q["sql"].lstrip().upper().startswith(("UPDATE", "INSERT"))
    ]
    assert Task.objects.get().changed_at == before.changed_at


def test_it_treats_a_re_signed_output_url_as_unchanged(account):
    task_upsert_from_ark(account=account, ark_task=_video(status="succeeded"))
    re_signed = _video(
        status="succeeded",
        content={
            "video_url": "https://out.example/cgt-20251121120000-abcde.mp4?sig=two",
            "last_frame_url": "https://out.example/cgt-20251121120000-abcde.png?sig=two",
        },
    )
    _, changed = task_upsert_from_ark(account=account, ark_task=re_signed)
    assert not changed


def test_it_updates_only_rows_that_changed_in_a_batch(account):
    tasks_upsert_from_ark(
        account=account, ark_tasks=[_video(f"cgt-20251121120000-aaa{i:02d}") for i in range(10)]
    )
    batch = [
        _video(f"cgt-20251121120000-aaa{i:02d}", status="running" if i < 3 else "queued") for i in range(10)
    ]
    result = tasks_upsert_from_ark(account=account, ark_tasks=batch)
    assert (result.created, result.updated, result.unchanged) == (0, 3, 7)
    assert Task.objects.filter(status=TaskStatus.RUNNING).count() == 3


def test_it_flags_a_task_turning_succeeded_for_the_archive_in_the_same_write(account):
    task_upsert_from_ark(account=account, ark_task=_video())
    assert not Task.objects.get().archive_handoff_pending
    task_upsert_from_ark(account=account, ark_task=_video(status="running"))
    assert not Task.objects.get().archive_handoff_pending
    # The hand-off itself runs after commit; the test transaction never commits here.
    task_upsert_from_ark(account=account, ark_task=_video(status="succeeded"))
    assert Task.objects.get().archive_handoff_pending


def test_it_does_not_flag_a_task_again_once_succeeded(account):
    task_upsert_from_ark(account=account, ark_task=_video(status="succeeded"))
    Task.objects.update(archive_handoff_pending=False)
    task_upsert_from_ark(account=account, ark_task=_video(status="succeeded", usage={"total_tokens": 1}))
    assert not Task.objects.get().archive_handoff_pending


def test_it_records_the_failure_reason(account):
    failed = _video(
        status="failed", error={"code": "OutputVideoSensitiveContentDetected", "message": "policy"}
    )
    task, _ = task_upsert_from_ark(account=account, ark_task=failed)
    task.refresh_from_db()
    assert (task.error_code, task.error_message) == ("OutputVideoSensitiveContentDetected", "policy")
    assert not task.archive_handoff_pending


def test_it_clears_gone_upstream_when_ark_returns_the_task_again(account):
    task, _ = task_upsert_from_ark(account=account, ark_task=_video())
    Task.objects.filter(pk=task.pk).update(gone_upstream_at=datetime.now(UTC))
    task_upsert_from_ark(account=account, ark_task=_video())
    assert Task.objects.get(pk=task.pk).gone_upstream_at is None


def test_it_survives_odd_values_from_ark(account):
    odd = ArkTask.from_json(
        {
            "id": "cgt-20251121120000-odddd",
            "model": "m" * 500,
            "status": "queued",
            "resolution": "r" * 100,
            "seed": 2**70,
            "duration": 2**40,
            "error": {"code": "x\x00y", "message": "nul\x00inside"},
            "extra": {"text": "a\x00b"},
        }
    )
    task, _ = task_upsert_from_ark(account=account, ark_task=odd)
    task.refresh_from_db()
    assert len(task.model) == 128 and len(task.resolution) == 16
    assert (task.seed, task.duration) == (None, None)
    assert task.error_message == "nulinside"
    assert task.raw["extra"]["text"] == "ab"
    # No created_at: the time encoded in the id (Beijing time) is used.
    assert task.ark_created_at == datetime(2025, 11, 21, 4, 0, 0, tzinfo=UTC)


def test_it_keeps_the_last_copy_of_a_task_repeated_in_a_page(account):
    result = tasks_upsert_from_ark(account=account, ark_tasks=[_video(), _video(status="running")])
    assert result.created == 1
    assert Task.objects.get().status == "running"


@pytest.mark.postgres
def test_it_costs_a_few_queries_per_batch_plus_one_per_changed_row(account):
    batch = [_video(f"cgt-20251121120000-b{i:04d}") for i in range(500)]
    with CaptureQueriesContext(connection) as queries:
        tasks_upsert_from_ark(account=account, ark_tasks=batch)
    assert len(queries.captured_queries) < 10  # new rows: one bulk insert
    changed = [
        _video(f"cgt-20251121120000-b{i:04d}", status="running" if i < 20 else "queued") for i in range(500)
    ]
    with CaptureQueriesContext(connection) as queries:
        result = tasks_upsert_from_ark(account=account, ark_tasks=changed)
    assert (result.updated, result.unchanged) == (20, 480)
    updates = [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 20
    assert len(queries.captured_queries) < 20 + 10
