"""The local mirror of Ark: accounts, their tasks, and the archived outputs."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .lib.crypto import decrypt_secret, encrypt_secret


def _new_callback_secret() -> str:
    return secrets.token_urlsafe(32)


class Account(models.Model):
    """One Ark API key (an Ark project). The key is stored encrypted."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    base_url = models.URLField(_("base URL"), max_length=300)
    api_key_encrypted = models.TextField(editable=False)
    # Unguessable part of this account's callback URL (/hooks/ark/<secret>/).
    callback_secret = models.CharField(max_length=64, unique=True, default=_new_callback_secret, editable=False)
    is_default = models.BooleanField(default=False, help_text=_("Created from ARK_API_KEY."))
    created = models.DateTimeField(auto_now_add=True)

    # Sync health, shown as "synced 3 s ago" / "Ark unreachable since 12:04".
    last_sync_ok_at = models.DateTimeField(null=True, blank=True)
    last_sync_error = models.TextField(blank=True)
    last_sync_error_at = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_full_sweep_at = models.DateTimeField(null=True, blank=True)
    # One sync cycle per account at a time, whatever the number of workers: a lease that
    # a crashed worker cannot hold forever (it expires).
    sync_lease_token = models.CharField(max_length=64, blank=True, editable=False)
    sync_lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    # Several API keys of one Ark account see the same tasks: two Accounts made from them
    # mirror the same task ids. The sync records such pairs here (admin, /healthz).
    shares_tasks_with = models.ManyToManyField(
        "self",
        symmetrical=True,
        blank=True,
        editable=False,
        verbose_name=_("mirrors the same Ark tasks as"),
    )
    # Retention: archived outputs older than this many days are deleted from archive
    # storage by a beat job (services/retention.py). Empty: never deleted (the default).
    retention_days = models.PositiveIntegerField(
        _("delete archived outputs after (days)"),
        null=True,
        blank=True,
        help_text=_("Leave empty to keep archived outputs forever."),
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("account")
        verbose_name_plural = _("accounts")

    def __str__(self) -> str:
        return self.name

    @property
    def api_key(self) -> str:
        return decrypt_secret(self.api_key_encrypted)

    def set_api_key(self, plain: str) -> None:
        self.api_key_encrypted = encrypt_secret(plain)


class TaskStatus(models.TextChoices):
    QUEUED = "queued", _("queued")
    RUNNING = "running", _("running")
    SUCCEEDED = "succeeded", _("succeeded")
    FAILED = "failed", _("failed")
    EXPIRED = "expired", _("expired")
    CANCELLED = "cancelled", _("cancelled")


ACTIVE_STATUSES = (TaskStatus.QUEUED, TaskStatus.RUNNING)
FINISHED_STATUSES = (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.EXPIRED)


class TaskKind(models.TextChoices):
    VIDEO = "video", _("video")
    MODEL_3D = "3d", _("3D")


class ArchiveState(models.TextChoices):
    """Summary of a task's artifacts, stored on the task so the list can filter on it."""

    NONE = "none", _("nothing to archive")
    PENDING = "pending", _("pending")
    COPYING = "copying", _("copying")
    ARCHIVED = "archived", _("archived")
    FAILED = "failed", _("failed, will retry")
    LOST = "lost", _("lost")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A row whose outputs are still on their way to the archive keeps polling.
LIVE_ARCHIVE_STATES = (ArchiveState.PENDING, ArchiveState.COPYING)


class Task(models.Model):
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="tasks")
    ark_id = models.CharField(_("task id"), max_length=64)
    kind = models.CharField(max_length=8, choices=TaskKind.choices)
    model = models.CharField(max_length=128, blank=True)
    status = models.CharField(max_length=16, choices=TaskStatus.choices)
    error_code = models.CharField(max_length=200, blank=True)
    error_message = models.TextField(blank=True)
    service_tier = models.CharField(max_length=32, blank=True)
    execution_expires_after = models.PositiveIntegerField(null=True, blank=True)

    # Upstream times (Ark's created_at / updated_at).
    ark_created_at = models.DateTimeField(db_index=True)
    ark_updated_at = models.DateTimeField(null=True, blank=True)
    # What ArkDash observed.
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True, help_text=_("First seen running."))
    finished_at = models.DateTimeField(null=True, blank=True)
    gone_upstream_at = models.DateTimeField(null=True, blank=True)
    # Bumped on every local write: the live poll compares it to find changed rows.
    changed_at = models.DateTimeField(auto_now=True, db_index=True)

    # Video parameters.
    resolution = models.CharField(max_length=16, blank=True)
    ratio = models.CharField(max_length=16, blank=True)
    duration = models.IntegerField(null=True, blank=True)
    frames = models.IntegerField(null=True, blank=True)
    framespersecond = models.IntegerField(null=True, blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    generate_audio = models.BooleanField(null=True, blank=True)
    draft = models.BooleanField(null=True, blank=True)
    # 3D parameters.
    subdivision_level = models.CharField(max_length=16, blank=True)
    file_format = models.CharField(max_length=16, blank=True)

    completion_tokens = models.BigIntegerField(null=True, blank=True)
    total_tokens = models.BigIntegerField(null=True, blank=True)

    video_url = models.TextField(blank=True)
    last_frame_url = models.TextField(blank=True)
    file_url = models.TextField(blank=True)
    outputs_expire_at = models.DateTimeField(null=True, blank=True)

    archive_state = models.CharField(max_length=16, choices=ArchiveState.choices, default=ArchiveState.NONE)
    # Set when the task turned succeeded and its artifacts still have to be created:
    # the archive hand-off survives a crash between the status change and the enqueue.
    archive_handoff_pending = models.BooleanField(default=False)

    raw = models.JSONField(default=dict)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "ark_id"], name="task_unique_per_account")]
        indexes = [
            models.Index(fields=["account", "status", "-ark_created_at"], name="task_acct_status_created"),
            models.Index(fields=["account", "-ark_created_at"], name="task_acct_created"),
            models.Index(fields=["account", "-ark_updated_at"], name="task_acct_updated"),
            models.Index(fields=["account", "kind", "-ark_created_at"], name="task_acct_kind_created"),
            models.Index(fields=["account", "model", "-ark_created_at"], name="task_acct_model_created"),
            # The status chips under a model filter count each status's tasks of that model
            # (and time range) through this index alone, instead of reading every row.
            models.Index(fields=["account", "model", "status", "ark_created_at"], name="task_model_status_created"),
            models.Index(fields=["account", "archive_state", "-ark_created_at"], name="task_acct_archive_created"),
            # Covers every list filter column: the status chips count with an index-only
            # scan instead of reading the wide rows.
            models.Index(
                fields=["account", "status", "kind", "archive_state", "model", "ark_created_at"],
                name="task_filter_counts",
            ),
            models.Index(fields=["ark_id"], name="task_ark_id"),
            models.Index(
                fields=["archive_handoff_pending"],
                name="task_handoff_pending",
                condition=models.Q(archive_handoff_pending=True),
            ),
        ]
        ordering = ["-ark_created_at", "-id"]

    def __str__(self) -> str:
        return self.ark_id

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def can_cancel(self) -> bool:
        """Ark's state table: only a queued task can be cancelled."""
        return self.status == TaskStatus.QUEUED and self.gone_upstream_at is None

    @property
    def can_delete(self) -> bool:
        """Ark's state table: succeeded, failed and expired records can be deleted."""
        return self.status in FINISHED_STATUSES and self.gone_upstream_at is None

    @property
    def is_live(self) -> bool:
        """Can this row still change on its own? Then the page polls it.

        A task gone from Ark will never be re-read, whatever it last showed. A task that
        just succeeded waits for its hand-off to the archive before its archive state
        moves: live too, or its row would stop polling at "nothing to archive".
        """
        if self.gone_upstream_at is not None:
            return self.archive_state in LIVE_ARCHIVE_STATES
        return self.status in ACTIVE_STATUSES or self.archive_state in LIVE_ARCHIVE_STATES or self.archive_handoff_pending

    @property
    def version(self) -> int:
        """changed_at in whole microseconds: the live poll compares it for equality."""
        return (self.changed_at - _EPOCH) // timedelta(microseconds=1)

    @property
    def run_time(self) -> timedelta | None:
        """From first seen running to finished; None for a task that never ran.

        A task that finished between two syncs was never seen running: its run time counts
        from creation. Expired and cancelled tasks never ran unless they were seen running.
        A task gone from Ark stops at the moment it went.
        """
        start: datetime | None = self.started_at
        if start is None and self.status in (TaskStatus.SUCCEEDED, TaskStatus.FAILED):
            start = self.ark_created_at
        if start is None:
            return None
        if self.status in ACTIVE_STATUSES:
            end = self.gone_upstream_at or timezone.now()
        else:
            end = self.finished_at or self.ark_updated_at
        return max(end - start, timedelta(0)) if end else None


