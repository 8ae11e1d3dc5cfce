"""Shared set-up of the gateway tests: a person, their tokens, the official SDK aimed at ArkDash."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from volcenginesdkarkruntime import Ark

from tasks_app.gateway.models import ApiToken, hash_token, new_token_value
from tasks_app.models import Account, Membership, MembershipRole

GATEWAY = "http://testserver/api/v3"


@pytest.fixture
def in_process_django() -> Iterator[httpx.BaseTransport]:
    """An httpx transport into this Django app, inside the test's transaction.

    Like django.test.Client, it stops the per-request connection clean-up, which would
    close the connection holding the test's transaction.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield httpx.WSGITransport(app=WSGIHandler())
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def operator(db, django_user_model, account):
    user = django_user_model.objects.create_user("ops", password="pw")
    Membership.objects.create(user=user, account=account, role=MembershipRole.OPERATOR)
    return user


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
