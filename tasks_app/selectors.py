"""Reads: for the views, the archive's health and /metrics. They read the local mirror only:
never call Ark from here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, Greatest
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from .filters import SORTS, Cursor, Paging, Sort, TaskFilter, in_statuses, ordering
from .models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    Account,
    ArchiveState,
    ArchiveUsageSnapshot,
    Artifact,
    ArtifactOutput,
    ArtifactState,
    Membership,
    MembershipRole,
    Picture,
    Task,
    TaskStatus,
    WorkerHeartbeat,
)

User = AbstractBaseUser | AnonymousUser

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Chips count up to this many tasks per status and then say "10,000+": counting every
# matching row of a million-task mirror costs more than the number is worth.
COUNT_CAP = 10_000
KNOWN_MODELS_CACHE_SECONDS = 300
# The columns a list row shows; the raw JSON and output URLs stay in the database.
ROW_FIELDS = (
    "id", "account_id", "ark_id", "kind", "model", "status", "error_code", "ark_created_at",
    "ark_updated_at", "started_at", "finished_at", "gone_upstream_at", "changed_at", "archive_state",
    "archive_handoff_pending",
)


# --- who may see and do what ------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """What one person may see and do: THE rule, read once per request (access_for)."""

    everything: bool  # a superuser: every account, every action
    visible_account_ids: frozenset[int] = frozenset()
    operable_account_ids: frozenset[int] = frozenset()

    def can_see(self, account_id: int) -> bool:
        return self.everything or account_id in self.visible_account_ids

    def can_operate(self, account_id: int) -> bool:
        return self.everything or account_id in self.operable_account_ids

    @property
    def operates_all_it_sees(self) -> bool:
        return self.everything or self.visible_account_ids <= self.operable_account_ids

    def tasks(self) -> QuerySet[Task]:
        if self.everything:
            return Task.objects.all()
        # A list of ids, not a subquery: `account_id IN (1, 2)` lets PostgreSQL use the
        # per-account indexes.
        return Task.objects.filter(account_id__in=sorted(self.visible_account_ids))

    def operable_tasks(self) -> QuerySet[Task]:
        if self.everything:
            return Task.objects.all()
        return Task.objects.filter(account_id__in=sorted(self.operable_account_ids))

    def accounts(self) -> QuerySet[Account]:
        if self.everything:
            return Account.objects.all()
        return Account.objects.filter(pk__in=sorted(self.visible_account_ids))


def access_for(user: User) -> Access:
    """A person sees the tasks of the accounts they are a member of (any role) and acts on
    those where they are an operator; a superuser sees and acts on all (Django's
    convention); anyone else, inactive or anonymous, nothing."""
    if not user.is_authenticated or not user.is_active:
        return Access(everything=False)
    if user.is_superuser:
        return Access(everything=True)
    roles = list(Membership.objects.filter(user_id=user.pk).values_list("account_id", "role"))
    return Access(
        everything=False,
        visible_account_ids=frozenset(account_id for account_id, _role in roles),
        operable_account_ids=frozenset(account_id for account_id, role in roles if role == MembershipRole.OPERATOR),
    )


def tasks_visible_to(user: User, *, access: Access | None = None) -> QuerySet[Task]:
    """The tasks `user` may see. Anything else is invisible, so views answer 404, never
    403: ids leak nothing. `access` (read already in this request) saves a query."""
    return (access or access_for(user)).tasks()


def tasks_operable_by(user: User, *, access: Access | None = None) -> QuerySet[Task]:
    """The tasks the user may also cancel and delete."""
    return (access or access_for(user)).operable_tasks()


def accounts_visible_to(user: User, *, access: Access | None = None) -> QuerySet[Account]:
    return (access or access_for(user)).accounts()


def can_operate(*, user: User, account_id: int) -> bool:
    """May the user cancel and delete tasks of this account? (Services ask this before acting.)"""
    return access_for(user).can_operate(account_id)


def task_for_user(*, user: User, pk: int, access: Access | None = None) -> Task:
    """One task the user may see, or Http404 (also for tasks of other accounts)."""
    try:
        return (access or access_for(user)).tasks().select_related("account").get(pk=pk)
    except Task.DoesNotExist:
        raise Http404("No such task") from None


def task_for_operator(*, user: User, pk: int) -> Task:
    """One task the user may cancel or delete: Http404 if they can't see it,
    PermissionDenied (with a message for the person) if they may only look."""
    access = access_for(user)
    task = task_for_user(user=user, pk=pk, access=access)
    if not access.can_operate(task.account_id):
        raise PermissionDenied(
            _("You can see this account's tasks but not cancel or delete them: ask an admin for the operator role.")
        )
    return task


# --- the list ---------------------------------------------------------------------------


@dataclass
class TaskListPage:
    tasks: list[Task]
    sort: Sort
    # Cursors for the pager: None where there is nothing further that way.
    newer: Cursor | None
    older: Cursor | None
    is_first: bool


def task_list(*, filterset: TaskFilter, paging: Paging) -> TaskListPage:
    """One page of the filtered tasks, by cursor: a deep page costs what the first does.

    `paging.after` gives the page after that row, `paging.before` the page before it;
    neither, the first page. A page before which fewer rows remain than fit is the first.
    """
    sort = filterset.chosen_sort
    rows = filterset.qs.only(*ROW_FIELDS)
    size = paging.page_size
    if paging.before is not None:
        newer_first = list(rows.filter(paging.before.before(sort)).order_by(*ordering(sort, reverse=True))[: size + 1])
        if len(newer_first) > size:
            tasks = newer_first[:size][::-1]
            return TaskListPage(
                tasks, sort, newer=Cursor.of(tasks[0], sort), older=Cursor.of(tasks[-1], sort), is_first=False
            )
        paging = Paging(page_size=size, after=None, before=None, errors=())  # back at the start
    if paging.after is not None:
        rows = rows.filter(paging.after.after(sort))
    tasks = list(rows.order_by(*ordering(sort))[: size + 1])
    has_older = len(tasks) > size
    tasks = tasks[:size]
    if paging.after is None:
        newer = None
    else:  # past the end, the page before the cursor
        newer = Cursor.of(tasks[0], sort) if tasks else paging.after
    return TaskListPage(
        tasks, sort, newer=newer, older=Cursor.of(tasks[-1], sort) if has_older else None,
        is_first=paging.after is None,
    )


def status_counts(*, queryset: QuerySet[Task]) -> dict[str, int]:
    """Tasks per status in `queryset`, each counted up to COUNT_CAP + 1."""
    # One small query per status, each stopping at the cap: counting under a LIMIT reads
    # at most that many index entries, where a GROUP BY would read every matching row.
    plain = queryset.order_by()
    return {status: plain.filter(in_statuses([status]))[: COUNT_CAP + 1].count() for status in TaskStatus.values}


def newest_cursor(*, queryset: QuerySet[Task]) -> Cursor | None:
    """Where the newest task of `queryset` stands in the default sort (for the poll)."""
    sort = SORTS["-created"]
    newest = queryset.order_by(*ordering(sort)).only("id", "ark_created_at").first()
    return Cursor.of(newest, sort) if newest else None


def tasks_newer_than(*, queryset: QuerySet[Task], cursor: Cursor | None, limit: int) -> list[Task]:
    """Up to `limit` tasks of `queryset` created after `cursor`, newest first."""
    sort = SORTS["-created"]
    if cursor is not None:
        queryset = queryset.filter(cursor.before(sort))
    return list(queryset.only(*ROW_FIELDS).order_by(*ordering(sort))[:limit])


def last_change(*, access: Access) -> datetime | None:
    """When the newest write to the visible tasks happened (Task.changed_at)."""
    return access.tasks().aggregate(latest=Max("changed_at"))["latest"]


def row_version(task: Task) -> int:
    return task.version


def rows_changed(*, access: Access, versions: Mapping[int, int]) -> list[Task]:
    """The visible tasks among `versions` (pk -> row_version the page shows) that differ now.

    Rows being copied are always returned: their progress lives on the artifacts.
    The idle case costs one narrow primary-key query.
    """
    if not versions:
        return []
    visible = access.tasks()
    current = visible.filter(pk__in=list(versions)).values_list("pk", "changed_at", "archive_state")
    changed = [
        pk
        for pk, changed_at, archive_state in current
        if (changed_at - _EPOCH) // timedelta(microseconds=1) != versions[pk] or archive_state == ArchiveState.COPYING
    ]
    if not changed:
        return []
    return list(visible.filter(pk__in=changed).only(*ROW_FIELDS).order_by("pk"))


def attach_archive_progress(tasks: Iterable[Task]) -> None:
    """Set `archive_percent` (0–100 or None) on tasks whose outputs are being copied."""
    tasks = list(tasks)
    percents = archive_percents([task.pk for task in tasks if task.archive_state == ArchiveState.COPYING])
    for task in tasks:
        task.archive_percent = percents.get(task.pk)


def archive_percents(pks: list[int]) -> dict[int, int]:
    """How far the copy of each task's outputs has got, where all their sizes are known."""
    if not pks:
        return {}
    sums = (
        Artifact.objects.filter(task_id__in=pks)
        .values("task_id")
        .annotate(done=Sum("bytes_copied"), total=Sum("size"), unknown=Count("id", filter=Q(size__isnull=True)))
    )
    return {
        row["task_id"]: min(100, int(100 * (row["done"] or 0) / row["total"]))
        for row in sums
        if row["total"] and not row["unknown"]
    }


