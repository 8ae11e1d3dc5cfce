"""tasks_app/tasks.py: beat's schedule and the thin Celery tasks it runs, for sync and the archive."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.db.models import Sum
from django.utils import timezone

from arkdash.celery import app
from tasks_app import tasks as celery_tasks
from tasks_app.models import Account, Artifact, ArtifactState, InsightsHourCount, Task, TaskStatus

from .dashboard_helpers import succeeded_video

pytestmark = pytest.mark.usefixtures("unthrottled")


def test_it_schedules_sync_and_the_hand_off_sweep():
    schedule = django_settings.CELERY_BEAT_SCHEDULE
    app.loader.import_default_modules()
    for entry in ("sync-all-accounts", "archive-handoff-sweep"):
        assert schedule[entry]["task"] in app.tasks
        # A stopped worker must not find a backlog of stale syncs when it comes back.
        assert schedule[entry]["options"]["expires"] > 0


def test_it_syncs_every_account(sim, account, settings):
    settings.ARK_API_KEY = "test-key"
    settings.ARK_BASE_URL = "http://arksim.test/api/v3"
    sim.add_task(kind="video", status="running")
    assert celery_tasks.sync_all_accounts.delay().get() == 2  # `team` and the default account
    assert Task.objects.filter(account=account).count() == 1
    assert Task.objects.filter(account__is_default=True).count() == 1
    assert Account.objects.get(pk=account.pk).last_sync_ok_at is not None


def test_a_sync_that_changed_tasks_brings_them_to_the_insights_rollup_at_once(sim, account):
    sim.add_task(kind="video", status="succeeded")
    sim.add_task(kind="3d", status="queued")
    celery_tasks.sync_account.delay(account.pk)
    counted = InsightsHourCount.objects.filter(account=account).aggregate(n=Sum("tasks"))["n"]
    assert counted == 2  # not at the next minute's refresh


def test_it_ignores_an_account_deleted_meanwhile(db):
    celery_tasks.sync_account.delay(987654)
    celery_tasks.refresh_task.delay(987654)
    celery_tasks.refresh_ark_task.delay(987654, "cgt-20250101000000-abcde")


def test_it_refreshes_one_task(sim, account):
    ark_id = sim.add_task(kind="video", status="queued", queue_seconds=5)
    celery_tasks.refresh_ark_task.delay(account.pk, ark_id)
    task = Task.objects.get(ark_id=ark_id)
    assert task.status == TaskStatus.QUEUED
    sim.advance(10)
    celery_tasks.refresh_task.delay(task.pk)
    assert Task.objects.get(pk=task.pk).status == TaskStatus.RUNNING


def test_it_gives_up_on_a_refresh_ark_refuses(sim, db):
    revoked = Account(name="revoked", base_url="http://arksim.test/api/v3")
    revoked.set_api_key("revoked-key")
    revoked.save()
    celery_tasks.refresh_ark_task.delay(revoked.pk, sim.add_task(kind="video", status="queued"))
    assert sim.stats()["get"] == 1  # one refused attempt, no retries
    assert not Task.objects.exists()


def test_the_sweep_task_runs_the_copies_it_queues(
    sim, mirror, local_archive, django_capture_on_commit_callbacks
):
    task, artifact = succeeded_video(sim, mirror)
    Artifact.objects.filter(pk=artifact.pk).update(enqueued_at=None)  # its message was lost

    with django_capture_on_commit_callbacks(execute=True):
        assert celery_tasks.archive_sweep.delay().get() == 1

    artifact.refresh_from_db()
    assert artifact.state == ArtifactState.ARCHIVED
    assert artifact.sha256 == sim.output_sha256(task.ark_id, "video")


def test_the_archive_task_copies_and_reports_the_state(sim, mirror, local_archive):
    _, artifact = succeeded_video(sim, mirror)

    assert celery_tasks.archive_artifact.delay(artifact.pk).get() == ArtifactState.ARCHIVED


def test_the_archive_task_ignores_an_artifact_that_no_longer_exists(db):
    assert celery_tasks.archive_artifact.delay(987654).get() == "gone"


def test_the_archive_task_leaves_a_failed_copy_to_its_retry(sim, mirror, local_archive):
    _, artifact = succeeded_video(sim, mirror)
    sim.faults.inject("output", "500")

    assert celery_tasks.archive_artifact.delay(artifact.pk).get() == ArtifactState.FAILED
    artifact.refresh_from_db()
    # The retry is due later; the sweeper will not queue it again before then.
    assert artifact.enqueued_at == artifact.next_attempt_at > timezone.now()


def test_the_archive_task_acknowledges_late():
    assert celery_tasks.archive_artifact.acks_late is True
    assert celery_tasks.archive_artifact.reject_on_worker_lost is True
