"""Shared helpers of the gateway tests: tokens, the official SDK aimed at ArkDash (the\nfixtures, `operator` and `in_process_django`, are in conftest.py)."""

from __future__ import annotations

import httpx
from volcenginesdkarkruntime import Ark

from tasks_app.gateway.models import ApiToken, hash_token, new_token_value
from tasks_app.models import Account

GATEWAY = "http://testserver/api/v3"


def make_token(user, accounts: list[Account], **fields) -> str:
    """A token for `user` on `accounts`; returns its value (shown once in the app)."""
    plain = new_token_value()
    token = ApiToken.objects.create(user=user, name=fields.pop("name", "script"), token_hash=hash_token(plain),
                                    hint=plain[:8], **fields)
    token.accounts.set(accounts)
    return plain


def sdk(transport: httpx.BaseTransport, token: str, *, headers: dict[str, str] | None = None) -> Ark:
    """The official SDK with only its base URL and key changed, as a team's script would."""
    http = httpx.Client(transport=transport, headers=headers or {})
    return Ark(base_url=GATEWAY, api_key=token, max_retries=0, timeout=10, http_client=http)


def raw_client(transport: httpx.BaseTransport, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(transport=transport, base_url=GATEWAY, headers=headers)
