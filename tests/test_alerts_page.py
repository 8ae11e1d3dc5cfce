"""The alerts page for account operators, and the alerts in the admin: secrets write-only."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tasks_app.alerts import services
from tasks_app.alerts.models import (
    AlertChannel,
    AlertRule,
    ChannelKind,
    EventKind,
    Notification,
    NotificationState,
)
from tasks_app.models import Account, MembershipRole

from .alerts_support import running_receiver
from .dashboard_helpers import member_of

pytestmark = pytest.mark.django_db

PAGE = "/settings/alerts/"
SECRET = "whsec-page-0123456789"


@pytest.fixture
def receiver(settings):
    with running_receiver(settings) as running:
        yield running


def _channel_post(account, target: str, **extra) -> dict:
    return {"channel-account": account.pk, "channel-name": "ops", "channel-kind": ChannelKind.WEBHOOK,
            "channel-enabled": "on", "channel-target": target, "channel-secret": SECRET, **extra}


def _other_account() -> Account:
    other = Account(name="other", base_url="http://arksim.test/api/v3")
    other.set_api_key("k")
    other.save()
    return other


def test_it_lets_an_operator_add_a_channel_without_ever_showing_its_url_or_secret(user_client, account, receiver):
    target = receiver.url("/very-secret-path?token=t0ken")
    response = user_client.post(reverse("alerts:channel_add"), _channel_post(account, target))
    assert response.status_code == 302

    channel = AlertChannel.objects.get()
    assert channel.target == target and channel.secret == SECRET
    page = user_client.get(PAGE).content.decode()
    assert f"127.0.0.1:{receiver.port}" in page
    assert "very-secret-path" not in page and "t0ken" not in page and SECRET not in page


def test_it_never_echoes_a_refused_target_or_secret(user_client, account, settings):
    settings.ARKDASH_ALERT_PRIVATE_HOSTS = []
    response = user_client.post(reverse("alerts:channel_add"),
                                _channel_post(account, "http://127.0.0.1:8/private-path?token=t0ken"))
    assert response.status_code == 400
    body = response.content.decode()
    assert "ARKDASH_ALERT_PRIVATE_HOSTS" in body
    assert "private-path" not in body and SECRET not in body
    assert not AlertChannel.objects.exists()


def test_it_adds_a_rule_and_refuses_a_channel_of_another_account(user_client, account, receiver):
    channel = services.channel_create(account=account, name="ops", kind=ChannelKind.SLACK, target=receiver.url(),
                                      secret="")
    post = {"rule-account": account.pk, "rule-channel": channel.pk, "rule-event": EventKind.OUTPUT_AT_RISK,
            "rule-at_risk_hours": 3, "rule-sync_down_minutes": 10, "rule-queue_threshold": 100,
            "rule-enabled": "on"}
    assert user_client.post(reverse("alerts:rule_add"), post).status_code == 302
    assert AlertRule.objects.get().at_risk_hours == 3

    other = _other_account()
    foreign = services.channel_create(account=other, name="theirs", kind=ChannelKind.SLACK, target=receiver.url(),
                                      secret="")
    response = user_client.post(reverse("alerts:rule_add"), {**post, "rule-channel": foreign.pk})
    assert response.status_code == 400 and AlertRule.objects.count() == 1
    response = user_client.post(reverse("alerts:rule_add"), {**post, "rule-at_risk_hours": 99})
    assert response.status_code == 400 and AlertRule.objects.count() == 1


def test_it_sends_a_test_message_and_shows_it_in_the_history(user_client, account, receiver,
                                                             django_capture_on_commit_callbacks):
    channel = services.channel_create(account=account, name="ops", kind=ChannelKind.WEBHOOK, target=receiver.url(),
                                      secret=SECRET)
    receiver.plan.append((200, "thanks from the receiver", 0.0))
    with django_capture_on_commit_callbacks(execute=True):
        response = user_client.post(reverse("alerts:channel_test", args=[channel.pk]))
    assert response.status_code == 302
    [request] = receiver.received
    assert request.json()["test"] is True
    notification = Notification.objects.get()
    assert notification.state == NotificationState.SENT
    page = user_client.get(PAGE).content.decode()
    assert f'id="notification-{notification.pk}"' in page and "thanks from the receiver" in page


def test_it_hides_other_accounts_channels_and_refuses_to_touch_them(user_client, account, receiver):
    other = _other_account()
    foreign = services.channel_create(account=other, name="theirs", kind=ChannelKind.SLACK, target=receiver.url(),
                                      secret="")
    assert "theirs" not in user_client.get(PAGE).content.decode()
    assert user_client.post(reverse("alerts:channel_test", args=[foreign.pk])).status_code == 404
    assert user_client.post(reverse("alerts:channel_delete", args=[foreign.pk])).status_code == 404
    assert AlertChannel.objects.filter(pk=foreign.pk).exists() and not Notification.objects.exists()


def test_it_lets_a_viewer_manage_nothing(client, django_user_model, account, receiver):
    viewer = django_user_model.objects.create_user("vera", password="pw")
    member_of(viewer, account, role=MembershipRole.VIEWER)
    client.force_login(viewer)
    channel = services.channel_create(account=account, name="ops", kind=ChannelKind.SLACK, target=receiver.url(),
                                      secret="")
    page = client.get(PAGE)
    assert page.status_code == 200 and 'id="alerts-none"' in page.content.decode()
    assert client.post(reverse("alerts:channel_delete", args=[channel.pk])).status_code == 404
    assert client.post(reverse("alerts:channel_add"), _channel_post(account, receiver.url())).status_code == 400
    assert AlertChannel.objects.count() == 1


def test_it_deletes_a_channel_with_its_rules(user_client, account, receiver):
    channel = services.channel_create(account=account, name="ops", kind=ChannelKind.SLACK, target=receiver.url(),
                                      secret="")
    AlertRule.objects.create(account=account, channel=channel, event=EventKind.TASK_FAILED)
    assert user_client.post(reverse("alerts:channel_delete", args=[channel.pk])).status_code == 302
    assert not AlertChannel.objects.exists() and not AlertRule.objects.exists()


def test_it_asks_a_visitor_to_log_in(db):
    response = Client().get(PAGE)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- the admin -----------------------------------------------------------------------------------


@pytest.fixture
def admin_client(django_user_model) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    return client


def test_it_adds_a_channel_in_the_admin_and_shows_only_set_and_the_host(admin_client, account, receiver):
    target = receiver.url("/admin-secret-path")
    response = admin_client.post("/admin/tasks_app/alertchannel/add/", {
        "account": account.pk, "name": "ops", "kind": ChannelKind.WEBHOOK, "enabled": "on",
        "target": target, "secret": SECRET,
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    channel = AlertChannel.objects.get()
    for url in ("/admin/tasks_app/alertchannel/", f"/admin/tasks_app/alertchannel/{channel.pk}/change/"):
        page = admin_client.get(url).content.decode()
        assert f"127.0.0.1:{receiver.port}" in page
        assert "admin-secret-path" not in page and SECRET not in page
    assert ">set<" in admin_client.get(f"/admin/tasks_app/alertchannel/{channel.pk}/change/").content.decode()

    # Left blank, target and secret stay as they were.
    admin_client.post(f"/admin/tasks_app/alertchannel/{channel.pk}/change/", {
        "account": account.pk, "name": "renamed", "kind": ChannelKind.WEBHOOK, "enabled": "on",
        "target": "", "secret": "",
    })
    channel.refresh_from_db()
    assert channel.name == "renamed" and channel.target == target and channel.secret == SECRET


def test_it_queues_a_test_from_the_admin_and_lists_the_history(admin_client, account, receiver,
                                                                django_capture_on_commit_callbacks):
    channel = services.channel_create(account=account, name="ops", kind=ChannelKind.SLACK, target=receiver.url(),
                                      secret="")
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post("/admin/tasks_app/alertchannel/", {"action": "send_test", "_selected_action": [channel.pk]})
    assert len(receiver.received) == 1
    page = admin_client.get("/admin/tasks_app/notification/").content.decode()
    assert "ops" in page and "sent" in page


def test_it_refuses_in_the_admin_a_rule_whose_channel_is_of_another_account(admin_client, account, receiver):
    other = _other_account()
    foreign = services.channel_create(account=other, name="theirs", kind=ChannelKind.SLACK, target=receiver.url(),
                                      secret="")
    post = {"account": account.pk, "channel": foreign.pk, "event": EventKind.TASK_FAILED, "at_risk_hours": 2,
            "sync_down_minutes": 10, "queue_threshold": 100, "enabled": "on"}
    response = admin_client.post("/admin/tasks_app/alertrule/add/", post)
    assert response.status_code == 200 and "Choose a channel of the same account." in response.content.decode()
    assert not AlertRule.objects.exists()
    assert admin_client.post("/admin/tasks_app/alertrule/add/", {**post, "account": other.pk}).status_code == 302
    assert AlertRule.objects.get().channel == foreign
