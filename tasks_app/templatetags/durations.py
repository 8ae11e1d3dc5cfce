"""Durations in people's units on the detail page: "48 h", "1 h 30 m", "5 s", translated whole."""

from __future__ import annotations

from django import template
from django.utils.translation import gettext as _

register = template.Library()


@register.filter
def duration_seconds(value: int | float | None) -> str:
    """A number of seconds as the largest units that say it exactly ("" for None)."""
    if value is None or value == "":
        return ""
    try:
        seconds = max(0, int(value))
    except (TypeError, ValueError):
        return ""
    days_hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if days_hours and not rest:
        return _("%(h)d h") % {"h": days_hours}
    if days_hours and not secs:
        return _("%(h)d h %(m)02d m") % {"h": days_hours, "m": minutes}
    if minutes and not secs:
        return _("%(m)d m") % {"m": minutes}
    if days_hours or minutes:
        return _("%(m)d m %(s)02d s") % {"m": days_hours * 60 + minutes, "s": secs}
    return _("%(s)d s") % {"s": secs}
