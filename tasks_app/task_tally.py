"""The task tally: tasks counted per (account, status, kind, archive state, model, UTC day).

The status chips count every task the list's filter matches. Counted on the task table
that reads every matching index entry (~80,000 at 100k tasks, a third of a fresh render);
summed from the tally it reads one row per key and day (~1,000 for 30 days).

The database keeps the tally itself, with triggers on tasks_app_task, so every write
(ORM, bulk, raw SQL, in any process) moves it in the writer's own transaction: a reader
sees the tally and the tasks of one and the same commit. Triggers only append signed
rows (+1 for the new state, -1 for the old); they never update a shared row, so
concurrent writers never wait on each other or deadlock on it. `compact()` (beat, every
minute) folds the rows of each key into one.

A filter the tally does not know (pasted task ids) counts on the task table. A time
range counts its whole UTC days from the tally and the part days at its edges from the
task table (a day's tasks at most, through the ark_created_at index).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Count, QuerySet, Sum

TABLE = "tasks_app_tasktally"
KEY = ("account_id", "status", "kind", "archive_state", "model", "day")
_COLUMNS = ", ".join(KEY)

# --- what the database runs on each write -----------------------------------------------

# PostgreSQL: inserts and deletes aggregate their whole statement (a bulk_create of
# 5,000 tasks appends a few dozen rows); an update fires per row, and only when a
# tallied column changed (most updates touch sync times and URLs only).
_PG_DAY = "(({row}.ark_created_at AT TIME ZONE 'UTC')::date)"


def _pg_statement_function(name: str, *, rows: str, count: str) -> str:
    """A statement trigger's function: the statement's rows (a transition table), counted per key."""
    return f"""
    CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO {TABLE} ({_COLUMNS}, n)
        SELECT r.account_id, r.status, r.kind, r.archive_state, r.model, {_PG_DAY.format(row="r")}, {count}
        FROM {rows} r GROUP BY 1, 2, 3, 4, 5, 6;
        RETURN NULL;
    END $$
    """


_POSTGRESQL_INSTALL = [
    _pg_statement_function("tasks_app_tally_inserted", rows="tally_new_rows", count="count(*)"),
    _pg_statement_function("tasks_app_tally_deleted", rows="tally_old_rows", count="-count(*)"),
    f"""
    CREATE OR REPLACE FUNCTION tasks_app_tally_updated() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO {TABLE} ({_COLUMNS}, n) VALUES
            (OLD.account_id, OLD.status, OLD.kind, OLD.archive_state, OLD.model, {_PG_DAY.format(row="OLD")}, -1),
            (NEW.account_id, NEW.status, NEW.kind, NEW.archive_state, NEW.model, {_PG_DAY.format(row="NEW")}, 1);
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER tasks_app_task_tally_insert AFTER INSERT ON tasks_app_task
    REFERENCING NEW TABLE AS tally_new_rows FOR EACH STATEMENT EXECUTE FUNCTION tasks_app_tally_inserted()
    """,
    """
    CREATE TRIGGER tasks_app_task_tally_delete AFTER DELETE ON tasks_app_task
    REFERENCING OLD TABLE AS tally_old_rows FOR EACH STATEMENT EXECUTE FUNCTION tasks_app_tally_deleted()
    """,
    """
    CREATE TRIGGER tasks_app_task_tally_update AFTER UPDATE ON tasks_app_task FOR EACH ROW
    WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id OR OLD.status IS DISTINCT FROM NEW.status
          OR OLD.kind IS DISTINCT FROM NEW.kind OR OLD.archive_state IS DISTINCT FROM NEW.archive_state
          OR OLD.model IS DISTINCT FROM NEW.model OR OLD.ark_created_at IS DISTINCT FROM NEW.ark_created_at)
    EXECUTE FUNCTION tasks_app_tally_updated()
    """,
]
_POSTGRESQL_UNINSTALL = [
    "DROP TRIGGER IF EXISTS tasks_app_task_tally_insert ON tasks_app_task",
    "DROP TRIGGER IF EXISTS tasks_app_task_tally_delete ON tasks_app_task",
    "DROP TRIGGER IF EXISTS tasks_app_task_tally_update ON tasks_app_task",
    "DROP FUNCTION IF EXISTS tasks_app_tally_inserted()",
    "DROP FUNCTION IF EXISTS tasks_app_tally_deleted()",
    "DROP FUNCTION IF EXISTS tasks_app_tally_updated()",
]

# SQLite has row triggers only. Django stores a datetime as UTC text, 'YYYY-MM-DD HH:MM:SS…',
# so its first ten characters are the UTC day.
_SQLITE_ROW = "{row}.account_id, {row}.status, {row}.kind, {row}.archive_state, {row}.model, substr({row}.ark_created_at, 1, 10)"
_SQLITE_INSTALL = [
    f"""
    CREATE TRIGGER tasks_app_task_tally_insert AFTER INSERT ON tasks_app_task BEGIN
        INSERT INTO {TABLE} ({_COLUMNS}, n) VALUES ({_SQLITE_ROW.format(row="NEW")}, 1);
    END
    """,
    f"""
    CREATE TRIGGER tasks_app_task_tally_delete AFTER DELETE ON tasks_app_task BEGIN
        INSERT INTO {TABLE} ({_COLUMNS}, n) VALUES ({_SQLITE_ROW.format(row="OLD")}, -1);
    END
    """,
    f"""
    CREATE TRIGGER tasks_app_task_tally_update AFTER UPDATE OF account_id, status, kind, archive_state, model,
        ark_created_at ON tasks_app_task
    WHEN OLD.account_id IS NOT NEW.account_id OR OLD.status IS NOT NEW.status OR OLD.kind IS NOT NEW.kind
         OR OLD.archive_state IS NOT NEW.archive_state OR OLD.model IS NOT NEW.model
         OR OLD.ark_created_at IS NOT NEW.ark_created_at
    BEGIN
        INSERT INTO {TABLE} ({_COLUMNS}, n) VALUES ({_SQLITE_ROW.format(row="OLD")}, -1);
        INSERT INTO {TABLE} ({_COLUMNS}, n) VALUES ({_SQLITE_ROW.format(row="NEW")}, 1);
    END
    """,
]
_SQLITE_UNINSTALL = [
    "DROP TRIGGER IF EXISTS tasks_app_task_tally_insert",
    "DROP TRIGGER IF EXISTS tasks_app_task_tally_delete",
    "DROP TRIGGER IF EXISTS tasks_app_task_tally_update",
]


def install(schema_editor) -> None:
    """Create the triggers and count the tasks already there (migration 0003).

    Creating a trigger locks the task table against writes until the migration commits,
    so no write falls between the triggers and the first count.
    """
    postgresql = schema_editor.connection.vendor == "postgresql"
    for sql in _POSTGRESQL_INSTALL if postgresql else _SQLITE_INSTALL:
        schema_editor.execute(sql)
    day = _PG_DAY.format(row="t") if postgresql else "substr(t.ark_created_at, 1, 10)"
    schema_editor.execute(
        f"INSERT INTO {TABLE} ({_COLUMNS}, n) "
        f"SELECT t.account_id, t.status, t.kind, t.archive_state, t.model, {day}, count(*) "
        "FROM tasks_app_task t GROUP BY 1, 2, 3, 4, 5, 6"
    )


def uninstall(schema_editor) -> None:
    postgresql = schema_editor.connection.vendor == "postgresql"
    for sql in _POSTGRESQL_UNINSTALL if postgresql else _SQLITE_UNINSTALL:
        schema_editor.execute(sql)


# --- folding the rows -------------------------------------------------------------------


def compact(using: str = DEFAULT_DB_ALIAS) -> int:
    """Fold every key's rows into one (zero totals disappear). Returns the rows left.

    The sums never change, so readers may run at any time.
    """
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One statement, one snapshot: what it deletes is exactly what it sums, and a
            # row a writer commits meanwhile is neither deleted nor counted.
            cursor.execute(
                f"""
                WITH folded AS (SELECT {_COLUMNS} FROM {TABLE} GROUP BY {_COLUMNS} HAVING count(*) > 1 OR sum(n) = 0),
                gone AS (DELETE FROM {TABLE} t USING folded f
                         WHERE ({", ".join(f"t.{c}" for c in KEY)}) = ({", ".join(f"f.{c}" for c in KEY)})
                         RETURNING t.*)
                INSERT INTO {TABLE} ({_COLUMNS}, n)
                SELECT {_COLUMNS}, sum(n) FROM gone GROUP BY {_COLUMNS} HAVING sum(n) <> 0
                """
            )
        else:
            # SQLite: transaction_mode IMMEDIATE (settings) makes this block the only writer.
            cursor.execute(f"SELECT max(id) FROM {TABLE}")
            last = cursor.fetchone()[0] or 0
            cursor.execute(
                f"INSERT INTO {TABLE} ({_COLUMNS}, n) SELECT {_COLUMNS}, sum(n) FROM {TABLE} "
                f"WHERE id <= %s GROUP BY {_COLUMNS} HAVING sum(n) <> 0",
                [last],
            )
            cursor.execute(f"DELETE FROM {TABLE} WHERE id <= %s", [last])
        cursor.execute(f"SELECT count(*) FROM {TABLE}")
        return cursor.fetchone()[0]


# --- reading ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TallyFilter:
    """The list filters the tally can answer (everything but task ids and status)."""

    account_ids: frozenset[int] | None  # None: every account (a superuser)
    kind: str = ""
    model: str = ""
    archive_state: str = ""
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive


def status_counts(where: TallyFilter, *, tasks: QuerySet, statuses: Iterable[str]) -> dict[str, int]:
    """Tasks per status matching `where`, with a zero for every status in `statuses`.

    `tasks` is the same filter as a Task queryset: it counts the part days at the edges
    of a time range. Each task is counted once, from one snapshot (its day decides where).
    """
    counts = dict.fromkeys(statuses, 0)
    for query in count_querysets(where, tasks=tasks):
        _add(counts, query)
    return counts


def count_querysets(where: TallyFilter, *, tasks: QuerySet) -> list[QuerySet]:
    """The reads whose (status, n) rows add up to status_counts(): the tally's whole days
    and, on the task table, the part days at a time range's edges."""
    first_day = _day_on_or_after(where.created_after) if where.created_after else None
    end_day = _day_on_or_before(where.created_before) if where.created_before else None
    if first_day is not None and end_day is not None and first_day >= end_day:
        return [_count_tasks(tasks)]  # within a day or two: the task table is as quick
    reads = []
    if first_day is not None and _midnight(first_day) != where.created_after:
        reads.append(_count_tasks(tasks.filter(ark_created_at__lt=_midnight(first_day))))
    if end_day is not None and _midnight(end_day) != where.created_before:
        reads.append(_count_tasks(tasks.filter(ark_created_at__gte=_midnight(end_day))))
    reads.append(_sum_tally(where, first_day=first_day, end_day=end_day, using=tasks.db))
    return reads


