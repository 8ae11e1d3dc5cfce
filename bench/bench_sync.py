"""Sync benchmark: mirror 10,000 Ark tasks from the simulator, counting calls and time.

    .venv/bin/python bench/bench_sync.py                 # both passes (about two minutes)
    .venv/bin/python bench/bench_sync.py --tasks 2000 --pass unlimited
    .venv/bin/python bench/bench_sync.py --write-docs     # also update docs/benchmarks.md

Each pass starts the simulator (`python -m arksim`) in its own process, seeds --tasks
tasks spread over Ark's 7-day window (10% still running, the rest finished: mostly
succeeded, some failed or expired, a fifth of them 3D), and creates a fresh PostgreSQL
database that is dropped afterwards. ArkDash's sync service then runs in this process,
against the simulator over loopback, through the real client and shared rate limiter:

1. first cycle: an empty mirror, so a full sweep of the window;
2. quiet cycle: nothing changed upstream;
3. after the running tasks finished: they are refreshed by id and handed to the archive;
4. full sweep with nothing changed.

Passes: `ark-rate` enforces Ark's budget (1 list call/s, at the simulator and in
ArkDash's limiter), so the wall time is mostly waiting for the budget; `unlimited`
lifts both limits and shows what the engine itself costs (CPU and database).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make the project importable

from bench.support import (  # noqa: E402
    DOCS,
    free_port,
    machine_summary,
    postgres_version,
    wait_for_port,
    write_docs_section,
)

PYTHON = sys.executable
POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
SIM_KEY = "bench-key"
DAY = 86400
RUN_SECONDS = 600  # how long the "still running" tasks take to finish upstream
SECTION = "## Sync"


@dataclass
class Measurement:
    name: str
    seconds: float
    list_calls: int
    get_calls: int
    created: int
    updated: int
    unchanged: int
    gone: int


def _psql(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
        conn.execute(sql)


@contextmanager
def simulator(*, list_rate: str) -> Iterator[str]:
    port = free_port()
    command = [PYTHON, "-m", "arksim", "--port", str(port), "--api-key", SIM_KEY, "--list-rate", list_rate,
               "--get-rate", "20" if list_rate != "0" else "0", "--rng-seed", "7"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def seed(sim_url: str, count: int) -> None:
    """`count` tasks over 6.5 days; 10% running (finishing RUN_SECONDS from now), the rest finished."""
    rng = random.Random(42)
    now = httpx.get(f"{sim_url}/_sim/clock", timeout=10).json()["now"]
    with httpx.Client(base_url=sim_url, timeout=30) as client:
        for index in range(count):
            kind = "3d" if rng.random() < 0.2 else "video"
            body: dict = {"kind": kind, "created_at": int(now - rng.uniform(60, 6.5 * DAY))}
            if index % 10 == 0:
                created = int(now - rng.uniform(60, 3600))
                body.update(status="running", created_at=created, updated_at=now, run_seconds=RUN_SECONDS)
            else:
                roll = rng.random()
                status = (
                    "succeeded" if roll < 0.85 else "failed" if roll < 0.95 or kind == "3d" else "expired"
                )
                body["status"] = status
            client.post("/_sim/tasks", json=body).raise_for_status()


def sim_stats(sim_url: str) -> dict[str, int]:
    return httpx.get(f"{sim_url}/_sim/stats", timeout=10).json()


def run_pass(name: str, *, tasks: int, workdir: Path) -> list[Measurement]:
    limited = name == "ark-rate"
    db_name = f"arkdash_bench_sync_{os.getpid()}_{name.replace('-', '_')}"
    data_dir = workdir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    _psql(f'CREATE DATABASE "{db_name}"')
    try:
        with simulator(list_rate="1" if limited else "0") as sim_url:
            started = time.monotonic()
            seed(sim_url, tasks)
            print(f"[{name}] seeded {tasks} tasks in {time.monotonic() - started:.0f}s", flush=True)
            env = {
                "DJANGO_SETTINGS_MODULE": "arkdash.settings",
                "DATABASE_URL": f"{POSTGRES}/{db_name}",
                "ARKDASH_DATA_DIR": str(data_dir),
                "ARK_API_KEY": "",
                "ARKDASH_SIMULATOR_URL": sim_url,
                "REDIS_URL": "",
                "ARKDASH_LOG_LEVEL": "WARNING",
                "ARK_LIST_RATE_PER_SECOND": "1" if limited else "0",
                "ARK_GET_RATE_PER_SECOND": "20" if limited else "0",
            }
            subprocess.run(
                [PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env={**os.environ, **env}, check=True
            )
            # Each pass runs in a fresh interpreter: Django settings are read once per process.
            result = subprocess.run(
                [PYTHON, __file__, "--child", sim_url, *(["--measure-handoff"] if not limited else [])],
                cwd=ROOT,
                env={**os.environ, **env},
                check=True,
                capture_output=True,
                text=True,
            )
            return [_parse(line) for line in result.stdout.splitlines() if line.startswith("M|")]
    finally:
        _psql(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def child(sim_url: str, *, measure_handoff: bool) -> None:
    """Runs inside the pass's own process, with its settings."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from datetime import timedelta

    from tasks_app.models import Account, Task
    from tasks_app.services import archive, sync

    account = Account(name="bench", base_url=f"{sim_url}/api/v3")
    account.set_api_key(SIM_KEY)
    account.save()

    def cycle(name: str, **kwargs) -> None:
        httpx.post(f"{sim_url}/_sim/stats/reset", timeout=10)
        started = time.perf_counter()
        report = sync.sync_account(account=account, **kwargs)
        seconds = time.perf_counter() - started
        if report.errors:
            raise SystemExit(f"{name}: {report}")
        stats = sim_stats(sim_url)
        print(f"M|{name}|{seconds:.3f}|{stats['list']}|{stats['get']}|{report.created}|{report.updated}|"
              f"{report.unchanged}|{report.gone}", flush=True)  # fmt: skip

    def handoff(name: str) -> None:
        """What the Celery worker does with the hand-off messages a cycle queued."""
        if not measure_handoff:
            return
        pending = Task.objects.filter(archive_handoff_pending=True).count()
        started = time.perf_counter()
        done = archive.archive_handoff_sweep(min_age=timedelta(0), limit=10**9)
        seconds = time.perf_counter() - started
        print(f"M|{name} ({pending:,} tasks, worker side)|{seconds:.3f}|0|0|0|{done}|0|0", flush=True)

    cycle("first cycle: full sweep into an empty mirror")
    handoff("archive hand-off of the succeeded tasks")
    cycle("quiet cycle: nothing changed", full_sweep=False)
    httpx.post(f"{sim_url}/_sim/clock", json={"advance": RUN_SECONDS + 60}, timeout=10).raise_for_status()
    cycle("cycle after the running tasks finished", full_sweep=False)
    handoff("archive hand-off of the newly succeeded")
    cycle("full sweep, nothing changed", full_sweep=True)


