"""Small presentation helpers for the dashboard templates."""

from __future__ import annotations

from datetime import timedelta

from django import template
from django.utils.translation import gettext as _

register = template.Library()


@register.filter
def human_duration(value: timedelta | None) -> str:
    """48 h 00 m, 3 m 05 s, 42 s: compact and unambiguous in both languages."""
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
