"""The list's rows and filter form are kept between renders, and what is kept never shows
anything that differs from a fresh render (tasks_app/row_html.py; the form: page_cache.kept_frame)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from tasks_app import mirror_version, row_html, rows, views
from tasks_app.models import MembershipRole, Task, TaskStatus

from .dashboard_helpers import make_task, member_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def presented(monkeypatch) -> list[int]:
    """The pks of the rows prepared afresh (not taken from the store).

    The clock's 30-second bucket is held still: one passing between two requests would
    rightly render every row again (seen once in CI).
    """
    monkeypatch.setattr(row_html, "_time_bucket", lambda: 1)
    seen: list[int] = []
    real = rows.present

    def spy(tasks, **kwargs):
        seen.extend(task.pk for task in tasks)
        return real(tasks, **kwargs)

    monkeypatch.setattr(row_html, "present", spy)
    return seen


def signed_in(username: str, account, role: str = MembershipRole.OPERATOR) -> Client:
    user = get_user_model().objects.create_user(username, password="pw")
    member_of(user, account, role)
    client = Client()
    client.force_login(user)
    return client


def row_of(html: str, task: Task) -> str:
    match = re.search(rf'<tr id="task-{task.pk}".*?</tr>', html, re.S)
    assert match, f"no row for task {task.pk}"
    return match.group(0)


def test_after_a_change_only_the_changed_row_is_prepared_again(account, presented):
    tasks = [make_task(account, status=TaskStatus.QUEUED) for _ in range(3)]
    client = signed_in("ana", account)
    client.get("/")
    assert sorted(presented) == sorted(task.pk for task in tasks)

    presented.clear()
    Task.objects.filter(pk=tasks[1].pk).update(status=TaskStatus.RUNNING, changed_at=timezone.now())
    page = client.get("/").content.decode()

    assert presented == [tasks[1].pk]
    assert 'class="row row-running"' in row_of(page, tasks[1])
    assert 'class="row row-queued"' in row_of(page, tasks[0])


def test_a_kept_row_is_the_row_a_fresh_render_gives(account, presented):
    tasks = [make_task(account, status=TaskStatus.QUEUED) for _ in range(2)]
    client = signed_in("ana", account)
    client.get("/?page_size=10")
    mirror_version.bump()  # a new page, rows from the store
    kept = client.get("/?page_size=10").content.decode()
    assert len(presented) == 2

    views.cache.clear()  # nothing kept: everything rendered
    fresh = client.get("/?page_size=10").content.decode()
    for task in tasks:
        assert row_of(kept, task) == row_of(fresh, task)


def test_each_page_gets_its_own_address_in_a_kept_rows_links(account):
    task = make_task(account, status=TaskStatus.QUEUED)
    client = signed_in("ana", account)
    first = row_of(client.get("/?kind=video").content.decode(), task)
    second = row_of(client.get("/?status=queued&page_size=25").content.decode(), task)
    assert "?next=/%3Fkind%3Dvideo" in first
    assert "?next=/%3Fstatus%3Dqueued%26page_size%3D25" in second
    assert "ARKDASH_RETURN_TO_MARK" not in first + second


def test_a_viewer_never_gets_an_operators_kept_row(account):
    task = make_task(account, status=TaskStatus.QUEUED)
    operator = row_of(signed_in("olga", account).get("/").content.decode(), task)
    viewer = row_of(signed_in("vic", account, MembershipRole.VIEWER).get("/").content.decode(), task)
    assert "hx-post" in operator and 'name="ids"' in operator
    assert "hx-post" not in viewer and 'name="ids"' not in viewer


def test_kept_rows_follow_language_and_time_zone(account):
    task = make_task(account, status=TaskStatus.QUEUED, created=timezone.now() - timedelta(hours=3))
    client = signed_in("ana", account)
    english = row_of(client.get("/").content.decode(), task)
    client.cookies["django_language"] = "zh-hans"
    chinese = row_of(client.get("/").content.decode(), task)
    assert "Cancel" in english and "queued" in english
    assert "Cancel" not in chinese and "排队" in chinese
    # The exact time on hover is in the viewer's zone: the same row in another zone differs.
    client.cookies["arkdash_tz"] = "Asia/Shanghai"
    shanghai = row_of(client.get("/").content.decode(), task)
    assert re.search(r'title="[^"]+ CST"', shanghai)
    assert shanghai != chinese


def test_the_filter_form_shows_each_query_its_own_values(account):
    make_task(account, status=TaskStatus.QUEUED)
    client = signed_in("ana", account)
    first = client.get("/?kind=video&model=seedance&page_size=25").content.decode()
    second = client.get("/?kind=3d&page_size=100").content.decode()
    assert re.search(r'<option value="video" selected>', first)
    assert 'value="seedance"' in first
    assert re.search(r'<option value="25" selected>', first)
    assert re.search(r'<option value="3d" selected>', second)
    assert 'value="seedance"' not in second
    assert re.search(r'<option value="100" selected>', second)
    again = client.get("/?kind=video&model=seedance&page_size=25").content.decode()
    form = re.compile(r'<form method="get".*?</form>', re.S)
    assert form.search(again).group(0) == form.search(first).group(0)
