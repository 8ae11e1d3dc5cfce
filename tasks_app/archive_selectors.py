"""Reads for the archive page and the archive actions. The mirror only, never Ark."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Count, F, Q, QuerySet, Sum
from django.http import Http404
from django.utils import timezone

from .archive_models import ArchiveUsageSnapshot, WorkerHeartbeat
from .models import (
    FINISHED_STATUSES,
    Account,
    ArchiveState,
    Artifact,
    ArtifactOutput,
    ArtifactState,
    Task,
    TaskStatus,
)
from .selectors import Access, User, access_for

# The archive page lists at most this many waiting outputs (soonest deadline first).
QUEUE_SHOWN = 200
WORKER_RECENT = timedelta(minutes=5)
TREND_DAYS = 30
THROUGHPUT_WINDOW = timedelta(hours=1)


def artifact_for_user(*, user: User, pk: int, access: Access | None = None) -> Artifact:
    """An output of a task the user may see, or Http404 (the task rule is the only rule)."""
    tasks = (access or access_for(user)).tasks()
    try:
        return Artifact.objects.select_related("task__account").get(pk=pk, task__in=tasks)
    except Artifact.DoesNotExist:
        raise Http404("No such output") from None


# --- the queue ----------------------------------------------------------------------------


@dataclass(frozen=True)
class QueuedOutput:
    artifact: Artifact
    time_left: timedelta | None  # until its URL dies; None when unknown; negative once past
    percent: int | None  # copy progress, where the size is known


def archive_queue(*, access: Access, now: datetime | None = None, limit: int = QUEUE_SHOWN) -> list[QueuedOutput]:
    """Outputs pending, copying or failed, soonest deadline first (no deadline last)."""
    now = now or timezone.now()
    rows = (
        Artifact.objects.filter(
            task__in=access.tasks(),
            state__in=[ArtifactState.PENDING, ArtifactState.COPYING, ArtifactState.FAILED],
        )
        .select_related("task__account")
        .order_by(F("deadline").asc(nulls_last=True), "pk")[:limit]
    )
    return [
        QueuedOutput(
            artifact=artifact,
            time_left=artifact.deadline - now if artifact.deadline else None,
            percent=_percent(artifact),
        )
        for artifact in rows
    ]


def _percent(artifact: Artifact) -> int | None:
    if artifact.state != ArtifactState.COPYING or not artifact.size:
        return None
    return min(100, int(100 * artifact.bytes_copied / artifact.size))


def archive_queue_counts(*, access: Access) -> dict[str, int]:
    """How many outputs wait in each state (the list above stops at QUEUE_SHOWN)."""
    counts = {state: 0 for state in (ArtifactState.PENDING, ArtifactState.COPYING, ArtifactState.FAILED)}
    rows = (
        Artifact.objects.filter(task__in=access.tasks(), state__in=list(counts))
        .order_by()
        .values("state")
        .annotate(n=Count("id"))
    )
    for row in rows:
        counts[row["state"]] = row["n"]
    return counts


# --- throughput and workers ------------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    outputs: int
    bytes: int


def archive_throughput(*, access: Access, now: datetime | None = None) -> Throughput:
    """Outputs archived (and their bytes) over the last hour."""
    now = now or timezone.now()
    totals = Artifact.objects.filter(
        task__in=access.tasks(), state=ArtifactState.ARCHIVED, archived_at__gte=now - THROUGHPUT_WINDOW
    ).aggregate(n=Count("id"), total=Sum("size"))
    return Throughput(outputs=totals["n"] or 0, bytes=totals["total"] or 0)


def workers_recent(*, now: datetime | None = None) -> list[WorkerHeartbeat]:
    """Workers that reported in over the last few minutes, most recent first."""
    now = now or timezone.now()
    return list(WorkerHeartbeat.objects.filter(last_seen_at__gte=now - WORKER_RECENT).order_by("-last_seen_at"))


# --- storage per account ----------------------------------------------------------------------


@dataclass
class AccountStorage:
    account: Account
    bytes_stored: int
    outputs_stored: int
    can_operate: bool
    # (day, bytes) oldest first, from the daily snapshots, for the trend.
    trend: list[tuple[date, int]]

    @property
    def trend_max(self) -> int:
        return max([size for _day, size in self.trend] + [1])


def archive_storage_by_account(*, access: Access, now: datetime | None = None) -> list[AccountStorage]:
    """Archive storage used now per visible account, with the daily snapshots of the last month."""
    now = now or timezone.now()
    accounts = list(access.accounts().order_by("name"))
    ids = [account.pk for account in accounts]
    stored = {
        row["task__account_id"]: row
        for row in Artifact.objects.filter(
            task__account_id__in=ids, state=ArtifactState.ARCHIVED, removed_at__isnull=True
        )
        .order_by()
        .values("task__account_id")
        .annotate(total=Sum("size"), n=Count("id"))
    }
    since = timezone.localdate(now) - timedelta(days=TREND_DAYS - 1)
    trends: dict[int, list[tuple[date, int]]] = {pk: [] for pk in ids}
    for account_id, day, size in (
        ArchiveUsageSnapshot.objects.filter(account_id__in=ids, day__gte=since)
        .order_by("day")
        .values_list("account_id", "day", "bytes_stored")
    ):
        trends[account_id].append((day, size))
    return [
        AccountStorage(
            account=account,
            bytes_stored=stored.get(account.pk, {}).get("total") or 0,
            outputs_stored=stored.get(account.pk, {}).get("n") or 0,
            can_operate=access.can_operate(account.pk),
            trend=trends[account.pk],
        )
        for account in accounts
    ]


# --- bulk actions on the list's filter ----------------------------------------------------------


def unarchived_outputs_q(*, now: datetime | None = None) -> Q:
    """Tasks whose Ark record may be the only way to their outputs (actions.outputs_unarchived as a query)."""
    now = now or timezone.now()
    return (
        Q(status=TaskStatus.SUCCEEDED)
        & ~Q(archive_state__in=[ArchiveState.ARCHIVED, ArchiveState.LOST])
        & (Q(outputs_expire_at__isnull=True) | Q(outputs_expire_at__gt=now))
    )


def tasks_deletable(*, tasks: QuerySet[Task]) -> QuerySet[Task]:
    """Of `tasks`, those Ark's state table lets us delete: finished and still on Ark."""
    return tasks.filter(status__in=FINISHED_STATUSES, gone_upstream_at__isnull=True)


def tasks_gone(*, tasks: QuerySet[Task]) -> QuerySet[Task]:
    """Of `tasks`, those Ark no longer has (only ArkDash's copy remains)."""
    return tasks.filter(gone_upstream_at__isnull=False)


def failed_outputs(*, tasks: QuerySet[Task]) -> QuerySet[Artifact]:
    return Artifact.objects.filter(task__in=tasks.order_by().values("pk"), state=ArtifactState.FAILED)


def archived_files_of(*, tasks: QuerySet[Task]) -> tuple[int, int]:
    """(outputs, bytes) still stored for `tasks`: what removing them from ArkDash deletes."""
    totals = Artifact.objects.filter(
        task__in=tasks.order_by().values("pk"), state=ArtifactState.ARCHIVED, removed_at__isnull=True
    ).exclude(output=ArtifactOutput.MODEL_FILE).aggregate(n=Count("id"), total=Sum("size"))
    return totals["n"] or 0, totals["total"] or 0
