"""A read whose database connection dies under it is answered again; a write is not."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from tasks_app import selectors

from .dashboard_helpers import make_task, member_of


def failing_once(real):
    calls = []

    def access_for(user):
        calls.append(user)
        if len(calls) == 1:
            raise OperationalError("terminating connection due to administrator command")
        return real(user)

    access_for.calls = calls
    return access_for


def test_it_answers_a_get_again_when_its_database_connection_died(user_client, account, monkeypatch):
    task = make_task(account)
    flaky = failing_once(selectors.access_for)
    monkeypatch.setattr(selectors, "access_for", flaky)
    response = user_client.get("/")
    assert response.status_code == 200 and f'id="task-{task.pk}"' in response.content.decode()
    assert len(flaky.calls) == 2


def test_it_does_not_repeat_a_write_or_retry_twice(user_client, account, monkeypatch):
    task = make_task(account)
    monkeypatch.setattr(selectors, "access_for", failing_once(selectors.access_for))
    with pytest.raises(OperationalError):  # the test client re-raises what became a 500
        user_client.post(f"/tasks/{task.pk}/cancel/")

    def always_failing(user):
        raise OperationalError("the database is gone")

    monkeypatch.setattr(selectors, "access_for", always_failing)
    with pytest.raises(OperationalError):
        user_client.get("/")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_survives_postgresql_terminating_the_connection_mid_request(client, django_user_model, account,
                                                                      monkeypatch, settings):
    from django.db import connection

    user = django_user_model.objects.create_user("ana", password="pw")
    member_of(user, account)
    client.force_login(user)
    task = make_task(account)
    real = selectors.access_for
    calls = []

    def killed_once(person):
        calls.append(person)
        if len(calls) == 1:
            with connection.cursor() as cursor:  # as an administrator's pg_terminate_backend would
                cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return real(person)

    monkeypatch.setattr(selectors, "access_for", killed_once)
    response = client.get("/")
    assert response.status_code == 200 and f'id="task-{task.pk}"' in response.content.decode()
    assert len(calls) == 2
