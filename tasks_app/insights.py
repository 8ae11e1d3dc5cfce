"""Reads for the insights page: the range picker's form and the figures over the mirror.

Every figure covers the tasks of the accounts the person sees (Access.tasks()) created in
the range, bucketed by hour (24 h) or by day in the viewer's time zone. Each is one
GROUP BY over (account, ark_created_at), which the task indexes serve; see docs/insights.md.
Times queued and running are what ArkDash observed: a task counts as started when a sync
first saw it running, so they are as precise as the sync's period.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal

from django import forms
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Aggregate, Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.db.models.functions import Trunc
from django.http import QueryDict
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .models import Account, Artifact, ArtifactState, ModelPrice, TaskStatus
from .selectors import Access, archive_lag_seconds

RANGES = (("24h", _("Last 24 hours")), ("7d", _("Last 7 days")), ("30d", _("Last 30 days")),
          ("custom", _("Custom")))  # fmt: skip
DEFAULT_RANGE = "7d"
MAX_CUSTOM_DAYS = 366
# A chart shows this many models by name; the rest add up under "other models".
MAX_MODELS = 7
OTHER_MODELS = "\x00other"
TOP_FAILURE_CODES = 10
# The figures of one range for one set of accounts are computed at most once a minute (Django's
# cache): at a million tasks a month's GROUP BY and percentiles cost more than a page view
# should (docs/benchmarks.md, Insights). Prices and the archive lag are read fresh every time.
FIGURES_CACHE_SECONDS = 60
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
        # same range, and the same cache entry, for a minute, and hold what happened in it.
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


class PercentileCont(Aggregate):
    """PostgreSQL's percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression, fraction: float, **extra) -> None:
        super().__init__(expression, fraction=float(fraction), output_field=DurationField(), **extra)


def percentile_cont(values: list[float], fraction: float) -> float | None:
    """The same interpolation as PostgreSQL's percentile_cont, over values in Python."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


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

    The figures from the tasks and outputs may be up to FIGURES_CACHE_SECONDS old; the cost
    (from the admin's price table) and the archive lag are current.
    """
    key = figures_cache_key(access=access, period=period)
    figures = cache.get_or_set(key, lambda: _figures(access=access, period=period), FIGURES_CACHE_SECONDS)
    costs, total_cost, unpriced = _costs(figures.tokens_total)
    return replace(figures, costs=costs, total_cost=total_cost, unpriced_models=unpriced,
                   archive_lag_seconds=_archive_lag(access))


def figures_cache_key(*, access: Access, period: InsightsRange) -> str:
    scope = "all" if access.everything else ",".join(map(str, sorted(access.visible_account_ids)))
    return f"arkdash:insights:{scope}:{period.start.isoformat()}:{period.end.isoformat()}:{period.hourly}:{period.zone}"


def _figures(*, access: Access, period: InsightsRange) -> Insights:
    tasks = access.tasks().filter(ark_created_at__gte=period.start, ark_created_at__lt=period.end)
    buckets = period.buckets()
    index = {period.bucket_key(bucket): n for n, bucket in enumerate(buckets)}
    kind = "hour" if period.hourly else "day"

    # One scan of the range: tasks and tokens per bucket, status and model.
    grouped = (
        tasks.annotate(bucket=Trunc("ark_created_at", kind, tzinfo=period.zone))
        .values("bucket", "status", "model")
        .annotate(n=Count("id"), tokens=Sum("total_tokens"))
        .order_by()
    )
    rows = [(index.get(period.key(row["bucket"])), row["status"], row["model"], row["n"], row["tokens"] or 0)
            for row in grouped]
    per_model: dict[str, int] = defaultdict(int)
    for _bucket, _status, model, n, _tokens in rows:
        per_model[model] += n
    ranked = sorted(per_model, key=lambda model: (-per_model[model], model))
    named = set(ranked[:MAX_MODELS])
    models = ranked[:MAX_MODELS] + ([OTHER_MODELS] if len(ranked) > MAX_MODELS else [])

    by_status, by_model, tokens = ([defaultdict(int) for _ in buckets] for _ in range(3))
    tokens_total: dict[str, int] = defaultdict(int)
    for bucket, status, model, n, used in rows:
        tokens_total[model] += used
        if bucket is None:  # a task on the range's edge whose bucket the clock has just left
            continue
        shown = model if model in named else OTHER_MODELS
        by_status[bucket][status] += n
        by_model[bucket][shown] += n
        tokens[bucket][shown] += used

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
        costs=[],
        times=_times(tasks),
        failure_codes=_failure_codes(tasks),
        archived_bytes=_archived_bytes(access, period, index),
        archive_lag_seconds=0.0,
        tokens_total=dict(tokens_total),
        total_created=sum(row[3] for row in rows),
    )


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


