"""The dashboard's pages and fragments. Function views: the control flow stays visible.

Views validate input, call one selector or service, and render. They read the local
mirror only; the sole upstream calls happen inside the cancel/delete services.
"""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, get_script_prefix, reverse
from django.utils import timezone, translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST, require_safe

from . import list_parts, list_plan, page_cache, row_html, selectors
from . import rows as row_views
from .filters import PAGE_SIZES, TaskFilter
from .kept import kept
from .models import Artifact, ArtifactOutput, ArtifactState, Task, TaskStatus
from .services import actions
from .services.archive import archive_lag_seconds

LIST_TEMPLATE = "tasks_app/task_list.html"
DETAIL_TEMPLATE = "tasks_app/task_detail.html"
CONFIRM_TEMPLATE = "tasks_app/task_confirm.html"
# rows=<pk>.<version>,... as sent by the poller; a page holds at most 200 rows.
ROW_VERSION = re.compile(r"^(\d{1,18})\.(\d{1,20})$")
# A primary key as a form sends it: ASCII digits that fit a 64-bit column (SQLite raises
# OverflowError on anything larger instead of matching nothing).
PK_VALUE = re.compile(r"^[0-9]{1,18}$")
MAX_POLLED_ROWS = 200
# Output URLs die 24 h after success: a lag of hours is a warning long before that.
ARCHIVE_LAG_SHOWN_AFTER = 60
ARCHIVE_LAG_ALARM_AFTER = 3600
ARCHIVE_LAG_CACHE_SECONDS = 15
LIVE_STATUS_CACHE_SECONDS = 300


# --- the list ------------------------------------------------------------------------


@login_required
@require_GET
def task_list(request: HttpRequest) -> HttpResponse:
    # The page is stored per state of the mirror (page_cache.py says what stays fresh).
    # The version is read first, with the memberships: before anything the page shows.
    access, health, version = selectors.access_health_and_version(request.user)
    key = page_cache.page_key(request, access=access, mirror_version=version)
    page = page_cache.stored_page(key)
    status = 200
    if page is None:
        plan = list_plan.plan_for(request, access)
        status = 400 if plan.errors else 200
        known_models = selectors.known_models(user=request.user, access=access)
        frame = page_cache.kept_frame(
            request, access=access, shows="\n".join(known_models),
            render=lambda: _list_frame(request, plan, known_models=known_models),
        )  # fmt: skip
        page = page_cache.assemble(frame, _list_parts(request, plan, access=access, version=version))
        if status == 200:
            page_cache.store_page(key, page)
    return HttpResponse(
        page_cache.fill(page, live_status=_live_status_html(request, health, _archive_lag(access)),
                        csrf_token=get_token(request)),
        status=status,
    )  # fmt: skip


def _live_status_html(request: HttpRequest, health: selectors.SyncHealth, archive_lag: dict | None) -> str:
    """The sync banner and archive lag, kept per what they show: a page answer's one part
    rendered every time (page_cache.py), it changes once per sync, not per request. The
    server's clock, which the banner's "synced N s ago" counts from, is filled in."""
    html = kept(
        "live-status",
        [repr((health, archive_lag)), translation.get_language() or "", timezone.get_current_timezone_name(),
         get_script_prefix(), page_cache.templates_version()],
        lambda: render_to_string(
            f"{LIST_TEMPLATE}#live-status",
            {"health": health, "archive_lag": archive_lag, "now_epoch": page_cache.NOW_SLOT},
            request,
        ),
        seconds=LIVE_STATUS_CACHE_SECONDS,
    )  # fmt: skip
    return html.replace(page_cache.NOW_SLOT, str(int(time.time())))


def _list_frame(request: HttpRequest, plan: list_plan.ListPlan, *, known_models: list[str]) -> str:
    """The page with a slot for each part that follows the mirror (list_parts.py), and
    for the live status and the CSRF token, which every answer fills in."""
    context = {
        "errors": plan.errors,
        "filter_form_html": _filter_form_html(request, page_size=plan.page_size, known_models=known_models),
        "query_string": request.GET.urlencode(),
        "live_status_slot": page_cache.LIVE_STATUS_SLOT,
        "csrf_token": page_cache.CSRF_SLOT,
        **list_parts.slot_markers(),
    }
    return render_to_string(LIST_TEMPLATE, context, request)


