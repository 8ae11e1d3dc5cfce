"""tasks_app/views.py: the task list, its live rows, a task's page, and the cancel and delete actions."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.http import QueryDict
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks_app.models import ArchiveState, Artifact, ArtifactOutput, ArtifactState, Task, TaskKind, TaskStatus
from tasks_app.selectors import row_version
from tasks_app.services.sync import sync_account

from .dashboard_helpers import make_task

# The task list.


def row_ids(response) -> list[str]:
    return re.findall(r'<tr id="task-(\d+)"', response.content.decode())


CHIP = re.compile(
    r'<a class="chip chip-(?P<value>\w+)(?P<selected> chip-selected)?" href="(?P<href>[^"]*)".*?'
    r'<span class="chip-count">(?P<count>\d+)</span>',
    re.S,
)


def chips_on(response) -> dict[str, dict]:
    """The status chips as the page shows them: value -> selected, href, count."""
    return {
        match["value"]: {"selected": bool(match["selected"]), "href": html.unescape(match["href"]),
                         "count": int(match["count"])}
        for match in CHIP.finditer(response.content.decode())
    }  # fmt: skip


def pager_links(response) -> dict[str, str]:
    """The pager's links by their label: first, newer, older."""
    pager = response.content.decode().split('<nav class="pager"', 1)[1].split("</nav>", 1)[0]
    links = {}
    for href, text in re.findall(r'<a class="btn btn-small" href="([^"]*)"[^>]*>([^<]*)</a>', pager):
        name = next(word for word in ("First", "Newer", "Older") if word in text)
        links[name.lower()] = html.unescape(href)
    return links


def test_the_list_requires_login(client, db):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_lists_tasks_newest_first_with_their_columns(user_client, account):
    old = make_task(account, status=TaskStatus.SUCCEEDED, created=timezone.now() - timedelta(hours=5))
    new = make_task(account, status=TaskStatus.QUEUED, kind=TaskKind.MODEL_3D)
    response = user_client.get("/")
    assert response.status_code == 200
    assert row_ids(response) == [str(new.pk), str(old.pk)]
    html = response.content.decode()
    assert f'data-copy="{new.ark_id}"' in html
    assert 'class="badge badge-queued"' in html
    assert "5\xa0hours ago" in html


def test_it_never_renders_the_api_key(user_client, account):
    make_task(account)
    assert b"test-key" not in user_client.get("/").content


def test_it_filters_by_several_statuses_and_counts_each_status(user_client, account):
    queued = make_task(account, status=TaskStatus.QUEUED)
    running = make_task(account, status=TaskStatus.RUNNING)
    make_task(account, status=TaskStatus.FAILED)
    make_task(account, status=TaskStatus.FAILED)
    response = user_client.get("/?status=queued&status=running")
    assert sorted(row_ids(response)) == sorted([str(queued.pk), str(running.pk)])
    chips = chips_on(response)
    # Chips count under the other filters, so the unselected "failed" still shows 2.
    assert chips["failed"]["count"] == 2 and not chips["failed"]["selected"]
    assert chips["queued"]["selected"]
    assert chips["queued"]["href"] == "?status=running"
    assert chips["failed"]["href"] == "?status=queued&status=running&status=failed"


def test_it_filters_by_pasted_ids(user_client, account):
    one, two, _ = make_task(account), make_task(account), make_task(account)
    response = user_client.get("/", {"ids": f"{one.ark_id}\n{two.ark_id}, "})
    assert sorted(row_ids(response)) == sorted([str(one.pk), str(two.pk)])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=bogus", "Status: Select a valid choice. bogus"),
        ("ids=cgt-ok-12345%20DROP%20TABLE", "“DROP”, “TABLE” are not task ids"),
        ("after=abc", "page position is not valid"),
        ("before=-99999999999999999.1", "page position is not valid"),
        ("after=" + "9" * 5000, "page position is not valid"),
        ("page_size=100000000", "Page size must be one of 10, 25, 50, 100 or 200."),
        ("created_before=31/31/2025", "Created until: Enter a valid date/time."),
        ("kind=audio", "Kind: Select a valid choice."),
    ],
)
def test_it_explains_bad_query_parameters_with_a_400_page(user_client, account, query, expected):
    task = make_task(account)
    response = user_client.get(f"/?{query}")
    assert response.status_code == 400
    assert expected in response.content.decode().replace("&ldquo;", "“").replace("&rdquo;", "”")
    assert row_ids(response) == [str(task.pk)]  # the rest of the page still works


