from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.http import QueryDict
from django.utils import timezone

from tasks_app.filters import MAX_TASK_IDS, TaskFilter, parse_paging, parse_task_ids
from tasks_app.models import ArchiveState, Task, TaskKind, TaskStatus

from .dashboard_helpers import make_task

A = "cgt-20250331175019-68d9t"
B = "cgt-20250331175020-abcde"
C = "cgt-20250401000000-zz999"


def run(params: str) -> TaskFilter:
    return TaskFilter(data=QueryDict(params), queryset=Task.objects.all())


def test_it_splits_ids_on_commas_spaces_and_newlines_and_drops_duplicates():
    assert parse_task_ids(f"{A}, {B}\n{C}\t{A};\r\n") == [A, B, C]


def test_it_names_the_values_that_are_not_task_ids():
    with pytest.raises(ValidationError) as caught:
        parse_task_ids(f"{C} hello <script>")
    message = " ".join(caught.value.messages)
    assert message.startswith("“hello”, “<script>” are not task ids")
    assert C not in message


def test_it_refuses_more_ids_than_ark_filters_at_once():
    ids = " ".join(f"cgt-20250331175019-{n:05d}" for n in range(MAX_TASK_IDS + 1))
    with pytest.raises(ValidationError, match="Too many"):
        parse_task_ids(ids)


def test_it_filters_by_several_statuses_kind_and_model(account):
    wanted = make_task(account, status=TaskStatus.QUEUED, kind=TaskKind.VIDEO, model="m-1")
    also = make_task(account, status=TaskStatus.RUNNING, kind=TaskKind.VIDEO, model="m-1")
    make_task(account, status=TaskStatus.FAILED, kind=TaskKind.VIDEO, model="m-1")
    make_task(account, status=TaskStatus.QUEUED, kind=TaskKind.MODEL_3D, model="m-1")
    make_task(account, status=TaskStatus.QUEUED, kind=TaskKind.VIDEO, model="m-2")
    result = run("status=queued&status=running&kind=video&model=m-1")
    assert result.is_valid()
    assert set(result.qs) == {wanted, also}


def test_it_filters_by_pasted_ids(account):
    one, two = make_task(account), make_task(account)
    make_task(account)
    result = run(f"ids={one.ark_id}%0A{two.ark_id},")
    assert set(result.qs) == {one, two}


def test_it_filters_by_created_range_and_archive_state(account):
    now = timezone.now()
    old = make_task(account, created=now - timedelta(days=3), archive_state=ArchiveState.ARCHIVED)
    make_task(account, created=now - timedelta(hours=1), archive_state=ArchiveState.ARCHIVED)
    make_task(account, created=now - timedelta(days=3), archive_state=ArchiveState.PENDING)
    after = (now - timedelta(days=4)).strftime("%Y-%m-%dT%H:%M")
    before = (now - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    result = run(f"created_after={after}&created_before={before}&archive=archived")
    assert result.is_valid(), result.errors
    assert list(result.qs) == [old]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ("status=bogus", "Status"),
        ("kind=audio", "Kind"),
        ("archive=maybe", "Archive"),
        ("ids=not-an-id", "Task ids"),
        ("created_after=yesterday", "Created from"),
        ("sort=random", "Sort"),
    ],
)
def test_it_reports_bad_values_and_ignores_them(account, params, field):
    task = make_task(account)
    result = run(params)
    assert not result.is_valid()
    assert any(message.startswith(f"{field}:") for message in result.error_messages())
    assert list(result.qs) == [task]


def test_it_refuses_an_inverted_created_range_without_applying_half_of_it(account):
    task = make_task(account)
    result = run("created_after=2025-03-02T00:00&created_before=2025-03-01T00:00")
    assert not result.is_valid()
    assert any("earlier" in message for message in result.error_messages())
    assert list(result.qs) == [task]


def test_it_sorts_by_created_or_updated(account):
    now = timezone.now()
    first = make_task(account, created=now - timedelta(hours=3), ark_updated_at=now)
    second = make_task(account, created=now - timedelta(hours=1), ark_updated_at=now - timedelta(hours=1))
    from tasks_app.selectors import task_list

    def listed(params: str) -> list[Task]:
        return task_list(filterset=run(params), paging=parse_paging(QueryDict(params))).tasks

    assert listed("") == [second, first]
    assert listed("sort=created") == [first, second]
    assert listed("sort=-updated") == [first, second]
    assert listed("sort=updated") == [second, first]
    assert listed("sort=bogus") == [second, first]  # rejected: the default order


def test_it_counts_without_the_status_filter(account):
    make_task(account, status=TaskStatus.QUEUED, kind=TaskKind.VIDEO)
    make_task(account, status=TaskStatus.FAILED, kind=TaskKind.VIDEO)
    make_task(account, status=TaskStatus.FAILED, kind=TaskKind.MODEL_3D)
    result = run("status=queued&kind=video")
    assert result.qs.count() == 1
    assert result.queryset_without_status().count() == 2
    assert result.selected_statuses() == ["queued"]


@pytest.mark.parametrize(
    ("params", "size", "has_cursor", "has_error"),
    [
        ({}, 50, False, False),
        ({"page_size": "200", "after": "1743414619123457.12"}, 200, True, False),
        ({"before": "n.12"}, 50, True, False),
        ({"after": "two"}, 50, False, True),
        ({"after": "1.2.3"}, 50, False, True),
        ({"before": "-99999999999999999.1"}, 50, False, True),
        ({"page_size": "1000000"}, 50, False, True),
        ({"page_size": "7"}, 50, False, True),
    ],
)
def test_it_parses_paging_with_safe_defaults(params, size, has_cursor, has_error):
    paging = parse_paging(QueryDict(mutable=True) | params)
    assert paging.page_size == size
    assert (paging.after is not None or paging.before is not None) == has_cursor
    assert bool(paging.errors) == has_error
