"""Ark down, failing or rate limiting: health says so, the mirror survives, sync recovers."""

from __future__ import annotations

import time

import httpx
import pytest

from tasks_app.ark import ArkClient, ArkServerError
from tasks_app.lib import transport
from tasks_app.models import Account, Task, TaskStatus
from tasks_app.services.sync import sync_account

pytestmark = pytest.mark.usefixtures("unthrottled")


def _mirror(account: Account) -> dict[str, tuple]:
    return {
        row[0]: row[1:]
        for row in Task.objects.filter(account=account).values_list(
            "ark_id", "status", "video_url", "ark_updated_at", "changed_at", "gone_upstream_at"
        )
    }


@pytest.fixture
def synced(sim, account):
    """Three running and two finished tasks, mirrored by one good cycle."""
    for _ in range(3):
        sim.add_task(kind="video", status="running", run_seconds=100)
    for _ in range(2):
        sim.add_task(kind="video", status="succeeded")
    assert sync_account(account=account).ok
    account.refresh_from_db()
    return account


def test_it_reports_ark_failing_for_minutes_keeps_the_mirror_and_recovers(sim, synced):
    account = synced
    good_sync_at = account.last_sync_ok_at
    before = _mirror(account)
    sim.faults.inject("*", "500", times=10_000)
    sim.advance(200)  # meanwhile the running tasks finish upstream

    failing_since = None
    for cycle in range(1, 4):
        report = sync_account(account=account)
        assert not report.ok and "500" in report.errors[0]
        account.refresh_from_db()
        assert account.consecutive_failures == cycle
        failing_since = failing_since or account.failing_since
        assert account.failing_since == failing_since  # the outage started at the first failure
        assert "500" in account.last_sync_error
        assert account.last_sync_ok_at == good_sync_at
        assert _mirror(account) == before
        sim.advance(60)

    sim.faults.clear()
    report = sync_account(account=account)
    assert report.ok
    account.refresh_from_db()
    assert (account.consecutive_failures, account.failing_since) == (0, None)
    assert account.last_sync_ok_at > good_sync_at
    assert Task.objects.filter(account=account, status=TaskStatus.SUCCEEDED).count() == 5


def test_it_reports_ark_unreachable_and_recovers(sim, synced):
    account = synced
    before = _mirror(account)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with transport.routed_to(httpx.MockTransport(refuse)):
        report = sync_account(account=account)
    assert not report.ok and "connection" in report.errors[0].lower()
    account.refresh_from_db()
    assert account.consecutive_failures == 1 and account.failing_since is not None
    assert _mirror(account) == before

    assert sync_account(account=account).ok
    account.refresh_from_db()
    assert account.consecutive_failures == 0


def test_it_slows_down_on_429_instead_of_failing(sim, synced, settings):
    account = synced
    sim.advance(200)
    # No client-level retries: the cycle itself must wait and try again (the simulator
    # asks for at least 1 s per 429, which the shared limiter makes everyone honour).
    settings.ARK_MAX_RETRIES = 0
    sim.faults.inject("list", "429", times=2)

    report = sync_account(account=account)

    assert report.ok, report.errors
    assert report.rate_limited == 2
    account.refresh_from_db()
    assert account.consecutive_failures == 0
    assert Task.objects.filter(account=account, status=TaskStatus.SUCCEEDED).count() == 5


def test_it_waits_as_long_as_ark_asks(sim, synced):
    sim.faults.inject("list", "429", times=1, retry_after=1)
    started = time.monotonic()
    report = sync_account(account=synced)
    assert report.ok
    assert time.monotonic() - started >= 0.9


def test_it_fails_the_cycle_once_its_patience_with_429s_runs_out(sim, synced, settings):
    settings.ARKDASH_SYNC_RATE_LIMIT_PATIENCE_SECONDS = 0
    settings.ARK_MAX_RETRIES = 0
    sim.faults.inject("list", "429", times=100, retry_after=0)
    report = sync_account(account=synced)
    assert not report.ok and "429" in report.errors[0]
    synced.refresh_from_db()
    assert synced.consecutive_failures == 1


def test_it_keeps_the_pages_written_before_a_sweep_fails(sim, account, monkeypatch):
    for _ in range(1200):
        sim.add_task(kind="video", status="succeeded")
    real_list = ArkClient.list_tasks

    def second_page_fails(self, **kwargs):
        if kwargs.get("page_num") == 2:
            raise ArkServerError("Ark is having a bad day", http_status=500)
        return real_list(self, **kwargs)

    # The sweep reads page 1, the last page (3), then 2: pages 1 and 3 are kept.
    monkeypatch.setattr(ArkClient, "list_tasks", second_page_fails)
    report = sync_account(account=account)
    assert not report.ok
    assert Task.objects.filter(account=account).count() == 700
    account.refresh_from_db()
    assert account.last_full_sweep_at is None  # not complete: the next cycle sweeps again

    monkeypatch.setattr(ArkClient, "list_tasks", real_list)
    report = sync_account(account=account)
    assert report.ok and report.full_sweep
    assert Task.objects.filter(account=account).count() == 1200


def test_it_survives_garbled_answers(sim, synced):
    before = _mirror(synced)
    sim.faults.inject("list", "truncate", times=100)
    report = sync_account(account=synced)
    assert not report.ok
    assert _mirror(synced) == before


def test_it_records_an_unusable_account_as_a_failure(sim, db):
    broken = Account.objects.create(
        name="broken", base_url="http://arksim.test/api/v3", api_key_encrypted="garbage"
    )
    report = sync_account(account=broken)
    assert not report.ok and "cannot be used" in report.errors[0]
    broken.refresh_from_db()
    assert broken.consecutive_failures == 1
    assert (broken.sync_lease_token, broken.sync_lease_until) == ("", None)


def test_it_stores_and_shows_upstream_errors_without_any_run_of_the_key(db, client):
    key = "0f3c9d2e-7b1a-4c55-9e8f-aa12bc34de56"
    account = Account(name="echoing", base_url="http://arksim.test/api/v3")
    account.set_api_key(key)
    account.save()
    echo = f"key {key.upper()} is revoked; you sent {key[:14]}…"
    upstream = httpx.MockTransport(lambda request: httpx.Response(
        401, json={"error": {"code": "AuthenticationError", "message": echo}}))

    with transport.routed_to(upstream):
        report = sync_account(account=account)

    account.refresh_from_db()
    assert not report.ok and "revoked" in account.last_sync_error
    health = client.get("/healthz", REMOTE_ADDR="127.0.0.1").content.decode()
    for shown in (account.last_sync_error, " ".join(report.errors), health):
        lowered = shown.casefold()
        assert not any(key[i : i + 8].casefold() in lowered for i in range(len(key) - 7)), shown
