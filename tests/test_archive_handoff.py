"""A task that turns succeeded reaches the archive, even if the process dies in between."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tasks_app import tasks as celery_tasks
from tasks_app.models import Artifact, Task
from tasks_app.services import archive
from tasks_app.services.archive import archive_handoff_sweep
from tasks_app.services.sync import sync_account

pytestmark = pytest.mark.usefixtures("unthrottled")


def _flagged_minutes_ago(minutes: int) -> None:
    """As if the status change had committed that long ago (the sweep leaves fresh flags alone)."""
    Task.objects.filter(archive_handoff_pending=True).update(
        changed_at=timezone.now() - timedelta(minutes=minutes)
    )


@pytest.fixture
def no_copies(monkeypatch):
    """Count queued copies instead of running them: these tests are about the hand-off."""
    queued: list[int] = []
    monkeypatch.setattr(
        celery_tasks.archive_artifact, "apply_async", lambda args, **kw: queued.append(args[0])
    )
    return queued


def test_it_hands_a_succeeded_task_to_the_archive_once_committed(
    sim, account, no_copies, django_capture_on_commit_callbacks
):
    ark_id = sim.add_task(kind="video", status="running", run_seconds=10, return_last_frame=True)
    assert sync_account(account=account).ok
    sim.advance(30)
    with django_capture_on_commit_callbacks(execute=True):
        assert sync_account(account=account).ok
    task = Task.objects.get(ark_id=ark_id)
    assert not task.archive_handoff_pending
    outputs = set(Artifact.objects.filter(task=task).values_list("output", flat=True))
    assert outputs == {"video", "last_frame"}
    assert sorted(no_copies) == sorted(Artifact.objects.filter(task=task).values_list("pk", flat=True))


def test_it_redoes_a_hand_off_lost_in_a_crash(sim, account, no_copies, django_capture_on_commit_callbacks):
    ark_id = sim.add_task(kind="3d", status="succeeded")
    # The status change commits, then the process "dies": the after-commit hand-off never runs.
    with django_capture_on_commit_callbacks(execute=False) as pending_callbacks:
        assert sync_account(account=account).ok
    assert pending_callbacks  # there was a hand-off to do
    task = Task.objects.get(ark_id=ark_id)
    assert task.status == "succeeded" and task.archive_handoff_pending
    assert not Artifact.objects.filter(task=task).exists()

    # Minutes later, the periodic sweep (Celery beat) finds the flag and finishes the job.
    _flagged_minutes_ago(5)
    with django_capture_on_commit_callbacks(execute=True):
        assert celery_tasks.archive_handoff_sweep.delay() is not None
    task.refresh_from_db()
    assert not task.archive_handoff_pending
    assert list(Artifact.objects.filter(task=task).values_list("output", flat=True)) == ["model_zip"]
    assert len(no_copies) == 1


def test_it_keeps_the_flag_while_the_archive_fails(sim, account, no_copies, monkeypatch):
    ark_id = sim.add_task(kind="video", status="succeeded")
    assert sync_account(account=account).ok

    def broken(*, task):
        raise RuntimeError("storage unavailable")

    monkeypatch.setattr(archive, "artifacts_create_for_task", broken)
    _flagged_minutes_ago(5)
    assert archive_handoff_sweep() == 0
    assert Task.objects.get(ark_id=ark_id).archive_handoff_pending

    monkeypatch.undo()
    assert archive_handoff_sweep() == 1
    assert not Task.objects.get(ark_id=ark_id).archive_handoff_pending


def test_it_hands_off_once_however_often_it_is_retried(sim, account, no_copies):
    ark_id = sim.add_task(kind="video", status="succeeded")
    assert sync_account(account=account).ok
    for _ in range(2):
        Task.objects.filter(ark_id=ark_id).update(archive_handoff_pending=True)
        _flagged_minutes_ago(5)
        assert archive_handoff_sweep() == 1
    assert Artifact.objects.filter(task__ark_id=ark_id).count() == 2  # video and last frame, once each


def test_it_does_not_hand_off_failed_tasks(sim, account, django_capture_on_commit_callbacks):
    sim.add_task(kind="video", status="failed")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert sync_account(account=account).ok
    # Nothing to queue: at most the mirror version's after-commit bump (PostgreSQL only).
    assert [callback for callback in callbacks if not getattr(callback, "is_mirror_bump", False)] == []
    assert not Task.objects.filter(archive_handoff_pending=True).exists()
    assert not Artifact.objects.exists()


def test_it_leaves_fresh_flags_to_the_queued_hand_off(sim, account, no_copies):
    sim.add_task(kind="video", status="succeeded")
    assert sync_account(account=account).ok
    assert archive_handoff_sweep() == 0
    assert not Artifact.objects.exists()


def test_it_queues_one_hand_off_per_batch(sim, account, monkeypatch, django_capture_on_commit_callbacks):
    for _ in range(600):
        sim.add_task(kind="video", status="succeeded")
    queued = []
    monkeypatch.setattr(celery_tasks.archive_handoff, "delay", lambda *args: queued.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        assert sync_account(account=account).ok
    assert [len(ark_ids) for _, ark_ids in queued] == [500, 100]
    assert Task.objects.filter(archive_handoff_pending=True).count() == 600  # until the worker runs


def test_it_leaves_the_flag_for_the_sweep_when_the_broker_is_down(
    sim, account, monkeypatch, django_capture_on_commit_callbacks
):
    def broker_down(*args):
        raise ConnectionError("broker down")

    monkeypatch.setattr(celery_tasks.archive_handoff, "delay", broker_down)
    sim.add_task(kind="video", status="succeeded")
    with django_capture_on_commit_callbacks(execute=True):
        assert sync_account(account=account).ok  # the sync itself is not failed by it
    assert Task.objects.get().archive_handoff_pending
