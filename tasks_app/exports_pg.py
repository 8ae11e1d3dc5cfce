"""The CSV export on PostgreSQL: the database formats the rows (`COPY (SELECT …) TO STDOUT`).

The SELECT wraps the filtered list's own query (its filters, access rule and order) and
formats every column as the Python writer in views_export does: times in the viewer's
zone like `datetime.isoformat()`, run time like `Task.run_time` rounded like `round()`,
"" for what is missing. The bytes are the same as the Python writer's for the same rows
(tests/test_export_copy.py compares them), without a Python object per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import lru_cache

from django.db import connections, transaction

from .exports import OUTPUTS, TASK_FIELDS
from .filters import TaskFilter, ordering
from .models import ACTIVE_STATUSES, Artifact, ArtifactState, TaskStatus

# Bytes gathered from the COPY before they go to the client: a few socket writes per
# thousand rows, and memory holds one piece whatever the number of rows.
PIECE_BYTES = 256 * 1024


@dataclass(frozen=True)
class CopyExport:
    """What the SELECT needs besides the filters, all passed as query parameters."""

    filterset: TaskFilter
    account_names: dict[int, str]
    url_head: str  # a download link is url_head + "/" + artifact id + "/" + url_tail
    url_tail: str
    zone_name: str
    now: datetime  # active tasks run until now (Task.run_time)


def zone_name(zone: tzinfo, *, using: str) -> str | None:
    """The IANA name of `zone` if PostgreSQL knows it too, else None (and Python writes the CSV)."""
    name = getattr(zone, "key", None)
    return name if name is not None and _postgres_knows_zone(using, name) else None


@lru_cache(maxsize=512)
def _postgres_knows_zone(using: str, name: str) -> bool:
    # Python and PostgreSQL may read different time zone databases: an unknown name would
    # stop the COPY after the header has gone out. Asked once per name and process.
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT FROM pg_timezone_names WHERE name = %s)", [name])
        return cursor.fetchone()[0]


def copy_statement(export: CopyExport) -> tuple[str, list]:
    """`COPY (SELECT …) TO STDOUT WITH (FORMAT csv)` and its parameters (none interpolated)."""
    select, params = export_select(export)
    return f"COPY ({select}) TO STDOUT WITH (FORMAT csv)", params


def export_select(export: CopyExport) -> tuple[str, list]:
    """The SELECT of the export's columns, in views_export.COLUMNS' order, with its parameters.

    The list's query stays a subquery with its ORDER BY (PostgreSQL never flattens an
    ordered subquery), and the outputs are a LATERAL aggregate read per task in a nested
    loop over it, so the rows come in the list's order.
    """
    filterset = export.filterset
    tasks = filterset.qs.order_by(*ordering(filterset.chosen_sort)).values_list(*TASK_FIELDS)
    tasks_sql, tasks_params = tasks.query.get_compiler(using=tasks.db).as_sql()
    columns: list[tuple[str, list]] = [
        ("NULLIF(t.ark_id, '')", []),
        ("(%s::text[])[array_position(%s::bigint[], t.account_id)]",
         [list(export.account_names.values()), list(export.account_names)]),
        ("NULLIF(t.kind, '')", []),
        ("NULLIF(t.model, '')", []),
        ("NULLIF(t.status, '')", []),
        _isoformat("t.ark_created_at"),
        _isoformat("t.ark_updated_at"),
        _run_seconds(export.now),
        ("t.total_tokens", []),
        ("NULLIF(t.error_code, '')", []),
        ("NULLIF(t.archive_state, '')", []),
    ]  # fmt: skip
    for n in range(len(OUTPUTS)):
        columns += [
            (f"o.size_{n}", []),
            (f"o.sha256_{n}", []),
            (f"%s || '/' || o.link_{n} || '/' || %s", [export.url_head, export.url_tail]),
        ]
    outputs_sql, outputs_params = _outputs_lateral()
    select_params = [param for _sql, params in columns for param in params]
    sql = (
        f"SELECT {', '.join(sql for sql, _params in columns)} "
        f"FROM ({tasks_sql}) AS t({', '.join(TASK_FIELDS)}) "
        f"CROSS JOIN LATERAL ({outputs_sql}) AS o"
    )
    return sql, [*select_params, *tasks_params, *outputs_params]


def _isoformat(column: str) -> tuple[str, list]:
    """`column` in the session's zone (the viewer's, see copy_pieces) as Python's isoformat()
    writes it: microseconds only when there are some, the offset as ±HH:MM.

    Before 1973 some zones' offsets had seconds (local mean time; Liberia's until 1972),
    which isoformat() writes as ±HH:MM:SS and TZH:TZM cannot: those times take the long way.
    """
    offset = f"date_part('timezone', {column})::integer"
    exact = (
        f"to_char({column}, 'YYYY-MM-DD\"T\"HH24:MI:SS')"
        f" || CASE WHEN date_trunc('second', {column}) = {column} THEN '' ELSE to_char({column}, '.US') END"
        f" || CASE WHEN {offset} < 0 THEN '-' ELSE '+' END"
        f" || to_char(abs({offset}) / 3600, 'FM00') || ':' || to_char(abs({offset}) / 60 %% 60, 'FM00')"
        f" || CASE WHEN {offset} %% 60 = 0 THEN '' ELSE ':' || to_char(abs({offset}) %% 60, 'FM00') END"
    )
    sql = (
        f"CASE WHEN {column} < '1973-01-01T00:00:00+00:00' THEN {exact}"
        f" WHEN date_trunc('second', {column}) = {column} THEN to_char({column}, 'YYYY-MM-DD\"T\"HH24:MI:SSTZH:TZM')"
        f" ELSE to_char({column}, 'YYYY-MM-DD\"T\"HH24:MI:SS.USTZH:TZM') END"
    )
    return sql, []


def _run_seconds(now: datetime) -> tuple[str, list]:
    """Task.run_time in seconds, rounded half to even like Python's round() (float8 round()
    is rint()); NULL when the task has no start or no end."""
    start = "COALESCE(t.started_at, CASE WHEN t.status = ANY(%s) THEN t.ark_created_at END)"
    end = "CASE WHEN t.status = ANY(%s) THEN COALESCE(t.gone_upstream_at, %s) ELSE COALESCE(t.finished_at, t.ark_updated_at) END"
    start_params, end_params = [[TaskStatus.SUCCEEDED, TaskStatus.FAILED]], [list(ACTIVE_STATUSES), now]
    sql = f"CASE WHEN {end} < {start} THEN 0 ELSE round(date_part('epoch', {end} - {start}))::bigint END"
    return sql, [*end_params, *start_params, *end_params, *start_params]


def _outputs_lateral() -> tuple[str, list]:
    """One row per task: each output's size, sha256 and (archived only) id, NULL when missing."""
    meta = Artifact._meta
    table = meta.db_table
    column = {name: meta.get_field(name).column for name in ("task", "output", "state", "size", "sha256")}
    parts, params = [], []
    for n, output in enumerate(OUTPUTS):
        parts += [
            f"max(a.{column['size']}) FILTER (WHERE a.{column['output']} = %s) AS size_{n}",
            f"max(NULLIF(a.{column['sha256']}, '')) FILTER (WHERE a.{column['output']} = %s) AS sha256_{n}",
            f"max(a.{meta.pk.column}) FILTER (WHERE a.{column['output']} = %s AND a.{column['state']} = %s) AS link_{n}",
        ]
        params += [output, output, output, ArtifactState.ARCHIVED]
    sql = f'SELECT {", ".join(parts)} FROM "{table}" AS a WHERE a.{column["task"]} = t.id'
    return sql, params


