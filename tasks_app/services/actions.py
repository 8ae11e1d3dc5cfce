"""What a person can do to a task from the dashboard: cancel it, delete Ark's record.

Each action checks Ark's state table against the mirror first, so a request that Ark
would refuse is explained without any upstream call:

    queued                      -> cancel (Ark turns it cancelled)
    succeeded, failed, expired  -> delete record (Ark forgets it)
    running, cancelled          -> refused, with the reason

Then it calls DELETE, records what Ark says afterwards in the mirror, and returns a
result carrying a message written for the person who clicked.

Only operators of the task's account (and superusers) may act; anyone else gets a
"forbidden" result and no call is made. Every attempt, refusals included, leaves an
AuditEntry: who, when, which task, the result.

"Delete record" deletes the record upstream and keeps the local row, marked as gone
upstream: history and archived outputs outlive Ark's 7-day window. `remove_local=True`
also removes the row, its artifacts and their archived files from ArkDash.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.files.storage import storages
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ..ark import ArkBadRequestError, ArkDeleteRefusedError, ArkError, ArkNotFoundError, ArkTask
from ..lib.crypto import SecretDecryptError
from ..models import (
    FINISHED_STATUSES,
    AuditAction,
    AuditEntry,
    AuditResult,
    Picture,
    Task,
    TaskStatus,
)
from ..ratelimit import RateLimitWaitTooLong
from ..selectors import can_operate, outputs_unarchived
from . import insights_rollup
from .accounts import client_for
from .sync import task_upsert_from_ark

logger = logging.getLogger(__name__)

User = AbstractBaseUser | AnonymousUser
# A click must not hang behind the sync's queue for the account's upstream budget.
ACTION_MAX_RATE_WAIT_SECONDS = 5.0
ACTION_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    # cancelled | deleted | removed | refused | forbidden | needs_confirmation | gone | error
    code: str
    message: str
    task: Task | None  # None once removed locally


@dataclass
class BulkCancelReport:
    cancelled: int = 0
    refused: int = 0
    failed: int = 0
    results: list[ActionResult] = field(default_factory=list)

    @property
    def message(self) -> str:
        parts = [ngettext("%(n)d task cancelled.", "%(n)d tasks cancelled.", self.cancelled) % {"n": self.cancelled}]
        if self.refused:
            parts.append(
                ngettext("%(n)d refused (no longer queued).", "%(n)d refused (no longer queued).", self.refused)
                % {"n": self.refused}
            )
        if self.failed:
            parts.append(
                ngettext("%(n)d failed: try again.", "%(n)d failed: try again.", self.failed) % {"n": self.failed}
            )
        return " ".join(parts)


def _refusal_reason(task: Task, action: str) -> str | None:
    """Why Ark's state table forbids `action` on the task as the mirror knows it."""
    if task.gone_upstream_at is not None:
        return _("This task no longer exists on Ark (deleted or older than Ark's 7-day window).")
    status = task.status
    if action == "cancel":
        if status == TaskStatus.QUEUED:
            return None
        if status == TaskStatus.RUNNING:
            return _("It is already running: Ark can only cancel tasks that are still queued.")
        if status == TaskStatus.CANCELLED:
            return _("It is already cancelled.")
        return _("It has already finished (%(status)s): there is nothing to cancel.") % {
            "status": task.get_status_display()
        }
    if status in FINISHED_STATUSES:
        return None
    if status == TaskStatus.QUEUED:
        return _("It is still queued: cancel it instead.")
    if status == TaskStatus.RUNNING:
        return _("It is running: Ark keeps the record of a running task until it finishes.")
    return _("It is cancelled: Ark removes cancelled tasks by itself 24 hours after the cancel.")


def task_cancel(*, task: Task, user: User) -> ActionResult:
    """Cancel a queued task on Ark and record the outcome in the mirror (and the audit log)."""
    return _audited(AuditAction.CANCEL, task, user, lambda: _cancel(task, user))