def _list_parts(request: HttpRequest, plan: list_plan.ListPlan, *, access: selectors.Access, version: int) -> dict:
    """What the mirror decides on the page: counts, rows, pages, the bulk buttons."""
    counts = selectors.counted(plan.count_queries, version=version)
    selected = list(plan.selected_statuses)
    total = sum(counts[status] for status in (selected or counts))
    page = selectors.task_list_page(row_keys=plan.row_keys, total=total, page=plan.page, page_size=plan.page_size)
    notices = []
    if plan.page > page.page and total:
        notices.append(
            _("There is no page %(asked)s: showing the last page, %(last)s.")
            % {"asked": plan.page, "last": page.num_pages}
        )
    return list_parts.render(
        page=page,
        links=plan.page_links(page),
        chips=plan.status_chips(counts),
        notices=notices,
        rows_html=row_html.list_rows_html(
            page.rows, now=timezone.now(), access=access, return_to=request.get_full_path()
        ),
        has_live_rows=any(selectors.is_live(row) for row in page.rows),
        has_cancellable_rows=any(row.can_cancel and access.can_operate(row.account_id) for row in page.rows),
        queued_in_filter=_queued_operable(plan, counts, access),
    )


def _filter_form_html(request: HttpRequest, *, page_size: int, known_models: list[str]) -> str:
    """The filter form, showing the query string's values and the model suggestions
    (kept as part of the page's frame: page_cache.kept_frame)."""
    html = render_to_string(
        f"{LIST_TEMPLATE}#filter-form",
        # The form shows the query string's values: the filter's queryset plays no part.
        {"filter": TaskFilter(data=request.GET, queryset=Task.objects.none()), "known_models": known_models,
         "page_sizes": PAGE_SIZES, "page_size": page_size},
        request,
    )
    return mark_safe(html)  # noqa: S308 -- rendered (and escaped) by the template above


def _queued_operable(plan: list_plan.ListPlan, counts: dict[str, int], access: selectors.Access) -> int:
    """Queued tasks in the filter that the user may cancel (the "cancel all matching" button)."""
    if plan.selected_statuses and TaskStatus.QUEUED not in plan.selected_statuses:
        return 0
    if access.operates_all_it_sees:
        return counts[TaskStatus.QUEUED]  # already counted
    if plan.queued_operable is None:
        return 0
    return sum(n for _status, n in plan.queued_operable.rows())


def _archive_lag(access: selectors.Access) -> dict | None:
    """The archive lag of the user's accounts for the page header, once worth a look (over a minute)."""
    # Cached briefly: the figure joins artifacts to tasks, and a minute-scale number
    # does not need recomputing for every page view. One entry per set of accounts seen.
    if access.everything:
        key, compute = "arkdash:archive-lag-seconds", archive_lag_seconds
    else:
        ids = sorted(access.visible_account_ids)
        key = "arkdash:archive-lag-seconds:" + ",".join(map(str, ids))
        def compute() -> float:
            return archive_lag_seconds(account_ids=ids)
    seconds = cache.get_or_set(key, compute, ARCHIVE_LAG_CACHE_SECONDS)
    if seconds < ARCHIVE_LAG_SHOWN_AFTER:
        return None
    return {"duration": timedelta(seconds=seconds), "alarming": seconds >= ARCHIVE_LAG_ALARM_AFTER}


# --- the live poll -------------------------------------------------------------------


@login_required
@require_GET
def task_rows(request: HttpRequest) -> HttpResponse:
    """Changed rows among those the page shows, as out-of-band swaps; 204 when idle.

    The page sends `rows=<pk>.<version>,…` for its live rows and `health=<state>` for
    what its banner shows. Nothing changed = an empty 204, so an idle poll costs one
    narrow query and a few header bytes.
    """
    versions = _parse_row_versions(request.GET.get("rows", ""))
    if versions is None:
        return HttpResponse(
            _("Bad rows parameter."), status=400, content_type="text/plain; charset=utf-8"
        )
    access, health = selectors.access_and_health(request.user)
    tasks = selectors.rows_changed(user=request.user, versions=versions, access=access)
    health_changed = request.GET.get("health", health.state) != health.state
    if not tasks and not health_changed:
        response = HttpResponse(status=204)
        # No body, nothing for a Content-Security-Policy to govern: its ~650 bytes would be
        # most of every idle poll.
        response._csp_exempt = True
    else:
        now = timezone.now()
        rows = row_views.present(tasks, now=now, access=access)
        response = render(
            request,
            f"{LIST_TEMPLATE}#poll-answer",
            {
                "rows_html": row_html.render_rows(rows, return_to=_htmx_page(request), oob=True),
                "health": health,
                "send_health": health_changed,
                "now_epoch": int(now.timestamp()),
            },
        )
    response["X-Ark-Synced-At"] = str(health.synced_epoch or "")
    response["Cache-Control"] = "no-store"
    return response


