"""The list page put together from what is kept (tasks_app/list_plan.py: the query string's
SQL; page_cache.kept_frame: everything the mirror does not decide; list_parts.py: what
it does) is the page a render with nothing kept gives, and a plan reads what the filter's
querysets read."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client, RequestFactory
from django.utils import timezone, translation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks_app import compiled_query, list_plan, row_html, selectors, views
from tasks_app.filters import TaskFilter
from tasks_app.models import (
    Account,
    ArchiveState,
    Artifact,
    ArtifactOutput,
    ArtifactState,
    MembershipRole,
    Task,
    TaskKind,
    TaskStatus,
)

from .dashboard_helpers import make_task, member_of

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)


def forget_everything_kept() -> None:
    cache.clear()
    compiled_query.forget_kept()


def normalized(html: str) -> str:
    """An answer without what differs per answer by design: CSRF tokens (masked anew each
    time) and the server's clock in the sync banner."""
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', 'name="csrfmiddlewaretoken" value="-"', html)
    html = re.sub(r'"X-CSRFToken": "[^"]+"', '"X-CSRFToken": "-"', html)
    return re.sub(r'data-server-now="\d+"', 'data-server-now="-"', html)


@pytest.fixture
def varied_tasks(account) -> list[Task]:
    """Tasks of every kind of row, created 30 s past whole minutes so no relative time
    ("5 hours ago") turns over while a test runs."""

    def created(minutes: int) -> datetime:
        return timezone.now() - timedelta(minutes=minutes, seconds=30)

    tasks = [
        make_task(account, status=TaskStatus.QUEUED, created=created(3)),
        make_task(account, status=TaskStatus.QUEUED, kind=TaskKind.MODEL_3D, created=created(9)),
        make_task(account, status=TaskStatus.FAILED, created=created(60 * 5), error_code="InternalServiceError"),
        make_task(account, status=TaskStatus.EXPIRED, created=created(60 * 30)),
        make_task(account, status=TaskStatus.SUCCEEDED, created=created(60 * 50), archive_state=ArchiveState.ARCHIVED),
    ]
    copying = make_task(account, status=TaskStatus.SUCCEEDED, created=created(20), archive_state=ArchiveState.COPYING)
    Artifact.objects.create(task=copying, output=ArtifactOutput.VIDEO, state=ArtifactState.COPYING, size=400,
                            bytes_copied=100)  # fmt: skip
    return [*tasks, copying]


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?status=queued&status=succeeded",
        "?kind=video&page_size=10",
        "?page_size=10&page=2",
        "?page=999",
        "?status=bogus&page=0&kind=video",
        "?archive=copying",
        "?status=cancelled",
    ],
)
def test_a_page_put_together_after_a_change_is_the_page_rendered_afresh(account, varied_tasks, query, monkeypatch):
    monkeypatch.setattr(row_html, "_time_bucket", lambda: 1)
    for _ in range(12):  # enough rows for a second page of ten
        make_task(account, status=TaskStatus.FAILED, created=timezone.now() - timedelta(days=2, seconds=30))
    user = get_user_model().objects.create_user("ana", password="pw")
    member_of(user, account)
    client = Client()
    client.force_login(user)
    client.get(f"/{query}")  # the plan, frame, form and rows are kept now
    Task.objects.filter(pk=varied_tasks[0].pk).update(status=TaskStatus.RUNNING, started_at=None,
                                                      changed_at=timezone.now())  # fmt: skip

    kept = client.get(f"/{query}")
    forget_everything_kept()
    fresh = client.get(f"/{query}")

    assert kept.status_code == fresh.status_code
    assert normalized(kept.content.decode()) == normalized(fresh.content.decode())


def test_the_frame_is_kept_and_only_the_mirrors_parts_are_rendered_again(account, varied_tasks, monkeypatch):
    user = get_user_model().objects.create_user("ana", password="pw")
    member_of(user, account)
    client = Client()
    client.force_login(user)
    frames = []
    real = views._list_frame
    monkeypatch.setattr(views, "_list_frame", lambda *args, **kwargs: frames.append(args) or real(*args, **kwargs))
    first = client.get("/?status=queued").content.decode()
    Task.objects.filter(pk=varied_tasks[1].pk).update(status=TaskStatus.CANCELLED, changed_at=timezone.now())
    second = client.get("/?status=queued").content.decode()

    assert len(frames) == 1
    chip = re.compile(r'chip-cancelled".*?<span class="chip-count">(\d+)</span>', re.S)
    assert (chip.search(first)[1], chip.search(second)[1]) == ("0", "1")
    assert f'id="task-{varied_tasks[1].pk}"' in first and f'id="task-{varied_tasks[1].pk}"' not in second


def test_frames_are_not_shared_between_people_languages_or_paths(account, varied_tasks):
    olga = get_user_model().objects.create_user("olga", password="pw")
    vic = get_user_model().objects.create_user("vic", password="pw")
    member_of(olga, account)
    member_of(vic, account, MembershipRole.VIEWER)
    operator, viewer = Client(), Client()
    operator.force_login(olga)
    viewer.force_login(vic)
    assert '<span class="user">olga</span>' in operator.get("/").content.decode()
    as_viewer = viewer.get("/").content.decode()
    assert '<span class="user">vic</span>' in as_viewer and "olga" not in as_viewer
    assert 'value="selected"' not in as_viewer  # a viewer gets no bulk cancel button
    viewer.cookies["django_language"] = "zh-hans"
    assert "任务" in viewer.get("/").content.decode()
    assert 'value="/?kind=video"' in viewer.get("/?kind=video").content.decode()  # the language form's next


# --- the plan reads what the filter's querysets read -----------------------------------

