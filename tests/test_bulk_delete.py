"""Bulk "delete record" for finished tasks of a filter, and bulk "remove from ArkDash" for tasks gone from Ark."""

from __future__ import annotations

import pytest
from django.utils import timezone

from tasks_app.models import Artifact, AuditAction, AuditEntry, AuditResult, Task
from tasks_app.services.actions import tasks_delete_bulk, tasks_remove_bulk
from tasks_app.services.archive import artifact_archive, artifacts_create_for_task
from tasks_app.services.sync import sync_account

pytestmark = pytest.mark.django_db


def mirror(sim, account, *specs: dict) -> list[Task]:
    ids = [sim.add_task(**spec) for spec in specs]
    sync_account(account=account, full_sweep=True)
    sim.reset_stats()
    return [Task.objects.get(account=account, ark_id=ark_id) for ark_id in ids]


def archive_all(task: Task) -> None:
    for artifact in artifacts_create_for_task(task=task):
        artifact_archive(artifact_id=artifact.pk)
    task.refresh_from_db()


# --- service -------------------------------------------------------------------------------


def test_it_deletes_finished_records_and_audits_each_task_and_a_summary(sim, account, operator, local_archive):
    failed, expired, succeeded = mirror(
        sim, account, {"status": "failed"}, {"status": "expired"}, {"status": "succeeded"}
    )
    archive_all(succeeded)

    report = tasks_delete_bulk(tasks=[failed, expired, succeeded], user=operator, confirm_unarchived=False)

    assert (report.done, report.refused, report.needs_confirmation, report.failed) == (3, 0, 0, 0)
    assert sim.stats()["delete"] == 3
    assert Task.objects.filter(gone_upstream_at__isnull=False).count() == 3  # rows kept, marked gone
    entries = AuditEntry.objects.filter(action=AuditAction.BULK_DELETE)
    assert sorted(entries.exclude(code="summary").values_list("ark_id", flat=True)) == sorted(
        t.ark_id for t in (failed, expired, succeeded)
    )
    assert entries.get(code="summary").result == AuditResult.DONE


def test_it_keeps_tasks_with_unarchived_outputs_unless_confirmed(sim, account, operator, local_archive):
    [unarchived] = mirror(sim, account, {"status": "succeeded"})

    kept = tasks_delete_bulk(tasks=[unarchived], user=operator, confirm_unarchived=False)
    assert kept.needs_confirmation == 1 and sim.stats().get("delete", 0) == 0
    unarchived.refresh_from_db()
    assert unarchived.gone_upstream_at is None

    done = tasks_delete_bulk(tasks=[unarchived], user=operator, confirm_unarchived=True)
    assert done.done == 1 and sim.stats()["delete"] == 1


def test_it_refuses_running_and_queued_tasks_without_calling_ark(sim, account, operator):
    queued, running = mirror(sim, account, {"status": "queued"}, {"status": "running"})

    report = tasks_delete_bulk(tasks=[queued, running], user=operator, confirm_unarchived=True)

    assert report.refused == 2 and sim.stats().get("delete", 0) == 0
    assert set(AuditEntry.objects.exclude(code="summary").values_list("result", flat=True)) == {AuditResult.REFUSED}


def test_it_refuses_a_viewer_per_task(sim, account, viewer):
    [task] = mirror(sim, account, {"status": "failed"})

    report = tasks_delete_bulk(tasks=[task], user=viewer, confirm_unarchived=True)

    assert report.refused == 1 and sim.stats().get("delete", 0) == 0
    assert AuditEntry.objects.get(action=AuditAction.BULK_DELETE, code="forbidden").ark_id == task.ark_id


def test_it_removes_gone_tasks_with_their_archived_files(
    sim, account, operator, local_archive, django_capture_on_commit_callbacks
):
    gone, still_on_ark = mirror(sim, account, {"status": "succeeded"}, {"status": "failed"})
    archive_all(gone)
    keys = list(Artifact.objects.filter(task=gone).values_list("storage_key", flat=True))
    assert sorted(local_archive.visible_keys()) == sorted(keys)
    Task.objects.filter(pk=gone.pk).update(gone_upstream_at=timezone.now())
    gone.refresh_from_db()

    with django_capture_on_commit_callbacks(execute=True):
        report = tasks_remove_bulk(tasks=[gone, still_on_ark], user=operator)

    assert (report.done, report.refused) == (1, 1)
    assert not Task.objects.filter(pk=gone.pk).exists()
    assert Task.objects.filter(pk=still_on_ark.pk).exists()
    assert local_archive.visible_keys() == []
    assert sim.stats().get("delete", 0) == 0  # nothing asked of Ark
    entries = AuditEntry.objects.filter(action=AuditAction.BULK_REMOVE)
    assert dict(entries.exclude(code="summary").values_list("ark_id", "code")) == {
        gone.ark_id: "removed", still_on_ark.ark_id: "refused"
    }


