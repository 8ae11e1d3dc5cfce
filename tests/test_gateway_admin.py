"""API tokens in the admin: staff see them without their value, revoke them, never add one."""

from __future__ import annotations

import pytest
from django.test import Client

from tasks_app.gateway.models import ApiToken

from .gateway_support import make_token

pytestmark = pytest.mark.django_db


def test_it_lets_a_superuser_revoke_tokens_but_not_add_one(account, django_user_model):
    owner = django_user_model.objects.create_user("owner")
    plain = make_token(owner, [account], name="nightly export")
    root = django_user_model.objects.create_superuser("root", password="pw")
    client = Client()
    client.force_login(root)
    listing = client.get("/admin/tasks_app/apitoken/").content.decode()
    assert "nightly export" in listing and plain not in listing and ApiToken.objects.get().token_hash not in listing
    assert client.get("/admin/tasks_app/apitoken/add/").status_code == 403
    token = ApiToken.objects.get()
    client.post("/admin/tasks_app/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_at is not None
    api = Client().get("/api/v3/contents/generations/tasks", HTTP_AUTHORIZATION=f"Bearer {plain}")
    assert api.status_code == 401
