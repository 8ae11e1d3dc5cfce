"""Dashboard benchmark: server time of the task list and its live poll at 100k and 1M tasks.

    .venv/bin/python bench/bench_dashboard.py                       # 100,000 and 1,000,000 tasks
    .venv/bin/python bench/bench_dashboard.py --tasks 20000 --requests 50
    .venv/bin/python bench/bench_dashboard.py --write-docs          # also update docs/benchmarks.md

For each size a fresh PostgreSQL database (dropped afterwards) gets that many mirror rows,
inserted by one INSERT … SELECT over generate_series, oldest first: 180 days of history,
300 tasks still queued or running, a fifth 3D, five models, an Artifact row per output of
every succeeded task. Requests then go through Django's whole WSGI stack in this process
(session, auth, middleware, view, template), signed in as an operator of the account (not a
superuser), with a persistent database connection as in production; the clock runs
around the WSGI call only. Nothing of the list is cached, so every view costs what the
first view after a change does. A trivial signed-in view measured in the same run is the
yardstick.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make the project importable

from bench.support import DOCS, machine_summary, postgres_version, write_docs_section  # noqa: E402

POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
SECTION = "## Dashboard"
ACTIVE = 300
GOALS_MS = {100_000: 50.0, 1_000_000: 100.0}  # p95 of each list view, per size
IDLE_POLL_GOAL_MS, IDLE_POLL_GOAL_BYTES = 10.0, 1024


@dataclass
class Result:
    name: str
    times_ms: list[float]
    status: int
    bytes_on_wire: int
    queries: int

    @property
    def p50(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.times_ms, n=20, method="inclusive")[18]


def _psql(sql: str, database: str = "postgres") -> None:
    import psycopg

    with psycopg.connect(f"{POSTGRES}/{database}", autocommit=True) as conn:
        conn.execute(sql)


def setup_django(data_dir: str, database: str) -> None:
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "arkdash.settings", "DATABASE_URL": f"{POSTGRES}/{database}",
        "ARKDASH_DATA_DIR": data_dir, "ARK_API_KEY": "", "REDIS_URL": "", "ARKDASH_LOG_LEVEL": "WARNING",
        "ARKDASH_DEBUG": "false",
    })  # fmt: skip
    import django
    from django.conf import settings

    django.setup()
    # This module doubles as the URLconf: the app's URLs plus the trivial yardstick view.
    settings.ROOT_URLCONF = __name__


def trivial(request):
    """The yardstick: signed-in, same middleware, no work."""
    from django.http import HttpResponse

    return HttpResponse("ok")


def __getattr__(name: str):  # urlpatterns is built once Django is set up
    if name == "urlpatterns":
        from django.contrib.auth.decorators import login_required
        from django.urls import include, path

        return [path("bench/trivial/", login_required(trivial)), path("", include("arkdash.urls"))]
    raise AttributeError(name)


# The rows, in SQL: one statement makes a million in well under a minute (bulk_create
# would spend most of the run building Python objects).
SEED_TASKS = """
INSERT INTO tasks_app_task (
    account_id, ark_id, kind, model, status, error_code, error_message, service_tier, ark_created_at,
    ark_updated_at, first_seen_at, last_synced_at, started_at, finished_at, changed_at, resolution, ratio,
    subdivision_level, file_format, completion_tokens, total_tokens, video_url, last_frame_url, file_url,
    archive_state, archive_handoff_pending, raw)
SELECT %(account)s, 'cgt-' || to_char(created + interval '8 hours', 'YYYYMMDDHH24MISS') || '-' || lpad(i::text, 7, '0'),
    kind, CASE WHEN kind = '3d' THEN 'doubao-seed3d-1-0-250928'
               ELSE (ARRAY['doubao-seedance-1-0-pro-250528', 'doubao-seedance-1-0-lite-t2v-250428',
                           'doubao-seedance-1-0-lite-i2v-250428', 'doubao-seedance-1-0-pro-fast-251015'])[i %% 4 + 1] END,
    status, CASE WHEN status = 'failed' THEN 'InternalServiceError' ELSE '' END, '', 'default', created,
    created + interval '5 minutes', created, now(), CASE WHEN status = 'queued' THEN NULL ELSE created + interval '3 seconds' END,
    CASE WHEN status IN ('queued', 'running') THEN NULL ELSE created + interval '5 minutes' END,
    created, '720p', '16:9', '', '', 108900, 108900, '', '', '',
    CASE WHEN status = 'succeeded' THEN 'archived' ELSE 'none' END, false, '{}'::jsonb
