"""The wire format of Ark tasks, read defensively.

Ark's documents disagree with each other (timestamps as integers or quoted strings,
3D options at the top level or not) and fields appear over time. So parsing keeps the
raw JSON, accepts either form, and turns a bad value into None instead of failing:
one odd field must never hide a task from the dashboard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from .errors import ArkProtocolError

KIND_VIDEO = "video"
KIND_3D = "3d"

# Output names as the archive calls them -> ArkTask attribute holding the URL.
OUTPUT_FIELDS = {"video": "video_url", "last_frame": "last_frame_url", "model_zip": "file_url"}


@runtime_checkable
class RateLimiter(Protocol):
    """A budget of upstream calls shared by every process using one account."""

    def acquire(self, *, endpoint: str) -> None:
        """Block until this process may call `endpoint` ("list", "get", "delete" or "create")."""

    def penalize(self, *, endpoint: str, retry_after: float) -> None:
        """Ark answered 429: slow every process down for `retry_after` seconds."""


@dataclass(frozen=True)
class ArkTask:
    id: str
    model: str = ""
    status: str = ""
    kind: str = KIND_VIDEO
    created_at: datetime | None = None
    updated_at: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None
    video_url: str | None = None
    last_frame_url: str | None = None
    file_url: str | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    service_tier: str | None = None
    execution_expires_after: int | None = None
    resolution: str | None = None
    ratio: str | None = None
    duration: int | None = None
    frames: int | None = None
    framespersecond: int | None = None
    seed: int | None = None
    generate_audio: bool | None = None
    draft: bool | None = None
    subdivision_level: str | None = None
    file_format: str | None = None
    callback_url: str | None = None
    # The untouched JSON object, for fields this class does not know yet.
    raw: dict[str, Any] = field(default_factory=dict, repr=False, hash=False)

    @classmethod
    def from_json(cls, data: object) -> ArkTask:
        """Build from one task object; ArkProtocolError if it is not an object with an id."""
        if not isinstance(data, dict):
            raise ArkProtocolError(f"expected a task object, got {type(data).__name__}", retryable=False)
        task_id = data.get("id")
        if not isinstance(task_id, str) or not task_id.strip():
            raise ArkProtocolError("task object without an id", retryable=False)

        content = _dict(data.get("content"))
        usage = _dict(data.get("usage"))
        error = data.get("error")

        def pick(*names: str) -> object:
            """First non-null value among top-level names, then the same names inside content."""
            for source in (data, content):
                for name in names:
                    if source.get(name) is not None:
                        return source[name]
            return None

        model = _str(data.get("model")) or ""
        file_url = _str(pick("file_url"))
        subdivision_level = _str(pick("subdivisionlevel", "subdivision_level"))
        file_format = _str(pick("fileformat", "file_format"))
        is_3d = "seed3d" in model.lower() or any(
            v is not None for v in (file_url, subdivision_level, file_format)
        )

        error_code = error_message = None
        if isinstance(error, dict):
            error_code = _str(error.get("code"))
            error_message = _str(error.get("message"))
        elif isinstance(error, str) and error:
            error_message = error

        return cls(
            id=task_id.strip(),
            model=model,
            status=(_str(data.get("status")) or "").strip().lower(),
            kind=KIND_3D if is_3d else KIND_VIDEO,
            created_at=_timestamp(data.get("created_at")),
            updated_at=_timestamp(data.get("updated_at")),
            error_code=error_code,
            error_message=error_message,
            video_url=_str(content.get("video_url")),
            last_frame_url=_str(content.get("last_frame_url")),
            file_url=file_url,
            completion_tokens=_int(usage.get("completion_tokens")),
            total_tokens=_int(usage.get("total_tokens")),
            service_tier=_str(pick("service_tier")),
            execution_expires_after=_int(pick("execution_expires_after")),
            resolution=_str(pick("resolution")),
            ratio=_str(pick("ratio")),
            duration=_int(pick("duration")),
            frames=_int(pick("frames")),
            framespersecond=_int(pick("framespersecond")),
            seed=_int(pick("seed")),
            generate_audio=_bool(pick("generate_audio")),
            draft=_bool(pick("draft")),
            subdivision_level=subdivision_level,
            file_format=file_format,
            callback_url=_str(data.get("callback_url")),
            raw=data,
        )

    def output_urls(self) -> dict[str, str]:
        """The output URLs this task has, keyed "video", "last_frame", "model_zip"."""
        urls = {}
        for output, attribute in OUTPUT_FIELDS.items():
            url = getattr(self, attribute)
            if url:
                urls[output] = url
        return urls


@dataclass(frozen=True)
class TaskPage:
    total: int
    items: list[ArkTask]

    @classmethod
    def from_json(cls, data: object) -> TaskPage:
        """Build from a list answer `{"total": N, "items": [...]}`; ArkProtocolError if malformed."""
        if not isinstance(data, dict):
            raise ArkProtocolError(f"expected a list object, got {type(data).__name__}", retryable=False)
        raw_items = data.get("items")
        if raw_items is None:
            raw_items = []
        if not isinstance(raw_items, list):
            raise ArkProtocolError("list answer whose items is not an array", retryable=False)
        items = [ArkTask.from_json(item) for item in raw_items]
        total = _int(data.get("total"))
        return cls(total=total if total is not None and total >= 0 else len(items), items=items)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _int(value: object) -> int | None:
    if isinstance(value, bool):  # bool is an int subclass: True is not a token count
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return int(number) if math.isfinite(number) and number.is_integer() else None
    return None


def _bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        return {"true": True, "false": False, "1": True, "0": False}.get(value.strip().lower())
    return None


def _timestamp(value: object) -> datetime | None:
    """Unix seconds (int, float or numeric string) or an ISO 8601 string -> aware UTC datetime."""
    if value is None or isinstance(value, bool):
        return None
    seconds: float | None = None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            return _iso_timestamp(text)
    if seconds is None or not math.isfinite(seconds):
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _iso_timestamp(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
