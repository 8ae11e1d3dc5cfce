"""The audit log: every cancel, delete and bulk action, refusals included, visible to staff
holding its own permission (tasks_app.view_auditentry)."""

from __future__ import annotations

import pytest
from django.test import Client

from tasks_app.models import AuditAction, AuditEntry, AuditResult, Task
from tasks_app.services import actions
from tasks_app.services.sync import sync_account


def mirror(sim, account, *specs: dict) -> list[Task]:
    ids = [sim.add_task(**spec) for spec in specs]
    sync_account(account=account, full_sweep=True)
    return [Task.objects.get(account=account, ark_id=ark_id) for ark_id in ids]


def only_entry() -> AuditEntry:
    [entry] = AuditEntry.objects.all()
    return entry


def test_it_records_a_cancel_with_who_when_which_task_and_the_result(sim, account, operator):
    [task] = mirror(sim, account, {"status": "queued"})
    actions.task_cancel(task=task, user=operator)
    entry = only_entry()
    assert (entry.user, entry.username, entry.account, entry.account_name) == (operator, "op", account, "team")
    assert (entry.task, entry.ark_id, entry.action, entry.result) == (task, task.ark_id, "cancel", "done")
    assert entry.code == "cancelled" and entry.message == "Cancelled." and entry.created is not None


def test_it_records_refusals_by_the_state_table_and_by_role(sim, account, operator, viewer):
    running, queued = mirror(sim, account, {"status": "running"}, {"status": "queued"})
    actions.task_cancel(task=running, user=operator)
    actions.task_cancel(task=queued, user=viewer)
    refused, forbidden = AuditEntry.objects.order_by("id")
    assert (refused.result, refused.code, refused.ark_id) == ("refused", "refused", running.ark_id)
    assert "already running" in refused.message
    assert (forbidden.result, forbidden.code, forbidden.username) == ("refused", "forbidden", "viewer")


def test_it_records_an_upstream_failure_as_failed(sim, account, operator, settings):
    settings.ARK_RETRY_BACKOFF_SECONDS = 0.001
    [task] = mirror(sim, account, {"status": "queued"})
    sim.faults.inject("delete", "500", times=10)
    result = actions.task_cancel(task=task, user=operator)
    assert result.code == "error"
    entry = only_entry()
    assert (entry.action, entry.result, entry.code) == ("cancel", "failed", "error")


