"""Gallery pictures: made when an output is archived, real images of the right size, never a failed archive."""

from __future__ import annotations

import io
import logging
import zipfile
from datetime import timedelta

import httpx
import numpy as np
import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from PIL import Image

from tasks_app.lib import storage, transport
from tasks_app.models import (
    ArchiveState,
    Artifact,
    ArtifactOutput,
    ArtifactState,
    Picture,
    PictureState,
    Task,
)
from tasks_app.services import pictures
from tasks_app.services.archive import artifact_archive, artifacts_create_for_task

pytestmark = pytest.mark.django_db


def archive_all(task: Task, django_capture_on_commit_callbacks) -> None:
    """Archive every output of a task as the worker would, running the queued picture jobs."""
    artifacts_create_for_task(task=task)
    for artifact in Artifact.objects.filter(task=task).exclude(output=ArtifactOutput.MODEL_FILE).order_by("pk"):
        with django_capture_on_commit_callbacks(execute=True):
            done = artifact_archive(artifact_id=artifact.pk)
        assert done.state == ArtifactState.ARCHIVED, done.last_error


def stored_picture(task: Task) -> tuple[Picture, Image.Image]:
    picture = Picture.objects.get(task=task)
    with storage.open_read(picture.storage_key) as file:
        data = file.read()
    assert len(data) == picture.size
    image = Image.open(io.BytesIO(data))
    image.load()  # decodes every pixel: a truncated or fake file raises here
    return picture, image


def test_it_makes_the_picture_of_a_video_from_its_last_frame(sim, mirror, local_archive,
                                                              django_capture_on_commit_callbacks):
    task = mirror(sim.add_task(kind="video", status="succeeded", ratio="16:9"))

    archive_all(task, django_capture_on_commit_callbacks)

    picture, image = stored_picture(task)
    assert picture.state == PictureState.READY and picture.reason == ""
    assert picture.source_output == ArtifactOutput.LAST_FRAME
    assert image.format == "WEBP" and picture.content_type == "image/webp"
    assert image.size == (480, 270) == (picture.width, picture.height)
    assert picture.storage_key == f"outputs/{task.account_id}/{task.ark_id}/picture-last-frame.webp"
    # The picture looks like the last frame it was made from, scaled down.
    last_frame = Artifact.objects.get(task=task, output=ArtifactOutput.LAST_FRAME)
    frame = Image.open(storage.archive_storage().open(last_frame.storage_key, "rb")).convert("RGB").resize((480, 270))
    assert _mean_difference(frame, image.convert("RGB")) < 12
    task.refresh_from_db()
    assert task.archive_state == ArchiveState.ARCHIVED


def test_it_takes_a_poster_frame_from_a_video_without_a_last_frame(sim, mirror, archive_backend,
                                                                   django_capture_on_commit_callbacks):
    task = mirror(sim.add_task(kind="video", status="succeeded", ratio="9:16", return_last_frame=False))

    archive_all(task, django_capture_on_commit_callbacks)

    picture, image = stored_picture(task)
    assert picture.state == PictureState.READY
    assert picture.source_output == ArtifactOutput.VIDEO
    assert image.width == 480 and abs(image.height - 853) <= 1  # 9:16 at 480 wide
    assert len(np.unique(np.asarray(image.convert("L")))) > 8  # a decoded frame, not a flat fill
    assert picture.storage_key in archive_backend.visible_keys()  # on local disk and on S3 alike


def test_it_replaces_a_poster_frame_with_the_last_frame_that_arrives_later(sim, mirror, local_archive,
                                                                          django_capture_on_commit_callbacks):
    task = mirror(sim.add_task(kind="video", status="succeeded"))
    artifacts_create_for_task(task=task)
    video = Artifact.objects.get(task=task, output=ArtifactOutput.VIDEO)
    last_frame = Artifact.objects.get(task=task, output=ArtifactOutput.LAST_FRAME)

    with django_capture_on_commit_callbacks(execute=True):
        artifact_archive(artifact_id=video.pk)
    poster = Picture.objects.get(task=task)
    assert poster.source_output == ArtifactOutput.VIDEO
    assert poster.storage_key in local_archive.visible_keys()
    with django_capture_on_commit_callbacks(execute=True):
        artifact_archive(artifact_id=last_frame.pk)
    better = Picture.objects.get(task=task)
    assert better.source_output == ArtifactOutput.LAST_FRAME
    # The poster frame's object is gone; the last frame's is there.
    assert poster.storage_key not in local_archive.visible_keys()
    assert better.storage_key in local_archive.visible_keys()
    # The video's archived again (a no-op): the last frame's picture stays.
    assert pictures.picture_make(artifact_id=video.pk) is None
    assert Picture.objects.get(task=task).source_output == ArtifactOutput.LAST_FRAME


@pytest.mark.parametrize("file_format", ["glb", "obj", "usdz"])
def test_it_renders_a_3d_model_on_the_server(sim, mirror, local_archive, django_capture_on_commit_callbacks,
                                             file_format):
    task = mirror(sim.add_task(kind="3d", status="succeeded", file_format=file_format))

    archive_all(task, django_capture_on_commit_callbacks)

    picture, image = stored_picture(task)
    assert picture.state == PictureState.READY, picture.reason
    assert picture.source_output == ArtifactOutput.MODEL_ZIP
    assert image.size == (480, 360)
    rgb = image.convert("RGB")
    background = rgb.getpixel((2, 2))
    pixels = np.asarray(rgb, dtype=int).reshape(-1, 3)
    model = pixels[np.abs(pixels - np.array(background)).sum(axis=1) > 40]
    # The model covers a good part of the picture, shaded (not one flat colour).
    assert len(model) > len(pixels) // 10, (len(model), len(pixels))
    assert len({tuple(p) for p in model}) > 50
    Artifact.objects.get(task=task, output=ArtifactOutput.MODEL_FILE)  # the preview is made as before


