"""The mirror's version: a number that moves after every write to the task table.

Cached reads of the mirror (the status counts, the stored list page) are kept under it,
so no reader may see it stand still across a change it could also see. The newest
changed_at is not such a number: a writer that commits after another one, with an older
timestamp, leaves it where it was (seen: a cancel racing the sync left a page "queued").

Readers read the version before the data, so whatever they store under a number is at
least as new as every write that number follows. Writers bump it:
- PostgreSQL: a sequence, so concurrent writers never wait on each other. nextval() is
  not transactional, so a bump inside the writer's transaction can be read before the
  data commits; the writer bumps once more after its commit. The in-transaction bump
  serves reads in that same transaction (and tests, which never commit).
- other databases (SQLite): a one-row table, bumped inside the writer's transaction, so
  it commits with the data. SQLite has one writer at a time: the row lock costs nothing.

models.Task bumps it on save, delete and its queryset's bulk writes. A write that skips
the ORM must call bump() itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, connections, transaction

SEQUENCE = "tasks_app_mirror_version_seq"
TABLE = "tasks_app_mirror_version"

_thread = threading.local()


def _open_batches() -> dict[str, int]:
    """Database alias -> writes seen, for the batched() blocks open in this thread."""
    if not hasattr(_thread, "batches"):
        _thread.batches = {}
    return _thread.batches


def _uses_sequence(connection) -> bool:
    return connection.vendor == "postgresql"


def current(using: str = DEFAULT_DB_ALIAS) -> int:
    """The version now. Read it before the data you will keep under it."""
    with connections[using].cursor() as cursor:
        cursor.execute(select_sql(using))
        return cursor.fetchone()[0]


def select_sql(using: str = DEFAULT_DB_ALIAS) -> str:
    """The SELECT giving current(), also to read it within another query (as RawSQL)."""
    if _uses_sequence(connections[using]):
        # A new sequence says last_value 1 before its first nextval() and after it.
        return f"SELECT last_value + CASE WHEN is_called THEN 1 ELSE 0 END FROM {SEQUENCE}"
    return f"SELECT n FROM {TABLE} WHERE id = 1"


def bump(using: str = DEFAULT_DB_ALIAS) -> None:
    """Record that the task table changed (call after the write, in its transaction)."""
    open_batches = _open_batches()
    if using in open_batches:
        open_batches[using] += 1
        return
    connection = connections[using]
    _bump_now(connection)
    if _uses_sequence(connection) and connection.in_atomic_block and not _bump_after_commit_pending(connection):
        # robust: the data is committed whatever happens here; Django logs a failed bump,
        # and pages stored under the old number live out their short lifetime.
        transaction.on_commit(_after_commit_bump(using), using=using, robust=True)


@contextmanager
def batched(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """One bump for all the writes in the block, at its end (the sync writes rows one by one).

    Nothing may read the mirror inside the block and keep what it read.
    """
    open_batches = _open_batches()
    if using in open_batches:  # nested: the outer block bumps
        yield
        return
    open_batches[using] = 0
    try:
        yield
    finally:
        if open_batches.pop(using):
            bump(using)


def _bump_now(connection) -> None:
    with connection.cursor() as cursor:
        if _uses_sequence(connection):
            cursor.execute(f"SELECT nextval('{SEQUENCE}')")
        else:
            cursor.execute(f"UPDATE {TABLE} SET n = n + 1 WHERE id = 1")


def _after_commit_bump(using: str):
    def mirror_version_bump_after_commit() -> None:
        _bump_now(connections[using])

    mirror_version_bump_after_commit.is_mirror_bump = True  # found again by _bump_after_commit_pending
    return mirror_version_bump_after_commit


def _bump_after_commit_pending(connection) -> bool:
    """Is an after-commit bump already registered that this write's commit will also run?

    One per transaction is enough. A registration survives unless a savepoint it was made
    in rolls back, so it covers this write when its savepoints are all still open.
    Django keeps registrations as (savepoint ids, callback, robust).
    """
    open_savepoints = set(connection.savepoint_ids)
    return any(
        getattr(func, "is_mirror_bump", False) and sids <= open_savepoints
        for sids, func, _robust in connection.run_on_commit
    )
