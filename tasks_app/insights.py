"""Reads for the insights page: the range picker's form and the figures over the mirror.

Every figure covers the tasks of the accounts the person sees (Access.tasks()) created in
the range, bucketed by hour (24 h) or by day in the viewer's time zone. They are read from
the hourly rollup (services/insights_rollup.py) for the UTC hours whole in one bucket and from the
raw rows for the rest; see docs/insights.md.
Times queued and running are what ArkDash observed: a task counts as started when a sync
first saw it running, so they are as precise as the sync's period.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import Trunc
from django.http import QueryDict
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .models import (
    Artifact,
    InsightsHourArchived,
    InsightsHourCount,
    InsightsHourTime,
    InsightsPhase,
    ModelPrice,
    TaskStatus,
)
from .selectors import Access, archive_lag_seconds
from .services import insights_rollup as rollup

RANGES = (("24h", _("Last 24 hours")), ("7d", _("Last 7 days")), ("30d", _("Last 30 days")),
          ("custom", _("Custom")))  # fmt: skip
DEFAULT_RANGE = "7d"
MAX_CUSTOM_DAYS = 366
# A chart shows this many models by name; the rest add up under "other models".
MAX_MODELS = 7
OTHER_MODELS = "\x00other"
TOP_FAILURE_CODES = 10
FINISHED = (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.EXPIRED)


# --- the range ------------------------------------------------------------------------


@dataclass(frozen=True)
class InsightsRange:
    start: datetime  # aware, inclusive
    end: datetime  # aware, exclusive
    hourly: bool
    zone: tzinfo

    def buckets(self) -> list[datetime]:
        """The start of every hour (24 h) or local day in the range, in the viewer's zone."""
        if self.hourly:
            first = self.start.astimezone(self.zone).replace(minute=0, second=0, microsecond=0).astimezone(UTC)
            hours = int((self.end - first) / timedelta(hours=1)) + 1
            return [(first + timedelta(hours=n)).astimezone(self.zone) for n in range(hours)
                    if first + timedelta(hours=n) < self.end]
        day, last = self.start.astimezone(self.zone).date(), (self.end - timedelta(microseconds=1)).astimezone(self.zone).date()
        days = []
        while day <= last:
            days.append(datetime.combine(day, time(0), tzinfo=self.zone))
            day += timedelta(days=1)
        return days

    def key(self, moment: datetime) -> datetime | date:
        """The bucket `moment` falls in, as buckets() names it."""
        local = moment.astimezone(self.zone)
        if self.hourly:
            return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        return local.date()

    def bucket_key(self, bucket: datetime) -> datetime | date:
        return bucket.astimezone(UTC) if self.hourly else bucket.date()


