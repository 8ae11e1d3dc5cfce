"""Gateway benchmark: Ark's list call through ArkDash's gateway over a mirror of 1M tasks.

    .venv/bin/python bench/bench_gateway.py                  # 1,000,000 tasks: several minutes to seed
    .venv/bin/python bench/bench_gateway.py --tasks 100000 --requests 50
    .venv/bin/python bench/bench_gateway.py --write-docs     # also update docs/benchmarks.md

A fresh PostgreSQL database (dropped afterwards) gets --tasks mirror rows in one account,
written by INSERT ... SELECT over generate_series, 90 days of history, and two archived Artifact rows per succeeded video task. The
requests then go through Django's whole WSGI stack in this process with a personal API
token in `Authorization: Bearer`, as the official SDK sends it: token lookup, the token's
request limit (the SQLite store, no Redis), Ark's parameters, the mirror query, the JSON
with a signed link per archived output. The clock runs around the WSGI call only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make the project importable

from bench.bench_dashboard import POSTGRES, Result, _psql, load_average, wsgi_get  # noqa: E402
from bench.support import DOCS, machine_summary, postgres_version, write_docs_section  # noqa: E402

SECTION = "## Gateway"
DB_NAME = f"arkdash_bench_gateway_{os.getpid()}"
TASKS = "/api/v3/contents/generations/tasks"
MODELS = [
    "doubao-seedance-1-0-pro-250528",
    "doubao-seedance-1-0-lite-t2v-250428",
    "doubao-seedance-1-0-lite-i2v-250428",
    "doubao-seedance-1-0-pro-fast-251015",
    "doubao-seed3d-1-0-250928",
]
GOAL_P95_MS = 100.0


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
    import django

    django.setup()


# Every NOT NULL column of tasks_app_task, as an expression of the row number i.
_TASK_COLUMNS = {
    "account_id": "{account}",
    # Ark's id shape: creation time in Beijing time, then five characters.
    "ark_id": "'cgt-' || to_char(c.at + interval '8 hours', 'YYYYMMDDHH24MISS') || '-' || lpad(to_hex(i), 5, '0')",
    "kind": "CASE WHEN mod(i, 5) = 0 THEN '3d' ELSE 'video' END",
    "model": "(ARRAY[{models}])[1 + mod(i, 5)]",
    "status": "CASE WHEN mod(i, 25) = 1 THEN 'failed' WHEN mod(i, 50) = 2 THEN 'cancelled' ELSE 'succeeded' END",
    "error_code": "CASE WHEN mod(i, 25) = 1 THEN 'InternalServiceError' ELSE '' END",
    "error_message": "''",
    "service_tier": "'default'",
    "execution_expires_after": "172800",
    "ark_created_at": "c.at",
    "ark_updated_at": "c.at + interval '90 seconds'",
    "first_seen_at": "c.at",
    "finished_at": "c.at + interval '90 seconds'",
    "gone_upstream_at": "CASE WHEN c.at < now() - interval '7 days' THEN c.at + interval '7 days' END",
    "changed_at": "c.at",
    "resolution": "CASE WHEN mod(i, 5) = 0 THEN '' ELSE '720p' END",
    "ratio": "CASE WHEN mod(i, 5) = 0 THEN '' ELSE '16:9' END",
    "duration": "CASE WHEN mod(i, 5) = 0 THEN NULL ELSE 5 END",
    "subdivision_level": "CASE WHEN mod(i, 5) = 0 THEN 'medium' ELSE '' END",
    "file_format": "CASE WHEN mod(i, 5) = 0 THEN 'glb' ELSE '' END",
    "completion_tokens": "108900",
    "total_tokens": "108900",
    "video_url": "CASE WHEN mod(i, 5) = 0 THEN '' ELSE 'https://ark-output.example/' || i || '/video.mp4?X-Tos-Expires=86400' END",
    "last_frame_url": "''",
    "file_url": "CASE WHEN mod(i, 5) = 0 THEN 'https://ark-output.example/' || i || '/model.zip' ELSE '' END",
    "archive_state": "CASE WHEN mod(i, 25) = 1 OR mod(i, 50) = 2 THEN 'none' ELSE 'archived' END",
    "archive_handoff_pending": "false",
    "raw": "jsonb_build_object('id', 'x', 'service_tier', 'default', 'execution_expires_after', 172800)",
}


def seed(count: int) -> dict[str, object]:
    """`count` tasks over 90 days in one account, oldest first, and their archived outputs."""
    from django.db import connection

    from tasks_app.models import Account, Task

    account = Account(name="bench", base_url="http://arksim.test/api/v3")
    account.set_api_key("bench-key")
    account.save()
    extra = {field.column for field in Task._meta.concrete_fields if not field.null and not field.primary_key}
    missing = extra - set(_TASK_COLUMNS)
    if missing:
        raise SystemExit(f"bench_gateway: no value for the new NOT NULL columns {sorted(missing)}")
    columns = ", ".join(_TASK_COLUMNS)
    values = ", ".join(_TASK_COLUMNS.values()).format(
        account=account.pk, models=", ".join(f"'{model}'" for model in MODELS)
    )
    step = 90 * 86400 / count
    batch = 100_000
    with connection.cursor() as cursor:
        for first in range(0, count, batch):
            last = min(count, first + batch) - 1
            cursor.execute(
                f"INSERT INTO tasks_app_task ({columns}) SELECT {values} FROM generate_series(%s, %s) AS i, "
                f"LATERAL (SELECT now() - interval '90 days' + i * interval '{step:.6f} seconds') AS c(at)",
                [first, last],
            )
            print(f"  {last + 1:,} tasks", flush=True)
        # Each archived video: its mp4 and last frame; each archived 3D task: its zip.
        cursor.execute(
            "INSERT INTO tasks_app_artifact (task_id, output, source_url, state, attempts, last_error, "
            "claim_token, bytes_copied, size, sha256, storage_key, filename, content_type, created, removed_reason) "
            "SELECT t.id, o.output, '', 'archived', 1, '', '', 4000000, 4000000, '', "
            "'bench/' || t.id || '/' || o.output, o.output, '', t.changed_at, '' FROM tasks_app_task t "
            "JOIN (VALUES ('video', 'video'), ('video', 'last_frame'), ('3d', 'model_zip')) AS o(kind, output) "
            "ON o.kind = t.kind WHERE t.archive_state = 'archived'"
        )
    with connection.cursor() as cursor:
        for table in ("tasks_app_task", "tasks_app_artifact"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    newest = list(Task.objects.order_by("-ark_created_at").values_list("ark_id", flat=True)[:100])
    old = Task.objects.filter(gone_upstream_at__isnull=False).order_by("?").values_list("ark_id", flat=True)[:1]
    return {"account": account, "newest": newest, "old": old[0]}


def make_token(account) -> str:
    from django.contrib.auth import get_user_model

    from tasks_app.gateway.models import ApiToken, hash_token, new_token_value
    from tasks_app.models import Membership, MembershipRole

    user = get_user_model().objects.create_user("bench")
    Membership.objects.create(user=user, account=account, role=MembershipRole.OPERATOR)
    plain = new_token_value()
    token = ApiToken.objects.create(user=user, name="bench", token_hash=hash_token(plain), hint=plain[:8],
                                    requests_per_minute=100_000)
    token.accounts.set([account])
    return plain


def measure(handler, scenarios: list[tuple[str, str]], token: str, *, requests: int) -> list[Result]:
    """Requests interleaved round-robin, so a burst of load on the shared machine hits every scenario alike."""
    from django.db import connection

    headers = {"Authorization": f"Bearer {token}"}
    for _name, path in scenarios:
        for _ in range(5):
            wsgi_get(handler, path, "", headers)
    results = []
    for name, path in scenarios:
        executed: list[str] = []

        def count(execute, sql, params, many, context, executed=executed):
            executed.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            status, size, _, _ = wsgi_get(handler, path, "", headers)
        if status != 200:
            raise SystemExit(f"bench_gateway: {path} answered {status}")
        results.append(Result(name, [], status, size, len(executed)))
    for _ in range(requests):
        for (_name, path), result in zip(scenarios, results, strict=True):
            result.times_ms.append(wsgi_get(handler, path, "", headers)[2])
    return results


def lscpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown CPU"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPUs"


def markdown(results: list[Result], *, tasks: int, requests: int, seed_seconds: float) -> str:
    import django

    today = datetime.now(UTC).strftime("%Y-%m-%d")
    rows = "\n".join(
        f"| {r.name} | {r.p50:.1f} ms | {r.p95:.1f} ms | {r.queries} | {r.bytes_on_wire:,} |" for r in results
    )
    main = results[0]
    verdict = "met" if main.p95 <= GOAL_P95_MS else "NOT met"
    return f"""{SECTION}

