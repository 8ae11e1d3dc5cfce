"""The list's export: exactly the list's rows for the same filters, streamed as CSV or JSON Lines."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.http import QueryDict
from django.utils import timezone

from tasks_app import exports, selectors
from tasks_app.filters import TaskFilter, parse_paging
from tasks_app.models import (
    Account,
    ArchiveState,
    Artifact,
    ArtifactOutput,
    ArtifactState,
    TaskKind,
    TaskStatus,
)
from tasks_app.views_export import COLUMNS

from .dashboard_helpers import make_task, member_of

pytestmark = pytest.mark.django_db

BOM = b"\xef\xbb\xbf"


@pytest.fixture
def rival(rival):
    """conftest's other account, with a Chinese name (the BOM must keep it intact)."""
    rival.name = "对手团队"
    rival.save()
    return rival


@pytest.fixture
def mirror(account, rival):
    """37 tasks of `account` in every status and kind, outputs on the succeeded ones; 5 of the rival's."""
    now = timezone.now()
    statuses = [TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.SUCCEEDED]
    tasks = []
    for n in range(37):
        status = statuses[n % len(statuses)]
        kind = TaskKind.MODEL_3D if n % 3 == 0 else TaskKind.VIDEO
        # Some share a creation time: the list breaks ties by id, so must the export.
        created = now - timedelta(minutes=n // 2)
        task = make_task(account, status=status, kind=kind, created=created, total_tokens=1000 + n,
                         error_code="InternalServiceError" if status == TaskStatus.FAILED else "",
                         started_at=created + timedelta(seconds=5) if status != TaskStatus.QUEUED else None,
                         finished_at=created + timedelta(seconds=65) if status in (TaskStatus.SUCCEEDED,
                                                                                   TaskStatus.FAILED) else None,
                         archive_state=ArchiveState.ARCHIVED if status == TaskStatus.SUCCEEDED else ArchiveState.NONE)
        if status == TaskStatus.SUCCEEDED:
            outputs = [ArtifactOutput.MODEL_ZIP] if kind == TaskKind.MODEL_3D else [ArtifactOutput.VIDEO,
                                                                                   ArtifactOutput.LAST_FRAME]
            for output in outputs:
                Artifact.objects.create(task=task, output=output, state=ArtifactState.ARCHIVED, size=1000 * n + 1,
                                        sha256=f"{n:064x}", archived_at=now)
        tasks.append(task)
    for _ in range(5):
        make_task(rival, status=TaskStatus.SUCCEEDED)
    return tasks


@pytest.fixture
def ana(django_user_model, account):
    user = django_user_model.objects.create_user("ana", password="pw")
    member_of(user, account)
    return user


def list_ids(user, query: str) -> list[str]:
    """Every row the list shows for `query`, following its Older links to the last page."""
    params = QueryDict(query, mutable=True)
    params["page_size"] = "10"
    ids: list[str] = []
    while True:
        filterset = TaskFilter(data=params, queryset=selectors.access_for(user).tasks())
        page = selectors.task_list(filterset=filterset, paging=parse_paging(params))
        ids += [task.ark_id for task in page.tasks]
        if page.older is None:
            return ids
        params["after"] = str(page.older)


def csv_rows(response) -> list[dict]:
    body = b"".join(response.streaming_content)
    assert body.startswith(BOM)
    return list(csv.DictReader(io.StringIO(body[len(BOM):].decode("utf-8"))))


@pytest.mark.parametrize(
    "query",
    ["", "status=succeeded&status=failed", "kind=3d&sort=created", "archive=archived&sort=-updated",
     "model=doubao-seed3d-1-0-250928"],
)
def test_it_exports_exactly_the_rows_the_list_shows(mirror, ana, client, query):
    client.force_login(ana)
    response = client.get(f"/tasks/export.csv?{query}")
    assert response.status_code == 200 and response.streaming
    exported = [row["task_id"] for row in csv_rows(response)]
    assert exported == list_ids(ana, query)
    assert exported  # each of these filters matches some rows


def test_it_exports_nothing_to_a_user_of_another_account(mirror, rival, client, django_user_model):
    other = django_user_model.objects.create_user("bo", password="pw")
    member_of(other, Account.objects.create(name="empty", base_url="http://arksim.test/api/v3",
                                            api_key_encrypted=""))
    client.force_login(other)
    expected = {"csv": BOM + (",".join(COLUMNS) + "\r\n").encode(), "jsonl": b""}
    for fmt, body in expected.items():
        response = client.get(f"/tasks/export.{fmt}")
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == body
    assert list_ids(other, "") == []


def test_it_writes_the_columns_and_each_outputs_size_hash_and_absolute_link(mirror, ana, client):
    client.force_login(ana)
    response = client.get("/tasks/export.csv?status=succeeded&kind=video")
    assert response["Content-Disposition"] == (
        f'attachment; filename="arkdash-tasks-{timezone.localdate():%Y-%m-%d}.csv"'
    )
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = csv_rows(response)
    task = next(t for t in mirror if t.ark_id == rows[0]["task_id"])
    video = task.artifacts.get(output=ArtifactOutput.VIDEO)
    assert rows[0]["account"] == "team" and rows[0]["status"] == "succeeded" and rows[0]["kind"] == "video"
    assert rows[0]["run_time_seconds"] == "60"
    assert rows[0]["tokens"] == str(task.total_tokens)
    assert rows[0]["archive_state"] == "archived"
    assert rows[0]["video_size"] == str(video.size) and rows[0]["video_sha256"] == video.sha256
    assert rows[0]["video_url"] == f"http://testserver/outputs/{video.pk}/download/"
    assert rows[0]["model_zip_url"] == ""


def test_it_writes_json_lines_that_parse(mirror, ana, client, rival):
    client.force_login(ana)
    response = client.get("/tasks/export.jsonl?status=succeeded")
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    lines = b"".join(response.streaming_content).decode().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["task_id"] for r in records] == list_ids(ana, "status=succeeded")
    three_d = next(r for r in records if r["kind"] == "3d")
    assert [o["output"] for o in three_d["outputs"]] == ["model_zip"]
    assert three_d["outputs"][0]["url"].startswith("http://testserver/outputs/")
    assert three_d["outputs"][0]["sha256"] and three_d["outputs"][0]["size"]
    assert {r["account"] for r in records} == {"team"}


