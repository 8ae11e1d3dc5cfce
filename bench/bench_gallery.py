"""Gallery benchmark: server time of the gallery's first page at 1,000,000 tasks on PostgreSQL.

    .venv/bin/python bench/bench_gallery.py                          # 1,000,000 tasks
    .venv/bin/python bench/bench_gallery.py --tasks 20000 --requests 20
    .venv/bin/python bench/bench_gallery.py --write-docs             # also update docs/benchmarks.md

The mirror is seeded exactly as bench/bench_dashboard.py seeds it (its SQL and helpers are
imported, not copied), plus a Picture row for every succeeded task, as the archive leaves
them. Requests go through Django's whole WSGI stack in this process, signed in as an
operator of the account; the clock runs around the WSGI call only. The pictures themselves
are separate requests the browser makes lazily and are not part of the page's time.

A card comes from Django's fragment cache while nothing it shows has moved (as the list's
rows do), so the main table measures pages whose cards are stored. A second table splits
the first page's time into CPU time of this process and time spent in SQL, with its cards
stored and with every card rendered (the stored ones deleted untimed before each request,
as when every task on the page has changed or the 30-second bucket of "5 minutes ago" has
turned), beside the list's first page, interleaved round-robin in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make the project importable

from bench import bench_dashboard as dashboard  # noqa: E402
from bench.support import DOCS, write_docs_section  # noqa: E402

SECTION = "## Gallery"
GOAL_MS, GOAL_TASKS = 100.0, 1_000_000  # p95 of the gallery's first page at that many tasks
FIRST_PAGE = "gallery, first page (50 cards)"
READING = """\
Reading it. The gallery asks the database what the list does, less the list's poll and banner
queries, plus two: the page of tasks (a backward index scan of `ark_created_at` that stops
after the page and one row more), one count per status that stops at 10,001 index entries,
then the pictures and archived videos of the page's tasks by their `task_id` indexes
(EXPLAIN ANALYZE at 100,000 and 1,000,000 tasks: index scans only; the counts of the large
statuses are the dearest queries). What the gallery spent beyond the list was template work:
every request rendered all 50 cards (two date formats, a "time since", one to three URL
reversals and some translation each), where the list stores its rows. A card now comes from
Django's fragment cache, as a list row does, under the task's version (every write moves
it), its picture and video, language, zone and the 30-second bucket of "5 minutes ago". The
"every card rendered" row is what each request cost before; it is still what the first view
costs once every task on the page has changed, or in a new 30-second bucket.""".splitlines()
CARD_KEYS = ".gallery-card."  # in the key Django's {% cache %} tag stores a card under

SEED_PICTURES = """
INSERT INTO tasks_app_picture (task_id, source_id, source_output, state, reason, storage_key, content_type,
    size, width, height, sha256, created, updated)
SELECT t.id, NULL, CASE WHEN t.kind = '3d' THEN 'model_zip' ELSE 'last_frame' END, 'ready', '',
    'bench/' || t.id || '/picture.webp', 'image/webp', 20000, 480, CASE WHEN t.kind = '3d' THEN 360 ELSE 270 END,
    md5(t.id::text), t.finished_at, t.finished_at
