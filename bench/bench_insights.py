"""Insights benchmark: server time of the insights page at 1,000,000 tasks on PostgreSQL.

    nice .venv/bin/python bench/bench_insights.py                    # 1,000,000 tasks
    nice .venv/bin/python bench/bench_insights.py --tasks 100000 --requests 20
    nice .venv/bin/python bench/bench_insights.py --write-docs       # also update docs/benchmarks.md

The mirror is bench_dashboard's (its SQL seeding, 180 days, five models, an artifact per
output of every succeeded task), plus what the insights read beyond the list: each archived
output's archive time and a price for two models. Requests go through Django's whole WSGI
stack in this process, signed in as an operator of the account (not a superuser), as in
bench_dashboard; nothing of the page is cached.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

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
MONTH = "insights, last 30 days"
MONTH_COLD = "insights, last 30 days, figures computed (cache emptied before each request)"
SCENARIOS = {
    "trivial signed-in view (yardstick)": "/bench/trivial/",
    MONTH: "/insights/?range=30d",
    MONTH_COLD: "/insights/?range=30d",
    "insights, last 7 days": "/insights/?range=7d",
    "insights, last 24 hours": "/insights/?range=24h",
}
# What the insights add to bench_dashboard's rows: the archive time of each archived output
# (when the copy finished, a little after the task did) and two models' prices.
SEED_INSIGHTS = """
UPDATE tasks_app_artifact SET archived_at = created + interval '20 seconds' WHERE state = 'archived';
INSERT INTO tasks_app_modelprice (model, cny_per_million_tokens) VALUES
    ('doubao-seedance-1-0-pro-250528', 15), ('doubao-seed3d-1-0-250928', 20);
VACUUM ANALYZE tasks_app_artifact;
"""


def run(count: int, requests: int) -> list[Result]:
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
        cookie = sign_in_cookie()
        return measure(WSGIHandler(), cookie, requests=requests)
    finally:
        connections["default"].close()
        _psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def measure(handler, cookie: str, *, requests: int) -> list[Result]:
    """Requests interleaved round-robin (load on the shared machine falls on all alike). The
    cold row empties Django's cache before each request, outside the timed call: what the
    first view of a range in a minute costs."""
    from django.core.cache import cache
    from django.db import connection

    results = []
    for name, path in SCENARIOS.items():
        for _ in range(3):  # warm the templates, the connection, the database's cache
            wsgi_get(handler, path, cookie)
        executed: list[str] = []

        def count(execute, sql, params, many, context, executed=executed):
            executed.append(sql)
            return execute(sql, params, many, context)

        if name == MONTH_COLD:
            cache.clear()
        with connection.execute_wrapper(count):
            status, size, _, _ = wsgi_get(handler, path, cookie)
        results.append(Result(name, [], status, size, len(executed)))
    for _ in range(requests):
        for (name, path), result in zip(SCENARIOS.items(), results, strict=True):
            if name == MONTH_COLD:
                cache.clear()
            result.times_ms.append(wsgi_get(handler, path, cookie)[2])
    return results


def markdown(count: int, results: list[Result], *, requests: int) -> str:
    month = next(r for r in results if r.name == MONTH)
    cold = next(r for r in results if r.name == MONTH_COLD)
    verdict = "met" if month.p95 <= GOAL_MS and month.status == 200 else "not met"
    lines = [
        SECTION,
        "",
        f"`bench/bench_insights.py --tasks {count} --requests {requests}`, {datetime.now(UTC):%Y-%m-%d}. "
        f"Machine: {machine()}.",
        "",
        f"{count:,} tasks in PostgreSQL, seeded as in the Dashboard section (180 days, five models, an",
        "artifact row per output of every succeeded task), each archived output with its archive time.",
        f"Server time of {requests} signed-in GETs per row through Django's WSGI handler after a warm-up,",
        "interleaved round-robin. The page keeps each range's figures for a minute in Django's cache",
        "(prices and the archive lag are read every time); the cold row empties the cache first.",
        "",
        "| request | p50 | p95 | queries | bytes | status |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        lines.append(f"| {result.name} | {result.p50:.1f} ms | {result.p95:.1f} ms | {result.queries} "
                     f"| {result.bytes_on_wire:,} | {result.status} |")
    lines += [
        "",
        f"- Goal, the 30-day page p95 ≤ {GOAL_MS:.0f} ms: **{verdict}** ({month.p95:.1f} ms). The first view "
        f"of a range in a minute, figures computed: p95 {cold.p95:.1f} ms"
        f" ({'within' if cold.p95 <= GOAL_MS else 'over'} the goal).",
        f"- Load average (1, 5, 15 min) at the end of the run: {load_average()}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1_000_000, help="mirror size")
    parser.add_argument("--requests", type=int, default=40, help="timed requests per row")
    parser.add_argument("--write-docs", action="store_true", help="replace the section in docs/benchmarks.md")
    args = parser.parse_args()
    text = markdown(args.tasks, run(args.tasks, args.requests), requests=args.requests)
    print(text)
    if args.write_docs:
        write_docs_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
