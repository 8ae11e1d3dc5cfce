"""Download of an archived output: the permission check (selectors.artifact_for_user), then
lib/file_responses answers (Range from local disk, a presigned redirect on S3)."""

from __future__ import annotations

import logging

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.views.decorators.http import require_safe

from .lib import file_responses, storage
from .models import Artifact
from .selectors import artifact_for_user, picture_for_user

logger = logging.getLogger(__name__)


@login_required
@require_safe
def artifact_download(request: HttpRequest, artifact_id: int) -> HttpResponseBase:
    artifact = artifact_for_user(user=request.user, pk=artifact_id)
    if not artifact.is_downloadable:
        # A page that says why (lost, or not copied yet) and leads back to the task, not a bare 404.
        # 410 Gone for a file deleted on purpose (retention): it will not come back.
        return render(request, "tasks_app/output_unavailable.html", {"artifact": artifact, "task": artifact.task},
                      status=410 if artifact.removed_at else 404)
    # ?inline=1 for <video src> and the 3D viewer; a download otherwise.
    return archived_file_response(request, artifact, inline=request.GET.get("inline") == "1")


def archived_file_response(request: HttpRequest, artifact: Artifact, *, inline: bool = False) -> HttpResponseBase:
    """The archived file of an artifact the caller may have (its state checked by the caller)."""
    try:
        return file_responses.download_response(
            request,
            key=artifact.storage_key,
            filename=artifact.filename or artifact.storage_key.rsplit("/", 1)[-1],
            content_type=artifact.content_type,
            etag=artifact.sha256,
            last_modified=artifact.archived_at,
            inline=inline,
        )
    except storage.StorageError as exc:
        logger.error("download of artifact %s failed: %s", artifact.pk, exc)
        return HttpResponse(
            "The archived file cannot be read from storage right now.", status=503, content_type="text/plain"
        )


@login_required
@require_safe
def task_picture(request: HttpRequest, pk: int) -> HttpResponseBase:
    """A task's gallery picture, served inline like an archived output (same storage, same checks)."""
    picture = picture_for_user(user=request.user, task_pk=pk)
    try:
        return file_responses.download_response(
            request,
            key=picture.storage_key,
            filename=picture.storage_key.rsplit("/", 1)[-1],
            content_type=picture.content_type,
            etag=picture.sha256,
            last_modified=picture.updated,
            inline=True,
        )
    except storage.StorageError as exc:
        logger.error("picture of task %s cannot be read: %s", pk, exc)
        return HttpResponse("The picture cannot be read from storage right now.", status=503,
                            content_type="text/plain")
