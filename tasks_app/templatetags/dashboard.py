"""Small presentation helpers for the dashboard templates."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.translation import gettext as _

from ..models import ACTIVE_STATUSES, Task
from ..selectors import is_live, row_version

register = template.Library()


@register.filter
def version(task: Task) -> int:
    return row_version(task)


@register.filter
def live(task: Task) -> bool:
    return is_live(task)


@register.filter
def human_duration(value: timedelta | None) -> str:
    """1 h 02 m, 3 m 05 s, 42 s: compact and unambiguous in both languages."""
    if value is None:
        return ""
    seconds = max(0, int(value.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return _("%(h)d h %(m)02d m") % {"h": hours, "m": minutes}
    if minutes:
        return _("%(m)d m %(s)02d s") % {"m": minutes, "s": seconds}
    return _("%(s)d s") % {"s": seconds}


@register.filter
def run_time(task: Task) -> timedelta | None:
    """From first seen running (or created) to finished, or to now while still active."""
    start: datetime | None = task.started_at or task.ark_created_at
    if start is None:
        return None
    if task.status in ACTIVE_STATUSES:
        if task.started_at is None:
            return None  # still queued: no run time yet
        end = timezone.now()
    else:
        end = task.finished_at or task.ark_updated_at
    return end - start if end else None
