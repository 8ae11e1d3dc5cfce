"""The insights page: each chart's figures on known tasks, the range picker, the price table."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from django.http import QueryDict
from django.utils import timezone

from tasks_app import selectors
from tasks_app.insights import InsightsRange, InsightsRangeForm, insights_for
from tasks_app.models import Artifact, ArtifactOutput, ArtifactState, ModelPrice, TaskStatus
from tasks_app.services.archive import archive_lag_seconds
from tasks_app.services.insights_rollup import RELATIVE_ERROR, rollup_refresh

from .dashboard_helpers import make_task, member_of

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
M1, M2 = "doubao-seedance-1-0-pro-250528", "doubao-seed3d-1-0-250928"
TOKENS = 108_900


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def seeded(account, rival):
    """Three Shanghai days (1 to 3 November 2026) of known tasks, and some just outside."""

    def task(created: str, status: str, model: str, *, waited: int | None = None, ran: int | None = None,
             tokens: int | None = None, code: str = ""):
        start = at(created)
        started = start + timedelta(seconds=waited) if waited is not None else None
        finished = started + timedelta(seconds=ran) if started and ran is not None else None
        return make_task(account, status=status, model=model, created=start, started_at=started,
                         finished_at=finished, total_tokens=tokens, error_code=code)

    # 1 November, 10:00 in Shanghai.
    s1 = task("2026-11-01T02:00:00", TaskStatus.SUCCEEDED, M1, waited=60, ran=100, tokens=TOKENS)
    s2 = task("2026-11-01T02:10:00", TaskStatus.SUCCEEDED, M1, waited=60, ran=200, tokens=TOKENS)
    task("2026-11-01T02:20:00", TaskStatus.FAILED, M1, waited=120, ran=30, code="OutputVideoSensitiveContentDetected")
    # 1 November 23:30 in UTC is 2 November 07:30 in Shanghai.
    s3 = task("2026-11-01T23:30:00", TaskStatus.SUCCEEDED, M2, waited=30, ran=300, tokens=5000)
    # 3 November.
    task("2026-11-03T04:00:00", TaskStatus.FAILED, M2, code="InternalServiceError")
    task("2026-11-03T05:00:00", TaskStatus.FAILED, M2, code="InternalServiceError")
    task("2026-11-03T06:00:00", TaskStatus.QUEUED, M2)
    # Outside the range: 31 October 23:00 and 4 November 00:30 in Shanghai; another account's.
    task("2026-10-31T15:00:00", TaskStatus.SUCCEEDED, M1, waited=1, ran=1, tokens=TOKENS)
    task("2026-11-03T16:30:00", TaskStatus.FAILED, M1, code="InternalServiceError")
    make_task(rival, status=TaskStatus.FAILED, model=M1, created=at("2026-11-02T02:00:00"), error_code="RivalError",
              total_tokens=TOKENS)

    def artifact(task, output, size, archived_at, state=ArtifactState.ARCHIVED):
        return Artifact.objects.create(task=task, output=output, size=size, state=state,
                                       archived_at=at(archived_at) if archived_at else None)

    artifact(s1, ArtifactOutput.VIDEO, 1000, "2026-11-01T04:00:00")
    artifact(s1, ArtifactOutput.LAST_FRAME, 500, "2026-11-01T04:00:01")
    artifact(s2, ArtifactOutput.VIDEO, 2048, "2026-11-03T01:00:00")
    artifact(s3, ArtifactOutput.VIDEO, 7777, None, state=ArtifactState.COPYING)
    rival_task = make_task(rival, status=TaskStatus.SUCCEEDED, created=at("2026-11-01T02:00:00"))
    artifact(rival_task, ArtifactOutput.VIDEO, 99999, "2026-11-01T05:00:00")
    rollup_refresh()  # the first refresh builds the rollup the page reads
    return account


def three_days() -> InsightsRange:
    return InsightsRange(start=datetime(2026, 11, 1, tzinfo=SHANGHAI), end=datetime(2026, 11, 4, tzinfo=SHANGHAI),
                         hourly=False, zone=SHANGHAI)


def member(django_user_model, account, name="ana"):
    user = django_user_model.objects.create_user(name, password="pw")
    member_of(user, account)
    return user


def test_it_counts_tasks_per_local_day_by_status_and_by_model(seeded, django_user_model):
    data = insights_for(access=selectors.access_for(member(django_user_model, seeded)), period=three_days())
    assert [bucket.date() for bucket in data.buckets] == [date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)]
    assert data.created_by_status == [
        {TaskStatus.SUCCEEDED: 2, TaskStatus.FAILED: 1},
        {TaskStatus.SUCCEEDED: 1},
        {TaskStatus.FAILED: 2, TaskStatus.QUEUED: 1},
    ]
    assert data.models == [M2, M1]  # most tasks first
    assert data.created_by_model == [{M1: 3}, {M2: 1}, {M2: 3}]
    assert [d.get(M1, 0) for d in data.tokens_by_model] == [2 * TOKENS, 0, 0]
    assert [d.get(M2, 0) for d in data.tokens_by_model] == [0, 5000, 0]
    assert data.total_created == 7


def test_it_computes_the_success_rate_over_finished_tasks(seeded, django_user_model):
    data = insights_for(access=selectors.access_for(member(django_user_model, seeded)), period=three_days())
    assert data.succeeded == [2, 1, 0]
    assert data.finished == [3, 1, 2]
    assert data.success_rate == pytest.approx(0.5)


def test_it_gives_p50_and_p95_of_observed_times_per_model(seeded, django_user_model):
    data = insights_for(access=selectors.access_for(member(django_user_model, seeded)), period=three_days())
    times = {t.model: t for t in data.times}
    assert set(times) == {M1, M2}
    # M1 waited 60, 60, 120 s and ran 100, 200, 30 s: interpolated like percentile_cont, from
    # the time bins, so within their stated relative error.
    within = RELATIVE_ERROR
    assert times[M1].queued_p50 == pytest.approx(60, rel=within)
    assert times[M1].queued_p95 == pytest.approx(114, rel=within)
    assert times[M1].running_p50 == pytest.approx(100, rel=within)
    assert times[M1].running_p95 == pytest.approx(190, rel=within)
    assert (times[M2].queued_p50, times[M2].running_p95) == (pytest.approx(30, rel=within),
                                                            pytest.approx(300, rel=within))


def test_it_lists_the_top_failure_codes_of_visible_tasks(seeded, django_user_model):
    data = insights_for(access=selectors.access_for(member(django_user_model, seeded)), period=three_days())
    assert data.failure_codes == [("InternalServiceError", 2), ("OutputVideoSensitiveContentDetected", 1)]


def test_it_sums_bytes_archived_per_day_of_archiving(seeded, django_user_model):
    data = insights_for(access=selectors.access_for(member(django_user_model, seeded)), period=three_days())
    assert data.archived_bytes == [1500, 0, 2048]


def test_it_buckets_by_hour_for_a_day(seeded, django_user_model):
    period = InsightsRange(start=at("2026-11-01T00:00:00"), end=at("2026-11-02T00:00:00"), hourly=True,
                           zone=SHANGHAI)
    data = insights_for(access=selectors.access_for(member(django_user_model, seeded)), period=period)
    assert len(data.buckets) == 24
    ten = [bucket.hour for bucket in data.buckets].index(10)  # 02:00 UTC is 10:00 in Shanghai
    assert data.created_by_status[ten] == {TaskStatus.SUCCEEDED: 2, TaskStatus.FAILED: 1}
    last = data.buckets[-1]  # 23:00 UTC is 07:00 the next day in Shanghai
    assert (last.day, last.hour) == (2, 7) and data.created_by_status[-1] == {TaskStatus.SUCCEEDED: 1}
    assert sum(sum(d.values()) for d in data.created_by_status) == 4


def test_it_shows_nothing_of_other_accounts(seeded, rival, django_user_model):
    data = insights_for(access=selectors.access_for(member(django_user_model, rival, "bo")), period=three_days())
    assert data.created_by_status == [{TaskStatus.SUCCEEDED: 1}, {TaskStatus.FAILED: 1}, {}]
    assert data.failure_codes == [("RivalError", 1)]
    assert data.archived_bytes == [99999, 0, 0]


def test_it_estimates_the_cost_from_the_price_table(seeded, django_user_model):
    access = selectors.access_for(member(django_user_model, seeded))
    assert insights_for(access=access, period=three_days()).total_cost is None  # the table starts empty
    ModelPrice.objects.create(model=M1, cny_per_million_tokens=Decimal("15"))
    data = insights_for(access=access, period=three_days())
    costs = {c.model: c for c in data.costs}
    assert costs[M1].tokens == 2 * TOKENS
    assert costs[M1].cost == Decimal("3.27")  # 217,800 tokens at 15 CNY per million
    assert costs[M2].cost is None and data.unpriced_models == [M2]
    assert data.total_cost == Decimal("3.27")


def test_it_reports_the_archive_lag_of_the_visible_accounts(account, rival, django_user_model):
    waiting = make_task(account, status=TaskStatus.SUCCEEDED, created=timezone.now() - timedelta(hours=3),
                        ark_updated_at=timezone.now() - timedelta(hours=2))
    pending = Artifact.objects.create(task=waiting, output=ArtifactOutput.VIDEO, state=ArtifactState.PENDING)
    # The lag counts from when ArkDash learnt of the success: here two hours ago.
    Artifact.objects.filter(pk=pending.pk).update(created=timezone.now() - timedelta(hours=2))
    mine = selectors.access_for(member(django_user_model, account))
    theirs = selectors.access_for(member(django_user_model, rival, "bo"))
    form = InsightsRangeForm.from_query(QueryDict())
    assert form.is_valid()
    assert insights_for(access=mine, period=form.chosen_range()).archive_lag_seconds == pytest.approx(7200, abs=120)
    assert insights_for(access=theirs, period=form.chosen_range()).archive_lag_seconds == 0.0
    assert archive_lag_seconds(account_ids=[account.pk]) == pytest.approx(7200, abs=120)


# --- the range picker ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"range": "custom", "start": "2026-11-05", "end": "2026-11-01"}, "must not be after"),
        ({"range": "custom", "start": "2026-11-05"}, "needs both"),
        ({"range": "custom", "start": "yesterday", "end": "2026-11-01"}, "valid date"),
        ({"range": "custom", "start": "2020-01-01", "end": "2026-11-01"}, "at most 366 days"),
        ({"range": "custom", "start": "0001-01-01", "end": "0001-01-02"}, "out of range"),
        ({"range": "90d"}, "valid choice"),
    ],
)
def test_it_refuses_a_bad_range_with_a_message(user_client, params, message):
    response = user_client.get("/insights/", params)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert 'id="range-errors"' in response.content.decode()


def test_it_makes_the_ranges_in_the_viewers_time_zone():
    now = at("2026-11-30T20:30:00")  # 1 December 04:30 in Shanghai
    with timezone.override(SHANGHAI):
        def chosen(params: dict) -> InsightsRange:
            form = InsightsRangeForm.from_query(QueryDict(urlencode(params)))
            assert form.is_valid(), form.errors
            return form.chosen_range(now=now)

        day = chosen({"range": "24h"})
        minute_end = now + timedelta(minutes=1)  # the current minute, whole
        assert (day.start, day.end, day.hourly) == (minute_end - timedelta(hours=24), minute_end, True)
        assert len(day.buckets()) == 25  # the partial hours at both ends
        week = chosen({})
        assert week.start == datetime(2026, 11, 25, tzinfo=SHANGHAI) and len(week.buckets()) == 7
        month = chosen({"range": "30d"})
        assert month.start == datetime(2026, 11, 2, tzinfo=SHANGHAI) and len(month.buckets()) == 30
        custom = chosen({"range": "custom", "start": "2026-11-01", "end": "2026-11-03"})
        assert (custom.start, custom.end) == (datetime(2026, 11, 1, tzinfo=SHANGHAI),
                                              datetime(2026, 11, 4, tzinfo=SHANGHAI))
        assert chosen({"start": "2026-11-01", "end": "2026-11-03"}) == custom  # dates alone mean custom


def test_the_picker_shows_the_range_drawn(user_client):
    assert '<option value="7d" selected>' in user_client.get("/insights/").content.decode()
    assert '<option value="30d" selected>' in user_client.get("/insights/?range=30d").content.decode()


# --- the page -------------------------------------------------------------------------------


CHARTS = ("by-status", "by-model", "tokens", "cost", "success", "failures", "queued", "running", "archived", "lag")


def test_it_draws_every_chart_with_a_table_view(seeded, user_client):
    response = user_client.get("/insights/", {"range": "custom", "start": "2026-11-01", "end": "2026-11-03"})
    assert response.status_code == 200
    body = response.content.decode()
    for name in CHARTS:
        assert f'id="chart-{name}"' in body, name
    assert body.count("<svg class=\"chart") == 9  # the cost is a table and a figure
    assert body.count('<details class="chart-table">') == 9
    assert "style=" not in body  # the Content-Security-Policy allows no inline style
    assert "observed" in body
    assert "InternalServiceError" in body and "RivalError" not in body


def test_the_admin_price_table_drives_the_cost_on_the_page(seeded, client, django_user_model):
    staff = django_user_model.objects.create_superuser("boss", password="pw")
    client.force_login(staff)
    custom = {"range": "custom", "start": "2026-11-01", "end": "2026-11-03"}
    assert "No price set for these models." in client.get("/insights/", custom).content.decode()
    added = client.post("/admin/tasks_app/modelprice/add/", {"model": M1, "cny_per_million_tokens": "15"})
    assert added.status_code == 302
    assert ModelPrice.objects.get(model=M1).cny_per_million_tokens == Decimal("15")
    body = client.get("/insights/", custom).content.decode()
    # A superuser sees both accounts: 3 × 108,900 tokens of M1 at 15 CNY per million.
    assert "4.90 CNY" in body


def test_it_needs_a_login(client):
    response = client.get("/insights/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_navigation_links_to_insights(user_client):
    assert 'href="/insights/"' in user_client.get("/").content.decode()


def test_it_reads_whole_hours_from_the_rollup_as_of_its_last_refresh_but_prices_fresh(seeded, django_user_model):
    access = selectors.access_for(member(django_user_model, seeded))
    first = insights_for(access=access, period=three_days())
    make_task(seeded, status=TaskStatus.SUCCEEDED, model=M1, created=at("2026-11-02T03:00:00"), total_tokens=TOKENS)
    ModelPrice.objects.create(model=M1, cny_per_million_tokens=Decimal("15"))
    again = insights_for(access=access, period=three_days())
    assert again.total_created == first.total_created == 7  # the rollup before its refresh
    assert again.total_cost == Decimal("3.27")  # the price, read now
    rollup_refresh()  # as the beat job does every minute
    later = insights_for(access=access, period=three_days())
    assert later.total_created == 8 and later.total_cost == Decimal("4.90")


def test_it_sums_the_bytes_of_every_account_for_a_member_of_all(seeded, rival, django_user_model):
    both = member(django_user_model, seeded)
    member_of(both, rival)
    data = insights_for(access=selectors.access_for(both), period=three_days())
    assert data.archived_bytes == [1500 + 99999, 0, 2048]
