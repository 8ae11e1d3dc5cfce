"""The task rows' HTML, rendered by Jinja2 (templates/tasks_app/task_rows.jinja).

A page shows 50 to 200 rows, and every live-poll answer re-sends the rows that changed.
Through Django's template engine a row cost about 0.2 ms (each variable a chain of
lookups, each value escaped through several calls): the rows were the largest part of
a fresh list page. Jinja2 compiles the template to Python and renders the same rows in
about a tenth of that. Only the rows are Jinja2; the Django templates around them place
the HTML this returns.

The list page also keeps each row's HTML (list_rows_html) under everything it shows: the
row's version, language, time zone, the viewer's right to act on it, and a 30-second
bucket for its relative times (as the stored page: page_cache.py). After a change to
the mirror only the rows that changed are prepared and rendered again; a stored row's
"5 minutes ago" is at most 30 s old, like a stored page's.
"""

from __future__ import annotations

import time
from datetime import datetime
from urllib.parse import quote

from django.core.cache import cache
from django.urls import get_script_prefix
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language

from . import jinja, page_cache
from .kept import kept
from .models import Task
from .rows import Row, present, row_texts_for_templates
from .selectors import ROW_FIELDS, Access, RowKey, attach_archive_progress, row_version

TEMPLATE = "tasks_app/task_rows.jinja"
ROW_BUCKET_SECONDS = page_cache.PAGE_BUCKET_SECONDS
# Stands for the page's own address in stored rows (their no-JavaScript cancel and delete
# links come back to it); letters and underscores only, so escaping leaves it as it is.
_RETURN_TO = "ARKDASH_RETURN_TO_MARK"


def _time_bucket() -> int:
    return int(time.time()) // ROW_BUCKET_SECONDS


def list_rows_html(rows: list[RowKey], *, now: datetime, access: Access, return_to: str) -> SafeString:
    """The rows of a list page (selectors.task_list_page): stored rows where nothing they
    show has moved; the others read whole, prepared (rows.present), rendered and stored."""
    shared = ":".join(
        [get_language() or "", timezone.get_current_timezone_name(), get_script_prefix(),
         str(_time_bucket()), page_cache.templates_version()]
    )  # fmt: skip
    keys = [_row_key(row, shared=shared, access=access) for row in rows]
    # The page's rows together too: one read where none of them moved (a change elsewhere).
    html = kept(
        "rows", keys, lambda: _rows_html(rows, keys, now=now, access=access, shared=shared),
        seconds=2 * ROW_BUCKET_SECONDS,
    )
    return mark_safe(html.replace(_RETURN_TO, escape(quote(return_to, safe="/"))))  # noqa: S308


def _rows_html(rows: list[RowKey], keys: list[str], *, now: datetime, access: Access, shared: str) -> str:
    stored = cache.get_many(keys)
    missing = {row.pk: position for position, (row, key) in enumerate(zip(rows, keys, strict=True)) if key not in stored}
    html = [stored.get(key, "") for key in keys]
    if missing:
        tasks = list(Task.objects.filter(pk__in=list(missing)).only(*ROW_FIELDS))
        attach_archive_progress(tasks)
        fresh = {}
        # Keyed by what was read now: a row written since the page's read is shown as it
        # is now, and stored under its new version.
        for task, row in zip(tasks, present(tasks, now=now, access=access), strict=True):
            fresh[_row_key(task, shared=shared, access=access)] = html[missing[task.pk]] = render_rows(
                [row], return_to=_RETURN_TO
            )
        cache.set_many(fresh, 2 * ROW_BUCKET_SECONDS)
    return "".join(html)


def _row_key(row: RowKey | Task, *, shared: str, access: Access) -> str:
    # The version (changed_at) moves with every write of the row; status, archive state,
    # "gone" and the archive hand-off (it makes the row live) are in the key as well, so a
    # raw write that forgot changed_at still shows.
    # Copy progress lives on the artifacts: it is in the key as it stands now.
    return ":".join(
        ["arkdash:row", str(row.pk), str(row_version(row)), row.status, row.archive_state,
         "g" if row.gone_upstream_at else "", "h" if row.archive_handoff_pending else "",
         str(getattr(row, "archive_percent", None)),
         "o" if access.can_operate(row.account_id) else "v", shared]
    )  # fmt: skip


def render_rows(
    rows: list[Row], *, return_to: str, oob: bool = False, row_message: str = "", row_message_ok: bool = False,
    needs_confirmation: bool = False,
) -> SafeString:
    """The <tr> of each row in the active language (rows.present made them).

    return_to: the list page the row's no-JavaScript cancel and delete links come back to.
    oob: wrap each row for an htmx out-of-band swap (the poll's answer).
    row_message, row_message_ok, needs_confirmation: an action's outcome, on its one row.
    """
    html = jinja.template(TEMPLATE).render(
        rows=rows, texts=row_texts_for_templates(), return_to=return_to,
        return_to_quoted=quote(return_to, safe="/"), oob=oob, row_message=row_message,
        row_message_ok=row_message_ok, needs_confirmation=needs_confirmation,
    )  # fmt: skip
    return mark_safe(html)  # noqa: S308 -- autoescaped by Jinja2 above
