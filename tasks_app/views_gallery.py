"""The gallery: the list's filtered tasks as a grid of pictures, with the list's filters and paging.

While a card can still change (a task queued or running, an archive under way, a picture
not made yet) the grid asks for itself again every few seconds through htmx; the answer is
204 when no card moved, so a quiet page costs two indexed queries a poll.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from . import selectors
from .models import ArchiveState, Task
from .selectors import GalleryMedia
from .views import ROW_CACHE_BUCKET_SECONDS, filtered_page

GALLERY_TEMPLATE = "tasks_app/gallery.html"
# The poll sends back the signature of the cards it shows in this header.
SEEN_HEADER = "X-Gallery-Seen"
# How long after a task finished its picture is still waited for (its job queued or running).
PICTURE_WAIT = timedelta(hours=1)


@login_required
@require_safe
def task_gallery(request: HttpRequest) -> HttpResponse:
    shown = filtered_page(request)
    media = selectors.gallery_media(task_ids=[task.pk for task in shown.page.tasks])
    now = timezone.now()
    cards = [(task, media[task.pk]) for task in shown.page.tasks]
    signature = _signature(cards)
    if request.htmx and request.headers.get(SEEN_HEADER) == signature:
        return HttpResponse(status=204)  # htmx swaps nothing
    context = {
        **shown.context(),
        "filter_view": "tasks_app:task_gallery",
        "cards": cards,
        "refresh": any(_may_change(task, card, now) for task, card in cards),
        "signature": signature,
        "now": now,
        "time_bucket": int(now.timestamp()) // ROW_CACHE_BUCKET_SECONDS,  # part of a card's cache key
    }
    template = f"{GALLERY_TEMPLATE}#cards" if request.htmx else GALLERY_TEMPLATE
    return render(request, template, context, status=400 if shown.errors else 200)


def _may_change(task: Task, media: GalleryMedia, now) -> bool:
    waits_for_picture = (
        task.archive_state == ArchiveState.ARCHIVED and media.picture_state is None
        and task.finished_at is not None and now - task.finished_at < PICTURE_WAIT
    )  # fmt: skip
    return task.is_live or waits_for_picture


def _signature(cards: list[tuple[Task, GalleryMedia]]) -> str:
    """What the cards show, in short: a card's task version, picture or video moves it."""
    shown = "|".join(f"{task.pk}:{task.version}:{media.picture_version}:{media.video_artifact_id}"
                     for task, media in cards)  # fmt: skip
    return hashlib.blake2s(shown.encode(), digest_size=8).hexdigest()