FROM (
    SELECT i, created, kind,
        CASE WHEN i > %(count)s - %(active)s THEN (CASE WHEN i %% 5 < 2 THEN 'queued' ELSE 'running' END)
             WHEN bucket < 79 THEN 'succeeded' WHEN bucket < 92 THEN 'failed'
             WHEN bucket < 96 AND kind = 'video' THEN 'expired' WHEN bucket < 96 THEN 'failed'
             ELSE 'cancelled' END AS status
    FROM (
        SELECT i, now() - (%(count)s - i) * (interval '180 days' / %(count)s) - interval '1 minute' AS created,
               CASE WHEN i %% 5 = 0 THEN '3d' ELSE 'video' END AS kind, (i::bigint * 7919) %% 100 AS bucket
        FROM generate_series(1, %(count)s) AS i
    ) AS base
) AS planned
ORDER BY i
"""
SEED_ARTIFACTS = """
INSERT INTO tasks_app_artifact (task_id, output, source_url, deadline, state, attempts, last_error, claim_token,
    bytes_copied, size, sha256, storage_key, filename, content_type, created, removed_reason)
SELECT t.id, o.output, '', t.finished_at + interval '24 hours', 'archived', 1, '', '', 4000000, 4000000, '',
    'bench/' || t.id || '/' || o.output, '', '', t.finished_at, ''
