"""The insights page: charts of the visible tasks over a range the viewer picks."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from . import charts, selectors
from .insights import OTHER_MODELS, Insights, InsightsRangeForm, insights_for
from .models import TaskStatus
from .templatetags.dashboard import human_duration

TEMPLATE = "tasks_app/insights.html"
# A status keeps its colour on every chart (classes in static/css/insights.css).
STATUS_CSS = {status: f"status-{status}" for status in TaskStatus.values}
ARCHIVE_LAG_LIMIT = timedelta(hours=24)  # Ark's output URLs die 24 h after success


@login_required
@require_safe
def insights(request: HttpRequest) -> HttpResponse:
    form = InsightsRangeForm.from_query(request.GET)
    if not form.is_valid():
        return render(request, TEMPLATE, {"form": form, "errors": _form_errors(form)}, status=400)
    data = insights_for(access=selectors.access_for(request.user), period=form.chosen_range())
    return render(request, TEMPLATE, {"form": form, "insights": data, "charts": _charts(data)})


def _form_errors(form: InsightsRangeForm) -> list[str]:
    return [f"{form.fields[name].label}: {error}" if name in form.fields else str(error)
            for name, errors in form.errors.items() for error in errors]  # fmt: skip


def _count(value: float) -> str:
    return f"{round(value):,}"  # grouped by commas, as both languages write numbers


def _percent(value: float) -> str:
    return f"{value:.0f} %"


def _seconds(value: float) -> str:
    return human_duration(timedelta(seconds=value))


def _charts(data: Insights) -> dict[str, charts.Chart]:
    """What each chart shows, in the viewer's words: labels, series, formats."""
    if data.range.hourly:
        labels = [f"{bucket:%H:00}" for bucket in data.buckets]
        head = _("Hour")
    else:
        labels = [f"{bucket:%m-%d}" for bucket in data.buckets]
        head = _("Day")
    statuses = [charts.Series(value, str(label), STATUS_CSS[value]) for value, label in TaskStatus.choices]
    models = [
        charts.Series(model, _("other models") if model == OTHER_MODELS else (model or _("(no model)")), f"series-{n}")
        for n, model in enumerate(data.models)
    ]
    rates = [{"rate": 100 * s / f} if f else {} for s, f in zip(data.succeeded, data.finished, strict=True)]
    failures = [(code or _("(no code)"), {"n": n}) for code, n in data.failure_codes]
    times = [(t.model or _("(no model)"), {"p50": t.queued_p50, "p95": t.queued_p95}) for t in data.times]
    runs = [(t.model or _("(no model)"), {"p50": t.running_p50, "p95": t.running_p95}) for t in data.times]
    percentiles = [charts.Series("p50", _("p50 (median)"), "series-0"), charts.Series("p95", _("p95"), "series-1")]
    lag = [(_("Oldest output waiting"), {"seconds": data.archive_lag_seconds}),
           (_("Ark's links die after"), {"seconds": ARCHIVE_LAG_LIMIT.total_seconds()})]  # fmt: skip
    return {
        "by_status": charts.stacked_bars(labels=labels, series=statuses, values=data.created_by_status, fmt=_count,
                                         label_head=head),
        "by_model": charts.stacked_bars(labels=labels, series=models, values=data.created_by_model, fmt=_count,
                                        label_head=head),
        "tokens": charts.stacked_bars(labels=labels, series=models, values=data.tokens_by_model, fmt=_count,
                                      label_head=head),
        "success": charts.stacked_bars(labels=labels, series=[charts.Series("rate", _("success rate"), "status-succeeded")],
                                       values=rates, fmt=_percent, label_head=head, missing="–"),
        "queued": charts.grouped_hbars(rows=times, series=percentiles, fmt=_seconds, label_head=_("Model"),
                                        units=charts.SECONDS),
        "running": charts.grouped_hbars(rows=runs, series=percentiles, fmt=_seconds, label_head=_("Model"),
                                         units=charts.SECONDS),
        "failures": charts.grouped_hbars(rows=failures, series=[charts.Series("n", _("failed tasks"), "status-failed")],
                                         fmt=_count, label_head=_("Error code")),
        "archived": charts.stacked_bars(labels=labels, series=[charts.Series("bytes", _("bytes archived"), "series-2")],
                                        values=[{"bytes": b} for b in data.archived_bytes], fmt=filesizeformat,
                                        label_head=head, units=charts.BYTES),
        "lag": charts.grouped_hbars(rows=lag, series=[charts.Series("seconds", _("duration"), "series-3")],
                                    fmt=_seconds, label_head=_("Figure"), units=charts.SECONDS),
    }
