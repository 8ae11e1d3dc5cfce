"""/api/v3/contents/generations/tasks[/{id}]: Ark's protocol, served by ArkDash.

Plain function views: authenticate the token, apply its request limit, parse Ark's
parameters, call one selector or service, answer Ark's JSON or Ark's error envelope.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from ..ark import MAX_PAGE_SIZE, TASK_ID
from ..models import Artifact, ArtifactState, Task, TaskStatus
from ..views_download import archived_file_response
from . import outputs, selectors, services
from .auth import Caller, account_for_create, authenticate, limit_requests
from .errors import GatewayError, bad_param, error_response, not_found, request_id_of
from .serializers import output_links, task_objects

# Ark's id alphabet (cgt-20250331175019-68d9t), with room to spare: anything else is no task.
_STATUSES = frozenset(TaskStatus.values)
_SERVICE_TIERS = frozenset({"default", "flex"})
# No maximum is documented; this many ids is far beyond any URL a server accepts.
MAX_TASK_IDS = 1000
MAX_BODY_BYTES = 1024 * 1024
_MAX_PAGE_NUM = 10**9
_MAX_TEXT_CHARS = 128

View = Callable[..., HttpResponseBase]


def _ark_view(view: View) -> View:
    """Token, request limit and Ark's error envelope around a gateway view."""

    @csrf_exempt  # a bearer token, never a cookie: nothing for CSRF to protect
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            caller = authenticate(request.headers.get("Authorization", ""))
            limit_requests(caller.token)
            return view(request, caller, *args, **kwargs)
        except GatewayError as error:
            return error_response(request, error)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


@_ark_view
def tasks_collection(request: HttpRequest, caller: Caller) -> HttpResponseBase:
    if request.method == "GET":
        return _list(request, caller)
    if request.method == "POST":
        return _create(request, caller)
    raise _method_not_allowed(request)


@_ark_view
def task_item(request: HttpRequest, caller: Caller, task_id: str) -> HttpResponseBase:
    if request.method not in ("GET", "DELETE"):
        raise _method_not_allowed(request)
    if not TASK_ID.match(task_id):
        raise not_found(task_id[:80])
    task = selectors.gateway_task(account_ids=caller.account_ids, ark_id=task_id)
    if task is None:
        raise not_found(task_id)
    if request.method == "GET":
        return _ok(request, task_objects([task], links=output_links(request.build_absolute_uri))[0])
    return _delete(request, caller, task)


@csrf_exempt
def not_an_endpoint(request: HttpRequest, rest: str = "") -> HttpResponse:
    return error_response(request, GatewayError(404, "NotFound.Path", "No such path in Ark's task API."))


# --- list ---------------------------------------------------------------------------------


def _list(request: HttpRequest, caller: Caller) -> HttpResponse:
    query = _list_query(request)
    total, tasks = selectors.gateway_task_page(account_ids=caller.account_ids, query=query)
    items = task_objects(tasks, links=output_links(request.build_absolute_uri))
    return _ok(request, {"total": total, "items": items})


def _list_query(request: HttpRequest) -> selectors.ListQuery:
    args = request.GET
    status = _text_arg(args.get("filter.status"), "filter.status")
    if status is not None and status not in _STATUSES:
        raise bad_param("filter.status", f"filter.status must be one of: {', '.join(sorted(_STATUSES))}.")
    tier = _text_arg(args.get("filter.service_tier"), "filter.service_tier")
    if tier is not None and tier not in _SERVICE_TIERS:
        raise bad_param("filter.service_tier", "filter.service_tier must be one of: default, flex.")
    task_ids = tuple(dict.fromkeys(value for value in args.getlist("filter.task_ids") if value))
    if len(task_ids) > MAX_TASK_IDS:
        raise bad_param("filter.task_ids", f"At most {MAX_TASK_IDS} filter.task_ids per request.")
    if not all(TASK_ID.match(value) for value in task_ids):
        raise bad_param("filter.task_ids", "filter.task_ids holds a value that is no task id.")
    return selectors.ListQuery(
        page_num=_int_arg(args.get("page_num"), "page_num", default=1, high=_MAX_PAGE_NUM),
        page_size=_int_arg(args.get("page_size"), "page_size", default=10, high=MAX_PAGE_SIZE),
        status=status,
        task_ids=task_ids,
        model=_text_arg(args.get("filter.model"), "filter.model"),
        service_tier=tier,
    )


