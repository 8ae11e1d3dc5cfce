"""Dashboard benchmark: server time of the task list and the live poll over 100,000 tasks.

    .venv/bin/python bench/bench_dashboard.py                # about a minute
    .venv/bin/python bench/bench_dashboard.py --tasks 20000 --requests 100
    .venv/bin/python bench/bench_dashboard.py --write-docs   # also update docs/benchmarks.md

A fresh PostgreSQL database (dropped afterwards) gets --tasks mirror rows made with
bulk_create: 30 days of history, mostly finished, --active (300) still queued or running,
a fifth 3D, five models, archive states as the archive leaves them (and the Artifact rows of
every succeeded task, which the page's archive-lag figure reads). Requests then go through
Django's whole WSGI stack in this process (session, auth, middleware, view, template),
signed in, with a persistent database connection as in production; the clock runs
around the WSGI call only. A trivial signed-in view measured in the same run is the
yardstick: it pays for the same session and user lookups and nothing else.
"""

from __future__ import annotations

import argparse
import io
import os
import random
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
REUSED = "list, 2 statuses + kind, 50 rows; mirror unchanged since the last view (page reused)"
CHANGED = "same, after a change to the mirror (page put together again, counts recounted)"
CHANGED_SSD = "same, after a change, random_page_cost 1.1"
NOTHING_KEPT = "same, nothing kept (every row, the form and the counts done afresh)"
DB_NAME = f"arkdash_bench_dashboard_{os.getpid()}"

VIDEO_MODELS = [
    "doubao-seedance-1-0-pro-250528",
    "doubao-seedance-1-0-lite-t2v-250428",
    "doubao-seedance-1-0-lite-i2v-250428",
    "doubao-seedance-1-0-pro-fast-251015",
]
MODEL_3D = "doubao-seed3d-1-0-250928"


@dataclass
class Result:
    name: str
    path: str
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


def _psql(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def setup_django(data_dir: str) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "arkdash.settings",
            "DATABASE_URL": f"{POSTGRES}/{DB_NAME}",
            "ARKDASH_DATA_DIR": data_dir,
            "ARK_API_KEY": "",
            "REDIS_URL": "",
            "ARKDASH_LOG_LEVEL": "WARNING",
            "ARKDASH_DEBUG": "false",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django
    from django.conf import settings

    django.setup()
    # This module doubles as the URLconf: the app's URLs plus the trivial yardstick view.
    settings.ROOT_URLCONF = __name__


def trivial(request):
    """The yardstick: signed-in, same middleware, no work."""
    from django.http import HttpResponse

    return HttpResponse("ok")


def _urlpatterns():
    from django.contrib.auth.decorators import login_required
    from django.urls import include, path

    return [path("bench/trivial/", login_required(trivial)), path("", include("arkdash.urls"))]


def __getattr__(name: str):  # urlpatterns is built lazily, once Django is set up
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)


