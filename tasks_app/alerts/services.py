"""Alerts' writes: finding events in the mirror, recording deliveries, sending notifications.

One Celery beat job (tasks_app.tasks.alerts_scan) runs `alerts_scan` every
ARKDASH_ALERT_SCAN_SECONDS. It reads indexed columns only (failed tasks changed since the
last scan, lost outputs without an event, unarchived outputs near their deadline through the
archive's own partial index, accounts' failing_since, queued counts) and records each event
under a stable key with a unique constraint: two scans, on two workers, record it once.

An event reaches a channel through one Delivery row, unique on (event, channel). A sender
takes the channel's waiting deliveries with a conditional update (notification IS NULL),
so two workers never take the same one, and everything waiting goes out as one message: a
burst of 200 failures is one digest. A notification is sent by whoever claims it (as the
archive's claim), retried with backoff on 5xx, 429 and timeouts, and given up on any other
answer or after ARKDASH_ALERT_MAX_ATTEMPTS.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ..models import Account, Artifact, ArtifactOutput, ArtifactState, Task, TaskStatus
from . import channels
from .models import (
    AlertChannel,
    AlertEvent,
    AlertRule,
    ChannelKind,
    Delivery,
    EventKind,
    Notification,
    NotificationState,
    ScanMark,
)

logger = logging.getLogger(__name__)

# A task's change is committed a little after changed_at is set: each scan reads back this
# far before its mark, and the events' unique keys drop what was already recorded.
SCAN_OVERLAP = timedelta(minutes=10)
# Lines a digest lists before saying "and N more".
DIGEST_LINES = 30
# Events one message carries at most; the rest go in the next one.
DIGEST_MAX_EVENTS = 1000
FAILED_MARK = "task_failed"


class AlertError(Exception):
    """A refused alert action, with a message for the person."""


# --- finding events -----------------------------------------------------------------------------


@dataclass
class ScanReport:
    events: int = 0
    deliveries: int = 0
    channels: list[int] = field(default_factory=list)


def alerts_scan(*, now: datetime | None = None) -> ScanReport:
    """Record the events the enabled rules ask for, their deliveries, and queue the senders."""
    now = now or timezone.now()
    rules = list(AlertRule.objects.filter(enabled=True, channel__enabled=True))
    report = ScanReport()
    candidates: list[AlertEvent] = []
    with translation.override(settings.LANGUAGE_CODE):
        candidates += _failed_tasks(rules, now=now)
        candidates += _lost_outputs(rules, now=now)
        candidates += _outputs_at_risk(rules, now=now)
        candidates += _sync_down(rules, now=now)
        candidates += _queues_near_cap(rules, now=now)
    wanted = [event for event in candidates if any(_matches(rule, event) for rule in rules)]
    if wanted:
        report.events = len(AlertEvent.objects.bulk_create(wanted, ignore_conflicts=True))
        deliveries = []
        for chunk in _chunks([event.key for event in wanted], 1000):
            for event in AlertEvent.objects.filter(key__in=chunk):
                deliveries += [Delivery(event=event, channel_id=rule.channel_id) for rule in rules
                               if _matches(rule, event)]
        Delivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        report.deliveries = len(deliveries)
    # Only once what it found is recorded: a scan that fails half-way is redone from the old mark.
    _advance_mark(FAILED_MARK, now)
    # A disabled channel's waiting deliveries stay waiting: they go out if it is enabled again.
    report.channels = sorted(set(
        Delivery.objects.filter(notification__isnull=True, channel__enabled=True)
        .values_list("channel_id", flat=True).distinct()
    ))
    _enqueue_channels(report.channels)
    _enqueue_due_notifications(now=now)
    return report


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _matches(rule: AlertRule, event: AlertEvent) -> bool:
    """Does `rule` ask for `event`? Only what happened after the rule was made."""
    if rule.account_id != event.account_id or rule.event != event.kind or event.occurred_at < rule.created:
        return False
    if rule.threshold is not None and event.threshold != rule.threshold:
        return False
    if event.kind == EventKind.TASK_FAILED:
        if rule.error_code and event.details.get("error_code") != rule.error_code:
            return False
        if rule.model and event.details.get("model") != rule.model:
            return False
    return True


def _accounts(rules: list[AlertRule], kind: str) -> set[int]:
    return {rule.account_id for rule in rules if rule.event == kind}


def _failed_tasks(rules: list[AlertRule], *, now: datetime) -> list[AlertEvent]:
    accounts = _accounts(rules, EventKind.TASK_FAILED)
    if not accounts:
        return []
    mark = ScanMark.objects.filter(name=FAILED_MARK).values_list("until", flat=True).first()
    since = (mark or now) - SCAN_OVERLAP
    # Task.changed_at is indexed and bumped on every write, a turn to failed included.
    # Tasks already recorded are left out: the overlap re-reads them for ten minutes.
    recorded = AlertEvent.objects.filter(task=OuterRef("pk"), kind=EventKind.TASK_FAILED)
    rows = (
        Task.objects.filter(changed_at__gte=since, status=TaskStatus.FAILED, account_id__in=sorted(accounts))
        .exclude(Exists(recorded))
        .select_related("account")
        .only("pk", "ark_id", "model", "error_code", "error_message", "finished_at", "ark_updated_at",
              "first_seen_at", "account__name", "account_id")
    )
    return [
        AlertEvent(
            key=f"{EventKind.TASK_FAILED}:{task.pk}",
            account_id=task.account_id,
            kind=EventKind.TASK_FAILED,
            task_id=task.pk,
            occurred_at=task.finished_at or task.ark_updated_at or task.first_seen_at,
            summary=_("Task %(task)s failed on account %(account)s (model %(model)s): %(code)s") % {
                "task": task.ark_id, "account": task.account.name, "model": task.model or "?",
                "code": task.error_code or _("no error code"),
            },
            details={"task": task.ark_id, "model": task.model, "error_code": task.error_code,
                     "error_message": task.error_message[:500]},
        )
        for task in rows
    ]


def _advance_mark(name: str, now: datetime) -> None:
    if not ScanMark.objects.filter(name=name).update(until=now):
        try:
            with transaction.atomic():
                ScanMark.objects.create(name=name, until=now)
        except IntegrityError:
            ScanMark.objects.filter(name=name).update(until=now)  # another scan made it first


def _artifact_event(artifact: Artifact, *, kind: str, key: str, occurred_at: datetime, summary: str,
                    threshold: int | None = None) -> AlertEvent:
    return AlertEvent(
        key=key, account_id=artifact.task.account_id, kind=kind, task_id=artifact.task_id, artifact_id=artifact.pk,
        threshold=threshold, occurred_at=occurred_at, summary=summary,
        details={"task": artifact.task.ark_id, "output": artifact.output, "model": artifact.task.model,
                 "deadline": artifact.deadline.isoformat() if artifact.deadline else None,
                 "last_error": artifact.last_error[:500]},
    )


def _lost_outputs(rules: list[AlertRule], *, now: datetime) -> list[AlertEvent]:
    accounts = _accounts(rules, EventKind.OUTPUT_LOST)
    if not accounts:
        return []
    recorded = AlertEvent.objects.filter(artifact=OuterRef("pk"), kind=EventKind.OUTPUT_LOST)
    # The 3D preview is ArkDash's own extraction, not an output Ark made: it is not counted.
    rows = (
        Artifact.objects.filter(state=ArtifactState.LOST, task__account_id__in=sorted(accounts))
        .exclude(output=ArtifactOutput.MODEL_FILE)
        .exclude(Exists(recorded))
        .select_related("task", "task__account")
    )
    events = []
    for artifact in rows:
        # When it was lost: the archive clears the claim as it marks an output lost, but the
        # task's archive state changes with it (task_archive_state_refresh bumps changed_at).
        occurred = min(artifact.task.changed_at, now)
        events.append(_artifact_event(
            artifact, kind=EventKind.OUTPUT_LOST, key=f"{EventKind.OUTPUT_LOST}:{artifact.pk}", occurred_at=occurred,
            summary=_("Output %(output)s of task %(task)s on account %(account)s was lost: %(why)s") % {
                "output": artifact.output, "task": artifact.task.ark_id, "account": artifact.task.account.name,
                "why": artifact.lost_explanation,
            },
        ))
    return events


def _outputs_at_risk(rules: list[AlertRule], *, now: datetime) -> list[AlertEvent]:
    events = []
    by_hours: dict[int, set[int]] = {}
    for rule in rules:
        if rule.event == EventKind.OUTPUT_AT_RISK:
            by_hours.setdefault(rule.at_risk_hours, set()).add(rule.account_id)
    for hours, accounts in sorted(by_hours.items()):
        recorded = AlertEvent.objects.filter(artifact=OuterRef("pk"), kind=EventKind.OUTPUT_AT_RISK, threshold=hours)
        # Same condition as the archive's partial index artifact_unarchived_deadline.
        rows = (
            Artifact.objects.exclude(state__in=[ArtifactState.ARCHIVED, ArtifactState.LOST])
            .filter(deadline__lte=now + timedelta(hours=hours), task__account_id__in=sorted(accounts))
            .exclude(output=ArtifactOutput.MODEL_FILE)
            .exclude(Exists(recorded))
            .select_related("task", "task__account")
            .order_by("deadline")[:DIGEST_MAX_EVENTS]
        )
        for artifact in rows:
            events.append(_artifact_event(
                artifact, kind=EventKind.OUTPUT_AT_RISK, threshold=hours, occurred_at=now,
                key=f"{EventKind.OUTPUT_AT_RISK}:{artifact.pk}:{hours}",
                summary=_("Output %(output)s of task %(task)s on account %(account)s is not archived and its URL "
                          "dies at %(deadline)s") % {
                    "output": artifact.output, "task": artifact.task.ark_id, "account": artifact.task.account.name,
                    "deadline": f"{artifact.deadline:%Y-%m-%d %H:%M} UTC",
                },
            ))
    return events


def _sync_down(rules: list[AlertRule], *, now: datetime) -> list[AlertEvent]:
    events = []
    accounts = {account.pk: account for account in
                Account.objects.filter(pk__in=sorted(_accounts(rules, EventKind.SYNC_DOWN)),
                                       failing_since__isnull=False)}
    minutes_by_account = {(rule.account_id, rule.sync_down_minutes) for rule in rules
                          if rule.event == EventKind.SYNC_DOWN and rule.account_id in accounts}
    for account_id, minutes in sorted(minutes_by_account):
        account = accounts[account_id]
        if account.failing_since > now - timedelta(minutes=minutes):
            continue
        events.append(AlertEvent(
            # One event per outage (failing_since) and threshold, whatever the number of scans.
            key=f"{EventKind.SYNC_DOWN}:{account.pk}:{account.failing_since.timestamp():.6f}:{minutes}",
            account_id=account.pk, kind=EventKind.SYNC_DOWN, threshold=minutes, occurred_at=now,
            summary=_("Sync of account %(account)s has been failing since %(since)s: %(error)s") % {
                "account": account.name, "since": f"{account.failing_since:%Y-%m-%d %H:%M} UTC",
                "error": account.last_sync_error[:300] or "?",
            },
            details={"failing_since": account.failing_since.isoformat(), "error": account.last_sync_error[:500],
                     "consecutive_failures": account.consecutive_failures},
        ))
    return events


def _queues_near_cap(rules: list[AlertRule], *, now: datetime) -> list[AlertEvent]:
    """One event per episode: a new one only after the queue went back under the threshold."""
    thresholds: dict[int, set[int]] = {}
    for rule in rules:
        if rule.event == EventKind.QUEUE_NEAR_CAP:
            thresholds.setdefault(rule.account_id, set()).add(rule.queue_threshold)
    events = []
    for account_id, levels in sorted(thresholds.items()):
        # Counted through the (account, status, ...) index, no further than the highest threshold.
        queued = (Task.objects.filter(account_id=account_id, status=TaskStatus.QUEUED, gone_upstream_at__isnull=True)
                  .values("pk")[:max(levels)].count())
        name = Account.objects.filter(pk=account_id).values_list("name", flat=True).first() or "?"
        for level in sorted(levels):
            episodes = AlertEvent.objects.filter(account_id=account_id, kind=EventKind.QUEUE_NEAR_CAP, threshold=level)
            if queued < level:
                episodes.filter(cleared_at__isnull=True).update(cleared_at=now)
                continue
            if episodes.filter(cleared_at__isnull=True).exists():
                continue
            events.append(AlertEvent(
                key=f"{EventKind.QUEUE_NEAR_CAP}:{account_id}:{level}:{episodes.count() + 1}",
                account_id=account_id, kind=EventKind.QUEUE_NEAR_CAP, threshold=level, occurred_at=now,
                summary=_("Account %(account)s has %(count)d or more queued tasks (Ark allows about 120)") % {
                    "account": name, "count": queued},
                details={"queued": queued, "threshold": level},
            ))
    return events


# --- sending ------------------------------------------------------------------------------------


def _enqueue_channels(channel_ids: list[int]) -> None:
    if not channel_ids:
        return
    from ..tasks import deliver_alerts

    transaction.on_commit(lambda: [deliver_alerts.delay(channel_id) for channel_id in channel_ids])


def _enqueue_send(notification_id: int) -> None:
    from ..tasks import send_alert_notification

    transaction.on_commit(lambda: send_alert_notification.delay(notification_id))


def _enqueue_due_notifications(*, now: datetime) -> None:
    """Lost broker messages and dead workers: re-queue what should have been sent by now."""
    grace = timedelta(seconds=settings.ARKDASH_ALERT_CLAIM_TIMEOUT_SECONDS)
    due = Notification.objects.filter(
        Q(state=NotificationState.PENDING, created__lt=now - grace)
        | Q(state=NotificationState.RETRYING, next_attempt_at__lt=now - grace)
        | Q(state=NotificationState.SENDING, claimed_at__lt=now - grace)
    ).values_list("pk", flat=True)[:100]
    for notification_id in due:
        _enqueue_send(notification_id)


def deliveries_take(*, channel_id: int, now: datetime | None = None) -> Notification | None:
    """Put the channel's waiting deliveries into one new notification (and queue it), or None.

    Waits until the oldest has waited ARKDASH_ALERT_BATCH_SECONDS, so a burst becomes one
    digest. The conditional update (notification IS NULL) gives each delivery to one
    notification only, whatever the number of workers running this at once.
    """
    now = now or timezone.now()
    if not AlertChannel.objects.filter(pk=channel_id, enabled=True).exists():
        return None
    waiting = Delivery.objects.filter(channel_id=channel_id, notification__isnull=True).order_by("created", "pk")
    oldest = waiting.values_list("created", flat=True).first()
    if oldest is None or oldest > now - timedelta(seconds=settings.ARKDASH_ALERT_BATCH_SECONDS):
        return None
    ids = list(waiting.values_list("pk", flat=True)[:DIGEST_MAX_EVENTS])
    with transaction.atomic():
        notification = Notification.objects.create(channel_id=channel_id)
        taken = Delivery.objects.filter(pk__in=ids, notification__isnull=True).update(notification=notification)
        if not taken:
            notification.delete()  # another worker took them all
            return None
        notification.event_count = taken
        notification.save(update_fields=["event_count"])
        _enqueue_send(notification.pk)
    return notification


def channel_send_test(*, channel: AlertChannel) -> Notification:
    """Queue a test message to the channel; its outcome appears in the history."""
    notification = Notification.objects.create(channel=channel, is_test=True)
    _enqueue_send(notification.pk)
    return notification


def _claim(notification_id: int, *, now: datetime) -> str | None:
    stale = now - timedelta(seconds=settings.ARKDASH_ALERT_CLAIM_TIMEOUT_SECONDS)
    token = secrets.token_hex(16)
    claimed = (
        Notification.objects.filter(pk=notification_id)
        .filter(Q(state__in=[NotificationState.PENDING, NotificationState.RETRYING])
                | Q(state=NotificationState.SENDING, claimed_at__lt=stale))
        .update(state=NotificationState.SENDING, claim_token=token, claimed_at=now, attempts=F("attempts") + 1)
    )
    return token if claimed else None


def backoff_seconds(attempts: int, *, retry_after: float | None = None) -> float:
    """Doubling from ARKDASH_ALERT_BACKOFF_SECONDS, capped; a Retry-After is a floor."""
    base = float(settings.ARKDASH_ALERT_BACKOFF_SECONDS)
    delay = min(base * 2 ** max(attempts - 1, 0), float(settings.ARKDASH_ALERT_MAX_BACKOFF_SECONDS))
    return max(delay, retry_after or 0.0)


def notification_send(*, notification_id: int, now: datetime | None = None) -> Notification:
    """Send one notification if this worker claims it; the notification as it ends up."""
    now = now or timezone.now()
    token = _claim(notification_id, now=now)
    notification = Notification.objects.select_related("channel", "channel__account").get(pk=notification_id)
    if token is None:
        return notification  # sent, given up, or another worker is sending it
    update: dict[str, Any]
    try:
        answer = channels.send(notification.channel, _message(notification))
    except channels.SendError as error:
        gave_up = not error.retryable or notification.attempts >= settings.ARKDASH_ALERT_MAX_ATTEMPTS
        update = {
            "state": NotificationState.FAILED if gave_up else NotificationState.RETRYING,
            "response_status": error.status,
            "response_body": f"{error.message}\n{error.body}".strip()[:channels.ANSWER_MAX_CHARS],
            "next_attempt_at": None if gave_up else timezone.now() + timedelta(
                seconds=backoff_seconds(notification.attempts, retry_after=error.retry_after)),
        }
        logger.warning("alert notification %s to channel %s: %s%s", notification.pk, notification.channel_id,
                       error.message, "" if gave_up else " (will retry)")
    except Exception as error:  # noqa: BLE001 - a bug or a broken secret must not leave it "sending" forever
        logger.exception("alert notification %s failed unexpectedly", notification.pk)
        update = {"state": NotificationState.FAILED, "response_status": None,
                  "response_body": f"unexpected error ({type(error).__name__})", "next_attempt_at": None}
    else:
        update = {"state": NotificationState.SENT, "response_status": answer.status,
                  "response_body": answer.body[:channels.ANSWER_MAX_CHARS], "sent_at": timezone.now(),
                  "next_attempt_at": None}
    Notification.objects.filter(pk=notification.pk, claim_token=token).update(**update)
    notification.refresh_from_db()
    return notification


def _message(notification: Notification) -> channels.Message:
    channel = notification.channel
    with translation.override(settings.LANGUAGE_CODE):
        if notification.is_test:
            text = _("Test message from ArkDash for channel “%(channel)s” (account %(account)s): "
                     "alerts will arrive like this.") % {"channel": channel.name, "account": channel.account.name}
            return channels.Message(notification_id=notification.pk, subject=_("[ArkDash] Test message"),
                                    text=text, is_test=True)
        events = list(AlertEvent.objects.filter(deliveries__notification=notification).order_by("occurred_at", "pk"))
        payload = [
            {"key": event.key, "kind": event.kind, "account": channel.account.name,
             "occurred_at": event.occurred_at.isoformat(), "summary": event.summary, "details": event.details}
            for event in events
        ]
        if len(events) == 1:
            subject = _("[ArkDash] %(summary)s") % {"summary": events[0].summary[:150]}
            return channels.Message(notification_id=notification.pk, subject=subject, text=events[0].summary,
                                    events=payload)
        head = ngettext("%(n)d alert on account %(account)s:", "%(n)d alerts on account %(account)s:",
                        len(events)) % {"n": len(events), "account": channel.account.name}
        lines = [f"- {event.summary}" for event in events[:DIGEST_LINES]]
        if len(events) > DIGEST_LINES:
            lines.append(_("… and %(n)d more.") % {"n": len(events) - DIGEST_LINES})
        return channels.Message(notification_id=notification.pk, subject=f"[ArkDash] {head}",
                                text="\n".join([f"[ArkDash] {head}", *lines]), events=payload)


# --- channels and rules, from the admin and the operator page -----------------------------------


def channel_create(*, account: Account, name: str, kind: str, target: str, secret: str,
                   user: AbstractBaseUser | None = None) -> AlertChannel:
    channel = AlertChannel(account=account, name=name, kind=kind, created_by=user if user and user.pk else None)
    channel_set_target(channel=channel, target=target, secret=secret)
    channel.save()
    return channel


def target_problem(*, kind: str, target: str) -> str:
    """Why a target cannot be used for this kind of channel, or ""."""
    if kind == ChannelKind.EMAIL:
        from django.core.exceptions import ValidationError
        from django.core.validators import validate_email

        addresses = [address.strip() for address in channels.email_addresses(target)]
        if not addresses:
            return _("Give at least one e-mail address.")
        try:
            for address in addresses:
                validate_email(address)
        except ValidationError:
            return _("This is not a valid list of e-mail addresses (separate them with commas).")
        return ""
    problem = channels.url_problem(target)
    return _("This webhook URL is refused: %(why)s") % {"why": problem} if problem else ""


def channel_set_target(*, channel: AlertChannel, target: str, secret: str) -> None:
    """Store a new target and/or secret (encrypted); blank keeps what is there."""
    if target:
        if channel.kind == ChannelKind.EMAIL:
            count = len(channels.email_addresses(target))
            hint = ngettext("%(n)d address", "%(n)d addresses", count) % {"n": count}
        else:
            hint = channels.url_hint(target)
        channel.set_target(target, hint=hint)
    if secret:
        channel.set_secret(secret)
