"""Every URL of the project, as an anonymous visitor and as a member of another account.

The routes come from the URL resolver (tests/url_walk.py), so a new view is covered the
day it is added. Anonymous: the login page (or 404 for callbacks). Another account's
member: 404 for its tasks and outputs, with nothing of them in any answer.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from tasks_app.models import (
    Account,
    Artifact,
    ArtifactOutput,
    ArtifactState,
    MembershipRole,
    Task,
    TaskStatus,
)

from .conftest import SIM_API_KEY, SIM_BASE_URL
from .dashboard_helpers import make_task, member_of
from .url_walk import Route, all_routes

REMOTE = "203.0.113.9"  # not loopback: /metrics must not open up
PROMPT = "PROMPT-CANARY a red fox running through snow"
MODEL = "model-canary-seedance-x"
RIVAL = "rival-account-canary"
# Machine and public endpoints: what they may answer to anyone (and they hold no task data).
PUBLIC = {
    "healthz": {200, 503},  # load balancers; lists account names and sync lag (no task data)
    "metrics": {403},  # loopback or bearer token only
    "login": {200},
    "logout": {405},  # POST only
    "admin:login": {200},
    "admin:logout": {302, 405},  # back to the admin (and its login)
    "set_language": {302},  # a GET changes nothing and goes back
    "favicon": {301},  # to the static icon
}
CALLBACK = "tasks_app:ark_callback"
# The gateway's own callback hook answers like the account's usual one.
CALLBACKS = {CALLBACK, "gateway:ark_callback"}
# Ark's API, for tokens only: a session is no credential there, anyone else gets Ark's 401.
GATEWAY_API = {"gateway:tasks", "gateway:task", "gateway:api_not_found"}
GATEWAY_OUTPUT = "gateway:output"  # a signed link is the credential: a bad one is refused


@pytest.fixture
def rival(db) -> dict:
    """Another account with a task carrying a recognisable id, model and prompt, and an archived output."""
    account = Account(name=RIVAL, base_url=f"{SIM_BASE_URL}/api/v3")
    account.set_api_key(SIM_API_KEY)
    account.save()
    task = make_task(
        account, status=TaskStatus.QUEUED, ark_id="cgt-20250101000000-RIVAL", model=MODEL,
        raw={"id": "cgt-20250101000000-RIVAL", "content": [{"type": "text", "text": PROMPT}]},
    )
    done = make_task(account, status=TaskStatus.SUCCEEDED, ark_id="cgt-20250101000001-RIVAL", model=MODEL)
    artifact = Artifact.objects.create(task=done, output=ArtifactOutput.VIDEO, state=ArtifactState.ARCHIVED,
                                       storage_key="tasks/rival/video.mp4", filename="video.mp4",
                                       archived_at=timezone.now())
    return {"account": account, "task": task, "done": done, "artifact": artifact}


def values(rival: dict) -> callable:
    def value_for(route: Route, param: str) -> str:
        return {
            "pk": str(rival["task"].pk),
            "artifact_id": str(rival["artifact"].pk),
            "secret": "not-the-secret-of-any-account-0123456789ab",
            "object_id": str(rival["account"].pk),
            "account_id": str(rival["account"].pk),
            "id": "1",
            "content_type_id": "1",
            "app_label": "tasks_app",
            "url": "no-such-page/",
            "task_id": rival["task"].ark_id,
            "signed": "1.9999999999~not-a-signature",
            "rest": "no-such-endpoint",
        }[param]

    return value_for


def secrets_of(rival: dict) -> list[str]:
    return [rival["task"].ark_id, rival["done"].ark_id, MODEL, PROMPT, SIM_API_KEY]


def assert_nothing_leaked(response, rival: dict, where: str, *, account_name_allowed: bool = False) -> None:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    text = body.decode(errors="replace") + " ".join(f"{k}: {v}" for k, v in response.items())
    for secret in secrets_of(rival):
        assert secret not in text, f"{where} leaks {secret!r}"
    if not account_name_allowed:
        assert RIVAL not in text, f"{where} leaks the other account's name"


def is_login_redirect(response) -> bool:
    location = response.get("Location", "")
    return response.status_code == 302 and location.startswith(("/accounts/login/", "/admin/login/"))


def test_it_walks_a_route_for_every_view():
    names = {route.name for route in all_routes()}
    assert {"tasks_app:task_list", "tasks_app:task_detail", "tasks_app:task_cancel", "tasks_app:task_delete",
            "tasks_app:tasks_cancel_bulk", "tasks_app:task_rows", "tasks_app:artifact_download", CALLBACK,
            "admin:tasks_app_account_change", "admin:tasks_app_auditentry_changelist"} <= names


def test_it_sends_anonymous_visitors_to_the_login_page_everywhere(rival):
    client = Client(REMOTE_ADDR=REMOTE)
    value_for = values(rival)
    for route in all_routes():
        url = route.url(value_for)
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            where = f"anonymous {method.upper()} {url} ({route.name})"
            if route.name in CALLBACKS:
                assert response.status_code == (404 if method == "post" else 405), where
            elif route.name in GATEWAY_API:
                expected = 404 if route.name == "gateway:api_not_found" else 401
                assert response.status_code == expected and response.json()["error"]["code"], where
            elif route.name == GATEWAY_OUTPUT:
                assert response.status_code == (403 if method == "get" else 405), where
            elif route.name in PUBLIC:
                if method == "get":
                    assert response.status_code in PUBLIC[route.name], where
            else:
                assert is_login_redirect(response), f"{where}: {response.status_code} {response.get('Location')}"
            assert_nothing_leaked(response, rival, where, account_name_allowed=route.name == "healthz")
    assert Task.objects.get(pk=rival["task"].pk).status == TaskStatus.QUEUED


def test_it_answers_404_to_a_member_of_another_account_everywhere(rival, account, django_user_model):
    outsider = django_user_model.objects.create_user("outsider", password="pw")
    member_of(outsider, account, MembershipRole.OPERATOR)  # an operator, but of "team"
    make_task(account, model="our-own-model")
    client = Client(REMOTE_ADDR=REMOTE)
    client.force_login(outsider)
    value_for = values(rival)
    seen = set()
    for route in all_routes():
        url = route.url(value_for)
        for method in ("get", "post"):
            client.force_login(outsider)  # POST to a logout route ends the session
            response = getattr(client, method)(url)
            where = f"outsider {method.upper()} {url} ({route.name})"
            seen.add(route.name)
            if route.params and route.name and route.name.startswith("tasks_app:") and route.name != CALLBACK:
                # The other account's task or output answers exactly as an id that does not exist.
                missing = getattr(client, method)(route.url(lambda _route, _param: "987654321"))
                assert response.status_code == missing.status_code, where
                assert response.status_code == 404 or (method == "post" and response.status_code == 405), where
            elif route.name in CALLBACKS:
                assert response.status_code == (404 if method == "post" else 405), where
            elif route.name in GATEWAY_API:
                assert response.status_code in (401, 404), where  # the session is not a token
            elif route.name and route.name.startswith("admin:") and route.name not in PUBLIC:
                assert is_login_redirect(response), where  # not staff
            assert response.status_code < 500, where
            assert_nothing_leaked(response, rival, where, account_name_allowed=route.name == "healthz")
    assert {"tasks_app:task_detail", "tasks_app:artifact_download"} <= seen


def test_it_keeps_another_accounts_rows_out_of_the_list_poll_and_bulk_cancel(sim, rival, account, django_user_model):
    outsider = django_user_model.objects.create_user("outsider", password="pw")
    member_of(outsider, account, MembershipRole.OPERATOR)
    client = Client()
    client.force_login(outsider)
    theirs = rival["task"]
    for response in (client.get("/"), client.get("/?status=queued&kind=video&sort=-created")):
        assert response.status_code == 200
        assert_nothing_leaked(response, rival, "list")
    # A poll from scratch (no state: every part answered) names none of their tasks.
    poll = client.get(f"/tasks/rows/?rows={theirs.pk}.0")
    assert poll.status_code in (200, 204) and f'id="task-{theirs.pk}"' not in poll.content.decode()
    assert_nothing_leaked(poll, rival, "poll")
    for data in ({"scope": "selected", "ids": [str(theirs.pk)]},
                 {"scope": "selected", "ids": [str(theirs.pk)], "confirmed": "1"},
                 {"scope": "matching", "confirmed": "1"}):
        response = client.post("/tasks/cancel/", data, follow=True)
        assert response.status_code == 200
        assert_nothing_leaked(response, rival, f"bulk {data}")
    assert Task.objects.get(pk=theirs.pk).status == TaskStatus.QUEUED
    assert sim.stats().get("delete", 0) == 0
