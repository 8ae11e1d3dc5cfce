"""Retention: delete archived outputs older than an account's rule, and record storage used.

An account's rule (Account.retention_days) is off by default. When set, a beat job
(tasks.archive_retention) deletes the archived files of outputs archived more than that
many days ago. Each output keeps its row: removed_at and removed_reason say when and why,
and its download answers a page saying so. One audit entry per task says what went.

The same job writes today's ArchiveUsageSnapshot per account (bytes and outputs still
stored), from which the archive page draws the trend.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ..lib import storage
from ..models import (
    Account,
    ArchiveUsageSnapshot,
    Artifact,
    ArtifactState,
    AuditAction,
    AuditResult,
    RemovalReason,
)
from ..selectors import User, can_operate
from . import pictures
from .actions import audit_write

logger = logging.getLogger(__name__)

# One transaction per this many outputs: a first run on a large archive must not hold
# one huge transaction (or lose all its work to one error).
RETENTION_BATCH = 500
MAX_RETENTION_DAYS = 36_500


class RetentionError(Exception):
    """A rule that cannot be set; the message is for the person who tried."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class RetentionReport:
    removed: int = 0
    bytes_freed: int = 0
    accounts: list[int] = field(default_factory=list)


def account_retention_set(*, account: Account, days: int | None, user: User) -> Account:
    """Turn the account's rule on (`days`) or off (None); operators only; audited."""
    if not can_operate(user=user, account_id=account.pk):
        raise RetentionError(_("Only operators of this account can change its retention rule."))
    if days is not None and not 1 <= days <= MAX_RETENTION_DAYS:
        raise RetentionError(_("The number of days must be between 1 and %(max)d.") % {"max": MAX_RETENTION_DAYS})
    Account.objects.filter(pk=account.pk).update(retention_days=days)
    account.retention_days = days
    if days is None:
        message = _("Retention turned off: archived outputs are kept forever.")
    else:
        message = ngettext(
            "Archived outputs older than %(n)d day will be deleted.",
            "Archived outputs older than %(n)d days will be deleted.",
            days,
        ) % {"n": days}
    audit_write(
        user=user, action=AuditAction.RETENTION, result=AuditResult.DONE, code="rule", message=message,
        account_id=account.pk, account_name=account.name, task_id=None, ark_id="",
    )  # fmt: skip
    return account


def retention_run(*, now: datetime | None = None) -> RetentionReport:
    """Apply every account's rule, then snapshot storage used (the beat job's work)."""
    now = now or timezone.now()
    report = RetentionReport()
    for account in Account.objects.filter(retention_days__isnull=False).order_by("pk"):
        removed, freed = account_retention_apply(account=account, now=now)
        report.removed += removed
        report.bytes_freed += freed
        if removed:
            report.accounts.append(account.pk)
    archive_usage_snapshot(now=now)
    return report


def account_retention_apply(*, account: Account, now: datetime) -> tuple[int, int]:
    """Delete the archived files of the account's outputs archived before now − its rule.

    Returns (outputs removed, bytes freed).
    """
    if account.retention_days is None:
        return 0, 0
    cutoff = now - timedelta(days=account.retention_days)
    expired = Artifact.objects.filter(
        task__account=account, state=ArtifactState.ARCHIVED, removed_at__isnull=True, archived_at__lt=cutoff
    )
    removed = freed = 0
    while True:
        batch = list(expired.select_related("task").order_by("archived_at", "pk")[:RETENTION_BATCH])
        if not batch:
            return removed, freed
        n, size = _remove_batch(account, batch, now)
        removed += n
        freed += size
        if n == 0:  # all taken by a concurrent run: nothing more for this one
            return removed, freed


def _remove_batch(account: Account, batch: list[Artifact], now: datetime) -> tuple[int, int]:
    gone: list[Artifact] = []
    with transaction.atomic():
        for artifact in batch:
            # Conditional: two overlapping runs remove (and audit) each output once.
            if Artifact.objects.filter(pk=artifact.pk, removed_at__isnull=True).update(
                removed_at=now, removed_reason=RemovalReason.RETENTION
            ):
                gone.append(artifact)
        by_task: dict[int, list[Artifact]] = {}
        for artifact in gone:
            by_task.setdefault(artifact.task_id, []).append(artifact)
        cutoff = now - timedelta(days=account.retention_days or 0)
        for artifacts in by_task.values():
            task = artifacts[0].task
            outputs = ", ".join(artifact.output for artifact in artifacts)
            audit_write(
                user=_nobody(), action=AuditAction.RETENTION, result=AuditResult.DONE, code="removed",
                message=_("%(outputs)s: archived before %(cutoff)s UTC, removed by the %(days)d-day retention rule.")
                % {"outputs": outputs, "cutoff": f"{cutoff:%Y-%m-%d %H:%M}", "days": account.retention_days},
                account_id=account.pk, account_name=account.name, task_id=task.pk, ark_id=task.ark_id,
            )  # fmt: skip
        # Files go only once the rows say so: a crash in between leaves a file too many,
        # never a record pointing at nothing without saying why.
        transaction.on_commit(lambda: _delete_files(gone))
    return len(gone), sum(artifact.size or 0 for artifact in gone)


def _delete_files(artifacts: list[Artifact]) -> None:
    for artifact in artifacts:
        if artifact.storage_key:
            try:
                storage.delete(artifact.storage_key)
            except Exception:  # noqa: BLE001 - a leftover file is harmless; the next output must still go
                logger.exception("retention could not delete archived file %s", artifact.storage_key)
        pictures.picture_delete_for_artifact(artifact_id=artifact.pk)


def archive_usage_snapshot(*, now: datetime | None = None) -> int:
    """Write today's storage used per account (one row per account and day, rewritten)."""
    now = now or timezone.now()
    day = timezone.localdate(now)
    stored = {
        row["task__account_id"]: row
        for row in Artifact.objects.filter(state=ArtifactState.ARCHIVED, removed_at__isnull=True)
        .order_by()
        .values("task__account_id")
        .annotate(total=Sum("size"), n=Count("id"))
    }
    written = 0
    for account_id in Account.objects.values_list("pk", flat=True):
        row = stored.get(account_id, {})
        ArchiveUsageSnapshot.objects.update_or_create(
            account_id=account_id, day=day,
            defaults={"bytes_stored": row.get("total") or 0, "outputs_stored": row.get("n") or 0},
        )  # fmt: skip
        written += 1
    return written


def _nobody():
    from django.contrib.auth.models import AnonymousUser

    return AnonymousUser()
