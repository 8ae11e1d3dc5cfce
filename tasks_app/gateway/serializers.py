"""A mirrored task as Ark's task object, with archived outputs as ArkDash's signed links."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.urls import reverse

from ..models import Artifact, ArtifactOutput, ArtifactState, Task
from . import outputs

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
# Never passed on: ArkDash's own callback URL carries the account's callback secret.
_HIDDEN = ("callback_url",)


def archived_artifacts_queryset():
    return Artifact.objects.filter(state=ArtifactState.ARCHIVED, output__in=list(_CONTENT_FIELD)).only(
        "id", "task_id", "output", "state"
    )


def task_object(task: Task, *, absolute: Callable[[str], str]) -> dict[str, Any]:
    """Ark's JSON for `task`. `absolute` turns a path into a URL (request.build_absolute_uri).

    Expects `task.archived` (a list of archived artifacts) when prefetched; reads them otherwise.
    """
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
    content = _content(task, absolute=absolute)
    if content:
        body["content"] = content
    else:
        body.pop("content", None)
    return body


def _content(task: Task, *, absolute: Callable[[str], str]) -> dict[str, str]:
    raw_content = task.raw.get("content") if isinstance(task.raw, dict) else None
    content: dict[str, str] = {}
    if isinstance(raw_content, dict):
        content.update({key: value for key, value in raw_content.items() if not key.endswith("_url")})
    # Ark's own links while nothing is archived (they die 24 h after the task finished).
    for name in ("video_url", "last_frame_url", "file_url"):
        if getattr(task, name):
            content[name] = getattr(task, name)
    archived = getattr(task, "archived", None)
    if archived is None:
        archived = list(archived_artifacts_queryset().filter(task=task))
    for artifact in archived:
        field = _CONTENT_FIELD.get(artifact.output)
        if field:
            path = reverse("gateway:output", args=[outputs.sign(artifact.pk)])
            content[field] = absolute(path)
    return content
