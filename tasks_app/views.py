"""The dashboard's pages and fragments. Function views: the control flow stays visible.

Views validate input, call one selector or service, and render. They read the local
mirror only; the sole upstream calls happen inside the cancel/delete services.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from . import selectors
from .filters import PAGE_SIZES, Cursor, Paging, TaskFilter, parse_paging
from .models import ArchiveState, Artifact, ArtifactOutput, ArtifactState, Task, TaskKind, TaskStatus
from .selectors import archive_lag_seconds
from .services import actions

LIST_TEMPLATE = "tasks_app/task_list.html"
DETAIL_TEMPLATE = "tasks_app/task_detail.html"
CONFIRM_TEMPLATE = "tasks_app/task_confirm.html"
# rows=<pk>.<version>,... as sent by the poller; a page holds at most 200 rows.
ROW_VERSION = re.compile(r"^(\d{1,18})\.(\d{1,20})$")
# A primary key as a form sends it: ASCII digits that fit a 64-bit column (SQLite raises
# OverflowError on anything larger instead of matching nothing).
PK_VALUE = re.compile(r"^[0-9]{1,18}$")
MICROSECONDS = re.compile(r"^[0-9]{1,17}$")
MAX_POLLED_ROWS = 200
# The "N new tasks" notice counts up to this many, then says "99+".
NEW_TASKS_SHOWN = 99
# After a write, the poll looks again for this long: a transaction that began earlier
# (a sync cycle) may commit rows whose changed_at is older than the newest one it saw.
CHANGE_GRACE = timedelta(seconds=30)
# Output URLs die 24 h after success: a lag of hours is a warning long before that.
ARCHIVE_LAG_SHOWN_AFTER = 60
ARCHIVE_LAG_ALARM_AFTER = 3600
ARCHIVE_LAG_CACHE_SECONDS = 15
CURSOR_PARAMS = ("after", "before")
# A stored row is at most this old in what time alone changes ("5 minutes ago", run time).
ROW_CACHE_BUCKET_SECONDS = 30
POLL_PARAMS = ("rows", "health", "seen", "newest", "counts", "slide")  # the poll's own, beside the filter


# --- the list ------------------------------------------------------------------------


@dataclass
class FilteredPage:
    """One page of the filtered tasks, as the list and the gallery show it."""

    access: selectors.Access
    filterset: TaskFilter
    paging: Paging
    page: selectors.TaskListPage
    counts: dict[str, int]
    selected: list[str]
    errors: list[str]
    filter_params: QueryDict  # the query without the cursor and without what was rejected

    def context(self) -> dict[str, object]:
        """What the filter form, the chips and the pager partials need."""
        return {
            "filter": self.filterset,
            "errors": self.errors,
            "total": _total(self.counts, self.selected),
            "chips": _status_chips(self.filter_params, self.counts, self.selected),
            "counts_signature": _signature(self.counts),
            "pager": _pager_links(self.filter_params, self.page),
            "known_models": selectors.known_models(access=self.access),
            "page_sizes": PAGE_SIZES,
            "page_size": self.paging.page_size,
        }


def filtered_page(request: HttpRequest) -> FilteredPage:
    """The list's filters, cursor and access applied to the request (list and gallery alike)."""
    access = selectors.access_for(request.user)
    filterset = TaskFilter(data=request.GET, queryset=access.tasks())
    paging = parse_paging(request.GET)
    # Links built from this page (chips, pager) leave out what was rejected.
    params = request.GET.copy()
    for name in [*filterset.rejected_params(), *paging.invalid]:
        params.pop(name, None)
    page = selectors.task_list(filterset=filterset, paging=paging)
    _prepare_rows(page.tasks, access)
    return FilteredPage(
        access=access, filterset=filterset, paging=paging, page=page,
        counts=selectors.status_counts(queryset=filterset.queryset_without_status()),
        selected=filterset.selected_statuses(), errors=[*filterset.error_messages(), *paging.errors],
        filter_params=_without(params, *CURSOR_PARAMS),
    )  # fmt: skip


