"""The insights rollup: per account and UTC hour, the figures the insights page reads.

An (account, hour) is always recomputed whole from the raw rows, never incremented: its
rollup rows are deleted and written again from a GROUP BY over the tasks created (and the
outputs archived) in that hour. The hours to recompute are
- the creation hours of the tasks changed since the last refresh (Task.changed_at, read back
  SCAN_OVERLAP before the saved position: a change commits a little after changed_at is set);
- InsightsDirtyHour marks, for what changed_at cannot show: a task row removed, an output
  archived (its archive hour).
A refresh runs in one transaction holding a row lock on its ScanMark, so two refreshes run
one after the other and the second recomputes from what the first committed: nothing is
counted twice. The first refresh (no ScanMark yet) rebuilds everything, as does
`manage.py insights_rollup --rebuild`. docs/insights.md says why.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import reduce
from operator import or_

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import Trunc
from django.utils import timezone

from tasks_app.models import (
    Artifact,
    ArtifactState,
    InsightsDirtyHour,
    InsightsHourArchived,
    InsightsHourCount,
    InsightsHourTime,
    InsightsPhase,
    ScanMark,
    Task,
)

HOUR = timedelta(hours=1)
MARK = "insights_rollup"
SCAN_OVERLAP = timedelta(minutes=10)
# Time bins: each doubling of a duration is cut in this many bins of equal ratio 2^(1/8).
BINS_PER_DOUBLING = 8
# A bin's middle is within this ratio of every time in it: 2^(1/16) - 1, about 4.4 %.
RELATIVE_ERROR = 2 ** (1 / (2 * BINS_PER_DOUBLING)) - 1
# Times below this (a millisecond), and negative ones from clocks apart, count as zero.
SMALLEST_SECONDS = 2.0**-10
ZERO_BIN = -(2**20)
WRITE_BATCH = 5000
# Contiguous hour runs recomputed per query: bounds the size of the OR in the WHERE clause.
RUNS_PER_QUERY = 100


@dataclass(frozen=True)
class RefreshReport:
    hours: int  # (account, hour) pairs recomputed; 0 on a rebuild
    rebuilt: bool


# --- time bins ------------------------------------------------------------------------


def time_bin(seconds: float) -> int:
    """The log-scaled bin of a duration: bin b holds [2^(b/8), 2^((b+1)/8)) seconds."""
    if seconds < SMALLEST_SECONDS:
        return ZERO_BIN
    return math.floor(BINS_PER_DOUBLING * math.log2(seconds))


def bin_seconds(time_bin_: int) -> float:
    """The geometric middle of a bin: within RELATIVE_ERROR of every duration in it."""
    if time_bin_ == ZERO_BIN:
        return 0.0
    return 2.0 ** ((time_bin_ + 0.5) / BINS_PER_DOUBLING)


def percentile(bins: dict[int, int], fraction: float) -> float | None:
    """PostgreSQL's percentile_cont interpolation over the bins' middles.

    Each of the two ranked durations it interpolates between is replaced by its bin's middle,
    so the result is within RELATIVE_ERROR of the exact percentile_cont (and below
    SMALLEST_SECONDS for durations that small). None without any duration.
    """
    total = sum(bins.values())
    if not total:
        return None
    position = fraction * (total - 1)
    below = int(position)
    above = min(below + 1, total - 1)
    ordered = sorted(bins.items())

    def ranked(rank: int) -> float:
        seen = 0
        for time_bin_, n in ordered:
            seen += n
            if rank < seen:
                return bin_seconds(time_bin_)
        return bin_seconds(ordered[-1][0])

    low, high = ranked(below), ranked(above)
    return low + (high - low) * (position - below)


# --- the GROUP BYs over raw rows (the refresh writes them; the page reads them for partial hours)


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def count_rows(tasks: QuerySet[Task], *, kind: str = "hour", zone=UTC) -> QuerySet:
    """Tasks and tokens per account, creation bucket (`kind` in `zone`), model, status and error code."""
    return (
        tasks.annotate(bucket=Trunc("ark_created_at", kind, tzinfo=zone))
        .values("account_id", "bucket", "model", "status", "error_code")
        .annotate(n=Count("id"), tokens=Sum("total_tokens"))
        .order_by()
    )


def time_bins(tasks: QuerySet[Task]) -> Counter:
    """Tasks per (account, creation hour, model, phase, time bin): time queued is created →
    first seen running, time running is first seen running → finished."""
    bins: Counter = Counter()
    rows = tasks.filter(started_at__isnull=False).values_list(
        "account_id", "ark_created_at", "model", "started_at", "finished_at"
    )
    for account_id, created, model, started, finished in rows.order_by().iterator(chunk_size=WRITE_BATCH):
        where = (account_id, hour_of(created), model)
        bins[(*where, InsightsPhase.QUEUED, time_bin((started - created).total_seconds()))] += 1
        if finished is not None:
            bins[(*where, InsightsPhase.RUNNING, time_bin((finished - started).total_seconds()))] += 1
    return bins


def archived_rows(artifacts: QuerySet[Artifact], *, kind: str = "hour", zone=UTC) -> QuerySet:
    """Bytes of archived outputs per account and archive bucket (`kind` in `zone`)."""
    return (
        artifacts.filter(state=ArtifactState.ARCHIVED, archived_at__isnull=False)
        .annotate(bucket=Trunc("archived_at", kind, tzinfo=zone), owner=F("task__account_id"))
        .values("owner", "bucket")
        .annotate(size=Sum("size"))
        .order_by()
    )


# --- marks from the paths changed_at does not show -----------------------------------------


def hours_mark(moments: Iterable[tuple[int, datetime | None]]) -> None:
    """Mark the hour of each (account id, moment) for the next refresh (None moments skipped)."""
    marks = {(account_id, hour_of(moment)) for account_id, moment in moments if moment is not None}
    InsightsDirtyHour.objects.bulk_create([InsightsDirtyHour(account_id=a, hour=h) for a, h in sorted(marks)])


def task_removal_mark(task: Task) -> None:
    """Before a task row is removed: its creation hour and its archived outputs' hours."""
    archived = task.artifacts.filter(state=ArtifactState.ARCHIVED).values_list("archived_at", flat=True)
    hours_mark([(task.account_id, task.ark_created_at), *((task.account_id, moment) for moment in archived)])


