"""What the archive page shows beyond the mirror: storage used per day, workers seen."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


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