def test_it_records_an_unexpected_error_and_lets_it_through(sim, account, operator, monkeypatch):
    [task] = mirror(sim, account, {"status": "queued"})

    def boom(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(actions, "client_for", boom)
    with pytest.raises(RuntimeError):
        actions.task_cancel(task=task, user=operator)
    entry = only_entry()
    assert (entry.result, entry.code, entry.message) == ("failed", "error", "unexpected error: RuntimeError")


def test_it_keeps_the_task_id_after_the_task_is_removed(sim, account, operator):
    [task] = mirror(sim, account, {"status": "failed"})
    ark_id = task.ark_id
    result = actions.task_delete(task=task, user=operator, confirm_unarchived=False, remove_local=True)
    assert result.code == "removed"
    entry = only_entry()
    assert (entry.action, entry.result, entry.code, entry.task, entry.ark_id) == ("delete", "done", "removed", None,
                                                                                  ark_id)


def test_it_records_a_needed_confirmation_as_a_refusal(sim, account, operator):
    [task] = mirror(sim, account, {"status": "succeeded"})
    actions.task_delete(task=task, user=operator, confirm_unarchived=False)
    entry = only_entry()
    assert (entry.action, entry.result, entry.code) == ("delete", "refused", "needs_confirmation")


def test_it_records_one_entry_per_task_and_a_summary_for_a_bulk_cancel(sim, account, operator):
    tasks = mirror(sim, account, {"status": "queued"}, {"status": "queued"}, {"status": "running"})
    report = actions.tasks_cancel_bulk(tasks=tasks, user=operator)
    assert (report.cancelled, report.refused) == (2, 1)
    entries = list(AuditEntry.objects.order_by("id"))
    assert len(entries) == 4
    assert all(entry.action == AuditAction.BULK_CANCEL for entry in entries)
    assert [entry.ark_id for entry in entries[:3]] == [task.ark_id for task in tasks]
    assert [entry.result for entry in entries[:3]] == ["done", "done", "refused"]
    summary = entries[3]
    assert (summary.task, summary.ark_id, summary.code, summary.result) == (None, "", "summary", AuditResult.REFUSED)
    assert summary.message == report.message


def test_it_keeps_the_username_when_the_user_is_deleted(sim, account, operator):
    [task] = mirror(sim, account, {"status": "queued"})
    actions.task_cancel(task=task, user=operator)
    operator.delete()
    entry = only_entry()
    assert (entry.user, entry.username) == (None, "op")


def test_it_audits_attempts_made_through_the_views(sim, account, viewer):
    [task] = mirror(sim, account, {"status": "queued"})
    client = Client()
    client.force_login(viewer)
    assert client.post(f"/tasks/{task.pk}/cancel/").status_code == 403
    assert client.get(f"/tasks/{task.pk}/cancel/").status_code == 403  # a GET is not an attempt
    entry = only_entry()
    assert (entry.username, entry.code) == ("viewer", "forbidden")


# --- the admin ---------------------------------------------------------------------------


@pytest.fixture
def staff_client(django_user_model):
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_auditentry"))
    client = Client()
    client.force_login(staff)
    return client


def test_it_shows_the_log_to_staff_filtered_and_searched(sim, account, operator, viewer, staff_client):
    first, second = mirror(sim, account, {"status": "queued"}, {"status": "running"})
    actions.task_cancel(task=first, user=operator)
    actions.task_cancel(task=second, user=viewer)
    url = "/admin/tasks_app/auditentry/"
    page = staff_client.get(url)
    assert page.status_code == 200
    assert first.ark_id in page.content.decode() and second.ark_id in page.content.decode()
    for query, shown, hidden in [
        ("result__exact=done", first, second),
        ("result__exact=refused", second, first),
        (f"user__id__exact={viewer.pk}", second, first),
        (f"q={first.ark_id}", first, second),
        ("action__exact=cancel", first, None),
        (f"account__id__exact={account.pk}", first, None),
    ]:
        html = staff_client.get(f"{url}?{query}").content.decode()
        assert shown.ark_id in html, query
        if hidden is not None:
            assert hidden.ark_id not in html, query
    entry = AuditEntry.objects.get(ark_id=first.ark_id)
    assert staff_client.get(f"{url}{entry.pk}/change/").status_code == 200


def test_it_lets_nobody_edit_add_or_delete_entries(sim, account, operator, django_user_model):
    [task] = mirror(sim, account, {"status": "queued"})
    actions.task_cancel(task=task, user=operator)
    entry = only_entry()
    root = django_user_model.objects.create_superuser("root", password="pw")
    client = Client()
    client.force_login(root)
    url = "/admin/tasks_app/auditentry/"
    assert client.get(f"{url}add/").status_code == 403
    assert client.post(f"{url}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    client.post(f"{url}{entry.pk}/change/", {"result": "failed", "message": "rewritten"})
    assert AuditEntry.objects.get(pk=entry.pk).message == "Cancelled."


def test_it_hides_the_log_from_staff_without_its_permission(sim, account, operator, django_user_model):
    from django.contrib.auth.models import Permission

    [task] = mirror(sim, account, {"status": "queued"})
    actions.task_cancel(task=task, user=operator)
    editor = django_user_model.objects.create_user("editor", password="pw", is_staff=True)
    editor.user_permissions.add(Permission.objects.get(codename="change_account"))
    client = Client()
    client.force_login(editor)

    assert client.get("/admin/tasks_app/auditentry/").status_code == 403
    assert client.get(f"/admin/tasks_app/auditentry/{only_entry().pk}/change/").status_code == 403
    assert b"auditentry" not in client.get("/admin/").content


def test_it_hides_the_log_from_non_staff(sim, account, viewer):
    client = Client()
    client.force_login(viewer)
    response = client.get("/admin/tasks_app/auditentry/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_it_records_deleting_a_task_whose_outputs_are_lost_as_done(sim, account, operator):
    [task] = mirror(sim, account, {"status": "succeeded"})
    Task.objects.filter(pk=task.pk).update(archive_state="lost")
    task.refresh_from_db()
    actions.task_delete(task=task, user=operator, confirm_unarchived=False)
    entry = only_entry()
    assert (entry.action, entry.result, entry.code) == ("delete", "done", "deleted")
