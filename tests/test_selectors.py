from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import Http404
from django.utils import timezone

from tasks_app import selectors
from tasks_app.filters import SORTS, Cursor, TaskFilter, parse_paging
from tasks_app.models import (
    Account,
    ArchiveState,
    Artifact,
    ArtifactOutput,
    ArtifactState,
    MembershipRole,
    Task,
    TaskStatus,
)
from tasks_app.services.archive import artifact_archive

from .dashboard_helpers import make_task, member_of, succeeded_video


@pytest.fixture
def user(django_user_model, account):
    user = django_user_model.objects.create_user("ana", password="pw")
    member_of(user, account, MembershipRole.VIEWER)
    return user


def test_it_shows_nothing_to_anonymous_users(account):
    make_task(account)
    assert selectors.tasks_visible_to(AnonymousUser()).count() == 0
    with pytest.raises(Http404):
        selectors.task_for_user(user=AnonymousUser(), pk=Task.objects.get().pk)


def test_it_finds_a_visible_task_or_raises_404(account, user):
    task = make_task(account)
    assert selectors.task_for_user(user=user, pk=task.pk) == task
    with pytest.raises(Http404):
        selectors.task_for_user(user=user, pk=task.pk + 1000)


def test_it_versions_rows_by_the_exact_microsecond(account):
    task = make_task(account)
    task.changed_at = datetime(2025, 3, 31, 9, 50, 19, 123457, tzinfo=UTC)
    assert selectors.row_version(task) == 1743414619123457


def test_it_counts_every_status_including_empty_ones(account):
    make_task(account, status=TaskStatus.FAILED)
    make_task(account, status=TaskStatus.FAILED)
    counts = selectors.status_counts(queryset=Task.objects.all())
    assert counts == {"queued": 0, "running": 0, "succeeded": 0, "failed": 2, "expired": 0, "cancelled": 0}


def page_of(query: str, *, user) -> selectors.TaskListPage:
    from django.http import QueryDict

    params = QueryDict(query)
    filterset = TaskFilter(data=params, queryset=selectors.tasks_visible_to(user))
    return selectors.task_list(filterset=filterset, paging=parse_paging(params))


def test_it_pages_oldest_first_by_cursor_with_ties_broken_by_id(account, user):
    same_time = timezone.now() - timedelta(hours=1)
    tasks = [make_task(account, created=same_time) for _ in range(15)] + [make_task(account) for _ in range(10)]
    oldest_first = sorted(tasks, key=lambda t: (t.ark_created_at, t.pk))
    seen, cursor, pages = [], "", 0
    while True:
        page = page_of("page_size=10&sort=created" + (f"&after={cursor}" if cursor else ""), user=user)
        seen += page.tasks
        pages += 1
        assert page.is_first == (pages == 1)
        if page.older is None:
            break
        cursor = str(page.older)
    assert seen == oldest_first and pages == 3


def test_it_pages_tasks_without_an_update_time_last(account, user):
    dated = [make_task(account, ark_updated_at=timezone.now() - timedelta(minutes=n)) for n in range(3)]
    undated = [make_task(account, ark_updated_at=None) for _ in range(3)]
    for sort in ("-updated", "updated"):
        seen, cursor = [], ""
        while True:
            page = page_of(f"sort={sort}&page_size=10" + (f"&after={cursor}" if cursor else ""), user=user)
            seen += page.tasks
            if page.older is None:
                break
            cursor = str(page.older)
        assert {t.pk for t in seen[-3:]} == {t.pk for t in undated} and len(seen) == 6
        assert {t.pk for t in seen[:3]} == {t.pk for t in dated}


def test_a_cursor_survives_its_round_trip_and_refuses_garbage():
    moment = datetime(2025, 3, 31, 9, 50, 19, 123457, tzinfo=UTC)
    for cursor in (Cursor(moment, 42), Cursor(None, 7), Cursor(datetime(1960, 1, 1, tzinfo=UTC), 1)):
        assert Cursor.parse(str(cursor)) == cursor
    for bad in ("", "1.", ".1", "x.1", "1.2.3", "9" * 30 + ".1"):
        with pytest.raises(ValueError):
            Cursor.parse(bad)
    with pytest.raises(OverflowError):
        Cursor.parse("-99999999999999999.1")
    assert SORTS["-created"].descending


