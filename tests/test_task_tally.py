"""The task tally matches the task table after every kind of write, and the status counts
summed from it match a count of the tasks for every filter the list offers
(tasks_app/task_tally.py)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks_app import selectors, task_tally
from tasks_app.models import Account, ArchiveState, Task, TaskKind, TaskStatus, TaskTally
from tasks_app.task_tally import TallyFilter
from tasks_app.tasks import compact_task_tally

from .dashboard_helpers import make_task, uncommitted_write

MODELS = ("seedance-pro", "seedance-lite", "seed3d")
START = datetime(2026, 11, 10, tzinfo=UTC)


def tally_by_key() -> Counter:
    totals = Counter()
    for row in TaskTally.objects.all():
        totals[(row.account_id, row.status, row.kind, row.archive_state, row.model, row.day)] += row.n
    return +totals  # drops the zeros a task moving away leaves behind


def tasks_by_key() -> Counter:
    return Counter(
        (t.account_id, t.status, t.kind, t.archive_state, t.model, t.ark_created_at.astimezone(UTC).date())
        for t in Task.objects.all()
    )


def second_account() -> Account:
    other = Account(name="other", base_url="http://arksim.test/api/v3")
    other.set_api_key("other-key")
    other.save()
    return other


def test_it_follows_every_kind_of_task_write(account):
    other = second_account()
    task = make_task(account, status=TaskStatus.QUEUED, created=START + timedelta(hours=23, minutes=59))
    done = make_task(account, status=TaskStatus.SUCCEEDED, created=START)
    assert tally_by_key() == tasks_by_key()

    task.status = TaskStatus.RUNNING
    task.save()
    Task.objects.filter(pk=task.pk).update(status=TaskStatus.SUCCEEDED, archive_state=ArchiveState.PENDING)
    Task.objects.bulk_create(
        [Task(account=other, ark_id=f"cgt-bulk-{i}", kind=TaskKind.MODEL_3D, model="seed3d", status="queued",
              ark_created_at=START + timedelta(days=i)) for i in range(3)]
    )  # fmt: skip
    assert tally_by_key() == tasks_by_key()

    done.archive_state = ArchiveState.ARCHIVED
    Task.objects.bulk_update([done], ["archive_state"])
    Task.objects.filter(pk=done.pk).update(model="renamed")
    Task.objects.filter(pk=task.pk).update(ark_created_at=START + timedelta(days=1, minutes=1))  # another day
    Task.objects.filter(ark_id="cgt-bulk-1").update(account=account)
    Task.objects.filter(ark_id="cgt-bulk-0").update(kind=TaskKind.VIDEO)
    Task.objects.filter(ark_id="cgt-bulk-2").update(last_synced_at=START)  # nothing tallied changes
    assert tally_by_key() == tasks_by_key()

    Task.objects.filter(ark_id__startswith="cgt-bulk").delete()
    done.delete()
    assert tally_by_key() == tasks_by_key()
    task.delete()
    assert tally_by_key() == Counter()


def test_it_follows_a_write_that_skips_the_orm(account):
    task = make_task(account, status=TaskStatus.QUEUED)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE tasks_app_task SET status = %s WHERE id = %s", [TaskStatus.CANCELLED, task.pk])
    assert tally_by_key() == tasks_by_key()
    assert tally_by_key()[(account.pk, "cancelled", task.kind, task.archive_state, task.model,
                           task.ark_created_at.astimezone(UTC).date())] == 1  # fmt: skip


def test_a_rolled_back_write_leaves_no_trace(account):
    task = make_task(account, status=TaskStatus.QUEUED)
    with pytest.raises(RuntimeError), transaction.atomic():
        Task.objects.filter(pk=task.pk).update(status=TaskStatus.FAILED)
        make_task(account)
        raise RuntimeError("the sync failed half way")
    assert tally_by_key() == tasks_by_key()


def test_compacting_folds_the_rows_and_keeps_every_sum(account):
    tasks = [make_task(account, status=TaskStatus.QUEUED, created=START + timedelta(hours=i)) for i in range(6)]
    for task in tasks:
        Task.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
        Task.objects.filter(pk=task.pk).update(status=TaskStatus.SUCCEEDED)
    before = tally_by_key()
    assert TaskTally.objects.count() > 6

    left = compact_task_tally()  # what beat runs

    assert tally_by_key() == before == tasks_by_key()
    # One row per key that still holds tasks: the queued and running keys folded to nothing.
    assert left == TaskTally.objects.count() == len(before)
    assert task_tally.compact() == left  # folding again changes nothing


def test_installing_counts_the_tasks_already_there(account):
    """The migration's path: tasks written before the triggers existed are counted once."""

    class Executor:  # what install() needs of a schema editor, without DDL rules of its own
        def __init__(self) -> None:
            self.connection = connection

        def execute(self, sql: str) -> None:
            with connection.cursor() as cursor:
                cursor.execute(sql)

    task_tally.uninstall(Executor())
    make_task(account, status=TaskStatus.QUEUED)
    make_task(account, status=TaskStatus.FAILED, created=START)
    TaskTally.objects.all().delete()
    assert tally_by_key() == Counter()

    task_tally.install(Executor())
    assert tally_by_key() == tasks_by_key()
    make_task(account, status=TaskStatus.RUNNING)  # and the triggers are back
    assert tally_by_key() == tasks_by_key()


