"""The archive page and the archive actions: retry, bulk delete record, bulk remove, retention.

Short function views: validate, call one selector or service, render. Who may act is
decided by the services (refusals are audited) and selectors.Access.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from . import selectors
from .filters import TaskFilter
from .models import Artifact
from .services import actions, archive_control, retention
from .views import _artifact_view, _next_url

ARCHIVE_TEMPLATE = "tasks_app/archive.html"
CONFIRM_TEMPLATE = "tasks_app/archive_confirm.html"
DETAIL_TEMPLATE = "tasks_app/task_detail.html"
# One click deletes or removes at most this many tasks (each delete is a call to Ark).
BULK_LIMIT = 500
DAYS_VALUE_MAX_CHARS = 6


# --- the archive page ----------------------------------------------------------------------


@login_required
@require_safe
def archive_page(request: HttpRequest) -> HttpResponse:
    """Outputs waiting for the archive, copies in progress, throughput, workers, storage.

    Its live part polls this same URL (htmx, HX-Target archive-live) and gets only that part.
    """
    access = selectors.access_for(request.user)
    now = timezone.now()
    context = {
        "queue": selectors.archive_queue(access=access, now=now),
        "counts": selectors.archive_queue_counts(access=access),
        "throughput": selectors.archive_throughput(access=access, now=now),
        "workers": selectors.workers_recent(now=now),
        "now": now,
    }
    if request.htmx and request.htmx.target == "archive-live":
        response = render(request, f"{ARCHIVE_TEMPLATE}#archive-live", context)
    else:
        context["storage"] = selectors.archive_storage_by_account(access=access, now=now)
        response = render(request, ARCHIVE_TEMPLATE, context)
    response["Cache-Control"] = "no-store"
    return response


# --- retry -----------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def artifact_retry(request: HttpRequest, artifact_id: int) -> HttpResponse:
    """"Retry now" on one output. htmx: its download line, re-rendered with the result."""
    artifact = selectors.artifact_for_user(user=request.user, pk=artifact_id)
    if request.method != "POST":  # after the lookup: another account's output is a 404 either way
        return HttpResponseNotAllowed(["POST"])
    result = archive_control.artifact_retry(artifact=artifact, user=request.user)
    status = 200 if result.ok else (403 if result.code == "forbidden" else 409)
    if request.htmx:
        item = _artifact_item(result.artifact, can_operate=result.code != "forbidden")
        context = {"item": item, "task": result.artifact.task, "item_message": result.message,
                   "item_message_ok": result.ok}  # fmt: skip
        return render(request, f"{DETAIL_TEMPLATE}#download-item", context, status=status)
    if not result.ok:
        return _refused(request, result.message, _task_url(result.artifact), status=status)
    messages.success(request, result.message)
    return HttpResponseRedirect(_next_url(request) or _task_url(result.artifact))


@login_required
@require_safe
def artifact_line(request: HttpRequest, artifact_id: int) -> HttpResponse:
    """One output's line of the task page: what it polls while the output is on its way."""
    access = selectors.access_for(request.user)
    artifact = selectors.artifact_for_user(user=request.user, pk=artifact_id, access=access)
    item = _artifact_item(artifact, can_operate=access.can_operate(artifact.task.account_id))
    response = render(request, f"{DETAIL_TEMPLATE}#download-item", {"item": item, "task": artifact.task})
    response["Cache-Control"] = "no-store"
    return response


def _task_url(artifact: Artifact) -> str:
    return reverse("tasks_app:task_detail", args=[artifact.task_id])


def _artifact_item(artifact: Artifact, *, can_operate: bool) -> dict:
    return _artifact_view(artifact, can_operate=can_operate)


@login_required
@require_POST
def outputs_retry_failed(request: HttpRequest) -> HttpResponse:
    """"Retry all failed": every failed output of the tasks the list's filter (in the URL) matches."""
    access = selectors.access_for(request.user)
    filterset = TaskFilter(data=request.GET, queryset=access.operable_tasks())
    list_url = _list_url(request)
    if not _operates_any(access):
        return _refused(request, _("You can see these outputs but not retry them: ask an admin for the operator role."),
                        list_url, status=403)
    if not filterset.is_valid():
        return _refused(request, _("Fix the filter before acting on everything it matches."), list_url, status=400)
    report = archive_control.artifacts_retry_failed(tasks=filterset.qs, user=request.user)
    messages.add_message(request, messages.SUCCESS if not report.refused else messages.WARNING, report.message)
    return HttpResponseRedirect(list_url)


# --- bulk delete record / remove from ArkDash ------------------------------------------------------


