"""Prometheus metrics: event counters shared by all processes, gauges read from the database.

Counters (incremented where the event happens, summed in the shared store, see counters.py):
    arkdash_upstream_calls_total{endpoint,outcome}      every attempt made to Ark
    arkdash_upstream_call_seconds_total{endpoint}       time spent in those attempts
    arkdash_rate_limit_waits_total{endpoint}            attempts that had to wait for the shared budget
    arkdash_rate_limit_wait_seconds_total{endpoint}     how long they waited
    arkdash_archive_copies_total{output,outcome}        copy attempts: archived / failed / lost
    arkdash_archive_copied_bytes_total{output}          bytes of the copies that were archived
    arkdash_archive_failures_total{reason}              failed or lost attempts, by reason
    arkdash_http_responses_total{status_class}          responses served by the web (2xx … 5xx)

Gauges (computed from the mirror at scrape time, so every web process agrees):
    arkdash_tasks{account,status}, arkdash_sync_lag_seconds{account},
    arkdash_sync_last_success_timestamp_seconds{account}, arkdash_sync_consecutive_failures{account},
    arkdash_archive_lag_seconds, arkdash_artifacts{state}, arkdash_archive_stored_bytes,
    arkdash_archive_next_deadline_seconds, arkdash_metrics_store_up, arkdash_metrics_database_up.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import DatabaseError
from django.db.models import Count, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from tasks_app.ark.observe import CallEvent

from . import counters

logger = logging.getLogger(__name__)

# The classic text format: every Prometheus version reads it (our names need no escaping).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# Waits shorter than this are the limiter's own round trip, not a wait for the budget.
RATE_WAIT_THRESHOLD_SECONDS = 0.005


@dataclass(frozen=True)
class CounterSpec:
    name: str  # without _total: prometheus_client appends it
    help: str
    labels: tuple[str, ...]


COUNTERS = {
    spec.name: spec
    for spec in (
        CounterSpec("arkdash_upstream_calls", "Attempts made to the Ark API.", ("endpoint", "outcome")),
        CounterSpec("arkdash_upstream_call_seconds", "Seconds spent in Ark API attempts.", ("endpoint",)),
        CounterSpec(
            "arkdash_rate_limit_waits", "Ark attempts that waited for the shared rate budget.", ("endpoint",)
        ),
        CounterSpec(
            "arkdash_rate_limit_wait_seconds", "Seconds waited for the shared rate budget.", ("endpoint",)
        ),
        CounterSpec("arkdash_archive_copies", "Archive copy attempts by outcome.", ("output", "outcome")),
        CounterSpec("arkdash_archive_copied_bytes", "Bytes archived by successful copies.", ("output",)),
        CounterSpec(
            "arkdash_archive_failures", "Failed or lost archive copy attempts by reason.", ("reason",)
        ),
        CounterSpec(
            "arkdash_http_responses", "Responses served by the web, by status class.", ("status_class",)
        ),
    )
}


# --- recording events ---------------------------------------------------------------------


def record_ark_call(event: CallEvent) -> None:
    """The Ark client's call observer (installed by ObservabilityConfig.ready)."""
    endpoint = {"endpoint": event.endpoint}
    increments = [
        (counters.counter_key("arkdash_upstream_calls", {**endpoint, "outcome": event.outcome}), 1.0),
        (counters.counter_key("arkdash_upstream_call_seconds", endpoint), event.seconds),
    ]
    if event.rate_wait_seconds >= RATE_WAIT_THRESHOLD_SECONDS:
        increments += [
            (counters.counter_key("arkdash_rate_limit_waits", endpoint), 1.0),
            (counters.counter_key("arkdash_rate_limit_wait_seconds", endpoint), event.rate_wait_seconds),
        ]
    counters.add_many(increments)


# Archive error messages (services/archive.py, lib/downloads.py, lib/storage.py) → a bounded label.
_FAILURE_REASONS = (
    ("expired", re.compile(r"expired|answered (403|404|410)", re.I)),
    ("rate_limited", re.compile(r"\b429\b|rate limit", re.I)),
    ("upstream_5xx", re.compile(r"answered 5\d\d", re.I)),
    ("truncated", re.compile(r"stopped at|more than its content-length|content-length", re.I)),
    ("timeout", re.compile(r"timed out|timeout", re.I)),
    ("connection", re.compile(r"connect|connection", re.I)),
    ("storage", re.compile(r"\bS3\b|storage|publish", re.I)),
    ("bad_zip", re.compile(r"zip", re.I)),
    ("refused", re.compile(r"refused|not allowed", re.I)),
)


def failure_reason(message: str) -> str:
    for reason, pattern in _FAILURE_REASONS:
        if pattern.search(message or ""):
            return reason
    return "other"