# --- counts summed from the tally against a count of the tasks ---------------------------


@pytest.fixture
def five_days_of_tasks(account):
    """Tasks at awkward times over five days (midnights, a second before them), two accounts."""
    other = second_account()
    moments = []
    for day in range(5):
        midnight = START + timedelta(days=day)
        moments += [midnight, midnight + timedelta(seconds=1), midnight - timedelta(seconds=1),
                    midnight + timedelta(hours=7, minutes=30), midnight + timedelta(hours=16, minutes=5)]  # fmt: skip
    statuses, archives = list(TaskStatus.values), [ArchiveState.NONE, ArchiveState.ARCHIVED, ArchiveState.LOST]
    for index, moment in enumerate(moments):
        kind = TaskKind.MODEL_3D if index % 4 == 0 else TaskKind.VIDEO
        make_task(
            account if index % 5 else other, status=statuses[index % len(statuses)], kind=kind, created=moment,
            model=MODELS[index % 3], archive_state=archives[index % len(archives)],
        )  # fmt: skip
    task_tally.compact()
    # Some rows folded, some not: both must count.
    Task.objects.filter(ark_created_at__gte=START + timedelta(days=2)).filter(status="queued").update(status="running")
    return {"accounts": [account.pk, other.pk]}


_minutes = st.integers(min_value=-2 * 24 * 60, max_value=8 * 24 * 60)
_zones = st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    after=st.none() | st.tuples(_minutes, _zones),
    before=st.none() | st.tuples(_minutes, _zones),
    kind=st.sampled_from(["", *TaskKind.values]),
    model=st.sampled_from(["", *MODELS, "no-such-model"]),
    archive=st.sampled_from(["", ArchiveState.NONE, ArchiveState.LOST]),
    accounts=st.sampled_from(["all", "first", "second"]),
)
def test_counts_from_the_tally_equal_a_count_of_the_tasks(five_days_of_tasks, after, before, kind, model, archive,
                                                          accounts):  # fmt: skip
    def moment(value):
        if value is None:
            return None
        minutes, zone = value
        return (START + timedelta(minutes=minutes)).astimezone(zone)

    created_after, created_before = moment(after), moment(before)
    account_ids = {"all": None, "first": {five_days_of_tasks["accounts"][0]},
                   "second": {five_days_of_tasks["accounts"][1]}}[accounts]  # fmt: skip
    tasks = Task.objects.all()
    if account_ids is not None:
        tasks = tasks.filter(account_id__in=account_ids)
    for field, value in (("kind", kind), ("model", model), ("archive_state", archive)):
        if value:
            tasks = tasks.filter(**{field: value})
    if created_after:
        tasks = tasks.filter(ark_created_at__gte=created_after)
    if created_before:
        tasks = tasks.filter(ark_created_at__lt=created_before)
    expected = {status: 0 for status in TaskStatus.values}
    expected.update(Counter(tasks.values_list("status", flat=True)))

    where = TallyFilter(
        account_ids=frozenset(account_ids) if account_ids is not None else None, kind=kind, model=model,
        archive_state=archive, created_after=created_after, created_before=created_before,
    )  # fmt: skip
    assert task_tally.status_counts(where, tasks=tasks, statuses=TaskStatus.values) == expected
    assert selectors.status_counts(queryset=tasks, tally=where) == expected


def test_the_list_counts_whole_days_from_the_tally_and_edges_from_the_tasks(five_days_of_tasks,
                                                                            django_assert_max_num_queries):
    """A range of several days reads the tally once and the task table once per part day."""
    where = TallyFilter(account_ids=None, created_after=START + timedelta(hours=7),
                        created_before=START + timedelta(days=3, hours=2))  # fmt: skip
    tasks = Task.objects.filter(ark_created_at__gte=where.created_after, ark_created_at__lt=where.created_before)
    executed = []

    def record(execute, sql, params, many, context):
        executed.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        counts = task_tally.status_counts(where, tasks=tasks, statuses=TaskStatus.values)
    assert sum(counts.values()) == tasks.count()
    assert len(executed) == 3
    assert sum("tasks_app_tasktally" in sql for sql in executed) == 1


# --- PostgreSQL: writers never wait on each other for the tally ---------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_writers_and_the_folding_do_not_wait_for_an_open_writer(account):
    first = make_task(account, status=TaskStatus.QUEUED, created=START)
    second = make_task(account, status=TaskStatus.QUEUED, created=START)  # the same tally key

    with uncommitted_write(lambda: Task.objects.filter(pk=first.pk).update(status=TaskStatus.CANCELLED)):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '2s'")  # a wait would raise here
            Task.objects.filter(pk=second.pk).update(status=TaskStatus.CANCELLED)
            task_tally.compact()
        # The open writer's rows are not there yet, and the count says so.
        assert tally_by_key()[(account.pk, "queued", first.kind, first.archive_state, first.model,
                               START.date())] == 1  # fmt: skip
    task_tally.compact()
    assert tally_by_key() == tasks_by_key()
    assert TaskTally.objects.count() == 1
