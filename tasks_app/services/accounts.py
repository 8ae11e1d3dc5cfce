"""Ark accounts: the default one from ARK_API_KEY, and a ready client for any of them."""

from __future__ import annotations

import logging
import re
from collections import Counter
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils.translation import gettext as _

from tasks_app.ark import ArkClient, RateLimiter
from tasks_app.lib import transport
from tasks_app.lib.crypto import SecretDecryptError
from tasks_app.models import Account, AuditAction, AuditEntry, AuditResult, Task
from tasks_app.ratelimit import limiter_for_account

logger = logging.getLogger(__name__)

DEFAULT_ACCOUNT_NAME = "default"


def client_for(
    account: Account,
    *,
    timeout: float | None = None,
    max_retries: int | None = None,
    max_rate_wait: float | None = None,
    count_calls: Counter[str] | None = None,
) -> ArkClient:
    """An ArkClient for `account`, spending the account's shared upstream budget.

    `timeout`/`max_retries` default to settings; `max_rate_wait` lets a web request give
    up (RateLimitWaitTooLong) instead of queueing behind the sync for long.
    `count_calls` counts every attempt made, by endpoint ("list", "get", ...).
    Raises SecretDecryptError when the stored key cannot be decrypted, and ValueError when
    the base URL is not one the key may be sent to (an edited row, a changed allow-list).
    """
    problem = base_url_problem(account.base_url)
    if problem:
        raise ValueError(problem)
    limiter = limiter_for_account(account.pk)
    if max_rate_wait is not None:
        limiter = limiter.with_max_wait(max_rate_wait)
    if count_calls is not None:
        limiter = _CountingLimiter(limiter, count_calls)
    return ArkClient(
        base_url=account.base_url,
        api_key=account.api_key,
        timeout=settings.ARK_TIMEOUT_SECONDS if timeout is None else timeout,
        max_retries=settings.ARK_MAX_RETRIES if max_retries is None else max_retries,
        transport=transport.current(),
        rate_limiter=limiter,
        backoff_base=settings.ARK_RETRY_BACKOFF_SECONDS,
    )


_LABEL = re.compile(r"[a-z0-9-]+")


def _host_matches(host: str, pattern: str) -> bool:
    """`ark.*.volces.com` matches `ark.cn-beijing.volces.com`: `*` is one DNS label."""
    host_labels, pattern_labels = host.split("."), pattern.strip().lower().rstrip(".").split(".")
    if len(host_labels) != len(pattern_labels):
        return False
    return all(
        _LABEL.fullmatch(label) is not None if wanted == "*" else label == wanted
        for label, wanted in zip(host_labels, pattern_labels, strict=True)
    )


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return parts.scheme, (parts.hostname or ""), port


def base_url_problem(url: str) -> str | None:
    """Why an account's API key may not be sent to `url`, or None when it may.

    The key goes, as a bearer token, wherever the base URL points: https only, and only to
    a host of ARKDASH_ARK_ALLOWED_HOSTS (Ark's and BytePlus ModelArk's by default). The
    simulator (ARKDASH_SIMULATOR_URL, `make run` and the tests) is the one exception.
    """
    origin = _origin(url)
    if origin is None:
        return _("The base URL is not a valid URL.")
    simulator = getattr(settings, "ARKDASH_SIMULATOR_URL", "")
    if simulator and origin == _origin(simulator):
        return None
    scheme, host, _port = origin
    parts = urlsplit(url)
    if scheme != "https":
        return _("The base URL must use https: the API key travels with every request.")
    if parts.username is not None or parts.password is not None:
        return _("The base URL must not hold a user name or password.")
    allowed = list(getattr(settings, "ARKDASH_ARK_ALLOWED_HOSTS", []))
    if not any(_host_matches(host.rstrip("."), pattern) for pattern in allowed):
        return _("%(host)s is not an Ark host this installation may send keys to (ARKDASH_ARK_ALLOWED_HOSTS: "
                 "%(allowed)s).") % {"host": host, "allowed": ", ".join(allowed)}
    return None


def account_base_url_audit(*, user: AbstractBaseUser | AnonymousUser, account: Account, old: str) -> None:
    """Write a base URL change to the audit log: it decides where the key is sent."""
    authenticated = bool(getattr(user, "is_authenticated", False))
    AuditEntry.objects.create(
        user_id=user.pk if authenticated else None,
        username=user.get_username() if authenticated else "",
        account=account,
        account_name=account.name,
        action=AuditAction.BASE_URL,
        result=AuditResult.DONE,
        code="changed",
        message=f"base URL changed from {old} to {account.base_url}"[:2000],
    )
    logger.warning("base URL of account %r changed from %s to %s", account.name, old, account.base_url)


class _CountingLimiter:
    """The client asks the limiter before every attempt: the one place to count calls made."""

    def __init__(self, inner: RateLimiter, counter: Counter[str]) -> None:
        self._inner = inner
        self._counter = counter

    def acquire(self, *, endpoint: str) -> None:
        self._inner.acquire(endpoint=endpoint)
        self._counter[endpoint] += 1

    def penalize(self, *, endpoint: str, retry_after: float) -> None:
        self._inner.penalize(endpoint=endpoint, retry_after=retry_after)


def account_ensure_default() -> Account | None:
    """The account described by ARK_API_KEY/ARK_BASE_URL, created or updated; None without a key."""
    api_key = (settings.ARK_API_KEY or "").strip()
    if not api_key:
        return None
    base_url = settings.ARK_BASE_URL.strip().rstrip("/")
    with transaction.atomic():
        account = Account.objects.select_for_update().filter(is_default=True).first()
        if account is None:
            account = Account(name=_free_default_name(), base_url=base_url, is_default=True)
            account.set_api_key(api_key)
            account.save()
            logger.info("created the default Ark account %r at %s", account.name, base_url)
            return account
        changed = []
        if account.base_url != base_url:
            account.base_url = base_url
            changed.append("base_url")
        if _stored_key(account) != api_key:
            account.set_api_key(api_key)
            changed.append("api_key_encrypted")
        if changed:
            account.save(update_fields=changed)
            # Name the fields, never the key.
            logger.info("updated the default Ark account %r: %s", account.name, ", ".join(changed))
    return account


def _stored_key(account: Account) -> str | None:
    try:
        return account.api_key
    except SecretDecryptError:
        return None  # encrypted with a retired key: ARK_API_KEY replaces it


def _free_default_name() -> str:
    """ "default", unless someone already named an ordinary account that."""
    name = DEFAULT_ACCOUNT_NAME
    suffix = 1
    while Account.objects.filter(name=name).exists():
        suffix += 1
        name = f"{DEFAULT_ACCOUNT_NAME}-{suffix}"
    return name


def accounts_note_shared_tasks(*, account: Account, ark_ids: list[str]) -> list[int]:
    """Record the other Accounts that mirror any of `ark_ids`; returns their pks.

    Two keys of one Ark account see the same tasks, so two Accounts made from them mirror
    the same ids. Both rows stay (each Account's members see the task), but the archive
    copies the outputs once (see archive.artifacts_create_for_task).
    """
    if not ark_ids:
        return []
    others = list(
        Task.objects.filter(ark_id__in=ark_ids)
        .exclude(account_id=account.pk)
        .values_list("account_id", flat=True)
        .distinct()
    )
    if others:
        known = set(account.shares_tasks_with.values_list("pk", flat=True))
        new = [pk for pk in others if pk not in known]
        if new:
            account.shares_tasks_with.add(*new)
            logger.warning("account %s mirrors the same Ark tasks as accounts %s", account.name, new)
    return others
