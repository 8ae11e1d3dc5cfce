"""Alert channels and rules, the events found in the mirror, and their deliveries."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from ..lib.crypto import decrypt_secret, encrypt_secret


class ChannelKind(models.TextChoices):
    WEBHOOK = "webhook", _("webhook (signed JSON)")
    FEISHU = "feishu", _("Feishu / Lark custom bot")
    DINGTALK = "dingtalk", _("DingTalk robot")
    SLACK = "slack", _("Slack-compatible incoming webhook")
    EMAIL = "email", _("e-mail")


class EventKind(models.TextChoices):
    TASK_FAILED = "task_failed", _("a task failed")
    OUTPUT_LOST = "output_lost", _("an output was lost")
    OUTPUT_AT_RISK = "output_at_risk", _("an output is at risk")
    SYNC_DOWN = "sync_down", _("sync is failing")
    QUEUE_NEAR_CAP = "queue_near_cap", _("queued tasks near Ark's cap")


class AlertChannel(models.Model):
    """Where an account's alerts go. The target (URL or addresses) and secret are write-only."""

    account = models.ForeignKey(
        "tasks_app.Account", on_delete=models.CASCADE, related_name="alert_channels", verbose_name=_("account")
    )
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=16, choices=ChannelKind.choices)
    # Webhook URL or e-mail addresses, encrypted like an Ark API key (lib/crypto.py).
    target_encrypted = models.TextField(editable=False)
    # What may be shown of the target: the URL's host, or the number of addresses.
    target_hint = models.CharField(_("target"), max_length=200, editable=False)
    # Signing secret (webhook, Feishu, DingTalk), encrypted; empty when not set.
    secret_encrypted = models.TextField(blank=True, editable=False)
    enabled = models.BooleanField(_("enabled"), default=True)
    created = models.DateTimeField(_("created"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )

    class Meta:
        app_label = "tasks_app"
        ordering = ["account__name", "name"]
        verbose_name = _("alert channel")
        verbose_name_plural = _("alert channels")

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def target(self) -> str:
        return decrypt_secret(self.target_encrypted)

    @property
    def secret(self) -> str:
        return decrypt_secret(self.secret_encrypted) if self.secret_encrypted else ""

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_encrypted)

    def set_target(self, plain: str, *, hint: str) -> None:
        self.target_encrypted = encrypt_secret(plain)
        self.target_hint = hint[:200]

    def set_secret(self, plain: str) -> None:
        self.secret_encrypted = encrypt_secret(plain) if plain else ""


class AlertRule(models.Model):
    """"When this happens on this account, tell that channel." Only events after its creation."""

    account = models.ForeignKey(
        "tasks_app.Account", on_delete=models.CASCADE, related_name="alert_rules", verbose_name=_("account")
    )
    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="rules", verbose_name=_("channel"))
    event = models.CharField(_("event"), max_length=20, choices=EventKind.choices)
    # Task failed: only this error code / model when set.
    error_code = models.CharField(_("error code"), max_length=200, blank=True)
    model = models.CharField(_("model"), max_length=128, blank=True)
    # Output at risk: not archived with fewer than this many hours before its URL dies.
    at_risk_hours = models.PositiveIntegerField(_("hours left"), default=2)
    # Sync down: failing for at least this many minutes.
    sync_down_minutes = models.PositiveIntegerField(_("minutes failing"), default=10)
    # Queue near cap: at least this many queued tasks (Ark allows about 120 per account).
    queue_threshold = models.PositiveIntegerField(_("queued tasks"), default=100)
    enabled = models.BooleanField(_("enabled"), default=True)
    created = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        app_label = "tasks_app"
        ordering = ["account__name", "event", "id"]
        verbose_name = _("alert rule")
        verbose_name_plural = _("alert rules")

    def __str__(self) -> str:
        return f"{self.get_event_display()} → {self.channel.name}"

    @property
    def threshold(self) -> int | None:
        """The number that is part of the event's identity for this rule, if any."""
        return {
            EventKind.OUTPUT_AT_RISK: self.at_risk_hours,
            EventKind.SYNC_DOWN: self.sync_down_minutes,
            EventKind.QUEUE_NEAR_CAP: self.queue_threshold,
        }.get(self.event)


