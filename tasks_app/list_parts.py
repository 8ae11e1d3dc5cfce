"""The parts of the task list page that follow the mirror: chips, rows, pager, bulk buttons.

The rest of the page (header, filter form, table head, errors) depends on who looks and
what they asked, not on the mirror, so it is kept as a frame with a slot per part
(page_cache.kept_frame); after a change to the mirror only these parts are rendered, by
Jinja2 (templates/tasks_app/task_list_parts.jinja), into the frame's slots.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from django.urls import get_script_prefix, reverse
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext as _

from . import jinja
from .selectors import TaskListPage

TEMPLATE = "tasks_app/task_list_parts.jinja"
SLOTS = ("live-toggle", "notices", "chips", "bulk-buttons", "select-all", "rows", "pager", "poller")


def slot_markers() -> dict[str, SafeString]:
    """The frame's context: each part's slot (`chips_slot`...), a marker no input can forge
    (user text reaches the page escaped: no "<!--")."""
    return {f"{name.replace('-', '_')}_slot": mark_safe(f"<!--arkdash:slot:{name}-->") for name in SLOTS}  # noqa: S308


@dataclass(frozen=True)
class ListTexts:
    """The parts' texts in one language; the counted ones are methods."""

    live: str
    no_live_rows: str
    cancel_selected: str
    cancel_selected_confirm: str
    select_all: str
    no_tasks: str
    first: str
    previous: str
    next: str
    last: str
    rows_url: str

    @staticmethod
    def cancel_matching_confirm(n: int) -> str:
        return ngettext(
            "Cancel %(n)s queued task matching this filter?", "Cancel all %(n)s queued tasks matching this filter?", n
        ) % {"n": n}

    @staticmethod
    def cancel_matching(n: int) -> str:
        return ngettext(
            "Cancel the %(n)s queued task matching this filter", "Cancel all %(n)s queued tasks matching this filter", n
        ) % {"n": n}

    @staticmethod
    def shown_of_total(first: int, last: int, total: int) -> str:
        return _("%(first)s–%(last)s of %(total)s") % {"first": first, "last": last, "total": total}

    @staticmethod
    def page_of_pages(n: int, count: int) -> str:
        return _("page %(n)s of %(count)s") % {"n": n, "count": count}


@lru_cache(maxsize=32)
def _texts(language: str | None, script_prefix: str) -> ListTexts:
    return ListTexts(
        live=_("Live"),
        no_live_rows=_("No task on this page is still active."),
        cancel_selected=_("Cancel selected"),
        cancel_selected_confirm=_("Cancel the selected queued tasks?"),
        select_all=_("Select all queued tasks on this page"),
        no_tasks=_("No tasks match these filters."),
        first=_("First"),
        previous=_("Previous"),
        next=_("Next"),
        last=_("Last"),
        rows_url=reverse("tasks_app:task_rows"),
    )


def render(
    *, page: TaskListPage, links: dict, chips: list[dict], notices: list[str], rows_html: str,
    has_live_rows: bool, has_cancellable_rows: bool, queued_in_filter: int,
) -> dict[str, str]:  # fmt: skip
    """Each slot's HTML."""
    texts = _texts(get_language(), get_script_prefix())
    macros = jinja.template(TEMPLATE).module
    return {
        "live-toggle": macros.live_toggle(has_live_rows, texts),
        "notices": macros.notices(notices),
        "chips": macros.chips(chips),
        "bulk-buttons": macros.bulk_buttons(has_cancellable_rows, queued_in_filter, texts),
        "select-all": macros.select_all(has_cancellable_rows, texts),
        "rows": macros.rows(rows_html, texts),
        "pager": macros.pager(page, links, texts),
        "poller": macros.poller(has_live_rows, texts),
    }