def _parse_row_versions(text: str) -> dict[int, int] | None:
    versions: dict[int, int] = {}
    for item in filter(None, text.split(",")):
        match = ROW_VERSION.match(item)
        if match is None:
            return None
        versions[int(match[1])] = int(match[2])
    return versions if len(versions) <= MAX_POLLED_ROWS else None


# --- detail --------------------------------------------------------------------------


@login_required
@require_safe  # HEAD too, for uptime checks
def task_detail(request: HttpRequest, pk: int) -> HttpResponse:
    task = selectors.task_for_user(user=request.user, pk=pk)
    artifacts = list(task.artifacts.order_by("output"))
    now = timezone.now()
    outputs = _outputs(task, artifacts, now)
    response = render(
        request,
        DETAIL_TEMPLATE,
        {
            "task": task,
            "artifacts": [_artifact_view(artifact) for artifact in artifacts],
            "outputs": outputs,
            "timeline": selectors.task_timeline(task=task),
            "raw_json": json.dumps(task.raw, indent=2, ensure_ascii=False, sort_keys=True),
            "outputs_unarchived": actions.outputs_unarchived(task),
            "can_operate": selectors.can_operate(user=request.user, account_id=task.account_id),
            "now": now,
        },
    )
    if outputs["model_viewer"]:
        # django-csp adds these to the policy of this answer only (see settings).
        response._csp_update = settings.ARKDASH_CSP_3D_VIEWER
    return response


def _download_url(artifact: Artifact) -> str | None:
    if artifact.state != ArtifactState.ARCHIVED:
        return None
    try:
        return reverse("tasks_app:artifact_download", args=[artifact.pk])
    except NoReverseMatch:  # the archive's download view is not installed
        return None


def _artifact_view(artifact: Artifact) -> dict:
    percent = None
    if artifact.state == ArtifactState.COPYING and artifact.size:
        percent = min(100, int(100 * artifact.bytes_copied / artifact.size))
    return {"artifact": artifact, "download_url": _download_url(artifact), "percent": percent}


def _outputs(task: Task, artifacts: list[Artifact], now) -> dict:
    """Where the page plays each output from: the archived copy, else Ark's live URL."""
    by_output = {artifact.output: artifact for artifact in artifacts}
    source_alive = task.gone_upstream_at is None and (task.outputs_expire_at is None or task.outputs_expire_at > now)

    def inline(artifact: Artifact | None) -> str | None:
        # ?inline=1: served for <video>/<img>/the viewer rather than as an attachment.
        url = _download_url(artifact) if artifact else None
        return f"{url}?inline=1" if url else None

    def source(output: str, upstream_url: str) -> str | None:
        archived = inline(by_output.get(output))
        if archived:
            return archived
        return upstream_url if upstream_url and source_alive else None

    model_file = by_output.get(ArtifactOutput.MODEL_FILE)
    model_url = inline(model_file)
    model_name = (model_file.filename or model_file.storage_key).lower() if model_file else ""
    return {
        "video": source(ArtifactOutput.VIDEO, task.video_url),
        "last_frame": source(ArtifactOutput.LAST_FRAME, task.last_frame_url),
        "model_zip": source(ArtifactOutput.MODEL_ZIP, task.file_url),
        # The viewer reads glb/gltf only; other formats are offered as downloads.
        "model_viewer": model_url if model_url and model_name.endswith((".glb", ".gltf")) else None,
        # Why there is no preview, when it cannot come (the archive's own words, e.g. a USD file
        # the converter could not read); None while it may still come.
        "model_preview_error": _preview_error(model_file),
        "source_alive": source_alive,
    }


def _preview_error(model_file: Artifact | None) -> str | None:
    if model_file is None or model_file.state != ArtifactState.LOST:
        return None
    return model_file.last_error.removeprefix("Lost: ").removeprefix("no preview: ") or None


# --- actions -------------------------------------------------------------------------


def _forbidden(message: str) -> HttpResponse:
    """For a task the user can see but not act on: saying so leaks nothing they can't see."""
    return HttpResponse(message, status=403, content_type="text/plain; charset=utf-8")


def _may_not_act() -> HttpResponse:
    return _forbidden(_("You can see this account's tasks but not cancel or delete them: ask an admin for the operator role."))


@login_required
@require_http_methods(["GET", "POST"])
def task_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    # GET shows the confirmation page (works without JavaScript) and changes nothing.
    task = selectors.task_for_user(user=request.user, pk=pk)
    if request.method == "GET":
        if not selectors.can_operate(user=request.user, account_id=task.account_id):
            return _may_not_act()
        return render(request, CONFIRM_TEMPLATE, {"task": task, "action": "cancel", "next": _next_url(request)})
    result = actions.task_cancel(task=task, user=request.user)
    if result.code == "forbidden":  # the service decides (and audits the refusal)
        return _forbidden(result.message)
    return _action_response(request, result)