FROM tasks_app_task t
WHERE t.status = 'succeeded'
"""


@dataclass
class Split:
    """One page's requests: wall time, this process's CPU time and the time spent in SQL."""

    name: str
    wall_ms: list[float]
    cpu_ms: list[float]
    sql_ms: list[float]

    @staticmethod
    def p95(times: list[float]) -> float:
        return statistics.quantiles(times, n=20, method="inclusive")[18]


def forget_cards() -> None:
    """Delete the stored gallery cards, and nothing else of the cache (the list's rows stay)."""
    from django.core.cache import cache

    # LocMemCache has no delete-by-pattern: its own key list is read instead.
    cache.delete_many([key.split(":", 2)[2] for key in list(cache._cache) if CARD_KEYS in key])


def split_times(handler, cookie: str, *, requests: int) -> list[Split]:
    """CPU and SQL time of the first page, cards stored and every card rendered, and the list's."""
    from django.db import connection

    pages = {
        "gallery, first page, cards stored": ("/gallery/", None),
        "gallery, first page, every card rendered": ("/gallery/", forget_cards),
        "list, no filter, rows stored": ("/", None),
    }
    splits = [Split(name, [], [], []) for name in pages]
    in_sql: list[float] = []

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            in_sql.append(time.perf_counter() - started)

    for path, _ in pages.values():
        for _ in range(5):
            dashboard.wsgi_get(handler, path, cookie)
    for _ in range(requests):
        for split, (path, before) in zip(splits, pages.values(), strict=True):
            if before:
                before()
            in_sql.clear()
            cpu = time.process_time()
            with connection.execute_wrapper(timed):
                wall = dashboard.wsgi_get(handler, path, cookie)[2]
            split.cpu_ms.append((time.process_time() - cpu) * 1000)
            split.wall_ms.append(wall)
            split.sql_ms.append(sum(in_sql) * 1000)
    return splits


def run(count: int, requests: int) -> tuple[list[dashboard.Result], list[Split]]:
    """One database of `count` tasks with their pictures, the gallery measured, the database dropped."""
    database = f"arkdash_bench_gallery_{os.getpid()}_{count}"
    dashboard._psql(f"CREATE DATABASE {database}")
    try:
        dashboard.setup_django(tempfile.mkdtemp(prefix="arkdash-bench-"), database)
        from django.conf import settings
        from django.core.handlers.wsgi import WSGIHandler
        from django.core.management import call_command
        from django.db import connection

        settings.ROOT_URLCONF = dashboard.__name__  # the app's URLs and the yardstick view
        call_command("migrate", verbosity=0)
        started = time.monotonic()
        data = dashboard.seed(count)
        with connection.cursor() as cursor:
            cursor.execute(SEED_PICTURES)
            cursor.execute("VACUUM ANALYZE tasks_app_picture")
        print(f"seeded {count:,} tasks and their pictures in {time.monotonic() - started:.0f} s", flush=True)
        cookie = dashboard.sign_in_cookie()
        handler = WSGIHandler()
        scenarios = {
            "trivial signed-in view (yardstick)": "/bench/trivial/",
            FIRST_PAGE: "/gallery/",
            "gallery, 3D only": "/gallery/?kind=3d",
            "gallery, succeeded, 200 cards": "/gallery/?status=succeeded&page_size=200",
            "gallery, 1,000th page by cursor (or the last page)": f"/gallery/?after={data['deep_cursor']}",
            "list, no filter (for comparison)": "/",
        }
        results = dashboard.measure(handler, cookie, scenarios, requests=requests)
        return results, split_times(handler, cookie, requests=requests)
    finally:
        from django.db import connections

        connections["default"].close()
        dashboard._psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def markdown(count: int, results: list[dashboard.Result], splits: list[Split], *, requests: int) -> str:
    first = next(r for r in results if r.name == FIRST_PAGE)
    trivial = results[0].p95
    if count == GOAL_TASKS:
        verdict = f"**{'met' if first.p95 <= GOAL_MS else 'not met'}** ({first.p95:.1f} ms)"
    else:
        verdict = f"not measured here (this run: {count:,} tasks, {first.p95:.1f} ms)"
    lines = [
        SECTION,
        "",
        f"`bench/bench_gallery.py --tasks {count} --requests {requests}`, run under `nice`.",
        f"Machine: {dashboard.machine()}. Load average (1, 5, 15 min) at the end: {dashboard.load_average()}.",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. The machine is shared and p95 moves",
        "with it: compare the ratios within one run, not milliseconds between runs.",
        "",
        "| page | p50 ms | p95 ms | p95 vs trivial | status | bytes | queries |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {r.name} | {r.p50:.1f} | {r.p95:.1f} | {r.p95 / trivial:.1f}× | {r.status} | {r.bytes_on_wire:,} "
            f"| {r.queries} |"
            for r in results
        ),
        "",
        f"Goal: the gallery's first page p95 ≤ {GOAL_MS:.0f} ms at {GOAL_TASKS:,} tasks: {verdict}.",
        "",
        "Where the first page's time goes (CPU time of this process and time waiting for SQL, medians;",
        f"{requests} more requests per row, interleaved):",
        "",
        "| page | wall p50 ms | wall p95 ms | CPU p50 ms | SQL p50 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {s.name} | {statistics.median(s.wall_ms):.1f} | {Split.p95(s.wall_ms):.1f} | "
            f"{statistics.median(s.cpu_ms):.1f} | {statistics.median(s.sql_ms):.1f} |"
            for s in splits
        ),
        "",
        *READING,
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=1_000_000, help="mirror size")
    parser.add_argument("--requests", type=int, default=100, help="timed requests per row")
    parser.add_argument("--write-docs", action="store_true", help=f"replace the section in {DOCS}")
    args = parser.parse_args()
    results, splits = run(args.tasks, args.requests)
    text = markdown(args.tasks, results, splits, requests=args.requests)
    print(text)
    if args.write_docs:
        write_docs_section(SECTION, text)
    first = next(r for r in results if r.name == FIRST_PAGE)
    return 0 if first.status == 200 else 1


if __name__ == "__main__":
    raise SystemExit(main())
