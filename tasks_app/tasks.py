"""Celery tasks: thin wrappers that load by id and call a service."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import DatabaseError
from django.utils import timezone

from tasks_app.ark import ArkError
from tasks_app.lib import storage
from tasks_app.lib.crypto import SecretDecryptError
from tasks_app.models import Account, Artifact, ArtifactState, Task
from tasks_app.observability import metrics
from tasks_app.observability.logging import log_context
from tasks_app.services import archive as archive_service
from tasks_app.services import pictures as pictures_service
from tasks_app.services import sync as sync_service
from tasks_app.services.accounts import account_ensure_default

logger = logging.getLogger(__name__)


# --- Sync ---------------------------------------------------------------------------------


@shared_task(ignore_result=True)
def sync_all_accounts() -> int:
    """Beat's entry point: one sync_account per account, run in parallel by the workers."""
    account_ensure_default()
    account_ids = list(Account.objects.values_list("pk", flat=True))
    for account_id in account_ids:
        sync_account.delay(account_id)
    return len(account_ids)


@shared_task(ignore_result=True)
def sync_account(account_id: int) -> None:
    account = Account.objects.filter(pk=account_id).first()
    if account is None:
        return
    # Another worker holding this account's lease makes this run a no-op (lease_wait=0).
    with log_context(account=account.name):
        report = sync_service.sync_account(account=account)
    # Tasks that appeared or moved reach the insights charts now, not at the next minute's
    # refresh (a first sync's week of history included).
    if report.created or report.updated or report.gone:
        insights_rollup_refresh.delay()


# Ark failing transiently is retried with backoff; a refusal (bad key) is not; a 404
# is no error at all (the task is marked gone).
_REFRESH_MAX_RETRIES = 5


def _retry_refresh(task, error: ArkError | SecretDecryptError) -> None:
    if not getattr(error, "retryable", False):
        logger.warning("refresh %s: Ark refused: %s", task.request.args, error)
        return
    raise task.retry(exc=error, countdown=min(120, 2 ** (task.request.retries + 1)))


@shared_task(bind=True, ignore_result=True, max_retries=_REFRESH_MAX_RETRIES)
def refresh_task(self, task_id: int) -> None:
    """Re-read one mirrored task from Ark (for example after a user action)."""
    task = Task.objects.select_related("account").filter(pk=task_id).first()
    if task is None:
        return
    with log_context(task=task.ark_id, account=task.account.name):
        try:
            sync_service.task_refresh(task=task)
        except (ArkError, SecretDecryptError) as error:
            _retry_refresh(self, error)


@shared_task(bind=True, ignore_result=True, max_retries=_REFRESH_MAX_RETRIES)
def refresh_ark_task(self, account_id: int, ark_id: str) -> None:
    """Re-read a task by its Ark id, creating it in the mirror if new (Ark callbacks)."""
    account = Account.objects.filter(pk=account_id).first()
    if account is None:
        return
    with log_context(task=ark_id, account=account.name):
        try:
            sync_service.task_refresh_by_ark_id(account=account, ark_id=ark_id)
        except (ArkError, SecretDecryptError) as error:
            _retry_refresh(self, error)


@shared_task(ignore_result=True)
def archive_handoff(account_id: int, ark_ids: list[str]) -> int:
    """Create the Artifacts (and queue the copies) of tasks a sync saw turn succeeded."""
    account_name = Account.objects.filter(pk=account_id).values_list("name", flat=True).first()
    with log_context(account=account_name):
        return archive_service.archive_handoff_by_ark_ids(account_id=account_id, ark_ids=ark_ids)


@shared_task(ignore_result=True)
def archive_handoff_sweep() -> int:
    """Hand to the archive every succeeded task whose hand-off a crash interrupted."""
    return archive_service.archive_handoff_sweep()


# --- Archive ------------------------------------------------------------------------------


