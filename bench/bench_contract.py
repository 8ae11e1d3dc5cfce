"""Contract benchmark: list calls per sync cycle under each answer Ark's documents leave open.

    .venv/bin/python bench/bench_contract.py                # every mode (about a minute)
    .venv/bin/python bench/bench_contract.py --write-docs   # also update docs/benchmarks.md

For each mode (list order newest / oldest / shuffled, at most 50 ids per filter.task_ids
call, a 4 KB request line) the in-process simulator holds 1,000 active tasks (120 queued,
880 running) and 4,000 finished ones over the 7-day window, and a fresh PostgreSQL
database is created and dropped afterwards. ArkDash's sync runs real cycles against it
(rate limits off: the figures are calls, not waiting) and the simulator counts the calls:

1. first cycle: an empty mirror, so a full sweep;
2. first ordinary cycle: the 1,000 active tasks refreshed by id (where a limit refuses
   the batch, this is where it shrinks);
3. quiet cycle: nothing changed, the batch size remembered;
4. new tasks: 10 new queued tasks, and 5 that went queued -> succeeded between cycles;
5. full sweep, nothing changed.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make the project importable

from bench.support import DOCS, machine_summary, postgres_version, write_docs_section  # noqa: E402

PYTHON = sys.executable
POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
SECTION = "## Sync under every contract answer"
MODES = {
    "newest first": {},
    "oldest first": {"list_order": "oldest"},
    "shuffled": {"list_order": "shuffled"},
    "50 ids per call": {"max_task_ids": 50},
    "4 KB request line": {"max_request_line": 4096},
}
STEPS = (
    "first cycle (full sweep)",
    "first ordinary cycle",
    "quiet cycle",
    "15 new tasks",
    "full sweep, nothing changed",
)
QUEUED, RUNNING, FINISHED = 120, 880, 4000
DAY = 86400


@dataclass
class Row:
    mode: str
    calls: list[int]
    shrunk: int
    batch: int


def _psql(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def _lscpu() -> str:
    """lscpu's model name and CPU count (the machine's own words)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return ""
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return f"lscpu: {fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPU(s)"


def run_mode(mode: str) -> Row:
    db_name = f"arkdash_bench_contract_{os.getpid()}_{abs(hash(mode)) % 10**6}"
    data_dir = tempfile.mkdtemp(prefix="arkdash-bench-contract-")
    _psql(f'CREATE DATABASE "{db_name}"')
    try:
        env = {
            "ARKDASH_DATA_DIR": data_dir,
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "arkdash.settings",
            "DATABASE_URL": f"{POSTGRES}/{db_name}",
            "ARK_API_KEY": "",
            "REDIS_URL": "",
            "ARKDASH_LOG_LEVEL": "WARNING",
            "ARK_LIST_RATE_PER_SECOND": "0",
            "ARK_GET_RATE_PER_SECOND": "0",
        }
        subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        result = subprocess.run(
            [PYTHON, __file__, "--child", mode], cwd=ROOT, env=env, check=True, capture_output=True, text=True
        )
        line = next(line for line in result.stdout.splitlines() if line.startswith("R|"))
        _, calls, shrunk, batch = line.split("|")
        return Row(mode, [int(n) for n in calls.split(",")], int(shrunk), int(batch))
    finally:
        _psql(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        shutil.rmtree(data_dir, ignore_errors=True)


def child(mode: str) -> None:
    """Runs in its own process with the mode's database settings."""
    import django

    django.setup()
    from arksim import Simulator
    from tasks_app.lib import transport
    from tasks_app.models import Account
    from tasks_app.services import sync

    sim = Simulator(
        api_keys=("bench-key",), list_rate_per_second=None, get_rate_per_second=None,
        delete_rate_per_second=None, rng_seed=7, max_queued_per_key=None, **MODES[mode],
    )  # fmt: skip
    now = sim.clock.now()
    for index in range(QUEUED + RUNNING):
        status = "queued" if index < QUEUED else "running"
        sim.add_task(status=status, created_at=now - 60 - index, queue_seconds=10 * DAY, run_seconds=10 * DAY)
    for index in range(FINISHED):
        sim.add_task(status="succeeded" if index % 10 else "failed", created_at=now - 3600 - index * 120)
    account = Account(name="bench", base_url="http://arksim.test/api/v3")
    account.set_api_key("bench-key")
    account.save()
    calls: list[int] = []
    reports = []

    def cycle(**kwargs) -> None:
        sim.reset_stats()
        report = sync.sync_account(account=account, **kwargs)
        if report.errors:
            raise SystemExit(f"{mode}: {report}")
        calls.append(sim.stats()["list"])
        reports.append(report)

    with transport.routed_to(sim.transport()):
        cycle()
        sim.advance(1)
        cycle(full_sweep=None)
        sim.advance(1)
        cycle(full_sweep=None)
        for _ in range(10):
            sim.add_task(status="queued", queue_seconds=10 * DAY)
        for _ in range(5):
            sim.add_task(status="queued", queue_seconds=0.5, run_seconds=0.5)
        sim.advance(2)
        cycle(full_sweep=None)
        cycle(full_sweep=True)
    shrunk = sum(report.batch_shrunk for report in reports)
    batch = reports[-1].batch_size or 0
    print(f"R|{','.join(map(str, calls))}|{shrunk}|{batch}", flush=True)


def markdown(rows: list[Row]) -> str:
    lines = [
        SECTION,
        "",
        f"`bench/bench_contract.py`, {datetime.now(UTC):%Y-%m-%d}. Machine: {platform.node()}, "
        f"{machine_summary()} ({_lscpu()}), PostgreSQL {postgres_version(POSTGRES)}; the CPUs were shared "
        "with other work (only call counts are reported, and they do not depend on it).",
        "",
        f"{QUEUED + RUNNING:,} active tasks ({QUEUED} queued, {RUNNING} running) and {FINISHED:,} finished ones",
        "in the in-process simulator; list calls per `sync_account` cycle, counted by the simulator.",
        "",
        "| mode | " + " | ".join(STEPS) + " | refused for size | ids per call at the end |",
        "|---|" + "---:|" * (len(STEPS) + 2),
    ]
    for row in rows:
        lines.append(f"| {row.mode} | " + " | ".join(map(str, row.calls)) + f" | {row.shrunk} | {row.batch} |")
    lines += [
        "",
        "Reading it: an ordinary cycle costs ⌈active/batch⌉ calls for the refresh, one for the",
        "queued tasks and one for the window's total, whatever the order; a new task that finished",
        "between two cycles costs a status read more. Where a limit refuses the batch, the first",
        "ordinary cycle pays the refused calls and later cycles reuse the size that worked. A",
        "shuffled order makes sweeps read pages several times over (pages overlap).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write-docs", action="store_true", help=f"update the {SECTION!r} section of {DOCS}")
    parser.add_argument("--child", metavar="MODE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    rows = []
    for mode in MODES:
        rows.append(run_mode(mode))
        print(f"[{mode}] {rows[-1].calls}", flush=True)
    section = markdown(rows)
    print(section)
    if args.write_docs:
        write_docs_section(SECTION, section)
        print(f"updated {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
