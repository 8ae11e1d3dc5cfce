"""Delivery: retries after 500s and timeouts, bursts as one digest, exactly once per event and
channel even with two workers at the same time."""

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

from .alerts_support import failed_task, running_receiver

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
