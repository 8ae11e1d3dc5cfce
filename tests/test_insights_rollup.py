"""The insights rollup: the figures read from it equal the raw rows' after any change, its
refresh is idempotent, and two refreshes at once count nothing twice."""

from __future__ import annotations

import random
import threading
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from tasks_app import selectors
from tasks_app.insights import FINISHED, TOP_FAILURE_CODES, InsightsRange, insights_for
from tasks_app.models import (
    Artifact,
    ArtifactOutput,
    ArtifactState,
    InsightsHourArchived,
    InsightsHourCount,
    InsightsHourTime,
    ScanMark,
    Task,
    TaskStatus,
)
from tasks_app.services import archive
from tasks_app.services.actions import tasks_remove_bulk
from tasks_app.services.insights_rollup import (
    MARK,
    RELATIVE_ERROR,
    SMALLEST_SECONDS,
    percentile,
    rollup_rebuild,
    rollup_refresh,
    time_bin,
)

from .dashboard_helpers import make_task, member_of

SHANGHAI, KOLKATA = ZoneInfo("Asia/Shanghai"), ZoneInfo("Asia/Kolkata")
MODELS = ("seedance-pro", "seedance-lite", "seed3d")
CODES = ("", "InternalServiceError", "OutputVideoSensitiveContentDetected", "QuotaExceeded")
START = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 3


def exact_percentile(values: list[float], fraction: float) -> float | None:
    """PostgreSQL's percentile_cont over exact values (the reference the bins are held to)."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def close(estimate: float | None, exact: float | None) -> bool:
    if exact is None:
        return estimate is None
    return estimate is not None and abs(estimate - exact) <= RELATIVE_ERROR * abs(exact) + SMALLEST_SECONDS


# --- the time bins ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_a_percentile_from_the_bins_is_within_the_stated_error_of_the_exact_one(seed):
    rng = random.Random(seed)
    values = [rng.choice([0.0, rng.uniform(0, 1), rng.lognormvariate(4, 2), float(rng.randint(1, 3600))])
              for _ in range(rng.randint(1, 400))]  # fmt: skip
    bins = Counter(time_bin(value) for value in values)
    for fraction in (0.0, 0.5, 0.95, 1.0):
        assert close(percentile(bins, fraction), exact_percentile(values, fraction)), (fraction, values)


def test_the_bins_have_the_stated_width():
    assert RELATIVE_ERROR < 0.045
    assert time_bin(1.0) == 0 and time_bin(2.0) == 8 and time_bin(2**-20) == time_bin(0) == time_bin(-5)
    assert percentile({}, 0.5) is None


# --- figures from the rollup equal the raw figures ------------------------------------------


def edge_moment(rng: random.Random) -> datetime:
    """A creation time in the three days, often right on an hour's edge."""
    hour = START + timedelta(hours=rng.randrange(DAYS * 24))
    return hour + rng.choice([timedelta(0), timedelta(microseconds=-1), timedelta(microseconds=1),
                              timedelta(seconds=rng.randrange(3600))])  # fmt: skip


def seed_world(rng: random.Random, accounts: list, count: int, *, archived: bool = True) -> list[Task]:
    """Random tasks; with `archived`, some outputs already archived (as before a rebuild)."""
    tasks = []
    for _ in range(count):
        created = edge_moment(rng)
        status = rng.choice(TaskStatus.values)
        started = (
            created + timedelta(seconds=rng.choice([0, 1, rng.randint(2, 900)]))
            if rng.random() < 0.8
            else None
        )
        finished = (
            started + timedelta(seconds=rng.randint(0, 600)) if started and status in FINISHED else None
        )
        tasks.append(make_task(
            rng.choice(accounts), status=status, model=rng.choice(MODELS), created=created, started_at=started,
            finished_at=finished, total_tokens=rng.choice([None, rng.randint(1, 200_000)]),
            error_code=rng.choice(CODES) if status == TaskStatus.FAILED else "",
        ))  # fmt: skip
    for task in tasks:
        if task.status == TaskStatus.SUCCEEDED:
            for output in rng.sample([ArtifactOutput.VIDEO, ArtifactOutput.LAST_FRAME], rng.randint(0, 2)):
                is_archived = archived and rng.random() < 0.7
                Artifact.objects.create(task=task, output=output, size=rng.randint(1, 10**9),
                                        state=ArtifactState.ARCHIVED if is_archived else ArtifactState.PENDING,
                                        archived_at=edge_moment(rng) if is_archived else None)  # fmt: skip
    return tasks