@login_required
@require_safe
def task_list(request: HttpRequest) -> HttpResponse:
    shown = filtered_page(request)
    access, filterset, page, errors = shown.access, shown.filterset, shown.page, shown.errors
    context = {
        **shown.context(),
        "tasks": page.tasks,
        "queued_in_filter": _queued_operable(filterset, shown.counts, shown.selected, access),
        "health": selectors.sync_health(user=request.user, access=access),
        "archive_lag": _archive_lag(access),
        "has_cancellable_rows": any(task.operable_cancel for task in page.tasks),
        "operates_any": access.everything or bool(access.operable_account_ids),
        "query_string": request.GET.urlencode(),
        "poll_query": shown.filter_params.urlencode(),
        # What the poll compares against: the newest task of the filter, the last write seen.
        "newest": selectors.newest_cursor(queryset=filterset.qs) or "",
        "seen": _micros(selectors.last_change(access=access)),
        "slide_in": page.is_first and filterset.sort_name == "-created",
        "now_epoch": int(timezone.now().timestamp()),
        "time_bucket": int(timezone.now().timestamp()) // ROW_CACHE_BUCKET_SECONDS,
        "return_to": request.get_full_path(),
    }
    return render(request, LIST_TEMPLATE, context, status=400 if errors else 200)


def _prepare_rows(tasks: list[Task], access: selectors.Access) -> None:
    """What a row shows beyond the task itself: labels, copy progress, the viewer's buttons."""
    selectors.attach_archive_progress(tasks)
    # Labels looked up once per answer: Model.get_FOO_display() hashes every choice per call.
    statuses, kinds, archive_states = (
        {value: str(label) for value, label in choices.choices} for choices in (TaskStatus, TaskKind, ArchiveState)
    )
    for task in tasks:
        task.status_label = statuses.get(task.status, task.status)
        task.kind_label = kinds.get(task.kind, task.kind)
        task.archive_label = archive_states.get(task.archive_state, task.archive_state)
        operable = access.can_operate(task.account_id)
        task.operable_cancel = operable and task.can_cancel
        task.operable_delete = operable and task.can_delete


def _without(params: QueryDict, *names: str) -> QueryDict:
    params = params.copy()
    for name in names:
        params.pop(name, None)
    return params


def _with_params(params: QueryDict, **changes: str | list[str] | None) -> str:
    """The query string with some keys replaced (None removes the key), as a relative link."""
    query = params.copy()
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        elif isinstance(value, list):
            query.setlist(key, value)
        else:
            query[key] = value
    encoded = query.urlencode()
    return f"?{encoded}" if encoded else "?"


def _count_label(n: int) -> str:
    return f"{selectors.COUNT_CAP:,}+" if n > selectors.COUNT_CAP else f"{n:,}"


def _total(counts: dict[str, int], selected: list[str]) -> dict:
    """The tasks the filter matches, as counted (each status up to the cap)."""
    shown = [counts[status] for status in (selected or counts)]
    capped = any(n > selectors.COUNT_CAP for n in shown)
    total = sum(min(n, selectors.COUNT_CAP) for n in shown)
    return {"count": total, "label": f"{total:,}+" if capped else f"{total:,}"}


def _signature(counts: dict[str, int]) -> str:
    return ".".join(str(counts[status]) for status in TaskStatus.values)


def _status_chips(params: QueryDict, counts: dict[str, int], selected: list[str]) -> list[dict]:
    """One chip per status: its count under the other filters and a link toggling it."""
    chips = []
    for value, label in TaskStatus.choices:
        is_selected = value in selected
        toggled = [s for s in selected if s != value] if is_selected else [*selected, value]
        chips.append({
            "value": value, "label": label, "count": _count_label(counts[value]), "selected": is_selected,
            "href": _with_params(params, status=toggled),
        })  # fmt: skip
    return chips


def _pager_links(params: QueryDict, page: selectors.TaskListPage) -> dict:
    return {
        "first": None if page.is_first else _with_params(params),
        "newer": _with_params(params, before=str(page.newer)) if page.newer else None,
        "older": _with_params(params, after=str(page.older)) if page.older else None,
    }


def _queued_operable(filterset: TaskFilter, counts: dict[str, int], selected: list[str],
                     access: selectors.Access) -> int:
    """Queued tasks in the filter that the user may cancel (the "cancel all matching" button)."""
    if selected and TaskStatus.QUEUED not in selected:
        return 0
    if access.operates_all_it_sees:
        return counts[TaskStatus.QUEUED]  # already counted (Ark caps queued tasks near 120)
    if not access.operable_account_ids:
        return 0
    queued = filterset.qs.filter(status=TaskStatus.QUEUED, account_id__in=access.operable_account_ids)
    return queued.order_by()[: selectors.COUNT_CAP + 1].count()


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


def _micros(moment: datetime | None) -> str:
    return str(int(moment.timestamp() * 1_000_000)) if moment else ""


# --- the live poll -------------------------------------------------------------------