# Late ack + reject on worker loss: a copy whose worker is killed goes back to the queue;
# the artifact's claim makes a redelivered or duplicated message harmless.
@shared_task(ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def archive_artifact(artifact_id: int) -> str:
    """Copy one output to archive storage; schedules its own retry after a failure."""
    before = (
        Artifact.objects.filter(pk=artifact_id)
        .values("attempts", "task__ark_id", "task__account__name")
        .first()
    )
    if before is None:
        return "gone"  # its task was deleted meanwhile
    with log_context(task=before["task__ark_id"], account=before["task__account__name"], artifact=artifact_id):
        try:
            artifact = archive_service.artifact_archive(artifact_id=artifact_id)
        except Artifact.DoesNotExist:
            return "gone"
    if artifact.attempts > before["attempts"] and artifact.state != ArtifactState.COPYING:
        # This run made an attempt (not a no-op on an archived or claimed artifact): count it.
        metrics.record_archive_attempt(
            output=artifact.output, state=artifact.state, size=artifact.size, last_error=artifact.last_error
        )
    if artifact.state == ArtifactState.FAILED and artifact.next_attempt_at is not None:
        # Eager mode (tests) would run the retry at once, recursively: the sweeper covers it.
        if not archive_artifact.request.is_eager:
            countdown = max(0.0, (artifact.next_attempt_at - timezone.now()).total_seconds())
            archive_artifact.apply_async((artifact_id,), countdown=countdown)
    return artifact.state


@shared_task(ignore_result=True)
def archive_sweep() -> int:
    """Beat: queue every output not archived yet, earliest deadline first."""
    report = archive_service.artifacts_sweep()
    if report.lag_seconds > 3600:
        logger.warning("archive lag is %.0f s", report.lag_seconds)
    return len(report.queued)


@shared_task(ignore_result=True)
def archive_retention() -> int:
    """Beat: apply every account's retention rule and snapshot the storage each one uses."""
    from tasks_app.services.retention import retention_run

    report = retention_run()
    if report.removed:
        logger.info("retention removed %d archived outputs (%d bytes)", report.removed, report.bytes_freed)
    return report.removed


@shared_task(ignore_result=True)
def insights_rollup_refresh() -> int:
    """Beat: recompute the insights rollup's hours changed since the last refresh."""
    from tasks_app.services.insights_rollup import rollup_refresh

    return rollup_refresh().hours

# --- Pictures -----------------------------------------------------------------------------

_PICTURE_MAX_RETRIES = 5


@shared_task(bind=True, ignore_result=True, max_retries=_PICTURE_MAX_RETRIES)
def make_picture(self, artifact_id: int) -> None:
    """Make the gallery picture of an archived output; retried when archive storage or the
    database fails (the picture's object and row are written again under the same key)."""
    try:
        pictures_service.picture_make(artifact_id=artifact_id)
    except (storage.StorageError, DatabaseError) as error:
        logger.warning("picture of artifact %s: %s", artifact_id, error)
        if not self.request.is_eager:
            raise self.retry(exc=error, countdown=30 * (self.request.retries + 1)) from None


@shared_task(ignore_result=True)
def picture_sweep() -> int:
    """Beat: queue again the gallery pictures whose jobs were lost."""
    return pictures_service.picture_sweep()


# --- Gateway ------------------------------------------------------------------------------

# Ark retries a succeeded or failed callback 3 times; the relay does the same.
_RELAY_MAX_RETRIES = 3


@shared_task(bind=True, ignore_result=True, max_retries=_RELAY_MAX_RETRIES)
def relay_gateway_callback(self, task_id: int, reread: bool = False) -> None:
    """Send a gateway task's caller its callback, once ArkDash has re-read the task."""
    from tasks_app.gateway.relay import RelayError, relay_callback

    task = Task.objects.select_related("account").filter(pk=task_id).first()
    if task is None:
        return
    if reread:
        try:
            task = sync_service.task_refresh(task=task)
        except (ArkError, SecretDecryptError) as error:
            _retry_refresh(self, error)
            return
    try:
        relay_callback(task=task)
    except RelayError as error:
        logger.info("relay of %s's callback failed: %s", task.ark_id, error)
        if error.retryable:
            raise self.retry(exc=error, countdown=5 * (self.request.retries + 1)) from None


# --- Alerts ------------------------------------------------------------------------------------


@shared_task(ignore_result=True)
def alerts_scan() -> int:
    """Beat: record new alert events and their deliveries, queue the channels' senders."""
    from tasks_app.alerts import services as alerts_service

    return alerts_service.alerts_scan().events


@shared_task(ignore_result=True)
def deliver_alerts(channel_id: int) -> int | None:
    """Gather a channel's waiting deliveries into one notification (a digest when many)."""
    from tasks_app.alerts import services as alerts_service

    notification = alerts_service.deliveries_take(channel_id=channel_id)
    return notification.pk if notification else None


# Late ack: a killed worker's send is redone (the claim's timeout lets it be taken again).
@shared_task(bind=True, ignore_result=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def send_alert_notification(self, notification_id: int) -> str:
    """Send one notification; 5xx, 429 and timeouts are retried here with backoff."""
    from tasks_app.alerts import services as alerts_service
    from tasks_app.alerts.models import Notification, NotificationState

    try:
        notification = alerts_service.notification_send(notification_id=notification_id)
    except Notification.DoesNotExist:
        return "gone"  # its channel was deleted meanwhile
    if notification.state == NotificationState.RETRYING and notification.next_attempt_at is not None:
        countdown = max(0.0, (notification.next_attempt_at - timezone.now()).total_seconds())
        raise self.retry(countdown=countdown)
    return notification.state
