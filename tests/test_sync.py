"""tasks_app/services/sync.py: one cycle against the in-process simulator, in each list mode
Ark's documents leave open; what Ark never promised (batch size limits, the open window edge,
keys of one account); Ark down, failing or rate limiting; and mapping Ark's task objects onto
mirror rows.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from arksim import Simulator
from tasks_app.ark import MAX_PAGE_SIZE, ArkClient, ArkServerError, ArkTask
from tasks_app.lib import transport
from tasks_app.models import Account, Artifact, Task, TaskStatus
from tasks_app.services import archive
from tasks_app.services.sync import (
    BATCH_GROW_EVERY,
    TaskIdsBatch,
    sync_account,
    task_refresh,
    task_refresh_by_ark_id,
    task_upsert_from_ark,
    tasks_upsert_from_ark,
)

from .conftest import SIM_API_KEY, SIM_BASE_URL, routed_simulator

pytestmark = pytest.mark.usefixtures("unthrottled")

DAY = 86400
# Every answer Ark's documents leave open that shapes a cycle: the list order, and how
# many ids (or how long a URL) one filter.task_ids call may carry.
SYNC_MODES = {
    "newest-first": {},
    "oldest-first": {"list_order": "oldest"},
    "shuffled": {"list_order": "shuffled"},
    "50-ids-a-call": {"max_task_ids": 50},
    "4kb-request-line": {"max_request_line": 4096},
}
STABLE_ORDER = ("newest-first", "oldest-first", "50-ids-a-call", "4kb-request-line")
OTHER_KEY = "second-key-of-the-same-ark-account"


@pytest.fixture
def sim(request):
    """The conftest simulator, in the mode a test names through `in_each_sync_mode` (else Ark's defaults)."""
    mode = getattr(request, "param", "newest-first")
    with routed_simulator(**SYNC_MODES[mode]) as simulator:
        simulator.mode = mode
        yield simulator


in_each_sync_mode = pytest.mark.parametrize("sim", list(SYNC_MODES), indirect=True)


# One cycle, in each list mode: what it finds, writes and spends.


def _ago(sim, seconds: float) -> float:
    """A creation time `seconds` before the simulator's now (older than the young-task grace)."""
    return sim.clock.now() - seconds


def _sweep_then_reset(sim, account) -> None:
    """A first cycle (a full sweep) so the next one is an ordinary cycle; then count from zero."""
    first = sync_account(account=account)
    assert first.ok and first.full_sweep
    account.refresh_from_db()
    sim.reset_stats()


@in_each_sync_mode
def test_it_mirrors_every_task_on_the_first_cycle(sim, account):
    ids = [
        sim.add_task(kind="video", status=status) for status in ("queued", "running", "succeeded", "failed")
    ]
    ids.append(sim.add_task(kind="3d", status="succeeded", file_format="obj"))
    report = sync_account(account=account)
    assert report.ok and report.full_sweep
    assert report.created == 5
    mirrored = {task.ark_id: task for task in Task.objects.filter(account=account)}
    assert set(mirrored) == set(ids)
    for ark_id, task in mirrored.items():
        assert task.status == sim.task_json(ark_id)["status"]
    three_d = mirrored[ids[-1]]
    assert (three_d.kind, three_d.file_format) == ("3d", "obj")
    assert three_d.file_url.startswith("http://arksim.test/_outputs/")
    account.refresh_from_db()
    assert account.last_sync_ok_at is not None and account.last_full_sweep_at is not None


@in_each_sync_mode
def test_it_refreshes_1000_active_tasks_with_at_most_4_list_calls(sim, account):
    ids = [sim.add_task(kind="video", status="running", run_seconds=100) for _ in range(1000)]
    _sweep_then_reset(sim, account)
    assert Task.objects.filter(status=TaskStatus.RUNNING).count() == 1000
    sim.advance(200)  # every one of them finishes upstream

    report = sync_account(account=account)

    assert report.ok and not report.full_sweep
    stats = sim.stats()
    if sim.mode in ("50-ids-a-call", "4kb-request-line"):
        # Refused batches were halved until they fit, then every id was read.
        assert report.batch_shrunk >= 1 and report.batch_size < 500
        assert stats["list"] <= report.batch_shrunk + math.ceil(1000 / report.batch_size) + 2
    else:
        assert stats["list"] <= 4  # ceil(1000/500) = 2 refresh calls, plus discovery
    assert stats["get"] == 0
    assert report.calls["list"] == stats["list"]
    assert report.updated == 1000
    assert Task.objects.filter(ark_id__in=ids, status=TaskStatus.SUCCEEDED).count() == 1000


@in_each_sync_mode
def test_it_makes_no_upstream_call_however_many_people_look(sim, account, client, django_user_model):
    for status in ("queued", "running", "succeeded"):
        sim.add_task(kind="video", status=status)
    _sweep_then_reset(sim, account)
    user = django_user_model.objects.create_user("viewer", password="pw", is_superuser=True)
    client.force_login(user)
    for _ in range(20):
        assert client.get("/").status_code == 200
    assert (
        sum(count for name, count in sim.stats().items() if name in ("list", "get", "create", "delete")) == 0
    )


@in_each_sync_mode
def test_it_discovers_a_task_that_went_queued_to_succeeded_between_cycles(sim, account):
    _sweep_then_reset(sim, account)
    ark_id = sim.add_task(kind="video", status="queued", queue_seconds=1, run_seconds=5)
    sim.advance(60)  # queued -> running -> succeeded before ArkDash ever saw it
    assert sim.task_json(ark_id)["status"] == "succeeded"

    report = sync_account(account=account)

    assert not report.full_sweep and report.created == 1
    task = Task.objects.get(account=account, ark_id=ark_id)
    assert task.status == TaskStatus.SUCCEEDED
    assert task.archive_handoff_pending  # its outputs go to the archive like any other
    assert sim.stats()["list"] == 3  # queued, the window's total, succeeded


@in_each_sync_mode
def test_it_keeps_a_task_deleted_upstream_and_marks_it_gone(sim, account):
    kept = sim.add_task(kind="video", status="succeeded", created_at=_ago(sim, 600))
    deleted = sim.add_task(kind="video", status="succeeded", created_at=_ago(sim, 600))
    _sweep_then_reset(sim, account)
    sim.delete_task(sim.default_key, deleted)

    report = sync_account(account=account, full_sweep=True)

    assert report.ok and report.gone == 1
    gone = Task.objects.get(ark_id=deleted)
    assert gone.gone_upstream_at is not None
    assert gone.status == TaskStatus.SUCCEEDED and gone.video_url  # the record is kept as it was
    assert Task.objects.get(ark_id=kept).gone_upstream_at is None
    assert sim.stats()["get"] == 1  # "gone" is confirmed by Ark, never guessed from a list


@in_each_sync_mode
def test_it_marks_an_active_task_gone_when_it_leaves_the_7_day_window(sim, account):
    now = sim.clock.now()
    ark_id = sim.add_task(kind="3d", status="queued", created_at=now - 7 * DAY + 30, queue_seconds=10 * DAY)
    _sweep_then_reset(sim, account)
    assert Task.objects.get(ark_id=ark_id).gone_upstream_at is None
    sim.advance(60)

    report = sync_account(account=account)

    assert report.gone == 1
    task = Task.objects.get(ark_id=ark_id)
    assert task.gone_upstream_at is not None and task.status == TaskStatus.QUEUED
    assert sim.stats()["get"] == 1
    # Gone tasks are not refreshed again.
    sim.reset_stats()
    sync_account(account=account)
    assert sim.stats()["get"] == 0


@in_each_sync_mode
def test_it_marks_long_past_tasks_gone_without_asking_ark(sim, account):
    _sweep_then_reset(sim, account)
    Task.objects.create(
        account=account,
        ark_id="cgt-20200101000000-old01",
        kind="video",
        status=TaskStatus.RUNNING,
        ark_created_at=timezone.now() - timedelta(days=30),
    )
    report = sync_account(account=account)
    assert report.gone == 1
    assert sim.stats()["get"] == 0


@in_each_sync_mode
def test_it_does_not_mark_a_task_gone_because_a_page_was_short(sim, account, monkeypatch):
    ark_id = sim.add_task(kind="video", status="running", created_at=_ago(sim, 600), run_seconds=10_000)
    _sweep_then_reset(sim, account)
    real_list = ArkClient.list_tasks

    def short_page(self, **kwargs):
        page = real_list(self, **kwargs)
        if kwargs.get("task_ids"):
            return type(page)(total=page.total, items=[item for item in page.items if item.id != ark_id])
        return page

    monkeypatch.setattr(ArkClient, "list_tasks", short_page)
    report = sync_account(account=account)
    assert report.gone == 0
    assert Task.objects.get(ark_id=ark_id).gone_upstream_at is None
    assert sim.stats()["get"] == 1


@in_each_sync_mode
def test_it_writes_nothing_on_a_quiet_cycle(sim, account):
    for _ in range(5):
        sim.add_task(kind="video", status="succeeded")
    sim.add_task(kind="video", status="running", run_seconds=1000)
    _sweep_then_reset(sim, account)
    before = dict(Task.objects.values_list("ark_id", "changed_at"))

    report = sync_account(account=account)

    assert report.ok and (report.created, report.updated) == (0, 0)
    assert report.unchanged == 1  # the running task; the window's total says nothing else is new
    assert dict(Task.objects.values_list("ark_id", "changed_at")) == before
    assert sim.stats()["list"] == 3  # refresh, queued, the window's total


@in_each_sync_mode
def test_it_sweeps_the_whole_window_when_due(sim, account, settings):
    for _ in range(1200):
        sim.add_task(kind="video", status="succeeded")
    report = sync_account(account=account)
    assert report.full_sweep and report.created == 1200
    if sim.mode in STABLE_ORDER:
        assert report.calls["list"] == 3
    settings.ARKDASH_FULL_SWEEP_SECONDS = 0
    account.refresh_from_db()
    sim.reset_stats()
    again = sync_account(account=account)
    assert again.full_sweep and again.unchanged == 1200 and again.updated == 0


@in_each_sync_mode
def test_it_pages_on_when_a_burst_of_new_tasks_fills_the_discovery_page(sim, account):
    _sweep_then_reset(sim, account)
    for _ in range(700):
        sim.add_task(kind="video", status="succeeded")
    report = sync_account(account=account)
    assert report.ok and report.created == 700
    if sim.mode in STABLE_ORDER:
        assert not report.full_sweep
        assert report.calls["list"] == 4  # queued, the window's total, two pages of succeeded
    # Shuffled, pages overlap: what the discovery budget missed, the sweep found at once.


@in_each_sync_mode
def test_it_skips_while_another_worker_holds_the_accounts_lease(sim, account):
    sim.add_task(kind="video", status="queued")
    Account.objects.filter(pk=account.pk).update(
        sync_lease_token="someone-else", sync_lease_until=timezone.now() + timedelta(minutes=5)
    )
    report = sync_account(account=account)
    assert report.skipped and not report.errors
    assert sim.stats()["list"] == 0
    assert not Task.objects.exists()


@in_each_sync_mode
def test_it_takes_over_an_expired_lease_and_releases_it(sim, account):
    Account.objects.filter(pk=account.pk).update(
        sync_lease_token="crashed-worker", sync_lease_until=timezone.now() - timedelta(seconds=1)
    )
    report = sync_account(account=account)
    assert report.ok
    account.refresh_from_db()
    assert (account.sync_lease_token, account.sync_lease_until) == ("", None)


@in_each_sync_mode
def test_it_refreshes_one_task_by_id(sim, account):
    ark_id = sim.add_task(kind="video", status="queued", queue_seconds=5)
    _sweep_then_reset(sim, account)
    task = Task.objects.get(ark_id=ark_id)
    sim.advance(10)
    refreshed = task_refresh(task=task)
    assert refreshed.status == TaskStatus.RUNNING
    assert sim.stats()["get"] == 1


@in_each_sync_mode
def test_it_marks_a_refreshed_task_gone_when_ark_has_no_record(sim, account):
    ark_id = sim.add_task(kind="video", status="failed", created_at=_ago(sim, 600))
    _sweep_then_reset(sim, account)
    sim.delete_task(sim.default_key, ark_id)
    task = task_refresh(task=Task.objects.get(ark_id=ark_id))
    assert task.gone_upstream_at is not None


@in_each_sync_mode
def test_it_returns_none_for_an_id_nobody_knows(sim, account):
    assert task_refresh_by_ark_id(account=account, ark_id="cgt-20250101000000-nope0") is None
    assert not Task.objects.exists()


@in_each_sync_mode
def test_it_reports_what_it_did(sim, account):
    sim.add_task(kind="video", status="queued")
    report = sync_account(account=account)
    text = str(report)
    assert "team" in text and "1 calls" in text and "created 1" in text and "full sweep" in text
    assert "test-key" not in text


# What Ark never promised: batch size limits, the open window edge, keys of one account.


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


# Ark down, failing or rate limiting: health says so, the mirror survives, sync recovers.


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


# Mapping Ark's task objects onto mirror rows: what is written, and what is not.

CREATED = 1_763_700_000  # a fixed Unix time


def _video(task_id: str = "cgt-20251121120000-abcde", status: str = "queued", **extra) -> ArkTask:
    body = {
        "id": task_id,
        "model": "doubao-seedance-1-0-pro-250528",
        "status": status,
        "created_at": CREATED,
        "updated_at": CREATED + 60,
        "resolution": "720p",
        "ratio": "16:9",
        "duration": 5,
        "framespersecond": 24,
        "seed": 42,
        "service_tier": "default",
        "execution_expires_after": 172800,
    }
    if status == "succeeded":
        body["content"] = {
            "video_url": f"https://out.example/{task_id}.mp4?sig=one",
            "last_frame_url": f"https://out.example/{task_id}.png?sig=one",
        }
        body["usage"] = {"completion_tokens": 108900, "total_tokens": 108900}
    body.update(extra)
    return ArkTask.from_json(body)


def test_it_creates_a_task_with_every_mirrored_field(account):
    task, changed = task_upsert_from_ark(account=account, ark_task=_video(status="succeeded"))
    assert changed
    task = Task.objects.get(pk=task.pk)
    assert (task.kind, task.status, task.model) == ("video", "succeeded", "doubao-seedance-1-0-pro-250528")
    assert task.ark_created_at == datetime.fromtimestamp(CREATED, tz=UTC)
    assert (task.resolution, task.ratio, task.duration, task.framespersecond, task.seed) == (
        "720p",
        "16:9",
        5,
        24,
        42,
    )
    assert (task.completion_tokens, task.total_tokens) == (108900, 108900)
    assert task.video_url.startswith("https://out.example/")
    assert task.outputs_expire_at == datetime.fromtimestamp(CREATED + 60, tz=UTC) + timedelta(hours=24)
    assert task.raw["id"] == task.ark_id
    assert task.finished_at == datetime.fromtimestamp(CREATED + 60, tz=UTC)
    assert task.last_synced_at is not None


def test_it_maps_3d_parameters(account):
    ark_task = ArkTask.from_json(
        {
            "id": "cgt-20251121120000-3dddd",
            "model": "doubao-seed3d-1-0-250928",
            "status": "running",
            "created_at": CREATED,
            "subdivisionlevel": "high",
            "fileformat": "obj",
        }
    )
    task, _ = task_upsert_from_ark(account=account, ark_task=ark_task)
    task.refresh_from_db()
    assert (task.kind, task.subdivision_level, task.file_format) == ("3d", "high", "obj")
    assert task.started_at is not None


def test_it_writes_nothing_when_nothing_changed(account):
    task_upsert_from_ark(account=account, ark_task=_video())
    before = Task.objects.get()
    with CaptureQueriesContext(connection) as queries:
        _, changed = task_upsert_from_ark(account=account, ark_task=_video())
    assert not changed
    assert not [
        q for q in queries.captured_queries if q["sql"].lstrip().upper().startswith(("UPDATE", "INSERT"))
    ]
    assert Task.objects.get().changed_at == before.changed_at


def test_it_treats_a_re_signed_output_url_as_unchanged(account):
    task_upsert_from_ark(account=account, ark_task=_video(status="succeeded"))
    re_signed = _video(
        status="succeeded",
        content={
            "video_url": "https://out.example/cgt-20251121120000-abcde.mp4?sig=two",
            "last_frame_url": "https://out.example/cgt-20251121120000-abcde.png?sig=two",
        },
    )
    _, changed = task_upsert_from_ark(account=account, ark_task=re_signed)
    assert not changed


def test_it_updates_only_rows_that_changed_in_a_batch(account):
    tasks_upsert_from_ark(
        account=account, ark_tasks=[_video(f"cgt-20251121120000-aaa{i:02d}") for i in range(10)]
    )
    batch = [
        _video(f"cgt-20251121120000-aaa{i:02d}", status="running" if i < 3 else "queued") for i in range(10)
    ]
    result = tasks_upsert_from_ark(account=account, ark_tasks=batch)
    assert (result.created, result.updated, result.unchanged) == (0, 3, 7)
    assert Task.objects.filter(status=TaskStatus.RUNNING).count() == 3


def test_it_flags_a_task_turning_succeeded_for_the_archive_in_the_same_write(account):
    task_upsert_from_ark(account=account, ark_task=_video())
    assert not Task.objects.get().archive_handoff_pending
    task_upsert_from_ark(account=account, ark_task=_video(status="running"))
    assert not Task.objects.get().archive_handoff_pending
    # The hand-off itself runs after commit; the test transaction never commits here.
    task_upsert_from_ark(account=account, ark_task=_video(status="succeeded"))
    assert Task.objects.get().archive_handoff_pending


def test_it_does_not_flag_a_task_again_once_succeeded(account):
    task_upsert_from_ark(account=account, ark_task=_video(status="succeeded"))
    Task.objects.update(archive_handoff_pending=False)
    task_upsert_from_ark(account=account, ark_task=_video(status="succeeded", usage={"total_tokens": 1}))
    assert not Task.objects.get().archive_handoff_pending


def test_it_records_the_failure_reason(account):
    failed = _video(
        status="failed", error={"code": "OutputVideoSensitiveContentDetected", "message": "policy"}
    )
    task, _ = task_upsert_from_ark(account=account, ark_task=failed)
    task.refresh_from_db()
    assert (task.error_code, task.error_message) == ("OutputVideoSensitiveContentDetected", "policy")
    assert not task.archive_handoff_pending


def test_it_clears_gone_upstream_when_ark_returns_the_task_again(account):
    task, _ = task_upsert_from_ark(account=account, ark_task=_video())
    Task.objects.filter(pk=task.pk).update(gone_upstream_at=datetime.now(UTC))
    task_upsert_from_ark(account=account, ark_task=_video())
    assert Task.objects.get(pk=task.pk).gone_upstream_at is None


def test_it_survives_odd_values_from_ark(account):
    odd = ArkTask.from_json(
        {
            "id": "cgt-20251121120000-odddd",
            "model": "m" * 500,
            "status": "queued",
            "resolution": "r" * 100,
            "seed": 2**70,
            "duration": 2**40,
            "error": {"code": "x\x00y", "message": "nul\x00inside"},
            "extra": {"text": "a\x00b"},
        }
    )
    task, _ = task_upsert_from_ark(account=account, ark_task=odd)
    task.refresh_from_db()
    assert len(task.model) == 128 and len(task.resolution) == 16
    assert (task.seed, task.duration) == (None, None)
    assert task.error_message == "nulinside"
    assert task.raw["extra"]["text"] == "ab"
    # No created_at: the time encoded in the id (Beijing time) is used.
    assert task.ark_created_at == datetime(2025, 11, 21, 4, 0, 0, tzinfo=UTC)


def test_it_keeps_the_last_copy_of_a_task_repeated_in_a_page(account):
    result = tasks_upsert_from_ark(account=account, ark_tasks=[_video(), _video(status="running")])
    assert result.created == 1
    assert Task.objects.get().status == "running"


@pytest.mark.postgres
def test_it_costs_a_few_queries_per_batch_plus_one_per_changed_row(account):
    batch = [_video(f"cgt-20251121120000-b{i:04d}") for i in range(500)]
    with CaptureQueriesContext(connection) as queries:
        tasks_upsert_from_ark(account=account, ark_tasks=batch)
    assert len(queries.captured_queries) < 10  # new rows: one bulk insert
    changed = [
        _video(f"cgt-20251121120000-b{i:04d}", status="running" if i < 20 else "queued") for i in range(500)
    ]
    with CaptureQueriesContext(connection) as queries:
        result = tasks_upsert_from_ark(account=account, ark_tasks=changed)
    assert (result.updated, result.unchanged) == (20, 480)
    updates = [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 20
    assert len(queries.captured_queries) < 20 + 10
