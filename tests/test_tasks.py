"""The Celery side of sync: beat's schedule and the thin tasks it runs."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings

from arkdash.celery import app
from tasks_app import tasks as celery_tasks
from tasks_app.models import Account, Task, TaskStatus

pytestmark = pytest.mark.usefixtures("unthrottled")


def test_it_schedules_sync_and_the_hand_off_sweep():
    schedule = django_settings.CELERY_BEAT_SCHEDULE
    app.loader.import_default_modules()
    for entry in ("sync-all-accounts", "archive-handoff-sweep"):
        assert schedule[entry]["task"] in app.tasks
        # A stopped worker must not find a backlog of stale syncs when it comes back.
        assert schedule[entry]["options"]["expires"] > 0


def test_it_syncs_every_account(sim, account, settings):
    settings.ARK_API_KEY = "test-key"
    settings.ARK_BASE_URL = "http://arksim.test/api/v3"
    sim.add_task(kind="video", status="running")
    assert celery_tasks.sync_all_accounts.delay().get() == 2  # `team` and the default account
    assert Task.objects.filter(account=account).count() == 1
    assert Task.objects.filter(account__is_default=True).count() == 1
    assert Account.objects.get(pk=account.pk).last_sync_ok_at is not None


def test_it_ignores_an_account_deleted_meanwhile(db):
    celery_tasks.sync_account.delay(987654)
    celery_tasks.refresh_task.delay(987654)
    celery_tasks.refresh_ark_task.delay(987654, "cgt-20250101000000-abcde")


def test_it_refreshes_one_task(sim, account):
    ark_id = sim.add_task(kind="video", status="queued", queue_seconds=5)
    celery_tasks.refresh_ark_task.delay(account.pk, ark_id)
    task = Task.objects.get(ark_id=ark_id)
    assert task.status == TaskStatus.QUEUED
    sim.advance(10)
    celery_tasks.refresh_task.delay(task.pk)
    assert Task.objects.get(pk=task.pk).status == TaskStatus.RUNNING


def test_it_gives_up_on_a_refresh_ark_refuses(sim, db):
    revoked = Account(name="revoked", base_url="http://arksim.test/api/v3")
    revoked.set_api_key("revoked-key")
    revoked.save()
    celery_tasks.refresh_ark_task.delay(revoked.pk, sim.add_task(kind="video", status="queued"))
    assert sim.stats()["get"] == 1  # one refused attempt, no retries
    assert not Task.objects.exists()