@login_required
@require_http_methods(["GET", "POST"])
def task_delete(request: HttpRequest, pk: int) -> HttpResponse:
    task = selectors.task_for_user(user=request.user, pk=pk)
    if request.method == "GET":
        if not selectors.can_operate(user=request.user, account_id=task.account_id):
            return _may_not_act()
        return render(
            request,
            CONFIRM_TEMPLATE,
            {
                "task": task,
                "action": "delete",
                "outputs_unarchived": actions.outputs_unarchived(task),
                "next": _next_url(request),
            },
        )
    result = actions.task_delete(
        task=task,
        user=request.user,
        confirm_unarchived=request.POST.get("confirm_unarchived") == "1",
        remove_local=request.POST.get("remove_local") == "1",
    )
    if result.code == "forbidden":
        return _forbidden(result.message)
    if result.code == "needs_confirmation" and not request.htmx:
        return render(
            request,
            CONFIRM_TEMPLATE,
            {"task": task, "action": "delete", "outputs_unarchived": True, "next": _next_url(request),
             "error": result.message},
            status=409,
        )
    return _action_response(request, result)


def _action_response(request: HttpRequest, result: actions.ActionResult) -> HttpResponse:
    """htmx: the row, re-rendered with the result on it. Otherwise: back, with a message."""
    if request.htmx:
        if result.task is None:  # removed locally: the row disappears
            return HttpResponse("")
        selectors.attach_archive_progress([result.task])
        now = timezone.now()
        rows = row_views.present([result.task], now=now, access=selectors.access_for(request.user))
        return HttpResponse(
            row_html.render_rows(
                rows, return_to=_htmx_page(request), row_message=result.message, row_message_ok=result.ok,
                needs_confirmation=result.code == "needs_confirmation",
            )
        )
    level = messages.SUCCESS if result.ok else messages.ERROR
    messages.add_message(request, level, result.message)
    fallback = reverse("tasks_app:task_detail", args=[result.task.pk]) if result.task else reverse("tasks_app:task_list")
    return HttpResponseRedirect(_next_url(request) or fallback)


def _htmx_page(request: HttpRequest) -> str:
    """The page an htmx fragment lands in (for the rows' no-JS links back to it)."""
    current = request.htmx.current_url_abs_path if request.htmx else None
    return current if current and current.startswith("/") else reverse("tasks_app:task_list")


def _next_url(request: HttpRequest) -> str | None:
    candidate = request.POST.get("next") or request.GET.get("next")
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return None


@login_required
@require_POST
def tasks_cancel_bulk(request: HttpRequest) -> HttpResponse:
    """Cancel the selected rows (`ids`) or every queued task matching the filter in the URL.

    The filter travels in the query string. Without `confirmed=1` it answers with a
    confirmation page showing the count; the page's script asks in a dialog instead and
    sets `confirmed` itself. "Everything matching" covers the accounts the user operates;
    selected rows of other visible accounts are refused (and audited) by the service.
    """
    filterset = TaskFilter(data=request.GET, queryset=selectors.tasks_operable_by(request.user))
    list_url = reverse("tasks_app:task_list") + (f"?{request.GET.urlencode()}" if request.GET else "")
    scope = "matching" if request.POST.get("scope") == "matching" else "selected"
    if scope == "matching":
        if not filterset.is_valid():
            messages.error(request, _("Fix the filter before cancelling everything it matches."))
            return HttpResponseRedirect(list_url)
        candidates = filterset.qs.filter(status=TaskStatus.QUEUED, gone_upstream_at__isnull=True)
    else:
        pks = [int(value) for value in request.POST.getlist("ids") if PK_VALUE.match(value)][:MAX_POLLED_ROWS]
        candidates = selectors.tasks_visible_to(request.user).filter(pk__in=pks)

    if request.POST.get("confirmed") != "1":
        queued = candidates.filter(status=TaskStatus.QUEUED, gone_upstream_at__isnull=True)
        return render(
            request,
            CONFIRM_TEMPLATE,
            {"action": "bulk", "scope": scope, "count": queued.count(), "pks": list(queued.values_list("pk", flat=True)),
             "list_url": list_url, "query_string": request.GET.urlencode()},
        )
    report = actions.tasks_cancel_bulk(tasks=candidates.select_related("account"), user=request.user)
    level = messages.SUCCESS if not report.refused and not report.failed else messages.WARNING
    messages.add_message(request, level, report.message)
    return HttpResponseRedirect(list_url)