def known_models(*, access: Access) -> list[str]:
    """Model names for the filter's suggestions.

    Cached for a few minutes (Django's cache): DISTINCT reads every row, and a model
    missing from the suggestions for a while still filters when typed.
    """
    visible = "all" if access.everything else ",".join(map(str, sorted(access.visible_account_ids)))

    def distinct_models() -> list[str]:
        tasks = access.tasks()
        return [name for name in tasks.order_by("model").values_list("model", flat=True).distinct()[:200] if name]

    return cache.get_or_set(f"arkdash:known-models:{visible}", distinct_models, KNOWN_MODELS_CACHE_SECONDS)


# --- sync health ------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncHealth:
    """What the banner says about the accounts the user sees."""

    # "ok" | "failing" | "never" | "none" (no account at all) | "no_access" (none of them is yours)
    state: str
    synced_at: datetime | None
    failing_since: datetime | None
    failing_accounts: tuple[str, ...]
    last_error: str

    @property
    def synced_epoch(self) -> int | None:
        return int(self.synced_at.timestamp()) if self.synced_at else None


_HEALTH_FIELDS = ("name", "last_sync_ok_at", "failing_since", "last_sync_error")


def sync_health(*, user: User, access: Access | None = None) -> SyncHealth:
    """One small query: there are a handful of accounts, not thousands."""
    access = access or access_for(user)
    return _health_of(list(access.accounts().order_by().values_list(*_HEALTH_FIELDS)), user=user)