class AlertEvent(models.Model):
    """Something that happened, recorded once whatever number of scans saw it (unique key)."""

    # "task_failed:<task pk>", "output_lost:<artifact pk>", "sync_down:<account>:<since>:<minutes>", ...
    key = models.CharField(max_length=200, unique=True)
    account = models.ForeignKey("tasks_app.Account", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(_("event"), max_length=20, choices=EventKind.choices)
    task = models.ForeignKey("tasks_app.Task", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    artifact = models.ForeignKey(
        "tasks_app.Artifact", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The rule's number this event is about (hours left, minutes failing, queued tasks).
    threshold = models.PositiveIntegerField(null=True, blank=True)
    occurred_at = models.DateTimeField(_("occurred"))
    # For the queue near cap: when the count went back under the threshold (a new episode may begin).
    cleared_at = models.DateTimeField(null=True, blank=True)
    summary = models.TextField(_("summary"))
    details = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(_("recorded"), auto_now_add=True, db_index=True)

    class Meta:
        app_label = "tasks_app"
        ordering = ["-created", "-id"]
        verbose_name = _("alert event")
        verbose_name_plural = _("alert events")

    def __str__(self) -> str:
        return self.key


class NotificationState(models.TextChoices):
    PENDING = "pending", _("pending")
    SENDING = "sending", _("sending")
    RETRYING = "retrying", _("failed, will retry")
    SENT = "sent", _("sent")
    FAILED = "failed", _("failed")


class Notification(models.Model):
    """One message to one channel: one event, a digest of many, or a test."""

    channel = models.ForeignKey(
        AlertChannel, on_delete=models.CASCADE, related_name="notifications", verbose_name=_("channel")
    )
    state = models.CharField(_("status"), max_length=16, choices=NotificationState.choices,
                             default=NotificationState.PENDING)
    is_test = models.BooleanField(_("test"), default=False)
    event_count = models.PositiveIntegerField(_("events"), default=0)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Who is sending it and since when (a conditional update sets both, as the archive's claim).
    claim_token = models.CharField(max_length=64, blank=True, editable=False)
    claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    response_status = models.PositiveIntegerField(_("answer status"), null=True, blank=True)
    # The receiver's answer or the error, truncated; never the target URL or a secret.
    response_body = models.TextField(_("answer"), blank=True)
    created = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)

    class Meta:
        app_label = "tasks_app"
        ordering = ["-created", "-id"]
        verbose_name = _("alert notification")
        verbose_name_plural = _("alert notifications")
        indexes = [models.Index(fields=["channel", "-created"], name="alert_notification_channel")]

    def __str__(self) -> str:
        return f"{self.channel.name} #{self.pk} ({self.state})"


class Delivery(models.Model):
    """One event for one channel: unique, so an event reaches a channel at most once.

    It joins a Notification when a sender takes it (a conditional update on
    notification IS NULL: two workers never take the same delivery).
    """

    event = models.ForeignKey(AlertEvent, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="deliveries")
    notification = models.ForeignKey(
        Notification, on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "tasks_app"
        constraints = [models.UniqueConstraint(fields=["event", "channel"], name="alert_delivery_unique")]
        indexes = [
            models.Index(
                fields=["channel", "created"], name="alert_delivery_waiting",
                condition=models.Q(notification__isnull=True),
            ),
        ]
        verbose_name = _("alert delivery")
        verbose_name_plural = _("alert deliveries")

    def __str__(self) -> str:
        return f"{self.event_id} → {self.channel_id}"


class ScanMark(models.Model):
    """How far a scan has read (the failed-task scan reads tasks changed since `until`)."""

    name = models.CharField(max_length=50, unique=True)
    until = models.DateTimeField()

    class Meta:
        app_label = "tasks_app"

    def __str__(self) -> str:
        return f"{self.name} until {self.until:%Y-%m-%d %H:%M:%S}"
