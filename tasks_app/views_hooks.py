"""Endpoints called by machines, not people: Ark's task callbacks."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .services import callbacks


@csrf_exempt  # Ark cannot send a CSRF token; the unguessable secret in the path is the credential
@require_POST
def ark_callback(request: HttpRequest, secret: str) -> JsonResponse:
    account = callbacks.account_for_callback_secret(secret)
    if account is None:
        return JsonResponse({"error": "not found"}, status=404)
    declared = request.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > callbacks.MAX_BODY_BYTES:
        return JsonResponse({"error": "body too large"}, status=413)
    try:
        body = request.body
    except RequestDataTooBig:
        return JsonResponse({"error": "body too large"}, status=413)
    outcome = callbacks.callback_receive(account=account, body=body)
    key = "status" if outcome.status_code < 400 else "error"
    return JsonResponse({key: outcome.message}, status=outcome.status_code)
