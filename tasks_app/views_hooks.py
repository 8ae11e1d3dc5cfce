"""Endpoints called by machines, not people: Ark's task callbacks."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .services import callbacks


@csrf_exempt  # Ark cannot send a CSRF token; the unguessable secret in the path is the credential
def ark_callback(request: HttpRequest, secret: str) -> JsonResponse:
    if request.method != "POST":  # not @require_POST: it would log the path, secret included
        response = _unlogged(JsonResponse({"error": "POST only"}, status=405))
        response["Allow"] = "POST"
        return response
    account = callbacks.account_for_callback_secret(secret)
    if account is None:
        return _unlogged(JsonResponse({"error": "not found"}, status=404))
    declared = request.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > callbacks.MAX_BODY_BYTES:
        return _unlogged(JsonResponse({"error": "body too large"}, status=413))
    try:
        body = _body(request)
    except RequestDataTooBig:
        return _unlogged(JsonResponse({"error": "body too large"}, status=413))
    outcome = callbacks.callback_receive(account=account, body=body)
    key = "status" if outcome.status_code < 400 else "error"
    return _unlogged(JsonResponse({key: outcome.message}, status=outcome.status_code))


def _body(request: HttpRequest) -> bytes:
    """The request body, also when it came chunked (no Content-Length).

    Django reads exactly CONTENT_LENGTH bytes, so a chunked body reads as empty. The
    server (gunicorn) has already undone the chunking in wsgi.input: read it from there,
    at most one byte past the limit.
    """
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if not chunked or request.headers.get("Content-Length"):
        return request.body
    body = request.META["wsgi.input"].read(callbacks.MAX_BODY_BYTES + 1)
    if len(body) > callbacks.MAX_BODY_BYTES:
        raise RequestDataTooBig("callback body too large")
    return body


def _unlogged(response: JsonResponse) -> JsonResponse:
    """Django logs 4xx/5xx answers with their path, and this path holds the account's
    secret: the callbacks service logs what matters (account name, task id) instead."""
    response._has_been_logged = True  # the flag django.utils.log.log_response checks
    return response
