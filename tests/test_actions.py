from __future__ import annotations

import pytest

from tasks_app.models import (
    ArchiveState,
    Artifact,
    ArtifactOutput,
    ArtifactState,
    Picture,
    PictureState,
    Task,
    TaskStatus,
)
from tasks_app.services.actions import task_cancel, task_delete, tasks_cancel_bulk
from tasks_app.services.sync import sync_account

from .dashboard_helpers import member_of


@pytest.fixture
def user(django_user_model, account):
    user = django_user_model.objects.create_user("ana", password="pw")
    member_of(user, account)  # an operator: may cancel and delete
    return user


def mirrored(sim, account, **kwargs) -> Task:
    """A task seeded in the simulator and mirrored by the real sync."""
    ark_id = sim.add_task(**kwargs)
    sync_account(account=account, full_sweep=True)
    sim.reset_stats()
    return Task.objects.get(account=account, ark_id=ark_id)


def test_it_cancels_a_queued_task_and_mirrors_the_result(sim, account, user):
    task = mirrored(sim, account, status="queued")
    before = task.changed_at
    result = task_cancel(task=task, user=user)
    assert (result.ok, result.code, result.message) == (True, "cancelled", "Cancelled.")
    task.refresh_from_db()
    assert task.status == TaskStatus.CANCELLED and task.changed_at > before
    assert sim.stats()["delete"] == 1


@pytest.mark.parametrize("refusal_status", [400, 403, 409])
def test_it_explains_a_cancel_refused_because_the_task_started_running(sim, account, user, refusal_status):
    sim.refused_delete_status = refusal_status  # Ark documents no status for the refusal
    task = mirrored(sim, account, status="queued")
    sim.advance(sim.queue_seconds + 1)  # upstream it starts; the mirror still says queued
    result = task_cancel(task=task, user=user)
    assert not result.ok and result.code == "refused"
    assert result.message == "Ark refused to cancel: It is already running: Ark can only cancel tasks that are still queued."
    task.refresh_from_db()
    assert task.status == TaskStatus.RUNNING
    assert (sim.stats()["delete"], sim.stats()["get"]) == (1, 1)  # one DELETE, one re-read


@pytest.mark.parametrize(
    ("status", "reason"),
    [("running", "already running"), ("cancelled", "already cancelled"), ("succeeded", "already finished")],
)
def test_it_refuses_cancels_arks_state_table_forbids_without_calling_ark(sim, account, user, status, reason):
    task = mirrored(sim, account, status=status)
    result = task_cancel(task=task, user=user)
    assert not result.ok and reason in result.message
    assert sim.stats().get("delete", 0) == 0


def test_it_deletes_a_finished_record_upstream_and_keeps_the_local_history(sim, account, user):
    task = mirrored(sim, account, status="failed")
    result = task_delete(task=task, user=user, confirm_unarchived=False)
    assert result.ok and result.code == "deleted"
    task.refresh_from_db()
    assert task.gone_upstream_at is not None and task.status == TaskStatus.FAILED
    assert not task.can_delete
    assert sim.stats()["delete"] == 1


def test_it_asks_for_a_second_confirmation_before_deleting_unarchived_outputs(sim, account, user):
    task = mirrored(sim, account, status="succeeded")
    assert task.archive_state != ArchiveState.ARCHIVED
    result = task_delete(task=task, user=user, confirm_unarchived=False)
    assert result.code == "needs_confirmation" and "not archived" in result.message
    assert sim.stats().get("delete", 0) == 0
    result = task_delete(task=task, user=user, confirm_unarchived=True)
    assert result.ok
    assert sim.stats()["delete"] == 1


def test_it_deletes_archived_outputs_record_without_a_second_confirmation(sim, account, user):
    task = mirrored(sim, account, status="succeeded")
    Task.objects.filter(pk=task.pk).update(archive_state=ArchiveState.ARCHIVED)
    task.refresh_from_db()
    assert task_delete(task=task, user=user, confirm_unarchived=False).ok