def test_it_reports_only_rows_whose_version_differs(account, user):
    same, changed = make_task(account, status=TaskStatus.RUNNING), make_task(account, status=TaskStatus.RUNNING)
    versions = {same.pk: selectors.row_version(same), changed.pk: selectors.row_version(changed)}
    changed.status = TaskStatus.SUCCEEDED
    changed.save()
    access = selectors.access_for(user)
    assert [task.pk for task in selectors.rows_changed(access=access, versions=versions)] == [changed.pk]
    nobody = selectors.access_for(AnonymousUser())
    assert selectors.rows_changed(access=nobody, versions=versions) == []


def test_it_computes_copy_progress_only_when_every_size_is_known(account):
    task = make_task(account, status=TaskStatus.SUCCEEDED, archive_state=ArchiveState.COPYING)
    Artifact.objects.create(task=task, output=ArtifactOutput.VIDEO, state=ArtifactState.COPYING, size=100,
                            bytes_copied=40)
    selectors.attach_archive_progress([task])
    assert task.archive_percent == 40
    Artifact.objects.create(task=task, output=ArtifactOutput.LAST_FRAME, state=ArtifactState.PENDING)
    selectors.attach_archive_progress([task])
    assert task.archive_percent is None


def test_it_lists_known_models_for_suggestions(account, user):
    make_task(account, model="b-model")
    make_task(account, model="a-model")
    make_task(account, model="a-model")
    assert selectors.known_models(access=selectors.access_for(user)) == ["a-model", "b-model"]


def test_it_summarises_sync_health_across_accounts(account, user):
    assert selectors.sync_health(user=user).state == "never"
    now = timezone.now()
    account.last_sync_ok_at = now - timedelta(seconds=5)
    account.save()
    other = Account(name="other", base_url="http://arksim.test/api/v3", last_sync_ok_at=now - timedelta(seconds=50))
    other.set_api_key("k")
    other.save()
    member_of(user, other, MembershipRole.VIEWER)
    health = selectors.sync_health(user=user)
    assert (health.state, health.synced_at) == ("ok", other.last_sync_ok_at)  # the oldest sync, not the best
    other.failing_since = now - timedelta(minutes=2)
    other.last_sync_error = "Ark HTTP 401 AuthenticationError"
    other.save()
    health = selectors.sync_health(user=user)
    assert (health.state, health.failing_accounts, health.failing_since) == ("failing", ("other",), other.failing_since)
    assert selectors.sync_health(user=AnonymousUser()).state == "none"


def test_it_builds_the_timeline_with_unseen_steps_empty(account):
    task = make_task(account, status=TaskStatus.QUEUED)
    assert [when for _, when in selectors.task_timeline(task=task)][1:] == [None, None, None]
    done = make_task(account, status=TaskStatus.FAILED)
    steps = dict(selectors.task_timeline(task=done))
    assert steps["finished"] == done.ark_updated_at and steps["archived"] is None


def test_it_counts_each_status_up_to_the_cap_and_no_further(account, monkeypatch, django_assert_num_queries):
    monkeypatch.setattr(selectors, "COUNT_CAP", 2)
    for _ in range(4):
        make_task(account, status=TaskStatus.FAILED)
    make_task(account, status=TaskStatus.QUEUED)
    with django_assert_num_queries(len(TaskStatus.values)):  # fresh every time: nothing is cached
        counts = selectors.status_counts(queryset=Task.objects.all())
    assert (counts["failed"], counts["queued"], counts["running"]) == (3, 1, 0)  # 3 = "more than 2"


def test_it_finds_the_tasks_created_after_the_newest_the_page_knows(account):
    older = make_task(account, created=timezone.now() - timedelta(hours=2))
    known = selectors.newest_cursor(queryset=Task.objects.all())
    assert known == Cursor.of(older, SORTS["-created"])
    newer = [make_task(account, created=timezone.now() - timedelta(minutes=n)) for n in (5, 1)]
    found = selectors.tasks_newer_than(queryset=Task.objects.all(), cursor=known, limit=10)
    assert found == sorted(newer, key=lambda t: t.ark_created_at, reverse=True)
    assert selectors.tasks_newer_than(queryset=Task.objects.all(), cursor=known, limit=1) == found[:1]


