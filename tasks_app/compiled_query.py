"""A queryset's SQL, compiled once and run again: for the reads every list view makes.

Django turning a queryset into SQL (cloning, resolving lookups, compiling) cost more than
PostgreSQL running it for the small, index-backed reads of the list page: about 0.5 ms
of Python against 0.3 ms in the database for the memberships read. The ORM still writes
the SQL; this keeps its output and the column converters the backend needs (SQLite
returns datetimes as text) and runs them with a plain cursor.

Keep one per (query shape, database connection): converters belong to a connection's
backend, and connections are per thread.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import QuerySet

T = TypeVar("T")


@dataclass(frozen=True)
class CompiledQuery:
    sql: str
    params: tuple
    using: str
    compiler: Any  # the queryset's SQLCompiler: its converters turn raw values into Python's
    converters: dict

    @classmethod
    def of(cls, queryset: QuerySet) -> CompiledQuery | None:
        """The compiled form of a values_list() queryset; None when it can match nothing
        (an empty IN list: Django raises EmptyResultSet rather than send it)."""
        compiler = queryset.query.get_compiler(queryset.db)
        try:
            sql, params = compiler.as_sql()
        except EmptyResultSet:
            return None
        fields = [select[0] for select in compiler.select[: compiler.col_count]]
        return cls(sql, tuple(params), queryset.db, compiler, compiler.get_converters(fields))

    def rows(self, params: Sequence | None = None, *, suffix: str = "", suffix_params: Sequence = ()) -> list[tuple]:
        """The rows, with `params` in place of the compiled ones if given (same order and
        count) and `suffix` (e.g. "LIMIT %s OFFSET %s") after the SQL."""
        if params is not None and len(params) != len(self.params):
            raise ValueError(f"{len(params)} parameters for a query compiled with {len(self.params)}")
        values = [*(self.params if params is None else params), *suffix_params]
        with connections[self.using].cursor() as cursor:
            cursor.execute(f"{self.sql} {suffix}" if suffix else self.sql, values)
            rows = cursor.fetchall()
        if self.converters:
            return [tuple(row) for row in self.compiler.apply_converters(rows, self.converters)]
        return rows



_kept = threading.local()
KEPT_PER_THREAD = 256


def keep_per_thread(key: Hashable, build: Callable[[], T]) -> T:
    """build()'s result for `key`, built the first time this thread asks; `key` must name
    everything the result depends on. The least recently used go first.

    Per thread, because compiled queries hold their connection's converters."""
    store: OrderedDict = _kept.__dict__.setdefault("kept", OrderedDict())
    try:
        store.move_to_end(key)
        return store[key]
    except KeyError:
        pass
    value = store[key] = build()
    if len(store) > KEPT_PER_THREAD:
        store.popitem(last=False)
    return value


def forget_kept() -> None:
    """Drop what this thread keeps (tests, and the benchmark's "nothing kept" case)."""
    _kept.__dict__.clear()
