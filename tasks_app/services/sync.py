"""Keep the local mirror of each account's Ark tasks fresh, within Ark's rate budget.

One cycle of `sync_account`:
1. Active refresh: local queued/running tasks are re-read with `filter.task_ids`, up to
   500 ids per list call, so a whole team's active work costs a call or two. Ark names no
   limit on ids per call or on URL length: when a call is refused for its size the batch
   is halved, and the size that works is remembered per account and grown back slowly.
2. Discovery: Ark promises no list order, so new tasks are never looked for as "the
   first page is the newest". Queued tasks are read every cycle (Ark caps them near
   120 per account: one page holds them all). One call of page_size 1 then gives the
   window's total: when the mirror holds as many tasks, nothing is new. Otherwise the
   other statuses are read until the mirror knows as many tasks of each as Ark counts
   (pages 1, last, 2, 3...: the newest tasks come first under either stable order),
   and if that budget is not enough, the window is read until they are found.
   Every ARKDASH_FULL_SWEEP_SECONDS a bounded full sweep reads the whole window.
3. Tasks Ark no longer returns are confirmed with a get (404) and marked gone
   upstream; they stay in the mirror. A task created in the last minute is never
   marked gone: Ark's window is open at the request's second, so a task read back in
   the second it was created is simply not visible yet.

Pages are Ark's largest (500 tasks), and a filter.task_ids call carries at most as many
ids. Only rows whose mirrored fields changed are written, one transaction per batch, so a
cycle that fails half-way leaves a consistent mirror. A task that turns succeeded is
flagged for the archive in the same transaction; after commit one Celery message per
batch asks the archive (services/archive.py, `archive_handoff`) to take the flagged
tasks, and its periodic sweep redoes any hand-off still flagged later (the process died
in between, or the message was lost).
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, models, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from tasks_app.ark import (
    MAX_PAGE_SIZE,
    OUTPUT_URL_LIFETIME,
    ArkClient,
    ArkError,
    ArkNotFoundError,
    ArkRateLimitedError,
    ArkTask,
    ArkTooManyIdsError,
)
from tasks_app.lib.crypto import SecretDecryptError
from tasks_app.models import ACTIVE_STATUSES, Account, Task, TaskStatus
from tasks_app.ratelimit import RateLimitWaitTooLong

from .accounts import client_for

logger = logging.getLogger(__name__)
T = TypeVar("T")

ARK_WINDOW = timedelta(days=7)
CANCELLED_TTL = timedelta(hours=24)  # Ark deletes a cancelled task by itself this long after the cancel
# Discovery reads at most this many pages of one status a cycle (the sweep: as many as
# ArkClient.iter_pages budgets for a list in no promised order).
MAX_DISCOVERY_PAGES = 10
# The batch of filter.task_ids grows back by a tenth (at least one id) this often, and
# never to a size refused in the last day.
BATCH_GROW_EVERY = timedelta(minutes=10)
BATCH_CEILING_TTL = timedelta(days=1)
# Ark's window is open at the request's second and clocks differ a little: a task this
# young that Ark does not return is "not visible yet", never "gone".
YOUNG_TASK_GRACE = timedelta(minutes=1)
# Confirming "gone" costs one get per task: cap it per cycle, the rest waits a cycle.
MAX_GONE_CHECKS_PER_CYCLE = 200
# A task created this long before our clock says so is out of Ark's window for sure
# (the margin covers clock skew), so no get is spent on confirming it.
_SURELY_OUT_OF_WINDOW = ARK_WINDOW + timedelta(hours=1)
_TERMINAL_STATUSES = {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.EXPIRED, TaskStatus.CANCELLED}
# cgt-20250331175019-68d9t: the creation time in Beijing time (UTC+8).
_ID_TIME = re.compile(r"^cgt-(\d{14})-")
_BEIJING = timezone.get_fixed_timezone(8 * 60)

# The Task fields that mirror Ark's record (compared to decide whether a row changed).
MIRRORED_FIELDS = (
    "kind",
    "model",
    "status",
    "error_code",
    "error_message",
    "service_tier",
    "execution_expires_after",
    "ark_created_at",
    "ark_updated_at",
    "resolution",
    "ratio",
    "duration",
    "frames",
    "framespersecond",
    "seed",
    "generate_audio",
    "draft",
    "subdivision_level",
    "file_format",
    "completion_tokens",
    "total_tokens",
    "video_url",
    "last_frame_url",
    "file_url",
    "outputs_expire_at",
    "raw",
)
# What ArkDash observed, derived from status transitions.
OBSERVED_FIELDS = ("started_at", "finished_at", "gone_upstream_at")
_URL_FIELDS = ("video_url", "last_frame_url", "file_url")


class SyncError(Exception):
    """A sync could not run (for example the account's key cannot be decrypted)."""


@dataclass
class SyncReport:
    """What one cycle did: shown by `manage.py sync` and logged by the worker."""

    account: str
    calls: Counter[str] = field(default_factory=Counter)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    gone: int = 0
    rate_limited: int = 0
    full_sweep: bool = False
    batch_shrunk: int = 0  # filter.task_ids calls refused for their size, then re-sent smaller
    batch_size: int | None = None
    skipped: bool = False
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors and not self.skipped

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def __str__(self) -> str:
        if self.skipped:
            return f"{self.account}: skipped, another sync of this account is running"
        calls = ", ".join(f"{name} {count}" for name, count in sorted(self.calls.items())) or "none"
        text = (
            f"{self.account}: {self.total_calls} calls ({calls}); "
            f"created {self.created}, updated {self.updated}, unchanged {self.unchanged}, gone {self.gone}"
        )
        if self.full_sweep:
            text += "; full sweep"
        if self.rate_limited:
            text += f"; slowed by {self.rate_limited} rate limit answers"
        if self.batch_shrunk:
            text += f"; {self.batch_shrunk} calls refused for size, now {self.batch_size} ids a call"
        text += f"; {self.seconds:.2f}s"
        if self.errors:
            text += "; FAILED: " + "; ".join(self.errors)
        return text


@dataclass
class UpsertResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    tasks: dict[str, Task] = field(default_factory=dict)  # by Ark id
    changed_ids: set[str] = field(default_factory=set)
    created_ids: list[str] = field(default_factory=list)


# --- Public services -------------------------------------------------------------------


def sync_account(*, account: Account, lease_wait: float = 0.0, full_sweep: bool | None = None) -> SyncReport:
    """Run one sync cycle for `account` and record its health.

    Only one cycle per account runs at a time: another holder of the lease makes this
    one skip (or wait up to `lease_wait` seconds). `full_sweep` forces (True) or
    forbids (False) the sweep of the whole 7-day window; None means "when due".
    """
    report = SyncReport(account=account.name)
    started = time.monotonic()
    token = _lease_take(account, wait=lease_wait)
    if token is None:
        report.skipped = True
        return report
    try:
        account.refresh_from_db()
        try:
            client = client_for(account, count_calls=report.calls)
        except (SecretDecryptError, ValueError) as error:
            raise SyncError(f"account cannot be used: {error}") from error
        with client:
            _Cycle(account=account, client=client, report=report, lease_token=token).run(
                full_sweep=full_sweep
            )
    except (ArkError, SyncError, RateLimitWaitTooLong) as error:
        report.errors.append(str(error))
    except Exception as error:
        report.errors.append(f"internal error: {type(error).__name__}")
        report.seconds = time.monotonic() - started
        _record_health(account, report)
        raise
    finally:
        _lease_release(account, token)
    report.seconds = time.monotonic() - started
    _record_health(account, report)
    log = logger.warning if report.errors else logger.info
    log("sync %s", report)
    return report


def task_upsert_from_ark(*, account: Account, ark_task: ArkTask) -> tuple[Task, bool]:
    """Mirror one task as Ark returned it; `changed` is False when nothing had to be written."""
    result = tasks_upsert_from_ark(account=account, ark_tasks=[ark_task])
    return result.tasks[ark_task.id], ark_task.id in result.changed_ids


def tasks_upsert_from_ark(*, account: Account, ark_tasks: Iterable[ArkTask]) -> UpsertResult:
    """Mirror a batch of tasks in one transaction, writing only rows that changed.

    A task that turns succeeded gets `archive_handoff_pending` in the same transaction;
    its hand-off to the archive is queued once the transaction commits.
    """
    latest: dict[str, ArkTask] = {}
    for ark_task in ark_tasks:
        latest[ark_task.id] = ark_task  # a page may repeat a task: the last copy wins
    result = UpsertResult()
    if not latest:
        return result
    now = timezone.now()
    with transaction.atomic():
        existing = {
            task.ark_id: task
            for task in Task.objects.select_for_update()
            .filter(account=account, ark_id__in=list(latest))
            .order_by("pk")  # one lock order for every writer: no deadlocks
        }
        to_create: list[Task] = []
        to_update: list[tuple[Task, set[str]]] = []
        handoff_ids: list[str] = []
        for ark_id, ark_task in latest.items():
            task = existing.get(ark_id)
            if task is None:
                task = Task(account=account, ark_id=ark_id)
                _apply(task, ark_task, now=now, is_new=True)
                to_create.append(task)
            elif changed_fields := _apply(task, ark_task, now=now, is_new=False):
                to_update.append((task, changed_fields))
            else:
                result.unchanged += 1
                result.tasks[ark_id] = task
                continue
            result.tasks[ark_id] = task
            result.changed_ids.add(ark_id)
            if task.archive_handoff_pending:
                handoff_ids.append(ark_id)
        if to_create:
            merged = _create_or_merge(account, to_create, now=now)
            result.created += len(to_create) - len(merged)
            result.created_ids = [task.ark_id for task in to_create if task.ark_id not in merged]
            result.updated += len(merged)
            for ark_id in merged:
                result.tasks[ark_id] = Task.objects.get(account=account, ark_id=ark_id)
        for task, changed_fields in to_update:
            # One UPDATE of just the changed columns per row: far cheaper than bulk_update's
            # CASE per column per row, and a cycle changes few rows.
            task.changed_at = now
            values = {name: getattr(task, name) for name in changed_fields}
            Task.objects.filter(pk=task.pk).update(**values, changed_at=now)
        result.updated += len(to_update)
        if handoff_ids:
            account_id = account.pk
            transaction.on_commit(lambda: _enqueue_handoff(account_id=account_id, ark_ids=handoff_ids))
    return result


def task_refresh(*, task: Task, client: ArkClient | None = None) -> Task:
    """Re-read one task from Ark and mirror it (marked gone upstream when Ark has no record).

    Raises ArkError (other than not-found) for the caller to report.
    """
    refreshed = task_refresh_by_ark_id(account=task.account, ark_id=task.ark_id, client=client)
    return refreshed if refreshed is not None else Task.objects.get(pk=task.pk)


def task_refresh_by_ark_id(*, account: Account, ark_id: str, client: ArkClient | None = None) -> Task | None:
    """Re-read a task by its Ark id: mirrored (created if new), marked gone if Ark says 404.

    Returns None when neither Ark nor the mirror knows the id. Raises ArkError otherwise.
    """
    own_client = client is None
    client = client or client_for(account)
    try:
        try:
            ark_task = client.get_task(ark_id)
        except ArkNotFoundError:
            tasks_mark_gone(account=account, ark_ids=[ark_id])
            return Task.objects.filter(account=account, ark_id=ark_id).first()
    finally:
        if own_client:
            client.close()
    if ark_task.id != ark_id:
        raise ArkError(f"asked Ark for task {ark_id} and got {ark_task.id}", retryable=False)
    task, _changed = task_upsert_from_ark(account=account, ark_task=ark_task)
    return task


def tasks_mark_gone(*, account: Account, ark_ids: Iterable[str]) -> int:
    """Mark tasks that Ark no longer has; they stay in the mirror. Returns how many changed.

    Tasks created within YOUNG_TASK_GRACE are left alone: Ark does not show a task in the
    second it was created, so its 404 means "not yet", and a later read finds it.
    """
    ids = list(ark_ids)
    if not ids:
        return 0
    now = timezone.now()
    return Task.objects.filter(
        account=account,
        ark_id__in=ids,
        gone_upstream_at__isnull=True,
        ark_created_at__lt=now - YOUNG_TASK_GRACE,
    ).update(gone_upstream_at=now, changed_at=now)


def full_sweep_due(account: Account, *, now: datetime | None = None) -> bool:
    if account.last_full_sweep_at is None:
        return True
    now = now or timezone.now()
    return now - account.last_full_sweep_at >= timedelta(seconds=settings.ARKDASH_FULL_SWEEP_SECONDS)


# --- Flagging for the archive -----------------------------------------------------------


def _enqueue_handoff(*, account_id: int, ark_ids: list[str]) -> None:
    """After commit: one Celery message per batch, so archive work never slows a sync cycle."""
    from tasks_app.tasks import archive_handoff as archive_handoff_task

    try:
        archive_handoff_task.delay(account_id, ark_ids)
    except Exception:
        # The flags are committed: the periodic sweep hands these tasks off instead.
        logger.warning(
            "could not queue the archive hand-off of %d tasks; the sweep will", len(ark_ids), exc_info=True
        )


# --- One cycle ----------------------------------------------------------------------------


class _Cycle:
    def __init__(self, *, account: Account, client: ArkClient, report: SyncReport, lease_token: str) -> None:
        self.account = account
        self.client = client
        self.report = report
        self.lease_token = lease_token
        self.started_at = timezone.now()
        self.written: set[str] = set()
        self.status_read: dict[str, str] = {}  # Ark id -> status, for every task read this cycle

    def run(self, *, full_sweep: bool | None) -> None:
        sweep = full_sweep_due(self.account, now=self.started_at) if full_sweep is None else full_sweep
        # Active tasks first: they are what people are waiting for, and this way a
        # sweep that keeps failing cannot starve them.
        self._refresh_active()
        if sweep:
            self.report.full_sweep = True
            self._sweep()
        elif not self._discover() and full_sweep is None:
            # Ark holds tasks discovery could not find: read the window now, until found.
            self.report.full_sweep = True
            self._sweep(until_known=True)

    def _refresh_active(self) -> None:
        active_ids = list(
            Task.objects.filter(
                account=self.account, status__in=ACTIVE_STATUSES, gone_upstream_at__isnull=True
            )
            .order_by("ark_created_at")
            .values_list("ark_id", flat=True)
        )
        if not active_ids:
            return
        batch = TaskIdsBatch(account_id=self.account.pk)
        missing: list[str] = []
        pending = active_ids
        while pending:
            ids, pending = pending[: batch.size], pending[batch.size :]
            try:
                page = self._patiently(lambda ids=ids: self.client.list_tasks(task_ids=ids, page_size=MAX_PAGE_SIZE))
            except ArkTooManyIdsError:
                if len(ids) == 1:
                    raise
                batch.refused(len(ids))
                self.report.batch_shrunk += 1
                pending = ids + pending  # the same ids again, fewer per call
                continue
            batch.accepted(len(ids))
            self._write(page.items)
            returned = {item.id for item in page.items}
            missing.extend(ark_id for ark_id in ids if ark_id not in returned)
        batch.cycle_done()
        self.report.batch_size = batch.size
        self._confirm_gone(missing)

    def _discover(self) -> bool:
        """Find tasks the mirror does not know, whatever order Ark lists in.

        Queued tasks are read every cycle (one page: Ark caps them near 120). Then one
        call of page_size 1 gives the window's total: when the mirror already knows as
        many tasks, nothing is new. Otherwise each other status is read until the mirror
        knows as many tasks with it as Ark counts. Returns False when that did not
        account for everything (the caller sweeps then).

        Counts can hide a new task behind one deleted upstream but not yet marked gone
        (the mirror then holds as many as Ark counts): the queued read still finds any
        task that stays queued for a cycle, and the next sweep finds the rest.
        """
        self._read_all(status=TaskStatus.QUEUED, max_calls=MAX_DISCOVERY_PAGES, enough=self._known_count)
        total = self._patiently(lambda: self.client.list_tasks(page_size=1)).total
        if self._known_count(None) >= total:
            return True
        for status in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.RUNNING, TaskStatus.CANCELLED):
            self._read_all(status=status, max_calls=MAX_DISCOVERY_PAGES, enough=self._known_count)
            if self._known_count(None) >= total:
                return True
        return False

    def _known_count(self, status: str | None) -> int:
        """How many tasks (with `status`) the mirror holds inside Ark's window right now."""
        tasks = Task.objects.filter(
            account=self.account, gone_upstream_at__isnull=True, ark_created_at__gte=timezone.now() - ARK_WINDOW
        )
        if status is not None:
            tasks = tasks.filter(status=status)
        # Ark forgets a cancelled task 24 h after the cancel; the mirror keeps it.
        return tasks.exclude(status=TaskStatus.CANCELLED, ark_updated_at__lt=timezone.now() - CANCELLED_TTL).count()

    def _sweep(self, *, until_known: bool = False) -> None:
        """Read the whole window (or, `until_known`, until the mirror knows as many tasks as
        Ark counts); local tasks a complete read did not return are confirmed gone."""
        seen, total = self._read_all(
            status=None, max_calls=None, enough=self._known_count if until_known else None
        )
        if not until_known:
            Account.objects.filter(pk=self.account.pk).update(last_full_sweep_at=self.started_at)
        self._note_shared_ids(list(seen))
        if len(seen) < total:
            if not until_known:
                logger.warning("sync %s: the sweep saw %d of %d tasks", self.account.name, len(seen), total)
            return  # what it did not see may still exist: nothing can be called gone
        # The sweep saw the whole window: local tasks it did not return are gone, or
        # were created after it began (the get below tells them apart).
        local = Task.objects.filter(account=self.account, gone_upstream_at__isnull=True).values_list(
            "ark_id", flat=True
        )
        self._confirm_gone([ark_id for ark_id in local.iterator(chunk_size=5000) if ark_id not in seen])

    def _read_all(
        self, *, status: str | None, max_calls: int | None, enough: Callable[[str | None], int] | None
    ) -> tuple[set[str], int]:
        """Page through the tasks with `status` (None: all); returns (ids seen, Ark's total).

        No order is promised (see ArkClient.iter_pages). Reading stops once as many distinct
        tasks were seen as `total` says, or once `enough(status)` (what the mirror knows)
        reaches it, or when `max_calls` (None: the client's budget of passes) are spent.
        """
        seen: set[str] = set()
        total = 0
        pages = self.client.iter_pages(
            page_size=MAX_PAGE_SIZE,
            status=status,
            newest_first_either_way=True,
            max_calls=max_calls,
            each_call=self._patiently,
        )
        for page in pages:
            total = page.total
            seen.update(item.id for item in page.items)
            self._write(page.items)
            if enough is not None and page.items and len(seen) < total and enough(status) >= total:
                break
        return seen, total

    def _confirm_gone(self, ark_ids: list[str]) -> None:
        if not ark_ids:
            return
        cutoff = self.started_at - _SURELY_OUT_OF_WINDOW
        young = self.started_at - YOUNG_TASK_GRACE
        old = set(
            Task.objects.filter(
                account=self.account, ark_id__in=ark_ids, ark_created_at__lt=cutoff
            ).values_list("ark_id", flat=True)
        )
        just_created = set(
            Task.objects.filter(
                account=self.account, ark_id__in=ark_ids, ark_created_at__gte=young
            ).values_list("ark_id", flat=True)
        )
        gone = list(old)
        to_check = [ark_id for ark_id in ark_ids if ark_id not in old and ark_id not in just_created]
        for ark_id in to_check[:MAX_GONE_CHECKS_PER_CYCLE]:
            try:
                ark_task = self._patiently(lambda ark_id=ark_id: self.client.get_task(ark_id))
            except ArkNotFoundError:
                gone.append(ark_id)
            else:
                self._write([ark_task])
        self.report.gone += tasks_mark_gone(account=self.account, ark_ids=gone)

    def _write(self, ark_tasks: list[ArkTask]) -> None:
        # A task read twice in one cycle (refreshed, then on the discovery page) is
        # written and counted once.
        for item in ark_tasks:
            self.status_read[item.id] = item.status
        fresh = [item for item in ark_tasks if item.id not in self.written]
        self.written.update(item.id for item in fresh)
        result = tasks_upsert_from_ark(account=self.account, ark_tasks=fresh)
        self.report.created += result.created
        self.report.updated += result.updated
        self.report.unchanged += result.unchanged
        self._note_shared_ids(result.created_ids)
        _lease_extend(self.account, self.lease_token)

    def _note_shared_ids(self, ark_ids: list[str] | set[str]) -> None:
        """Record other Accounts that mirror some of these ids (two keys of one Ark account)."""
        from .accounts import accounts_note_shared_tasks

        for batch in _chunks(ark_ids, MAX_PAGE_SIZE):
            accounts_note_shared_tasks(account=self.account, ark_ids=batch)

    # 429s slow the cycle down rather than fail it: the client has already told the
    # shared limiter to back off, so the next attempt waits its turn.
    def _patiently(self, call: Callable[[], T]) -> T:
        deadline = time.monotonic() + settings.ARKDASH_SYNC_RATE_LIMIT_PATIENCE_SECONDS
        while True:
            _lease_extend(self.account, self.lease_token)  # a slow call must not lose the lease
            try:
                return call()
            except ArkRateLimitedError:
                self.report.rate_limited += 1
                if time.monotonic() >= deadline:
                    raise


