"""Structured logs: every line about one task or account says which, in plain or JSON form.

`log_context(task=..., account=...)` binds fields for the code running inside it (a
Celery task, a sync cycle); ContextFilter stamps them on each record and the two
formatters print them. Context lives in a contextvar, so concurrent threads (gunicorn
threads, S3 part uploads) never see each other's fields.

    ARKDASH_LOG_FORMAT=plain  2025-01-02 12:00:00,123 INFO tasks_app.tasks copied [account=team task=cgt-…]
    ARKDASH_LOG_FORMAT=json   {"ts": "2025-01-02T12:00:00.123Z", "level": "INFO", ..., "task_id": "cgt-…"}

This module is imported while logging is configured (before Django's apps load), so
it must not import Django models.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

LOG_FORMATS = ("plain", "json")
# Context keys and the names they take in a log line / JSON object.
FIELD_NAMES = {
    "account": "account",
    "task": "task_id",
    "artifact": "artifact_id",
    "celery_task": "celery_task",
    "celery_task_id": "celery_task_id",
}
_MAX_VALUE_CHARS = 200

# An immutable default: the context is replaced, never mutated, so no block leaks into another.
_context: ContextVar[Mapping[str, str]] = ContextVar("arkdash_log_context", default=MappingProxyType({}))


def _clean(value: object) -> str:
    # One line, bounded: a value from Ark (a task id) must not forge extra log lines.
    text = str(value).replace("\r", "\\r").replace("\n", "\\n")
    return text[:_MAX_VALUE_CHARS]


def _merged(fields: Mapping[str, object]) -> dict[str, str]:
    unknown = set(fields) - set(FIELD_NAMES)
    if unknown:
        raise ValueError(f"unknown log context fields: {', '.join(sorted(unknown))}")
    return {**_context.get(), **{key: _clean(value) for key, value in fields.items() if value is not None}}


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Attach fields (task, account, artifact, …) to every log line emitted inside the block.

    Nested blocks add to the outer ones; None values are left out. Keys must be ones
    FIELD_NAMES knows, so a typo fails loudly instead of silently logging nothing.
    """
    token = _context.set(_merged(fields))
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, str]:
    return dict(_context.get())


def bind_context(**fields: object) -> Token[Mapping[str, str]]:
    """log_context without a block (Celery's prerun/postrun signals); undo with unbind_context."""
    return _context.set(_merged(fields))


def unbind_context(token: Token[Mapping[str, str]]) -> None:
    try:
        _context.reset(token)
    except ValueError:
        # A token made in another context (a signal fired elsewhere): start clean instead.
        _context.set(MappingProxyType({}))


class ContextFilter(logging.Filter):
    """Stamps the current log context on each record (attach it to the handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "log_context"):
            record.log_context = current_context()
        return True


def _record_context(record: logging.LogRecord) -> Mapping[str, str]:
    stamped = getattr(record, "log_context", None)
    return stamped if isinstance(stamped, Mapping) else _context.get()


class PlainFormatter(logging.Formatter):
    """The usual one-line format, with ` [account=… task=…]` appended when there is context."""

    default_format = "%(asctime)s %(levelname)s %(name)s %(message)s"

    def __init__(self, fmt: str | None = None, datefmt: str | None = None, style: str = "%", **kwargs: Any):
        super().__init__(fmt or self.default_format, datefmt, style, **kwargs)  # type: ignore[arg-type]

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = _record_context(record)
        if not context:
            return text
        pairs = " ".join(f"{key}={context[key]}" for key in FIELD_NAMES if key in context)
        first, newline, rest = text.partition("\n")
        return f"{first} [{pairs}]{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers (docker-compose sets ARKDASH_LOG_FORMAT=json)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        context = _record_context(record)
        for key, name in FIELD_NAMES.items():
            if key in context:
                entry[name] = context[key]
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