def seed(count: int, *, active: int) -> dict[str, object]:
    """`count` tasks over 30 days, in one account. Returns what the requests will use."""
    from django.db import connection

    from tasks_app import task_tally
    from tasks_app.models import Account, ArchiveState, Task, TaskKind, TaskStatus

    rng = random.Random(7)
    account = Account(name="bench", base_url="http://arksim.test/api/v3")
    account.set_api_key("bench-key")
    account.last_sync_ok_at = datetime.now(UTC)
    account.save()
    now = datetime.now(UTC)
    # Finished tasks over 30 days; `active` of them queued or running within the last hour
    # (Ark holds at most ~120 queued tasks per account, so a few hundred is a busy team).
    statuses = [
        (TaskStatus.SUCCEEDED, 0.79), (TaskStatus.FAILED, 0.13), (TaskStatus.EXPIRED, 0.04),
        (TaskStatus.CANCELLED, 0.04),
    ]  # fmt: skip
    names, weights = zip(*statuses, strict=True)
    # Creation times first, oldest first: the mirror receives tasks roughly in that order,
    # so the table's physical order follows ark_created_at as it would in production.
    plan = []
    for index in range(count):
        kind = TaskKind.MODEL_3D if rng.random() < 0.2 else TaskKind.VIDEO
        if index < active:
            status = TaskStatus.QUEUED if index % 5 < 2 else TaskStatus.RUNNING
        else:
            status = rng.choices(names, weights)[0]
        age = rng.uniform(30, 3600) if index < active else rng.uniform(3600, 30 * 86400)
        plan.append((now - timedelta(seconds=age), kind, status))
    plan.sort(key=lambda item: item[0])
    batch: list[Task] = []
    for index, (created, kind, status) in enumerate(plan):
        if kind == TaskKind.MODEL_3D and status == TaskStatus.EXPIRED:
            status = TaskStatus.FAILED
        active = status in (TaskStatus.QUEUED, TaskStatus.RUNNING)
        updated = created + timedelta(seconds=rng.uniform(5, 900))
        ark_id = f"cgt-{created + timedelta(hours=8):%Y%m%d%H%M%S}-{index:05d}"[-64:]
        model = MODEL_3D if kind == TaskKind.MODEL_3D else rng.choice(VIDEO_MODELS)
        archive = ArchiveState.NONE
        if status == TaskStatus.SUCCEEDED:
            archive = rng.choices(
                [ArchiveState.ARCHIVED, ArchiveState.PENDING, ArchiveState.FAILED, ArchiveState.LOST],
                [0.97, 0.01, 0.01, 0.01],
            )[0]
        raw = {
            "id": ark_id, "model": model, "status": status, "created_at": int(created.timestamp()),
            "updated_at": int(updated.timestamp()), "service_tier": "default", "execution_expires_after": 172800,
            "usage": {"completion_tokens": 108900, "total_tokens": 108900},
        }  # fmt: skip
        if kind == TaskKind.VIDEO:
            raw.update(resolution="720p", ratio="16:9", duration=5, framespersecond=24, seed=rng.randint(0, 2**31))
        batch.append(
            Task(
                account=account, ark_id=ark_id, kind=kind, model=model, status=status,
                ark_created_at=created, ark_updated_at=updated,
                started_at=None if status == TaskStatus.QUEUED else created + timedelta(seconds=3),
                finished_at=None if active else updated, archive_state=archive,
                error_code="InternalServiceError" if status == TaskStatus.FAILED else "",
                resolution=raw.get("resolution", ""), ratio=raw.get("ratio", ""), duration=raw.get("duration"),
                completion_tokens=108900, total_tokens=108900, service_tier="default", raw=raw,
            )
        )  # fmt: skip
        if len(batch) == 5000:
            Task.objects.bulk_create(batch)
            batch = []
    Task.objects.bulk_create(batch)
    seed_artifacts()
    task_tally.compact()  # as beat does every minute
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE tasks_app_task")
        cursor.execute("VACUUM ANALYZE tasks_app_artifact")
        cursor.execute("VACUUM ANALYZE tasks_app_tasktally")
    live = list(Task.objects.filter(status__in=[TaskStatus.QUEUED, TaskStatus.RUNNING]).order_by("-ark_created_at")[:50])
    some_ids = list(Task.objects.order_by("?").values_list("ark_id", flat=True)[:20])
    return {"live": live, "ids": some_ids}


def seed_artifacts() -> None:
    """The archive's rows for every succeeded task, in its task's archive state."""
    from tasks_app.models import Artifact, ArtifactOutput, Task, TaskKind, TaskStatus

    outputs = {TaskKind.VIDEO: [ArtifactOutput.VIDEO, ArtifactOutput.LAST_FRAME],
               TaskKind.MODEL_3D: [ArtifactOutput.MODEL_ZIP, ArtifactOutput.MODEL_FILE]}  # fmt: skip
    batch = []
    succeeded = Task.objects.filter(status=TaskStatus.SUCCEEDED).values_list("pk", "kind", "archive_state", "finished_at")
    for pk, kind, state, finished in succeeded.iterator(chunk_size=5000):
        for output in outputs[kind]:
            batch.append(
                Artifact(task_id=pk, output=output, state=state, size=4_000_000, bytes_copied=4_000_000,
                         deadline=finished + timedelta(hours=24), storage_key=f"bench/{pk}/{output}")  # fmt: skip
            )
        if len(batch) >= 5000:
            Artifact.objects.bulk_create(batch)
            batch = []
    Artifact.objects.bulk_create(batch)


def sign_in_cookie() -> str:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from tasks_app.models import Account, Membership, MembershipRole

    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    # A team member, not a superuser: the pages pay for the membership rule like everyone's.
    Membership.objects.bulk_create(
        Membership(user=user, account=account, role=MembershipRole.OPERATOR) for account in Account.objects.all()
    )
    client = Client()
    client.force_login(user)
    # The CSRF cookie too, as a browser holds it after its first page (without it every
    # page would make and set a new secret).
    client.get("/")
    assert "csrftoken" in client.cookies
    return "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items())


