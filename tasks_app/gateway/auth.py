"""Who is calling the gateway: a personal API token, its accounts, its request limit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from ..models import Account
from ..ratelimit import Rate, RateLimitWaitTooLong, SharedRateLimiter, store_from_settings
from ..selectors import access_for
from .errors import GatewayError
from .models import TOKEN_PREFIX, ApiToken, hash_token

# last_used_at is a hint for the tokens page: written at most once a minute per token.
_LAST_USED_RESOLUTION = timedelta(minutes=1)
_MAX_TOKEN_CHARS = 200


@dataclass(frozen=True)
class Caller:
    token: ApiToken
    # The token's accounts that its owner may still see (a membership can be removed later).
    account_ids: frozenset[int]
    # ... and may act on (operator role or superuser): create and delete need it.
    operable_account_ids: frozenset[int]


def _unauthorized() -> GatewayError:
    return GatewayError(
        401, "AuthenticationError",
        "The API key in the request is missing or invalid.",
    )


def authenticate(authorization: str) -> Caller:
    """The caller behind `Authorization: Bearer <token>`, or Ark's 401."""
    scheme, _, plain = authorization.strip().partition(" ")
    plain = plain.strip()
    if scheme.lower() != "bearer" or not plain.startswith(TOKEN_PREFIX) or len(plain) > _MAX_TOKEN_CHARS:
        raise _unauthorized()
    token = ApiToken.objects.select_related("user").filter(token_hash=hash_token(plain)).first()
    if token is None or not token.is_usable or not token.user.is_active:
        raise _unauthorized()
    access = access_for(token.user)
    wanted = set(token.accounts.values_list("pk", flat=True))
    visible = wanted if access.everything else wanted & access.visible_account_ids
    operable = visible if access.everything else visible & access.operable_account_ids
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return Caller(token=token, account_ids=frozenset(visible), operable_account_ids=frozenset(operable))


def limit_requests(token: ApiToken) -> None:
    """The token's own request budget, shared by every process: one script cannot starve the rest."""
    per_second = token.requests_per_minute / 60.0
    if per_second <= 0:
        raise GatewayError(429, "RateLimitExceeded", "This token may not make requests.", retry_after=60)
    limiter = SharedRateLimiter(
        store=store_from_settings(),
        # Keyed by the token's hash, not its row id: an id comes back after a database is
        # reset (or a token deleted on SQLite), a hash never names another token.
        scope=f"{settings.ARK_RATE_LIMIT_KEY_PREFIX}:gateway-token:{token.token_hash[:32]}",
        # A burst of ten seconds' worth: scripts start many requests at once.
        rates={"request": Rate(per_second=per_second, burst=max(1, token.requests_per_minute // 6))},
        max_wait=0.0,
    )
    try:
        limiter.acquire(endpoint="request")
    except RateLimitWaitTooLong as error:
        raise GatewayError(
            429, "RateLimitExceeded.TokenRPMExceeded",
            f"This token's limit of {token.requests_per_minute} requests per minute is reached.",
            retry_after=error.wait,
        ) from None


def account_for_create(caller: Caller, chosen: str) -> Account:
    """Where a create goes: the X-ArkDash-Account header, else the token's create account,
    else its only account. Several accounts and no choice is a 400, never a guess."""
    if chosen:
        account = Account.objects.filter(name=chosen, pk__in=caller.account_ids).first()
        if account is None:
            raise GatewayError(
                400, "InvalidParameter", f"This token has no account named {chosen[:100]!r}.",
                param="X-ArkDash-Account",
            )
        return account
    token = caller.token
    if token.create_account_id is not None and token.create_account_id in caller.account_ids:
        return Account.objects.get(pk=token.create_account_id)
    if len(caller.account_ids) == 1:
        return Account.objects.get(pk=next(iter(caller.account_ids)))
    if not caller.account_ids:
        raise GatewayError(403, "AccessDenied", "This token has no account you may still use.")
    raise GatewayError(
        400, "MissingParameter", "This token has several accounts: name one in the X-ArkDash-Account header.",
        param="X-ArkDash-Account",
    )