def record_archive_attempt(*, output: str, state: str, size: int | None, last_error: str) -> None:
    """One copy attempt finished as `state` (archived, failed or lost)."""
    increments = [(counters.counter_key("arkdash_archive_copies", {"output": output, "outcome": state}), 1.0)]
    if state == "archived":
        increments.append(
            (counters.counter_key("arkdash_archive_copied_bytes", {"output": output}), float(size or 0))
        )
    else:
        increments.append(
            (counters.counter_key("arkdash_archive_failures", {"reason": failure_reason(last_error)}), 1.0)
        )
    counters.add_many(increments)


def record_http_response(status: int) -> None:
    counters.increment("arkdash_http_responses", {"status_class": f"{status // 100}xx"})


# --- exposition ---------------------------------------------------------------------------


class ArkDashCollector:
    """Builds every family at scrape time. A failing source is reported, never a failed scrape."""

    def collect(self) -> Iterator[Metric]:
        yield from self._counter_families()
        yield from self._database_families()

    def _counter_families(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("arkdash_metrics_store_up", "1 when the shared counter store could be read.")
        try:
            values = counters.snapshot()
        except Exception as error:  # noqa: BLE001 - Redis down: the database gauges still matter
            logger.warning("metrics: counter store unreadable: %s", error)
            up.add_metric([], 0)
            yield up
            values = {}
        else:
            up.add_metric([], 1)
            yield up
        for spec in COUNTERS.values():
            family = CounterMetricFamily(spec.name, spec.help, labels=list(spec.labels))
            for (name, pairs), value in sorted(values.items()):
                if name != spec.name:
                    continue
                labels = dict(pairs)
                family.add_metric([labels.get(label, "") for label in spec.labels], value)
            yield family

    def _database_families(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "arkdash_metrics_database_up", "1 when the database could be read for this scrape."
        )
        try:
            families = list(_database_gauges())
        except DatabaseError as error:
            logger.warning("metrics: database unreadable: %s", error)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def _database_gauges() -> Iterator[Metric]:
    from tasks_app.models import Account, Artifact, ArtifactState, Task, TaskStatus
    from tasks_app.selectors import archive_health

    now = timezone.now()
    accounts = list(
        Account.objects.order_by("pk").values(
            "pk", "name", "created", "last_sync_ok_at", "consecutive_failures"
        )
    )
    names = {account["pk"]: account["name"] for account in accounts}

    tasks = GaugeMetricFamily(
        "arkdash_tasks", "Tasks in the mirror by account and status.", labels=["account", "status"]
    )
    by_account_status = {
        (row["account_id"], row["status"]): row["n"]
        for row in Task.objects.order_by().values("account_id", "status").annotate(n=Count("id"))
    }
    for account_id, name in names.items():
        for status in TaskStatus.values:
            tasks.add_metric([name, status], by_account_status.get((account_id, status), 0))
    yield tasks

    lag = GaugeMetricFamily(
        "arkdash_sync_lag_seconds",
        "Seconds since the account's last successful sync (since it was added, if never).",
        labels=["account"],
    )
    last = GaugeMetricFamily(
        "arkdash_sync_last_success_timestamp_seconds",
        "Unix time of the account's last successful sync (0: never).",
        labels=["account"],
    )
    failures = GaugeMetricFamily(
        "arkdash_sync_consecutive_failures", "Sync cycles failed in a row.", labels=["account"]
    )
    for account in accounts:
        synced = account["last_sync_ok_at"]
        lag.add_metric([account["name"]], max(0.0, (now - (synced or account["created"])).total_seconds()))
        last.add_metric([account["name"]], synced.timestamp() if synced else 0)
        failures.add_metric([account["name"]], account["consecutive_failures"])
    yield lag
    yield last
    yield failures

    health = archive_health()
    yield GaugeMetricFamily(
        "arkdash_archive_lag_seconds",
        "Seconds since the oldest success whose outputs are not archived yet (0: none waiting).",
        value=health.lag_seconds,
    )
    artifacts = GaugeMetricFamily("arkdash_artifacts", "Task outputs by archive state.", labels=["state"])
    for state, count in sorted(health.counts.items()):
        artifacts.add_metric([state], count)
    yield artifacts
    stored = Artifact.objects.filter(state=ArtifactState.ARCHIVED).aggregate(total=Sum("size"))["total"] or 0
    yield GaugeMetricFamily(
        "arkdash_archive_stored_bytes", "Bytes held in archive storage (archived outputs).", value=stored
    )
    if health.next_deadline is not None:
        yield GaugeMetricFamily(
            "arkdash_archive_next_deadline_seconds",
            "Seconds until the earliest output URL not archived yet dies (negative: already dead).",
            value=(health.next_deadline - now).total_seconds(),
        )


def render() -> bytes:
    """The Prometheus text exposition of every ArkDash metric."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ArkDashCollector())
    return generate_latest(registry)
