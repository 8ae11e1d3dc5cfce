"""GET changes nothing anywhere; every state change is a POST carrying a CSRF token (htmx too)."""

from __future__ import annotations

import json
import re

import pytest
from django.apps import apps
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from tasks_app.gateway import outputs
from tasks_app.models import (
    Artifact,
    ArtifactOutput,
    ArtifactState,
    AuditEntry,
    MembershipRole,
    Task,
    TaskStatus,
)
from tasks_app.services.sync import sync_account

from .dashboard_helpers import make_task, member_of
from .url_walk import Route, all_routes

STATE_CHANGING = ["tasks_app:task_cancel", "tasks_app:task_delete", "tasks_app:tasks_cancel_bulk"]


def snapshot() -> dict[str, list[dict]]:
    """Every row of every model (sessions aside: a page view may touch its own session)."""
    return {
        model._meta.label: list(model.objects.order_by("pk").values())
        for model in apps.get_models()
        if model is not Session
    }


@pytest.fixture
def world(sim, account, django_user_model):
    """Something of everything, so each GET has real objects to (not) change."""
    root = django_user_model.objects.create_superuser("root", password="pw")
    member_of(root, account, MembershipRole.OPERATOR)
    queued = make_task(account, status=TaskStatus.QUEUED)
    done = make_task(account, status=TaskStatus.SUCCEEDED)
    artifact = Artifact.objects.create(task=done, output=ArtifactOutput.VIDEO, state=ArtifactState.ARCHIVED,
                                       storage_key="tasks/x/video.mp4", filename="video.mp4",
                                       archived_at=timezone.now())
    AuditEntry.objects.create(username="root", account=account, task=queued, ark_id=queued.ark_id,
                              action="cancel", result="refused")
    return {"root": root, "account": account, "queued": queued, "done": done, "artifact": artifact}


def real_values(world: dict) -> callable:
    """Parameters naming objects that exist, so every view does its full work."""
    objects_by_model = {
        "account": world["account"].pk, "membership": world["root"].ark_memberships.get().pk,
        "auditentry": AuditEntry.objects.get().pk, "user": world["root"].pk,
    }

    def value_for(route: Route, param: str) -> str:
        if param == "object_id":
            model = (route.name or "").split("_")[-2] if route.name else ""
            return str(objects_by_model.get(model, 1))
        return {
            "pk": str(world["queued"].pk), "artifact_id": str(world["artifact"].pk),
            "account_id": str(world["account"].pk),
            "secret": world["account"].callback_secret, "id": str(world["root"].pk), "content_type_id": "1",
            "app_label": "tasks_app", "url": "no-such-page/",
            "task_id": world["done"].ark_id, "signed": outputs.sign(world["artifact"].pk), "rest": "x",
        }[param]

    return value_for


def test_it_changes_nothing_on_any_get(sim, world, local_archive):
    stored = local_archive.root / world["artifact"].storage_key
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"\x00" * 100)
    root = Client()
    root.force_login(world["root"])  # logging in writes (last_login, axes' log): before the snapshot
    anonymous = Client()
    before = snapshot()
    value_for = real_values(world)
    sim.reset_stats()
    for route in all_routes():
        url = route.url(value_for)
        for client in (root, anonymous):
            response = client.get(url)
            assert response.status_code < 500, url
            client.get(url, headers={"HX-Request": "true"})  # the htmx flavour of a GET too
    assert snapshot() == before
    assert sum(sim.stats().get(name, 0) for name in ("list", "get", "delete", "create")) == 0


def test_it_answers_405_to_other_methods_on_state_changing_views(world):
    client = Client()
    client.force_login(world["root"])
    for url in (f"/tasks/{world['queued'].pk}/cancel/", f"/tasks/{world['done'].pk}/delete/", "/tasks/cancel/",
                f"/hooks/ark/{world['account'].callback_secret}/"):
        for method in ("put", "patch", "delete"):
            assert getattr(client, method)(url).status_code == 405, (method, url)
    assert client.get("/tasks/cancel/").status_code == 405
    assert Task.objects.get(pk=world["queued"].pk).status == TaskStatus.QUEUED


def test_it_refuses_every_state_changing_post_without_a_csrf_token(sim, world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["root"])
    before = snapshot()
    posts = {
        f"/tasks/{world['queued'].pk}/cancel/": {},
        f"/tasks/{world['done'].pk}/delete/": {"confirm_unarchived": "1", "remove_local": "1"},
        "/tasks/cancel/": {"scope": "matching", "confirmed": "1"},
        "/accounts/logout/": {},
        "/accounts/password_change/": {"old_password": "pw", "new_password1": "x-9-long-pass",
                                       "new_password2": "x-9-long-pass"},
        "/i18n/setlang/": {"language": "zh-hans"},
        "/admin/tasks_app/account/add/": {"name": "x", "base_url": "https://x.example", "api_key": "k"},
        f"/admin/tasks_app/account/{world['account'].pk}/delete/": {"post": "yes"},
        "/settings/tokens/": {"name": "t", "accounts": [world["account"].pk], "requests_per_minute": "60"},
    }
    for url, data in posts.items():
        for headers in ({}, {"HX-Request": "true"}):
            response = client.post(url, data, headers=headers)
            assert response.status_code == 403, url
    assert snapshot() == before
    assert sim.stats().get("delete", 0) == 0
    assert client.get("/").status_code == 200  # still logged in: the logout was refused too


def test_it_accepts_an_htmx_post_with_the_token_from_the_page_body(sim, account, django_user_model):
    user = django_user_model.objects.create_user("op", password="pw")
    member_of(user, account, MembershipRole.OPERATOR)
    ark_id = sim.add_task(status="queued")
    sync_account(account=account, full_sweep=True)
    task = Task.objects.get(ark_id=ark_id)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    page = client.get("/").content.decode()
    # STYLE.md's pattern: <body hx-headers='{"X-CSRFToken": "…"}'> sends the token on every htmx request.
    headers = json.loads(re.search(r"<body hx-headers='([^']+)'", page)[1])
    response = client.post(f"/tasks/{task.pk}/cancel/", headers={"HX-Request": "true", **headers})
    assert response.status_code == 200 and "Cancelled." in response.content.decode()
    assert Task.objects.get(pk=task.pk).status == TaskStatus.CANCELLED
