"""The scan finds each kind of event once, for the rules that ask for it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tasks_app.alerts import services
from tasks_app.alerts.models import AlertEvent, AlertRule, ChannelKind, Delivery, EventKind
from tasks_app.models import Account, Artifact, ArtifactOutput, ArtifactState, Task, TaskKind, TaskStatus

from .alerts_support import failed_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def channel(account, settings):
    settings.ARKDASH_ALERT_PRIVATE_HOSTS = ["127.0.0.1:9"]
    return services.channel_create(account=account, name="ops", kind=ChannelKind.SLACK,
                                   target="http://127.0.0.1:9/hook", secret="")


def _rule(account, channel, event, *, age=timedelta(minutes=1), **fields) -> AlertRule:
    rule = AlertRule.objects.create(account=account, channel=channel, event=event, **fields)
    AlertRule.objects.filter(pk=rule.pk).update(created=timezone.now() - age)
    rule.refresh_from_db()
    return rule


def _keys() -> set[str]:
    return set(AlertEvent.objects.values_list("key", flat=True))


def _artifact(account, n: int, *, state: str, deadline, output=ArtifactOutput.VIDEO) -> Artifact:
    now = timezone.now()
    task = Task.objects.create(account=account, ark_id=f"cgt-ok-{n}", kind=TaskKind.VIDEO, model="m",
                               status=TaskStatus.SUCCEEDED, ark_created_at=now, finished_at=now)
    return Artifact.objects.create(task=task, output=output, state=state, deadline=deadline,
                                   last_error="the output URL answered 403: it has expired or was removed")


def test_it_records_a_failed_task_once_however_many_scans_see_it(account, channel):
    _rule(account, channel, EventKind.TASK_FAILED)
    task = failed_task(account, 1)
    services.alerts_scan()
    services.alerts_scan()
    assert _keys() == {f"task_failed:{task.pk}"}
    assert Delivery.objects.filter(channel=channel).count() == 1


def test_it_filters_failed_tasks_by_error_code_and_model(account, channel):
    _rule(account, channel, EventKind.TASK_FAILED, error_code="QuotaExceeded", model="seed3d")
    wanted = failed_task(account, 1, error_code="QuotaExceeded", model="seed3d")
    failed_task(account, 2, error_code="QuotaExceeded", model="other")
    failed_task(account, 3, error_code="InternalServiceError", model="seed3d")
    services.alerts_scan()
    assert _keys() == {f"task_failed:{wanted.pk}"}


def test_it_does_not_notify_failures_from_before_the_rule(account, channel):
    _rule(account, channel, EventKind.TASK_FAILED)
    failed_task(account, 1, when=timezone.now() - timedelta(days=3))  # history found by a first sync
    services.alerts_scan()
    assert _keys() == set()


def test_it_ignores_other_accounts_failures(account, channel):
    _rule(account, channel, EventKind.TASK_FAILED)
    other = Account(name="other", base_url="http://arksim.test/api/v3")
    other.set_api_key("k")
    other.save()
    failed_task(other, 1)
    services.alerts_scan()
    assert _keys() == set()


def test_it_records_a_lost_output_but_not_a_lost_preview(account, channel):
    _rule(account, channel, EventKind.OUTPUT_LOST)
    lost = _artifact(account, 1, state=ArtifactState.LOST, deadline=timezone.now())
    _artifact(account, 2, state=ArtifactState.LOST, deadline=timezone.now(), output=ArtifactOutput.MODEL_FILE)
    _artifact(account, 3, state=ArtifactState.ARCHIVED, deadline=timezone.now())
    services.alerts_scan()
    services.alerts_scan()
    assert _keys() == {f"output_lost:{lost.pk}"}
    event = AlertEvent.objects.get()
    assert event.artifact_id == lost.pk and "stopped working" in event.summary


def test_it_records_an_output_at_risk_under_its_rules_threshold(account, channel):
    _rule(account, channel, EventKind.OUTPUT_AT_RISK, at_risk_hours=2)
    soon = _artifact(account, 1, state=ArtifactState.FAILED, deadline=timezone.now() + timedelta(hours=1))
    _artifact(account, 2, state=ArtifactState.PENDING, deadline=timezone.now() + timedelta(hours=5))
    _artifact(account, 3, state=ArtifactState.ARCHIVED, deadline=timezone.now() + timedelta(minutes=5))
    services.alerts_scan()
    services.alerts_scan()
    assert _keys() == {f"output_at_risk:{soon.pk}:2"}


def test_it_records_each_sync_outage_once_after_n_minutes(account, channel):
    _rule(account, channel, EventKind.SYNC_DOWN, sync_down_minutes=10)
    now = timezone.now()
    Account.objects.filter(pk=account.pk).update(failing_since=now - timedelta(minutes=5), last_sync_error="503")
    services.alerts_scan()
    assert _keys() == set()  # not yet ten minutes

    first = now - timedelta(minutes=15)
    Account.objects.filter(pk=account.pk).update(failing_since=first)
    services.alerts_scan()
    services.alerts_scan()
    assert len(_keys()) == 1

    Account.objects.filter(pk=account.pk).update(failing_since=now - timedelta(minutes=11))  # a new outage
    services.alerts_scan()
    assert len(_keys()) == 2


def test_it_records_a_queue_near_cap_once_per_episode(account, channel):
    _rule(account, channel, EventKind.QUEUE_NEAR_CAP, queue_threshold=5)
    now = timezone.now()
    queued = [Task.objects.create(account=account, ark_id=f"cgt-q-{n}", kind=TaskKind.VIDEO,
                                  status=TaskStatus.QUEUED, ark_created_at=now) for n in range(5)]
    services.alerts_scan()
    services.alerts_scan()
    assert _keys() == {f"queue_near_cap:{account.pk}:5:1"}

    Task.objects.filter(pk__in=[task.pk for task in queued[:2]]).update(status=TaskStatus.RUNNING)
    services.alerts_scan()  # back under: the episode ends
    assert AlertEvent.objects.get().cleared_at is not None
    Task.objects.filter(pk__in=[task.pk for task in queued[:2]]).update(status=TaskStatus.QUEUED)
    services.alerts_scan()
    assert _keys() == {f"queue_near_cap:{account.pk}:5:1", f"queue_near_cap:{account.pk}:5:2"}


def test_it_records_nothing_for_a_disabled_rule_or_channel(account, channel):
    rule = _rule(account, channel, EventKind.TASK_FAILED)
    AlertRule.objects.filter(pk=rule.pk).update(enabled=False)
    failed_task(account, 1)
    services.alerts_scan()
    assert _keys() == set()


def test_it_does_not_notify_outputs_lost_before_the_rule(account, channel):
    _rule(account, channel, EventKind.OUTPUT_LOST)
    old = _artifact(account, 1, state=ArtifactState.LOST, deadline=timezone.now() - timedelta(days=2))
    Task.objects.filter(pk=old.task_id).update(changed_at=timezone.now() - timedelta(days=2))
    # An output whose URL died long ago but that was found (and lost) just now is told.
    recent = _artifact(account, 2, state=ArtifactState.LOST, deadline=timezone.now() - timedelta(hours=2))
    services.alerts_scan()
    assert _keys() == {f"output_lost:{recent.pk}"}
