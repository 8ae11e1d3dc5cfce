"""The mirror's version moves after every write to the task table, and never stands still
across a commit a reader could see (tasks_app/mirror_version.py)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from tasks_app import mirror_version, selectors
from tasks_app.models import Task, TaskStatus

from .dashboard_helpers import make_task, uncommitted_write


def _moves(write) -> bool:
    before = mirror_version.current()
    write()
    return mirror_version.current() > before


def test_every_kind_of_task_write_moves_it(account):
    task = make_task(account, status=TaskStatus.QUEUED)
    other = make_task(account, status=TaskStatus.SUCCEEDED)

    def save():
        task.status = TaskStatus.RUNNING
        task.save()

    def bulk_update():
        other.error_code = "x"
        Task.objects.bulk_update([other], ["error_code"])

    assert _moves(lambda: make_task(account))  # create (save)
    assert _moves(save)
    assert _moves(lambda: Task.objects.filter(pk=task.pk).update(status=TaskStatus.SUCCEEDED))
    assert _moves(lambda: Task.objects.bulk_create([Task(account=account, ark_id="cgt-bulk", kind="video",
                                                         status="queued", ark_created_at=task.ark_created_at)]))
    assert _moves(bulk_update)
    assert _moves(lambda: Task.objects.filter(ark_id="cgt-bulk").delete())
    assert _moves(other.delete)


def test_a_write_that_matches_nothing_leaves_it(account):
    make_task(account)
    assert not _moves(lambda: Task.objects.filter(ark_id="no-such-task").update(status=TaskStatus.FAILED))
    assert not _moves(lambda: Task.objects.filter(ark_id="no-such-task").delete())


def test_a_batch_of_writes_moves_it_once_at_its_end(account):
    tasks = [make_task(account) for _ in range(3)]
    before = mirror_version.current()
    with transaction.atomic(), mirror_version.batched():
        for task in tasks:
            Task.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
        assert mirror_version.current() == before  # nothing may be read and kept in here
    assert mirror_version.current() == before + 1
    with mirror_version.batched():  # no write, no bump
        pass
    assert mirror_version.current() == before + 1


def test_reads_inside_the_writers_transaction_see_it_move(account):
    # The list is rendered in the same transaction in tests: the in-transaction bump covers it.
    task = make_task(account)
    with transaction.atomic():
        assert _moves(lambda: Task.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_one_more_bump_follows_each_commit(account):
    task = make_task(account)
    with transaction.atomic():
        Task.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
        Task.objects.filter(pk=task.pk).update(status=TaskStatus.SUCCEEDED)
        inside = mirror_version.current()
        registered = [func for _sids, func, _robust in connection.run_on_commit]
        assert len(registered) == 1  # one after-commit bump per transaction, not one per write
    assert mirror_version.current() == inside + 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_count_read_while_a_write_is_uncommitted_is_not_served_after_the_commit(account):
    """The race that MAX(changed_at) lost: a reader counts between the writer's bump and its
    commit, and stores the old counts; after the commit nobody may be served them."""
    task = make_task(account, status=TaskStatus.QUEUED)
    with uncommitted_write(lambda: Task.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)):
        before_commit = selectors.status_counts(queryset=Task.objects.all())
        assert (before_commit["queued"], before_commit["running"]) == (1, 0)  # not committed yet
    after_commit = selectors.status_counts(queryset=Task.objects.all())
    assert (after_commit["queued"], after_commit["running"]) == (0, 1)
