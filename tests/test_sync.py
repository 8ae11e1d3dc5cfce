"""One sync cycle against the in-process simulator: what it finds, writes and spends."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from django.utils import timezone

from tasks_app.ark import ArkClient
from tasks_app.models import Account, Task, TaskStatus
from tasks_app.services.sync import sync_account, task_refresh, task_refresh_by_ark_id

from .conftest import routed_simulator

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

pytestmark = pytest.mark.usefixtures("unthrottled")


@pytest.fixture(params=list(SYNC_MODES))
def sim(request):
    """The conftest simulator, once per mode."""
    with routed_simulator(**SYNC_MODES[request.param]) as simulator:
        simulator.mode = request.param
        yield simulator


def _ago(sim, seconds: float) -> float:
    """A creation time `seconds` before the simulator's now (older than the young-task grace)."""
    return sim.clock.now() - seconds


def _sweep_then_reset(sim, account) -> None:
    """A first cycle (a full sweep) so the next one is an ordinary cycle; then count from zero."""
    first = sync_account(account=account)
    assert first.ok and first.full_sweep
    account.refresh_from_db()
    sim.reset_stats()


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


def test_it_skips_while_another_worker_holds_the_accounts_lease(sim, account):
    sim.add_task(kind="video", status="queued")
    Account.objects.filter(pk=account.pk).update(
        sync_lease_token="someone-else", sync_lease_until=timezone.now() + timedelta(minutes=5)
    )
    report = sync_account(account=account)
    assert report.skipped and not report.errors
    assert sim.stats()["list"] == 0
    assert not Task.objects.exists()


def test_it_takes_over_an_expired_lease_and_releases_it(sim, account):
    Account.objects.filter(pk=account.pk).update(
        sync_lease_token="crashed-worker", sync_lease_until=timezone.now() - timedelta(seconds=1)
    )
    report = sync_account(account=account)
    assert report.ok
    account.refresh_from_db()
    assert (account.sync_lease_token, account.sync_lease_until) == ("", None)


def test_it_refreshes_one_task_by_id(sim, account):
    ark_id = sim.add_task(kind="video", status="queued", queue_seconds=5)
    _sweep_then_reset(sim, account)
    task = Task.objects.get(ark_id=ark_id)
    sim.advance(10)
    refreshed = task_refresh(task=task)
    assert refreshed.status == TaskStatus.RUNNING
    assert sim.stats()["get"] == 1


def test_it_marks_a_refreshed_task_gone_when_ark_has_no_record(sim, account):
    ark_id = sim.add_task(kind="video", status="failed", created_at=_ago(sim, 600))
    _sweep_then_reset(sim, account)
    sim.delete_task(sim.default_key, ark_id)
    task = task_refresh(task=Task.objects.get(ark_id=ark_id))
    assert task.gone_upstream_at is not None


def test_it_returns_none_for_an_id_nobody_knows(sim, account):
    assert task_refresh_by_ark_id(account=account, ark_id="cgt-20250101000000-nope0") is None
    assert not Task.objects.exists()


def test_it_reports_what_it_did(sim, account):
    sim.add_task(kind="video", status="queued")
    report = sync_account(account=account)
    text = str(report)
    assert "team" in text and "1 calls" in text and "created 1" in text and "full sweep" in text
    assert "test-key" not in text