class ArtifactOutput(models.TextChoices):
    VIDEO = "video", _("video (mp4)")
    LAST_FRAME = "last_frame", _("last frame (png)")
    MODEL_ZIP = "model_zip", _("3D model (zip)")
    MODEL_FILE = "model_file", _("3D model (extracted)")


class ArtifactState(models.TextChoices):
    PENDING = "pending", _("pending")
    COPYING = "copying", _("copying")
    ARCHIVED = "archived", _("archived")
    FAILED = "failed", _("failed, will retry")
    LOST = "lost", _("lost")


class RemovalReason(models.TextChoices):
    RETENTION = "retention", _("the account's retention rule")


class Artifact(models.Model):
    """One output of a succeeded task, copied to archive storage before its URL dies."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="artifacts")
    output = models.CharField(max_length=16, choices=ArtifactOutput.choices)
    source_url = models.TextField(blank=True)
    deadline = models.DateTimeField(null=True, blank=True, help_text=_("When the source URL dies."))
    state = models.CharField(max_length=16, choices=ArtifactState.choices, default=ArtifactState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Who holds the copy and since when (a conditional update sets both).
    claim_token = models.CharField(max_length=64, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # When a copy was last put on the queue (or when its retry is due): the sweeper
    # re-queues only what has waited too long, so lost messages are redone without
    # flooding the queue with duplicates.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    bytes_copied = models.BigIntegerField(default=0)
    size = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    storage_key = models.CharField(max_length=500, blank=True)
    filename = models.CharField(max_length=200, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    # Set when the archived file was deleted on purpose (the state stays "archived": the
    # copy did succeed); the download then says when and why instead of failing.
    removed_at = models.DateTimeField(null=True, blank=True)
    removed_reason = models.CharField(max_length=16, choices=RemovalReason.choices, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "output"], name="artifact_unique_output")]
        indexes = [
            models.Index(
                fields=["deadline"],
                name="artifact_unarchived_deadline",
                condition=~models.Q(state__in=["archived", "lost"]),
            ),
            # The alerts' scan for lost outputs reads these few rows, not the whole table.
            models.Index(fields=["id"], name="artifact_lost", condition=models.Q(state="lost")),
            # The insights page's bytes archived per day reads the outputs archived in a range
            # (docs/benchmarks.md, Insights): without it, every artifact row is read.
            models.Index(fields=["archived_at"], name="artifact_archived_at", condition=models.Q(state="archived")),
        ]

    def __str__(self) -> str:
        return f"{self.task.ark_id}/{self.output}"

    @property
    def is_downloadable(self) -> bool:
        """Archived, and its file not yet removed by retention."""
        return self.state == ArtifactState.ARCHIVED and self.removed_at is None

    @property
    def can_retry(self) -> bool:
        """May a person send it back to the queue? Failed, or lost while Ark's URL still
        lives (services/archive_control.py applies the same rule as a query)."""
        if self.state == ArtifactState.FAILED:
            return True
        return (
            self.state == ArtifactState.LOST
            and self.output != ArtifactOutput.MODEL_FILE
            and self.deadline is not None
            and self.deadline > timezone.now()
        )

    @property
    def lost_explanation(self) -> str:
        """Why a lost output was lost, in the reader's language (last_error keeps the technical detail)."""
        if self.state != ArtifactState.LOST:
            return ""
        error = self.last_error
        if self.output == ArtifactOutput.MODEL_FILE:
            return _("No 3D preview could be made from the model; the model zip itself is archived.")
        if "expired before a copy succeeded" in error or "has expired or was removed" in error:
            return _("Ark's link to this output stopped working before ArkDash could copy it.")
        if "gave up after" in error:
            return _("ArkDash gave up copying this output after %(n)d attempts.") % {"n": self.attempts}
        return _("ArkDash could not copy this output and will not try again.")