def wsgi_get(handler, path: str, cookie: str, headers: dict[str, str] | None = None) -> tuple[int, int, float]:
    """One GET through the WSGI handler: (status, bytes on the wire, milliseconds)."""
    route, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": route, "QUERY_STRING": query, "SERVER_NAME": "testserver",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "testserver", "HTTP_COOKIE": cookie,
        "REMOTE_ADDR": "127.0.0.1", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.multithread": False,
        "wsgi.multiprocess": True, "wsgi.run_once": False,
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
    return int(captured["status"].split()[0]), len(head.encode()) + len(body), elapsed


@dataclass
class Scenario:
    name: str
    path: str
    headers: dict[str, str] | None = None
    cold: bool = False  # the mirror's version moved before each request, as after any change
    ssd: bool = False  # plan with random_page_cost = 1.1 (the usual SSD setting)
    nothing_kept: bool = False  # the cache emptied before each request: every row rendered


def prepare(scenario: Scenario, handler, cookie: str) -> None:
    """What a scenario sets up before each of its requests, outside the timing.

    Every scenario but "nothing kept" first views its page once, untimed: a person's
    next view of a page they have seen (and, for warm scenarios, the counts of a changed
    mirror counted once). Cold scenarios then move the mirror's version, as any write to
    the mirror does. So no scenario inherits what the one before it kept or dropped
    ("nothing kept" empties the whole cache).
    """
    from django.core.cache import cache
    from django.db import connection

    from tasks_app import compiled_query, mirror_version

    with connection.cursor() as cursor:
        cursor.execute("SET random_page_cost = 1.1" if scenario.ssd else "RESET random_page_cost")
    if scenario.nothing_kept:
        # Rows, frames, forms, counts, pages and compiled query strings gone; the model
        # suggestions and the archive lag, kept by time (300 s, 15 s) rather than by the
        # mirror's version, computed again.
        cache.clear()
        compiled_query.forget_kept()
        warm_time_kept_entries()
    else:
        wsgi_get(handler, scenario.path, cookie, scenario.headers)
    if scenario.cold:
        mirror_version.bump()


def warm_time_kept_entries() -> None:
    from django.contrib.auth import get_user_model

    from tasks_app import selectors, views

    user = get_user_model().objects.get(username="bench")
    access = selectors.access_for(user)
    selectors.known_models(user=user, access=access)
    views._archive_lag(access)


