"""Sync under what Ark never promised: batch size limits, the open window edge, keys of one account."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache
from django.utils import timezone

from arksim import Simulator
from tasks_app.ark import MAX_PAGE_SIZE
from tasks_app.models import Account, Artifact, Task, TaskStatus
from tasks_app.services import archive
from tasks_app.services.sync import (
    BATCH_GROW_EVERY,
    TaskIdsBatch,
    sync_account,
    task_refresh_by_ark_id,
)

from .conftest import SIM_API_KEY, SIM_BASE_URL, routed_simulator

OTHER_KEY = "second-key-of-the-same-ark-account"

pytestmark = pytest.mark.usefixtures("unthrottled")


def _sim(**options):
    return routed_simulator(api_keys=(SIM_API_KEY, OTHER_KEY), **options)


def _account(name: str, key: str) -> Account:
    account = Account(name=name, base_url=f"{SIM_BASE_URL}/api/v3")
    account.set_api_key(key)
    account.save()
    return account


def _seed_running(sim: Simulator, count: int) -> list[str]:
    ago = sim.clock.now() - 600
    return [sim.add_task(status="running", created_at=ago, run_seconds=10_000) for _ in range(count)]


@pytest.mark.django_db
def test_it_remembers_the_batch_that_worked_and_sends_no_refused_call_next_cycle():
    with _sim(max_task_ids=50) as sim:
        _seed_running(sim, 120)
        account = _account("team", SIM_API_KEY)
        sync_account(account=account)  # the sweep mirrors them
        first = sync_account(account=account)
        assert first.ok and first.batch_shrunk > 0 and first.batch_size <= 50
        second = sync_account(account=account)
    assert second.ok and second.batch_shrunk == 0
    assert second.batch_size == first.batch_size
    assert second.unchanged == 120


def _a_while_later(batch: TaskIdsBatch) -> TaskIdsBatch:
    cache.set(batch.key, {**cache.get(batch.key), "changed_at": time.time() - BATCH_GROW_EVERY.total_seconds() - 1})
    return TaskIdsBatch(account_id=1)


@pytest.mark.django_db
def test_it_grows_the_batch_slowly_and_never_past_a_refused_size():
    batch = TaskIdsBatch(account_id=1)
    batch.refused(MAX_PAGE_SIZE)
    assert batch.size == MAX_PAGE_SIZE // 2
    batch.accepted(batch.size)
    batch.cycle_done()
    assert TaskIdsBatch(account_id=1).size == MAX_PAGE_SIZE // 2  # not before BATCH_GROW_EVERY
    later = _a_while_later(batch)
    later.cycle_done()
    assert later.size == MAX_PAGE_SIZE // 2 + MAX_PAGE_SIZE // 20  # a tenth more
    for _ in range(50):
        later = _a_while_later(later)
        later.cycle_done()
    assert later.size == MAX_PAGE_SIZE - 1  # the refused size stays out of reach for a day


@pytest.mark.django_db
def test_it_falls_back_to_the_largest_size_that_worked_when_growing_too_far():
    batch = TaskIdsBatch(account_id=1)
    batch.refused(62)  # halved from 62
    assert batch.size == 31
    batch.accepted(31)
    batch.accepted(48)
    batch.refused(52)  # grown past the real limit: back to what worked, not to half
    assert (batch.size, batch.ceiling) == (48, 51)


@pytest.mark.django_db
def test_it_fails_the_cycle_when_even_one_id_is_refused():
    # Room for a plain list call (the sweep), none for a single filter.task_ids.
    with _sim(max_request_line=100) as sim:
        _seed_running(sim, 3)
        account = _account("team", SIM_API_KEY)
        assert sync_account(account=account).created == 3
        report = sync_account(account=account, full_sweep=False)
    assert not report.ok and "414" in report.errors[0]


@pytest.mark.django_db
def test_it_does_not_lose_a_task_read_back_in_the_second_it_was_created():
    with _sim(exact_window=True) as sim:
        account = _account("team", SIM_API_KEY)
        ark_id = sim.create_task(
            {"model": "doubao-seedance-1-0-pro-250528", "content": [{"type": "text", "text": "a cat"}]}
        )
        # A callback or a click reads it back at once: Ark does not show it yet.
        Task.objects.create(account=account, ark_id=ark_id, kind="video", status=TaskStatus.QUEUED,
                            ark_created_at=timezone.now())  # fmt: skip
        task = task_refresh_by_ark_id(account=account, ark_id=ark_id)
        assert task is not None and task.gone_upstream_at is None
        report = sync_account(account=account)
        assert report.ok and report.gone == 0
        assert Task.objects.get(ark_id=ark_id).gone_upstream_at is None
        sim.advance(1)  # a later read finds it
        sync_account(account=account)
    assert Task.objects.get(ark_id=ark_id).last_synced_at is not None


@pytest.mark.django_db
def test_it_discovers_a_task_created_in_the_current_second_on_a_later_cycle():
    with _sim(exact_window=True) as sim:
        account = _account("team", SIM_API_KEY)
        sync_account(account=account)
        ark_id = sim.add_task(status="queued", queue_seconds=100)
        assert sync_account(account=account).created == 0  # not visible in its own second
        sim.advance(1)
        assert sync_account(account=account).created == 1
    assert Task.objects.filter(ark_id=ark_id).exists()


@pytest.fixture
def two_keys_one_account(db):
    with _sim(key_groups=[[SIM_API_KEY, OTHER_KEY]]) as sim:
        first, second = _account("alpha-team", SIM_API_KEY), _account("beta-team", OTHER_KEY)
        yield sim, first, second


def test_it_records_two_accounts_that_mirror_the_same_tasks(two_keys_one_account, client, local_archive):
    sim, first, second = two_keys_one_account
    sim.add_task(status="succeeded", created_at=sim.clock.now() - 600)
    sync_account(account=first)
    assert not first.shares_tasks_with.exists()
    sync_account(account=second)
    assert list(second.shares_tasks_with.all()) == [first]
    assert list(first.shares_tasks_with.all()) == [second]  # both ways

    health = client.get("/healthz").json()
    by_name = {row["name"]: row for row in health["accounts"]}
    assert by_name["alpha-team"]["same_tasks_as"] == ["beta-team"]
    assert by_name["beta-team"]["same_tasks_as"] == ["alpha-team"]
    assert any("'alpha-team' and 'beta-team'" in warning for warning in health["warnings"])


def test_it_counts_shared_accounts_for_an_outsider_without_naming_them(two_keys_one_account, client,
                                                                        local_archive):  # fmt: skip
    sim, first, second = two_keys_one_account
    sim.add_task(status="queued", created_at=sim.clock.now() - 600)
    sync_account(account=first)
    sync_account(account=second)
    response = client.get("/healthz", REMOTE_ADDR="203.0.113.9")
    body = response.content.decode()
    assert response.json()["accounts"]["mirroring_the_same_tasks"] == 2
    assert "alpha-team" not in body and "beta-team" not in body
    assert response.json()["warnings"] == ["1 warning(s); details for staff, loopback or the token"]


def test_it_shows_the_shared_accounts_in_the_admin(two_keys_one_account, admin_client):
    sim, first, second = two_keys_one_account
    sim.add_task(status="queued", created_at=sim.clock.now() - 600)
    sync_account(account=first)
    sync_account(account=second)
    page = admin_client.get(f"/admin/tasks_app/account/{first.pk}/change/").content.decode()
    assert "beta-team: these keys see the same Ark tasks" in page


def test_it_archives_a_task_two_accounts_mirror_only_once(two_keys_one_account, local_archive):
    sim, first, second = two_keys_one_account
    ark_id = sim.add_task(status="succeeded", created_at=sim.clock.now() - 600, return_last_frame=True)
    sync_account(account=first)
    sync_account(account=second)
    rows = list(Task.objects.filter(ark_id=ark_id).order_by("pk"))
    assert len(rows) == 2
    for row in rows:  # the hand-offs, in the order the syncs queued them, and again
        archive.artifacts_create_for_task(task=row)
        archive.artifacts_create_for_task(task=row)
    assert Artifact.objects.filter(task__ark_id=ark_id).count() == 2  # video and last frame, once
    assert set(Artifact.objects.filter(task__ark_id=ark_id).values_list("task_id", flat=True)) == {rows[0].pk}
