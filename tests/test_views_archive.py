"""The archive page: waiting outputs soonest deadline first, copies in progress, throughput, workers, storage."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tasks_app.models import (
    ArchiveUsageSnapshot,
    Artifact,
    ArtifactState,
    MembershipRole,
    TaskStatus,
    WorkerHeartbeat,
)
from tasks_app.observability import workers

from .dashboard_helpers import make_task, member_of

pytestmark = pytest.mark.django_db


def output(task, name: str, *, state: str, deadline_hours: float | None = None, **fields) -> Artifact:
    deadline = timezone.now() + timedelta(hours=deadline_hours) if deadline_hours is not None else None
    return Artifact.objects.create(task=task, output=name, state=state, deadline=deadline, **fields)


def test_it_lists_waiting_outputs_soonest_deadline_first_with_time_left(account, user_client):
    late = make_task(account, status=TaskStatus.SUCCEEDED)
    soon = make_task(account, status=TaskStatus.SUCCEEDED)
    unknown = make_task(account, status=TaskStatus.SUCCEEDED)
    output(late, "video", state=ArtifactState.PENDING, deadline_hours=20)
    output(soon, "video", state=ArtifactState.FAILED, deadline_hours=2, last_error="HTTP 500 from the source")
    output(unknown, "video", state=ArtifactState.PENDING)
    output(late, "last_frame", state=ArtifactState.ARCHIVED, deadline_hours=1, archived_at=timezone.now(), size=10)

    html = user_client.get("/archive/").content.decode()

    positions = [html.index(task.ark_id) for task in (soon, late, unknown)]
    assert positions == sorted(positions)
    assert "1 h 59 m" in html or "2 h 00 m" in html
    assert "HTTP 500 from the source" in html
    assert "Waiting: 2 pending, 0 copying, 1 failed." in html


def test_it_shows_copy_progress_and_answers_its_poll_with_the_live_part_only(account, user_client):
    task = make_task(account, status=TaskStatus.SUCCEEDED)
    output(task, "video", state=ArtifactState.COPYING, deadline_hours=10, size=1000, bytes_copied=250)

    page = user_client.get("/archive/").content.decode()
    poll = user_client.get("/archive/", headers={"HX-Request": "true", "HX-Target": "archive-live"})

    assert '<progress max="100" value="25"' in page
    assert 'hx-trigger="every 5s"' in page and "<script>" not in page
    body = poll.content.decode()
    assert poll.status_code == 200 and body.lstrip().startswith('<div id="archive-live"')
    assert '<progress max="100" value="25"' in body
    assert "archive-storage" not in body and "<html" not in body


def test_it_counts_the_last_hours_throughput(account, user_client):
    task = make_task(account, status=TaskStatus.SUCCEEDED)
    now = timezone.now()
    output(task, "video", state=ArtifactState.ARCHIVED, archived_at=now - timedelta(minutes=10), size=3 * 1024 * 1024)
    output(task, "last_frame", state=ArtifactState.ARCHIVED, archived_at=now - timedelta(hours=2), size=5)

    html = user_client.get("/archive/").content.decode()

    assert "1 output archived (3.0\xa0MB)." in html


def test_it_shows_workers_seen_recently(account, user_client):
    workers.worker_heartbeat_record(hostname="celery@alive", pid=12)
    workers.worker_heartbeat_record(hostname="celery@gone", now=timezone.now() - timedelta(hours=1))

    html = user_client.get("/archive/").content.decode()

    assert "celery@alive" in html and "celery@gone" not in html


def test_it_warns_when_no_worker_was_seen(account, user_client):
    assert "No worker has reported" in user_client.get("/archive/").content.decode()


def test_it_shows_storage_used_per_account_with_its_trend(account, rival, user_client):
    task = make_task(account, status=TaskStatus.SUCCEEDED)
    output(task, "video", state=ArtifactState.ARCHIVED, archived_at=timezone.now(), size=2048)
    output(task, "last_frame", state=ArtifactState.ARCHIVED, archived_at=timezone.now(), size=4096,
           removed_at=timezone.now())  # removed by retention: no longer counted
    today = timezone.localdate()
    ArchiveUsageSnapshot.objects.create(account=account, day=today - timedelta(days=1), bytes_stored=1024)
    ArchiveUsageSnapshot.objects.create(account=account, day=today, bytes_stored=2048)
    ArchiveUsageSnapshot.objects.create(account=rival, day=today, bytes_stored=99999)

    html = user_client.get("/archive/").content.decode()

    assert '<strong class="storage-used">2.0\xa0KB</strong>' in html
    assert f'<time datetime="{today - timedelta(days=1):%Y-%m-%d}">' in html
    assert '<progress max="2048" value="1024"' in html
    assert "rival" not in html.split('id="archive-storage"')[1]  # not their account


def test_it_shows_only_the_users_accounts_outputs(account, rival, client, django_user_model):
    mine = make_task(account, status=TaskStatus.SUCCEEDED)
    theirs = make_task(rival, status=TaskStatus.SUCCEEDED)
    output(mine, "video", state=ArtifactState.PENDING, deadline_hours=5)
    output(theirs, "video", state=ArtifactState.PENDING, deadline_hours=1)
    viewer = django_user_model.objects.create_user("vic", password="pw")
    member_of(viewer, account, MembershipRole.VIEWER)
    client.force_login(viewer)

    html = client.get("/archive/").content.decode()

    assert mine.ark_id in html and theirs.ark_id not in html
    assert "Save rule" not in html  # a viewer sees the rule but cannot change it


def test_it_needs_a_login_and_links_from_the_nav(account, user_client):
    from django.test import Client

    assert Client().get("/archive/").status_code == 302
    assert 'href="/archive/"' in user_client.get("/").content.decode()


def test_a_worker_records_at_most_one_heartbeat_per_interval(db):
    workers._last_written.clear()
    workers.worker_seen("celery@one")
    first = WorkerHeartbeat.objects.get(hostname="celery@one").last_seen_at
    workers.worker_seen("celery@one")  # within the interval: no write
    assert WorkerHeartbeat.objects.get(hostname="celery@one").last_seen_at == first
    workers._last_written["celery@one"] -= workers.HEARTBEAT_EVERY_SECONDS + 1
    workers.worker_seen("celery@one")
    assert WorkerHeartbeat.objects.get(hostname="celery@one").last_seen_at > first
    assert WorkerHeartbeat.objects.count() == 1


def test_the_celery_signals_record_a_worker_but_not_an_eager_run(db):
    from types import SimpleNamespace

    from tasks_app.observability import celery_signals

    workers._last_written.clear()
    celery_signals._on_postrun(task=SimpleNamespace(request=SimpleNamespace(hostname="celery@w1", is_eager=False)))
    celery_signals._on_postrun(task=SimpleNamespace(request=SimpleNamespace(hostname="celery@eager", is_eager=True)))
    celery_signals._on_worker_ready(sender=SimpleNamespace(hostname="celery@w2"))
    celery_signals._on_heartbeat(sender=SimpleNamespace(eventer=SimpleNamespace(hostname="celery@w3")))

    assert sorted(WorkerHeartbeat.objects.values_list("hostname", flat=True)) == ["celery@w1", "celery@w2",
                                                                                   "celery@w3"]


def test_the_archive_pages_speak_chinese(account, user_client):
    task = make_task(account, status=TaskStatus.SUCCEEDED)
    output(task, "video", state=ArtifactState.FAILED, deadline_hours=3, last_error="boom")
    output(task, "last_frame", state=ArtifactState.ARCHIVED, archived_at=timezone.now(), size=2048)
    ArchiveUsageSnapshot.objects.create(account=account, day=timezone.localdate(), bytes_stored=2048)
    zh = {"Accept-Language": "zh-hans"}

    archive = user_client.get("/archive/", headers=zh).content.decode()
    detail = user_client.get(f"/tasks/{task.pk}/", headers=zh).content.decode()
    confirm = user_client.post("/tasks/delete/?status=succeeded", headers=zh).content.decode()

    assert "最近一小时" in archive and "已归档 1 个输出" in archive and "保留规则：关闭" in archive
    assert "立即重试" in detail
    assert "有 1 个已结束的任务匹配此筛选" in confirm