def raw_figures(account_ids: set[int], period: InsightsRange) -> dict:
    """The page's figures computed here, in Python, from every raw row."""
    index = {period.bucket_key(bucket): n for n, bucket in enumerate(period.buckets())}
    by_status = [Counter() for _ in index]
    by_model = [Counter() for _ in index]
    tokens = [Counter() for _ in index]
    failures: Counter = Counter()
    waits, runs = defaultdict(list), defaultdict(list)
    for task in Task.objects.filter(account_id__in=account_ids, ark_created_at__gte=period.start,
                                    ark_created_at__lt=period.end):  # fmt: skip
        n = index[period.key(task.ark_created_at)]
        by_status[n][task.status] += 1
        by_model[n][task.model] += 1
        tokens[n][task.model] += task.total_tokens or 0
        if task.status == TaskStatus.FAILED:
            failures[task.error_code] += 1
        if task.started_at:
            waits[task.model].append((task.started_at - task.ark_created_at).total_seconds())
            if task.finished_at:
                runs[task.model].append((task.finished_at - task.started_at).total_seconds())
    archived = [0] * len(index)
    for artifact in Artifact.objects.filter(task__account_id__in=account_ids, state=ArtifactState.ARCHIVED,
                                            archived_at__gte=period.start, archived_at__lt=period.end):  # fmt: skip
        archived[index[period.key(artifact.archived_at)]] += artifact.size
    return {
        "by_status": [dict(c) for c in by_status],
        "by_model": [dict(c) for c in by_model],
        "tokens": [dict(c) for c in tokens],
        "failures": sorted(failures.items(), key=lambda item: (-item[1], item[0]))[:TOP_FAILURE_CODES],
        "archived": archived,
        "waits": dict(waits),
        "runs": dict(runs),
    }


def assert_rollup_matches_raw(user, account_ids: set[int], period: InsightsRange) -> None:
    data = insights_for(access=selectors.access_for(user), period=period)
    expected = raw_figures(account_ids, period)
    assert data.created_by_status == expected["by_status"]
    # Fewer than MAX_MODELS models: every model is shown by name.
    assert data.created_by_model == expected["by_model"]
    assert data.tokens_by_model == expected["tokens"]
    assert data.failure_codes == expected["failures"]
    assert data.archived_bytes == expected["archived"]
    times = {t.model: t for t in data.times}
    assert set(times) == set(expected["waits"])
    for model, waits in expected["waits"].items():
        runs = expected["runs"].get(model, [])
        assert close(times[model].queued_p50, exact_percentile(waits, 0.5))
        assert close(times[model].queued_p95, exact_percentile(waits, 0.95))
        assert close(times[model].running_p50, exact_percentile(runs, 0.5))
        assert close(times[model].running_p95, exact_percentile(runs, 0.95))


def periods() -> list[InsightsRange]:
    now = timezone.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    return [
        # The last 24 hours, as the page asks: outputs archived by the test land in it.
        InsightsRange(start=now - timedelta(hours=24), end=now, hourly=True, zone=SHANGHAI),
        # Local days in a whole-hour zone (all from the rollup), and in a half-hour one (raw rows).
        InsightsRange(start=datetime(2026, 11, 1, tzinfo=SHANGHAI), end=datetime(2026, 11, 5, tzinfo=SHANGHAI),
                      hourly=False, zone=SHANGHAI),
        InsightsRange(start=datetime(2026, 11, 1, tzinfo=KOLKATA), end=datetime(2026, 11, 4, tzinfo=KOLKATA),
                      hourly=False, zone=KOLKATA),
        # 24 hours ending mid-hour: partial hours at both ends come from the raw rows.
        InsightsRange(start=START + timedelta(hours=30, minutes=17), end=START + timedelta(hours=54, minutes=17),
                      hourly=True, zone=SHANGHAI),
        InsightsRange(start=START + timedelta(hours=30, minutes=17), end=START + timedelta(hours=54, minutes=17),
                      hourly=True, zone=KOLKATA),
        # A range ending now-ish, as the 7/30-day ranges do.
        InsightsRange(start=datetime(2026, 11, 2, tzinfo=UTC), end=START + timedelta(days=DAYS, minutes=-3),
                      hourly=False, zone=UTC),
    ]  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize("seed", range(3))
