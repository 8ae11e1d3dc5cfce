"""Gateway tokens: Ark's 401, read-only 403, account scope 404, models, budgets and request limits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from volcenginesdkarkruntime._exceptions import (
    ArkAuthenticationError,
    ArkNotFoundError,
    ArkPermissionDeniedError,
)

from tasks_app.gateway.models import ApiToken, GatewayTask
from tasks_app.models import Account, Membership, MembershipRole, Task

from .gateway_support import make_token, raw_client, sdk

# Fixtures shared by the gateway tests.

pytestmark = pytest.mark.django_db

TEXT = [{"type": "text", "text": "a paper boat on a rainy street"}]
MODEL = "doubao-seedance-1-0-pro-250528"


def _envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and "Request id:" in error["message"]
    assert set(error) == {"code", "message", "param", "type"}
    return error


@pytest.fixture
def second_account(db, sim):
    other = Account(name="other", base_url="http://arksim.test/api/v3")
    other.set_api_key("test-key")
    other.save()
    return other


def test_it_answers_a_wrong_token_with_ark_s_401_envelope(sim, account, in_process_django):
    with pytest.raises(ArkAuthenticationError) as raised:
        sdk(in_process_django, "adk-not-a-real-token").content_generation.tasks.list()
    assert raised.value.code == "AuthenticationError"
    no_header = raw_client(in_process_django, None).get("/contents/generations/tasks")
    assert _envelope(no_header, 401, "AuthenticationError")["type"] == "Unauthorized"


def test_it_refuses_expired_and_revoked_tokens(sim, account, operator, in_process_django):
    expired = make_token(operator, [account], expires_at=timezone.now() - timedelta(seconds=1))
    revoked = make_token(operator, [account], revoked_at=timezone.now())
    for token in (expired, revoked):
        _envelope(raw_client(in_process_django, token).get("/contents/generations/tasks"), 401,
                  "AuthenticationError")


def test_it_refuses_create_and_delete_to_a_read_only_token(sim, mirror, account, operator,
                                                          in_process_django):
    client = sdk(in_process_django, make_token(operator, [account], read_only=True))
    task_id = sim.add_task(status="failed")
    mirror(task_id)
    with pytest.raises(ArkPermissionDeniedError) as create:
        client.content_generation.tasks.create(model=MODEL, content=TEXT)
    with pytest.raises(ArkPermissionDeniedError) as delete:
        client.content_generation.tasks.delete(task_id)
    assert create.value.code == delete.value.code == "AccessDenied"
    assert client.content_generation.tasks.get(task_id=task_id).status == "failed"  # reads still work
    assert sim.task_json(task_id) is not None and sim.stats()["create"] == 0


def test_it_answers_another_account_s_task_with_404(sim, mirror, account, second_account, operator,
                                                     in_process_django):
    theirs = sim.add_task(status="succeeded")
    mirror(theirs, account=second_account)
    client = sdk(in_process_django, make_token(operator, [account]))
    with pytest.raises(ArkNotFoundError):
        client.content_generation.tasks.get(task_id=theirs)
    with pytest.raises(ArkNotFoundError):
        client.content_generation.tasks.delete(theirs)
    assert client.content_generation.tasks.list(task_ids=[theirs]).total == 0
    assert sim.task_json(theirs) is not None


def test_it_drops_an_account_the_owner_lost_from_the_token_s_scope(sim, mirror, account, operator,
                                                                    in_process_django):
    task_id = sim.add_task(status="succeeded")
    mirror(task_id)
    client = sdk(in_process_django, make_token(operator, [account]))
    Membership.objects.filter(user=operator).delete()
    with pytest.raises(ArkNotFoundError):
        client.content_generation.tasks.get(task_id=task_id)


def test_it_lets_a_viewer_read_but_not_create(sim, mirror, account, django_user_model,
                                              in_process_django):
    viewer = django_user_model.objects.create_user("viewer")
    Membership.objects.create(user=viewer, account=account, role=MembershipRole.VIEWER)
    client = sdk(in_process_django, make_token(viewer, [account]))
    with pytest.raises(ArkPermissionDeniedError):
        client.content_generation.tasks.create(model=MODEL, content=TEXT)
    assert client.content_generation.tasks.list().total == 0


def test_it_sends_a_multi_account_create_where_the_header_or_the_token_says(
    sim, account, second_account, operator, in_process_django
):
    Membership.objects.create(user=operator, account=second_account, role=MembershipRole.OPERATOR)
    token = make_token(operator, [account, second_account])
    unchosen = raw_client(in_process_django, token).post(
        "/contents/generations/tasks", json={"model": MODEL, "content": TEXT}
    )
    assert _envelope(unchosen, 400, "MissingParameter")["param"] == "X-ArkDash-Account"
    chosen = sdk(in_process_django, token, headers={"X-ArkDash-Account": "other"})
    created = chosen.content_generation.tasks.create(model=MODEL, content=TEXT)
    assert Task.objects.get(ark_id=created.id).account == second_account
    ApiToken.objects.update(create_account=account)
    created = sdk(in_process_django, token).content_generation.tasks.create(model=MODEL, content=TEXT)
    assert Task.objects.get(ark_id=created.id).account == account
    wrong = raw_client(in_process_django, token).post(
        "/contents/generations/tasks", json={"model": MODEL, "content": TEXT},
        headers={"X-ArkDash-Account": "nobody"},
    )
    _envelope(wrong, 400, "InvalidParameter")
    # Reads span every account of the token.
    assert sdk(in_process_django, token).content_generation.tasks.list().total == 2


def test_it_limits_creates_to_the_token_s_models(sim, account, operator, in_process_django):
    client = sdk(in_process_django, make_token(operator, [account], allowed_models=["ep-20250528154802-pro01"]))
    with pytest.raises(ArkPermissionDeniedError):
        client.content_generation.tasks.create(model=MODEL, content=TEXT)
    assert client.content_generation.tasks.create(model="ep-20250528154802-pro01", content=TEXT).id


@pytest.mark.parametrize("budget", ["daily_token_budget", "monthly_token_budget"])
def test_it_answers_quota_exceeded_once_a_budget_is_spent(sim, account, operator, in_process_django, budget):
    token = make_token(operator, [account], **{budget: 1000})
    client = raw_client(in_process_django, token)
    first = client.post("/contents/generations/tasks", json={"model": MODEL, "content": TEXT})
    assert first.status_code == 200
    Task.objects.filter(ark_id=first.json()["id"]).update(total_tokens=1000, completion_tokens=1000)
    refused = client.post("/contents/generations/tasks", json={"model": MODEL, "content": TEXT})
    _envelope(refused, 429, "QuotaExceeded")
    assert int(refused.headers["Retry-After"]) > 0
    assert sim.stats()["create"] == 1
    assert GatewayTask.objects.count() == 1


def test_it_limits_requests_per_token_with_retry_after(sim, account, operator, in_process_django):
    slow = raw_client(in_process_django, make_token(operator, [account], requests_per_minute=6))
    statuses = [slow.get("/contents/generations/tasks").status_code for _ in range(3)]
    assert statuses[0] == 200 and 429 in statuses
    limited = slow.get("/contents/generations/tasks")
    _envelope(limited, 429, "RateLimitExceeded.TokenRPMExceeded")
    assert int(limited.headers["Retry-After"]) >= 1
    # Another token of the same person has its own budget.
    other = raw_client(in_process_django, make_token(operator, [account], requests_per_minute=6))
    assert other.get("/contents/generations/tasks").status_code == 200


def test_it_passes_ark_s_own_429_to_the_caller_with_retry_after(sim, account, operator,
                                                                in_process_django):
    sim.faults.inject("create", "429", retry_after=7)
    client = raw_client(in_process_django, make_token(operator, [account]))
    limited = client.post("/contents/generations/tasks", json={"model": MODEL, "content": TEXT})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    assert limited.json()["error"]["type"] == "TooManyRequests"
    assert not Task.objects.exists()


def test_it_never_shows_the_ark_key_or_the_callback_secret(sim, account, operator, in_process_django):
    client = raw_client(in_process_django, make_token(operator, [account]))
    created = client.post("/contents/generations/tasks", json={"model": MODEL, "content": TEXT})
    task_id = created.json()["id"]
    answers = [created, client.get(f"/contents/generations/tasks/{task_id}"), client.get("/contents/generations/tasks")]
    sim.advance(60)
    answers.append(client.get(f"/contents/generations/tasks/{task_id}"))
    for answer in answers:
        text = answer.text + str(dict(answer.headers))
        assert "test-key" not in text and account.callback_secret not in text


def test_it_refuses_a_read_only_token_s_create_before_reading_its_body(sim, account, second_account, operator,
                                                                        in_process_django):
    Membership.objects.create(user=operator, account=second_account, role=MembershipRole.OPERATOR)
    client = raw_client(in_process_django, make_token(operator, [account, second_account], read_only=True))
    _envelope(client.post("/contents/generations/tasks", content=b"not json"), 403, "AccessDenied")


def test_it_spends_the_account_s_shared_budget_on_creates(sim, account, operator, in_process_django, settings):
    settings.ARK_CREATE_RATE_PER_SECOND = 0.01  # one create per 100 s for the whole account
    client = raw_client(in_process_django, make_token(operator, [account]))
    body = {"model": MODEL, "content": TEXT}
    assert client.post("/contents/generations/tasks", json=body).status_code == 200
    second = client.post("/contents/generations/tasks", json=body)
    _envelope(second, 429, "RateLimitExceeded")
    assert int(second.headers["Retry-After"]) > 5
    assert sim.stats()["create"] == 1


def test_it_answers_502_and_mirrors_nothing_when_ark_fails_a_create(sim, account, operator, in_process_django):
    sim.faults.inject("create", "500")
    client = raw_client(in_process_django, make_token(operator, [account]))
    failed = client.post("/contents/generations/tasks", json={"model": MODEL, "content": TEXT})
    _envelope(failed, 502, "UpstreamError")
    assert not Task.objects.exists() and not GatewayTask.objects.exists()


def test_it_passes_ark_s_own_400_on_a_create_through(sim, account, operator, in_process_django):
    client = raw_client(in_process_django, make_token(operator, [account]))
    refused = client.post("/contents/generations/tasks", json={"model": MODEL, "content": TEXT, "ratio": "7:3"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "ratio"