def test_it_keeps_chinese_names_intact_behind_the_bom(rival, client, django_user_model):
    make_task(rival, status=TaskStatus.QUEUED, model="模型-甲")
    user = django_user_model.objects.create_user("chen", password="pw")
    member_of(user, rival)
    client.force_login(user)
    [row] = csv_rows(client.get("/tasks/export.csv"))
    assert (row["account"], row["model"]) == ("对手团队", "模型-甲")


def test_it_reads_tasks_and_outputs_in_one_query_by_chunks(mirror, ana, client, monkeypatch,
                                                          django_assert_max_num_queries):
    # JSON Lines: read by Python on every database (PostgreSQL writes the CSV itself)
    monkeypatch.setattr(exports, "CHUNK_SIZE", 10)  # many chunks: a task's outputs may straddle two
    client.force_login(ana)
    # session, user, memberships, accounts, then the one query (a server-side cursor on
    # PostgreSQL, whatever the number of chunks)
    with django_assert_max_num_queries(6):
        response = client.get("/tasks/export.jsonl")
        records = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert len(records) == 37
    for record in records:  # every output of every task, also where a chunk ends mid-task
        outputs = [output["output"] for output in record["outputs"]]
        if record["status"] != "succeeded":
            assert outputs == []
        elif record["kind"] == "video":
            assert outputs == ["video", "last_frame"]
        else:
            assert outputs == ["model_zip"]
        assert all(output["sha256"] and output["url"] for output in record["outputs"])


def test_it_refuses_a_bad_filter_with_a_message(ana, client):
    client.force_login(ana)
    response = client.get("/tasks/export.csv?status=bogus&created_after=yesterday")
    assert response.status_code == 400
    text = response.content.decode()
    assert "not valid" in text and "bogus" in text and "Created from" in text


def test_it_knows_only_csv_and_json_lines(ana, client):
    client.force_login(ana)
    assert client.get("/tasks/export.xlsx").status_code == 404


def test_the_list_offers_the_export_with_its_filters(mirror, ana, client):
    client.force_login(ana)
    body = client.get("/?status=failed&kind=video").content.decode()
    assert 'href="/tasks/export.csv?status=failed&amp;kind=video"' in body
    assert 'href="/tasks/export.jsonl?status=failed&amp;kind=video"' in body


def test_it_writes_times_in_the_viewers_time_zone(ana, account, client):
    from datetime import UTC, datetime

    make_task(account, status=TaskStatus.QUEUED, created=datetime(2026, 11, 1, 2, 0, tzinfo=UTC))
    client.force_login(ana)
    client.cookies["arkdash_tz"] = "Asia/Shanghai"
    [row] = csv_rows(client.get("/tasks/export.csv"))
    assert row["created"] == "2026-11-01T10:00:00+08:00"
    [line] = b"".join(client.get("/tasks/export.jsonl").streaming_content).decode().splitlines()
    assert json.loads(line)["created"] == "2026-11-01T10:00:00+08:00"
