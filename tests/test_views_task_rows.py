from __future__ import annotations

import re

import pytest
from django.utils import timezone

from tasks_app.models import ArchiveState, Artifact, ArtifactOutput, ArtifactState, Task, TaskStatus
from tasks_app.selectors import row_version

from .dashboard_helpers import make_task


def page_state(client, query: str = "") -> dict:
    """What an open list page sends with each poll: its filter and what it shows now."""
    html = client.get("/" + query).content.decode()
    poller = re.search(r'<div id="live-poller"[^>]*>', html, re.S).group(0)
    return {
        "url": html_unescape(re.search(r'hx-get="([^"]*)"', poller)[1]),
        "seen": re.search(r'data-seen="(\d*)"', poller)[1],
        "newest": re.search(r'data-newest="([^"]*)"', poller)[1],
        "slide": "1" if "data-slide-in" in poller else "0",
        "counts": re.search(r'id="status-chips"[^>]*data-counts="([^"]*)"', html)[1],
    }


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


def poll(client, tasks, health="never", state: dict | None = None, **extra):
    """One poll, as the page's script sends it (after the page was loaded: `state`)."""
    from django.http import QueryDict

    state = dict(state or page_state(client))
    path, _, query = state.pop("url").partition("?")
    params = QueryDict(query, mutable=True)  # the page's filter, as htmx keeps it in the URL
    params.update({"rows": ",".join(f"{task.pk}.{row_version(task)}" for task in tasks), "health": health, **state})
    return client.get(f"{path}?{params.urlencode()}", headers={"HX-Request": "true"}, **extra)


def wire_size(response) -> int:
    return len(response.serialize_headers()) + len(response.content)


def test_it_answers_an_idle_poll_with_an_empty_204_under_one_kilobyte(user_client, account):
    tasks = [make_task(account, status=TaskStatus.RUNNING) for _ in range(50)]
    response = poll(user_client, tasks)
    assert response.status_code == 204
    assert response.content == b""
    assert wire_size(response) <= 1024


def test_it_sends_only_the_rows_that_changed_as_out_of_band_swaps(user_client, account):
    calm, moving = make_task(account, status=TaskStatus.RUNNING), make_task(account, status=TaskStatus.RUNNING)
    shown = [calm, Task.objects.get(pk=moving.pk)]
    state = page_state(user_client)
    moving.archive_state = ArchiveState.PENDING
    moving.started_at = timezone.now()
    moving.save()
    response = poll(user_client, shown, state=state)
    assert response.status_code == 200
    html = response.content.decode()
    assert re.findall(r'<tr id="task-(\d+)"', html) == [str(moving.pk)]
    assert re.search(rf'<template>\s*<tr id="task-{moving.pk}"', html)
    assert 'hx-swap-oob="outerHTML"' in html and "data-live" in html
    assert f'data-version="{row_version(moving)}"' in html


def test_it_renders_finished_rows_without_the_live_marker_so_polling_stops(user_client, account):
    task = make_task(account, status=TaskStatus.RUNNING)
    shown = Task.objects.get(pk=task.pk)
    state = page_state(user_client)
    task.status = TaskStatus.FAILED
    task.save()
    html = poll(user_client, [shown], state=state).content.decode()
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
    state = page_state(user_client)
    del state["url"]
    response = user_client.get("/tasks/rows/", {"rows": f"{pk}.{version},424242.1", "health": "never", **state})
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


def test_it_slides_new_tasks_in_on_top_of_the_first_page_and_moves_the_chips(user_client, account):
    make_task(account, status=TaskStatus.SUCCEEDED)
    state = page_state(user_client)
    new = make_task(account, status=TaskStatus.QUEUED, created=timezone.now())
    response = poll(user_client, [], state=state)
    html = response.content.decode()
    assert response.status_code == 200
    assert re.search(rf'<tbody hx-swap-oob="afterbegin:#task-rows">\s*<tr id="task-{new.pk}"', html)
    assert 'id="status-chips"' in html and 'data-counts="1.0.1.0.0.0"' in html
    assert response["X-Ark-Newest"].endswith(f".{new.pk}")
    # The page now shows it: the next poll with what the page sends back is idle.
    state.update(newest=response["X-Ark-Newest"], seen=response["X-Ark-Seen"], counts="1.0.1.0.0.0")
    assert poll(user_client, [new], state=state).status_code == 204


def test_it_offers_a_notice_for_new_tasks_off_the_first_page(user_client, account):
    tasks = [make_task(account, status=TaskStatus.FAILED) for _ in range(12)]
    tenth = sorted(tasks, key=lambda t: (t.ark_created_at, t.pk), reverse=True)[9]
    from tasks_app.filters import SORTS, Cursor

    state = page_state(user_client, f"?status=failed&page_size=10&after={Cursor.of(tenth, SORTS['-created'])}")
    assert state["slide"] == "0"
    make_task(account, status=TaskStatus.FAILED, created=timezone.now())
    make_task(account, status=TaskStatus.QUEUED, created=timezone.now())  # not in the filter
    html = poll(user_client, [], state=state).content.decode()
    assert "<tr" not in html
    assert re.search(r'id="new-tasks"[^>]*hx-swap-oob="outerHTML"', html) and "1 new task" in html
    assert 'href="/?status=failed&amp;page_size=10"' in html


def test_it_leaves_out_the_chips_when_no_count_moved(user_client, account):
    running = make_task(account, status=TaskStatus.RUNNING)
    older = make_task(account, status=TaskStatus.SUCCEEDED, created=timezone.now() - timezone.timedelta(days=2))
    state, shown = page_state(user_client), [Task.objects.get(pk=running.pk), older]
    running.error_code = "SomethingNew"  # the row changes, no count does
    running.save()
    html = poll(user_client, shown, state=state).content.decode()
    assert f'<tr id="task-{running.pk}"' in html and 'id="status-chips"' not in html


def test_it_stays_idle_once_writes_are_older_than_the_grace_window(user_client, account, monkeypatch):
    from tasks_app import views

    task = make_task(account, status=TaskStatus.RUNNING)
    state = page_state(user_client)
    monkeypatch.setattr(views, "CHANGE_GRACE", timezone.timedelta(0))
    queries = []
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert poll(user_client, [task], state=state).status_code == 204
    queries = [q["sql"] for q in captured.captured_queries]
    assert not any("COUNT(" in sql.upper() for sql in queries)  # no recount when nothing moved