# --- views -----------------------------------------------------------------------------------


def test_it_asks_for_the_count_and_a_second_confirmation_first(sim, account, operator, client, local_archive):
    failed, unarchived, _queued = mirror(
        sim, account, {"status": "failed"}, {"status": "succeeded"}, {"status": "queued"}
    )
    client.force_login(operator)

    page = client.post("/tasks/delete/?status=failed&status=succeeded&status=queued")

    html = page.content.decode()
    assert page.status_code == 200
    assert "2 finished tasks match this filter" in html
    assert "1 of them has outputs that are not archived yet" in html
    assert 'name="confirm_unarchived"' in html
    assert sim.stats().get("delete", 0) == 0


def test_it_deletes_only_archived_ones_without_the_second_confirmation(sim, account, operator, client):
    failed, unarchived = mirror(sim, account, {"status": "failed"}, {"status": "succeeded"})
    client.force_login(operator)

    response = client.post("/tasks/delete/?status=failed&status=succeeded", {"confirmed": "1"}, follow=True)

    html = response.content.decode()
    assert response.redirect_chain[-1][0] == "/?status=failed&status=succeeded"
    assert "1 Ark record deleted." in html and "1 kept" in html
    assert Task.objects.get(pk=failed.pk).gone_upstream_at is not None
    assert Task.objects.get(pk=unarchived.pk).gone_upstream_at is None

    client.post("/tasks/delete/?status=succeeded", {"confirmed": "1", "confirm_unarchived": "1"})
    assert Task.objects.get(pk=unarchived.pk).gone_upstream_at is not None


def test_it_refuses_a_viewer_and_a_bad_filter(sim, account, operator, viewer, client):
    [task] = mirror(sim, account, {"status": "failed"})
    client.force_login(viewer)
    assert client.post("/tasks/delete/", {"confirmed": "1"}).status_code == 403
    assert client.post("/tasks/remove/", {"confirmed": "1"}).status_code == 403
    client.force_login(operator)
    response = client.post("/tasks/delete/?created_after=not-a-date", {"confirmed": "1"})
    assert response.status_code == 400 and "Fix the filter" in response.content.decode()
    assert sim.stats().get("delete", 0) == 0 and Task.objects.get(pk=task.pk).gone_upstream_at is None


def test_it_never_touches_another_accounts_tasks(sim, account, operator, client, django_user_model):
    from tasks_app.models import Account

    other = Account(name="other", base_url="http://arksim.test/api/v3")
    other.set_api_key("test-key")
    other.save()
    [theirs] = mirror(sim, other, {"status": "failed"})
    Task.objects.filter(pk=theirs.pk).update(gone_upstream_at=timezone.now())
    client.force_login(operator)

    client.post("/tasks/delete/", {"confirmed": "1"})
    client.post("/tasks/remove/", {"confirmed": "1"})

    assert Task.objects.filter(pk=theirs.pk).exists()
    assert not AuditEntry.objects.exclude(code="summary").exists()


def test_it_shows_what_removal_deletes_then_removes(sim, account, operator, client, local_archive,
                                                    django_capture_on_commit_callbacks):
    [gone] = mirror(sim, account, {"status": "succeeded"})
    archive_all(gone)
    Task.objects.filter(pk=gone.pk).update(gone_upstream_at=timezone.now())
    client.force_login(operator)

    page = client.post("/tasks/remove/").content.decode()
    assert "1 task matching this filter no longer exists on Ark." in page
    assert "2 archived outputs" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/tasks/remove/", {"confirmed": "1"}, follow=True)
    assert "1 task removed from ArkDash." in response.content.decode()
    assert not Task.objects.filter(pk=gone.pk).exists() and local_archive.visible_keys() == []


def test_the_list_shows_the_bulk_buttons_to_operators_only(account, operator, viewer, client):
    client.force_login(operator)
    assert 'id="remove-gone"' in client.get("/").content.decode()
    client.force_login(viewer)
    assert 'id="remove-gone"' not in client.get("/").content.decode()
