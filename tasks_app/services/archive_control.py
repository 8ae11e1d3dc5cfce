"""Archive control from the browser: "retry now" on one output, "retry all failed" for a filter.

A retry puts the output back to pending (its attempt count stays, so the give-up limit
still holds) with a conditional UPDATE: of two clicks, or a click and a worker, only one
wins. The copy is queued once the transaction commits, and the worker takes it with its
own conditional claim, as for any other copy.

What can be retried:
    failed                                -> yes (the backoff is skipped)
    lost, the output URL not yet expired  -> yes (Ark's link may still answer)
    lost and expired, pending, copying, archived -> refused with the reason

Only operators of the task's account may retry; every attempt, refusals included,
leaves an AuditEntry (action "archive_retry").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ..models import Artifact, ArtifactOutput, ArtifactState, AuditAction, AuditResult, Task
from ..selectors import User, can_operate
from . import archive
from .actions import audit_write

logger = logging.getLogger(__name__)

# "Retry all failed" of one filter touches at most this many outputs per click.
RETRY_BULK_LIMIT = 1000


@dataclass(frozen=True)
class RetryResult:
    ok: bool
    code: str  # queued | refused | forbidden
    message: str
    artifact: Artifact


@dataclass
class RetryReport:
    queued: int = 0
    refused: int = 0
    results: list[RetryResult] = field(default_factory=list)

    @property
    def message(self) -> str:
        parts = [
            ngettext("%(n)d output queued for another copy.", "%(n)d outputs queued for another copy.", self.queued)
            % {"n": self.queued}
        ]
        if self.refused:
            parts.append(
                ngettext("%(n)d could not be retried.", "%(n)d could not be retried.", self.refused)
                % {"n": self.refused}
            )
        return " ".join(parts)


def retryable_now(*, now=None) -> Q:
    """The outputs a person may send back to the queue (see the module docstring)."""
    now = now or timezone.now()
    lost_in_time = Q(state=ArtifactState.LOST, deadline__gt=now) & ~Q(output=ArtifactOutput.MODEL_FILE)
    return Q(state=ArtifactState.FAILED) | lost_in_time


def _refusal_reason(artifact: Artifact) -> str:
    if artifact.state == ArtifactState.ARCHIVED:
        return _("It is already archived.")
    if artifact.state in (ArtifactState.PENDING, ArtifactState.COPYING):
        return _("It is already waiting for or in a copy.")
    if artifact.output == ArtifactOutput.MODEL_FILE:
        return _("The 3D preview is made from the archived zip, not copied from Ark: there is nothing to fetch again.")
    return _("Ark's link to this output has expired: there is nothing left to copy.")


def artifact_retry(*, artifact: Artifact, user: User) -> RetryResult:
    """Send one failed (or lost but not yet expired) output back to the queue, now."""
    task = artifact.task
    result = _retry(artifact, user)
    audit_write(
        user=user, action=AuditAction.ARCHIVE_RETRY,
        result=AuditResult.DONE if result.ok else AuditResult.REFUSED, code=result.code,
        message=f"{artifact.output}: {result.message}", account_id=task.account_id, account_name=task.account.name,
        task_id=task.pk, ark_id=task.ark_id,
    )  # fmt: skip
    return result


def _retry(artifact: Artifact, user: User) -> RetryResult:
    if not can_operate(user=user, account_id=artifact.task.account_id):
        return RetryResult(
            False, "forbidden",
            _("You can see this account's outputs but not retry them: ask an admin for the operator role."), artifact,
        )  # fmt: skip
    with transaction.atomic():
        reset = _reset(Artifact.objects.filter(pk=artifact.pk))
        if reset:
            archive.task_archive_state_refresh(task_id=artifact.task_id)
            archive.artifacts_enqueue([artifact.pk])
    artifact.refresh_from_db()
    if not reset:
        reason = _refusal_reason(artifact)
        return RetryResult(False, "refused", _("Not retried: %(reason)s") % {"reason": reason}, artifact)
    logger.info("user %s retries the archive of artifact %s", getattr(user, "pk", None), artifact.pk)
    return RetryResult(True, "queued", _("Queued for another copy."), artifact)


def _reset(artifacts: QuerySet[Artifact]) -> int:
    """Back to pending, due now; the attempt count stays. Conditional: only retryable rows change."""
    now = timezone.now()
    return artifacts.filter(retryable_now(now=now)).update(
        state=ArtifactState.PENDING, next_attempt_at=now, claim_token="", claimed_at=None, bytes_copied=0,
    )


def artifacts_retry_failed(*, tasks: QuerySet[Task], user: User) -> RetryReport:
    """Retry every failed output of `tasks` (the list's filter) the user may operate.

    Outputs of accounts the user only sees are refused (and audited) one by one.
    """
    report = RetryReport()
    failed = list(
        Artifact.objects.filter(task__in=tasks.order_by().values("pk"), state=ArtifactState.FAILED)
        .select_related("task__account")
        .order_by("deadline", "pk")[:RETRY_BULK_LIMIT]
    )
    for artifact in failed:
        result = artifact_retry(artifact=artifact, user=user)
        report.results.append(result)
        if result.ok:
            report.queued += 1
        else:
            report.refused += 1
    audit_write(
        user=user, action=AuditAction.ARCHIVE_RETRY,
        result=AuditResult.REFUSED if report.refused else AuditResult.DONE, code="summary", message=report.message,
        account_id=None, account_name="", task_id=None, ark_id="",
    )  # fmt: skip
    return report