def _cancel(task: Task, user: User) -> ActionResult:
    if not can_operate(user=user, account_id=task.account_id):
        return _forbidden(task)
    reason = _refusal_reason(task, "cancel")
    if reason:
        return ActionResult(False, "refused", _("Not cancelled: %(reason)s") % {"reason": reason}, task)
    logger.info("user %s cancels task %s (account %s)", getattr(user, "pk", None), task.ark_id, task.account_id)
    try:
        with _client(task) as client:
            try:
                ark_task = client.delete_task(task.ark_id)
            except ArkBadRequestError as refusal:
                return _explain_cancel_refusal(task, client, refusal)
    except (ArkError, RateLimitWaitTooLong, SecretDecryptError) as error:
        return _upstream_failure(task, error, _("Not cancelled"))
    if ark_task is None:
        task = _mark_gone(task)
        return ActionResult(False, "gone", _("Not cancelled: Ark no longer has this task."), task)
    task = _mirror(task, ark_task)
    if task.status == TaskStatus.CANCELLED:
        return ActionResult(True, "cancelled", _("Cancelled."), task)
    return ActionResult(
        False, "refused", _("Not cancelled: Ark now reports it as %(status)s.") % {"status": task.get_status_display()},
        task,
    )


def _explain_cancel_refusal(task: Task, client, refusal: ArkBadRequestError) -> ActionResult:
    """Ark said no: re-read the task so the row shows why (usually: it started running).

    The client has already re-read it when the refusal is the state table's (whichever of
    400, 403 or 409 Ark used): the message is then the same plain reason for each.
    """
    if isinstance(refusal, ArkDeleteRefusedError) and isinstance(refusal.task, ArkTask):
        task = _mirror(task, refusal.task)
    else:
        try:
            task = _mirror(task, client.get_task(task.ark_id))
        except ArkNotFoundError:
            task = _mark_gone(task)
        except ArkError:
            logger.warning("re-reading %s after a refused cancel failed", task.ark_id)
    reason = None if task.status == TaskStatus.QUEUED else _refusal_reason(task, "cancel")
    message = _("Ark refused to cancel: %(reason)s") % {"reason": reason or refusal.message}
    return ActionResult(False, "refused", message, task)


def task_delete(*, task: Task, user: User, confirm_unarchived: bool, remove_local: bool = False) -> ActionResult:
    """Delete Ark's record of a finished task; keep (or, on request, remove) the local row.

    A succeeded task whose outputs are not archived needs `confirm_unarchived`: Ark's
    record may be the only way to reach those outputs.
    """
    return _audited(
        AuditAction.DELETE, task, user, lambda: _delete(task, user, confirm_unarchived, remove_local)
    )


def _delete(task: Task, user: User, confirm_unarchived: bool, remove_local: bool) -> ActionResult:
    if not can_operate(user=user, account_id=task.account_id):
        return _forbidden(task)
    if task.gone_upstream_at is not None and remove_local:
        return _remove_local(task, user)
    reason = _refusal_reason(task, "delete")
    if reason:
        return ActionResult(False, "refused", _("Not deleted: %(reason)s") % {"reason": reason}, task)
    if outputs_unarchived(task) and not confirm_unarchived:
        return ActionResult(
            False,
            "needs_confirmation",
            _("Its outputs are not archived yet: deleting Ark's record may lose them for good. Confirm to delete anyway."),
            task,
        )
    logger.info("user %s deletes the Ark record of %s (account %s)", getattr(user, "pk", None), task.ark_id,
                task.account_id)
    try:
        with _client(task) as client:
            ark_task = client.delete_task(task.ark_id)
    except ArkDeleteRefusedError as refusal:
        if isinstance(refusal.task, ArkTask):
            task = _mirror(task, refusal.task)
        reason = _refusal_reason(task, "delete") or refusal.message
        return ActionResult(False, "refused", _("Ark refused to delete: %(reason)s") % {"reason": reason}, task)
    except ArkBadRequestError as refusal:
        return ActionResult(False, "refused", _("Ark refused to delete: %(reason)s") % {"reason": refusal.message}, task)
    except (ArkError, RateLimitWaitTooLong, SecretDecryptError) as error:
        return _upstream_failure(task, error, _("Not deleted"))
    if ark_task is not None:  # Ark still has it: record what it says and report
        task = _mirror(task, ark_task)
        return ActionResult(
            False, "refused",
            _("Not deleted: Ark still reports it as %(status)s.") % {"status": task.get_status_display()}, task,
        )
    task = _mark_gone(task)
    if remove_local:
        return _remove_local(task, user)
    return ActionResult(True, "deleted", _("Ark's record deleted. ArkDash keeps its history and archived outputs."), task)