@dataclass(frozen=True)
class PollState:
    """What the page shows now, as its poll reports it (all optional)."""

    versions: dict[int, int]  # rows=<pk>.<version>,… of the page's live rows
    health: str  # the banner's state
    seen: datetime | None  # the newest write the page knows of (microseconds)
    newest: Cursor | None  # the newest task of the filter the page knows of
    counts: str  # the chips' counts, as _signature() wrote them
    slide_in: bool  # new tasks go on top of the page (its first page, newest first)


def _parse_poll(params: QueryDict) -> PollState | None:
    """The poll's own parameters; None when one of them is malformed."""
    versions: dict[int, int] = {}
    for item in filter(None, params.get("rows", "").split(",")):
        match = ROW_VERSION.match(item)
        if match is None:
            return None
        versions[int(match[1])] = int(match[2])
    if len(versions) > MAX_POLLED_ROWS:
        return None
    seen_text, newest_text = params.get("seen", ""), params.get("newest", "")
    if seen_text and not MICROSECONDS.match(seen_text):
        return None
    try:
        newest = Cursor.parse(newest_text) if newest_text else None
        seen = datetime.fromtimestamp(int(seen_text) / 1_000_000, tz=UTC) if seen_text else None
    except (ValueError, OverflowError, OSError):
        return None
    return PollState(
        versions=versions, health=params.get("health", "")[:20], seen=seen, newest=newest,
        counts=params.get("counts", "")[:200], slide_in=params.get("slide") == "1",
    )


@login_required
@require_safe
def task_rows(request: HttpRequest) -> HttpResponse:
    """The live poll: what changed on the page since it last asked; 204 when nothing did.

    The query string holds the page's filter and the poll's own parameters (PollState).
    The answer holds, as out-of-band swaps, the rows that changed, new tasks (on top of
    the first page, or a "N new tasks" notice elsewhere), the chips when a count moved
    and the sync banner when its state did. Headers carry what the next poll sends back.
    """
    poll = _parse_poll(request.GET)
    if poll is None:
        return HttpResponse("Bad poll parameters.", status=400, content_type="text/plain; charset=utf-8")
    access, health = selectors.access_and_health(request.user)
    changed = selectors.rows_changed(access=access, versions=poll.versions)
    latest = selectors.last_change(access=access)
    context: dict = {"health": health, "send_health": poll.health and poll.health != health.state}
    headers = {"X-Ark-Synced-At": str(health.synced_epoch or ""), "X-Ark-Seen": _micros(latest)}

    if _mirror_moved(latest, seen=poll.seen):
        filterset = TaskFilter(data=request.GET, queryset=access.tasks())
        counts = selectors.status_counts(queryset=filterset.queryset_without_status())
        if _signature(counts) != poll.counts:
            params = _without(request.GET, *POLL_PARAMS, *CURSOR_PARAMS)
            for name in filterset.rejected_params():
                params.pop(name, None)
            selected = filterset.selected_statuses()
            context.update(chips=_status_chips(params, counts, selected), counts_signature=_signature(counts),
                           total=_total(counts, selected))
        limit = parse_paging(request.GET).page_size if poll.slide_in else NEW_TASKS_SHOWN + 1
        new = selectors.tasks_newer_than(queryset=filterset.qs, cursor=poll.newest, limit=limit)
        if new and poll.slide_in:
            _prepare_rows(new, access)
            context["new_tasks"] = new
            headers["X-Ark-Newest"] = str(Cursor.of(new[0], filterset.chosen_sort))
        elif new:
            context["new_count"] = len(new)
            context["new_count_label"] = f"{NEW_TASKS_SHOWN}+" if len(new) > NEW_TASKS_SHOWN else str(len(new))
            context["new_tasks_href"] = reverse("tasks_app:task_list") + _with_params(
                _without(request.GET, *POLL_PARAMS, *CURSOR_PARAMS, "sort")
            )
    if changed:
        _prepare_rows(changed, access)
        context["tasks"] = changed

    if not any(context.get(key) for key in ("send_health", "chips", "new_tasks", "new_count", "tasks")):
        response = HttpResponse(status=204)
        # No body, nothing for a Content-Security-Policy to govern: its ~650 bytes would be
        # most of every idle poll.
        response._csp_exempt = True
    else:
        context["return_to"] = _htmx_page(request)
        response = render(request, f"{LIST_TEMPLATE}#poll-answer", context)
    for name, value in headers.items():
        response[name] = value
    response["Cache-Control"] = "no-store"
    return response


