"""The safety net: the sweeper, the Celery tasks, and the archive lag."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tasks_app import tasks
from tasks_app.models import Artifact, ArtifactState
from tasks_app.selectors import archive_health, archive_lag_seconds
from tasks_app.services import archive
from tasks_app.services.archive import artifacts_create_for_task, artifacts_sweep

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch) -> list[int]:
    """Artifact ids sent to the broker (recorded instead of run)."""
    sent: list[int] = []
    monkeypatch.setattr(
        tasks.archive_artifact, "apply_async", lambda args, countdown=None: sent.append(args[0])
    )
    return sent


def video(sim, mirror, **kwargs):
    task = mirror(sim.add_task(kind="video", status="succeeded", return_last_frame=False, **kwargs))
    return task, artifacts_create_for_task(task=task)[0]


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
    _, late = video(sim, mirror)
    _, early = video(sim, mirror)
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
    _, artifact = video(sim, mirror)  # artifacts_create_for_task stamped enqueued_at just now

    with django_capture_on_commit_callbacks(execute=True):
        report = artifacts_sweep()

    assert report.queued == []
    assert queued == []
    assert Artifact.objects.get(pk=artifact.pk).state == ArtifactState.PENDING


def test_it_requeues_a_copy_whose_worker_died(
    sim, mirror, local_archive, queued, settings, django_capture_on_commit_callbacks
):
    settings.ARKDASH_ARCHIVE_CLAIM_TIMEOUT_SECONDS = 60
    _, dead = video(sim, mirror)
    _, alive = video(sim, mirror)
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
    _, overdue = video(sim, mirror)
    _, waiting = video(sim, mirror)
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
    _, done = video(sim, mirror)
    _, lost = video(sim, mirror)
    Artifact.objects.filter(pk=done.pk).update(state=ArtifactState.ARCHIVED, enqueued_at=None)
    Artifact.objects.filter(pk=lost.pk).update(state=ArtifactState.LOST, enqueued_at=None)

    with django_capture_on_commit_callbacks(execute=True):
        assert artifacts_sweep().queued == []


def test_the_sweep_task_runs_the_copies_it_queues(
    sim, mirror, local_archive, django_capture_on_commit_callbacks
):
    task, artifact = video(sim, mirror)
    Artifact.objects.filter(pk=artifact.pk).update(enqueued_at=None)  # its message was lost

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.archive_sweep.delay().get() == 1

    artifact.refresh_from_db()
    assert artifact.state == ArtifactState.ARCHIVED
    assert artifact.sha256 == sim.output_sha256(task.ark_id, "video")


def test_the_archive_task_copies_and_reports_the_state(sim, mirror, local_archive):
    _, artifact = video(sim, mirror)

    assert tasks.archive_artifact.delay(artifact.pk).get() == ArtifactState.ARCHIVED


def test_the_archive_task_ignores_an_artifact_that_no_longer_exists(db):
    assert tasks.archive_artifact.delay(987654).get() == "gone"


def test_the_archive_task_leaves_a_failed_copy_to_its_retry(sim, mirror, local_archive):
    _, artifact = video(sim, mirror)
    sim.faults.inject("output", "500")

    assert tasks.archive_artifact.delay(artifact.pk).get() == ArtifactState.FAILED
    artifact.refresh_from_db()
    # The retry is due later; the sweeper will not queue it again before then.
    assert artifact.enqueued_at == artifact.next_attempt_at > timezone.now()


def test_the_archive_task_acknowledges_late():
    assert tasks.archive_artifact.acks_late is True
    assert tasks.archive_artifact.reject_on_worker_lost is True


def test_it_measures_the_lag_from_the_oldest_unarchived_success(sim, mirror, local_archive):
    now = timezone.now()
    old_task, old = video(sim, mirror)
    new_task, new = video(sim, mirror)
    type(old_task).objects.filter(pk=old_task.pk).update(ark_updated_at=now - timedelta(seconds=500))
    type(new_task).objects.filter(pk=new_task.pk).update(ark_updated_at=now - timedelta(seconds=100))
    type(old).objects.filter(pk__in=[old.pk, new.pk]).update(created=now - timedelta(seconds=600))

    assert archive_lag_seconds(now=now) == pytest.approx(500, abs=1)

    archive.artifact_archive(artifact_id=old.pk)
    assert archive_lag_seconds(now=now) == pytest.approx(100, abs=1)

    archive.artifact_archive(artifact_id=new.pk)
    assert archive_lag_seconds(now=now) == 0.0


def test_it_summarises_the_archive_health(sim, mirror, local_archive):
    _, first = video(sim, mirror)
    _, second = video(sim, mirror)
    archive.artifact_archive(artifact_id=first.pk)

    health = archive_health()

    assert health.counts[ArtifactState.ARCHIVED] == 1
    assert health.counts[ArtifactState.PENDING] == 1
    assert health.next_deadline == Artifact.objects.get(pk=second.pk).deadline
    assert health.lag_seconds > 0


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


def test_it_counts_the_lag_from_when_arkdash_learnt_of_the_success(sim, mirror, local_archive):
    # A success from 20 h ago found by the first sync just now: the archive is not 20 h late.
    now = timezone.now()
    task, artifact = video(sim, mirror)
    type(task).objects.filter(pk=task.pk).update(ark_updated_at=now - timedelta(hours=20))
    type(artifact).objects.filter(pk=artifact.pk).update(created=now - timedelta(seconds=30))

    assert archive_lag_seconds(now=now) == pytest.approx(30, abs=1)


def test_it_leaves_outputs_whose_url_already_died_out_of_the_lag(sim, mirror, local_archive):
    now = timezone.now()
    task, artifact = video(sim, mirror)
    type(task).objects.filter(pk=task.pk).update(ark_updated_at=now - timedelta(hours=154))
    type(artifact).objects.filter(pk=artifact.pk).update(
        created=now - timedelta(hours=1), deadline=now - timedelta(hours=130)
    )

    assert archive_lag_seconds(now=now) == 0.0
