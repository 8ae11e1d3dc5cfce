"""Reads for the dashboard. They read the local mirror only: never call Ark from here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.expressions import RawSQL
from django.http import Http404

from . import compiled_query, mirror_version, task_tally
from .compiled_query import CompiledQuery
from .kept import kept
from .models import (
    ACTIVE_STATUSES,
    Account,
    ArchiveState,
    Artifact,
    ArtifactState,
    Membership,
    MembershipRole,
    Task,
    TaskStatus,
)
from .task_tally import TallyFilter

User = AbstractBaseUser | AnonymousUser

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STATUS_COUNTS_CACHE_SECONDS = 60
# Rows the live poll watches: still moving upstream, or their outputs are being copied.
LIVE_ARCHIVE_STATES = (ArchiveState.PENDING, ArchiveState.COPYING)
# The columns a list row shows; the raw JSON and output URLs stay in the database.
ROW_FIELDS = (
    "id", "account_id", "ark_id", "kind", "model", "status", "error_code", "ark_created_at",
    "ark_updated_at", "started_at", "finished_at", "gone_upstream_at", "changed_at", "archive_state",
    "archive_handoff_pending",
)


def _sees_everything(user: User) -> bool:
    # Superusers see and act on every account (Django's convention); staff do not.
    return bool(user.is_authenticated and user.is_active and user.is_superuser)


def _memberships(user: User, *, operator: bool = False) -> QuerySet[Membership]:
    memberships = Membership.objects.filter(user_id=user.pk)
    return memberships.filter(role=MembershipRole.OPERATOR) if operator else memberships


def _account_ids(user: User, *, operator: bool = False) -> list[int]:
    # Read now, as a list: `account_id IN (1, 2)` lets PostgreSQL scan the covering index
    # per account; the same rule as a subquery made status counts 30% slower (100k tasks).
    return list(_memberships(user, operator=operator).values_list("account_id", flat=True))


def tasks_visible_to(user: User, *, access: Access | None = None) -> QuerySet[Task]:
    """THE visibility rule for tasks: every read and action starts here.

    A person sees the tasks of the accounts they are a member of (any role); a superuser
    sees all. Anything else is invisible, so views answer 404, never 403: ids leak nothing.
    `access` (access_for(user), read in this request) saves reading the memberships again.
    """
    if not user.is_authenticated or not user.is_active:
        return Task.objects.none()
    if _sees_everything(user):
        return Task.objects.all()
    if access is not None:
        return Task.objects.filter(account_id__in=sorted(access.visible_account_ids))
    return Task.objects.filter(account_id__in=_account_ids(user))


def tasks_operable_by(user: User) -> QuerySet[Task]:
    """The tasks the user may also cancel and delete (operator role, or superuser)."""
    if not user.is_authenticated or not user.is_active:
        return Task.objects.none()
    if _sees_everything(user):
        return Task.objects.all()
    return Task.objects.filter(account_id__in=_account_ids(user, operator=True))


def accounts_visible_to(user: User) -> QuerySet[Account]:
    """The accounts whose sync health the user sees (same rule as tasks_visible_to)."""
    if not user.is_authenticated or not user.is_active:
        return Account.objects.none()
    if _sees_everything(user):
        return Account.objects.all()
    # A subquery here: one statement, and a handful of accounts plan fine either way.
    return Account.objects.filter(pk__in=_memberships(user).values("account_id"))


@dataclass(frozen=True)
class Access:
    """What one person may do, read once per request for pages that show many rows."""

    everything: bool  # a superuser: every account, every action
    visible_account_ids: frozenset[int] = frozenset()
    operable_account_ids: frozenset[int] = frozenset()

    def can_operate(self, account_id: int) -> bool:
        return self.everything or account_id in self.operable_account_ids

    @property
    def operates_all_it_sees(self) -> bool:
        return self.everything or self.visible_account_ids <= self.operable_account_ids


def access_for(user: User) -> Access:
    if not user.is_authenticated or not user.is_active:
        return Access(everything=False)
    if _sees_everything(user):
        return Access(everything=True)
    roles = list(_memberships(user).values_list("account_id", "role"))
    return Access(
        everything=False,
        visible_account_ids=frozenset(account_id for account_id, _role in roles),
        operable_account_ids=frozenset(account_id for account_id, role in roles if role == MembershipRole.OPERATOR),
    )


def can_operate(*, user: User, account_id: int) -> bool:
    """May the user cancel and delete tasks of this account? (Services ask this before acting.)"""
    if not user.is_authenticated or not user.is_active:
        return False
    return _sees_everything(user) or _memberships(user, operator=True).filter(account_id=account_id).exists()


def task_for_user(*, user: User, pk: int) -> Task:
    """One task the user may see, or Http404 (also for tasks of other accounts)."""
    try:
        return tasks_visible_to(user).select_related("account").get(pk=pk)
    except Task.DoesNotExist:
        raise Http404("No such task") from None


def row_version(task: Task) -> int:
    """Task.changed_at as whole microseconds: exact, so the poll can compare for equality."""
    return (task.changed_at - _EPOCH) // timedelta(microseconds=1)


def is_live(task: Task | RowKey) -> bool:
    # A task that just succeeded waits for its hand-off to the archive (sync.py) before
    # its archive state moves: live too, or its row would stop polling at "not archived".
    return (
        task.status in ACTIVE_STATUSES or task.archive_state in LIVE_ARCHIVE_STATES or task.archive_handoff_pending
    )


def status_counts(
    *, queryset: QuerySet[Task], version: int | None = None, tally: TallyFilter | None = None
) -> dict[str, int]:
    """Tasks per status in `queryset`, with a zero for every status.

    `tally`, the same filter as the task tally reads it (TaskFilter.tally_filter), sums
    the tally instead of counting the tasks (task_tally.py).
    """
    return counted(status_count_queries(queryset=queryset, tally=tally), version=version, using=queryset.db)


def status_count_queries(*, queryset: QuerySet[Task], tally: TallyFilter | None = None) -> tuple[CompiledQuery, ...]:
    """The reads whose rows, (..., status, n), add up to the status counts of `queryset`
    (list_plan.py keeps them compiled per query string)."""
    if tally is not None:
        reads = task_tally.count_querysets(tally, tasks=queryset)
    else:
        # COUNT(*), not COUNT(id): the id is not in the covering index, and asking for it
        # forces a read of every row (4x slower). Grouped by account too, the index's order,
        # so the aggregate can stream over an index-only scan.
        reads = [queryset.order_by().values_list("account_id", "status").annotate(n=Count("*"))]
    return tuple(query for query in map(CompiledQuery.of, reads) if query is not None)


def counted(queries: Iterable[CompiledQuery], *, version: int | None = None, using: str = "default") -> dict[str, int]:
    """The status counts status_count_queries() read, cached under those reads and the
    mirror's version (mirror_version.py; pass it in when the caller read it already): any
    write means a fresh count, an idle mirror is counted once."""
    queries = tuple(queries)
    if version is None:
        version = mirror_version.current(using)  # before the count: see mirror_version.py

    def count() -> dict[str, int]:
        counts = dict.fromkeys(TaskStatus.values, 0)
        for query in queries:
            for *_, status, n in query.rows():
                if status in counts:
                    counts[status] += n
        return counts

    what = [f"{query.sql}|{query.params!r}" for query in queries]
    return kept("status-counts", [str(version), *what], count, seconds=STATUS_COUNTS_CACHE_SECONDS)


@dataclass
class TaskListPage:
    rows: list[RowKey]
    page: int
    page_size: int
    total: int
    num_pages: int
    notices: list[str] = field(default_factory=list)

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.num_pages

    @property
    def first_index(self) -> int:
        return (self.page - 1) * self.page_size + 1 if self.total else 0

    @property
    def last_index(self) -> int:
        return min(self.page * self.page_size, self.total)


class RowKey(NamedTuple):
    """What decides a list row's HTML (row_html.py keeps the HTML under it): a page reads
    these few columns of its rows, and the whole row only where the kept HTML is stale."""

    pk: int
    account_id: int
    status: str
    archive_state: str
    gone_upstream_at: datetime | None
    changed_at: datetime
    archive_handoff_pending: bool
    archive_percent: int | None = None  # 0–100 while copying, when known

    can_cancel = property(Task.can_cancel.fget)  # Ark's state table, as the model reads it


ROW_KEY_FIELDS = RowKey._fields[:-1]


def row_keys_query(queryset: QuerySet[Task]) -> QuerySet:
    """The RowKey columns of a filtered, sorted queryset, in its order."""
    return queryset.values_list(*("id" if name == "pk" else name for name in ROW_KEY_FIELDS))


def task_list_page(*, row_keys: CompiledQuery | None, total: int, page: int, page_size: int) -> TaskListPage:
    """One page of rows of row_keys_query(filtered and sorted queryset), whose size is known.

    `total` comes from the status counts, which saves a COUNT(*) over the filter.
    A page past the end shows the last page (the caller says so on the page).
    `row_keys` None: the filter matches nothing.
    """
    num_pages = max(1, -(-total // page_size))
    shown = min(page, num_pages)
    offset = (shown - 1) * page_size
    rows = [] if row_keys is None else row_keys.rows(suffix="LIMIT %s OFFSET %s", suffix_params=(page_size, offset))
    keys = [RowKey(*row) for row in rows]
    percents = archive_percents([key.pk for key in keys if key.archive_state == ArchiveState.COPYING])
    if percents:
        keys = [key._replace(archive_percent=percents.get(key.pk)) for key in keys]
    return TaskListPage(rows=keys, page=shown, page_size=page_size, total=total, num_pages=num_pages)


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


def rows_changed(*, user: User, versions: Mapping[int, int], access: Access | None = None) -> list[Task]:
    """The tasks among `versions` (pk -> row_version the page shows) that differ now.

    Rows being copied are always returned: their progress lives on the artifacts.
    The idle case costs one narrow primary-key query.
    """
    if not versions:
        return []
    visible = tasks_visible_to(user, access=access)
    current = visible.filter(pk__in=list(versions)).values_list("pk", "changed_at", "archive_state")
    changed = [
        pk
        for pk, changed_at, archive_state in current
        if (changed_at - _EPOCH) // timedelta(microseconds=1) != versions[pk] or archive_state == ArchiveState.COPYING
    ]
    if not changed:
        return []
    tasks = list(visible.filter(pk__in=changed).only(*ROW_FIELDS).order_by("pk"))
    attach_archive_progress(tasks)
    return tasks


def known_models(*, user: User, access: Access | None = None) -> list[str]:
    """Model names for the filter's suggestions; cached because DISTINCT scans every row.

    `access` (from access_for, if the caller has it) saves reading the memberships again.
    """
    # Keyed by what the user sees, not only who they are: a membership change shows at once.
    if access is None:
        access = access_for(user)
    visible = "all" if access.everything else ",".join(map(str, sorted(access.visible_account_ids)))
    models = kept(
        "known-models", [visible],
        lambda: list(tasks_visible_to(user).order_by("model").values_list("model", flat=True).distinct()[:200]),
        seconds=300,
    )  # fmt: skip
    return [model for model in models if model]


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


def sync_health(*, user: User) -> SyncHealth:
    """One small query: there are a handful of accounts, not thousands."""
    accounts = list(accounts_visible_to(user).order_by().values_list(*_HEALTH_FIELDS))
    return _health_of(accounts, user=user)


def access_and_health(user: User) -> tuple[Access, SyncHealth]:
    """access_for() and sync_health() in one query (the memberships joined to their accounts)."""
    access, health, _version = _access_and_health(user, with_version=False)
    return access, health


def access_health_and_version(user: User) -> tuple[Access, SyncHealth, int]:
    """access_and_health() and the mirror's version (mirror_version.current()), for a member
    in that same query: the list page's one read before it knows whether its page is stored."""
    return _access_and_health(user, with_version=True)