def test_the_figures_from_the_rollup_equal_the_raw_figures_through_every_change(
    seed, account, rival, django_user_model
):
    rng = random.Random(seed)
    tasks = seed_world(rng, [account, rival], 160)
    staff = django_user_model.objects.create_superuser("boss", password="pw")
    ana = django_user_model.objects.create_user("ana", password="pw")
    member_of(ana, account)
    nobody = django_user_model.objects.create_user("nobody", password="pw")
    rollup_refresh()

    def check() -> None:
        for period in periods():
            assert_rollup_matches_raw(ana, {account.pk}, period)
            assert_rollup_matches_raw(staff, {account.pk, rival.pk}, period)
            empty = insights_for(access=selectors.access_for(nobody), period=period)
            assert empty.total_created == 0 and not any(empty.archived_bytes) and empty.times == []

    check()
    # Status changes (changed_at moves), new tasks, removals and outputs archived (explicit marks).
    for task in rng.sample(tasks, 30):
        task.status = rng.choice(TaskStatus.values)
        task.error_code = rng.choice(CODES) if task.status == TaskStatus.FAILED else ""
        task.save()
    tasks += seed_world(rng, [account, rival], 20, archived=False)
    gone = rng.sample(tasks, 15)
    Task.objects.filter(pk__in=[task.pk for task in gone]).update(gone_upstream_at=START)
    report = tasks_remove_bulk(tasks=Task.objects.filter(pk__in=[task.pk for task in gone]), user=staff)
    assert report.done == 15
    for artifact in Artifact.objects.filter(state=ArtifactState.PENDING)[:10]:
        Artifact.objects.filter(pk=artifact.pk).update(claim_token="tok")
        archive._record_outcome(
            artifact, "tok", copied=archive._Copied(size=rng.randint(1, 10**6), sha256="0" * 64)
        )
    rollup_refresh()
    check()


def rollup_rows() -> tuple[Counter, Counter, Counter]:
    return (
        Counter(InsightsHourCount.objects.values_list("account_id", "hour", "model", "status", "error_code", "tasks",
                                                      "tokens")),
        Counter(InsightsHourTime.objects.values_list("account_id", "hour", "model", "phase", "bin", "tasks")),
        Counter(InsightsHourArchived.objects.values_list("account_id", "hour", "bytes")),
    )  # fmt: skip


@pytest.mark.django_db
def test_a_refresh_is_idempotent_and_equals_a_rebuild(account, rival):
    rng = random.Random(7)
    tasks = seed_world(rng, [account, rival], 120)
    first = rollup_refresh()
    assert first.rebuilt  # no mark yet: the first refresh builds everything
    built = rollup_rows()
    assert sum(row[5] for row in built[0].elements()) == len(tasks)
    again = rollup_refresh()
    assert not again.rebuilt and again.hours > 0  # the tasks just written are read back (overlap)
    assert rollup_rows() == built
    for task in rng.sample(tasks, 20):
        task.status = TaskStatus.CANCELLED
        task.save()
    rollup_refresh()
    rollup_refresh()
    refreshed = rollup_rows()
    assert refreshed != built
    rollup_rebuild()
    assert rollup_rows() == refreshed


