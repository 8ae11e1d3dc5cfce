from __future__ import annotations

import logging

import pytest

from tasks_app.lib.crypto import encrypt_secret
from tasks_app.models import Account
from tasks_app.services.accounts import account_ensure_default, client_for


def test_it_creates_no_default_account_without_a_key(db, settings):
    settings.ARK_API_KEY = ""
    assert account_ensure_default() is None
    assert not Account.objects.exists()


def test_it_creates_the_default_account_from_the_environment(db, settings):
    settings.ARK_API_KEY = "env-key-1"
    settings.ARK_BASE_URL = "http://arksim.test/api/v3/"
    account = account_ensure_default()
    assert account is not None
    stored = Account.objects.get(pk=account.pk)
    assert (stored.name, stored.base_url, stored.is_default) == ("default", "http://arksim.test/api/v3", True)
    assert stored.api_key == "env-key-1"
    assert "env-key-1" not in stored.api_key_encrypted


def test_it_is_idempotent_and_follows_a_changed_key(db, settings, caplog):
    settings.ARK_API_KEY = "env-key-1"
    first = account_ensure_default()
    assert account_ensure_default().pk == first.pk
    settings.ARK_API_KEY = "env-key-2"
    with caplog.at_level(logging.INFO):
        second = account_ensure_default()
    assert second.pk == first.pk
    assert Account.objects.get(pk=first.pk).api_key == "env-key-2"
    assert Account.objects.count() == 1
    assert "env-key-2" not in caplog.text


def test_it_replaces_a_key_encrypted_with_a_retired_secret(db, settings):
    settings.ARK_API_KEY = "env-key-1"
    account = account_ensure_default()
    Account.objects.filter(pk=account.pk).update(api_key_encrypted="not-a-fernet-token")
    account_ensure_default()
    assert Account.objects.get(pk=account.pk).api_key == "env-key-1"


def test_it_does_not_take_over_an_ordinary_account_named_default(db, settings):
    other = Account.objects.create(
        name="default", base_url="http://other.test/api/v3", api_key_encrypted=encrypt_secret("x")
    )
    settings.ARK_API_KEY = "env-key-1"
    account = account_ensure_default()
    assert account.pk != other.pk
    assert account.name == "default-2"


def test_it_builds_a_client_that_reaches_the_account(sim, account, settings):
    settings.ARK_LIST_RATE_PER_SECOND = 1000.0
    task_id = sim.add_task(kind="video", status="queued")
    with client_for(account) as client:
        assert client.get_task(task_id).status == "queued"
        assert "test-key" not in repr(client)


def test_it_spends_the_accounts_shared_budget(sim, account, settings, monkeypatch):
    calls = []
    from tasks_app import ratelimit

    monkeypatch.setattr(
        ratelimit.SharedRateLimiter, "acquire", lambda self, *, endpoint: calls.append(endpoint)
    )
    sim.add_task(kind="video", status="queued")
    with client_for(account) as client:
        client.list_tasks()
    assert calls == ["list"]


def test_it_refuses_a_client_for_an_undecryptable_key(db):
    from tasks_app.lib.crypto import SecretDecryptError

    broken = Account.objects.create(
        name="broken", base_url="http://arksim.test/api/v3", api_key_encrypted="garbage"
    )
    with pytest.raises(SecretDecryptError):
        client_for(broken)
