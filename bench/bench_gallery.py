"""Gallery benchmark: server time of the gallery's first page at 1,000,000 tasks on PostgreSQL.

    .venv/bin/python bench/bench_gallery.py                          # 1,000,000 tasks
    .venv/bin/python bench/bench_gallery.py --tasks 20000 --requests 20
    .venv/bin/python bench/bench_gallery.py --write-docs             # also update docs/benchmarks.md

The mirror is seeded exactly as bench/bench_dashboard.py seeds it (its SQL and helpers are
imported, not copied), plus a Picture row for every succeeded task, as the archive leaves
them. Requests go through Django's whole WSGI stack in this process, signed in as an
operator of the account; the clock runs around the WSGI call only. The pictures themselves
are separate requests the browser makes lazily and are not part of the page's time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make the project importable

from bench import bench_dashboard as dashboard  # noqa: E402
from bench.support import DOCS, write_docs_section  # noqa: E402

SECTION = "## Gallery"
GOAL_MS = 100.0  # p95 of the gallery's first page at 1,000,000 tasks
FIRST_PAGE = "gallery, first page (50 cards)"

SEED_PICTURES = """
INSERT INTO tasks_app_picture (task_id, source_id, source_output, state, reason, storage_key, content_type,
    size, width, height, sha256, created, updated)
SELECT t.id, NULL, CASE WHEN t.kind = '3d' THEN 'model_zip' ELSE 'last_frame' END, 'ready', '',
    'bench/' || t.id || '/picture.webp', 'image/webp', 20000, 480, CASE WHEN t.kind = '3d' THEN 360 ELSE 270 END,
    md5(t.id::text), t.finished_at, t.finished_at
FROM tasks_app_task t
WHERE t.status = 'succeeded'
"""


def run(count: int, requests: int) -> list[dashboard.Result]:
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
        return dashboard.measure(handler, cookie, scenarios, requests=requests)
    finally:
        from django.db import connections

        connections["default"].close()
        dashboard._psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def markdown(count: int, results: list[dashboard.Result], *, requests: int) -> str:
    first = next(r for r in results if r.name == FIRST_PAGE)
    verdict = "met" if first.p95 <= GOAL_MS else "NOT met"
    lines = [
        SECTION,
        "",
        f"`bench/bench_gallery.py`, {count:,} tasks, {requests} timed requests per row, run under `nice`.",
        f"Machine: {dashboard.machine()}. Load average at the end: {dashboard.load_average()}.",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "| page | p50 ms | p95 ms | status | bytes | queries |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *(f"| {r.name} | {r.p50:.1f} | {r.p95:.1f} | {r.status} | {r.bytes_on_wire:,} | {r.queries} |"
          for r in results),
        "",
        f"Goal: the gallery's first page p95 ≤ {GOAL_MS:.0f} ms at 1,000,000 tasks: {verdict} ({first.p95:.1f} ms).",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1_000_000, help="mirror size")
    parser.add_argument("--requests", type=int, default=100, help="timed requests per row")
    parser.add_argument("--write-docs", action="store_true", help=f"replace the section in {DOCS}")
    args = parser.parse_args()
    results = run(args.tasks, args.requests)
    text = markdown(args.tasks, results, requests=args.requests)
    print(text)
    if args.write_docs:
        write_docs_section(SECTION, text)
    first = next(r for r in results if r.name == FIRST_PAGE)
    return 0 if first.status == 200 else 1


if __name__ == "__main__":
    raise SystemExit(main())