def access_and_health(user: User) -> tuple[Access, SyncHealth]:
    """access_for() and sync_health() in one query (the memberships with their accounts),
    for the live poll, which reads both every few seconds."""
    if not user.is_authenticated or not user.is_active or user.is_superuser:
        access = access_for(user)
        return access, sync_health(user=user, access=access)
    fields = ("account_id", "role", *(f"account__{name}" for name in _HEALTH_FIELDS))
    rows = list(Membership.objects.filter(user_id=user.pk).values_list(*fields))
    access = Access(
        everything=False,
        visible_account_ids=frozenset(row[0] for row in rows),
        operable_account_ids=frozenset(row[0] for row in rows if row[1] == MembershipRole.OPERATOR),
    )
    return access, _health_of([row[2:] for row in rows], user=user)


def _health_of(accounts: list[tuple], *, user: User) -> SyncHealth:
    failing = sorted((since, name, error) for name, _, since, error in accounts if since is not None)
    synced = [synced_at for _, synced_at, _, _ in accounts if synced_at is not None]
    if not accounts:
        state = "no_access" if user.is_authenticated and Account.objects.exists() else "none"
    elif failing:
        state = "failing"
    elif not synced:
        state = "never"
    else:
        state = "ok"
    return SyncHealth(
        state=state,
        # The oldest successful sync among accounts: "synced N s ago" must not flatter.
        synced_at=min(synced) if synced else None,
        failing_since=failing[0][0] if failing else None,
        failing_accounts=tuple(name for _, name, _ in failing),
        last_error=(failing[0][2] or "")[:300] if failing else "",
    )


# --- one task ---------------------------------------------------------------------------


def task_timeline(*, task: Task) -> list[tuple[str, datetime | None]]:
    """(step, when) for created → running → finished → archived; None = not (yet) seen."""
    archived_at = None
    artifacts = list(task.artifacts.all())
    if artifacts and all(artifact.state == ArtifactState.ARCHIVED for artifact in artifacts):
        archived_at = max(artifact.archived_at or task.changed_at for artifact in artifacts)
    finished_at = task.finished_at
    if finished_at is None and task.status not in ACTIVE_STATUSES:
        finished_at = task.ark_updated_at
    return [
        ("created", task.ark_created_at),
        ("running", task.started_at),
        ("finished", finished_at),
        ("archived", archived_at),
    ]


# --- the gallery ------------------------------------------------------------------------


@dataclass(frozen=True)
class GalleryMedia:
    """What a gallery card shows of a task's outputs (the task itself comes from task_list)."""

    picture_state: str | None  # a PictureState, or None while no picture exists
    picture_version: str  # changes when the picture is replaced, for the image URL
    video_artifact_id: int | None  # the archived video played on hover