STATUSES = st.lists(st.sampled_from([*TaskStatus.values, "bogus"]), max_size=3, unique=True)
MOMENTS = st.sampled_from(["", "2026-01-10T00:00", "2026-01-10T07:30", "2026-01-12T23:59", "2026-01-31", "nope"])


@st.composite
def query_strings(draw) -> str:
    params = [("status", value) for value in draw(STATUSES)]
    for name, values in (
        ("kind", ["", "video", "3d", "audio"]),
        ("archive", ["", *ArchiveState.values]),
        ("model", ["", "model-a", "model-b"]),
        ("sort", ["", "-created", "created", "-updated", "updated", "sideways"]),
        ("page_size", ["", "10", "25", "7"]),
    ):
        if value := draw(st.sampled_from(values)):
            params.append((name, value))
    for name in ("created_after", "created_before"):
        if value := draw(MOMENTS):
            params.append((name, value))
    if draw(st.booleans()):
        params.append(("ids", draw(st.sampled_from(["cgt-20260110000000-00001 cgt-20260111000000-00004", "x"]))))
    return urlencode(params)


@pytest.fixture
def two_accounts(account):
    """Tasks in two accounts over a few January days, and three people who see them differently."""
    other = Account.objects.create(name="other", base_url="http://ark.invalid/api/v3")
    start = datetime(2026, 1, 9, 20, tzinfo=UTC)
    for index in range(36):
        make_task(
            account if index % 3 else other,
            status=TaskStatus.values[index % 6],
            kind=TaskKind.VIDEO if index % 4 else TaskKind.MODEL_3D,
            created=start + timedelta(hours=7 * index),
            ark_id=f"cgt-2026011{index % 3}000000-{index:05d}",
            model="model-a" if index % 5 else "model-b",
            archive_state=ArchiveState.values[index % len(ArchiveState.values)],
        )
    people = get_user_model().objects
    superuser = people.create_superuser("root", password="pw")
    operator = people.create_user("olga", password="pw")
    member_of(operator, account)
    mixed = people.create_user("mia", password="pw")
    member_of(mixed, account, MembershipRole.VIEWER)
    member_of(mixed, other)
    return [superuser, operator, mixed]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=query_strings(), person=st.integers(0, 2), zone=st.sampled_from(["UTC", "Asia/Shanghai", "America/New_York"]))
def test_a_plan_reads_what_the_filters_querysets_read(two_accounts, query, person, zone):
    user = two_accounts[person]
    request = RequestFactory().get(f"/?{query}")
    request.user = user
    access = selectors.access_for(user)
    with timezone.override(zone), translation.override("en"):
        plan = list_plan.plan_for(request, access)
        filterset = TaskFilter(data=request.GET, queryset=selectors.tasks_visible_to(user))
        expected_rows = list(filterset.qs.values_list("pk", flat=True))
        expected_counts = Counter(filterset.queryset_without_status().values_list("status", flat=True))
        expected_errors = filterset.error_messages()

    assert ([row[0] for row in plan.row_keys.rows()] if plan.row_keys else []) == expected_rows
    counts = selectors.counted(plan.count_queries, version=0)
    assert counts == {status: expected_counts[status] for status in TaskStatus.values}
    assert list(plan.errors[: len(expected_errors)]) == expected_errors
    queued_operable = filterset.qs.filter(
        status=TaskStatus.QUEUED,
        **({} if access.everything else {"account_id__in": access.operable_account_ids}),
    ).count()
    if not plan.selected_statuses or TaskStatus.QUEUED in plan.selected_statuses:
        assert views._queued_operable(plan, counts, access) == queued_operable
    cache.clear()  # counts are kept under version 0: the next example counts its own


def test_a_plan_is_kept_per_query_string_access_zone_and_language(two_accounts):
    superuser, operator, _mixed = two_accounts
    request = RequestFactory().get("/?created_after=2026-01-10T07:30&status=bogus")
    request.user = operator
    access = selectors.access_for(operator)
    with timezone.override("UTC"), translation.override("en"):
        plan = list_plan.plan_for(request, access)
        assert list_plan.plan_for(request, access) is plan
        assert list_plan.plan_for(request, selectors.access_for(superuser)) is not plan
    with timezone.override("Asia/Shanghai"), translation.override("en"):
        in_shanghai = list_plan.plan_for(request, access)
    with timezone.override("UTC"), translation.override("zh-hans"):
        in_chinese = list_plan.plan_for(request, access)
    assert in_shanghai.row_keys.params != plan.row_keys.params  # 07:30 there is 23:30 the day before in UTC
    assert in_chinese.errors != plan.errors and "Status" in plan.errors[0]


def test_kept_plans_are_bounded(monkeypatch):
    monkeypatch.setattr(compiled_query, "KEPT_PER_THREAD", 3)
    compiled_query.forget_kept()
    built = []
    for key in ["a", "b", "c", "a", "d", "b"]:
        compiled_query.keep_per_thread(key, lambda key=key: built.append(key) or key)
    # "b" was the least recently used when "d" came, so it was built again.
    assert built == ["a", "b", "c", "d", "b"]


def test_a_compiled_query_runs_again_with_new_parameters_and_converts_its_columns(account):
    task = make_task(account, status=TaskStatus.FAILED)
    query = compiled_query.CompiledQuery.of(Task.objects.filter(pk=0).values_list("pk", "changed_at"))
    assert query.rows() == []
    task.refresh_from_db()
    assert query.rows([task.pk]) == [(task.pk, task.changed_at)]  # a datetime, on SQLite too
    with pytest.raises(ValueError, match="2 parameters for a query compiled with 1"):
        query.rows([task.pk, 1])
    assert compiled_query.CompiledQuery.of(Task.objects.none().values_list("pk")) is None
