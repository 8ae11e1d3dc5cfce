"""A simulated task: its state machine on the sim clock and its JSON shape."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

STATUSES = ("queued", "running", "cancelled", "succeeded", "failed", "expired")
DAY = 86400
WINDOW_SECONDS = 7 * DAY  # list/get only see tasks created in the last 7 days
OUTPUT_TTL = DAY  # output URLs die 24 h after success
CANCELLED_TTL = DAY  # Ark deletes cancelled tasks by itself 24 h after the cancel
FRAMES_PER_SECOND = 24

VIDEO_FAILURE = {
    "code": "OutputVideoSensitiveContentDetected.PolicyViolation",
    "message": "The request failed because the output video may contain sensitive information.",
}
THREE_D_FAILURE = {
    "code": "InputImageSensitiveContentDetected.PolicyViolation",
    "message": "The request failed because the input image may contain sensitive information.",
}
FAILURE_MESSAGES = {
    "OutputVideoSensitiveContentDetected.PolicyViolation": VIDEO_FAILURE["message"],
    "InputImageSensitiveContentDetected.PolicyViolation": THREE_D_FAILURE["message"],
    "InputTextSensitiveContentDetected": "The request failed because the input text may contain sensitive information.",
    "InternalServiceError": "The service encountered an unexpected internal error.",
}

# Output size (w, h) per resolution and ratio, as Seedance renders them; drives usage tokens.
VIDEO_SIZES = {
    "480p": {"16:9": (864, 480), "4:3": (736, 544), "1:1": (640, 640), "3:4": (544, 736),
             "9:16": (480, 864), "21:9": (960, 416)},
    "720p": {"16:9": (1248, 704), "4:3": (1120, 832), "1:1": (960, 960), "3:4": (832, 1120),
             "9:16": (704, 1248), "21:9": (1504, 640)},
    "1080p": {"16:9": (1920, 1088), "4:3": (1664, 1248), "1:1": (1440, 1440), "3:4": (1248, 1664),
              "9:16": (1088, 1920), "21:9": (2176, 928)},
}  # fmt: skip
THREE_D_TOKENS = {"low": 15000, "medium": 30000, "high": 60000}


@dataclass
class SimTask:
    id: str
    api_key: str
    kind: str  # "video" | "3d"
    model: str  # resolved name-version shown in responses
    endpoint: str  # what the task was created with; filter.model matches it
    status: str
    created_at: int
    status_since: float  # when the current status began; updated_at is its whole second
    fields: dict[str, Any] = field(default_factory=dict)  # echoed params, in display order
    service_tier: str = "default"
    execution_expires_after: int | None = None  # video only: queued/running expire after it
    return_last_frame: bool = True
    callback_url: str | None = None
    failure: dict[str, str] | None = None  # the error it will end with, None = succeeds
    queue_seconds: float = 5.0
    run_seconds: float = 20.0
    output_bytes: int | None = None
    tokens: int = 0
    succeeded_at: float | None = None

    @property
    def updated_at(self) -> int:
        return int(self.status_since)

    @property
    def expires_at(self) -> float | None:
        if self.execution_expires_after is None:
            return None
        return self.created_at + self.execution_expires_after

    def next_transition(self) -> tuple[float, str] | None:
        """When the next automatic status change happens and to what; None if none will."""
        if self.status == "queued":
            due, target = self.status_since + self.queue_seconds, "running"
        elif self.status == "running":
            due, target = self.status_since + self.run_seconds, "failed" if self.failure else "succeeded"
        else:
            return None
        expires_at = self.expires_at
        if expires_at is not None and expires_at <= due:
            return max(expires_at, self.status_since), "expired"
        return due, target

    def move_to(self, status: str, at: float) -> None:
        self.status = status
        self.status_since = at
        if status == "succeeded":
            self.succeeded_at = at

    def visible_at(self, now: float) -> bool:
        """Ark shows tasks created in [T - 7 days, T): exactly 7 days old is visible, 7 d + 1 s is not.

        The upper bound is open in real time; a task created earlier in the same second
        is already in the past, so age 0 is visible (get right after create works).
        """
        age = int(now) - self.created_at
        return 0 <= age <= WINDOW_SECONDS


def video_fields(options: dict[str, Any], *, default_resolution: str, rng: random.Random) -> dict[str, Any]:
    seed = options.get("seed", -1)
    if seed == -1:
        seed = rng.randint(0, 2**31 - 1)
    ratio = options.get("ratio", "16:9")
    fields: dict[str, Any] = {
        "seed": seed,
        "resolution": options.get("resolution", default_resolution),
        "ratio": "16:9" if ratio == "adaptive" else ratio,
    }
    if "frames" in options:
        fields["frames"] = options["frames"]
    else:
        fields["duration"] = options.get("duration", 5)
    fields["framespersecond"] = FRAMES_PER_SECOND
    for name in ("generate_audio", "draft", "priority", "tools", "safety_identifier"):
        if name in options:
            fields[name] = options[name]
    fields["service_tier"] = options.get("service_tier", "default")
    fields["execution_expires_after"] = options.get("execution_expires_after", 172800)
    return fields


def three_d_fields(options: dict[str, Any]) -> dict[str, Any]:
    return {
        "subdivisionlevel": options.get("subdivisionlevel", "medium"),
        "fileformat": options.get("fileformat", "glb"),
    }


def usage_tokens(kind: str, fields: dict[str, Any]) -> int:
    if kind == "3d":
        return THREE_D_TOKENS.get(fields.get("subdivisionlevel", "medium"), 30000)
    width, height = VIDEO_SIZES.get(fields["resolution"], VIDEO_SIZES["720p"]).get(
        fields["ratio"], (1280, 720)
    )
    seconds = fields["frames"] / FRAMES_PER_SECOND if "frames" in fields else fields["duration"]
    return int(width * height * FRAMES_PER_SECOND * seconds / 1024)


def task_object(task: SimTask, *, urls: dict[str, str], quoted_timestamps: bool = False) -> dict[str, Any]:
    """The task as GET returns it. `content` and `usage` exist only once it succeeded."""

    def stamp(value: int) -> int | str:
        return str(value) if quoted_timestamps else value

    obj: dict[str, Any] = {
        "id": task.id,
        "model": task.model,
        "status": task.status,
        "created_at": stamp(task.created_at),
        "updated_at": stamp(task.updated_at),
    }
    if task.status == "failed" and task.failure:
        obj["error"] = dict(task.failure)
    if task.status == "succeeded":
        obj["content"] = urls
        obj["usage"] = {"completion_tokens": task.tokens, "total_tokens": task.tokens}
    obj.update(task.fields)
    return obj