class PictureState(models.TextChoices):
    READY = "ready", _("ready")
    # The output could not be decoded or rendered: a neutral image stands in, `reason` says why.
    PLACEHOLDER = "placeholder", _("placeholder")


class Picture(models.Model):
    """The small image a task shows in the gallery, made once when its outputs are archived.

    Stored in archive storage beside the outputs. Made from the last frame when Ark returned
    one, else from the archived video (a poster frame), or rendered from the 3D model.
    """

    task = models.OneToOneField(Task, on_delete=models.CASCADE, related_name="picture")
    # Which output it was made from; a better one (the last frame) replaces a poster frame.
    source = models.ForeignKey(Artifact, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    source_output = models.CharField(max_length=16, choices=ArtifactOutput.choices)
    state = models.CharField(max_length=16, choices=PictureState.choices)
    reason = models.TextField(blank=True, help_text=_("Why a placeholder stands in for the picture."))
    storage_key = models.CharField(max_length=500)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"picture of {self.task_id} ({self.state})"


class MembershipRole(models.TextChoices):
    VIEWER = "viewer", _("viewer (list, see, download)")
    OPERATOR = "operator", _("operator (also cancel and delete)")


class Membership(models.Model):
    """Who may see (viewer) or also act on (operator) the tasks of an account.

    Superusers see and act on every account without one (Django's convention).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ark_memberships")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=16, choices=MembershipRole.choices, default=MembershipRole.VIEWER)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "account"], name="membership_unique_per_account")]
        ordering = ["account__name", "user__username"]
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")

    def __str__(self) -> str:
        return f"{self.user} → {self.account} ({self.role})"


class AuditAction(models.TextChoices):
    CANCEL = "cancel", _("cancel")
    DELETE = "delete", _("delete")
    BULK_CANCEL = "bulk_cancel", _("bulk cancel")
    BASE_URL = "base_url", _("change base URL")
    ARCHIVE_RETRY = "archive_retry", _("retry archive copy")
    BULK_DELETE = "bulk_delete", _("bulk delete record")
    BULK_REMOVE = "bulk_remove", _("bulk remove from ArkDash")
    RETENTION = "retention", _("retention")


class AuditResult(models.TextChoices):
    DONE = "done", _("done")
    REFUSED = "refused", _("refused")
    FAILED = "failed", _("failed")


class AuditEntry(models.Model):
    """One attempt to cancel or delete (refusals included), written by services/actions.py,
    or a change of an account's base URL (services/accounts.py).

    Snapshots (username, account name, task id) keep the entry readable after the
    user, the account or the task row is gone.
    """

    created = models.DateTimeField(_("when"), default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    username = models.CharField(_("user"), max_length=150, blank=True)
    account = models.ForeignKey(Account, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    account_name = models.CharField(_("account"), max_length=100, blank=True)
    # Null for a bulk action's summary entry, and once the task row is removed.
    task = models.ForeignKey(Task, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    ark_id = models.CharField(_("task id"), max_length=64, blank=True, db_index=True)
    action = models.CharField(_("action"), max_length=16, choices=AuditAction.choices)
    result = models.CharField(_("result"), max_length=16, choices=AuditResult.choices)
    # The service's own outcome (cancelled, deleted, removed, refused, forbidden, ...).
    code = models.CharField(max_length=32, blank=True)
    message = models.TextField(_("message"), blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.username} {self.action} {self.ark_id} {self.result}"


class ModelPrice(models.Model):
    """What one model's tokens cost, for the insights page's cost estimate. Staff set it in
    the admin; a model without a row has no estimate (the table starts empty)."""

    model = models.CharField(_("model"), max_length=128, unique=True)
    cny_per_million_tokens = models.DecimalField(_("CNY per million tokens"), max_digits=12, decimal_places=4)

    class Meta:
        ordering = ["model"]
        verbose_name = _("model price")
        verbose_name_plural = _("model prices")

    def __str__(self) -> str:
        return f"{self.model}: {self.cny_per_million_tokens} CNY / 1M tokens"


# The gateway's and the alerts' models live in their own modules; importing them registers
# them with the app.
from .alerts.models import AlertChannel, AlertEvent, AlertRule, Delivery, Notification, ScanMark  # noqa: E402,F401
from .gateway.models import ApiToken, GatewayTask  # noqa: E402,F401

# --- The archive page: storage used per day, workers seen --------------------------------


class ArchiveUsageSnapshot(models.Model):
    """Archive storage used by one account on one day (written by the retention beat job).

    One row per account and day, rewritten through the day: the page draws the trend
    from them without summing every artifact of the past.
    """

    account = models.ForeignKey("tasks_app.Account", on_delete=models.CASCADE, related_name="usage_snapshots")
    day = models.DateField(_("day"))
    bytes_stored = models.BigIntegerField(_("bytes stored"), default=0)
    outputs_stored = models.PositiveIntegerField(_("outputs stored"), default=0)
    taken_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "day"], name="usage_snapshot_unique_day")]
        ordering = ["account", "-day"]
        verbose_name = _("archive usage snapshot")
        verbose_name_plural = _("archive usage snapshots")

    def __str__(self) -> str:
        return f"{self.account_id} {self.day} {self.bytes_stored}"


class WorkerHeartbeat(models.Model):
    """A Celery worker that reported in (tasks_app/observability/celery_signals.py)."""

    hostname = models.CharField(_("worker"), max_length=255, unique=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(_("started"))
    last_seen_at = models.DateTimeField(_("last seen"), db_index=True)

    class Meta:
        ordering = ["-last_seen_at"]
        verbose_name = _("worker heartbeat")
        verbose_name_plural = _("worker heartbeats")

    def __str__(self) -> str:
        return self.hostname


# --- The insights rollup: what the insights page reads instead of the raw tasks ------------
# Rewritten per (account, UTC hour) by services/insights_rollup.py; docs/insights.md says why.


class InsightsHourCount(models.Model):
    """Tasks created in one UTC hour of one account, per model, status and error code, and their tokens."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    model = models.CharField(max_length=128, blank=True)
    status = models.CharField(max_length=16)
    error_code = models.CharField(max_length=200, blank=True)
    tasks = models.PositiveIntegerField()
    tokens = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["account", "hour"], name="insights_count_hour")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.hour:%Y-%m-%d %H}h {self.model} {self.status}: {self.tasks}"


class InsightsPhase(models.TextChoices):
    QUEUED = "queued", _("queued")
    RUNNING = "running", _("running")


class InsightsHourTime(models.Model):
    """How many tasks created in one UTC hour of one account spent a time in one
    log-scaled bin queued or running, per model (services/insights_rollup.time_bin)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    model = models.CharField(max_length=128, blank=True)
    phase = models.CharField(max_length=8, choices=InsightsPhase.choices)
    bin = models.IntegerField()
    tasks = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["account", "hour"], name="insights_time_hour")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.hour:%Y-%m-%d %H}h {self.model} {self.phase} bin {self.bin}: {self.tasks}"


class InsightsHourArchived(models.Model):
    """Bytes of the outputs of one account archived in one UTC hour."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    bytes = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "hour"], name="insights_archived_unique_hour")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.hour:%Y-%m-%d %H}h: {self.bytes} bytes"


class InsightsDirtyHour(models.Model):
    """An (account, UTC hour) whose rollup rows a change outside Task.changed_at made stale
    (a task removed, an output archived); the next refresh recomputes it and drops the mark."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.account_id} {self.hour:%Y-%m-%d %H}h"