def copy_pieces(export: CopyExport, *, using: str) -> Iterator[bytes]:
    """The CSV rows of `export` as PostgreSQL writes them, streamed in pieces of about
    PIECE_BYTES, each record ended by CRLF like Python's csv module.

    One savepoint (or transaction) that is always rolled back: the export writes nothing,
    and its settings end with it. A database error is raised as Django's, marking the
    connection for a check before it serves another request.
    """
    statement, params = copy_statement(export)
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        # A long export may outlast a statement timeout meant for pages; PostgreSQL's JIT
        # compiles this plan's many expressions for longer than it then saves (EXPLAIN
        # ANALYZE of the export's query); times are written in the viewer's zone. The
        # settings end with the savepoint or transaction.
        cursor.execute(
            "SELECT set_config('statement_timeout', '0', true), set_config('jit', 'off', true),"
            " set_config('TimeZone', %s, true)",
            [export.zone_name],
        )
        with connection.wrap_database_errors, cursor.cursor.copy(statement, params) as copy:
            yield from crlf_records(_gathered(copy, PIECE_BYTES))
        transaction.set_rollback(True, using=using)  # an error or a closed stream rolls back too


def _gathered(blocks: Iterable, size: int) -> Iterator[bytes]:
    """`blocks` (a row each, from the COPY) joined into pieces of at least `size` bytes."""
    piece, length = [], 0
    for block in blocks:
        piece.append(block)
        length += len(block)
        if length >= size:
            yield b"".join(piece)
            piece, length = [], 0
    if piece:
        yield b"".join(piece)


def crlf_records(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """CSV from PostgreSQL (records end in LF) with records ending in CRLF instead.

    A newline inside a quoted field stays as it is: a newline ends a record only after an
    even number of quote characters (escaped quotes come in pairs).
    """
    quoted = False
    for piece in pieces:
        if not quoted and b'"' not in piece:
            yield piece.replace(b"\n", b"\r\n")
            continue
        parts = piece.split(b'"')
        for n in range(len(parts)):
            if not quoted:
                parts[n] = parts[n].replace(b"\n", b"\r\n")
            if n < len(parts) - 1:
                quoted = not quoted
        yield b'"'.join(parts)
