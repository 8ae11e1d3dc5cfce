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
MONTH = "insights, last 30 days, figures computed in the last minute (cache hit)"
MONTH_COLD = "insights, last 30 days, figures computed for the request"
# (path, whether the range's figures are first removed from the cache, outside the timed call)
SCENARIOS = {
    "trivial signed-in view (yardstick)": ("/bench/trivial/", False),
    MONTH: ("/insights/?range=30d", False),
    MONTH_COLD: ("/insights/?range=30d", True),
    "insights, last 7 days, figures computed for the request": ("/insights/?range=7d", True),
    "insights, last 24 hours, figures computed for the request": ("/insights/?range=24h", True),
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
    """Requests interleaved round-robin (load on the shared machine falls on all alike).

    A computed row first removes its range's figures from the cache (outside the timed call):
    what the first view of a range in a minute costs. The cache-hit row first makes an
    untimed request, so its figures are there even when the minute has just turned.
    """
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.db import connection
    from django.http import QueryDict

    from tasks_app.insights import InsightsRangeForm, figures_cache_key
    from tasks_app.selectors import access_for

    access = access_for(get_user_model().objects.get(username="bench"))

    def forget(path: str) -> None:
        form = InsightsRangeForm.from_query(QueryDict(path.partition("?")[2]))
        form.is_valid()
        cache.delete(figures_cache_key(access=access, period=form.chosen_range()))

    def get(name: str) -> tuple:
        path, computed = SCENARIOS[name]
        if computed:
            forget(path)
        elif name == MONTH:
            wsgi_get(handler, path, cookie)
        return wsgi_get(handler, path, cookie)

    results = []
    for name, (path, _) in SCENARIOS.items():
        for _ in range(3):  # warm the templates, the connection, the database's cache
            wsgi_get(handler, path, cookie)
        executed: list[str] = []

        def count(execute, sql, params, many, context, executed=executed):
            executed.append(sql)
            return execute(sql, params, many, context)

        if SCENARIOS[name][1]:
            forget(path)
        with connection.execute_wrapper(count):
            status, size, _, _ = wsgi_get(handler, path, cookie)
        results.append(Result(name, [], status, size, len(executed)))
    for _ in range(requests):
        for name, result in zip(SCENARIOS, results, strict=True):
            result.times_ms.append(get(name)[2])
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
        "(prices and the archive lag are read every time): the first view of a range in a minute computes",
        "them, the others find them. The bench user is an operator of the only account.",
        "",
        "| request | p50 | p95 | queries | bytes | status |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        lines.append(f"| {result.name} | {result.p50:.1f} ms | {result.p95:.1f} ms | {result.queries} "
                     f"| {result.bytes_on_wire:,} | {result.status} |")
    lines += [
        "",
        f"- Goal, the 30-day page p95 ≤ {GOAL_MS:.0f} ms: figures from the cache **{verdict}** ({month.p95:.1f} ms); "
        f"the first view of the range in a minute, figures computed, **"
        f"{'met' if cold.p95 <= GOAL_MS else 'not met'}** (p95 {cold.p95:.1f} ms).",
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
