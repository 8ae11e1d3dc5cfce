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

After a change to the mirror the page is put together again from a kept frame (all
that does not follow the mirror: kept_frame) and the parts that do (list_parts.py).

Relative times ("3 minutes ago", a running task's run time, copy progress) are
as old as the page, so a page is reused for PAGE_BUCKET_SECONDS at most; the live poll
refreshes copying and changing rows within seconds anyway. Answers that carry
per-request state are never stored: flash messages (nor their frame), or rejected
parameters (their frame is: the same query string is rejected the same way).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable
from functools import cache as memoize

from django.conf import settings
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import get_language

from .kept import kept
from .selectors import Access

# The live slot cannot come from input (user text reaches the page escaped: no "<!--");
# the CSRF slot typed into a filter would only show the person their own token.
LIVE_STATUS_SLOT = "<!--arkdash:live-status-->"
CSRF_SLOT = "arkdashCsrfSlot0d4f1b7e9a2c"
# The server's clock in the kept live status (views._live_status_html): digits go there.
NOW_SLOT = "arkdashNowSlot7c3e5a"
PAGE_BUCKET_SECONDS = 30
PAGE_CACHE_SECONDS = 2 * PAGE_BUCKET_SECONDS
# A frame holds nothing of the mirror and nothing of the clock (its key names all it shows).
FRAME_CACHE_SECONDS = 3600


@memoize
def templates_version() -> str:
    """The list page's templates as they are on disk: part of the key of what is kept of
    their output (pages, rows, the filter form), so a deploy never serves the old one's."""
    names = ("tasks_app/task_list.html", "tasks_app/task_rows.jinja", "tasks_app/task_list_parts.jinja", "base.html")
    stamps = []
    for directory in settings.TEMPLATES[0]["DIRS"]:
        for name in names:
            try:
                stat = os.stat(os.path.join(directory, name))
            except OSError:
                continue
            stamps.append(f"{name}:{stat.st_mtime_ns}:{stat.st_size}")
    # Short: it goes into every kept row's key, and cache keys should stay under 250 bytes.
    return hashlib.sha256(",".join(stamps).encode()).hexdigest()[:16]


def page_key(request: HttpRequest, *, access: Access, mirror_version: int) -> str | None:
    """The key of this request's page, or None when the answer must not be stored."""
    who_and_what = _viewer_and_request(request, access=access)
    if who_and_what is None:
        return None
    parts = (*who_and_what, str(mirror_version), str(int(time.time()) // PAGE_BUCKET_SECONDS))
    return "arkdash:list-page:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _viewer_and_request(request: HttpRequest, *, access: Access) -> tuple[str, ...] | None:
    """Everything but the mirror that a list page shows; None when it carries messages,
    which are shown once."""
    if len(get_messages(request)):  # len() does not mark them read, iterating would
        return None
    user = request.user
    who = "all" if access.everything else (
        f"{sorted(access.visible_account_ids)}/{sorted(access.operable_account_ids)}"
    )
    return (
        str(user.pk),
        user.get_username(),
        who,
        get_language() or "",
        timezone.get_current_timezone_name(),
        request.get_full_path(),
        templates_version(),
    )


# --- the frame: the page without what the mirror decides ------------------------------

_SLOT = re.compile(r"<!--arkdash:slot:([a-z-]+)-->")


def kept_frame(request: HttpRequest, *, access: Access, shows: str, render: Callable[[], str]) -> list[str]:
    """The list page without its mirror parts, split at their slots (list_parts.py):
    [text, slot name, text, slot name, ..., text]. render() makes it when it is not kept.
    `shows`: what else the frame shows that may change (the model suggestions)."""
    def split() -> list[str]:
        return _SLOT.split(render())

    who_and_what = _viewer_and_request(request, access=access)
    if who_and_what is None:  # it shows flash messages: never kept
        return split()
    return kept("list-frame", [*who_and_what, shows], split, seconds=FRAME_CACHE_SECONDS)


def assemble(frame: list[str], parts: dict[str, str]) -> str:
    """The frame with each slot's part in place."""
    return "".join(parts[piece] if index % 2 else piece for index, piece in enumerate(frame))


def stored_page(key: str | None) -> str | None:
    return cache.get(key) if key else None


def store_page(key: str | None, page: str) -> None:
    if key:
        cache.set(key, page, PAGE_CACHE_SECONDS)


def fill(page: str, *, live_status: str, csrf_token: str) -> str:
    """The stored page with this answer's live status and CSRF token in their slots."""
    return page.replace(LIVE_STATUS_SLOT, live_status, 1).replace(CSRF_SLOT, csrf_token)
