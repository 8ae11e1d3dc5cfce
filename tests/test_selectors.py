from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import Http404
from django.utils import timezone

from tasks_app import mirror_version, selectors
from tasks_app.compiled_query import CompiledQuery
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

from .dashboard_helpers import make_task, member_of


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


def test_it_clamps_a_page_past_the_end_to_the_last_page(account):
    tasks = [make_task(account) for _ in range(7)]
    newest_first = Task.objects.order_by("-ark_created_at", "-id")
    row_keys = CompiledQuery.of(selectors.row_keys_query(newest_first))
    page = selectors.task_list_page(row_keys=row_keys, total=7, page=99, page_size=5)
    assert (page.page, page.num_pages, len(page.rows), page.first_index, page.last_index) == (2, 2, 2, 6, 7)
    assert [row.pk for row in page.rows] == list(newest_first.values_list("pk", flat=True))[5:]
    assert {row.pk for row in page.rows} < {task.pk for task in tasks}
    empty = selectors.task_list_page(row_keys=CompiledQuery.of(Task.objects.none()), total=0, page=3, page_size=5)
    assert (empty.page, empty.num_pages, empty.rows, empty.first_index) == (1, 1, [], 0)


def test_a_row_key_carries_what_its_row_shows(account):
    queued = make_task(account, status=TaskStatus.QUEUED)
    copying = make_task(account, status=TaskStatus.SUCCEEDED, archive_state=ArchiveState.COPYING)
    Artifact.objects.create(task=copying, output=ArtifactOutput.VIDEO, state=ArtifactState.COPYING, size=200,
                            bytes_copied=50)
    row_keys = CompiledQuery.of(selectors.row_keys_query(Task.objects.order_by("pk")))
    rows = selectors.task_list_page(row_keys=row_keys, total=2, page=1, page_size=50).rows
    assert [(row.pk, row.status, row.can_cancel, row.archive_percent) for row in rows] == [
        (queued.pk, "queued", True, None), (copying.pk, "succeeded", False, 25)
    ]
    queued.refresh_from_db()
    assert (rows[0].changed_at, selectors.row_version(rows[0])) == (queued.changed_at, selectors.row_version(queued))


def test_it_reports_only_rows_whose_version_differs(account, user):
    same, changed = make_task(account, status=TaskStatus.RUNNING), make_task(account, status=TaskStatus.RUNNING)
    versions = {same.pk: selectors.row_version(same), changed.pk: selectors.row_version(changed)}
    changed.status = TaskStatus.SUCCEEDED
    changed.save()
    assert [task.pk for task in selectors.rows_changed(user=user, versions=versions)] == [changed.pk]
    assert selectors.rows_changed(user=AnonymousUser(), versions=versions) == []


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
    assert selectors.known_models(user=user) == ["a-model", "b-model"]


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
        expected = (selectors.access_for(person), selectors.sync_health(user=person))
        assert selectors.access_and_health(person) == expected
    with django_assert_num_queries(1):
        access, health = selectors.access_and_health(user)
    assert access.visible_account_ids == {account.pk, failing.pk} and access.operable_account_ids == {failing.pk}
    assert health.state == "failing" and health.failing_accounts == ("failing",)


def test_it_builds_the_timeline_with_unseen_steps_empty(account):
    task = make_task(account, status=TaskStatus.QUEUED)
    assert [when for _, when in selectors.task_timeline(task=task)][1:] == [None, None, None]
    done = make_task(account, status=TaskStatus.FAILED)
    steps = dict(selectors.task_timeline(task=done))
    assert steps["finished"] == done.ark_updated_at and steps["archived"] is None


def test_it_recounts_statuses_only_when_the_mirror_changed(account, django_assert_num_queries):
    task = make_task(account, status=TaskStatus.QUEUED)
    assert selectors.status_counts(queryset=Task.objects.all())["queued"] == 1
    with django_assert_num_queries(1):  # only the version probe: the counts come from the cache
        assert selectors.status_counts(queryset=Task.objects.all())["queued"] == 1
    task.status = TaskStatus.RUNNING
    task.save()
    counts = selectors.status_counts(queryset=Task.objects.all())
    assert (counts["queued"], counts["running"]) == (0, 1)
    make_task(account, status=TaskStatus.FAILED)
    assert selectors.status_counts(queryset=Task.objects.all())["failed"] == 1
    Task.objects.filter(pk=task.pk).delete()  # not the newest row: its changed_at would not tell
    assert selectors.status_counts(queryset=Task.objects.all())["running"] == 0


def test_the_list_reads_access_health_and_the_mirror_version_together(account, user, django_user_model,
                                                                        django_assert_num_queries):
    make_task(account)
    with django_assert_num_queries(1):
        access, health, version = selectors.access_health_and_version(user)
    assert access.visible_account_ids == {account.pk} and health.state == "never"
    assert version == mirror_version.current()
    make_task(account)
    assert selectors.access_health_and_version(user)[2] > version
    # People without a membership query (superusers) or with none get it read on its own.
    boss = django_user_model.objects.create_superuser("boss", password="pw")
    loner = django_user_model.objects.create_user("loner", password="pw")
    assert selectors.access_health_and_version(boss)[2] == mirror_version.current()
    assert selectors.access_health_and_version(loner)[2] == mirror_version.current()