@login_required
@require_POST
def tasks_delete_bulk(request: HttpRequest) -> HttpResponse:
    """Delete Ark's record of every finished task matching the filter in the URL.

    Without `confirmed=1`: a confirmation page with the count, asking a second, explicit
    confirmation (`confirm_unarchived=1`) for the tasks whose outputs are not archived;
    without it those are not deleted.
    """
    access = selectors.access_for(request.user)
    list_url = _list_url(request)
    filterset = TaskFilter(data=request.GET, queryset=access.operable_tasks())
    if not _operates_any(access):
        return _refused(request, _("You can see these tasks but not delete them: ask an admin for the operator role."),
                        list_url, status=403)
    if not filterset.is_valid():
        return _refused(request, _("Fix the filter before acting on everything it matches."), list_url, status=400)
    candidates = selectors.tasks_deletable(tasks=filterset.qs)
    if request.POST.get("confirmed") != "1":
        count = candidates.count()
        return render(request, CONFIRM_TEMPLATE, {
            "action": "bulk_delete", "count": count, "limit": BULK_LIMIT,
            "unarchived": candidates.filter(selectors.unarchived_outputs_q()).count(),
            "list_url": list_url, "query_string": request.GET.urlencode(),
        })  # fmt: skip
    chosen = list(candidates.select_related("account").order_by("pk")[:BULK_LIMIT])
    report = actions.tasks_delete_bulk(
        tasks=chosen, user=request.user, confirm_unarchived=request.POST.get("confirm_unarchived") == "1"
    )
    level = messages.SUCCESS if report.done == len(report.results) else messages.WARNING
    messages.add_message(request, level, report.message_for("bulk_delete"))
    return HttpResponseRedirect(list_url)


@login_required
@require_POST
def tasks_remove_bulk(request: HttpRequest) -> HttpResponse:
    """Remove from ArkDash every task matching the filter that Ark no longer has, with
    its outputs' archived files. Without `confirmed=1`: a page saying what would go."""
    access = selectors.access_for(request.user)
    list_url = _list_url(request)
    filterset = TaskFilter(data=request.GET, queryset=access.operable_tasks())
    if not _operates_any(access):
        return _refused(request, _("You can see these tasks but not remove them: ask an admin for the operator role."),
                        list_url, status=403)
    if not filterset.is_valid():
        return _refused(request, _("Fix the filter before acting on everything it matches."), list_url, status=400)
    candidates = selectors.tasks_gone(tasks=filterset.qs)
    if request.POST.get("confirmed") != "1":
        outputs, size = selectors.archived_files_of(tasks=candidates)
        return render(request, CONFIRM_TEMPLATE, {
            "action": "bulk_remove", "count": candidates.count(), "limit": BULK_LIMIT, "outputs": outputs,
            "size": size, "list_url": list_url, "query_string": request.GET.urlencode(),
        })  # fmt: skip
    chosen = list(candidates.select_related("account").order_by("pk")[:BULK_LIMIT])
    report = actions.tasks_remove_bulk(tasks=chosen, user=request.user)
    level = messages.SUCCESS if report.done == len(report.results) else messages.WARNING
    messages.add_message(request, level, report.message_for("bulk_remove"))
    return HttpResponseRedirect(list_url)


# --- retention --------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def account_retention(request: HttpRequest, account_id: int) -> HttpResponse:
    """Set (days) or turn off (empty) an account's retention rule, from the archive page."""
    access = selectors.access_for(request.user)
    account = access.accounts().filter(pk=account_id).first()
    if account is None:
        raise Http404("No such account")
    if request.method != "POST":  # after the lookup: another account is a 404 either way
        return HttpResponseNotAllowed(["POST"])
    back = reverse("tasks_app:archive")
    text = request.POST.get("days", "").strip()
    if text and not (text.isascii() and text.isdigit() and len(text) <= DAYS_VALUE_MAX_CHARS):
        return _refused(request, _("Enter a whole number of days, or leave it empty to keep outputs forever."), back,
                        status=400)
    try:
        retention.account_retention_set(account=account, days=int(text) if text else None, user=request.user)
    except retention.RetentionError as refusal:
        status = 403 if not access.can_operate(account.pk) else 400
        return _refused(request, refusal.message, back, status=status)
    messages.success(request, _("Retention rule of %(account)s saved.") % {"account": account.name})
    return HttpResponseRedirect(back)


# --- helpers ----------------------------------------------------------------------------------


def _operates_any(access: selectors.Access) -> bool:
    return access.everything or bool(access.operable_account_ids)


def _list_url(request: HttpRequest) -> str:
    return reverse("tasks_app:task_list") + (f"?{request.GET.urlencode()}" if request.GET else "")


def _refused(request: HttpRequest, message: str, back: str, *, status: int) -> HttpResponse:
    """A 4xx page that says why nothing was done and leads back."""
    return render(request, CONFIRM_TEMPLATE, {"action": "refused", "message": message, "back": back}, status=status)
