"""Insights benchmark: server time of the insights page at 1,000,000 tasks on PostgreSQL.

    nice .venv/bin/python bench/bench_insights.py                    # 1,000,000 tasks
    nice .venv/bin/python bench/bench_insights.py --tasks 100000 --requests 20
    nice .venv/bin/python bench/bench_insights.py --write-docs       # also update docs/benchmarks.md

The mirror is bench_dashboard's (its SQL seeding, 180 days, five models, an artifact per
output of every succeeded task), plus what the insights read beyond the list: each archived
output's archive time and a price for two models. Then the insights rollup is built from
scratch (`manage.py insights_rollup --rebuild`, timed), and one refresh after a sync-sized
change is timed too. Requests go through Django's whole WSGI stack in this process, signed in
as an operator of the account (not a superuser), as in bench_dashboard; nothing of the page
is cached: every request computes its figures (from the rollup and the partial hours' rows).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make the project importable

from bench.bench_dashboard import (  # noqa: E402
    Result,
    _psql,
    load_average,
    machine,
    seed,
    setup_django,
    sign_in_cookie,
    wsgi_get,
)
from bench.support import write_docs_section  # noqa: E402

SECTION = "## Insights"
GOAL_MS = 300.0  # p95 of the 30-day page
MONTH = "insights, last 30 days, figures computed for the request"
SCENARIOS = {
    "trivial signed-in view (yardstick)": "/bench/trivial/",
    MONTH: "/insights/?range=30d",
    "insights, last 7 days, figures computed for the request": "/insights/?range=7d",
    "insights, last 24 hours, figures computed for the request": "/insights/?range=24h",
    "insights, custom 30 days in Asia/Kolkata (+5:30: an hour a day from raw rows)": "/insights/?range=custom&start={start}&end={end}",
}
KOLKATA = "Asia/Kolkata"
# Tasks a refresh finds changed in the timed incremental refresh (about a busy sync cycle's).
TOUCHED = 2000
# What the insights add to bench_dashboard's rows: the archive time of each archived output
# (when the copy finished, a little after the task did) and two models' prices.
SEED_INSIGHTS = """
UPDATE tasks_app_artifact SET archived_at = created + interval '20 seconds' WHERE state = 'archived';
INSERT INTO tasks_app_modelprice (model, cny_per_million_tokens) VALUES
    ('doubao-seedance-1-0-pro-250528', 15), ('doubao-seed3d-1-0-250928', 20);
