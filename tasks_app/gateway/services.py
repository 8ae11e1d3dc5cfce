"""The gateway's writes: create a task on Ark for a token, cancel or delete one."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from ..ark import ArkClient, ArkError, ArkTask
from ..lib.crypto import SecretDecryptError
from ..lib.downloads import FetchError, UrlPolicy
from ..models import Account, Task, TaskStatus
from ..ratelimit import RateLimitWaitTooLong
from ..services.accounts import client_for
from ..services.actions import ActionResult, task_cancel, task_delete
from ..services.sync import task_refresh_by_ark_id, task_upsert_from_ark
from .auth import Caller
from .errors import GatewayError, bad_param, from_ark_error
from .models import ApiToken, GatewayTask
from .selectors import budget_periods, token_spend

logger = logging.getLogger(__name__)

# A script's create must not hang behind the sync's queue for the account's budget.
CREATE_MAX_RATE_WAIT_SECONDS = 5.0
CREATE_TIMEOUT_SECONDS = 30.0


def callback_policy() -> UrlPolicy:
    """The download guard's rules, for the hosts callers may have callbacks relayed to."""
    return UrlPolicy(
        allowed_hosts=list(settings.ARKDASH_GATEWAY_CALLBACK_ALLOWED_HOSTS),
        private_hosts=list(settings.ARKDASH_GATEWAY_CALLBACK_PRIVATE_HOSTS),
    )


def check_create_allowed(*, caller: Caller, account: Account, model: str) -> None:
    """Read-only tokens, roles, model limits and token budgets, before anything is sent."""
    token = caller.token
    if token.read_only:
        raise GatewayError(403, "AccessDenied", "This token is read-only: it cannot create tasks.")
    if account.pk not in caller.operable_account_ids:
        raise GatewayError(
            403, "AccessDenied", "Your role on this account does not allow creating tasks (operator needed)."
        )
    if token.allowed_models and model not in token.allowed_models:
        raise GatewayError(
            403, "AccessDenied", f"This token may not use the model {model[:128]!r}.", param="model"
        )
    check_budget(token)


def check_budget(token: ApiToken) -> None:
    day, month = budget_periods()
    budgets = ((token.daily_token_budget, day, "daily"), (token.monthly_token_budget, month, "monthly"))
    for budget, since, period in budgets:
        if budget is not None and token_spend(token, since=since) >= budget:
            raise GatewayError(
                429, "QuotaExceeded",
                f"This token's {period} budget of {budget} tokens is used up.",
                retry_after=_seconds_to_next(period),
            )


def _seconds_to_next(period: str) -> float:
    day, month = budget_periods()
    if period == "daily":
        return (day + timedelta(days=1) - timezone.now()).total_seconds()
    next_month = (month + timedelta(days=32)).replace(day=1)
    return (next_month - timezone.now()).total_seconds()


def task_create(
    *, caller: Caller, account: Account, body: dict[str, Any], ark_callback_url: str, site_url: str
) -> Task:
    """Send the create to Ark with the account's key, then mirror the new task before answering."""
    model = body["model"]
    check_create_allowed(caller=caller, account=account, model=model)
    callback_url = body.pop("callback_url", None) or ""
    if callback_url:
        try:
            callback_policy().check(callback_url)
        except FetchError as refused:
            raise bad_param("callback_url", f"callback_url is refused: {refused.message}") from None
    options = {key: value for key, value in body.items() if key not in ("model", "content")}
    # ArkDash's own callback: the task shows on the dashboard at once, and is relayed from there.
    options["callback_url"] = ark_callback_url
    try:
        with client_for(
            account, timeout=CREATE_TIMEOUT_SECONDS, max_retries=0, max_rate_wait=CREATE_MAX_RATE_WAIT_SECONDS
        ) as client:
            ark_id = client.create_task(model=model, content=body["content"], **options)
            task = _mirror_new(account=account, ark_id=ark_id, model=model, body=body, client=client)
    except RateLimitWaitTooLong as error:
        raise GatewayError(
            429, "RateLimitExceeded", "The account's shared request budget is used up for a moment.",
            retry_after=error.wait,
        ) from None
    except SecretDecryptError:
        logger.error("gateway create for account %s: the Ark key cannot be decrypted", account.name)
        raise GatewayError(503, "ServiceUnavailable", "This account cannot reach Ark right now.") from None
    except ArkError as error:
        if error.http_status is None or error.http_status >= 500:
            logger.warning("gateway create for account %s failed: %s", account.name, error)
        raise from_ark_error(error) from None
    GatewayTask.objects.update_or_create(
        task=task, defaults={
            "token": caller.token, "endpoint": model[:128], "callback_url": callback_url, "site_url": site_url[:300],
        },
    )
    logger.info("token %s created task %s on account %s", caller.token.pk, ark_id, account.name)
    return task


def _mirror_new(*, account: Account, ark_id: str, model: str, body: dict[str, Any], client: ArkClient) -> Task:
    try:
        task = task_refresh_by_ark_id(account=account, ark_id=ark_id, client=client)
    except (ArkError, RateLimitWaitTooLong) as error:
        logger.info("re-reading new task %s failed (%s); mirrored as queued", ark_id, error)
        task = None
    if task is not None:
        return task
    # Ark accepted it but could not be re-read at once: mirror what we know, the sync and
    # the callback fill in the rest.
    guess = {"id": ark_id, "model": model, "status": TaskStatus.QUEUED}
    for name in ("fileformat", "subdivisionlevel"):
        if name in body:
            guess[name] = body[name]
    mirrored, _changed = task_upsert_from_ark(account=account, ark_task=ArkTask.from_json(guess))
    return mirrored


def task_cancel_or_delete(*, caller: Caller, task: Task) -> ActionResult:
    """Ark's DELETE: cancel a queued task, delete a finished one's record (services/actions.py)."""
    if caller.token.read_only:
        raise GatewayError(403, "AccessDenied", "This token is read-only: it cannot cancel or delete tasks.")
    user = caller.token.user
    if task.status == TaskStatus.QUEUED:
        return task_cancel(task=task, user=user)
    # The caller asked Ark's DELETE explicitly, as on Ark: no confirmation step. Ark's
    # presigned output links outlive the record, so the archive can still copy them.
    return task_delete(task=task, user=user, confirm_unarchived=True)
