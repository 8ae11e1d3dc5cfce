"""Login rate limiting (django-axes): 5 failures per username and address lock that pair out."""

from __future__ import annotations

from datetime import timedelta

from axes.models import AccessAttempt
from django.test import Client

from .dashboard_helpers import ANA_PASSWORD as PASSWORD

LOGIN = "/accounts/login/"


def attempt(client: Client, password: str, *, username: str = "ana", ip: str = "203.0.113.5"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip)


def fail(times: int, **kwargs) -> list[int]:
    return [attempt(Client(), "wrong", **kwargs).status_code for _ in range(times)]


def test_it_locks_a_username_out_after_five_failures_from_one_address(ana, settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    # The form again with its error four times; the fifth failure locks the pair out.
    assert fail(5) == [200, 200, 200, 200, 429]
    response = attempt(Client(), PASSWORD)  # even the right password is refused now
    assert response.status_code == 429
    html = response.content.decode()
    assert "Too many failed logins" in html and "15 minutes" in html
    assert response["Retry-After"] == "900"
    assert "_auth_user_id" not in response.client.session


def test_it_does_not_lock_other_addresses_or_other_usernames(ana, django_user_model):
    django_user_model.objects.create_user("bo", password=PASSWORD)
    assert fail(5)[-1] == 429
    assert attempt(Client(), PASSWORD, ip="198.51.100.7").status_code == 302
    assert attempt(Client(), PASSWORD, username="bo").status_code == 302


def test_it_lets_the_user_in_again_after_the_cool_off(ana):
    assert fail(5)[-1] == 429
    assert attempt(Client(), PASSWORD).status_code == 429
    for record in AccessAttempt.objects.all():
        record.attempt_time -= timedelta(minutes=16)
        record.save()
    assert attempt(Client(), PASSWORD).status_code == 302


def test_it_forgets_failures_after_a_successful_login(ana):
    assert fail(4) == [200] * 4
    assert attempt(Client(), PASSWORD).status_code == 302
    assert fail(4) == [200] * 4
    assert attempt(Client(), PASSWORD).status_code == 302


def test_it_throttles_the_admin_login_too(ana):
    for _ in range(5):
        Client().post("/admin/login/", {"username": "ana", "password": "wrong"}, REMOTE_ADDR="203.0.113.5")
    response = Client().post("/admin/login/", {"username": "ana", "password": PASSWORD}, REMOTE_ADDR="203.0.113.5")
    assert response.status_code == 429
