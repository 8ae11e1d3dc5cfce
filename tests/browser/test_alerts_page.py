"""The alerts page as an operator sees it: add a webhook channel, send a test, read the
answer in the history, add a rule; no secret on screen, no CSP violation."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tasks_app.alerts.models import AlertChannel, AlertRule

from ..alerts_support import running_receiver
from .conftest import log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SECRET = "whsec-browser-0123456789"


@pytest.fixture
def receiver(settings):
    with running_receiver(settings) as running:
        yield running


def test_it_adds_a_webhook_sends_a_test_and_shows_the_answer(account, dashboard_user, page, live_server, receiver):
    receiver.plan.append((200, "hello from the receiver", 0.0))
    log_in(page, live_server)
    page.get_by_role("link", name="Alerts").click()
    expect(page.get_by_role("heading", name="Alerts", exact=True)).to_be_visible()

    form = page.locator("#channel-form")
    form.get_by_label("Account").select_option(label="team")
    form.get_by_label("Name").fill("ops webhook")
    form.get_by_label("Kind").select_option("webhook")
    form.get_by_label("Webhook URL or e-mail addresses").fill(receiver.url("/secret-path?token=t0ken"))
    form.get_by_label("Signing secret").fill(SECRET)
    form.get_by_role("button", name="Add channel").click()

    row = page.locator("tr", has_text="ops webhook")
    expect(row).to_contain_text(f"127.0.0.1:{receiver.port}")
    row.get_by_role("button", name="Send test").click()
    expect(page.locator("#alert-history")).to_contain_text("hello from the receiver")
    expect(page.locator("#alert-history")).to_contain_text("sent")
    assert len(receiver.received) == 1 and receiver.received[0].json()["test"] is True

    rules = page.locator("#rule-form")
    rules.get_by_label("Account").select_option(label="team")
    rules.get_by_label("Channel").select_option(label="ops webhook (webhook (signed JSON))")
    rules.get_by_label("Event").select_option("task_failed")
    rules.get_by_label("Error code").fill("InternalServiceError")
    rules.get_by_role("button", name="Add rule").click()
    expect(page.locator("tr", has_text="InternalServiceError")).to_contain_text("a task failed")

    html = page.content()
    assert SECRET not in html and "secret-path" not in html and "t0ken" not in html
    assert AlertChannel.objects.get().secret == SECRET and AlertRule.objects.get().error_code == "InternalServiceError"
    screenshot(page, "alerts-page")