@pytest.mark.django_db
def test_the_command_rebuilds_the_rollup(account):
    make_task(account, status=TaskStatus.SUCCEEDED, created=START)
    call_command("insights_rollup", "--rebuild")
    assert ScanMark.objects.filter(name=MARK).exists()
    assert InsightsHourCount.objects.get().tasks == 1
    InsightsHourCount.objects.all().delete()
    call_command("insights_rollup", "--rebuild")
    assert InsightsHourCount.objects.get().tasks == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_refreshes_at_once_count_nothing_twice(account):
    for n in range(40):
        make_task(account, status=TaskStatus.SUCCEEDED, created=START + timedelta(minutes=n))
    rollup_refresh()
    Task.objects.update(status=TaskStatus.FAILED)  # bumps no changed_at: marked explicitly below
    from tasks_app.services.insights_rollup import hours_mark

    hours_mark([(account.pk, START)])
    holding, release, errors = threading.Event(), threading.Event(), []

    def first() -> None:
        try:
            with transaction.atomic():
                # The refresh's own lock, held while the second refresh starts.
                ScanMark.objects.select_for_update().get(name=MARK)
                holding.set()
                assert release.wait(60)
                rollup_refresh()
        except Exception as error:  # noqa: BLE001 - reported by the test
            errors.append(error)
        finally:
            connection.close()

    def second() -> None:
        try:
            rollup_refresh()
        except Exception as error:  # noqa: BLE001 - reported by the test
            errors.append(error)
        finally:
            connection.close()

    one = threading.Thread(target=first)
    one.start()
    assert holding.wait(60)
    two = threading.Thread(target=second)
    two.start()
    two.join(timeout=1)
    blocked = two.is_alive()  # waits for the first refresh's lock
    release.set()
    one.join(timeout=120)
    two.join(timeout=120)
    assert errors == []
    assert blocked
    assert list(InsightsHourCount.objects.values_list("status", "tasks")) == [(TaskStatus.FAILED, 40)]


def test_the_rollup_serves_every_hour_whole_in_one_bucket():
    from tasks_app.insights import _Plan

    def plan(period: InsightsRange) -> _Plan:
        return _Plan.of(period, period.buckets())

    shanghai = plan(
        InsightsRange(
            start=datetime(2026, 11, 1, tzinfo=SHANGHAI),
            end=datetime(2026, 11, 30, 21, 7, tzinfo=SHANGHAI),
            hourly=False,
            zone=SHANGHAI,
        )
    )
    assert shanghai.rollup == [
        (datetime(2026, 10, 31, 16, tzinfo=UTC), datetime(2026, 11, 30, 13, tzinfo=UTC))
    ]
    assert shanghai.raw == [
        (datetime(2026, 11, 30, 13, tzinfo=UTC), datetime(2026, 11, 30, 13, 7, tzinfo=UTC))
    ]
    # Kolkata's days start at 18:30 UTC: that hour of each day is read raw, the other 23 from the rollup.
    kolkata = plan(
        InsightsRange(
            start=datetime(2026, 11, 1, tzinfo=KOLKATA),
            end=datetime(2026, 11, 4, tzinfo=KOLKATA),
            hourly=False,
            zone=KOLKATA,
        )
    )
    assert kolkata.raw == [
        (datetime(2026, 10, 31, 18, 30, tzinfo=UTC), datetime(2026, 10, 31, 19, tzinfo=UTC)),
        (datetime(2026, 11, 1, 18, tzinfo=UTC), datetime(2026, 11, 1, 19, tzinfo=UTC)),
        (datetime(2026, 11, 2, 18, tzinfo=UTC), datetime(2026, 11, 2, 19, tzinfo=UTC)),
        (datetime(2026, 11, 3, 18, tzinfo=UTC), datetime(2026, 11, 3, 18, 30, tzinfo=UTC)),
    ]
    assert sum((end - start) // timedelta(hours=1) for start, end in kolkata.rollup) == 3 * 23
    # Its hours start at :30 too: the 24-hour range is all raw there.
    day = plan(
        InsightsRange(
            start=START + timedelta(minutes=17),
            end=START + timedelta(hours=24, minutes=17),
            hourly=True,
            zone=KOLKATA,
        )
    )
    assert day.rollup == [] and day.raw == [
        (START + timedelta(minutes=17), START + timedelta(hours=24, minutes=17))
    ]
