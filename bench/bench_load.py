"""Load benchmark: 100 people watching the dashboard for a minute, against the harness.

    .venv/bin/python bench/bench_load.py                  # about four minutes
    .venv/bin/python bench/bench_load.py --viewers 50 --seconds 30
    .venv/bin/python bench/bench_load.py --write-docs      # also update docs/benchmarks.md

The production-like harness (harness/: gunicorn, two Celery workers, beat, PostgreSQL,
Redis, S3, the simulator) is seeded with 300 tasks: 100 queued and 50 running for hours
(live rows, refreshed by every sync cycle) and 150 finished. Then, for --seconds each:

1. baseline: nobody looks; the upstream calls the sync makes are counted;
2. load: --viewers people keep the task list open: each loads the page (50 rows), then
   polls its live rows every 3 s like the page's htmx poll does, and reloads the page
   every 30 s. Every request's latency and status is recorded, and the upstream calls
   are counted again.

The dashboard reads only the local mirror, so the second count must not be higher.
Viewers share a few signed-in sessions (logging 100 people in would only measure the
password hasher).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import re
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import DOCS, write_docs_section  # noqa: E402
from harness import Harness, HarnessConfig  # noqa: E402
from harness.clients import parse_rows  # noqa: E402

SECTION = "## Load"
UPSTREAM = ("list", "get", "delete", "create")
POLL_EVERY = 3.0
RELOAD_EVERY = 30.0
SESSIONS = 4


@dataclass
class LoadResult:
    viewers: int
    seconds: float
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    errors: list[str] = field(default_factory=list)
    upstream_baseline: dict[str, int] = field(default_factory=dict)
    upstream_load: dict[str, int] = field(default_factory=dict)
    cycles_baseline: tuple[int, int] = (0, 0)  # sync cycles, upstream calls they made
    cycles_load: tuple[int, int] = (0, 0)
    retried: int = 0  # keep-alive races a browser retries silently

    @staticmethod
    def per_cycle(cycles: tuple[int, int]) -> float:
        return cycles[1] / cycles[0] if cycles[0] else 0.0

    @property
    def requests(self) -> int:
        return sum(len(values) for values in self.latencies.values())

    @property
    def failed(self) -> int:
        bad = sum(n for kind in self.statuses.values() for status, n in kind.items() if status >= 400)
        return bad + len(self.errors)


def seed(harness: Harness) -> None:
    sim = harness.sim
    rng = random.Random(7)
    for number in range(300):
        kind = "video" if number % 3 else "3d"
        if number < 100:
            sim.add_task(kind=kind, queue_seconds=36_000)
        elif number < 150:
            sim.add_task(kind=kind, status="running", run_seconds=36_000)
        else:
            status = rng.choice(["succeeded"] * 8 + ["failed"])
            sim.add_task(kind=kind, status=status, created_at=time.time() - rng.uniform(600, 5 * 86400))


def wait_mirrored(harness: Harness, count: int, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (tasks, unsettled) = harness.db.query(
            "SELECT (SELECT count(*) FROM tasks_app_task),"
            " (SELECT count(*) FROM tasks_app_artifact WHERE state IN ('pending', 'copying', 'failed'))"
        )[0]
        if tasks >= count and not unsettled:
            return
        time.sleep(1)
    raise RuntimeError("the mirror did not settle in time")


def upstream_calls(harness: Harness) -> dict[str, int]:
    stats = harness.sim.stats()
    return {name: stats[name] for name in UPSTREAM}


def sessions(harness: Harness, count: int) -> list[dict[str, str]]:
    cookies = []
    for _ in range(count):
        with harness.dashboard() as dashboard:
            cookies.append(dict(dashboard.http.cookies))
    return cookies


def answer_request(client: httpx.AsyncClient, kind: str, live: list[tuple[int, int]]) -> httpx.Request:
    if kind == "page":
        return client.build_request("GET", "/")
    rows = ",".join(f"{pk}.{version}" for pk, version in live)
    return client.build_request(
        "GET", "/tasks/rows/", params={"rows": rows, "health": "ok"}, headers={"HX-Request": "true"}
    )


def sync_cycles(harness: Harness, since: datetime, until: datetime) -> tuple[int, int]:
    """(cycles, upstream calls) of the sync cycles the workers logged in [since, until)."""
    cycles = calls = 0
    for name in harness.worker_names:
        for line in harness.logs_of(name).splitlines():
            if '"logger": "tasks_app.services.sync"' not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            match = re.match(r"sync \S+: (\d+) calls", entry.get("msg", ""))
            when = datetime.fromisoformat(entry["ts"].replace("Z", "+00:00"))
            if match and since <= when < until:
                cycles += 1
                calls += int(match[1])
    return cycles, calls


async def viewer(
    base_url: str, cookies: dict[str, str], *, until: float, result: LoadResult, rng: random.Random
) -> None:
    async with httpx.AsyncClient(base_url=base_url, cookies=cookies, timeout=30.0) as client:
        await asyncio.sleep(rng.uniform(0, POLL_EVERY))  # people do not arrive in lockstep
        live: list[tuple[int, int]] = []
        next_reload = 0.0
        while time.monotonic() < until:
            tick = time.monotonic()
            if tick >= next_reload:
                kind = "page"
                next_reload = tick + RELOAD_EVERY
            else:
                kind = "poll"
            request = client.send(answer_request(client, kind, live))
            started = time.perf_counter()
            try:
                try:
                    answer = await request
                except httpx.RemoteProtocolError:
                    # The server closed an idle kept-alive connection as we reused it:
                    # browsers resend a GET then, and so do we (counted apart).
                    result.retried += 1
                    started = time.perf_counter()
                    answer = await client.send(answer_request(client, kind, live))
            except httpx.HTTPError as error:
                result.errors.append(f"{kind}: {type(error).__name__}")
                await asyncio.sleep(POLL_EVERY)
                continue
            result.latencies[kind].append(time.perf_counter() - started)
            result.statuses[kind][answer.status_code] += 1
            if answer.status_code == 200:
                found = {row.pk: row for row in parse_rows(answer.text)}
                if kind == "page":
                    live = [(row.pk, row.version) for row in found.values() if row.live]
                else:
                    live = [(pk, found[pk].version if pk in found else version) for pk, version in live]
            await asyncio.sleep(max(0.0, tick + POLL_EVERY - time.monotonic()))


async def load(
    base_url: str, cookies: list[dict[str, str]], *, viewers: int, seconds: float, result: LoadResult
) -> None:
    until = time.monotonic() + seconds
    rng = random.Random(11)
    await asyncio.gather(
        *(
            viewer(base_url, cookies[n % len(cookies)], until=until, result=result, rng=rng)
            for n in range(viewers)
        )
    )


def run(*, viewers: int, seconds: float, web_workers: int) -> LoadResult:
    result = LoadResult(viewers=viewers, seconds=seconds)
    config = HarnessConfig(workers=2, web_workers=web_workers, sync_interval_seconds=2)
    with Harness(config) as harness:
        print(f"harness up at {harness.web_url}; seeding 300 tasks", flush=True)
        seed(harness)
        wait_mirrored(harness, 300)
        cookies = sessions(harness, SESSIONS)

        print(f"baseline: {seconds:.0f}s without viewers", flush=True)
        before, since = upstream_calls(harness), datetime.now(UTC)
        time.sleep(seconds)
        after, until = upstream_calls(harness), datetime.now(UTC)
        result.upstream_baseline = {name: after[name] - before[name] for name in UPSTREAM}

        print(f"load: {viewers} viewers for {seconds:.0f}s", flush=True)
        before, load_since = upstream_calls(harness), datetime.now(UTC)
        asyncio.run(load(harness.web_url, cookies, viewers=viewers, seconds=seconds, result=result))
        after, load_until = upstream_calls(harness), datetime.now(UTC)
        result.upstream_load = {name: after[name] - before[name] for name in UPSTREAM}
        time.sleep(3)  # the last cycles' log lines
        result.cycles_baseline = sync_cycles(harness, since, until)
        result.cycles_load = sync_cycles(harness, load_since, load_until)
    return result


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def report(result: LoadResult, *, web_workers: int) -> str:
    lines = [
        SECTION,
        "",
        f"`bench/bench_load.py --viewers {result.viewers} --seconds {result.seconds:.0f}`, "
        f"{datetime.now(UTC):%Y-%m-%d}. Machine: {platform.machine()}, {_cpus()} CPUs; Python {platform.python_version()}; "
        f"everything on one machine (gunicorn {web_workers} workers × 4 threads, 2 Celery workers, beat, "
        "PostgreSQL, Redis, moto S3, the simulator, and the viewers themselves), so latencies are indicative.",
        "",
        f"300 tasks in the mirror (150 of them live). {result.viewers} viewers keep the task list open for "
        f"{result.seconds:.0f} s: the page (50 rows) every {RELOAD_EVERY:.0f} s and the live poll every {POLL_EVERY:.0f} s in between.",
        "",
        "| request | count | non-2xx | p50 | p95 | p99 | max |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in ("page", "poll"):
        values = result.latencies.get(kind, [])
        bad = sum(n for status, n in result.statuses[kind].items() if status >= 300)
        lines.append(
            f"| {'task list page' if kind == 'page' else 'live poll (`/tasks/rows/`)'} | {len(values)} | {bad} | "
            + " | ".join(f"{1000 * percentile(values, q):.0f} ms" for q in (0.5, 0.95, 0.99))
            + f" | {1000 * max(values, default=0):.0f} ms |"
        )
    rate = result.requests / result.seconds if result.seconds else 0
    base, under = result.upstream_baseline, result.upstream_load
    lines += [
        "",
        f"{result.requests} requests ({rate:.0f}/s), {result.failed} failed"
        + (f" ({', '.join(sorted(set(result.errors)))})" if result.errors else "")
        + f", {result.retried} resent after the server closed an idle keep-alive connection (as browsers do)"
        + f"; median poll {1000 * statistics.median(result.latencies['poll'] or [0]):.0f} ms.",
        "",
        "| upstream calls to Ark | list | get | delete | create | sync cycles | calls per cycle |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| {result.seconds:.0f} s, nobody watching | {base['list']} | {base['get']} | {base['delete']} | {base['create']} "
        f"| {result.cycles_baseline[0]} | {result.per_cycle(result.cycles_baseline):.2f} |",
        f"| {result.seconds:.0f} s, {result.viewers} viewers | {under['list']} | {under['get']} | {under['delete']} "
        f"| {under['create']} | {result.cycles_load[0]} | {result.per_cycle(result.cycles_load):.2f} |",
        "",
        "Calls are the simulator's count; cycles and their calls come from the workers' logs.",
        "Reading it: views read the local mirror only, so the sync alone calls Ark, the same",
        "number of times per cycle with or without viewers (the list budget, 0.95 call/s,",
        "allows about 57 a minute; the windows' edges add a call or two). Viewers cost",
        "database reads, not Ark budget; an idle poll is a 204 with no body.",
    ]
    return "\n".join(lines) + "\n"


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def write_docs(section: str) -> None:
    write_docs_section(SECTION, section)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--web-workers", type=int, default=2, help="gunicorn worker processes (4 threads each)"
    )
    parser.add_argument("--write-docs", action="store_true", help=f"update the {SECTION!r} section of {DOCS}")
    args = parser.parse_args()
    if args.viewers < 1 or args.seconds < 5:
        parser.error("use at least 1 viewer and 5 seconds")
    result = run(viewers=args.viewers, seconds=args.seconds, web_workers=args.web_workers)
    section = report(result, web_workers=args.web_workers)
    print("\n" + section)
    if args.write_docs:
        write_docs(section)
    # No increase: the same calls per sync cycle, and nothing but the sync's list calls.
    more_calls = result.per_cycle(result.cycles_load) > result.per_cycle(
        result.cycles_baseline
    ) + 0.05 or any(
        result.upstream_load[name] > result.upstream_baseline[name] for name in ("get", "delete", "create")
    )
    return 1 if result.failed or more_calls else 0


if __name__ == "__main__":
    sys.exit(main())
