"""The tokens page: create (shown once, stored hashed), scope to the person's accounts, spend, revoke."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tasks_app.gateway.models import ApiToken, GatewayTask, hash_token
from tasks_app.models import Account, Membership, MembershipRole

pytestmark = pytest.mark.django_db

PAGE = "/settings/tokens/"


@pytest.fixture
def person(account, django_user_model):
    user = django_user_model.objects.create_user("ana", password="pw")
    Membership.objects.create(user=user, account=account, role=MembershipRole.OPERATOR)
    client = Client()
    client.force_login(user)
    return user, client


def _create(client: Client, account: Account, **fields) -> str:
    data = {"name": "ci script", "accounts": [account.pk], "requests_per_minute": 60, **fields}
    response = client.post(PAGE, data)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    found = re.search(r'<code id="new-token">(adk-[A-Za-z0-9_-]+)</code>', response.content.decode())
    assert found, response.content.decode()[:2000]
    return found.group(1)


def test_it_shows_a_new_token_once_and_stores_only_its_hash(person, account):
    user, client = person
    plain = _create(client, account, read_only="on", daily_token_budget=500, allowed_models="ep-1, ep-2")
    token = ApiToken.objects.get(user=user)
    assert token.token_hash == hash_token(plain) and plain not in str(ApiToken.objects.values().get())
    assert token.read_only and token.daily_token_budget == 500 and token.allowed_models == ["ep-1", "ep-2"]
    assert list(token.accounts.all()) == [account]
    again = client.get(PAGE).content.decode()
    assert plain not in again and token.hint in again


def test_it_offers_only_the_person_s_own_accounts(person, account):
    _user, client = person
    hidden = Account(name="secret-team", base_url="http://arksim.test/api/v3")
    hidden.set_api_key("k")
    hidden.save()
    assert "secret-team" not in client.get(PAGE).content.decode()
    response = client.post(PAGE, {"name": "x", "accounts": [hidden.pk], "requests_per_minute": 60})
    assert response.status_code == 200 and not ApiToken.objects.exists()


def test_it_shows_the_token_s_own_spend(person, account, sim, mirror):
    user, client = person
    _create(client, account, daily_token_budget=100000)
    token = ApiToken.objects.get(user=user)
    task = mirror(sim.add_task(status="succeeded"), total_tokens=12345)
    GatewayTask.objects.create(task=task, token=token, endpoint="ep-1")
    page = client.get(PAGE).content.decode()
    assert "12345 / 100000" in page


def test_it_revokes_a_token_and_another_person_cannot(person, account, django_user_model):
    user, client = person
    plain = _create(client, account)
    token = ApiToken.objects.get(user=user)
    intruder = Client()
    intruder.force_login(django_user_model.objects.create_user("eve"))
    assert intruder.post(f"/settings/tokens/{token.pk}/revoke/").status_code == 404
    assert Client().get("/api/v3/contents/generations/tasks", HTTP_AUTHORIZATION=f"Bearer {plain}").status_code == 200
    assert client.post(f"/settings/tokens/{token.pk}/revoke/").status_code == 302
    answer = Client().get("/api/v3/contents/generations/tasks", HTTP_AUTHORIZATION=f"Bearer {plain}")
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "AuthenticationError"


def test_it_asks_a_visitor_to_log_in(db):
    assert Client().get(PAGE).status_code == 302


def test_it_speaks_chinese_to_a_chinese_reader(person):
    _user, client = person
    page = client.get(PAGE, HTTP_ACCEPT_LANGUAGE="zh-Hans").content.decode()
    assert "API 令牌" in page and "创建令牌" in page and "每分钟请求数" in page
