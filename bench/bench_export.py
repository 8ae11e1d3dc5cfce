"""Export benchmark: the CSV export of 1,000,000 tasks on PostgreSQL, its speed and its memory.

    nice .venv/bin/python bench/bench_export.py                      # 1,000,000 tasks
    nice .venv/bin/python bench/bench_export.py --tasks 100000
    nice .venv/bin/python bench/bench_export.py --write-docs         # also update docs/benchmarks.md
    nice .venv/bin/python bench/bench_export.py --only-copy          # only the export as served

The mirror is bench_dashboard's (its SQL seeding: 180 days, an artifact row per output of
every succeeded task). One signed-in GET of /tasks/export.csv goes through Django's whole
WSGI stack in this process; the answer is read piece by piece, as a server writes it to its
socket, and thrown away. The process's resident memory is sampled every 50,000 rows:
flat means the last sample is no higher than the first, give or take a few MB.

The export is measured as served on PostgreSQL (the database writes the CSV with COPY), then,
on the same mirror in the same run, two other ways for the ratios: the same SELECT's text
columns read through a server-side cursor and written by csv.writer.writerows (the
alternative to COPY), and the Python writer that SQLite uses (the export before COPY). The
peak resident memory is reset before each (Linux clear_refs), so each peak is its own.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make the project importable

from bench.bench_dashboard import _psql, load_average, machine, seed, setup_django, sign_in_cookie  # noqa: E402
from bench.support import write_docs_section  # noqa: E402

SECTION = "## Export"
RSS_GOAL_MB = 150.0
ROWS_PER_SECOND_GOAL = 50_000
SAMPLE_EVERY = 50_000  # rows


def rss_mb() -> tuple[float, float]:
    """(resident now, peak resident) of this process in MB, from /proc."""
    status = Path("/proc/self/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def reset_peak_rss() -> None:
    """Start VmHWM again from the current resident size (Linux 4.0 and later)."""
    Path("/proc/self/clear_refs").write_text("5")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def export(handler, cookie: str) -> dict:
    """One GET of the CSV export, read piece by piece; rows, seconds and memory samples."""
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": "/tasks/export.csv", "QUERY_STRING": "", "SERVER_NAME": "testserver",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "testserver", "HTTP_COOKIE": cookie,
        "REMOTE_ADDR": "127.0.0.1", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.multithread": False,
        "wsgi.multiprocess": True, "wsgi.run_once": False,
    }  # fmt: skip
    captured: dict = {}

    def start_response(status, headers, exc_info=None):
        captured["status"] = status

    reset_peak_rss()
    before = rss_mb()
    cpu = cpu_seconds()
    started = time.perf_counter()
    response = handler(environ, start_response)
    rows, size, samples, next_sample = -1, 0, [], SAMPLE_EVERY  # -1: the header line
    for piece in response:
        size += len(piece)
        rows += piece.count(b"\n")
        if rows >= next_sample:
            samples.append((rows, rss_mb()[0]))
            next_sample += SAMPLE_EVERY
    if hasattr(response, "close"):
        response.close()
    seconds = time.perf_counter() - started
    return {"status": captured["status"], "rows": rows, "bytes": size, "seconds": seconds, "samples": samples,
            "before": before, "after": rss_mb(), "cpu": cpu_seconds() - cpu}


def text_rows_writer(export, *, using: str):
    """The alternative to COPY: the same SELECT, its text columns read through a server-side
    cursor and written by csv.writer.writerows, a few thousand rows at a time."""
    from django.db import connections, transaction

    from tasks_app import exports_pg

    select, params = exports_pg.export_select(export)
    connection = connections[using]
    with transaction.atomic(using=using):
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('jit', 'off', true), set_config('TimeZone', %s, true)",
                           [export.zone_name])
        with connection.connection.cursor(name="bench_export") as rows:
            rows.execute(select, params)
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            while chunk := rows.fetchmany(5000):
                writer.writerows(chunk)
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
        transaction.set_rollback(True, using=using)


def run(count: int, *, others_too: bool) -> dict[str, dict]:
    """{"copy": the export as served, and when `others_too`, "rows": the alternative to COPY,
    "python": the Python writer}."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connections

    database = f"arkdash_bench_export_{os.getpid()}"
    _psql(f"CREATE DATABASE {database}")
    try:
        setup_django(tempfile.mkdtemp(prefix="arkdash-bench-"), database)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        started = time.monotonic()
        seed(count)
        print(f"seeded {count:,} tasks in {time.monotonic() - started:.0f} s", flush=True)
        cookie = sign_in_cookie()
        handler = WSGIHandler()
        results = {"copy": export(handler, cookie)}
        print(summary("copy", results["copy"]), flush=True)
        if others_too:
            from tasks_app import exports_pg, views_export

            by_copy = exports_pg.copy_pieces
            exports_pg.copy_pieces = text_rows_writer
            try:
                results["rows"] = export(handler, cookie)
            finally:
                exports_pg.copy_pieces = by_copy
            print(summary("rows", results["rows"]), flush=True)
            by_database = views_export.database_writes_csv
            views_export.database_writes_csv = lambda using, zone: False
            try:
                results["python"] = export(handler, cookie)
            finally:
                views_export.database_writes_csv = by_database
            print(summary("python", results["python"]), flush=True)
        return results
    finally:
        connections["default"].close()
        _psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def summary(name: str, result: dict) -> str:
    return (f"{name}: {result['status']}, {result['rows']:,} rows in {result['seconds']:.1f} s "
            f"({result['rows'] / result['seconds']:,.0f} rows/s), {result['cpu']:.1f} s CPU, "
            f"peak {result['after'][1]:.0f} MB")