def _sum_tally(where: TallyFilter, *, first_day: date | None, end_day: date | None, using: str):
    from .models import TaskTally

    rows = TaskTally.objects.using(using)
    if where.account_ids is not None:
        rows = rows.filter(account_id__in=sorted(where.account_ids))
    for field, value in (("kind", where.kind), ("model", where.model), ("archive_state", where.archive_state)):
        if value:
            rows = rows.filter(**{field: value})
    if first_day is not None:
        rows = rows.filter(day__gte=first_day)
    if end_day is not None:
        rows = rows.filter(day__lt=end_day)
    return rows.order_by().values_list("status").annotate(total=Sum("n"))


def _count_tasks(tasks: QuerySet):
    # COUNT(*): the id is not in the covering index (see selectors.status_counts).
    return tasks.order_by().values_list("status").annotate(total=Count("*"))


def _add(counts: dict[str, int], rows) -> None:
    for status, total in rows:
        if status in counts:
            counts[status] += total


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _day_on_or_after(moment: datetime) -> date:
    """The first UTC day that starts at or after `moment`."""
    utc = moment.astimezone(UTC)
    return utc.date() if utc.time() == time.min else utc.date() + timedelta(days=1)


def _day_on_or_before(moment: datetime) -> date:
    """The UTC day whose start is the last midnight at or before `moment`."""
    return moment.astimezone(UTC).date()
