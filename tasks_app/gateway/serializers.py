"""A mirrored task as Ark's task object, with archived outputs as ArkDash's signed links."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.urls import reverse

from ..models import Artifact, ArtifactOutput, ArtifactState, Task
from . import outputs

# Makes the link to an archived output (by artifact id): one per request, see output_links().
Links = Callable[[int], str]

# Which content field each archived output replaces.
_CONTENT_FIELD = {
    ArtifactOutput.VIDEO: "video_url",
    ArtifactOutput.LAST_FRAME: "last_frame_url",
    ArtifactOutput.MODEL_ZIP: "file_url",
}
# Ark's field names for the parameters the mirror keeps in columns (used when raw is empty).
_PARAMETERS = {
    "service_tier": "service_tier",
    "execution_expires_after": "execution_expires_after",
    "resolution": "resolution",
    "ratio": "ratio",
    "duration": "duration",
    "frames": "frames",
    "framespersecond": "framespersecond",
    "seed": "seed",
    "generate_audio": "generate_audio",
    "draft": "draft",
    "subdivision_level": "subdivisionlevel",
    "file_format": "fileformat",
}
# What task_object() reads: a page loads these columns only (no observation times).
SERIALIZED_FIELDS = (
    "id", "ark_id", "model", "status", "ark_created_at", "ark_updated_at", "error_code", "error_message",
    "completion_tokens", "total_tokens", "video_url", "last_frame_url", "file_url", "raw", *_PARAMETERS,
)
# Never passed on: ArkDash's own callback URL carries the account's callback secret.
_HIDDEN = ("callback_url",)


def output_links(absolute: Callable[[str], str]) -> Links:
    """Links to archived outputs under the address `absolute` makes (request.build_absolute_uri)."""
    # Resolved once: a page of 100 tasks holds up to 200 links.
    prefix = absolute(reverse("gateway:output", args=["0"]))[:-1]
    sign = outputs.signer()
    return lambda artifact_id: prefix + sign(artifact_id)


def archived_outputs(task_ids: list[int]) -> dict[int, list[tuple[int, str]]]:
    """(artifact id, output) of each task's archived outputs that have a field in `content`."""
    found: dict[int, list[tuple[int, str]]] = {}
    rows = Artifact.objects.filter(
        task_id__in=task_ids, state=ArtifactState.ARCHIVED, removed_at__isnull=True, output__in=list(_CONTENT_FIELD)
    ).values_list("task_id", "id", "output")
    for task_id, artifact_id, output in rows:
        found.setdefault(task_id, []).append((artifact_id, output))
    return found


def task_objects(tasks: list[Task], *, links: Links) -> list[dict[str, Any]]:
    archived = archived_outputs([task.pk for task in tasks])
    return [task_object(task, links=links, archived=archived.get(task.pk, [])) for task in tasks]


def task_object(task: Task, *, links: Links, archived: list[tuple[int, str]]) -> dict[str, Any]:
    """Ark's JSON for `task`, `archived` being its (artifact id, output) pairs (archived_outputs())."""
    raw = task.raw if isinstance(task.raw, dict) else {}
    body: dict[str, Any] = {key: value for key, value in raw.items() if key not in _HIDDEN}
    if not raw:
        for column, name in _PARAMETERS.items():
            value = getattr(task, column)
            if value not in (None, ""):
                body[name] = value
    body.update(
        id=task.ark_id,
        model=task.model,
        status=task.status,
        created_at=int(task.ark_created_at.timestamp()),
        updated_at=int((task.ark_updated_at or task.ark_created_at).timestamp()),
    )
    if task.error_code or task.error_message:
        body["error"] = {"code": task.error_code, "message": task.error_message}
    else:
        body.pop("error", None)
    if task.completion_tokens is not None or task.total_tokens is not None:
        body["usage"] = {"completion_tokens": task.completion_tokens, "total_tokens": task.total_tokens}
    content = _content(task, links=links, archived=archived)
    if content:
        body["content"] = content
    else:
        body.pop("content", None)
    return body


def _content(task: Task, *, links: Links, archived: list[tuple[int, str]]) -> dict[str, str]:
    raw_content = task.raw.get("content") if isinstance(task.raw, dict) else None
    content: dict[str, str] = {}
    if isinstance(raw_content, dict):
        content.update({key: value for key, value in raw_content.items() if not key.endswith("_url")})
    # Ark's own links while nothing is archived (they die 24 h after the task finished).
    for name in ("video_url", "last_frame_url", "file_url"):
        if getattr(task, name):
            content[name] = getattr(task, name)
    for artifact_id, output in archived:
        content[_CONTENT_FIELD[output]] = links(artifact_id)
    return content