def gallery_media(*, task_ids: list[int]) -> dict[int, GalleryMedia]:
    """The pictures and archived videos of one page of tasks: two indexed queries."""
    pictures = {
        task_id: (state, sha256[:12])
        for task_id, state, sha256 in Picture.objects.filter(task_id__in=task_ids).values_list(
            "task_id", "state", "sha256"
        )
    }
    videos = dict(
        Artifact.objects.filter(
            task_id__in=task_ids, output=ArtifactOutput.VIDEO, state=ArtifactState.ARCHIVED
        ).values_list("task_id", "pk")
    )
    return {
        task_id: GalleryMedia(
            picture_state=pictures.get(task_id, (None, ""))[0],
            picture_version=pictures.get(task_id, (None, ""))[1],
            video_artifact_id=videos.get(task_id),
        )
        for task_id in task_ids
    }


def picture_for_user(*, user: User, task_pk: int) -> Picture:
    """The picture of a task the user may see, or Http404 (the task rule is the only rule)."""
    task = task_for_user(user=user, pk=task_pk)
    picture = Picture.objects.filter(task=task).first()
    if picture is None:
        raise Http404("This task has no picture yet")
    return picture


def artifacts_without_picture() -> QuerySet[Artifact]:
    """Archived outputs a picture is made from, of tasks that have none yet (a backfill)."""
    return (
        Artifact.objects.filter(
            state=ArtifactState.ARCHIVED,
            output__in=[ArtifactOutput.LAST_FRAME, ArtifactOutput.VIDEO, ArtifactOutput.MODEL_ZIP],
            task__picture__isnull=True,
        )
        # A task's last frame before its video ("last_frame" < "video"): the better picture first.
        .order_by("task_id", "output")
    )

# --- the archive ------------------------------------------------------------------------

# The artifact states that still wait for a copy.
UNFINISHED_ARTIFACT_STATES = (ArtifactState.PENDING, ArtifactState.COPYING, ArtifactState.FAILED)


def archive_lag_seconds(*, now: datetime | None = None, account_ids: Iterable[int] | None = None) -> float:
    """Seconds since the oldest success whose outputs are not archived yet (0 when none).

    `account_ids` limits it to those accounts (the dashboard shows people their own lag).
    """
    now = now or timezone.now()
    # An output whose URL already died can no longer be saved: it waits to be marked lost
    # and is not lag. And the clock starts when ArkDash learnt of the success, not before:
    # history found on a first sync (or the demo's back-dated week) is not the archive's delay.
    unfinished = Artifact.objects.filter(state__in=UNFINISHED_ARTIFACT_STATES).exclude(deadline__lte=now)
    if account_ids is not None:
        unfinished = unfinished.filter(task__account_id__in=list(account_ids))
    oldest = unfinished.exclude(output=ArtifactOutput.MODEL_FILE).aggregate(
        oldest=Min(Greatest(Coalesce("task__ark_updated_at", "task__finished_at", "created"), "created"))
    )["oldest"]
    return max(0.0, (now - oldest).total_seconds()) if oldest else 0.0


@dataclass(frozen=True)
class ArchiveHealth:
    lag_seconds: float
    counts: dict[str, int]
    next_deadline: datetime | None


def archive_health() -> ArchiveHealth:
    """Counts per state, the lag and the nearest deadline: for the page, metrics, the CLI."""
    counts = {state: 0 for state in ArtifactState.values}
    sources = Artifact.objects.exclude(output=ArtifactOutput.MODEL_FILE)
    for row in sources.order_by().values("state").annotate(n=Count("id")):
        counts[row["state"]] = row["n"]
    next_deadline = sources.filter(state__in=UNFINISHED_ARTIFACT_STATES).aggregate(d=Min("deadline"))["d"]
    return ArchiveHealth(lag_seconds=archive_lag_seconds(), counts=counts, next_deadline=next_deadline)


def outputs_unarchived(task: Task) -> bool:
    """True when deleting Ark's record would lose outputs ArkDash has not copied.

    Outputs already lost (their URLs died first) cannot be lost again: no warning then.
    """
    if task.status != TaskStatus.SUCCEEDED or task.archive_state in (ArchiveState.ARCHIVED, ArchiveState.LOST):
        return False
    return task.outputs_expire_at is None or task.outputs_expire_at > timezone.now()


def artifact_for_user(*, user: User, pk: int, access: Access | None = None) -> Artifact:
    """An artifact of a task the user may see, or Http404 (the task rule is the only rule)."""
    tasks = (access or access_for(user)).tasks()
    try:
        return Artifact.objects.select_related("task__account").get(pk=pk, task__in=tasks)
    except Artifact.DoesNotExist:
        raise Http404("No such output") from None


# --- the archive page and archive actions --------------------------------------------

# The archive page lists at most this many waiting outputs (soonest deadline first).
QUEUE_SHOWN = 200
WORKER_RECENT = timedelta(minutes=5)
TREND_DAYS = 30
THROUGHPUT_WINDOW = timedelta(hours=1)


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
    """Tasks whose Ark record may be the only way to their outputs (selectors.outputs_unarchived as a query)."""
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
