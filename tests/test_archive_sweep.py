"""The safety net: the sweeper, the Celery tasks, and the archive lag."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tasks_app import tasks
from tasks_app.models import Artifact, ArtifactState
from tasks_app.services.archive import artifacts_create_for_task, artifacts_sweep

from .dashboard_helpers import succeeded_video

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch) -> list[int]:
    """Artifact ids sent to the broker (recorded instead of run)."""
    sent: list[int] = []
    monkeypatch.setattr(
        tasks.archive_artifact, "apply_async", lambda args, countdown=None: sent.append(args[0])
    )
    return sent


def test_it_queues_new_artifacts_once_the_transaction_commits(
    sim, mirror, local_archive, queued, django_capture_on_commit_callbacks
):
    task = mirror(sim.add_task(kind="video", status="succeeded"))

    with django_capture_on_commit_callbacks(execute=True):
        artifacts = artifacts_create_for_task(task=task)
        assert queued == []  # nothing is sent before the rows are visible to workers

    assert queued == [a.pk for a in artifacts]
    assert all(a.enqueued_at is not None for a in Artifact.objects.filter(task=task))


def test_it_requeues_what_was_never_taken_earliest_deadline_first(
    sim, mirror, local_archive, queued, settings, django_capture_on_commit_callbacks
):
    settings.ARKDASH_ARCHIVE_REQUEUE_AFTER_SECONDS = 300
    _, late = succeeded_video(sim, mirror)
    _, early = succeeded_video(sim, mirror)
    now = timezone.now()
    Artifact.objects.filter(pk=late.pk).update(
        deadline=now + timedelta(hours=20), enqueued_at=now - timedelta(hours=1)
    )
    Artifact.objects.filter(pk=early.pk).update(deadline=now + timedelta(hours=2), enqueued_at=None)

    with django_capture_on_commit_callbacks(execute=True):
        report = artifacts_sweep()

    assert report.queued == [early.pk, late.pk]
    assert queued == [early.pk, late.pk]


def test_it_does_not_requeue_what_was_queued_a_moment_ago(
    sim, mirror, local_archive, queued, django_capture_on_commit_callbacks
):
    _, artifact = succeeded_video(sim, mirror)  # artifacts_create_for_task stamped enqueued_at just now

    with django_capture_on_commit_callbacks(execute=True):
        report = artifacts_sweep()

    assert report.queued == []
    assert queued == []
    assert Artifact.objects.get(pk=artifact.pk).state == ArtifactState.PENDING


def test_it_requeues_a_copy_whose_worker_died(
    sim, mirror, local_archive, queued, settings, django_capture_on_commit_callbacks
):
    settings.ARKDASH_ARCHIVE_CLAIM_TIMEOUT_SECONDS = 60
    _, dead = succeeded_video(sim, mirror)
    _, alive = succeeded_video(sim, mirror)
    long_ago = timezone.now() - timedelta(minutes=30)
    Artifact.objects.filter(pk=dead.pk).update(
        state=ArtifactState.COPYING,
        claim_token="x",
        claimed_at=timezone.now() - timedelta(seconds=61),
        enqueued_at=long_ago,
    )
    Artifact.objects.filter(pk=alive.pk).update(
        state=ArtifactState.COPYING, claim_token="y", claimed_at=timezone.now(), enqueued_at=long_ago
    )

    with django_capture_on_commit_callbacks(execute=True):
        report = artifacts_sweep()

    assert report.queued == [dead.pk]


def test_it_requeues_a_failed_copy_only_once_its_retry_is_overdue(
    sim, mirror, local_archive, queued, settings, django_capture_on_commit_callbacks
):
    settings.ARKDASH_ARCHIVE_REQUEUE_AFTER_SECONDS = 300
    _, overdue = succeeded_video(sim, mirror)
    _, waiting = succeeded_video(sim, mirror)
    now = timezone.now()
    for artifact, due in ((overdue, now - timedelta(minutes=10)), (waiting, now + timedelta(minutes=1))):
        Artifact.objects.filter(pk=artifact.pk).update(
            state=ArtifactState.FAILED, next_attempt_at=due, enqueued_at=due
        )

    with django_capture_on_commit_callbacks(execute=True):
        report = artifacts_sweep()

    assert report.queued == [overdue.pk]


def test_it_never_requeues_archived_or_lost_outputs(
    sim, mirror, local_archive, queued, django_capture_on_commit_callbacks
):
    _, done = succeeded_video(sim, mirror)
    _, lost = succeeded_video(sim, mirror)
    Artifact.objects.filter(pk=done.pk).update(state=ArtifactState.ARCHIVED, enqueued_at=None)
    Artifact.objects.filter(pk=lost.pk).update(state=ArtifactState.LOST, enqueued_at=None)

    with django_capture_on_commit_callbacks(execute=True):
        assert artifacts_sweep().queued == []


def test_the_sweep_task_runs_the_copies_it_queues(
    sim, mirror, local_archive, django_capture_on_commit_callbacks
):
    task, artifact = succeeded_video(sim, mirror)
    Artifact.objects.filter(pk=artifact.pk).update(enqueued_at=None)  # its message was lost

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.archive_sweep.delay().get() == 1

    artifact.refresh_from_db()
    assert artifact.state == ArtifactState.ARCHIVED
    assert artifact.sha256 == sim.output_sha256(task.ark_id, "video")


def test_the_archive_task_copies_and_reports_the_state(sim, mirror, local_archive):
    _, artifact = succeeded_video(sim, mirror)

    assert tasks.archive_artifact.delay(artifact.pk).get() == ArtifactState.ARCHIVED


def test_the_archive_task_ignores_an_artifact_that_no_longer_exists(db):
    assert tasks.archive_artifact.delay(987654).get() == "gone"


def test_the_archive_task_leaves_a_failed_copy_to_its_retry(sim, mirror, local_archive):
    _, artifact = succeeded_video(sim, mirror)
    sim.faults.inject("output", "500")

    assert tasks.archive_artifact.delay(artifact.pk).get() == ArtifactState.FAILED
    artifact.refresh_from_db()
    # The retry is due later; the sweeper will not queue it again before then.
    assert artifact.enqueued_at == artifact.next_attempt_at > timezone.now()


def test_the_archive_task_acknowledges_late():
    assert tasks.archive_artifact.acks_late is True
    assert tasks.archive_artifact.reject_on_worker_lost is True






def test_a_task_turning_succeeded_in_sync_gets_its_outputs_archived(
    sim, account, local_archive, django_capture_on_commit_callbacks
):
    from tasks_app.services.accounts import client_for
    from tasks_app.services.sync import task_upsert_from_ark

    sim_id = sim.add_task(kind="video", status="succeeded")
    client = client_for(account)
    try:
        ark_task = client.get_task(sim_id)
    finally:
        client.close()

    with django_capture_on_commit_callbacks(execute=True):
        task, _changed = task_upsert_from_ark(account=account, ark_task=ark_task)

    states = dict(Artifact.objects.filter(task=task).values_list("output", "state"))
    assert states == {"video": ArtifactState.ARCHIVED, "last_frame": ArtifactState.ARCHIVED}
    task.refresh_from_db()
    assert task.archive_state == "archived"
    assert task.archive_handoff_pending is False