def measure_all(handler, scenarios: list[Scenario], cookie: str, *, requests: int) -> list[Result]:
    """Requests interleaved round-robin, so a burst of load on the shared machine hits
    every scenario alike instead of skewing one of them."""
    from django.db import connection

    for scenario in scenarios:  # warm caches, templates, the connection
        for _ in range(max(5, requests // 20)):
            prepare(scenario, handler, cookie)
            wsgi_get(handler, scenario.path, cookie, scenario.headers)
    results = []
    for scenario in scenarios:
        executed: list[str] = []

        def count(execute, sql, params, many, context, executed=executed):
            executed.append(sql)
            return execute(sql, params, many, context)

        prepare(scenario, handler, cookie)
        with connection.execute_wrapper(count):
            status, size, _ = wsgi_get(handler, scenario.path, cookie, scenario.headers)
        results.append(Result(scenario.name, scenario.path, [], status, size, len(executed)))
    for _ in range(requests):
        for scenario, result in zip(scenarios, results, strict=True):
            prepare(scenario, handler, cookie)
            result.times_ms.append(wsgi_get(handler, scenario.path, cookie, scenario.headers)[2])
    return results


def machine() -> str:
    import django

    return f"{machine_summary()}, Django {django.get_version()}, PostgreSQL {postgres_version(POSTGRES)} on loopback"


def markdown(results: list[Result], *, tasks: int, requests: int, active: int) -> str:
    trivial_p95, trivial_p50 = results[0].p95, results[0].p50
    lines = [
        SECTION,
        "",
        f"`bench/bench_dashboard.py --tasks {tasks} --requests {requests} --active {active}`, "
        f"{datetime.now(UTC):%Y-%m-%d}. "
        f"Machine: {machine()}.",
        "",
        f"{tasks:,} tasks in PostgreSQL (30 days, {active} queued or running, a fifth 3D, five models). Server time",
        f"of {requests} signed-in GETs per row through Django's WSGI handler in one process (middleware,",
        "session, auth, view, template; persistent database connection), after a warm-up, the rows'",
        "requests interleaved round-robin so load on the machine falls on all of them alike. Before",
        "each timed request its page is viewed once, untimed (a person's next view of a page), and",
        "for the \"after a change\" rows the mirror's version then moves; \"nothing kept\" instead",
        "starts from an empty cache. Bytes are the whole answer: status line, headers and body.",
        "",
        "| request | p50 | p95 | p95 vs trivial | queries | bytes | status |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        lines.append(
            f"| {result.name} | {result.p50:.1f} ms | {result.p95:.1f} ms | {result.p95 / trivial_p95:.1f}× "
            f"| {result.queries} | {result.bytes_on_wire:,} | {result.status} |"
        )
    lines += [
        "",
        f"Load average (1, 5, 15 min) at the end of the run: {load_average()}; the machine is shared and p95 moves with it.",
        f"The trivial view's p50 here is {trivial_p50:.1f} ms: between machines, compare the ratios, not the milliseconds.",
        "",
        *goals(results),
        "",
        "Reading it:",
        "- A view of the list reads the session, the user, the user's memberships (the bench user",
        "  is a member of the account, not a superuser) joined to the accounts' sync health, and the",
        "  mirror's version (a sequence every committed write moves: tasks_app/mirror_version.py).",
        "  When the mirror has not changed since the",
        "  page was last rendered for this person, path, language and time zone (and within 30 s, so",
        "  relative times stay right), that is all: the stored page is sent with this answer's sync",
        "  banner and CSRF token filled in (tasks_app/page_cache.py). The \"mirror unchanged\" rows.",
        "- After any change to the mirror (with an active team: every few seconds) the page is",
        "  put together again from what does not depend on the mirror, kept, and what does, read",
        "  and rendered (the \"after a change\" rows):",
        "  - kept: the query string's plan, validated and compiled to SQL once per query string,",
        "    access, zone and language (tasks_app/list_plan.py, compiled_query.py); the page's",
        "    frame, everything but the mirror's parts, per person, path, language and zone",
        "    (page_cache.kept_frame); the filter form's HTML;",
        "  - read: the status counts, summed from the task tally (tasks_app/task_tally.py), which",
        "    database triggers keep per account, status, kind, archive state, model and UTC day",
        "    (~1,000 rows here after beat's folding) instead of counting ~80,000 tasks; and the",
        "    page's rows, six columns each (id, account, status, archive state, gone, version);",
        "  - rendered: only rows whose version moved (their HTML is kept per row version,",
        "    language, zone, access and 30-second bucket: tasks_app/row_html.py), and the chips,",
        "    pager and bulk buttons, by Jinja2, into the frame's slots (tasks_app/list_parts.py).",
        "  The bench's change moves the version only, as a sync write to rows off the page does;",
        "  a change to a row on the page reads and renders that row again (about 0.25 ms a row).",
        "  Timed step by step on the filtered page in a quieter run (p50 about 5 ms against",
        "  1.6 ms trivial): memberships and version ~0.4 ms, counts ~0.6 ms, the rows' columns",
        "  ~0.8 ms, their kept HTML ~0.3 ms, chips, pager and buttons ~0.2 ms.",
        "- \"Nothing kept\" is a first view after a restart, or once the cache has dropped all of",
        "  it: every row is read whole and rendered, the frame by Django's templates, the form.",
        "- Deep pages cost O(offset) (PostgreSQL walks the skipped rows); filters are the way to",
        "  narrow a large history.",
        "- The idle poll answers 204 with no body (and no Content-Security-Policy header, which HTML",
        "  answers carry: about 650 bytes): the memberships joined to their accounts' sync health, and",
        "  one primary-key query for the versions of the rows on screen, whatever the size of the history.",
        "",
    ]
    return "\n".join(lines)


def goals(results: list[Result]) -> list[str]:
    """The issue's goals, checked against this run's numbers (met or not, as measured)."""
    by_name = {result.name: result for result in results}
    trivial = results[0].p95
    cached = by_name[REUSED]
    recount = by_name[CHANGED]
    recount_ssd = by_name[CHANGED_SSD]
    nothing_kept = by_name[NOTHING_KEPT]
    idle = next(result for result in results if result.name.startswith("live poll, idle"))

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    return [
        "Against the goals (filtered list page):",
        f"- list p95 ≤ 50 ms: {verdict(cached.p95 <= 50)} with the mirror unchanged ({cached.p95:.1f} ms); "
        f"after a change {verdict(recount_ssd.p95 <= 50)} with SSD planner costs ({recount_ssd.p95:.1f} ms), "
        f"{verdict(recount.p95 <= 50)} with PostgreSQL's default costs ({recount.p95:.1f} ms).",
        f"- within 3× of the trivial view: {verdict(cached.p95 <= 3 * trivial)} with the mirror unchanged "
        f"({cached.p95 / trivial:.1f}×); {verdict(recount_ssd.p95 <= 3 * trivial)} after a change "
        f"({recount_ssd.p95 / trivial:.1f}×); {verdict(nothing_kept.p95 <= 3 * trivial)} with nothing kept "
        f"({nothing_kept.p95 / trivial:.1f}×, p95 {nothing_kept.p95:.1f} ms).",
        f"- idle poll ≤ 1 KB: {verdict(idle.bytes_on_wire <= 1024)} ({idle.bytes_on_wire} bytes, status {idle.status}).",
    ]


def load_average() -> str:
    try:
        return ", ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def write_docs(section: str) -> None:
    write_docs_section(SECTION, section)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--active", type=int, default=300, help="tasks still queued or running")
    parser.add_argument("--write-docs", action="store_true", help=f"update the {SECTION!r} section of {DOCS}")
    args = parser.parse_args()
    if args.tasks < 1000 or args.requests < 20 or not 50 <= args.active <= args.tasks // 2:
        parser.error("--tasks must be at least 1000, --requests at least 20, --active 50 to half the tasks")

    _psql(f'CREATE DATABASE "{DB_NAME}"')
    try:
        setup_django(tempfile.mkdtemp(prefix="arkdash-bench-dashboard-"))
        from django.core.handlers.wsgi import WSGIHandler
        from django.core.management import call_command
        from django.db import connections

        from tasks_app.selectors import row_version

        call_command("migrate", verbosity=0)
        started = time.monotonic()
        seeded = seed(args.tasks, active=args.active)
        print(f"seeded {args.tasks:,} tasks in {time.monotonic() - started:.0f}s", flush=True)
        cookie = sign_in_cookie()
        handler = WSGIHandler()
        idle_rows = ",".join(f"{task.pk}.{row_version(task)}" for task in seeded["live"])
        ids = "%0A".join(seeded["ids"])
        since = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M")
        poll = {"HX-Request": "true"}
        filtered = "/?status=succeeded&status=failed&kind=video&page_size=50"
        by_model = f"/?model={VIDEO_MODELS[0]}&created_after={since}&sort=-updated&page_size=100"
        scenarios = [
            Scenario("trivial signed-in view (yardstick)", "/bench/trivial/"),
            Scenario(REUSED, filtered),
            Scenario(CHANGED, filtered, cold=True),
            Scenario(CHANGED_SSD, filtered, cold=True, ssd=True),
            Scenario(NOTHING_KEPT, filtered, cold=True, nothing_kept=True),
            Scenario("list, no filter, 50 rows; mirror unchanged (page reused)", "/"),
            Scenario("same, after a change to the mirror", "/", cold=True),
            Scenario("list, model + last 7 days, sorted by updated, 100 rows; after a change", by_model,
                     cold=True),
            Scenario("list, 20 pasted ids; after a change", f"/?ids={ids}", cold=True),
            Scenario("list, page 1000 (deep offset); after a change", "/?page=1000", cold=True),
            Scenario(f"live poll, idle ({len(seeded['live'])} live rows, nothing changed)",
                     f"/tasks/rows/?rows={idle_rows}&health=ok", headers=poll),
        ]  # fmt: skip
        results = measure_all(handler, scenarios, cookie, requests=args.requests)
        for result in results:
            print(f"{result.name}: p50 {result.p50:.1f} ms, p95 {result.p95:.1f} ms, "
                  f"{result.queries} queries, {result.bytes_on_wire} bytes, {result.status}", flush=True)  # fmt: skip
        connections.close_all()
    finally:
        _psql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')

    section = markdown(results, tasks=args.tasks, requests=args.requests, active=args.active)
    print(section)
    if args.write_docs:
        write_docs(section)
        print(f"updated {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
