from __future__ import annotations

import re

import pytest
from django.utils import timezone

from tasks_app.models import ArchiveState, Artifact, ArtifactOutput, ArtifactState, Task, TaskStatus
from tasks_app.selectors import row_version

from .dashboard_helpers import make_task, member_of


@pytest.fixture
def user_client(client, django_user_model, account):
    user = django_user_model.objects.create_user("ana", password="pw")
    member_of(user, account)
    client.force_login(user)
    return client


def poll(client, tasks, health="never", **extra):
    rows = ",".join(f"{task.pk}.{row_version(task)}" for task in tasks)
    return client.get("/tasks/rows/", {"rows": rows, "health": health}, headers={"HX-Request": "true"}, **extra)


def wire_size(response) -> int:
    return len(response.serialize_headers()) + len(response.content)


def test_it_answers_an_idle_poll_with_an_empty_204_under_one_kilobyte(user_client, account):
    tasks = [make_task(account, status=TaskStatus.RUNNING) for _ in range(50)]
    response = poll(user_client, tasks)
    assert response.status_code == 204
    assert response.content == b""
    assert wire_size(response) <= 1024


def test_it_sends_only_the_rows_that_changed_as_out_of_band_swaps(user_client, account):
    calm, moving = make_task(account, status=TaskStatus.RUNNING), make_task(account, status=TaskStatus.QUEUED)
    shown = [calm, Task.objects.get(pk=moving.pk)]
    moving.status = TaskStatus.RUNNING
    moving.started_at = timezone.now()
    moving.save()
    response = poll(user_client, shown)
    assert response.status_code == 200
    html = response.content.decode()
    assert re.findall(r'<tr id="task-(\d+)"', html) == [str(moving.pk)]
    assert re.search(rf'<template>\s*<tr id="task-{moving.pk}"', html)
    assert 'hx-swap-oob="outerHTML"' in html and "data-live" in html
    assert f'data-version="{row_version(moving)}"' in html


def test_it_renders_finished_rows_without_the_live_marker_so_polling_stops(user_client, account):
    task = make_task(account, status=TaskStatus.RUNNING)
    shown = Task.objects.get(pk=task.pk)
    task.status = TaskStatus.FAILED
    task.save()
    html = poll(user_client, [shown]).content.decode()
    row = re.search(r"<tr [^>]*>", html).group(0)
    assert "data-live" not in row and "badge-failed" in html


def test_it_always_resends_rows_whose_outputs_are_being_copied(user_client, account):
    task = make_task(account, status=TaskStatus.SUCCEEDED, archive_state=ArchiveState.COPYING)
    Artifact.objects.create(task=task, output=ArtifactOutput.VIDEO, state=ArtifactState.COPYING,
                            size=200, bytes_copied=50)
    html = poll(user_client, [task]).content.decode()
    assert 'value="25"' in html


def test_it_swaps_the_banner_when_the_sync_health_changed(user_client, account):
    task = make_task(account, status=TaskStatus.RUNNING)
    account.failing_since = timezone.now()
    account.last_sync_error = "connection refused"
    account.save()
    response = poll(user_client, [task], health="ok")
    html = response.content.decode()
    assert 'id="sync-banner"' in html and 'hx-swap-oob="outerHTML"' in html and "Ark unreachable" in html
    assert poll(user_client, [task], health="failing").status_code == 204


def test_it_reports_the_last_sync_time_in_a_header(user_client, account):
    account.last_sync_ok_at = timezone.now()
    account.save()
    task = make_task(account, status=TaskStatus.RUNNING)
    response = poll(user_client, [task], health="ok")
    assert response.status_code == 204
    assert response["X-Ark-Synced-At"] == str(int(account.last_sync_ok_at.timestamp()))


@pytest.mark.parametrize("rows", ["1.2.3", "abc", "1.", ",".join(f"{n}.1" for n in range(1, 300))])
def test_it_rejects_a_malformed_rows_parameter_with_a_400(user_client, db, rows):
    response = user_client.get("/tasks/rows/", {"rows": rows})
    assert response.status_code == 400
    assert b"Traceback" not in response.content


def test_it_ignores_rows_that_no_longer_exist(user_client, account):
    task = make_task(account, status=TaskStatus.RUNNING)
    pk, version = task.pk, row_version(task)
    task.delete()
    response = user_client.get("/tasks/rows/", {"rows": f"{pk}.{version},424242.1", "health": "never"})
    assert response.status_code == 204


def test_it_never_calls_ark_to_answer_a_poll(sim, user_client, account):
    task = make_task(account, status=TaskStatus.RUNNING)
    moved = Task.objects.get(pk=task.pk)
    moved.status = TaskStatus.SUCCEEDED
    moved.save()
    assert poll(user_client, [task]).status_code == 200
    assert sum(sim.stats().values()) == 0


def test_it_requires_login(client, db):
    assert client.get("/tasks/rows/?rows=").status_code == 302
