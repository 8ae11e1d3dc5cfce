"""One error hierarchy for everything that can go wrong talking to Ark.

Callers catch `ArkError` (or a subclass) and read `.retryable` to decide whether
trying again later can help. Messages are one line and never carry the API key:
the client redacts server text before it builds an error.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
from datetime import UTC, datetime

import httpx

# Ark appends "Request id: <id>" to error messages; keep it so support can trace a call.
_REQUEST_ID_IN_MESSAGE = re.compile(r"request\s*id\s*[:=]\s*([A-Za-z0-9._-]+)", re.IGNORECASE)
# Anything that looks like a bearer credential is masked even if we were not told the key.
_BEARER = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)
_MAX_MESSAGE_CHARS = 500
_MIN_SECRET_CHARS = 4
# The shortest piece of a key that counts as leaking it (issue: upper-cased or cut-off echoes).
_MIN_SECRET_RUN = 8


class ArkError(Exception):
    """Base of every Ark failure: HTTP errors, network errors, malformed answers."""

    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,  # named like the field of Ark's error body
        request_id: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.message = _one_line(redact(str(message), None))
        self.http_status = http_status
        self.code = code
        self.param = param
        self.type = type
        self.request_id = request_id
        self.retryable = self.default_retryable if retryable is None else retryable
        super().__init__(self.message)

    def __str__(self) -> str:
        head = "Ark"
        if self.http_status is not None:
            head += f" HTTP {self.http_status}"
        if self.code:
            head += f" {self.code}"
        text = f"{head}: {self.message}"
        if self.param:
            text += f" (param: {self.param})"
        if self.request_id and self.request_id not in self.message:
            text += f" [request id {self.request_id}]"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ArkBadRequestError(ArkError):
    """400: Ark refused the request (bad parameter, or an action its state table forbids)."""


class ArkTooManyIdsError(ArkBadRequestError):
    """A `filter.task_ids` call was refused for its size (too many ids, or a URL too long: 414).

    No document gives either limit: the caller sends fewer ids per call and tries again.
    """


class ArkDeleteRefusedError(ArkBadRequestError):
    """Ark refused a DELETE (400, 403 or 409: undocumented) and a re-read shows why.

    `.status` is the task's status at the re-read (running, cancelled) or None when the
    re-read did not explain the refusal; `.task` is that re-read, when there was one.
    """

    def __init__(self, message: str, *, status: str | None = None, task: object = None, **fields) -> None:
        super().__init__(message, **fields)
        self.status = status
        self.task = task


class ArkAuthenticationError(ArkError):
    """401: the API key is wrong or revoked."""


class ArkPermissionError(ArkError):
    """403: the account may not do this (overdue, service not open, access denied)."""


class ArkNotFoundError(ArkError):
    """404: unknown task (never existed, deleted, or older than the 7-day window)."""


class ArkRateLimitedError(ArkError):
    """429: too many requests; `.retry_after` is how long Ark asked us to wait, if it said."""

    default_retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ArkServerError(ArkError):
    """5xx: Ark failed; the request may or may not have taken effect."""

    default_retryable = True


class ArkConnectionError(ArkError):
    """The network failed. `.request_sent` is False only when Ark surely never saw the request."""

    default_retryable = True

    def __init__(self, message: str, *, request_sent: bool = True, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.request_sent = request_sent


class ArkTimeoutError(ArkConnectionError):
    """A connect, read, write or total deadline passed."""


class ArkProtocolError(ArkError):
    """Ark answered something we cannot read: garbled JSON, a truncated body, a malformed task."""

    default_retryable = True


def redact(text: str, secret: str | None) -> str:
    """Remove a secret (and any bearer token) from text meant for logs or exceptions.

    Not only the exact key: a server may echo it upper-cased, or cut off. Any run of
    _MIN_SECRET_RUN or more characters of the key, in any case, is masked.
    """
    # A real key is long; masking a 1-3 character "key" would garble every message.
    if secret and len(secret) >= _MIN_SECRET_CHARS:
        text = _without_runs_of(text, secret)
    return _BEARER.sub(r"\1***", text)


def _without_runs_of(text: str, secret: str) -> str:
    if len(secret) < _MIN_SECRET_RUN:
        return re.sub(re.escape(secret), "***", text, flags=re.IGNORECASE)
    # Every window of the text that is a piece of the key marks its characters; each
    # stretch of marked characters becomes one "***". Linear in the text's length.
    pieces = {secret[i : i + _MIN_SECRET_RUN].casefold() for i in range(len(secret) - _MIN_SECRET_RUN + 1)}
    marked = [False] * len(text)
    for start in range(len(text) - _MIN_SECRET_RUN + 1):
        if text[start : start + _MIN_SECRET_RUN].casefold() in pieces:
            marked[start : start + _MIN_SECRET_RUN] = [True] * _MIN_SECRET_RUN
    if not any(marked):
        return text
    out: list[str] = []
    for index, char in enumerate(text):
        if not marked[index]:
            out.append(char)
        elif index == 0 or not marked[index - 1]:
            out.append("***")
    return "".join(out)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent or garbage."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is not None:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def error_from_response(response: httpx.Response, body: bytes, *, secret: str | None = None) -> ArkError:
    """Turn a non-2xx answer into the matching ArkError, reading Ark's error envelope when present."""
    status = response.status_code
    code = param = err_type = None
    message = ""
    envelope = _error_envelope(body)
    if envelope is not None:
        code = _text(envelope.get("code"))
        param = _text(envelope.get("param"))
        err_type = _text(envelope.get("type"))
        message = _text(envelope.get("message")) or ""
    if not message:
        snippet = body[:200].decode("utf-8", "replace").strip()
        message = snippet or response.reason_phrase or "no error message"
    message = redact(message, secret)

    found = _REQUEST_ID_IN_MESSAGE.search(message)
    request_id = found.group(1) if found else response.headers.get("x-request-id")
    fields = {
        "http_status": status,
        "code": code,
        "param": param,
        "type": err_type,
        "request_id": request_id,
    }
    if status == 400:
        return ArkBadRequestError(message, **fields)
    if status == 401:
        return ArkAuthenticationError(message, **fields)
    if status == 403:
        return ArkPermissionError(message, **fields)
    if status == 404:
        return ArkNotFoundError(message, **fields)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return ArkRateLimitedError(message, retry_after=retry_after, **fields)
    if status >= 500:
        return ArkServerError(message, **fields)
    # 408 (request timeout) is the one other status where trying again is sensible.
    return ArkError(message, retryable=status == 408, **fields)


def _error_envelope(body: bytes) -> dict | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            return error
        if isinstance(error, str):
            return {"message": error}
        if "code" in data or "message" in data:
            return data
    return None


def _text(value: object) -> str | None:
    if value is None:
        return None
    return str(value)


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    if len(text) > _MAX_MESSAGE_CHARS:
        text = text[: _MAX_MESSAGE_CHARS - 1] + "…"
    return text