def _mirror_moved(latest: datetime | None, *, seen: datetime | None) -> bool:
    """Has anything been written since the page last looked (or so recently that a slower
    transaction may still commit more)? Only then are the counts and new tasks read."""
    if latest is None:
        return seen is None
    if seen is None or latest > seen:
        return True
    return timezone.now() - latest < CHANGE_GRACE


# --- detail --------------------------------------------------------------------------


@login_required
@require_safe  # HEAD too, for uptime checks
def task_detail(request: HttpRequest, pk: int) -> HttpResponse:
    task = selectors.task_for_user(user=request.user, pk=pk)
    artifacts = list(task.artifacts.order_by("output"))
    now = timezone.now()
    outputs = _outputs(task, artifacts, now)
    can_operate = selectors.can_operate(user=request.user, account_id=task.account_id)
    response = render(
        request,
        DETAIL_TEMPLATE,
        {
            "task": task,
            "artifacts": [_artifact_view(artifact, can_operate=can_operate) for artifact in artifacts],
            "outputs": outputs,
            "timeline": selectors.task_timeline(task=task),
            "raw_json": json.dumps(task.raw, indent=2, ensure_ascii=False, sort_keys=True),
            "outputs_unarchived": selectors.outputs_unarchived(task),
            "can_operate": can_operate,
            "now": now,
        },
    )
    if outputs["model_viewer"]:
        # django-csp adds these to the policy of this answer only (see settings).
        response._csp_update = settings.ARKDASH_CSP_3D_VIEWER
    return response


def _download_url(artifact: Artifact) -> str | None:
    if not artifact.is_downloadable:
        return None
    try:
        return reverse("tasks_app:artifact_download", args=[artifact.pk])
    except NoReverseMatch:  # the archive's download view is not installed
        return None


def _artifact_view(artifact: Artifact, *, can_operate: bool = False) -> dict:
    percent = None
    if artifact.state == ArtifactState.COPYING and artifact.size:
        percent = min(100, int(100 * artifact.bytes_copied / artifact.size))
    return {"artifact": artifact, "download_url": _download_url(artifact), "percent": percent,
            "retryable": can_operate and artifact.can_retry}


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


@login_required
@require_http_methods(["GET", "POST"])
def task_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    # GET shows the confirmation page (works without JavaScript) and changes nothing.
    if request.method == "GET":
        try:
            task = selectors.task_for_operator(user=request.user, pk=pk)
        except PermissionDenied as refusal:
            return _forbidden(str(refusal))
        return render(request, CONFIRM_TEMPLATE, {"task": task, "action": "cancel", "next": _next_url(request)})
    # POST: the service decides who may act, and audits a refusal.
    task = selectors.task_for_user(user=request.user, pk=pk)
    result = actions.task_cancel(task=task, user=request.user)
    if result.code == "forbidden":
        return _forbidden(result.message)
    return _action_response(request, result)


@login_required
@require_http_methods(["GET", "POST"])
def task_delete(request: HttpRequest, pk: int) -> HttpResponse:
    if request.method == "GET":
        try:
            task = selectors.task_for_operator(user=request.user, pk=pk)
        except PermissionDenied as refusal:
            return _forbidden(str(refusal))
        return render(
            request,
            CONFIRM_TEMPLATE,
            {
                "task": task,
                "action": "delete",
                "outputs_unarchived": selectors.outputs_unarchived(task),
                "next": _next_url(request),
            },
        )
    task = selectors.task_for_user(user=request.user, pk=pk)
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
        _prepare_rows([result.task], selectors.access_for(request.user))
        context = {
            "task": result.task, "return_to": _htmx_page(request), "row_message": result.message,
            "row_message_ok": result.ok, "needs_confirmation": result.code == "needs_confirmation",
        }  # fmt: skip
        return render(request, f"{LIST_TEMPLATE}#task-row", context)
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
    access = selectors.access_for(request.user)
    filterset = TaskFilter(data=request.GET, queryset=access.operable_tasks())
    list_url = reverse("tasks_app:task_list") + (f"?{request.GET.urlencode()}" if request.GET else "")
    scope = "matching" if request.POST.get("scope") == "matching" else "selected"
    if scope == "matching":
        if not filterset.is_valid():
            messages.error(request, _("Fix the filter before cancelling everything it matches."))
            return HttpResponseRedirect(list_url)
        candidates = filterset.qs.filter(status=TaskStatus.QUEUED, gone_upstream_at__isnull=True)
    else:
        pks = [int(value) for value in request.POST.getlist("ids") if PK_VALUE.match(value)][:MAX_POLLED_ROWS]
        candidates = access.tasks().filter(pk__in=pks)

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

