from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.http import QueryDict
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks_app.models import ArchiveState, Artifact, ArtifactOutput, ArtifactState, TaskKind, TaskStatus

from .dashboard_helpers import make_task


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


def test_it_requires_login(client, db):
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