def memory(result: dict) -> tuple[float, float, float, bool]:
    """(first sample, last sample, peak) in MB, and whether it stayed flat."""
    samples = result["samples"]
    first, last = (samples[0][1], samples[-1][1]) if samples else (result["before"][0], result["after"][0])
    return first, last, result["after"][1], last - first <= 10


def markdown(count: int, results: dict[str, dict]) -> str:
    result = results["copy"]
    rate = result["rows"] / result["seconds"]
    samples = result["samples"]
    first, last, peak, flat = memory(result)
    verdict = "met" if flat and peak < RSS_GOAL_MB and rate >= ROWS_PER_SECOND_GOAL else "not met"
    shown = samples[:: max(1, len(samples) // 5)]
    lines = [
        SECTION,
        "",
        f"`bench/bench_export.py --tasks {count}`, {datetime.now(UTC):%Y-%m-%d}. Machine: {machine()}.",
        "",
        f"{count:,} tasks in PostgreSQL, seeded as in the Dashboard section. One signed-in GET of",
        "`/tasks/export.csv` (no filter: every row) through Django's WSGI handler in one process,",
        "the answer read piece by piece and thrown away, as a server writes it to its socket.",
        "PostgreSQL writes the CSV (`COPY (SELECT …) TO STDOUT` of the list's own query, see",
        "tasks_app/exports_pg.py); the process passes its bytes on.",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| status | {result['status']} |",
        f"| rows | {result['rows']:,} |",
        f"| bytes | {result['bytes']:,} |",
        f"| time | {result['seconds']:.1f} s |",
        f"| rows per second | {rate:,.0f} |",
        f"| CPU time of this process (user + system; PostgreSQL's is not counted) | {result['cpu']:.1f} s |",
        f"| resident memory before the request | {result['before'][0]:.0f} MB |",
        *(f"| resident memory after {rows:,} rows | {mb:.0f} MB |" for rows, mb in shown),
        f"| resident memory at the end | {result['after'][0]:.0f} MB |",
        f"| peak resident memory during the request (VmHWM, reset before it) | {peak:.0f} MB |",
        "",
        f"- Goal, memory flat and peak < {RSS_GOAL_MB:.0f} MB, at least {ROWS_PER_SECOND_GOAL:,} rows/s: "
        f"**{verdict}** ({'flat' if flat else 'growing'}: {first:.0f} MB after the first {SAMPLE_EVERY:,} rows, "
        f"{last:.0f} MB at the last sample; peak {peak:.0f} MB; {rate:,.0f} rows/s).",
    ]
    if "python" in results:
        before, rows = results["python"], results["rows"]
        before_rate = before["rows"] / before["seconds"]
        rows_rate = rows["rows"] / rows["seconds"]
        lines += [
            "",
            "Before and after, and the alternative to COPY, measured in the same run on the same",
            "mirror, each a whole export through the same view:",
            "",
            "| CSV written by | rows | bytes | rows per second | CPU time of this process | peak resident memory |",
            "|---|---:|---:|---:|---:|---:|",
            *(f"| {label} | {r['rows']:,} | {r['bytes']:,} | {r['rows'] / r['seconds']:,.0f} | {r['cpu']:.1f} s "
              f"| {memory(r)[2]:.0f} MB |"
              for label, r in (
                  ("before: Python, csv.writer over the model's values (what SQLite still uses)", before),
                  ("the alternative: the same SELECT's text columns, csv.writer.writerows", rows),
                  ("after: PostgreSQL, `COPY (SELECT …) TO STDOUT` (as served)", result))),
            "",
            f"- Ratio, after to before: **{rate / before_rate:.1f}×** the rows per second "
            f"(the alternative: {rows_rate / before_rate:.1f}×; COPY to the alternative: {rate / rows_rate:.1f}×).",
        ]  # fmt: skip
    lines.append(f"- Load average (1, 5, 15 min) at the end of the run: {load_average()}.")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1_000_000, help="mirror size")
    parser.add_argument("--write-docs", action="store_true", help="replace the section in docs/benchmarks.md")
    parser.add_argument("--only-copy", action="store_true", help="skip the other two ways (no ratios)")
    args = parser.parse_args()
    text = markdown(args.tasks, run(args.tasks, others_too=not args.only_copy))
    print(text)
    if args.write_docs:
        write_docs_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
