"""/healthz: database, broker, archive storage and per-account sync; 200 or 503, no secrets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from tasks_app.models import Account

from .services import REDIS_URL

pytestmark = pytest.mark.django_db


def _get(client):
    response = client.get("/healthz")
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    return response, response.json()


def test_it_answers_200_when_database_broker_and_storage_work(client, local_archive, account):
    Account.objects.filter(pk=account.pk).update(last_sync_ok_at=timezone.now() - timedelta(seconds=3))

    response, body = _get(client)

    assert response.status_code == 200
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "broker": True,
        "storage": True,
    }
    assert body["checks"]["broker"]["kind"] == "filesystem"
    assert body["checks"]["storage"]["kind"] == "local"
    (team,) = body["accounts"]
    assert team["name"] == "team" and team["ok"] is True
    assert 2 <= team["lag_seconds"] < 60
    assert body["archive"]["lag_seconds"] == 0


def test_it_leaves_no_probe_object_behind(client, local_archive):
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    assert local_archive.visible_keys() == []


def test_it_answers_503_when_archive_storage_cannot_be_written(client, settings, tmp_path):
    not_a_directory = tmp_path / "occupied"
    not_a_directory.write_text("a file where the archive folder should be")
    settings.STORAGES = {
        **settings.STORAGES,
        "archive": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(not_a_directory)},
        },
    }

    response, body = _get(client)

    assert response.status_code == 503
    assert body["status"] == "fail"
    assert body["checks"]["storage"]["ok"] is False
    assert body["checks"]["storage"]["error"]
    assert body["checks"]["database"]["ok"] is True


def test_it_answers_503_without_revealing_the_broker_password(client, settings, local_archive):
    settings.CELERY_BROKER_URL = "redis://:hunter2-broker-secret@127.0.0.1:1/0"  # nothing listens on port 1

    response, body = _get(client)

    assert response.status_code == 503
    assert body["checks"]["broker"]["ok"] is False
    assert "hunter2-broker-secret" not in response.content.decode()


def test_it_answers_503_when_the_database_fails(client, local_archive, monkeypatch):
    from tasks_app.observability import health

    class BrokenConnection:
        vendor = "postgresql"

        def cursor(self):
            raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(health, "connection", BrokenConnection())

    response, body = _get(client)

    assert response.status_code == 503
    assert body["checks"]["database"] == {
        "ok": False,
        "ms": body["checks"]["database"]["ms"],
        "error": "OperationalError: server closed the connection unexpectedly",
    }
    assert body["accounts"] == []


def test_it_reports_a_failing_account_without_failing_the_check(client, local_archive, account):
    now = timezone.now()
    Account.objects.filter(pk=account.pk).update(
        last_sync_ok_at=now - timedelta(minutes=10),
        failing_since=now - timedelta(minutes=9),
        consecutive_failures=42,
        last_sync_error="Ark HTTP 401 AuthenticationError: key test-key is wrong",
    )

    response, body = _get(client)

    # Restarting ArkDash does not bring Ark back: the web stays in rotation.
    assert response.status_code == 200
    assert body["status"] == "degraded"
    (team,) = body["accounts"]
    assert team["ok"] is False
    assert team["consecutive_failures"] == 42
    assert team["failing_since"] is not None
    # The error text (which may quote upstream data) is for signed-in pages, not this one.
    assert "test-key" not in response.content.decode()
    assert "AuthenticationError" not in response.content.decode()


def test_it_calls_an_account_that_never_synced_not_ok(client, local_archive, account):
    _response, body = _get(client)
    (team,) = body["accounts"]
    assert team["last_sync_ok_at"] is None and team["ok"] is False


@pytest.mark.redis
def test_it_pings_a_redis_broker(client, settings, local_archive):
    settings.CELERY_BROKER_URL = REDIS_URL

    response, body = _get(client)

    assert response.status_code == 200
    assert body["checks"]["broker"] == {"ok": True, "ms": body["checks"]["broker"]["ms"], "kind": "redis"}


def test_it_writes_reads_and_deletes_a_probe_on_s3(client, s3_archive):
    response, body = _get(client)

    assert response.status_code == 200, body
    assert body["checks"]["storage"]["kind"] == "s3"
    assert s3_archive.visible_keys() == []


def test_it_gives_up_on_a_check_that_hangs(monkeypatch):
    from tasks_app.observability import health

    monkeypatch.setattr(health, "_storage_check", lambda: __import__("time").sleep(2))
    result = health._timed(health._storage_check, timeout=0.2)
    assert result.ok is False
    assert result.error == "no answer within 0.2s"
    assert result.ms < 1500


def test_it_answers_head_and_refuses_post(client, local_archive):
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


def test_it_needs_no_login(client, local_archive):
    response = client.get("/healthz", follow=False)
    assert response.status_code == 200  # not a redirect to the login page


def test_it_names_no_account_to_an_anonymous_remote_caller(client, local_archive, account):
    response = client.get("/healthz", REMOTE_ADDR="203.0.113.9")
    assert response.json()["accounts"] == {"total": 1, "failing": 1, "mirroring_the_same_tasks": 0}  # never synced
    assert account.name.encode() not in response.content


def test_it_names_accounts_to_staff_and_token_holders(client, settings, local_archive, account, django_user_model):
    settings.ARKDASH_METRICS_TOKEN = "scrape-token"
    with_token = client.get("/healthz", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer scrape-token")
    client.force_login(django_user_model.objects.create_user("ops", is_staff=True))
    as_staff = client.get("/healthz", REMOTE_ADDR="203.0.113.9")
    assert [entry["name"] for entry in with_token.json()["accounts"]] == [account.name]
    assert [entry["name"] for entry in as_staff.json()["accounts"]] == [account.name]
