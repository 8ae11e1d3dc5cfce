"""The gallery: the list's filtered tasks as a grid of pictures, with the list's filters and paging."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from . import selectors
from .views import ROW_CACHE_BUCKET_SECONDS, filtered_page

GALLERY_TEMPLATE = "tasks_app/gallery.html"


@login_required
@require_safe
def task_gallery(request: HttpRequest) -> HttpResponse:
    shown = filtered_page(request)
    media = selectors.gallery_media(task_ids=[task.pk for task in shown.page.tasks])
    now = timezone.now()
    context = {
        **shown.context(),
        "filter_view": "tasks_app:task_gallery",
        "cards": [(task, media[task.pk]) for task in shown.page.tasks],
        "now": now,
        "time_bucket": int(now.timestamp()) // ROW_CACHE_BUCKET_SECONDS,  # part of a card's cache key
    }
    return render(request, GALLERY_TEMPLATE, context, status=400 if shown.errors else 200)
