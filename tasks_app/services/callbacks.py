"""Ark's `callback_url` notifications: treated as "please re-read task X", nothing more.

Ark signs nothing, so the body is never trusted: only its `id` is read, and the task is
re-read from Ark with the account's own key. A forged id is one Ark does not know for
this account (404 from Ark, 404 from us); a forged status changes nothing because the
status comes from Ark. The secret in the URL only decides which account's key to use.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from dataclasses import dataclass

from django.conf import settings

from tasks_app.ark import TASK_ID, ArkError
from tasks_app.lib.crypto import SecretDecryptError
from tasks_app.models import Account, Task
from tasks_app.ratelimit import Coalescer, RateLimitWaitTooLong, coalescer_from_settings

from .accounts import client_for
from .sync import task_refresh_by_ark_id

logger = logging.getLogger(__name__)

# A task object is a few KB; anything much larger is not Ark.
MAX_BODY_BYTES = 256 * 1024
# Same alphabet as the Ark client accepts in a URL path.
_CALLBACK_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
# Ark retries a callback not acknowledged within 5 s: the rate limiter may make us wait
# this long at most before we hand the re-read to a worker instead.
_MAX_RATE_WAIT_SECONDS = 1.0


@dataclass(frozen=True)
class CallbackOutcome:
    status_code: int
    message: str
    task: Task | None = None


def account_for_callback_secret(secret: str) -> Account | None:
    # Secrets are token_urlsafe: anything else (a NUL byte, which PostgreSQL refuses in a
    # query) is no secret of ours, and is answered without touching the database.
    if not _CALLBACK_SECRET.match(secret or ""):
        return None
    account = Account.objects.filter(callback_secret=secret).first()
    # The lookup is by equality; compare again in constant time for good measure.
    if account is None or not secrets.compare_digest(account.callback_secret, secret):
        return None
    return account


def callback_receive(*, account: Account, body: bytes) -> CallbackOutcome:
    """Validate a callback body and re-read the task it names.

    Callbacks for one task are coalesced: one re-read in flight at a time, then a quiet
    window (ARKDASH_CALLBACK_COALESCE_SECONDS). Callbacks meanwhile are acknowledged and
    share a single re-read after the window, so a flood of them costs two upstream GETs
    per window instead of one each, out of the budget sync, cancel and delete share.
    """
    if len(body) > MAX_BODY_BYTES:
        return CallbackOutcome(413, "body too large")
    ark_id = _task_id_from_body(body)
    if ark_id is None:
        return CallbackOutcome(400, "expected a JSON object with a task id in `id`")
    coalescer = coalescer_from_settings()
    key = f"callback:{account.pk}:{ark_id}"
    window = float(settings.ARKDASH_CALLBACK_COALESCE_SECONDS)
    # The longest an inline re-read can take; a holder that died frees the key after it.
    in_flight = settings.ARKDASH_CALLBACK_TIMEOUT_SECONDS + _MAX_RATE_WAIT_SECONDS + 5.0
    if not coalescer.try_start(key, max_seconds=in_flight):
        return _coalesce(account, ark_id, coalescer=coalescer, key=key, window=window)
    try:
        return _reread(account, ark_id)
    finally:
        coalescer.finish(key, quiet_seconds=window)


def _coalesce(account: Account, ark_id: str, *, coalescer: Coalescer, key: str, window: float) -> CallbackOutcome:
    """A re-read of this task is running or just ran: one more, after the window, covers
    whatever this callback announced; later callbacks in the window ride on that one."""
    if coalescer.try_start(f"{key}:after", max_seconds=max(window, 1.0)):
        from tasks_app.tasks import refresh_ark_task

        try:
            refresh_ark_task.apply_async((account.pk, ark_id), countdown=window)
        except Exception:  # noqa: BLE001 - the sync's active refresh will still see the change
            logger.warning("callback for %s: could not queue the re-read after the window", ark_id, exc_info=True)
    logger.info("callback for %s coalesced with a re-read in flight or just done", ark_id)
    return CallbackOutcome(202, "accepted")


def _reread(account: Account, ark_id: str) -> CallbackOutcome:
    try:
        client = client_for(
            account,
            timeout=settings.ARKDASH_CALLBACK_TIMEOUT_SECONDS,
            max_retries=0,
            max_rate_wait=_MAX_RATE_WAIT_SECONDS,
        )
    except (SecretDecryptError, ValueError) as error:
        logger.error("callback for account %s: account unusable: %s", account.name, error)
        return CallbackOutcome(503, "account unavailable")
    try:
        with client:
            task = task_refresh_by_ark_id(account=account, ark_id=ark_id, client=client)
    except RateLimitWaitTooLong as error:
        logger.info("callback for %s: re-read deferred to a worker (%s)", ark_id, error)
        return _defer(account, ark_id)
    except ArkError as error:
        if error.retryable:
            # Ark is slow or failing: acknowledge, and let a worker re-read it later.
            logger.info("callback for %s: re-read deferred to a worker (%s)", ark_id, error)
            return _defer(account, ark_id)
        # Ark refused the re-read (key revoked, access denied): retrying will not help.
        logger.warning("callback for %s: Ark refused the re-read: %s", ark_id, error)
        return CallbackOutcome(502, "Ark refused the re-read")
    if task is None:
        logger.info("callback for account %s named a task Ark does not know: %s", account.name, ark_id)
        return CallbackOutcome(404, "unknown task")
    return CallbackOutcome(200, "refreshed", task)


def _defer(account: Account, ark_id: str) -> CallbackOutcome:
    from tasks_app.tasks import refresh_ark_task

    try:
        refresh_ark_task.delay(account.pk, ark_id)
    except Exception:
        # The broker is down: a 5xx makes Ark try the callback again later.
        logger.exception("callback for %s: could not enqueue the re-read", ark_id)
        return CallbackOutcome(503, "try again later")
    return CallbackOutcome(202, "accepted")


def _task_id_from_body(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    ark_id = data.get("id")
    if not isinstance(ark_id, str) or not TASK_ID.match(ark_id):
        return None
    return ark_id