def test_a_broken_model_gets_a_placeholder_and_a_logged_reason_and_stays_archived(
    account, local_archive, django_capture_on_commit_callbacks, caplog
):
    task = Task.objects.create(account=account, ark_id="cgt-broken", kind="3d", status="succeeded",
                               file_format="glb", ark_created_at=timezone.now(),
                               file_url="http://arksim.test/model.zip")
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("model.glb", b"glTF" + b"\x00" * 200)  # a glb header and nothing a loader can use
    artifact = artifacts_create_for_task(task=task)[0]

    with caplog.at_level(logging.WARNING, logger="tasks_app.services.pictures"), transport.routed_to(
        httpx.MockTransport(lambda request: httpx.Response(200, content=broken.getvalue()))
    ), django_capture_on_commit_callbacks(execute=True):
        done = artifact_archive(artifact_id=artifact.pk)

    assert done.state == ArtifactState.ARCHIVED
    task.refresh_from_db()
    assert task.archive_state == ArchiveState.ARCHIVED
    picture, image = stored_picture(task)
    assert picture.state == PictureState.PLACEHOLDER
    assert "cannot be loaded" in picture.reason
    assert image.size == (480, 270)
    assert any("cgt-broken" in r.getMessage() and "placeholder" in r.getMessage() for r in caplog.records)


def test_an_undecodable_video_gets_a_placeholder(account, local_archive, django_capture_on_commit_callbacks):
    task = Task.objects.create(account=account, ark_id="cgt-badvideo", kind="video", status="succeeded",
                               ark_created_at=timezone.now(), video_url="http://arksim.test/video.mp4")
    artifact = artifacts_create_for_task(task=task)[0]

    with transport.routed_to(httpx.MockTransport(lambda request: httpx.Response(200, content=b"not a video" * 50))), \
            django_capture_on_commit_callbacks(execute=True):
        done = artifact_archive(artifact_id=artifact.pk)

    assert done.state == ArtifactState.ARCHIVED
    picture, _image = stored_picture(task)
    assert picture.state == PictureState.PLACEHOLDER
    assert "does not decode" in picture.reason


def test_it_deletes_a_picture_with_the_output_it_was_made_from(sim, mirror, local_archive,
                                                               django_capture_on_commit_callbacks):
    task = mirror(sim.add_task(kind="video", status="succeeded"))
    archive_all(task, django_capture_on_commit_callbacks)
    picture = Picture.objects.get(task=task)
    last_frame = Artifact.objects.get(task=task, output=ArtifactOutput.LAST_FRAME)

    video = Artifact.objects.get(task=task, output=ArtifactOutput.VIDEO)
    assert pictures.picture_delete_for_artifact(artifact_id=video.pk) is False  # not its source: it stays
    assert Picture.objects.filter(task=task).exists()

    assert pictures.picture_delete_for_artifact(artifact_id=last_frame.pk) is True

    assert not Picture.objects.filter(task=task).exists()
    assert picture.storage_key not in local_archive.visible_keys()
    assert pictures.picture_delete(task_id=task.pk) is False


def _mean_difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).mean())


def test_the_pictures_command_makes_the_missing_ones_once(sim, mirror, local_archive):
    with_frame = mirror(sim.add_task(kind="video", status="succeeded"))
    model = mirror(sim.add_task(kind="3d", status="succeeded", file_format="obj"))
    for task in (with_frame, model):
        artifacts_create_for_task(task=task)
        for artifact in Artifact.objects.filter(task=task).exclude(output=ArtifactOutput.MODEL_FILE):
            artifact_archive(artifact_id=artifact.pk)  # no on_commit here: no picture job ran
    assert not Picture.objects.exists()
    out = io.StringIO()

    call_command("pictures", stdout=out)

    assert "2 pictures made (0 placeholders), 0 failed" in out.getvalue()
    assert Picture.objects.get(task=with_frame).source_output == ArtifactOutput.LAST_FRAME
    assert Picture.objects.get(task=model).state == PictureState.READY
    again = io.StringIO()
    call_command("pictures", stdout=again)
    assert "0 pictures made" in again.getvalue()


def test_the_sweep_queues_again_a_picture_whose_job_was_lost(sim, mirror, local_archive,
                                                              django_capture_on_commit_callbacks):
    lost = mirror(sim.add_task(kind="video", status="succeeded"))
    recent = mirror(sim.add_task(kind="3d", status="succeeded", file_format="glb"))
    for task in (lost, recent):
        artifacts_create_for_task(task=task)
        for artifact in Artifact.objects.filter(task=task).exclude(output=ArtifactOutput.MODEL_FILE):
            artifact_archive(artifact_id=artifact.pk)  # no on_commit here: the picture job is lost
    now = timezone.now()
    Artifact.objects.filter(task=lost).update(archived_at=now - timedelta(seconds=settings.ARKDASH_PICTURE_SWEEP_GRACE_SECONDS * 2))

    with django_capture_on_commit_callbacks(execute=True):
        queued = pictures.picture_sweep(now=now)

    assert queued == 1  # the one archived a while ago; the other's job may still be running
    assert Picture.objects.get(task=lost).source_output == ArtifactOutput.LAST_FRAME
    assert not Picture.objects.filter(task=recent).exists()
    # Too old for the sweep's window: left to `manage.py pictures`.
    Artifact.objects.filter(task=recent).update(archived_at=now - pictures.PICTURE_SWEEP_WINDOW * 2)
    with django_capture_on_commit_callbacks(execute=True):
        assert pictures.picture_sweep(now=now) == 0
    assert not Picture.objects.filter(task=recent).exists()