FROM tasks_app_task t
JOIN (VALUES ('video', 'video'), ('video', 'last_frame'), ('3d', 'model_zip')) AS o(kind, output) ON o.kind = t.kind
WHERE t.status = 'succeeded'
"""


def seed(count: int) -> dict:
    """`count` tasks in one account; returns what the requests use."""
    from django.db import connection

    from tasks_app.filters import SORTS, Cursor
    from tasks_app.models import Account, Task

    account = Account(name="bench", base_url="https://ark.cn-beijing.volces.com/api/v3",
                      last_sync_ok_at=datetime.now(UTC))  # fmt: skip
    account.set_api_key("bench-key")
    account.save()
    with connection.cursor() as cursor:
        cursor.execute(SEED_TASKS, {"account": account.pk, "count": count, "active": ACTIVE})
        cursor.execute(SEED_ARTIFACTS)
        cursor.execute("VACUUM ANALYZE tasks_app_task")
        cursor.execute("VACUUM ANALYZE tasks_app_artifact")
    newest_first = Task.objects.order_by("-ark_created_at", "-id")
    # The last row of page 999 (50 rows a page): its cursor opens the 1,000th page (or the
    # deepest page a small mirror has).
    deep = newest_first.only("id", "ark_created_at")[min(999 * 50, count - 50) - 1]
    ids = list(Task.objects.order_by("?").values_list("ark_id", flat=True)[:20])
    return {"deep_cursor": str(Cursor.of(deep, SORTS["-created"])), "ids": ids}


def sign_in_cookie() -> str:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from tasks_app.models import Account, Membership, MembershipRole

    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    Membership.objects.create(user=user, account=Account.objects.get(), role=MembershipRole.OPERATOR)
    client = Client()
    client.force_login(user)
    client.get("/")  # the CSRF cookie too, as a browser holds it after its first page
    return "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items())


def wsgi_get(handler, path: str, cookie: str, headers: dict[str, str] | None = None) -> tuple[int, int, float, bytes]:
    """One GET through the WSGI handler: (status, bytes on the wire, milliseconds, body)."""
    route, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": route, "QUERY_STRING": query, "SERVER_NAME": "testserver",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "testserver", "HTTP_COOKIE": cookie,
        "HTTP_HX_REQUEST": "true" if route == "/tasks/rows/" else "", "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }  # fmt: skip
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    captured: dict = {}

    def start_response(status, response_headers, exc_info=None):
        captured["status"], captured["headers"] = status, response_headers

    started = time.perf_counter()
    response = handler(environ, start_response)
    body = b"".join(response)
    if hasattr(response, "close"):
        response.close()
    elapsed = (time.perf_counter() - started) * 1000
    head = f"HTTP/1.1 {captured['status']}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in captured["headers"]) + "\r\n"
    return int(captured["status"].split()[0]), len(head.encode()) + len(body), elapsed, body


def idle_poll_path(handler, cookie: str) -> str:
    """The poll an open first page sends when nothing changed: its live rows and state."""
    import html
    import re

    from tasks_app.models import Task

    body = wsgi_get(handler, "/", cookie)[3].decode()
    poller = re.search(r'<div id="live-poller"[^>]*>', body, re.S)[0]
    state = {name: re.search(rf'data-{name}="([^"]*)"', poller)[1] for name in ("seen", "newest")}
    counts = re.search(r'id="status-chips"[^>]*data-counts="([^"]*)"', body)[1]
    live = Task.objects.filter(pk__in=[int(pk) for pk in re.findall(r'<tr id="task-(\d+)"[^>]*data-live', body)])
    rows = ",".join(f"{task.pk}.{task.version}" for task in live)
    path = html.unescape(re.search(r'hx-get="([^"]*)"', poller)[1])
    joiner = "&" if "?" in path else "?"
    return f"{path}{joiner}rows={rows}&health=ok&seen={state['seen']}&newest={state['newest']}&counts={counts}&slide=1"


COLD = "list, no filter, no row in the cache (every row rendered)"


def measure(handler, cookie: str, scenarios: dict[str, str], *, requests: int) -> list[Result]:
    """Requests interleaved round-robin, so a burst of load on the shared machine hits
    every scenario alike instead of skewing one of them."""
    from django.db import connection

    fresh = iter(range(10**9))

    def get(name: str, path: str) -> tuple:
        if name == COLD:  # as after a restart, or once every row of the page has changed:
            # a page address no row was stored for (the rows' key holds it), the cache intact
            path = f"{path}&fresh={next(fresh)}"
        return wsgi_get(handler, path, cookie)

    results = []
    for name, path in scenarios.items():
        for _ in range(5):  # warm the templates, the connection, the database's cache
            get(name, path)
        executed: list[str] = []

        def count(execute, sql, params, many, context, executed=executed):
            executed.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            status, size, _, _ = get(name, path)
        results.append(Result(name, [], status, size, len(executed)))
    for _ in range(requests):
        for (name, path), result in zip(scenarios.items(), results, strict=True):
            result.times_ms.append(get(name, path)[2])
    return results


def run_size(count: int, requests: int) -> list[Result]:
    """One database of `count` tasks, every scenario measured, the database dropped."""
    import django
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connections

    database = f"arkdash_bench_dashboard_{os.getpid()}_{count}"
    _psql(f"CREATE DATABASE {database}")
    try:
        if not django.apps.apps.ready:
            setup_django(tempfile.mkdtemp(prefix="arkdash-bench-"), database)
        else:  # the second size: the same process, another database
            connections["default"].close()
            connections["default"].settings_dict["NAME"] = database
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        started = time.monotonic()
        data = seed(count)
        print(f"seeded {count:,} tasks in {time.monotonic() - started:.0f} s", flush=True)
        cookie = sign_in_cookie()
        handler = WSGIHandler()
        scenarios = {
            "trivial signed-in view (yardstick)": "/bench/trivial/",
            "list, no filter": "/",
            COLD: "/?page_size=50",
            "list, 2 statuses + kind": "/?status=queued&status=failed&kind=video",
            "list, model + last 7 days": "/?model=doubao-seed3d-1-0-250928&created_after="
            + (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M"),
            "list, 20 pasted ids": "/?ids=" + "%2C".join(data["ids"]),
            "list, 1,000th page by cursor (or the last page)": f"/?after={data['deep_cursor']}",
            "idle poll (first page, 50 rows, live rows on it)": idle_poll_path(handler, cookie),
        }
        return measure(handler, cookie, scenarios, requests=requests)
    finally:
        connections["default"].close()
        _psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def machine() -> str:
    import django

    return f"{machine_summary()}, Django {django.get_version()}, PostgreSQL {postgres_version(POSTGRES)} on loopback"


def markdown(by_size: dict[int, list[Result]], *, requests: int) -> str:
    lines = [
        SECTION,
        "",
        f"`bench/bench_dashboard.py --requests {requests}`, {datetime.now(UTC):%Y-%m-%d}. Machine: {machine()}.",
        "",
        f"Tasks in PostgreSQL (180 days, {ACTIVE} queued or running, a fifth 3D, five models, an artifact",
        f"row per output of every succeeded task). Server time of {requests} signed-in GETs per row",
        "through Django's WSGI handler in one process (middleware, session, auth, view, template;",
        "persistent database connection) after a warm-up, the rows interleaved round-robin so load on",
        "the machine falls on all of them alike. Nothing of the list is stored between requests: each",
        "view is a first view after a change. Bytes are the whole answer: status line, headers, body.",
        "",
    ]
    for size, results in by_size.items():
        trivial = results[0].p95
        lines += [
            f"### {size:,} tasks",
            "",
            "| request | p50 | p95 | p95 vs trivial | queries | bytes | status |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for result in results:
            lines.append(
                f"| {result.name} | {result.p50:.1f} ms | {result.p95:.1f} ms | {result.p95 / trivial:.1f}× "
                f"| {result.queries} | {result.bytes_on_wire:,} | {result.status} |"
            )
        lines += ["", *goals(size, results), ""]
    lines += [
        f"Load average (1, 5, 15 min) at the end of the run: {load_average()}; the machine is shared and",
        "p95 moves with it. Between machines, compare the ratios to the trivial view, not the milliseconds.",
    ]
    return "\n".join(lines) + "\n"


def goals(size: int, results: list[Result]) -> list[str]:
    """The issue's goals: the five named list views (rows stored or not, as they come) and the idle poll."""
    lists = [r for r in results if r.name.startswith("list") and r.name != COLD]
    cold = next(r for r in results if r.name == COLD)
    poll = next(r for r in results if r.name.startswith("idle poll"))
    goal = GOALS_MS.get(size)
    verdict = "met" if goal and all(r.p95 <= goal for r in lists) else "not met"
    worst = max(lists, key=lambda r: r.p95)
    return [
        f"- Goal, each of the five list views p95 ≤ {goal:.0f} ms: **{verdict}** (slowest: {worst.name}, "
        f"{worst.p95:.1f} ms). With no row stored (every row rendered): p95 {cold.p95:.1f} ms."
        if goal else f"- Slowest list view: {worst.name}, p95 {worst.p95:.1f} ms.",
        f"- Goal, idle poll ≤ {IDLE_POLL_GOAL_BYTES} bytes and p95 ≤ {IDLE_POLL_GOAL_MS:.0f} ms: "
        f"**{'met' if poll.bytes_on_wire <= IDLE_POLL_GOAL_BYTES and poll.p95 <= IDLE_POLL_GOAL_MS else 'not met'}** "
        f"({poll.bytes_on_wire} bytes, p95 {poll.p95:.1f} ms).",
    ]


def load_average() -> str:
    try:
        return ", ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, action="append", help="mirror size (repeatable; default 100k and 1M)")
    parser.add_argument("--requests", type=int, default=100, help="timed requests per row")
    parser.add_argument("--write-docs", action="store_true", help=f"replace the section in {DOCS}")
    args = parser.parse_args()
    sizes = args.tasks or [100_000, 1_000_000]
    by_size = {size: run_size(size, args.requests) for size in sizes}
    text = markdown(by_size, requests=args.requests)
    print(text)
    if args.write_docs:
        write_docs_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
