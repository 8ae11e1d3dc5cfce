"""The task list page, rendered once per state of the mirror and served again until it changes.

Rendering the list (filter form, chips, 50 to 200 rows of HTML) costs far more than
everything else a request does. Its content depends only on who looks (user, access,
language, time zone), what they asked for (the full path) and the mirror's version
(mirror_version.py: moved by every write to the task table), so a page is stored
under exactly those and reused while none of them changes.

What must be fresh on every answer is not part of the stored page:
- the live status (the sync banner and the archive lag), rendered for each answer
  into the LIVE_STATUS_SLOT marker;
- the CSRF token: the page is rendered with CSRF_SLOT in its place and every answer gets
  the request's own token.

Relative times ("3 minutes ago", a running task's run time, copy progress) are
as old as the page, so a page is reused for PAGE_BUCKET_SECONDS at most; the live poll
refreshes copying and changing rows within seconds anyway. Answers that carry
per-request state are never stored: flash messages, or rejected parameters.
"""

from __future__ import annotations

import hashlib
import os
import time
from functools import cache as memoize

from django.conf import settings
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import get_language

from .selectors import Access

# The live slot cannot come from input (user text reaches the page escaped: no "<!--");
# the CSRF slot typed into a filter would only show the person their own token.
LIVE_STATUS_SLOT = "<!--arkdash:live-status-->"
CSRF_SLOT = "arkdashCsrfSlot0d4f1b7e9a2c"
PAGE_BUCKET_SECONDS = 30
PAGE_CACHE_SECONDS = 2 * PAGE_BUCKET_SECONDS


@memoize
def templates_version() -> str:
    """The list page's templates as they are on disk: part of the key of what is kept of
    their output (pages, rows, the filter form), so a deploy never serves the old one's."""
    names = ("tasks_app/task_list.html", "tasks_app/task_rows.jinja", "base.html")
    stamps = []
    for directory in settings.TEMPLATES[0]["DIRS"]:
        for name in names:
            try:
                stat = os.stat(os.path.join(directory, name))
            except OSError:
                continue
            stamps.append(f"{name}:{stat.st_mtime_ns}:{stat.st_size}")
    return ",".join(stamps)


def page_key(request: HttpRequest, *, access: Access, mirror_version: int) -> str | None:
    """The key of this request's page, or None when the answer must not be stored."""
    if len(get_messages(request)):  # len() does not mark them read, iterating would
        return None
    user = request.user
    who = "all" if access.everything else (
        f"{sorted(access.visible_account_ids)}/{sorted(access.operable_account_ids)}"
    )
    parts = (
        str(user.pk),
        user.get_username(),
        who,
        get_language() or "",
        timezone.get_current_timezone_name(),
        request.get_full_path(),
        str(mirror_version),
        str(int(time.time()) // PAGE_BUCKET_SECONDS),
        templates_version(),
    )
    return "arkdash:list-page:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def stored_page(key: str | None) -> str | None:
    return cache.get(key) if key else None


def store_page(key: str | None, page: str) -> None:
    if key:
        cache.set(key, page, PAGE_CACHE_SECONDS)


def fill(page: str, *, live_status: str, csrf_token: str) -> str:
    """The stored page with this answer's live status and CSRF token in their slots."""
    return page.replace(LIVE_STATUS_SLOT, live_status, 1).replace(CSRF_SLOT, csrf_token)