class TaskIdsBatch:
    """How many ids one filter.task_ids call of an account carries, remembered in the cache.

    Ark documents no limit, and a proxy may cap the URL. A refusal halves the size, or
    falls back to the largest size that already worked, and marks the refused size as a
    ceiling for a day. A cycle without refusal grows the size by a tenth, at most every
    BATCH_GROW_EVERY, back towards MAX_PAGE_SIZE.
    """

    def __init__(self, *, account_id: int) -> None:
        self.key = f"arkdash:sync:task-ids-batch:{account_id}"
        state = cache.get(self.key) or {}
        self.size: int = int(state.get("size", MAX_PAGE_SIZE))
        self.ceiling: int = int(state.get("ceiling", MAX_PAGE_SIZE))
        self.largest_ok: int = int(state.get("largest_ok", 0))
        self.ceiling_until: float = float(state.get("ceiling_until", 0.0))
        self.changed_at: float = float(state.get("changed_at", 0.0))
        if self.ceiling_until and self.ceiling_until < time.time():
            self.ceiling, self.largest_ok = MAX_PAGE_SIZE, 0  # a limit not met for a day may have changed
        self._refused = False

    def refused(self, sent: int) -> None:
        self.ceiling = min(self.ceiling, sent - 1)
        self.largest_ok = min(self.largest_ok, self.ceiling)
        self.ceiling_until = time.time() + BATCH_CEILING_TTL.total_seconds()
        if 0 < self.largest_ok < sent:
            self.size = self.largest_ok
        else:
            self.size = max(1, min(self.size, sent) // 2)
        self.changed_at = time.time()
        self._refused = True
        self._save()

    def accepted(self, sent: int) -> None:
        if sent > self.largest_ok:
            self.largest_ok = sent
            self._save()

    def cycle_done(self) -> None:
        if self._refused or self.size >= self.ceiling:
            return
        if time.time() - self.changed_at < BATCH_GROW_EVERY.total_seconds():
            return
        self.size = min(self.ceiling, self.size + max(1, self.size // 10))
        self.changed_at = time.time()
        self._save()

    def _save(self) -> None:
        state = {
            "size": self.size,
            "ceiling": self.ceiling,
            "largest_ok": self.largest_ok,
            "ceiling_until": self.ceiling_until,
            "changed_at": self.changed_at,
        }
        cache.set(self.key, state, timeout=int(BATCH_CEILING_TTL.total_seconds() * 2))


# --- Mapping an ArkTask onto a Task row ----------------------------------------------------


def _apply(task: Task, ark_task: ArkTask, *, now: datetime, is_new: bool) -> set[str]:
    """Copy Ark's view onto `task`; returns the names of the fields that changed (none: unchanged)."""
    previous_status = None if is_new else task.status
    values = _mirrored_values(ark_task, previous=None if is_new else task)
    changed: set[str] = set()
    for name, value in values.items():
        if is_new or not _same(name, getattr(task, name), value):
            setattr(task, name, value)
            changed.add(name)
    status = values["status"]
    if status == TaskStatus.RUNNING and task.started_at is None:
        task.started_at = now
        changed.add("started_at")
    if status in _TERMINAL_STATUSES and task.finished_at is None:
        task.finished_at = values["ark_updated_at"] or now
        changed.add("finished_at")
    if task.gone_upstream_at is not None:
        task.gone_upstream_at = None  # Ark returned it: it is not gone after all
        changed.add("gone_upstream_at")
    if not changed:
        return changed
    if status == TaskStatus.SUCCEEDED and previous_status != TaskStatus.SUCCEEDED:
        task.archive_handoff_pending = True
        changed.add("archive_handoff_pending")
    task.last_synced_at = now
    changed.add("last_synced_at")
    return changed


def _mirrored_values(ark_task: ArkTask, *, previous: Task | None) -> dict[str, Any]:
    created_at = ark_task.created_at or _created_at_from_id(ark_task.id)
    if created_at is None:
        created_at = previous.ark_created_at if previous is not None else timezone.now()
    status = _clip("status", ark_task.status) or (previous.status if previous is not None else "")
    urls = {name: _without_nul(getattr(ark_task, name) or "") for name in _URL_FIELDS}
    expires = None
    if status == TaskStatus.SUCCEEDED and any(urls.values()):
        expires = (ark_task.updated_at or created_at) + OUTPUT_URL_LIFETIME
    return {
        "kind": _clip("kind", ark_task.kind),
        "model": _clip("model", ark_task.model),
        "status": status,
        "error_code": _clip("error_code", ark_task.error_code),
        "error_message": _without_nul(ark_task.error_message or ""),
        "service_tier": _clip("service_tier", ark_task.service_tier),
        "execution_expires_after": _bounded_int("execution_expires_after", ark_task.execution_expires_after),
        "ark_created_at": created_at,
        "ark_updated_at": ark_task.updated_at,
        "resolution": _clip("resolution", ark_task.resolution),
        "ratio": _clip("ratio", ark_task.ratio),
        "duration": _bounded_int("duration", ark_task.duration),
        "frames": _bounded_int("frames", ark_task.frames),
        "framespersecond": _bounded_int("framespersecond", ark_task.framespersecond),
        "seed": _bounded_int("seed", ark_task.seed),
        "generate_audio": ark_task.generate_audio,
        "draft": ark_task.draft,
        "subdivision_level": _clip("subdivision_level", ark_task.subdivision_level),
        "file_format": _clip("file_format", ark_task.file_format),
        "completion_tokens": _bounded_int("completion_tokens", ark_task.completion_tokens),
        "total_tokens": _bounded_int("total_tokens", ark_task.total_tokens),
        **urls,
        "outputs_expire_at": expires,
        "raw": _without_nul(ark_task.raw) if isinstance(ark_task.raw, dict) else {},
    }


def _same(name: str, old: Any, new: Any) -> bool:
    """Equal for the mirror's purpose: a presigned URL signed anew is the same output."""
    if name in _URL_FIELDS:
        return _without_query(old) == _without_query(new)
    if name == "raw":
        return _stable_raw(old) == _stable_raw(new)
    return old == new


def _without_query(url: Any) -> Any:
    if not isinstance(url, str) or not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _stable_raw(raw: Any) -> Any:
    if not isinstance(raw, dict):
        return raw
    content = raw.get("content")
    if not isinstance(content, dict):
        return raw
    stable_content = {
        key: _without_query(value) if key.endswith("_url") else value for key, value in content.items()
    }
    return {**raw, "content": stable_content}


def _clip(name: str, value: str | None) -> str:
    """Fit a text into its column: an odd value from Ark must not fail a whole batch."""
    if not value:
        return ""
    max_length = Task._meta.get_field(name).max_length
    value = _without_nul(value)
    return value[:max_length] if max_length else value


def _without_nul(value: Any) -> Any:
    """PostgreSQL refuses NUL in text and jsonb: drop it rather than fail the batch."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


_INT_RANGES = {
    models.IntegerField: (-(2**31), 2**31 - 1),
    models.PositiveIntegerField: (0, 2**31 - 1),
    models.BigIntegerField: (-(2**63), 2**63 - 1),
}


def _bounded_int(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    low, high = _INT_RANGES[type(Task._meta.get_field(name))]
    return value if low <= value <= high else None


def _created_at_from_id(ark_id: str) -> datetime | None:
    match = _ID_TIME.match(ark_id)
    if not match:
        return None
    try:
        local = datetime.strptime(match.group(1), "%Y%m%d%H%M%S").replace(tzinfo=_BEIJING)
    except ValueError:
        return None
    return local.astimezone(UTC)


def _create_or_merge(account: Account, tasks: list[Task], *, now: datetime) -> list[str]:
    """Insert new rows. A row another writer (a callback) inserted meanwhile is updated
    instead; returns the Ark ids of those merged rows."""
    try:
        with transaction.atomic():
            Task.objects.bulk_create(tasks, batch_size=MAX_PAGE_SIZE)
        return []
    except IntegrityError:
        pass
    merged = []
    for task in tasks:
        task.pk = None
        task._state.adding = True
        try:
            with transaction.atomic():
                task.save(force_insert=True)
            continue
        except IntegrityError:
            task.pk = None
        existing = Task.objects.select_for_update().get(account=account, ark_id=task.ark_id)
        values = {name: getattr(task, name) for name in (*MIRRORED_FIELDS, *OBSERVED_FIELDS)}
        values["archive_handoff_pending"] = existing.archive_handoff_pending or (
            task.archive_handoff_pending and existing.status != TaskStatus.SUCCEEDED
        )
        Task.objects.filter(pk=existing.pk).update(**values, last_synced_at=now, changed_at=now)
        merged.append(task.ark_id)
    return merged


# --- Health and the per-account lease ---------------------------------------------------------


def _record_health(account: Account, report: SyncReport) -> None:
    now = timezone.now()
    if report.ok:
        Account.objects.filter(pk=account.pk).update(
            last_sync_ok_at=now, failing_since=None, consecutive_failures=0
        )
    elif not report.skipped:
        Account.objects.filter(pk=account.pk).update(
            last_sync_error=" ; ".join(report.errors)[:2000],
            last_sync_error_at=now,
            failing_since=Coalesce("failing_since", Value(now)),
            consecutive_failures=F("consecutive_failures") + 1,
        )
    account.refresh_from_db(
        fields=[
            "last_sync_ok_at",
            "last_sync_error",
            "last_sync_error_at",
            "failing_since",
            "consecutive_failures",
        ]
    )


def _lease_take(account: Account, *, wait: float) -> str | None:
    token = secrets.token_hex(16)
    deadline = time.monotonic() + wait
    while True:
        now = timezone.now()
        taken = (
            Account.objects.filter(pk=account.pk)
            .filter(Q(sync_lease_until__isnull=True) | Q(sync_lease_until__lt=now))
            .update(
                sync_lease_token=token,
                sync_lease_until=now + timedelta(seconds=settings.ARKDASH_SYNC_LEASE_SECONDS),
            )
        )
        if taken:
            return token
        if time.monotonic() >= deadline:
            return None
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def _lease_extend(account: Account, token: str) -> None:
    until = timezone.now() + timedelta(seconds=settings.ARKDASH_SYNC_LEASE_SECONDS)
    Account.objects.filter(pk=account.pk, sync_lease_token=token).update(sync_lease_until=until)


def _lease_release(account: Account, token: str) -> None:
    Account.objects.filter(pk=account.pk, sync_lease_token=token).update(
        sync_lease_token="", sync_lease_until=None
    )


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