def test_it_pages_by_cursor_through_every_task_once_in_order_and_back(user_client, account):
    base = timezone.now() - timedelta(days=1)
    # Ties on the creation time too: the primary key breaks them.
    tasks = [make_task(account, status=TaskStatus.FAILED, created=base + timedelta(minutes=i // 3)) for i in range(25)]
    make_task(account, status=TaskStatus.QUEUED)
    expected = [str(task.pk) for task in sorted(tasks, key=lambda t: (t.ark_created_at, t.pk), reverse=True)]

    seen, pages, url = [], [], "/?status=failed&page_size=10"
    while url:
        response = user_client.get(url)
        assert response.status_code == 200
        seen += row_ids(response)
        pages.append(url)
        links = pager_links(response)
        assert ("first" in links) == (len(pages) > 1) and ("newer" in links) == (len(pages) > 1)
        assert all("status=failed" in link and "page_size=10" in link for link in links.values())
        url = "/" + links["older"] if "older" in links else None
    assert seen == expected and len(pages) == 3

    # "Newer" from the last page gives the page before it, exactly.
    newer = pager_links(user_client.get(pages[2]))["newer"]
    assert row_ids(user_client.get("/" + newer)) == expected[10:20]


def test_it_shows_the_first_page_when_fewer_newer_tasks_remain_than_fit(user_client, account):
    from tasks_app.filters import SORTS, Cursor

    tasks = sorted((make_task(account) for _ in range(12)), key=lambda t: (t.ark_created_at, t.pk), reverse=True)
    # Five tasks are newer than the sixth: the page before it is the first page, full.
    response = user_client.get(f"/?page_size=10&before={Cursor.of(tasks[5], SORTS['-created'])}")
    assert row_ids(response) == [str(task.pk) for task in tasks[:10]]
    assert "newer" not in pager_links(response) and "older" in pager_links(response)


def test_it_counts_each_status_only_up_to_the_cap(user_client, account, monkeypatch):
    from tasks_app import selectors

    monkeypatch.setattr(selectors, "COUNT_CAP", 3)
    for _ in range(5):
        make_task(account, status=TaskStatus.FAILED)
    make_task(account, status=TaskStatus.QUEUED)
    response = user_client.get("/")
    assert response.content.decode().count('<span class="chip-count">3+</span>') == 1
    assert chips_on(response)["queued"]["count"] == 1


@pytest.mark.parametrize(
    ("zone", "value", "storable"),
    [
        ("America/Los_Angeles", "9999-12-31T23:59", False),  # past year 9999 in UTC
        ("Asia/Tokyo", "0001-01-01T00:00", False),  # before year 1 in UTC
        ("Asia/Tokyo", "0001-01-02T00:00", True),
        ("UTC", "9999-12-31T23:59", True),
        ("UTC", "0001-01-01T00:00", True),
    ],
)
def test_it_answers_400_not_500_to_dates_at_the_ends_of_the_calendar(user_client, account, zone, value, storable):
    make_task(account)
    user_client.cookies["arkdash_tz"] = zone
    for name, label in (("created_after", "Created from"), ("created_before", "Created until")):
        response = user_client.get("/", {name: value})
        assert response.status_code == (200 if storable else 400)
        assert (f"{label}: That date is out of range." in response.content.decode()) is not storable
    # The bulk cancel reads the same filter: refused politely, never a 500.
    bulk = user_client.post(f"/tasks/cancel/?created_after={value}", {"scope": "matching", "confirmed": "1"})
    assert bulk.status_code == 302


def test_it_drops_rejected_parameters_from_the_links_it_builds(user_client, account):
    make_task(account, status=TaskStatus.FAILED)
    response = user_client.get("/?status=nope&kind=video&page_size=7")
    assert chips_on(response)["queued"]["href"] == "?kind=video&status=queued"


def test_it_marks_only_rows_that_can_still_change_as_live(user_client, account):
    done = make_task(account, status=TaskStatus.SUCCEEDED)
    live = make_task(account, status=TaskStatus.RUNNING)
    gone = make_task(account, status=TaskStatus.RUNNING, gone_upstream_at=timezone.now())
    html = user_client.get("/").content.decode()
    assert 'id="live-poller"' in html  # one poll per page, slower while nothing is live
    assert re.search(rf'<tr id="task-{live.pk}"[^>]*data-live', html)
    assert not re.search(rf'<tr id="task-{done.pk}"[^>]*data-live', html)
    # Gone from Ark: never re-read, so not polled, and it says what it last was.
    assert not re.search(rf'<tr id="task-{gone.pk}"[^>]*data-live', html)
    assert "gone from Ark (last seen running)" in html
    # ...nor counted or listed as running: nothing will ever re-read it.
    assert chips_on(user_client.get("/"))["running"]["count"] == 1
    assert row_ids(user_client.get("/?status=running")) == [str(live.pk)]


def test_it_offers_cancel_on_queued_rows_and_delete_on_finished_rows_only(user_client, account):
    tasks = {status: make_task(account, status=status) for status in TaskStatus.values}
    html = user_client.get("/").content.decode()
    for status, task in tasks.items():
        row = re.search(rf'<tr id="task-{task.pk}".*?</tr>', html, re.S).group(0)
        assert (f'hx-post="/tasks/{task.pk}/cancel/"' in row) == (status == "queued")
        assert (f'hx-post="/tasks/{task.pk}/delete/"' in row) == (status in ("succeeded", "failed", "expired"))


def test_it_counts_queued_tasks_of_the_filter_for_the_bulk_cancel(user_client, account):
    for _ in range(3):
        make_task(account, status=TaskStatus.QUEUED, kind=TaskKind.VIDEO)
    make_task(account, status=TaskStatus.QUEUED, kind=TaskKind.MODEL_3D)
    html = user_client.get("/?kind=video").content.decode()
    assert "Cancel all 3 queued tasks matching this filter?" in html
    assert "Cancel all" not in user_client.get("/?status=failed").content.decode()


def test_it_shows_copy_progress_for_rows_being_archived(user_client, account):
    task = make_task(account, status=TaskStatus.SUCCEEDED, archive_state=ArchiveState.COPYING)
    Artifact.objects.create(task=task, output=ArtifactOutput.VIDEO, state=ArtifactState.COPYING,
                            size=1000, bytes_copied=250)
    Artifact.objects.create(task=task, output=ArtifactOutput.LAST_FRAME, state=ArtifactState.ARCHIVED,
                            size=1000, bytes_copied=1000)
    assert '<progress max="100" value="62"' in user_client.get("/").content.decode()


def test_it_shows_times_in_the_zone_the_browser_reported(user_client, account):
    make_task(account, created=datetime(2025, 3, 31, 9, 50, 19, tzinfo=UTC))
    user_client.cookies["arkdash_tz"] = "Asia/Shanghai"
    assert 'title="2025-03-31 17:50:19 CST"' in user_client.get("/").content.decode()
    user_client.cookies["arkdash_tz"] = "../../etc/passwd"
    assert 'title="2025-03-31 09:50:19 UTC"' in user_client.get("/").content.decode()


def test_it_says_when_ark_is_unreachable(user_client, account):
    account.failing_since = datetime(2025, 3, 31, 4, 4, tzinfo=UTC)
    account.last_sync_error = "Ark HTTP 500 InternalServiceError"
    account.save()
    html = user_client.get("/").content.decode()
    assert "Ark unreachable" in html and "since 2025-03-31 04:04:00" in html
    assert "InternalServiceError" in html


def test_it_says_how_long_ago_the_last_sync_was(user_client, account):
    account.last_sync_ok_at = timezone.now() - timedelta(seconds=7)
    account.save()
    html = user_client.get("/").content.decode()
    assert f'data-synced-at="{int(account.last_sync_ok_at.timestamp())}"' in html


def test_it_shows_the_archive_lag_once_outputs_wait_for_long(user_client, account):
    task = make_task(account, status=TaskStatus.SUCCEEDED, archive_state=ArchiveState.PENDING,
                     ark_updated_at=timezone.now() - timedelta(hours=2))
    cache.clear()
    assert "Archive lag" not in user_client.get("/").content.decode()
    artifact = Artifact.objects.create(task=task, output=ArtifactOutput.VIDEO, state=ArtifactState.PENDING)
    Artifact.objects.filter(pk=artifact.pk).update(created=task.ark_updated_at)  # found 2 h ago, still waiting
    assert "Archive lag" not in user_client.get("/").content.decode()  # cached for a few seconds
    cache.clear()
    html = user_client.get("/").content.decode()
    assert "Archive lag: 2 h 00 m" in html and "banner-failing" in html


_PARAMS = ["status", "kind", "model", "ids", "created_after", "created_before", "archive", "sort", "after", "before",
           "page_size"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.lists(st.tuples(st.sampled_from(_PARAMS), st.text(max_size=40)), max_size=6))
def test_it_never_fails_on_any_query_string(user_client, account, query):
    response = user_client.get("/", query_dict(query))
    assert response.status_code in (200, 400)
    assert b"Traceback" not in response.content


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.text(max_size=60), health=st.text(max_size=10))
def test_it_never_fails_on_any_poll_parameter(user_client, account, rows, health):
    response = user_client.get("/tasks/rows/", {"rows": rows, "health": health, "seen": health, "newest": rows})
    assert response.status_code in (200, 204, 400)


def query_dict(pairs):
    query = QueryDict(mutable=True)
    for key, value in pairs:
        query.appendlist(key, value)
    return query


def test_a_task_waiting_for_its_archive_hand_off_stays_live_until_the_hand_off(user_client, account, monkeypatch,
                                                                               django_user_model):
    from tasks_app import selectors
    from tasks_app.services import archive

    task = make_task(account, status=TaskStatus.SUCCEEDED, archive_handoff_pending=True)
    html = user_client.get("/").content.decode()
    # Succeeded, archive state still "none": without the flag the row would stop polling here.
    assert re.search(rf'<tr id="task-{task.pk}"[^>]*data-live', html)

    before = task.version
    monkeypatch.setattr(archive, "artifacts_create_for_task", lambda *, task: None)  # no outputs to queue
    assert archive.archive_handoff(task=task)
    task.refresh_from_db()
    assert not task.archive_handoff_pending
    # The poll sees the row change (its version moved) and the page no longer polls it.
    ana = selectors.access_for(django_user_model.objects.get(username="ana"))
    assert [changed.pk for changed in selectors.rows_changed(access=ana, versions={task.pk: before})] == [task.pk]
    html = user_client.get("/").content.decode()
    assert not re.search(rf'<tr id="task-{task.pk}"[^>]*data-live', html)


def test_it_never_serves_a_stored_row_that_no_longer_says_what_the_task_is(user_client, account, django_user_model):
    from tasks_app.models import Membership, MembershipRole, Task

    task = make_task(account, status=TaskStatus.QUEUED)
    assert 'badge-queued' in user_client.get("/").content.decode()
    task.status, task.started_at = TaskStatus.RUNNING, timezone.now()
    task.save()  # its version moves
    assert 'badge-running' in user_client.get("/").content.decode()
    Task.objects.filter(pk=task.pk).update(status=TaskStatus.FAILED)  # a write that left changed_at alone
    html = user_client.get("/").content.decode()
    assert 'badge-failed' in html and f'hx-post="/tasks/{task.pk}/delete/"' in html
    # The viewer's own right to act is part of what a row shows.
    Membership.objects.filter(account=account).update(role=MembershipRole.VIEWER)
    assert f'hx-post="/tasks/{task.pk}/delete/"' not in user_client.get("/").content.decode()
    # So is the language.
    assert "失败" in user_client.get("/", headers={"Accept-Language": "zh-hans"}).content.decode()


# The live rows: what a poll of the open list page answers.


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


def test_the_rows_require_login(client, db):
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


# A task's page.


def archived(task, output, filename):
    return Artifact.objects.create(task=task, output=output, state=ArtifactState.ARCHIVED, size=10,
                                   storage_key=f"tasks/{task.ark_id}/{filename}", filename=filename,
                                   archived_at=timezone.now())


def test_it_requires_login_and_answers_404_for_unknown_tasks(user_client, account):
    task = make_task(account)
    assert Client().get(f"/tasks/{task.pk}/").status_code == 302
    assert user_client.get("/tasks/999999/").status_code == 404


def test_it_answers_only_the_canonical_id_of_a_task(user_client, account):
    task = make_task(account)

    assert user_client.get(f"/tasks/{task.pk}/").status_code == 200
    for alias in (f"0{task.pk}", f"000{task.pk}", f"{task.pk:08d}"):
        assert user_client.get(f"/tasks/{alias}/").status_code == 404, alias
        assert user_client.post(f"/tasks/{alias}/cancel/").status_code == 404, alias
    assert user_client.get("/tasks/0/").status_code == 404
    assert user_client.get("/tasks/" + "9" * 40 + "/").status_code == 404  # no overflow on the way


def test_it_shows_every_field_the_error_usage_parameters_and_raw_json(user_client, account):
    task = make_task(
        account, status=TaskStatus.FAILED, error_code="OutputVideoSensitiveContentDetected.PolicyViolation",
        error_message="The output video may contain sensitive content.", completion_tokens=108900,
        total_tokens=108900, resolution="720p", ratio="16:9", duration=5, seed=42, service_tier="flex",
        raw={"id": "x", "note": "<script>alert(1)</script>", "extra_field": "kept"},
    )
    html = user_client.get(f"/tasks/{task.pk}/").content.decode()
    for text in ("OutputVideoSensitiveContentDetected.PolicyViolation", "may contain sensitive content",
                 "108900", "720p", "16:9", "flex", "extra_field", task.ark_id, "team"):
        assert text in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "test-key" not in html


def test_it_draws_the_timeline_from_created_to_archived(user_client, account):
    created = timezone.now() - timedelta(minutes=10)
    task = make_task(account, status=TaskStatus.SUCCEEDED, created=created, archive_state=ArchiveState.ARCHIVED,
                     started_at=created + timedelta(minutes=1), finished_at=created + timedelta(minutes=3))
    archived(task, ArtifactOutput.VIDEO, "video.mp4")
    response = user_client.get(f"/tasks/{task.pk}/")
    steps = dict(response.context["timeline"])
    assert steps["created"] == created and steps["running"] == created + timedelta(minutes=1)
    assert steps["finished"] == created + timedelta(minutes=3) and steps["archived"] is not None


def test_it_plays_the_archived_video_and_shows_the_last_frame(user_client, account):
    task = make_task(account, status=TaskStatus.SUCCEEDED, archive_state=ArchiveState.ARCHIVED,
                     video_url="https://ark.example/v.mp4?sig=1")
    video = archived(task, ArtifactOutput.VIDEO, "video.mp4")
    frame = archived(task, ArtifactOutput.LAST_FRAME, "last_frame.png")
    html = user_client.get(f"/tasks/{task.pk}/").content.decode()
    video_url = reverse("tasks_app:artifact_download", args=[video.pk])
    assert f'<video id="output-video" controls preload="metadata" playsinline src="{video_url}?inline=1"' in html
    assert f'src="{reverse("tasks_app:artifact_download", args=[frame.pk])}?inline=1"' in html
    assert f'href="{video_url}" download' in html


def test_it_falls_back_to_arks_url_while_it_lives_and_says_when_it_is_gone(user_client, account):
    live = make_task(account, status=TaskStatus.SUCCEEDED, video_url="https://ark.example/v.mp4?sig=1",
                     outputs_expire_at=timezone.now() + timedelta(hours=1))
    assert 'src="https://ark.example/v.mp4?sig=1"' in user_client.get(f"/tasks/{live.pk}/").content.decode()
    dead = make_task(account, status=TaskStatus.SUCCEEDED, video_url="https://ark.example/v.mp4?sig=2",
                     outputs_expire_at=timezone.now() - timedelta(hours=1))
    html = user_client.get(f"/tasks/{dead.pk}/").content.decode()
    assert "<video" not in html and "no longer available from Ark" in html


def test_it_renders_a_3d_viewer_for_an_archived_glb(user_client, account):
    task = make_task(account, kind=TaskKind.MODEL_3D, status=TaskStatus.SUCCEEDED,
                     archive_state=ArchiveState.ARCHIVED, file_format="glb")
    archived(task, ArtifactOutput.MODEL_ZIP, "model.zip")
    model = archived(task, ArtifactOutput.MODEL_FILE, "model.glb")
    html = user_client.get(f"/tasks/{task.pk}/").content.decode()
    assert f'<model-viewer id="output-model" src="{reverse("tasks_app:artifact_download", args=[model.pk])}?inline=1"' in html
    assert 'type="module" src="/static/vendor/model-viewer/model-viewer.min.js"' in html


def test_it_offers_downloads_only_for_archived_outputs_and_shows_copy_progress(user_client, account):
    task = make_task(account, status=TaskStatus.SUCCEEDED, archive_state=ArchiveState.COPYING)
    Artifact.objects.create(task=task, output=ArtifactOutput.VIDEO, state=ArtifactState.COPYING,
                            size=400, bytes_copied=100)
    html = user_client.get(f"/tasks/{task.pk}/").content.decode()
    assert 'value="25"' in html and ">Download<" not in html


def test_it_offers_the_actions_valid_for_the_status(user_client, account):
    queued = make_task(account, status=TaskStatus.QUEUED)
    html = user_client.get(f"/tasks/{queued.pk}/").content.decode()
    assert f"/tasks/{queued.pk}/cancel/" in html and f"/tasks/{queued.pk}/delete/" not in html
    gone = make_task(account, status=TaskStatus.FAILED, gone_upstream_at=timezone.now())
    html = user_client.get(f"/tasks/{gone.pk}/").content.decode()
    assert "gone from Ark" in html and "Remove from ArkDash" in html


def test_it_shows_durations_in_peoples_units_in_both_languages(user_client, account):
    task = make_task(account, status=TaskStatus.SUCCEEDED, duration=5)
    type(task).objects.filter(pk=task.pk).update(execution_expires_after=172800)
    html = user_client.get(f"/tasks/{task.pk}/").content.decode()
    assert "<dd>48 h</dd>" in html and "<dd>5 s</dd>" in html and "172800" not in html.split("raw-json")[0]
    html = user_client.get(f"/tasks/{task.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "<dd>48 小时</dd>" in html and "<dd>5 秒</dd>" in html


def test_it_says_a_task_gone_from_ark_was_last_seen_running(user_client, account):
    task = make_task(account, status=TaskStatus.RUNNING, gone_upstream_at=timezone.now())
    html = user_client.get(f"/tasks/{task.pk}/").content.decode()
    assert "gone from Ark (last seen running)" in html


def test_it_says_truthfully_why_a_3d_model_has_no_preview(user_client, account):
    task = make_task(account, kind=TaskKind.MODEL_3D, status=TaskStatus.SUCCEEDED,
                     archive_state=ArchiveState.ARCHIVED, file_format="usd")
    archived(task, ArtifactOutput.MODEL_ZIP, "model.zip")
    Artifact.objects.create(task=task, output=ArtifactOutput.MODEL_FILE, state=ArtifactState.LOST,
                            filename="model.glb", last_error="Lost: no preview: the USD file holds no mesh")
    html = user_client.get(f"/tasks/{task.pk}/").content.decode()
    assert "No 3D preview: the USD file holds no mesh." in html
    assert "appears once the model is archived" not in html and "<model-viewer" not in html


# Cancel and delete, from a row, the page or the filter.

HTMX = {"HX-Request": "true", "HX-Current-URL": "http://testserver/?status=queued"}


def mirror(sim, account, *specs: dict) -> list[Task]:
    ids = [sim.add_task(**spec) for spec in specs]
    sync_account(account=account, full_sweep=True)
    sim.reset_stats()
    return [Task.objects.get(account=account, ark_id=ark_id) for ark_id in ids]


def test_it_cancels_from_the_row_and_answers_with_the_row(sim, account, user_client):
    [task] = mirror(sim, account, {"status": "queued"})
    response = user_client.post(f"/tasks/{task.pk}/cancel/", headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith(f'<tr id="task-{task.pk}"')
    assert "badge-cancelled" in html and "Cancelled." in html
    assert f'hx-post="/tasks/{task.pk}/cancel/"' not in html  # no cancel button on a cancelled row


def test_it_explains_a_refused_cancel_on_the_row(sim, account, user_client):
    [task] = mirror(sim, account, {"status": "queued"})
    sim.advance(sim.queue_seconds + 1)
    html = user_client.post(f"/tasks/{task.pk}/cancel/", headers=HTMX).content.decode()
    assert "badge-running" in html
    assert "Ark refused to cancel: It is already running" in html


def test_it_confirms_on_a_page_without_javascript_then_redirects_back_with_a_message(sim, account, user_client):
    [task] = mirror(sim, account, {"status": "queued"})
    page = user_client.get(f"/tasks/{task.pk}/cancel/?next=/%3Fkind%3Dvideo")
    assert page.status_code == 200 and b"Cancel the task" in page.content
    assert sim.stats().get("delete", 0) == 0
    response = user_client.post(f"/tasks/{task.pk}/cancel/", {"next": "/?kind=video"}, follow=True)
    assert response.redirect_chain[-1][0] == "/?kind=video"
    assert "Cancelled." in response.content.decode()


def test_it_ignores_a_next_url_pointing_elsewhere(sim, account, user_client):
    [task] = mirror(sim, account, {"status": "queued"})
    response = user_client.post(f"/tasks/{task.pk}/cancel/", {"next": "https://evil.example/"})
    assert response["Location"] == f"/tasks/{task.pk}/"


def test_it_asks_again_on_the_row_before_deleting_unarchived_outputs(sim, account, user_client):
    [task] = mirror(sim, account, {"status": "succeeded"})
    html = user_client.post(f"/tasks/{task.pk}/delete/", headers=HTMX).content.decode()
    assert "not archived" in html and "Delete anyway" in html and '"confirm_unarchived": "1"' in html
    assert sim.stats().get("delete", 0) == 0
    html = user_client.post(f"/tasks/{task.pk}/delete/", {"confirm_unarchived": "1"}, headers=HTMX).content.decode()
    assert "gone from Ark" in html and "record deleted" in html
    assert sim.stats()["delete"] == 1


def test_it_requires_the_checkbox_on_the_page_without_javascript(sim, account, user_client):
    [task] = mirror(sim, account, {"status": "succeeded"})
    page = user_client.get(f"/tasks/{task.pk}/delete/")
    assert b'name="confirm_unarchived" value="1" required' in page.content
    response = user_client.post(f"/tasks/{task.pk}/delete/")
    assert response.status_code == 409 and b"not archived" in response.content
    assert sim.stats().get("delete", 0) == 0


def test_it_removes_a_task_gone_upstream_from_arkdash(sim, account, user_client):
    [task] = mirror(sim, account, {"status": "failed"})
    user_client.post(f"/tasks/{task.pk}/delete/")
    response = user_client.post(f"/tasks/{task.pk}/delete/", {"remove_local": "1"}, follow=True)
    assert not Task.objects.filter(pk=task.pk).exists()
    assert "removed from ArkDash" in response.content.decode()


def test_it_asks_for_the_count_before_cancelling_everything_matching_the_filter(sim, account, user_client):
    videos = mirror(sim, account, *[{"status": "queued"}] * 3, {"status": "queued", "kind": "3d"},
                    {"status": "running"})
    page = user_client.post("/tasks/cancel/?kind=video", {"scope": "matching"})
    assert "3 queued tasks match this filter" in page.content.decode()
    assert sim.stats().get("delete", 0) == 0
    response = user_client.post("/tasks/cancel/?kind=video", {"scope": "matching", "confirmed": "1"}, follow=True)
    assert "3 tasks cancelled." in response.content.decode()
    assert response.redirect_chain[-1][0] == "/?kind=video"
    statuses = dict(Task.objects.values_list("ark_id", "status"))
    assert [statuses[t.ark_id] for t in videos] == ["cancelled"] * 3 + ["queued", "running"]
    assert Task.objects.get(ark_id=videos[3].ark_id).kind == TaskKind.MODEL_3D


def test_it_cancels_the_selected_rows(sim, account, user_client):
    one, two, three = mirror(sim, account, *[{"status": "queued"}] * 3)
    response = user_client.post("/tasks/cancel/", {"scope": "selected", "ids": [one.pk, three.pk], "confirmed": "1"},
                                follow=True)
    assert "2 tasks cancelled." in response.content.decode()
    assert Task.objects.get(pk=two.pk).status == TaskStatus.QUEUED


def test_it_refuses_to_cancel_everything_under_an_invalid_filter(sim, account, user_client):
    mirror(sim, account, {"status": "queued"})
    response = user_client.post("/tasks/cancel/?status=nonsense", {"scope": "matching", "confirmed": "1"},
                                follow=True)
    assert "Fix the filter" in response.content.decode()
    assert sim.stats().get("delete", 0) == 0


def test_it_only_accepts_post_for_actions(account, user_client):
    assert user_client.get("/tasks/cancel/").status_code == 405