def test_it_removes_the_task_locally_on_request(sim, account, user, tmp_path, settings,
                                                django_capture_on_commit_callbacks):
    settings.STORAGES = {**settings.STORAGES, "archive": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}}}
    task = mirrored(sim, account, status="expired")
    (tmp_path / "kept.bin").write_bytes(b"x")
    video = Artifact.objects.create(task=task, output=ArtifactOutput.VIDEO, state=ArtifactState.ARCHIVED,
                                    storage_key="kept.bin")
    (tmp_path / "picture.webp").write_bytes(b"RIFF")
    Picture.objects.create(task=task, source=video, source_output=ArtifactOutput.VIDEO, state=PictureState.READY,
                           storage_key="picture.webp", content_type="image/webp", size=4, width=1, height=1,
                           sha256="0" * 64)
    with django_capture_on_commit_callbacks(execute=True):
        result = task_delete(task=task, user=user, confirm_unarchived=False, remove_local=True)
    assert result.ok and result.code == "removed" and result.task is None
    assert not Task.objects.filter(pk=task.pk).exists()
    assert not (tmp_path / "kept.bin").exists()
    assert not (tmp_path / "picture.webp").exists()


@pytest.mark.parametrize("status", ["queued", "running", "cancelled"])
def test_it_refuses_to_delete_unfinished_records_without_calling_ark(sim, account, user, status):
    task = mirrored(sim, account, status=status)
    result = task_delete(task=task, user=user, confirm_unarchived=True)
    assert not result.ok and result.code == "refused"
    assert sim.stats().get("delete", 0) == 0


def test_it_reports_ark_failures_in_plain_words_and_changes_nothing(sim, account, user, settings):
    settings.ARK_MAX_RETRIES = 0  # the failure itself is the point, not the client's backoff
    task = mirrored(sim, account, status="queued")
    sim.faults.inject("*", "500", times=50)
    result = task_cancel(task=task, user=user)
    assert not result.ok and result.code == "error"
    assert "Nothing changed" in result.message and "test-key" not in result.message
    task.refresh_from_db()
    assert task.status == TaskStatus.QUEUED


def test_it_says_when_the_task_is_already_gone_upstream(sim, account, user):
    task = mirrored(sim, account, status="succeeded")
    Task.objects.filter(pk=task.pk).update(archive_state=ArchiveState.ARCHIVED)
    task.refresh_from_db()
    assert task_delete(task=task, user=user, confirm_unarchived=False).ok
    again = task_delete(task=task, user=user, confirm_unarchived=False)
    assert not again.ok and "no longer exists on Ark" in again.message


def test_it_cancels_the_queued_tasks_of_a_bulk_selection(sim, account, user):
    ids = [sim.add_task(status="queued") for _ in range(3)] + [sim.add_task(status="running")]
    sync_account(account=account, full_sweep=True)  # one sync: the list budget is 1/s
    sim.reset_stats()
    *queued, running = [Task.objects.get(ark_id=ark_id) for ark_id in ids]
    report = tasks_cancel_bulk(tasks=[*queued, running], user=user)
    assert (report.cancelled, report.refused, report.failed) == (3, 1, 0)
    assert report.message == "3 tasks cancelled. 1 refused (no longer queued)."
    assert Task.objects.filter(status=TaskStatus.CANCELLED).count() == 3
    assert sim.stats()["delete"] == 3


@pytest.mark.parametrize("lost", ["archive_state", "expired_urls"])
def test_it_deletes_a_record_whose_outputs_are_lost_without_a_warning(sim, account, user, lost):
    from datetime import timedelta

    from django.utils import timezone

    task = mirrored(sim, account, status="succeeded")
    if lost == "archive_state":
        Task.objects.filter(pk=task.pk).update(archive_state=ArchiveState.LOST)
    else:
        Task.objects.filter(pk=task.pk).update(outputs_expire_at=timezone.now() - timedelta(hours=1))
    task.refresh_from_db()
    result = task_delete(task=task, user=user, confirm_unarchived=False)
    assert result.ok and result.code == "deleted" and "not archived" not in result.message
