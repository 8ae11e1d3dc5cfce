"""Each channel's request and signature, checked against a local receiver with the vendor's
documented algorithm written out here independently; the address guard for webhook targets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from django.core import mail

from tasks_app.alerts import services
from tasks_app.alerts.forms import ChannelForm
from tasks_app.alerts.models import AlertChannel, ChannelKind, Notification, NotificationState

from .alerts_support import running_receiver

pytestmark = pytest.mark.django_db

SECRET = "SECtest-secret-9f8e7d"


@pytest.fixture
def receiver(settings):
    with running_receiver(settings) as running:
        yield running


def _test_message(channel: AlertChannel) -> Notification:
    notification = services.channel_send_test(channel=channel)
    return services.notification_send(notification_id=notification.pk)


def test_it_signs_the_generic_webhook_with_hmac_sha256_over_timestamp_and_body(account, receiver):
    channel = services.channel_create(account=account, name="ops", kind=ChannelKind.WEBHOOK,
                                      target=receiver.url("/alerts?token=abc"), secret=SECRET)
    notification = _test_message(channel)

    assert notification.state == NotificationState.SENT and notification.response_status == 200
    [request] = receiver.received
    timestamp = request.headers["X-ArkDash-Timestamp"]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-ArkDash-Signature"] == f"sha256={expected}"
    assert abs(int(timestamp) - time.time()) < 300  # the receiver's replay window
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-ArkDash-Notification"] == str(notification.pk)
    body = request.json()
    assert body["test"] is True and body["notification"] == notification.pk and "ops" in body["text"]


def test_it_a_tampered_body_no_longer_matches_the_webhook_signature(account, receiver):
    channel = services.channel_create(account=account, name="ops", kind=ChannelKind.WEBHOOK,
                                      target=receiver.url(), secret=SECRET)
    _test_message(channel)
    [request] = receiver.received
    timestamp = request.headers["X-ArkDash-Timestamp"]
    tampered = request.body.replace(b'"test":true', b'"test":false')
    assert tampered != request.body
    forged = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + tampered, hashlib.sha256).hexdigest()
    assert request.headers["X-ArkDash-Signature"] != f"sha256={forged}"


def test_it_signs_the_feishu_bot_message_as_feishu_documents(account, receiver):
    channel = services.channel_create(account=account, name="feishu", kind=ChannelKind.FEISHU,
                                      target=receiver.url("/open-apis/bot/v2/hook/abc"), secret=SECRET)
    receiver.plan.append((200, '{"code":0,"msg":"success","data":{}}', 0.0))
    notification = _test_message(channel)

    assert notification.state == NotificationState.SENT
    [request] = receiver.received
    body = request.json()
    # Feishu: the key is "timestamp\nsecret", the message is empty, the digest base64 (seconds).
    key = (body["timestamp"] + "\n" + SECRET).encode("utf-8")
    assert body["sign"] == base64.b64encode(hmac.new(key, b"", digestmod=hashlib.sha256).digest()).decode("utf-8")
    assert abs(int(body["timestamp"]) - time.time()) < 3600
    assert body["msg_type"] == "text" and "feishu" in body["content"]["text"]


def test_it_reports_a_feishu_error_code_in_a_200_answer_as_a_failure(account, receiver):
    channel = services.channel_create(account=account, name="feishu", kind=ChannelKind.FEISHU,
                                      target=receiver.url(), secret=SECRET)
    receiver.plan.append((200, '{"code":19021,"msg":"sign match fail or timestamp is not within one hour"}', 0.0))
    notification = _test_message(channel)
    assert notification.state == NotificationState.FAILED
    assert "19021" in notification.response_body


def test_it_signs_the_dingtalk_robot_url_as_dingtalk_documents(account, receiver):
    channel = services.channel_create(account=account, name="ding", kind=ChannelKind.DINGTALK,
                                      target=receiver.url("/robot/send?access_token=tok123"), secret=SECRET)
    receiver.plan.append((200, '{"errcode":0,"errmsg":"ok"}', 0.0))
    notification = _test_message(channel)

    assert notification.state == NotificationState.SENT
    [request] = receiver.received
    assert request.path == "/robot/send" and request.query["access_token"] == ["tok123"]
    [timestamp] = request.query["timestamp"]
    [sign] = request.query["sign"]  # parse_qs has undone the URL-encoding
    # DingTalk: HmacSHA256 with the secret as key over "timestamp\nsecret" (milliseconds), base64.
    string_to_sign = f"{timestamp}\n{SECRET}".encode()
    digest = hmac.new(SECRET.encode("utf-8"), string_to_sign, digestmod=hashlib.sha256).digest()
    assert sign == base64.b64encode(digest).decode()
    assert abs(int(timestamp) / 1000 - time.time()) < 3600
    body = request.json()
    assert body["msgtype"] == "text" and "ding" in body["text"]["content"]


def test_it_retries_dingtalk_when_it_says_the_robot_sends_too_fast(account, receiver):
    channel = services.channel_create(account=account, name="ding", kind=ChannelKind.DINGTALK,
                                      target=receiver.url(), secret=SECRET)
    receiver.plan.append((200, '{"errcode":130101,"errmsg":"send too fast"}', 0.0))
    notification = _test_message(channel)
    assert notification.state == NotificationState.RETRYING and notification.next_attempt_at is not None


def test_it_sends_slack_compatible_text(account, receiver):
    channel = services.channel_create(account=account, name="slack", kind=ChannelKind.SLACK,
                                      target=receiver.url("/hooks/T000/B000/XXXX"), secret="")
    notification = _test_message(channel)
    assert notification.state == NotificationState.SENT
    [request] = receiver.received
    body = request.json()
    assert list(body) == ["text"] and "slack" in body["text"]
    assert "X-ArkDash-Signature" not in request.headers


def test_it_sends_email_through_django_s_backend(account, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    channel = services.channel_create(account=account, name="oncall", kind=ChannelKind.EMAIL,
                                      target="a@example.com, b@example.com", secret="")
    notification = _test_message(channel)
    assert notification.state == NotificationState.SENT
    [message] = mail.outbox
    assert message.to == ["a@example.com", "b@example.com"]
    assert message.subject == "[ArkDash] Test message" and "oncall" in message.body
    assert channel.target_hint == "2 addresses"


def test_it_refuses_a_loopback_webhook_target_by_default(account, receiver, settings):
    settings.ARKDASH_ALERT_PRIVATE_HOSTS = []
    form = ChannelForm({"account": account.pk, "name": "x", "kind": ChannelKind.WEBHOOK, "enabled": "on",
                        "target": receiver.url(), "secret": SECRET})
    assert not form.is_valid()
    assert "ARKDASH_ALERT_PRIVATE_HOSTS" in str(form.errors["target"])

    # A channel stored while the host was allowed is refused when sending, nothing is sent.
    channel = AlertChannel(account=account, name="old", kind=ChannelKind.WEBHOOK)
    services.channel_set_target(channel=channel, target=receiver.url(), secret=SECRET)
    channel.save()
    notification = _test_message(channel)
    assert notification.state == NotificationState.FAILED and notification.attempts == 1
    assert "refused" in notification.response_body and "ARKDASH_ALERT_PRIVATE_HOSTS" in notification.response_body
    assert receiver.received == []


@pytest.mark.parametrize("target", ["http://10.0.0.8/hook", "http://[::1]:9/hook", "http://169.254.169.254/x",
                                    "file:///etc/passwd", "http://user:pw@example.com/hook"])
def test_it_refuses_private_and_odd_webhook_targets(account, target):
    form = ChannelForm({"account": account.pk, "name": "x", "kind": ChannelKind.SLACK, "enabled": "on",
                        "target": target})
    assert not form.is_valid() and "target" in form.errors


def test_it_keeps_target_and_secret_encrypted_and_shows_only_the_host(account, receiver):
    channel = services.channel_create(account=account, name="ops", kind=ChannelKind.WEBHOOK,
                                      target=receiver.url("/secret-path?token=abc"), secret=SECRET)
    channel.refresh_from_db()
    assert channel.target_hint == f"127.0.0.1:{receiver.port}"
    assert "secret-path" not in channel.target_encrypted and SECRET not in channel.secret_encrypted
    assert channel.target.endswith("/secret-path?token=abc") and channel.secret == SECRET


def test_it_treats_a_4xx_answer_as_permanent(account, receiver):
    channel = services.channel_create(account=account, name="ops", kind=ChannelKind.WEBHOOK,
                                      target=receiver.url(), secret=SECRET)
    receiver.plan.append((404, json.dumps({"error": "no such hook"}), 0.0))
    notification = _test_message(channel)
    assert notification.state == NotificationState.FAILED and notification.attempts == 1
    assert notification.response_status == 404 and "no such hook" in notification.response_body
    assert notification.next_attempt_at is None