def _parse(line: str) -> Measurement:
    _, name, seconds, lists, gets, created, updated, unchanged, gone = line.split("|")
    return Measurement(name, float(seconds), int(lists), int(gets), int(created), int(updated), int(unchanged),
                       int(gone))  # fmt: skip


def machine() -> str:
    return f"{machine_summary()}, PostgreSQL {postgres_version(POSTGRES)}, simulator and database on loopback"


def markdown(results: dict[str, list[Measurement]], *, tasks: int) -> str:
    lines = [
        SECTION,
        "",
        f"`bench/bench_sync.py --tasks {tasks}`, {datetime.now(UTC):%Y-%m-%d}. Machine: {machine()}.",
        "",
        f"{tasks:,} tasks in the simulator's 7-day window, {tasks // 10:,} of them running. Calls are",
        "counted by the simulator; time is the wall time of one `sync_account` cycle. A cycle only",
        "flags tasks that turned succeeded and queues one hand-off message per 500; the hand-off",
        "rows show the worker's side (creating Artifact rows and queueing each copy).",
        "",
    ]
    for name, measurements in results.items():
        title = {
            "ark-rate": "With Ark's budget (1 list call/s enforced by the simulator and ArkDash's limiter)",
            "unlimited": "Without rate limits (the engine's own cost)",
        }[name]
        lines += [f"**{title}**", "", "| step | list calls | get calls | created | updated | unchanged | gone "
                  "| time |", "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for m in measurements:
            lines.append(
                f"| {m.name} | {m.list_calls} | {m.get_calls} | {m.created:,} | {m.updated:,} | {m.unchanged:,} "
                f"| {m.gone} | {m.seconds:.1f} s |"
            )
        lines.append("")
    lines += [
        "Reading it: a cycle costs ⌈active/500⌉ list calls for the refresh plus two for discovery",
        "(the queued tasks, and the window's total to compare with the mirror's),",
        "whatever the number of finished tasks; a full sweep costs ⌈tasks/500⌉ and runs every",
        "ARKDASH_FULL_SWEEP_SECONDS (300 s by default). Rows whose mirrored fields did not change",
        "are not written.",
        "",
    ]
    return "\n".join(lines)


def write_docs(section: str) -> None:
    write_docs_section(SECTION, section)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--pass", dest="passes", action="append", choices=["ark-rate", "unlimited"])
    parser.add_argument("--write-docs", action="store_true", help=f"update the {SECTION!r} section of {DOCS}")
    parser.add_argument("--child", metavar="SIM_URL", help=argparse.SUPPRESS)
    parser.add_argument("--measure-handoff", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, measure_handoff=args.measure_handoff)
        return 0
    if args.tasks < 10:
        parser.error("--tasks must be at least 10")
    workdir = Path(tempfile.mkdtemp(prefix="arkdash-bench-sync-"))
    try:
        results = {
            name: run_pass(name, tasks=args.tasks, workdir=workdir)
            for name in args.passes or ["ark-rate", "unlimited"]
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    section = markdown(results, tasks=args.tasks)
    print(section)
    if args.write_docs:
        write_docs(section)
        print(f"updated {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