class InsightsRangeForm(forms.Form):
    range = forms.ChoiceField(label=_("Range"), choices=RANGES)
    start = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("Until (inclusive)"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    @classmethod
    def from_query(cls, params: QueryDict) -> InsightsRangeForm:
        """The form bound to the page's query string. Without a range, dates mean a custom
        range, and nothing at all the default one (so the picker shows what is drawn)."""
        data = params.copy()
        if not data.get("range"):
            data["range"] = "custom" if data.get("start") or data.get("end") else DEFAULT_RANGE
        return cls(data=data)

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("range") == "custom":
            start, end = cleaned.get("start"), cleaned.get("end")
            if not start or not end:
                if "start" not in self.errors and "end" not in self.errors:
                    raise ValidationError(_("A custom range needs both a start and an end date."), code="incomplete")
                return cleaned
            if start > end:
                raise ValidationError(_("The start date must not be after the end date."), code="inverted")
            if (end - start).days + 1 > MAX_CUSTOM_DAYS:
                raise ValidationError(_("A custom range covers at most %(days)d days."), params={"days": MAX_CUSTOM_DAYS},
                                      code="too_long")
            if start.year < 2 or end.year > 9998:
                raise ValidationError(_("That date is out of range."), code="out_of_range")
        return cleaned

    def chosen_range(self, *, now: datetime | None = None) -> InsightsRange:
        """The range the valid form asks for, in the current time zone."""
        zone = timezone.get_current_timezone()
        # Whole minutes: the ranges that end now end with the current minute, so they are the
        # same range for a minute, and hold what happened in it.
        now = (now or timezone.now()).replace(second=0, microsecond=0) + timedelta(minutes=1)
        choice = self.cleaned_data.get("range") or DEFAULT_RANGE
        if choice == "24h":
            return InsightsRange(start=now - timedelta(hours=24), end=now, hourly=True, zone=zone)
        if choice == "custom":
            start = datetime.combine(self.cleaned_data["start"], time(0), tzinfo=zone)
            end = datetime.combine(self.cleaned_data["end"] + timedelta(days=1), time(0), tzinfo=zone)
            return InsightsRange(start=start, end=end, hourly=False, zone=zone)
        days = 7 if choice == "7d" else 30
        today = now.astimezone(zone).date()
        start = datetime.combine(today - timedelta(days=days - 1), time(0), tzinfo=zone)
        return InsightsRange(start=start, end=now, hourly=False, zone=zone)


# --- the figures ------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelTimes:
    model: str
    queued_p50: float | None  # seconds
    queued_p95: float | None
    running_p50: float | None
    running_p95: float | None


@dataclass(frozen=True)
class ModelCost:
    model: str
    tokens: int
    price: Decimal | None  # CNY per million tokens; None when staff set none
    cost: Decimal | None


@dataclass
class Insights:
    range: InsightsRange
    buckets: list[datetime]
    statuses: list[str]
    models: list[str]  # by tasks created, most first; OTHER_MODELS last if any
    # One dict per bucket, in bucket order.
    created_by_status: list[dict[str, int]]
    created_by_model: list[dict[str, int]]
    tokens_by_model: list[dict[str, int]]
    succeeded: list[int]
    finished: list[int]  # succeeded + failed + expired
    costs: list[ModelCost]
    times: list[ModelTimes]
    failure_codes: list[tuple[str, int]]
    archived_bytes: list[int]
    archive_lag_seconds: float
    tokens_total: dict[str, int] = field(default_factory=dict)  # per model, every model
    total_created: int = 0
    total_cost: Decimal | None = None
    unpriced_models: list[str] = field(default_factory=list)

    @property
    def success_rate(self) -> float | None:
        finished = sum(self.finished)
        return sum(self.succeeded) / finished if finished else None

    @property
    def success_rate_percent(self) -> float | None:
        rate = self.success_rate
        return None if rate is None else 100 * rate


def insights_for(*, access: Access, period: InsightsRange) -> Insights:
    """Every figure of the insights page for the tasks `access` sees, created in `period`.

    The UTC hours that lie whole in one bucket come from the rollup (services/insights_rollup.py,
    refreshed every minute); the rest from the raw rows (see _Plan). The cost (from the
    admin's price table) and the archive lag are current.
    """
    buckets = period.buckets()
    index = {period.bucket_key(bucket): n for n, bucket in enumerate(buckets)}
    plan = _Plan.of(period, buckets)

    rows = _count_rows(access, period, plan, index)
    per_model: dict[str, int] = defaultdict(int)
    for row in rows:
        per_model[row.model] += row.n
    ranked = sorted(per_model, key=lambda model: (-per_model[model], model))
    named = set(ranked[:MAX_MODELS])
    models = ranked[:MAX_MODELS] + ([OTHER_MODELS] if len(ranked) > MAX_MODELS else [])

    by_status, by_model, tokens = ([defaultdict(int) for _ in buckets] for _ in range(3))
    tokens_total: dict[str, int] = defaultdict(int)
    failures: dict[str, int] = defaultdict(int)
    for row in rows:
        tokens_total[row.model] += row.tokens
        if row.status == TaskStatus.FAILED:
            failures[row.error_code] += row.n
        if row.bucket is None:  # a task on the range's edge whose bucket the clock has just left
            continue
        shown = row.model if row.model in named else OTHER_MODELS
        by_status[row.bucket][row.status] += row.n
        by_model[row.bucket][shown] += row.n
        tokens[row.bucket][shown] += row.tokens

    costs, total_cost, unpriced = _costs(dict(tokens_total))
    return Insights(
        range=period,
        buckets=buckets,
        statuses=list(TaskStatus.values),
        models=models,
        created_by_status=[dict(d) for d in by_status],
        created_by_model=[dict(d) for d in by_model],
        tokens_by_model=[dict(d) for d in tokens],
        succeeded=[d.get(TaskStatus.SUCCEEDED, 0) for d in by_status],
        finished=[sum(d.get(status, 0) for status in FINISHED) for d in by_status],
        costs=costs,
        times=_times(access, plan),
        failure_codes=sorted(failures.items(), key=lambda item: (-item[1], item[0]))[:TOP_FAILURE_CODES],
        archived_bytes=_archived_bytes(access, period, plan, index),
        archive_lag_seconds=_archive_lag(access),
        tokens_total=dict(tokens_total),
        total_created=sum(row.n for row in rows),
        total_cost=total_cost,
        unpriced_models=unpriced,
    )


@dataclass(frozen=True)
class _CountRow:
    bucket: int | None  # index in the range's buckets
    status: str
    model: str
    error_code: str
    n: int
    tokens: int


@dataclass(frozen=True)
class _Plan:
    """Which parts of a range come from the rollup and which from the raw rows.

    The rollup serves the UTC hours that lie whole inside the range and inside one bucket.
    The raw rows serve the rest: the partial hours at the range's ends and, in a zone whose
    offset is not whole hours (Asia/Kolkata +5:30), each hour a bucket starts in (for local
    days, one hour a day; for the 24-hour range, every hour).
    """

    rollup: list[tuple[datetime, datetime]]  # contiguous [start, end) runs of whole UTC hours
    raw: list[tuple[datetime, datetime]]

    @classmethod
    def of(cls, period: InsightsRange, buckets: list[datetime]) -> _Plan:
        first, last = rollup.hour_of(period.start), rollup.hour_of(period.end)
        if first < period.start:
            first += rollup.HOUR
        if first >= last:
            return cls(rollup=[], raw=[(period.start, period.end)])
        split = {rollup.hour_of(bucket) for bucket in buckets if bucket.astimezone(UTC) != rollup.hour_of(bucket)}
        hours = [first + n * rollup.HOUR for n in range((last - first) // rollup.HOUR)]
        raw = [(period.start, first), *((hour, hour + rollup.HOUR) for hour in hours if hour in split),
               (last, period.end)]  # fmt: skip
        whole = [(hour, hour + rollup.HOUR) for hour in hours if hour not in split]
        return cls(rollup=rollup.merged_spans(whole),
                   raw=rollup.merged_spans((start, end) for start, end in raw if start < end))

    def rollup_filter(self) -> Q | None:
        return rollup.spans_filter("hour", self.rollup)

    def raw_filter(self, field: str) -> Q | None:
        return rollup.spans_filter(field, self.raw)


def _scoped(queryset: QuerySet, access: Access) -> QuerySet:
    return queryset if access.everything else queryset.filter(account_id__in=sorted(access.visible_account_ids))


def _count_rows(access: Access, period: InsightsRange, plan: _Plan, index: dict) -> list[_CountRow]:
    """Tasks and tokens per bucket, status, model and error code: the rollup's hours summed
    into the viewer's buckets, and the raw rows of the other hours."""
    kind = "hour" if period.hourly else "day"
    grouped: list[dict] = []
    if (hours := plan.rollup_filter()) is not None:
        grouped += (
            _scoped(InsightsHourCount.objects, access).filter(hours)
            .annotate(bucket=Trunc("hour", kind, tzinfo=period.zone))
            .values("bucket", "status", "model", "error_code")
            .annotate(n=Sum("tasks"), tokens=Sum("tokens"))
            .order_by()
        )  # fmt: skip
    if (created := plan.raw_filter("ark_created_at")) is not None:
        grouped += rollup.count_rows(access.tasks().filter(created), kind=kind, zone=period.zone)
    return [_CountRow(index.get(period.key(row["bucket"])), row["status"], row["model"], row["error_code"], row["n"],
                      row["tokens"] or 0) for row in grouped]  # fmt: skip


def _costs(tokens_by_model: dict[str, int]) -> tuple[list[ModelCost], Decimal | None, list[str]]:
    """Tokens × the admin's price per million, per model; models without a price have no cost."""
    prices = dict(ModelPrice.objects.filter(model__in=list(tokens_by_model)).values_list("model", "cny_per_million_tokens"))
    costs = []
    for model in sorted(tokens_by_model, key=lambda m: (-tokens_by_model[m], m)):
        price = prices.get(model)
        cost = (Decimal(tokens_by_model[model]) * price / 1_000_000).quantize(Decimal("0.01")) if price is not None else None
        costs.append(ModelCost(model=model, tokens=tokens_by_model[model], price=price, cost=cost))
    priced = [c.cost for c in costs if c.cost is not None]
    unpriced = [c.model for c in costs if c.cost is None and c.tokens]
    return costs, (sum(priced, Decimal("0.00")) if priced else None), unpriced


def _times(access: Access, plan: _Plan) -> list[ModelTimes]:
    """p50 and p95 of the observed time queued (created → first seen running) and running
    (first seen running → finished), per model, from the time bins: within
    rollup.RELATIVE_ERROR of the exact percentiles."""
    bins: dict[tuple[str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    if (hours := plan.rollup_filter()) is not None:
        rows = (
            _scoped(InsightsHourTime.objects, access).filter(hours)
            .values_list("model", "phase", "bin").annotate(n=Sum("tasks")).order_by()
        )  # fmt: skip
        for model, phase, time_bin, n in rows:
            bins[(model, phase)][time_bin] += n
    if (created := plan.raw_filter("ark_created_at")) is not None:
        for (_account, _hour, model, phase, time_bin), n in rollup.time_bins(access.tasks().filter(created)).items():
            bins[(model, phase)][time_bin] += n
    models = sorted({model for model, phase in bins if phase == InsightsPhase.QUEUED})
    queued = {model: bins.get((model, InsightsPhase.QUEUED), {}) for model in models}
    running = {model: bins.get((model, InsightsPhase.RUNNING), {}) for model in models}
    return [
        ModelTimes(model, rollup.percentile(queued[model], 0.5), rollup.percentile(queued[model], 0.95),
                   rollup.percentile(running[model], 0.5), rollup.percentile(running[model], 0.95))
        for model in models
    ]  # fmt: skip


def _archived_bytes(access: Access, period: InsightsRange, plan: _Plan, index: dict) -> list[int]:
    """Bytes of the outputs archived in each bucket (by when they were archived)."""
    kind = "hour" if period.hourly else "day"
    grouped: list[tuple[datetime, int]] = []
    if (hours := plan.rollup_filter()) is not None:
        grouped += (
            _scoped(InsightsHourArchived.objects, access).filter(hours)
            .annotate(bucket=Trunc("hour", kind, tzinfo=period.zone)).values_list("bucket")
            .annotate(size=Sum("bytes")).order_by()
        )  # fmt: skip
    if (archived_in := plan.raw_filter("archived_at")) is not None:
        archived = Artifact.objects.filter(archived_in)
        if not access.everything:
            archived = archived.filter(task__account_id__in=sorted(access.visible_account_ids))
        grouped += [(row["bucket"], row["size"]) for row in rollup.archived_rows(archived, kind=kind, zone=period.zone)]
    sums = [0] * len(index)
    for bucket_start, size in grouped:
        bucket = index.get(period.key(bucket_start))
        if bucket is not None:
            sums[bucket] += size or 0
    return sums


def _archive_lag(access: Access) -> float:
    if access.everything:
        return archive_lag_seconds()
    return archive_lag_seconds(account_ids=sorted(access.visible_account_ids))