`bench/bench_gateway.py --tasks {tasks}`, {today}. Machine: {lscpu_model()} (lscpu); {machine_summary()};
Django {django.get_version()}, PostgreSQL {postgres_version(POSTGRES)} on loopback. The CPUs were shared with
other work during the run (load average {load_average()} at its end), so times are indicative.

{tasks:,} mirrored tasks in one account over 90 days (seeded in {seed_seconds:.0f} s), every succeeded
one archived. Each request goes through Django's WSGI stack with a personal API token, as the official
SDK sends it; {requests} requests per row, interleaved.

| request | p50 | p95 | queries | bytes |
|---|---:|---:|---:|---:|
{rows}

Goal: list at page_size 100 over {tasks:,} tasks, p95 ≤ {GOAL_P95_MS:.0f} ms: **{verdict}** (p95 {main.p95:.1f} ms).
Upstream calls to Ark during the run: 0 (reads come from the mirror). The total is a plain COUNT(*)
of the matching rows, so it grows with the mirror: a filter that matches most of it pays most.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--write-docs", action="store_true", help=f"update the {SECTION!r} section of {DOCS}")
    args = parser.parse_args()
    if args.tasks < 1000 or args.requests < 20:
        parser.error("--tasks must be at least 1000, --requests at least 20")

    _psql(f'CREATE DATABASE "{DB_NAME}"')
    try:
        setup_django(tempfile.mkdtemp(prefix="arkdash-bench-gateway-"))
        from django.core.handlers.wsgi import WSGIHandler
        from django.core.management import call_command
        from django.db import connections

        call_command("migrate", verbosity=0)
        started = time.monotonic()
        seeded = seed(args.tasks)
        seed_seconds = time.monotonic() - started
        print(f"seeded {args.tasks:,} tasks in {seed_seconds:.0f}s", flush=True)
        token = make_token(seeded["account"])
        handler = WSGIHandler()
        ids = "&".join(f"filter.task_ids={ark_id}" for ark_id in seeded["newest"])
        scenarios = [
            ("list, no filter, page_size 100", f"{TASKS}?page_num=1&page_size=100"),
            ("list, filter.status=succeeded, page_size 100", f"{TASKS}?page_size=100&filter.status=succeeded"),
            ("list, page_num 100 (offset 9,900), page_size 100", f"{TASKS}?page_num=100&page_size=100"),
            ("list, 100 repeated filter.task_ids", f"{TASKS}?page_size=100&{ids}"),
            ("list, filter.model (a fifth of all tasks), page_size 100",
             f"{TASKS}?page_size=100&filter.model={MODELS[1]}"),
            ("get one task, 80 days old", f"{TASKS}/{seeded['old']}"),
        ]  # fmt: skip
        results = measure(handler, scenarios, token, requests=args.requests)
        for result in results:
            print(f"{result.name}: p50 {result.p50:.1f} ms, p95 {result.p95:.1f} ms, {result.queries} queries",
                  flush=True)  # fmt: skip
        connections.close_all()
    finally:
        _psql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')

    section = markdown(results, tasks=args.tasks, requests=args.requests, seed_seconds=seed_seconds)
    print(section)
    if args.write_docs:
        write_docs_section(SECTION, section)
        print(f"updated {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
