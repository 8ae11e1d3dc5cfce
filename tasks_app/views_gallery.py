"""The gallery: the list's filtered tasks as a grid of pictures, with the list's filters and paging."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from . import selectors
from .filters import PAGE_SIZES, TaskFilter, parse_paging
from .views import CURSOR_PARAMS, _pager_links, _prepare_rows, _signature, _status_chips, _total, _without

GALLERY_TEMPLATE = "tasks_app/gallery.html"


@login_required
@require_safe
def task_gallery(request: HttpRequest) -> HttpResponse:
    access = selectors.access_for(request.user)
    filterset = TaskFilter(data=request.GET, queryset=access.tasks())
    paging = parse_paging(request.GET)
    errors = [*filterset.error_messages(), *paging.errors]
    params = request.GET.copy()
    for name in [*filterset.rejected_params(), *paging.invalid]:
        params.pop(name, None)
    filter_params = _without(params, *CURSOR_PARAMS)

    page = selectors.task_list(filterset=filterset, paging=paging)
    counts = selectors.status_counts(queryset=filterset.queryset_without_status())
    selected = filterset.selected_statuses()
    _prepare_rows(page.tasks, access)
    media = selectors.gallery_media(task_ids=[task.pk for task in page.tasks])
    context = {
        "filter": filterset,
        "filter_view": "tasks_app:task_gallery",
        "errors": errors,
        "cards": [(task, media[task.pk]) for task in page.tasks],
        "total": _total(counts, selected),
        "chips": _status_chips(filter_params, counts, selected),
        "counts_signature": _signature(counts),
        "pager": _pager_links(filter_params, page),
        "known_models": selectors.known_models(access=access),
        "page_sizes": PAGE_SIZES,
        "page_size": paging.page_size,
        "now": timezone.now(),
    }
    return render(request, GALLERY_TEMPLATE, context, status=400 if errors else 200)