def test_access_and_health_in_one_query_agree_with_the_two_selectors(
    account, user, django_user_model, django_assert_num_queries
):
    now = timezone.now()
    failing = Account(name="failing", base_url="http://arksim.test/api/v3", last_sync_ok_at=now,
                      failing_since=now - timedelta(minutes=1), last_sync_error="HTTP 401")  # fmt: skip
    failing.set_api_key("k")
    failing.save()
    Account.objects.filter(pk=account.pk).update(last_sync_ok_at=now - timedelta(seconds=9))
    member_of(user, failing, MembershipRole.OPERATOR)
    outsider = django_user_model.objects.create_user("out", password="pw")
    root = django_user_model.objects.create_superuser("root", password="pw")
    for person in (user, outsider, root, AnonymousUser()):
        access = selectors.access_for(person)
        assert selectors.access_and_health(person) == (access, selectors.sync_health(user=person, access=access))
    with django_assert_num_queries(1):
        access, health = selectors.access_and_health(user)
    assert access.visible_account_ids == {account.pk, failing.pk} and access.operable_account_ids == {failing.pk}
    assert health.state == "failing" and health.failing_accounts == ("failing",)


# --- the archive's lag and health ---------------------------------------------------------


def test_it_measures_the_lag_from_the_oldest_unarchived_success(sim, mirror, local_archive):
    now = timezone.now()
    old_task, old = succeeded_video(sim, mirror)
    new_task, new = succeeded_video(sim, mirror)
    type(old_task).objects.filter(pk=old_task.pk).update(ark_updated_at=now - timedelta(seconds=500))
    type(new_task).objects.filter(pk=new_task.pk).update(ark_updated_at=now - timedelta(seconds=100))
    type(old).objects.filter(pk__in=[old.pk, new.pk]).update(created=now - timedelta(seconds=600))

    assert selectors.archive_lag_seconds(now=now) == pytest.approx(500, abs=1)

    artifact_archive(artifact_id=old.pk)
    assert selectors.archive_lag_seconds(now=now) == pytest.approx(100, abs=1)

    artifact_archive(artifact_id=new.pk)
    assert selectors.archive_lag_seconds(now=now) == 0.0


def test_it_summarises_the_archive_health(sim, mirror, local_archive):
    _, first = succeeded_video(sim, mirror)
    _, second = succeeded_video(sim, mirror)
    artifact_archive(artifact_id=first.pk)

    health = selectors.archive_health()

    assert health.counts[ArtifactState.ARCHIVED] == 1
    assert health.counts[ArtifactState.PENDING] == 1
    assert health.next_deadline == Artifact.objects.get(pk=second.pk).deadline
    assert health.lag_seconds > 0


def test_it_counts_the_lag_from_when_arkdash_learnt_of_the_success(sim, mirror, local_archive):
    # A success from 20 h ago found by the first sync just now: the archive is not 20 h late.
    now = timezone.now()
    task, artifact = succeeded_video(sim, mirror)
    type(task).objects.filter(pk=task.pk).update(ark_updated_at=now - timedelta(hours=20))
    type(artifact).objects.filter(pk=artifact.pk).update(created=now - timedelta(seconds=30))

    assert selectors.archive_lag_seconds(now=now) == pytest.approx(30, abs=1)


def test_it_leaves_outputs_whose_url_already_died_out_of_the_lag(sim, mirror, local_archive):
    now = timezone.now()
    task, artifact = succeeded_video(sim, mirror)
    type(task).objects.filter(pk=task.pk).update(ark_updated_at=now - timedelta(hours=154))
    type(artifact).objects.filter(pk=artifact.pk).update(
        created=now - timedelta(hours=1), deadline=now - timedelta(hours=130)
    )

    assert selectors.archive_lag_seconds(now=now) == 0.0
