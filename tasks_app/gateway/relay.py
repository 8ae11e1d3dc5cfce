"""Callbacks for gateway tasks: ArkDash's hook first, then the caller's own callback_url.

Ark calls ArkDash's hook (the account's usual one, views_hooks.py) and ArkDash re-reads
the task. Only then is the caller's `callback_url` sent the task as the gateway shows it
(ArkDash's output links, never the account's callback secret), through the download
guard's rules (tasks_app/lib/downloads.py): allowed hosts, public addresses only, no redirects, timeouts.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import urljoin

import httpx
from django.db import transaction
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from .. import views_hooks
from ..lib import transport as outbound_transport
from ..lib.downloads import FetchError, FetchRefused, PeerNotPublic, guarded_post, redact_url
from ..models import Task
from .models import GatewayTask
from .serializers import output_links, task_objects
from .services import callback_policy

logger = logging.getLogger(__name__)

RELAY_TIMEOUT_SECONDS = 5.0


class RelayError(Exception):
    """The caller's endpoint did not take the callback; `retryable` says whether to try again."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@csrf_exempt  # Ark sends no CSRF token; the secret in the path is the credential (as views_hooks)
def ark_callback(request: HttpRequest, secret: str) -> HttpResponseBase:
    """The account's usual hook, then a relay to the caller when the task came through the gateway."""
    response = views_hooks.ark_callback(request, secret)
    if request.method == "POST" and response.status_code in (200, 202):
        _enqueue_relay(secret=secret, body=request.body, reread=response.status_code == 202)
    return response


def _enqueue_relay(*, secret: str, body: bytes, reread: bool) -> None:
    try:
        ark_id = json.loads(body).get("id")
    except (ValueError, UnicodeDecodeError, RecursionError, AttributeError):
        return
    origin = (
        GatewayTask.objects.filter(task__account__callback_secret=secret, task__ark_id=ark_id)
        .exclude(callback_url="")
        .values_list("task_id", flat=True)
        .first()
    )
    if origin is None:
        return
    from ..tasks import relay_gateway_callback

    transaction.on_commit(lambda: relay_gateway_callback.delay(origin, reread))


def relay_callback(*, task: Task, transport: httpx.BaseTransport | None = None) -> int:
    """POST the gateway's view of `task` to the callback_url its creator gave; the HTTP status."""
    origin = GatewayTask.objects.get(task=task)
    url = origin.callback_url
    body = task_objects([task], links=output_links(lambda path: urljoin(origin.site_url, path)))[0]
    try:
        posting = guarded_post(
            url, policy=callback_policy(), timeout=RELAY_TIMEOUT_SECONDS, json=body,
            headers={"User-Agent": "ArkDash-gateway/1"}, transport=transport or outbound_transport.current(),
        )
    except FetchRefused as refused:
        raise RelayError(f"refused {redact_url(url)}: {refused.message}", retryable=False) from None
    except FetchError as failed:
        raise RelayError(f"{redact_url(url)}: {failed.message}", retryable=True) from None
    try:
        with posting as response:
            pass  # the status is all the relay needs; the answer's body is never read
    except PeerNotPublic as refused:
        raise RelayError(f"refused {redact_url(url)}: {refused.message}", retryable=False) from None
    except httpx.HTTPError as error:
        raise RelayError(f"{redact_url(url)}: {type(error).__name__}", retryable=True) from None
    if response.status_code >= 500 or response.status_code == 429:
        raise RelayError(f"{redact_url(url)} answered {response.status_code}", retryable=True)
    if response.status_code >= 300:
        raise RelayError(f"{redact_url(url)} answered {response.status_code}", retryable=False)
    logger.info("relayed the %s callback of %s to %s", task.status, task.ark_id, redact_url(url))
    return response.status_code

