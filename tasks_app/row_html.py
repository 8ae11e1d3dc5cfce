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
from functools import lru_cache
from urllib.parse import quote

import jinja2
from django.conf import settings
from django.core.cache import cache
from django.urls import get_script_prefix
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language

from . import page_cache
from .models import Task
from .rows import Row, present, row_texts_for_templates
from .selectors import Access, row_version

TEMPLATE = "tasks_app/task_rows.jinja"
ROW_BUCKET_SECONDS = page_cache.PAGE_BUCKET_SECONDS
# Stands for the page's own address in stored rows (their no-JavaScript cancel and delete
# links come back to it); letters and underscores only, so escaping leaves it as it is.
_RETURN_TO = "ARKDASH_RETURN_TO_MARK"


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(folder) for folder in settings.TEMPLATES[0]["DIRS"]]),
        autoescape=True,  # as Django's: every value escaped unless marked safe
        undefined=jinja2.StrictUndefined,  # a misspelt name fails loudly, not as an empty cell
    )
    return environment.get_template(TEMPLATE)


def _time_bucket() -> int:
    return int(time.time()) // ROW_BUCKET_SECONDS


def list_rows_html(tasks: list[Task], *, now: datetime, access: Access, return_to: str) -> SafeString:
    """The rows of a list page: stored rows where nothing they show has moved, the rest
    prepared (rows.present) and rendered, then stored. `tasks` as task_list_page gives them."""
    shared = ":".join(
        [get_language() or "", timezone.get_current_timezone_name(), get_script_prefix(),
         str(_time_bucket()), page_cache.templates_version()]
    )  # fmt: skip
    keys = {task.pk: _row_key(task, shared=shared, access=access) for task in tasks}
    stored = cache.get_many(list(keys.values()))
    missing = [task for task in tasks if keys[task.pk] not in stored]
    if missing:
        fresh = {
            keys[row["pk"]]: render_rows([row], return_to=_RETURN_TO)
            for row in present(missing, now=now, access=access)
        }
        cache.set_many(fresh, 2 * ROW_BUCKET_SECONDS)
        stored.update(fresh)
    html = "".join(stored[keys[task.pk]] for task in tasks)
    return mark_safe(html.replace(_RETURN_TO, escape(quote(return_to, safe="/"))))  # noqa: S308


def _row_key(task: Task, *, shared: str, access: Access) -> str:
    # The version (changed_at) moves with every write of the row; status, archive state and
    # "gone" are in the key as well, so a raw write that forgot changed_at still shows.
    # Copy progress lives on the artifacts: it is in the key as it stands now.
    return ":".join(
        ["arkdash:row", str(task.pk), str(row_version(task)), task.status, task.archive_state,
         "g" if task.gone_upstream_at else "", str(getattr(task, "archive_percent", None)),
         "o" if access.can_operate(task.account_id) else "v", shared]
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
    html = _template().render(
        rows=rows, texts=row_texts_for_templates(), return_to=return_to,
        return_to_quoted=quote(return_to, safe="/"), oob=oob, row_message=row_message,
        row_message_ok=row_message_ok, needs_confirmation=needs_confirmation,
    )  # fmt: skip
    return mark_safe(html)  # noqa: S308 -- autoescaped by Jinja2 above