def _times(tasks) -> list[ModelTimes]:
    """p50 and p95 of the observed time queued (created → first seen running) and running
    (first seen running → finished), per model."""
    seen_running = tasks.filter(started_at__isnull=False)
    queued = ExpressionWrapper(F("started_at") - F("ark_created_at"), output_field=DurationField())
    running = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    done = Q(finished_at__isnull=False)
    if connection.vendor == "postgresql":
        rows = (
            seen_running.values("model")
            .annotate(
                q50=PercentileCont(queued, 0.5), q95=PercentileCont(queued, 0.95),
                r50=PercentileCont(running, 0.5, filter=done), r95=PercentileCont(running, 0.95, filter=done),
            )
            .order_by("model")
        )  # fmt: skip

        def seconds(value: timedelta | None) -> float | None:
            return value.total_seconds() if value is not None else None

        return [ModelTimes(row["model"], seconds(row["q50"]), seconds(row["q95"]), seconds(row["r50"]),
                           seconds(row["r95"])) for row in rows]  # fmt: skip
    # Elsewhere (SQLite, the single-machine install) the same figures in Python, one row at a time.
    waits: dict[str, list[float]] = defaultdict(list)
    runs: dict[str, list[float]] = defaultdict(list)
    for model, created, started, finished in seen_running.values_list(
        "model", "ark_created_at", "started_at", "finished_at"
    ).iterator(chunk_size=5000):
        waits[model].append((started - created).total_seconds())
        if finished is not None:
            runs[model].append((finished - started).total_seconds())
    return [
        ModelTimes(model, percentile_cont(waits[model], 0.5), percentile_cont(waits[model], 0.95),
                   percentile_cont(runs[model], 0.5), percentile_cont(runs[model], 0.95))
        for model in sorted(waits)
    ]  # fmt: skip


def _failure_codes(tasks) -> list[tuple[str, int]]:
    rows = (
        tasks.filter(status=TaskStatus.FAILED).values("error_code").annotate(n=Count("id"))
        .order_by("-n", "error_code")[:TOP_FAILURE_CODES]
    )  # fmt: skip
    return [(row["error_code"], row["n"]) for row in rows]


def _archived_bytes(access: Access, period: InsightsRange, index: dict) -> list[int]:
    """Bytes of the outputs archived in each bucket (by when they were archived)."""
    archived = Artifact.objects.filter(state=ArtifactState.ARCHIVED, archived_at__gte=period.start,
                                       archived_at__lt=period.end)  # fmt: skip
    # The account is on the task: the join reads every task of the visible accounts, so it is
    # made only when the person does not see every account (a filter that keeps all rows).
    visible = sorted(access.visible_account_ids)
    if not access.everything and Account.objects.exclude(pk__in=visible).exists():
        archived = archived.filter(task__account_id__in=visible)
    kind = "hour" if period.hourly else "day"
    sums = [0] * len(index)
    rows = (
        archived.annotate(bucket=Trunc("archived_at", kind, tzinfo=period.zone)).values("bucket")
        .annotate(size=Sum("size")).order_by()
    )  # fmt: skip
    for row in rows:
        bucket = index.get(period.key(row["bucket"]))
        if bucket is not None:
            sums[bucket] += row["size"] or 0
    return sums


def _archive_lag(access: Access) -> float:
    if access.everything:
        return archive_lag_seconds()
    return archive_lag_seconds(account_ids=sorted(access.visible_account_ids))
