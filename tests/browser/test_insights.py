"""The insights page in Chromium: every chart drawn from the demo's tasks, in English and in
Simplified Chinese, with no Content-Security-Policy violation (the conftest fails the test on any)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import F
from playwright.sync_api import expect

from tasks_app.models import ModelPrice, Task, TaskStatus
from tasks_app.services.insights_rollup import rollup_rebuild
from tasks_app.services.sync import sync_account

from .conftest import PASSWORD, log_in, open_context, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHARTS = ("by-status", "by-model", "tokens", "success", "failures", "queued", "running", "archived", "lag")


def demo(sim, account) -> None:
    """The demo's week of tasks, mirrored and archived by the real sync."""
    sim.seed_demo(count=80)
    sync_account(account=account, full_sweep=True)
    # History found on a first sync was never seen running; as if ArkDash had been watching
    # all week, give the finished ones the times a sync would have observed.
    finished = Task.objects.filter(account=account, status__in=[TaskStatus.SUCCEEDED, TaskStatus.FAILED])
    finished.filter(started_at__isnull=True).update(
        started_at=F("ark_created_at") + timedelta(seconds=40), finished_at=F("ark_created_at") + timedelta(seconds=190)
    )
    model = Task.objects.filter(account=account).values_list("model", flat=True).first()
    ModelPrice.objects.create(model=model, cny_per_million_tokens="15")
    rollup_rebuild()  # the charts read the rollup, which the beat keeps (the times above bypassed changed_at)


def check_every_chart(page, currency: str) -> None:
    for name in CHARTS:
        chart = page.locator(f"#chart-{name}")
        expect(chart.locator("svg.chart")).to_be_visible()
        assert chart.locator("svg.chart rect.bar").count() > 0, name
        # The bars take their colour from the stylesheet (no inline style is allowed).
        fill = chart.locator("svg.chart rect.bar").first.evaluate("(el) => getComputedStyle(el).fill")
        assert fill not in ("", "none", "rgb(0, 0, 0)"), (name, fill)
    expect(page.locator("#chart-cost .figure")).to_contain_text(currency)  # one model has a price


def test_it_draws_every_chart_of_the_demo_in_english_and_chinese(sim, account, dashboard_user, page, live_server,
                                                                 chromium):
    demo(sim, account)
    log_in(page, live_server)
    page.get_by_role("link", name="Insights").click()
    page.wait_for_url("**/insights/")
    expect(page.get_by_role("heading", name="Insights", exact=True)).to_be_visible()
    check_every_chart(page, "CNY")
    # The table view says what the picture shows.
    details = page.locator("#chart-by-status details")
    details.locator("summary").click()
    expect(details.locator("table")).to_be_visible()
    expect(details.locator("thead")).to_contain_text("succeeded")
    screenshot(page, "insights-en")

    page.get_by_label("Range", exact=True).select_option("24h")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**range=24h**")
    expect(page.locator("#chart-by-status svg.chart, #chart-by-status .chart-empty")).to_be_visible()

    page.goto(f"{live_server.url}/insights/?range=custom&start=2026-02-10&end=2026-02-01")
    expect(page.locator("#range-errors")).to_contain_text("must not be after")

    context = open_context(chromium, locale="zh-CN", color_scheme="dark")
    zh = context.new_page()
    try:
        zh.goto(f"{live_server.url}/insights/")
        zh.get_by_label("用户名").fill("ana")
        zh.get_by_label("密码").fill(PASSWORD)
        zh.get_by_role("button", name="登录").click()
        zh.wait_for_url("**/insights/")
        expect(zh.get_by_role("heading", name="洞察", exact=True)).to_be_visible()
        check_every_chart(zh, "元")
        expect(zh.locator("#chart-queued")).to_contain_text("观测")
        screenshot(zh, "insights-zh-hans-dark")
    finally:
        context.close()