# --- refresh and rebuild --------------------------------------------------------------------


def rollup_refresh(*, now: datetime | None = None) -> RefreshReport:
    """Recompute every (account, hour) changed since the last refresh; the first one rebuilds."""
    now = now or timezone.now()
    with transaction.atomic():
        mark, first = _lock_mark(now)
        if first:
            _rebuild()
            return RefreshReport(hours=0, rebuilt=True)
        marks = list(InsightsDirtyHour.objects.values_list("pk", "account_id", "hour"))
        changed = (
            Task.objects.filter(changed_at__gte=mark.until - SCAN_OVERLAP)
            .annotate(hour=Trunc("ark_created_at", "hour", tzinfo=UTC))
            .values_list("account_id", "hour")
            .order_by()
            .distinct()
        )
        dirty: dict[int, set[datetime]] = defaultdict(set)
        for account_id, hour in [*changed, *((a, h) for _pk, a, h in marks)]:
            dirty[account_id].add(hour_of(hour))
        for account_id, hours in dirty.items():
            _recompute(account_id, sorted(hours))
        _drop_marks([pk for pk, _a, _h in marks])
        ScanMark.objects.filter(pk=mark.pk).update(until=now)
    return RefreshReport(hours=sum(len(hours) for hours in dirty.values()), rebuilt=False)


def rollup_rebuild(*, now: datetime | None = None) -> None:
    """Rewrite the whole rollup from the raw rows (manage.py insights_rollup --rebuild)."""
    now = now or timezone.now()
    with transaction.atomic():
        mark, _first = _lock_mark(now)
        ScanMark.objects.filter(pk=mark.pk).update(until=now)
        _rebuild()


def _lock_mark(now: datetime) -> tuple[ScanMark, bool]:
    """The refresh's ScanMark, locked until the transaction ends; True when just made."""
    mark = ScanMark.objects.select_for_update().filter(name=MARK).first()
    if mark is not None:
        return mark, False
    try:
        with transaction.atomic():
            return ScanMark.objects.create(name=MARK, until=now), True
    except IntegrityError:  # another refresh made it: this one waits for it, then goes on
        return ScanMark.objects.select_for_update().get(name=MARK), False


def _rebuild() -> None:
    marks = list(InsightsDirtyHour.objects.values_list("pk", flat=True))
    for model in (InsightsHourCount, InsightsHourTime, InsightsHourArchived):
        model.objects.all().delete()
    _write(Task.objects.all(), Artifact.objects.all())
    _drop_marks(marks)


def _recompute(account_id: int, hours: list[datetime]) -> None:
    for runs in _chunks(merged_spans((hour, hour + HOUR) for hour in hours), RUNS_PER_QUERY):
        run_hours = [start + n * HOUR for start, end in runs for n in range((end - start) // HOUR)]
        for model in (InsightsHourCount, InsightsHourTime, InsightsHourArchived):
            model.objects.filter(account_id=account_id, hour__in=run_hours).delete()
        _write(Task.objects.filter(spans_filter("ark_created_at", runs), account_id=account_id),
               Artifact.objects.filter(spans_filter("archived_at", runs), task__account_id=account_id))  # fmt: skip


def _write(tasks: QuerySet[Task], artifacts: QuerySet[Artifact]) -> None:
    InsightsHourCount.objects.bulk_create(
        (InsightsHourCount(account_id=row["account_id"], hour=row["bucket"], model=row["model"], status=row["status"],
                           error_code=row["error_code"], tasks=row["n"], tokens=row["tokens"] or 0)
         for row in count_rows(tasks).iterator(chunk_size=WRITE_BATCH)),
        batch_size=WRITE_BATCH,
    )  # fmt: skip
    InsightsHourTime.objects.bulk_create(
        (InsightsHourTime(account_id=account_id, hour=hour, model=model, phase=phase, bin=time_bin_, tasks=n)
         for (account_id, hour, model, phase, time_bin_), n in time_bins(tasks).items()),
        batch_size=WRITE_BATCH,
    )  # fmt: skip
    InsightsHourArchived.objects.bulk_create(
        (InsightsHourArchived(account_id=row["owner"], hour=row["bucket"], bytes=row["size"] or 0)
         for row in archived_rows(artifacts)),
        batch_size=WRITE_BATCH,
    )  # fmt: skip


def _drop_marks(pks: list[int]) -> None:
    for chunk in _chunks(pks, WRITE_BATCH):
        InsightsDirtyHour.objects.filter(pk__in=chunk).delete()


def merged_spans(spans: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """[start, end) spans with those that touch or overlap joined, in order."""
    runs: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        if runs and runs[-1][1] >= start:
            runs[-1] = (runs[-1][0], max(runs[-1][1], end))
        else:
            runs.append((start, end))
    return runs


def spans_filter(field: str, spans: list[tuple[datetime, datetime]]) -> Q | None:
    """`field` inside any of the [start, end) spans; None for no span."""
    if not spans:
        return None
    return reduce(or_, (Q(**{f"{field}__gte": start, f"{field}__lt": end}) for start, end in spans))


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