def _int_arg(raw: str | None, name: str, *, default: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12 or not 1 <= int(raw) <= high:
        raise bad_param(name, f"{name} must be an integer from 1 to {high}.")
    return int(raw)


def _text_arg(raw: str | None, name: str) -> str | None:
    if raw is None or raw == "":
        return None
    if len(raw) > _MAX_TEXT_CHARS or not raw.isprintable():
        raise bad_param(name, f"{name} is not a valid value.")
    return raw


# --- create ---------------------------------------------------------------------------------


def _create(request: HttpRequest, caller: Caller) -> HttpResponse:
    if caller.token.read_only:  # before anything else, as Ark checks permission before parameters
        raise GatewayError(403, "AccessDenied", "This token is read-only: it cannot create tasks.")
    body = _create_body(request)
    account = account_for_create(caller, _text_arg(request.headers.get("X-ArkDash-Account"), "X-ArkDash-Account")
                                 or "")
    hook = request.build_absolute_uri(reverse("gateway:ark_callback", args=[account.callback_secret]))
    task = services.task_create(caller=caller, account=account, body=body, ark_callback_url=hook,
                                 site_url=request.build_absolute_uri("/"))
    return _ok(request, {"id": task.ark_id})


def _create_body(request: HttpRequest) -> dict[str, Any]:
    declared = request.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise GatewayError(413, "InvalidParameter", "The request body is too large.")
    try:
        raw = request.body
    except RequestDataTooBig:
        raise GatewayError(413, "InvalidParameter", "The request body is too large.") from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise bad_param("", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise bad_param("", "The request body must be a JSON object.")
    # The official SDK sends unset options as null: null means absent.
    body = {key: value for key, value in data.items() if value is not None}
    model = body.get("model")
    if model is None:
        raise GatewayError(400, "MissingParameter", "The parameter `model` is required.", param="model")
    if not isinstance(model, str) or not model.strip() or len(model) > _MAX_TEXT_CHARS or not model.isprintable():
        raise bad_param("model", "`model` must be a model name or an endpoint id.")
    content = body.get("content")
    if content is None:
        raise GatewayError(400, "MissingParameter", "The parameter `content` is required.", param="content")
    if not isinstance(content, list) or not content or not all(isinstance(item, dict) for item in content):
        raise bad_param("content", "`content` must be a non-empty list of objects.")
    callback_url = body.get("callback_url")
    if callback_url is not None and (
        not isinstance(callback_url, str) or len(callback_url) > 2000 or not callback_url.isprintable()
    ):
        raise bad_param("callback_url", "`callback_url` must be an http(s) URL.")
    return body


# --- delete ---------------------------------------------------------------------------------


def _delete(request: HttpRequest, caller: Caller, task: Task) -> HttpResponse:
    if caller.token.read_only:
        raise GatewayError(403, "AccessDenied", "This token is read-only: it cannot cancel or delete tasks.")
    if task.gone_upstream_at is not None:
        raise not_found(task.ark_id)  # aged out of Ark's window: Ark has nothing to delete
    result = services.task_cancel_or_delete(caller=caller, task=task)
    if result.ok:
        return _ok(request, {})
    if result.code == "forbidden":
        raise GatewayError(403, "AccessDenied", "Your role on this account does not allow cancel or delete.")
    if result.code == "gone":
        raise not_found(task.ark_id)
    if result.code == "refused":
        raise GatewayError(400, "InvalidParameter.TaskStatus", _plain(result.message), param="id")
    raise GatewayError(502, "UpstreamError", "Ark could not be reached or failed; nothing changed. Try again.")


def _plain(message: str) -> str:
    return " ".join(str(message).split())[:300]


# --- outputs --------------------------------------------------------------------------------


def output_download(request: HttpRequest, signed: str) -> HttpResponseBase:
    """An archived output, for whoever holds an unexpired signed link (no session needed)."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
    artifact_id = outputs.unsign(signed)
    if artifact_id is None:
        return HttpResponse("This link is invalid or has expired.", status=403, content_type="text/plain")
    artifact = Artifact.objects.filter(pk=artifact_id, state=ArtifactState.ARCHIVED, removed_at__isnull=True).first()
    if artifact is None:
        raise Http404("No such output")
    return archived_file_response(request, artifact)


# --- helpers --------------------------------------------------------------------------------


def _ok(request: HttpRequest, body: dict[str, Any]) -> JsonResponse:
    response = JsonResponse(body)
    response["x-request-id"] = request_id_of(request)
    return response


def _method_not_allowed(request: HttpRequest) -> GatewayError:
    return GatewayError(405, "MethodNotAllowed", f"{request.method[:10]} is not allowed here.")
