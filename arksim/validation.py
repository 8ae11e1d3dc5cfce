"""Validation of a create-task body, the way Ark answers it (400 envelope naming the param).

JSON null means "not given" everywhere: the official SDK sends every unset option as null.
Seedance and Seed3D also read options written as commands in the text prompt
(`--rs 720p --dur 5`, `--subdivisionlevel low --fileformat obj`); body fields win.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .catalog import ModelInfo, resolve_model
from .errors import bad_param, endpoint_not_found, missing_param

CONTENT_TYPES = {"text", "image_url", "audio_url", "video_url", "draft_task"}
RESOLUTIONS = ("480p", "720p", "1080p")
RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive")
SERVICE_TIERS = ("default", "flex")
SUBDIVISION_LEVELS = ("high", "medium", "low")
FILE_FORMATS = ("glb", "obj", "usd", "usdz")
EXPIRES_MIN, EXPIRES_MAX, EXPIRES_DEFAULT = 3600, 259200, 172800
SEED_MAX = 2**32 - 1
FAIL_MARKER = "[fail]"

VIDEO_ONLY = ("resolution", "ratio", "duration", "frames", "seed", "generate_audio", "draft", "camera_fixed")
THREE_D_ONLY = ("subdivisionlevel", "fileformat")
# Prompt commands and the body field each one stands for.
TEXT_COMMANDS = {
    "rs": "resolution",
    "resolution": "resolution",
    "rt": "ratio",
    "ratio": "ratio",
    "dur": "duration",
    "duration": "duration",
    "frames": "frames",
    "seed": "seed",
    "cf": "camera_fixed",
    "camerafixed": "camera_fixed",
    "wm": "watermark",
    "watermark": "watermark",
    "subdivisionlevel": "subdivisionlevel",
    "fileformat": "fileformat",
}
COMMAND_RE = re.compile(r"--([a-z_]+)\s+(\S+)")


@dataclass
class CreateRequest:
    model: ModelInfo
    endpoint: str  # what the caller sent as `model`: filter.model matches this
    prompt: str
    options: dict[str, Any] = field(default_factory=dict)  # validated, nulls dropped
    draft_task_id: str | None = None

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def will_fail(self) -> bool:
        return FAIL_MARKER in self.prompt


def parse_create(body: Any, *, endpoints: dict[str, str]) -> CreateRequest:
    if not isinstance(body, dict):
        raise bad_param("", "The request body must be a JSON object.")
    body = {key: value for key, value in body.items() if value is not None}

    requested = body.get("model")
    if requested is None:
        raise missing_param("model")
    if not isinstance(requested, str) or not requested.strip():
        raise bad_param("model", "`model` must be a non-empty string (a model name or an endpoint id).")
    model = resolve_model(requested, endpoints)
    if model is None:
        raise endpoint_not_found(requested, "model")

    prompt, draft_task_id = _parse_content(body.get("content"))
    options = _options_from_commands(prompt)
    options.update({key: value for key, value in body.items() if key not in ("model", "content")})
    check_options(options, kind=model.kind)
    return CreateRequest(
        model=model, endpoint=requested, prompt=prompt, options=options, draft_task_id=draft_task_id
    )


def _parse_content(content: Any) -> tuple[str, str | None]:
    if content is None:
        raise missing_param("content")
    if not isinstance(content, list) or not content:
        raise bad_param("content", "`content` must be a non-empty list of content items.")
    texts: list[str] = []
    draft_task_id = None
    for index, item in enumerate(content):
        where = f"content[{index}]"
        if not isinstance(item, dict):
            raise bad_param(where, f"`{where}` must be an object with a `type`.")
        kind = item.get("type")
        if not isinstance(kind, str) or kind not in CONTENT_TYPES:
            allowed = ", ".join(sorted(CONTENT_TYPES))
            raise bad_param(f"{where}.type", f"`{where}.type` must be one of: {allowed}.")
        if kind == "text":
            text = item.get("text")
            if not isinstance(text, str):
                raise bad_param(f"{where}.text", f"`{where}.text` must be a string.")
            texts.append(text)
        elif kind == "draft_task":
            ref = item.get("draft_task")
            if not isinstance(ref, dict) or not isinstance(ref.get("id"), str) or not ref["id"]:
                raise bad_param(f"{where}.draft_task", f"`{where}.draft_task.id` must be a task id.")
            draft_task_id = ref["id"]
        else:
            ref = item.get(kind)
            if not isinstance(ref, dict) or not isinstance(ref.get("url"), str) or not ref["url"]:
                raise bad_param(f"{where}.{kind}", f"`{where}.{kind}.url` must be a non-empty string.")
    return "\n".join(texts), draft_task_id


def _options_from_commands(prompt: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, raw in COMMAND_RE.findall(prompt):
        target = TEXT_COMMANDS.get(name)
        if target is None:
            continue
        value: Any = raw
        if target in ("duration", "frames", "seed"):
            value = int(raw) if re.fullmatch(r"-?\d+", raw) else raw
        elif target in ("camera_fixed", "watermark"):
            value = {"true": True, "false": False}.get(raw.lower(), raw)
        options[target] = value
    return options


def check_options(options: dict[str, Any], *, kind: str) -> None:
    foreign = THREE_D_ONLY if kind == "video" else VIDEO_ONLY
    for name in foreign:
        if name in options:
            raise bad_param(
                name,
                f"`{name}` is not supported by {'video' if kind == 'video' else '3D'} models.",
                code="InvalidParameter.UnsupportedParameter",
            )

    _check_choice(options, "service_tier", SERVICE_TIERS)
    _check_choice(options, "resolution", RESOLUTIONS)
    _check_choice(options, "ratio", RATIOS)
    _check_choice(options, "subdivisionlevel", SUBDIVISION_LEVELS)
    _check_choice(options, "fileformat", FILE_FORMATS)
    for name in ("return_last_frame", "generate_audio", "draft", "watermark", "camera_fixed"):
        if name in options and not isinstance(options[name], bool):
            raise bad_param(name, f"`{name}` must be true or false.")
    _check_int(options, "execution_expires_after", EXPIRES_MIN, EXPIRES_MAX)
    _check_int(options, "seed", -1, SEED_MAX)
    _check_int(options, "duration", 2, 12)
    _check_int(options, "frames", 29, 289)
    _check_int(options, "priority", 0, 100)
    if "frames" in options and (options["frames"] - 25) % 4:
        raise bad_param("frames", "`frames` must be 25 + 4n, between 29 and 289.")
    if "duration" in options and "frames" in options:
        raise bad_param("frames", "Set either `duration` or `frames`, not both.")
    callback_url = options.get("callback_url")
    if callback_url is not None and (
        not isinstance(callback_url, str) or not re.match(r"^https?://[^\s/]+", callback_url)
    ):
        raise bad_param("callback_url", "`callback_url` must be an http(s) URL.")


def _check_choice(options: dict[str, Any], name: str, allowed: tuple[str, ...]) -> None:
    if name in options and options[name] not in allowed:
        raise bad_param(name, f"`{name}` must be one of: {', '.join(allowed)}.")


def _check_int(options: dict[str, Any], name: str, low: int, high: int) -> None:
    if name not in options:
        return
    value = options[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad_param(name, f"`{name}` must be an integer between {low} and {high}.")
