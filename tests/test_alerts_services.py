"""tasks_app/alerts/services.py: the scan finds each kind of event once, for the rules that ask for
it; delivery retries after 500s and timeouts, sends bursts as one digest, exactly once per event
and channel even with two workers at the same time."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from celery.exceptions import Retry
from django.db import connection
from django.utils import timezone

from tasks_app import tasks
from tasks_app.alerts import services
from tasks_app.alerts.models import (
    AlertEvent,
    AlertRule,
    ChannelKind,
    Delivery,
    EventKind,
    Notification,
    NotificationState,
)
from tasks_app.models import Account, Artifact, ArtifactOutput, ArtifactState, Task, TaskKind, TaskStatus

from .alerts_support import failed_task, running_receiver

pytestmark = pytest.mark.django_db


# The scan.


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


# Delivery.

SECRET = "whsec-delivery"


@pytest.fixture
def receiver(settings):
    with running_receiver(settings) as running:
        yield running


def _run_task(notification_id: int, *, retries: list[float] | None = None) -> str:
    """Run the Celery task as a worker would: each Retry it raises runs it again."""
    retries = [] if retries is None else retries
    while True:
        try:
            return tasks.send_alert_notification.apply(args=(notification_id,)).get()
        except Retry as retry:  # eager mode hands the retry back instead of scheduling it
            retries.append(float(retry.when))
            assert len(retries) < 20


def _webhook(account, receiver):
    return services.channel_create(account=account, name="ops", kind=ChannelKind.WEBHOOK,
                                   target=receiver.url(), secret=SECRET)


def _failed_rule(account, channel, **filters) -> AlertRule:
    rule = AlertRule.objects.create(account=account, channel=channel, event=EventKind.TASK_FAILED, **filters)
    # Tasks made by the test "finish" after the rule exists.
    AlertRule.objects.filter(pk=rule.pk).update(created=timezone.now() - timedelta(minutes=1))
    return rule


@pytest.mark.django_db
def test_it_retries_after_500s_and_then_sends(account, receiver):
    channel = _webhook(account, receiver)
    receiver.plan += [(500, "down", 0.0), (503, "still down", 0.0)]
    notification = services.channel_send_test(channel=channel)

    retries: list[float] = []
    assert _run_task(notification.pk, retries=retries) == NotificationState.SENT
    notification.refresh_from_db()
    assert notification.attempts == 3 and notification.state == NotificationState.SENT
    # Backoff: the second wait is about twice the first.
    assert len(retries) == 2 and retries[1] > retries[0] * 1.5
    assert len(receiver.received) == 3
    # The same message each time (a receiver can drop repeats by X-ArkDash-Notification).
    assert len({request.headers["X-ArkDash-Notification"] for request in receiver.received}) == 1


@pytest.mark.django_db
def test_it_retries_after_a_timeout_and_then_sends(account, receiver, settings, caplog):
    settings.ARKDASH_ALERT_TIMEOUT_SECONDS = 2.0
    channel = _webhook(account, receiver)
    receiver.plan.append((200, "too late", 15.0))  # answers long after the client gave up
    notification = services.channel_send_test(channel=channel)

    assert _run_task(notification.pk) == NotificationState.SENT
    notification.refresh_from_db()
    # At least one more attempt after the timeout (a loaded machine may time out once more).
    assert notification.attempts >= 2 and len(receiver.received) == notification.attempts
    assert "timed out (ReadTimeout) (will retry)" in caplog.text


@pytest.mark.django_db
def test_it_schedules_a_retry_with_backoff_and_honours_retry_after(account, receiver, settings):
    settings.ARKDASH_ALERT_BACKOFF_SECONDS = 10.0
    channel = _webhook(account, receiver)
    receiver.plan.append((500, "down", 0.0))
    before = timezone.now()
    notification = services.notification_send(notification_id=services.channel_send_test(channel=channel).pk)
    assert notification.state == NotificationState.RETRYING and notification.attempts == 1
    assert notification.next_attempt_at >= before + timedelta(seconds=10)
    assert "answered 500" in notification.response_body and notification.response_status == 500

    assert services.backoff_seconds(1) == 10.0 and services.backoff_seconds(3) == 40.0
    assert services.backoff_seconds(30) == settings.ARKDASH_ALERT_MAX_BACKOFF_SECONDS
    assert services.backoff_seconds(1, retry_after=120.0) == 120.0


@pytest.mark.django_db
def test_it_gives_up_after_the_last_attempt(account, receiver, settings):
    settings.ARKDASH_ALERT_MAX_ATTEMPTS = 3
    channel = _webhook(account, receiver)
    receiver.plan += [(500, "down", 0.0)] * 5
    notification = services.channel_send_test(channel=channel)
    assert _run_task(notification.pk) == NotificationState.FAILED
    notification.refresh_from_db()
    assert notification.attempts == 3 and len(receiver.received) == 3


@pytest.mark.django_db
def test_it_sends_a_200_failure_burst_as_one_digest(account, receiver, django_capture_on_commit_callbacks):
    channel = _webhook(account, receiver)
    _failed_rule(account, channel)
    for n in range(200):
        failed_task(account, n)

    with django_capture_on_commit_callbacks(execute=True):  # scan → deliver → send, through Celery
        report = services.alerts_scan()
    assert report.events == 200

    [request] = receiver.wait_for(1)
    body = request.json()
    assert len(body["events"]) == 200
    assert len({event["key"] for event in body["events"]}) == 200
    assert body["text"].startswith("[ArkDash] 200 alerts on account team:") and "… and 170 more." in body["text"]
    [notification] = Notification.objects.all()
    assert notification.event_count == 200 and notification.state == NotificationState.SENT

    with django_capture_on_commit_callbacks(execute=True):  # the next scan sees the same tasks: nothing new
        services.alerts_scan()
    assert len(receiver.received) == 1 and Notification.objects.count() == 1


@pytest.mark.django_db
def test_it_gathers_a_burst_spread_over_two_scans_within_the_window(account, receiver, settings):
    settings.ARKDASH_ALERT_BATCH_SECONDS = 60.0
    channel = _webhook(account, receiver)
    _failed_rule(account, channel)
    for n in range(100):
        failed_task(account, n)
    services.alerts_scan()
    assert services.deliveries_take(channel_id=channel.pk) is None  # the first is not a minute old
    for n in range(100, 200):
        failed_task(account, n)
    services.alerts_scan()

    notification = services.deliveries_take(channel_id=channel.pk, now=timezone.now() + timedelta(seconds=61))
    assert notification is not None and notification.event_count == 200
    assert services.deliveries_take(channel_id=channel.pk, now=timezone.now() + timedelta(seconds=61)) is None
    services.notification_send(notification_id=notification.pk)
    [request] = receiver.received
    assert len(request.json()["events"]) == 200


@pytest.mark.django_db
def test_it_sends_one_event_as_its_own_message(account, receiver):
    channel = _webhook(account, receiver)
    _failed_rule(account, channel)
    task = failed_task(account, 1, error_code="OutputVideoSensitiveContentDetected")
    services.alerts_scan()
    notification = services.deliveries_take(channel_id=channel.pk)
    services.notification_send(notification_id=notification.pk)
    [request] = receiver.received
    body = request.json()
    assert body["text"] == f"Task {task.ark_id} failed on account team (model {task.model}): " \
                           "OutputVideoSensitiveContentDetected"
    assert body["events"][0]["key"] == f"task_failed:{task.pk}"
    assert body["events"][0]["details"]["error_code"] == "OutputVideoSensitiveContentDetected"


# --- two workers at once, on the real database -------------------------------------------------


def _at_once(workers: int, work) -> list[BaseException]:
    """Run work() in `workers` threads released together; the exceptions they raised."""
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            work()
        except BaseException as error:  # noqa: BLE001 - reported to the test
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_notifies_each_event_exactly_once_when_two_workers_see_it(account, receiver):
    channel = _webhook(account, receiver)
    _failed_rule(account, channel)
    tasks_made = [failed_task(account, n) for n in range(60)]

    # Each worker runs the whole chain: scan, take the channel's deliveries, send (eager Celery).
    assert _at_once(2, services.alerts_scan) == []
    assert _at_once(2, lambda: services.alerts_scan()) == []  # and again: nothing new

    keys = Counter(event["key"] for request in receiver.received for event in request.json()["events"])
    assert keys == Counter({f"task_failed:{task.pk}": 1 for task in tasks_made})
    assert AlertEvent.objects.count() == 60 and Delivery.objects.count() == 60
    assert Delivery.objects.filter(notification__state=NotificationState.SENT).count() == 60
    assert Notification.objects.filter(state=NotificationState.SENT).count() == len(receiver.received)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_sends_a_notification_once_when_two_workers_claim_it(account, receiver):
    channel = _webhook(account, receiver)
    receiver.plan.append((200, "ok", 1.0))  # slow enough for the second worker to try meanwhile
    notification = Notification.objects.create(channel=channel, is_test=True)

    assert _at_once(2, lambda: services.notification_send(notification_id=notification.pk)) == []
    assert len(receiver.received) == 1
    notification.refresh_from_db()
    assert notification.state == NotificationState.SENT and notification.attempts == 1


@pytest.mark.django_db
def test_it_keeps_a_disabled_channel_s_events_waiting(account, receiver):
    channel = _webhook(account, receiver)
    _failed_rule(account, channel)
    failed_task(account, 1)
    services.alerts_scan()
    channel.enabled = False
    channel.save()
    assert services.deliveries_take(channel_id=channel.pk) is None
    assert services.alerts_scan().channels == []
    channel.enabled = True
    channel.save()
    assert services.deliveries_take(channel_id=channel.pk).event_count == 1