def tasks_cancel_bulk(*, tasks: Iterable[Task], user: User) -> BulkCancelReport:
    """Cancel every queued task among `tasks`; the others count as refused without a call.

    The audit log gets one entry per task and one summary entry for the whole action.
    """
    report = BulkCancelReport()
    for task in tasks:
        result = _audited(AuditAction.BULK_CANCEL, task, user, lambda task=task: _cancel(task, user))
        report.results.append(result)
        if result.ok:
            report.cancelled += 1
        elif result.code in ("refused", "gone", "forbidden"):
            report.refused += 1
        else:
            report.failed += 1
    if report.failed:
        summary = AuditResult.FAILED
    elif report.refused:
        summary = AuditResult.REFUSED
    else:
        summary = AuditResult.DONE
    _audit_write(
        user=user, action=AuditAction.BULK_CANCEL, result=summary, code="summary", message=report.message,
        account_id=None, account_name="", task_id=None, ark_id="",
    )
    return report


@dataclass
class BulkDeleteReport:
    """What a bulk "delete record" or "remove from ArkDash" did, task by task."""

    done: int = 0
    needs_confirmation: int = 0
    refused: int = 0
    failed: int = 0
    results: list[ActionResult] = field(default_factory=list)

    def count(self, result: ActionResult) -> None:
        self.results.append(result)
        if result.ok:
            self.done += 1
        elif result.code == "needs_confirmation":
            self.needs_confirmation += 1
        elif result.code in ("refused", "gone", "forbidden"):
            self.refused += 1
        else:
            self.failed += 1

    @property
    def summary_result(self) -> str:
        if self.failed:
            return AuditResult.FAILED
        if self.refused or self.needs_confirmation:
            return AuditResult.REFUSED
        return AuditResult.DONE

    def message_for(self, action: str) -> str:
        if action == AuditAction.BULK_REMOVE:
            done = ngettext("%(n)d task removed from ArkDash.", "%(n)d tasks removed from ArkDash.", self.done)
        else:
            done = ngettext("%(n)d Ark record deleted.", "%(n)d Ark records deleted.", self.done)
        parts = [done % {"n": self.done}]
        if self.needs_confirmation:
            parts.append(
                ngettext(
                    "%(n)d kept: its outputs are not archived and that was not confirmed.",
                    "%(n)d kept: their outputs are not archived and that was not confirmed.",
                    self.needs_confirmation,
                )
                % {"n": self.needs_confirmation}
            )
        if self.refused:
            parts.append(ngettext("%(n)d refused.", "%(n)d refused.", self.refused) % {"n": self.refused})
        if self.failed:
            parts.append(
                ngettext("%(n)d failed: try again.", "%(n)d failed: try again.", self.failed) % {"n": self.failed}
            )
        return " ".join(parts)


def tasks_delete_bulk(*, tasks: Iterable[Task], user: User, confirm_unarchived: bool) -> BulkDeleteReport:
    """Delete Ark's record of every finished task among `tasks`, one by one, as the single
    delete does (state table, second confirmation for unarchived outputs, audit per task).

    Tasks whose outputs are not archived are not deleted unless `confirm_unarchived`. The audit
    log gets one entry per task and one summary entry.
    """
    report = BulkDeleteReport()
    for task in tasks:
        report.count(_audited(
            AuditAction.BULK_DELETE, task, user,
            lambda task=task: _delete(task, user, confirm_unarchived, remove_local=False),
        ))  # fmt: skip
    _audit_summary(AuditAction.BULK_DELETE, report, user)
    return report


def tasks_remove_bulk(*, tasks: Iterable[Task], user: User) -> BulkDeleteReport:
    """Remove from ArkDash every task among `tasks` that Ark no longer has: its row, its
    outputs' records and their archived files (as the single "remove" does). A task Ark
    still has is refused: its record must be deleted upstream first."""
    report = BulkDeleteReport()
    for task in tasks:
        report.count(_audited(AuditAction.BULK_REMOVE, task, user, lambda task=task: _remove_gone(task, user)))
    _audit_summary(AuditAction.BULK_REMOVE, report, user)
    return report


def _remove_gone(task: Task, user: User) -> ActionResult:
    if not can_operate(user=user, account_id=task.account_id):
        return _forbidden(task)
    if task.gone_upstream_at is None:
        return ActionResult(
            False, "refused", _("Not removed: Ark still has this task; delete its record first."), task
        )
    return _remove_local(task, user)


def _audit_summary(action: str, report: BulkDeleteReport, user: User) -> None:
    _audit_write(
        user=user, action=action, result=report.summary_result, code="summary", message=report.message_for(action),
        account_id=None, account_name="", task_id=None, ark_id="",
    )


# --- audit -----------------------------------------------------------------------------