def _access_and_health(user: User, *, with_version: bool) -> tuple[Access, SyncHealth, int | None]:
    if not user.is_authenticated or not user.is_active or _sees_everything(user):
        access, health = access_for(user), sync_health(user=user)
        return access, health, mirror_version.current() if with_version else None
    query = compiled_query.keep_per_thread(
        ("memberships-and-health", with_version), lambda: CompiledQuery.of(_memberships_query(with_version))
    )
    rows = query.rows([user.pk])
    access = Access(
        everything=False,
        visible_account_ids=frozenset(row[0] for row in rows),
        operable_account_ids=frozenset(row[0] for row in rows if row[1] == MembershipRole.OPERATOR),
    )
    health = _health_of([row[2:6] for row in rows], user=user)
    if not with_version:
        return access, health, None
    return access, health, rows[0][6] if rows else mirror_version.current()


def _memberships_query(with_version: bool) -> QuerySet:
    """A member's memberships joined to their accounts' sync health (and the mirror's
    version), for one user id: the only parameter, filled in per request."""
    fields = ["account_id", "role", *(f"account__{f}" for f in _HEALTH_FIELDS)]
    memberships = Membership.objects.filter(user_id=0).order_by()
    if with_version:
        memberships = memberships.annotate(mirror_version=RawSQL(mirror_version.select_sql(), ()))
        fields.append("mirror_version")
    return memberships.values_list(*fields)


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