VACUUM ANALYZE tasks_app_artifact;
"""


@dataclass
class Rollup:
    rebuild_s: float
    refresh_s: float
    refresh_hours: int
    rows: int


def run(count: int, requests: int) -> tuple[list[Result], Rollup]:
    import os

    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection, connections

    database = f"arkdash_bench_insights_{os.getpid()}"
    _psql(f"CREATE DATABASE {database}")
    try:
        setup_django(tempfile.mkdtemp(prefix="arkdash-bench-"), database)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        started = time.monotonic()
        seed(count)
        with connection.cursor() as cursor:
            for statement in filter(str.strip, SEED_INSIGHTS.split(";")):
                cursor.execute(statement)
        print(f"seeded {count:,} tasks in {time.monotonic() - started:.0f} s", flush=True)
        rollup = build_rollup()
        print(f"rollup rebuilt in {rollup.rebuild_s:.1f} s ({rollup.rows:,} rows); a refresh after "
              f"{TOUCHED:,} changed tasks in {rollup.refresh_s:.2f} s", flush=True)
        cookie = sign_in_cookie()
        return measure(WSGIHandler(), cookie, requests=requests), rollup
    finally:
        connections["default"].close()
        _psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def build_rollup() -> Rollup:
    """The full rebuild a deploy on an existing mirror runs, then one refresh after a sync's
    worth of changes (TOUCHED tasks of the last month changing status)."""
    from django.db import connection
    from django.utils import timezone

    from tasks_app.models import InsightsHourCount, InsightsHourTime, Task
    from tasks_app.services.insights_rollup import rollup_rebuild, rollup_refresh

    started = time.monotonic()
    rollup_rebuild()
    rebuild_s = time.monotonic() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE tasks_app_insightshourcount")
        cursor.execute("VACUUM ANALYZE tasks_app_insightshourtime")
        cursor.execute("VACUUM ANALYZE tasks_app_insightshourarchived")
    recent = Task.objects.filter(ark_created_at__gte=timezone.now() - timedelta(days=30)).order_by("-ark_created_at")
    touched = list(recent.values_list("pk", flat=True)[:TOUCHED])
    # The refresh also reads back what changed in its overlap: the rebuild's own minutes.
    Task.objects.filter(pk__in=touched).update(status="failed", changed_at=timezone.now())
    started = time.monotonic()
    report = rollup_refresh()
    refresh_s = time.monotonic() - started
    return Rollup(rebuild_s, refresh_s, report.hours, InsightsHourCount.objects.count() + InsightsHourTime.objects.count())


def measure(handler, cookie: str, *, requests: int) -> list[Result]:
    """Requests interleaved round-robin (load on the shared machine falls on all alike).
    Nothing is cached between requests: each computes its figures."""
    from django.db import connection
    from django.utils import timezone

    today = timezone.now().astimezone(ZoneInfo(KOLKATA)).date()
    dates = {"start": today - timedelta(days=29), "end": today}
    paths = {name: path.format(**dates) for name, path in SCENARIOS.items()}

    def get(name: str) -> tuple:
        zone = KOLKATA if "Kolkata" in name else None
        return wsgi_get(handler, paths[name], cookie + (f"; arkdash_tz={zone}" if zone else ""))

    results = []
    for name in SCENARIOS:
        for _ in range(3):  # warm the templates, the connection, the database's cache
            get(name)
        executed: list[str] = []

        def count(execute, sql, params, many, context, executed=executed):
            executed.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            status, size, _, _ = get(name)
        results.append(Result(name, [], status, size, len(executed)))
    for _ in range(requests):
        for name, result in zip(SCENARIOS, results, strict=True):
            result.times_ms.append(get(name)[2])
    return results


def markdown(count: int, results: list[Result], rollup: Rollup, *, requests: int) -> str:
    month = next(r for r in results if r.name == MONTH)
    verdict = "met" if month.p95 <= GOAL_MS and month.status == 200 else "not met"
    lines = [
        SECTION,
        "",
        f"`bench/bench_insights.py --tasks {count} --requests {requests}`, {datetime.now(UTC):%Y-%m-%d}. "
        f"Machine: {machine()}.",
        "",
        f"{count:,} tasks in PostgreSQL, seeded as in the Dashboard section (180 days, five models, an",
        "artifact row per output of every succeeded task), each archived output with its archive time.",
        "The insights rollup (docs/insights.md) is then built from scratch, as a deploy on an existing",
        "mirror does, and refreshed once after a sync-sized change.",
        f"Server time of {requests} signed-in GETs per row through Django's WSGI handler after a warm-up,",
        "interleaved round-robin. Nothing is cached: every request computes its figures, from the rollup",
        "for the UTC hours whole in one bucket and from the raw rows for the rest: the partial hours at",
        "the range's ends, and in a zone with a half-hour offset (the Kolkata row) the hour each local day",
        "starts in. The bench user is an operator of the only account.",
        "",
        "| request | p50 | p95 | queries | bytes | status |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        lines.append(f"| {result.name} | {result.p50:.1f} ms | {result.p95:.1f} ms | {result.queries} "
                     f"| {result.bytes_on_wire:,} | {result.status} |")
    lines += [
        "",
        f"- Goal, the 30-day page p95 ≤ {GOAL_MS:.0f} ms with its figures computed: **{verdict}** "
        f"(p95 {month.p95:.1f} ms).",
        f"- Rollup: a full rebuild of {count:,} tasks took {rollup.rebuild_s:.1f} s ({rollup.rows:,} count and "
        f"time-bin rows); a refresh after {TOUCHED:,} tasks changed ({rollup.refresh_hours:,} hours recomputed) "
        f"took {rollup.refresh_s:.2f} s.",
        f"- Load average (1, 5, 15 min) at the end of the run: {load_average()}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1_000_000, help="mirror size")
    parser.add_argument("--requests", type=int, default=40, help="timed requests per row")
    parser.add_argument("--write-docs", action="store_true", help="replace the section in docs/benchmarks.md")
    args = parser.parse_args()
    results, rollup = run(args.tasks, args.requests)
    text = markdown(args.tasks, results, rollup, requests=args.requests)
    print(text)
    if args.write_docs:
        write_docs_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