def _audited(action: str, task: Task, user: User, act: Callable[[], ActionResult]) -> ActionResult:
    """Run `act` and record the attempt, whatever its outcome (an unexpected error too)."""
    # Snapshots taken first: a removed task has no row to point at afterwards.
    account_id, account_name, ark_id, task_id = task.account_id, task.account.name, task.ark_id, task.pk
    try:
        result = act()
    except Exception as error:
        _audit_write(user=user, action=action, result=AuditResult.FAILED, code="error",
                     message=f"unexpected error: {type(error).__name__}", account_id=account_id,
                     account_name=account_name, task_id=task_id, ark_id=ark_id)
        raise
    _audit_write(
        user=user, action=action, result=_audit_result(result), code=result.code, message=result.message,
        account_id=account_id, account_name=account_name,
        task_id=task_id if result.task is not None else None, ark_id=ark_id,
    )
    return result


def audit_write(*, user: User, action: str, result: str, code: str, message: str, account_id: int | None,
                account_name: str, task_id: int | None, ark_id: str) -> None:
    """One audit entry, for the other services that act on tasks (archive control, retention)."""
    _audit_write(user=user, action=action, result=result, code=code, message=message, account_id=account_id,
                 account_name=account_name, task_id=task_id, ark_id=ark_id)


def _audit_result(result: ActionResult) -> str:
    if result.ok:
        return AuditResult.DONE
    if result.code == "error":
        return AuditResult.FAILED
    return AuditResult.REFUSED  # refused, forbidden, gone, needs_confirmation


def _audit_write(*, user: User, action: str, result: str, code: str, message: str, account_id: int | None,
                 account_name: str, task_id: int | None, ark_id: str) -> None:
    authenticated = bool(getattr(user, "is_authenticated", False))
    AuditEntry.objects.create(
        user_id=user.pk if authenticated else None,
        username=user.get_username() if authenticated else "",
        account_id=account_id,
        account_name=account_name,
        task_id=task_id,
        ark_id=ark_id,
        action=action,
        result=result,
        code=code,
        message=message[:2000],
    )


# --- helpers -------------------------------------------------------------------------


def _client(task: Task):
    return client_for(task.account, timeout=ACTION_TIMEOUT_SECONDS, max_rate_wait=ACTION_MAX_RATE_WAIT_SECONDS)


def _forbidden(task: Task) -> ActionResult:
    return ActionResult(
        False, "forbidden",
        _("You can see this account's tasks but not cancel or delete them: ask an admin for the operator role."),
        task,
    )


def _mirror(task: Task, ark_task: ArkTask) -> Task:
    mirrored, _changed = task_upsert_from_ark(account=task.account, ark_task=ark_task)
    return mirrored


def _mark_gone(task: Task) -> Task:
    # changed_at must be written too, so live pages pick the change up.
    task.gone_upstream_at = timezone.now()
    task.save(update_fields=["gone_upstream_at", "changed_at"])
    return task


def _upstream_failure(task: Task, error: Exception, prefix: str) -> ActionResult:
    if isinstance(error, RateLimitWaitTooLong):
        detail = _("Ark's request budget for this account is used up for a few seconds. Try again shortly.")
    elif isinstance(error, SecretDecryptError):
        detail = _("The account's API key cannot be decrypted: check ARKDASH_ENCRYPTION_KEYS.")
    else:
        detail = _("Ark could not be reached or answered with an error (%(error)s). Nothing changed; try again.") % {
            "error": str(error)[:200]
        }
    logger.warning("%s on %s failed: %s", prefix, task.ark_id, error)
    return ActionResult(False, "error", f"{prefix}: {detail}", task)


def _remove_local(task: Task, user: User) -> ActionResult:
    """Forget the task in ArkDash too: its row, its artifacts, their archived files and its picture."""
    keys = [key for key in task.artifacts.values_list("storage_key", flat=True) if key]
    keys += Picture.objects.filter(task=task).values_list("storage_key", flat=True)
    ark_id = task.ark_id
    with transaction.atomic():
        insights_rollup.task_removal_mark(task)  # the row is gone: changed_at cannot tell the rollup
        task.delete()
        # Files go only once the rows are surely gone.
        transaction.on_commit(lambda: _delete_archived_files(keys))
    logger.info("user %s removed task %s from ArkDash", getattr(user, "pk", None), ark_id)
    return ActionResult(True, "removed", _("%(id)s removed from ArkDash.") % {"id": ark_id}, None)


def _delete_archived_files(keys: list[str]) -> None:
    archive = storages["archive"]
    for key in keys:
        try:
            archive.delete(key)
        except Exception:  # a leftover file is harmless; a 500 after the delete is not
            logger.exception("could not delete archived file %s", key)
