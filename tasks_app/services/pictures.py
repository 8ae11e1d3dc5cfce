"""Pictures for the gallery: one small image per task, made when its outputs are archived.

- a video task: its last frame when Ark returned one, else a poster frame decoded from the
  archived mp4 with PyAV (FFmpeg's libraries);
- a 3D task: the model rendered on the server with pyrender, off screen through Mesa's
  EGL (software rendering: no display, no GPU). Not OSMesa: pyrender pins PyOpenGL 3.1.0,
  whose OSMesa binding lacks the call pyrender needs. The archived zip is opened with the same checks as the
  preview (zipsafe); obj and USD models go through model_convert to glb first.

The picture is a webp about PICTURE_WIDTH pixels wide, stored in archive storage beside
the outputs (`outputs/<account>/<task>/picture-<output>.webp`) and described by a Picture row.
An output that cannot be decoded or rendered gets a placeholder picture and a logged
reason: a picture never changes an artifact's archived state.

A last frame is better than a poster frame: one made from the video is replaced when the
last frame arrives later; otherwise a task's picture is made once.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from PIL import Image, ImageDraw, features

from tasks_app import model_convert
from tasks_app.lib import storage, zipsafe
from tasks_app.models import Artifact, ArtifactOutput, ArtifactState, Picture, PictureState, Task, TaskKind
from tasks_app.selectors import artifacts_without_picture

logger = logging.getLogger(__name__)

PICTURE_WIDTH = 480
# A very tall output (a 9:16 video is 853 high at this width) is cut to this height.
PICTURE_MAX_HEIGHT = 960
MODEL_PICTURE_SIZE = (PICTURE_WIDTH, 360)
PLACEHOLDER_SIZE = (PICTURE_WIDTH, 270)
# A poster frame is taken about this far in (the very first frame is often black), and no
# more than this many frames are decoded to reach it.
POSTER_AT_SECONDS = 1.0
POSTER_MAX_FRAMES = 120
# Outputs bigger than this are not opened for a picture (Pillow also refuses pixel bombs).
MAX_SOURCE_PIXELS = 64 * 1024 * 1024
COPY_CHUNK = 1024 * 1024

# Which output makes the better picture of a task: a higher number replaces a lower one.
SOURCE_RANK = {ArtifactOutput.VIDEO: 1, ArtifactOutput.LAST_FRAME: 2, ArtifactOutput.MODEL_ZIP: 1}

# The sweep queues again a picture still missing ARKDASH_PICTURE_SWEEP_GRACE_SECONDS after its
# output was archived (its job would have run by then), looking back over the window, at most
# a batch a run.
PICTURE_SWEEP_WINDOW = timedelta(days=2)
PICTURE_SWEEP_BATCH = 200

# One OpenGL context at a time in a process: PyOpenGL keeps the current context per process.
_render_lock = threading.Lock()


class PictureSourceError(Exception):
    """The output could not be decoded or rendered: the message is the placeholder's reason."""


@dataclass(frozen=True)
class Encoded:
    data: bytes
    width: int
    height: int
    content_type: str
    extension: str


# --- Entry points ---------------------------------------------------------------------------------


def picture_enqueue(*, artifact_id: int) -> None:
    """Queue the picture of an artifact that was just archived, once the transaction commits."""

    def send() -> None:
        from tasks_app.tasks import make_picture

        try:
            make_picture.delay(artifact_id)
        except Exception:  # noqa: BLE001 - a broker hiccup must not touch the archive's outcome
            logger.warning("could not queue the picture of artifact %s", artifact_id, exc_info=True)

    transaction.on_commit(send)


def picture_sweep(*, now: datetime | None = None) -> int:
    """Queue again the picture of each task archived a while ago that still has none (its job
    was lost with a worker or the broker). Returns how many were queued.

    Only the last PICTURE_SWEEP_WINDOW is read, over the index of archived outputs, so the
    sweep stays cheap however large the mirror; `manage.py pictures` fills in older ones.
    """
    now = now or timezone.now()
    grace = timedelta(seconds=settings.ARKDASH_PICTURE_SWEEP_GRACE_SECONDS)
    missing = artifacts_without_picture().filter(
        archived_at__gte=now - PICTURE_SWEEP_WINDOW, archived_at__lt=now - grace,
    )
    # One artifact per task: the better source first (the selector's order).
    chosen: dict[int, int] = {}
    for task_id, artifact_id in missing.values_list("task_id", "pk")[: PICTURE_SWEEP_BATCH * 3]:
        chosen.setdefault(task_id, artifact_id)
    for artifact_id in list(chosen.values())[:PICTURE_SWEEP_BATCH]:
        picture_enqueue(artifact_id=artifact_id)
    return min(len(chosen), PICTURE_SWEEP_BATCH)


def picture_make(*, artifact_id: int) -> Picture | None:
    """Make (or improve) the picture of the task of an archived artifact.

    Returns the task's picture, or None when this artifact makes none (a 3D preview file,
    an artifact not archived, a task whose picture is already as good). Raises
    storage.StorageError when archive storage cannot be read or written (worth a retry);
    an output that does not decode gets a placeholder instead.
    """
    artifact = Artifact.objects.select_related("task").filter(pk=artifact_id).first()
    if artifact is None or artifact.state != ArtifactState.ARCHIVED or artifact.output not in SOURCE_RANK:
        return None
    task = artifact.task
    existing = Picture.objects.filter(task=task).first()
    if existing is not None and SOURCE_RANK.get(existing.source_output, 0) >= SOURCE_RANK[artifact.output]:
        return None
    reason = ""
    try:
        image = _picture_of(artifact)
        encoded = encode(image)
    except PictureSourceError as exc:
        reason = str(exc)
        logger.warning("no picture of %s from its %s: %s; a placeholder stands in", task.ark_id,
                       artifact.output, reason)
        encoded = encode(placeholder_image())
    # One key per source: two workers making a task's picture from two outputs at once
    # never write the same object, and the row below decides which one stays.
    key = storage.artifact_key(
        account_id=task.account_id, ark_id=task.ark_id,
        filename=f"picture-{artifact.output.replace('_', '-')}.{encoded.extension}",
    )
    writer = storage.open_writer(key, content_type=encoded.content_type)
    try:
        writer.write(encoded.data)
        writer.publish()
    finally:
        writer.discard()  # no-op after publish
    with transaction.atomic():
        list(Task.objects.select_for_update().filter(pk=task.pk).values_list("pk"))  # one decision at a time
        current = Picture.objects.filter(task=task).first()
        if current is not None and SOURCE_RANK.get(current.source_output, 0) >= SOURCE_RANK[artifact.output]:
            if current.storage_key != key:
                transaction.on_commit(lambda: _delete_object(key))  # a better picture was made meanwhile
            return None
        picture, _created = Picture.objects.update_or_create(
            task=task,
            defaults={
                "source": artifact,
                "source_output": artifact.output,
                "state": PictureState.PLACEHOLDER if reason else PictureState.READY,
                "reason": reason[:2000],
                "storage_key": key,
                "content_type": encoded.content_type,
                "size": len(encoded.data),
                "width": encoded.width,
                "height": encoded.height,
                "sha256": hashlib.sha256(encoded.data).hexdigest(),
            },
        )
        if current is not None and current.storage_key != key:
            replaced = current.storage_key
            transaction.on_commit(lambda: _delete_object(replaced))
    return picture


def picture_delete(*, task_id: int) -> bool:
    """Remove a task's picture: the stored image and its row. True when there was one."""
    picture = Picture.objects.filter(task_id=task_id).first()
    if picture is None:
        return False
    _delete_object(picture.storage_key)
    picture.delete()
    return True


def picture_delete_for_artifact(*, artifact_id: int) -> bool:
    """Remove the picture made from this artifact, when its stored output is deleted (retention)."""
    task_id = Picture.objects.filter(source_id=artifact_id).values_list("task_id", flat=True).first()
    return picture_delete(task_id=task_id) if task_id is not None else False


def _delete_object(key: str) -> None:
    try:
        storage.delete(key)
    except Exception as exc:  # noqa: BLE001 - backends raise their own types; the row goes anyway
        logger.warning("could not delete picture %s from archive storage: %s", key, exc)


# --- Making the image -----------------------------------------------------------------------------


def _picture_of(artifact: Artifact) -> Image.Image:
    if artifact.output == ArtifactOutput.LAST_FRAME:
        with storage.open_read(artifact.storage_key) as file:
            return still_image(file.read())
    if artifact.output == ArtifactOutput.VIDEO:
        # Read in place (PyAV seeks in the file object): a video can be large.
        with storage.open_read(artifact.storage_key) as archived:
            return poster_frame(archived)
    with tempfile.TemporaryDirectory(dir=_spool_dir()) as workdir:
        path = Path(workdir) / "source"
        with storage.open_read(artifact.storage_key) as archived, path.open("wb") as spool:
            while chunk := archived.read(COPY_CHUNK):
                spool.write(chunk)
        if artifact.task.kind == TaskKind.MODEL_3D:
            return render_model(model_glb(path, file_format=artifact.task.file_format or "", workdir=Path(workdir)))
    raise PictureSourceError(f"no picture is made from a {artifact.output} output")


def still_image(data: bytes) -> Image.Image:
    """A png or jpeg output (the last frame) as an RGB image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_SOURCE_PIXELS:
                raise PictureSourceError(f"the image is {image.width}x{image.height}, too large for a picture")
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise PictureSourceError(f"the image does not decode ({exc})") from None


def poster_frame(source: Path | BinaryIO) -> Image.Image:
    """A frame about POSTER_AT_SECONDS into the video (its last frame when it is shorter)."""
    import av

    try:
        with av.open(str(source) if isinstance(source, Path) else source, mode="r") as container:
            if not container.streams.video:
                raise PictureSourceError("the file holds no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            chosen = None
            for count, frame in enumerate(container.decode(stream), start=1):
                chosen = frame
                if (frame.time is not None and frame.time >= POSTER_AT_SECONDS) or count >= POSTER_MAX_FRAMES:
                    break
            if chosen is None:
                raise PictureSourceError("the video has no frame that decodes")
            if chosen.width * chosen.height > MAX_SOURCE_PIXELS:
                raise PictureSourceError(f"the video is {chosen.width}x{chosen.height}, too large for a picture")
            return chosen.to_image().convert("RGB")
    except av.FFmpegError as exc:
        raise PictureSourceError(f"the video does not decode ({exc})") from None


def model_glb(zip_path: Path, *, file_format: str, workdir: Path) -> bytes:
    """The model of an archived Seed3D zip as glb bytes (obj and USD converted)."""
    limits = zipsafe.ZipLimits(
        max_total_bytes=int(getattr(settings, "ARKDASH_ARCHIVE_ZIP_MAX_BYTES", 2 * 1024**3)),
        max_ratio=float(getattr(settings, "ARKDASH_ARCHIVE_ZIP_MAX_RATIO", 200)),
    )
    file_format = file_format.lower()
    try:
        if file_format in model_convert.CONVERTIBLE:
            unpacked = workdir / "model"
            unpacked.mkdir()
            return model_convert.zip_to_glb(zip_path, file_format=file_format, workdir=unpacked, limits=limits)
        out = io.BytesIO()
        zipsafe.extract_model(str(zip_path), file_format=file_format, write=out.write, limits=limits)
        return out.getvalue()
    except (zipsafe.ZipError, model_convert.ConversionError) as exc:
        raise PictureSourceError(f"the model cannot be read ({exc})") from None


def render_model(glb: bytes, *, size: tuple[int, int] = MODEL_PICTURE_SIZE) -> Image.Image:
    """The model seen from the front and a little above, lit from the camera, off screen."""
    import numpy as np
    import trimesh

    try:
        scene = trimesh.load(io.BytesIO(glb), file_type="glb", force="scene")
    except Exception as exc:  # noqa: BLE001 - trimesh raises many types for a bad file
        raise PictureSourceError(f"the model cannot be loaded ({type(exc).__name__}: {exc})") from None
    if not scene.geometry or scene.bounds is None:
        raise PictureSourceError("the model holds no geometry")
    bounds = np.asarray(scene.bounds, dtype=float)
    if not np.all(np.isfinite(bounds)):
        raise PictureSourceError("the model's coordinates are not finite")
    # Selecting the off-screen backend must happen before OpenGL is first imported.
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    import pyrender

    center = bounds.mean(axis=0)
    radius = max(float(np.linalg.norm(bounds[1] - bounds[0])) / 2, 1e-6)
    yfov = math.pi / 4
    distance = radius / math.sin(yfov / 2) * 0.8
    direction = np.array([0.35, 0.3, 1.0])
    direction /= np.linalg.norm(direction)
    eye = center + direction * distance
    with _render_lock:
        try:
            render_scene = pyrender.Scene.from_trimesh_scene(
                scene, bg_color=[0.93, 0.94, 0.96, 1.0], ambient_light=[0.35, 0.35, 0.35]
            )
            pose = _look_at(eye, center)
            render_scene.add(pyrender.PerspectiveCamera(yfov=yfov, znear=distance / 100, zfar=distance * 10),
                             pose=pose)
            render_scene.add(pyrender.DirectionalLight(color=[1.0, 1.0, 1.0], intensity=3.0), pose=pose)
            renderer = pyrender.OffscreenRenderer(*size)
            try:
                color, _depth = renderer.render(render_scene)
            finally:
                renderer.delete()
        except Exception as exc:  # noqa: BLE001 - OpenGL and pyrender raise many types
            raise PictureSourceError(f"the model cannot be rendered ({type(exc).__name__}: {exc})") from None
    return Image.fromarray(color[:, :, :3]).convert("RGB")


def _look_at(eye, target):
    """A camera pose (OpenGL convention: the camera looks down its -z axis) at `eye` facing `target`."""
    import numpy as np

    forward = eye - target
    forward = forward / np.linalg.norm(forward)
    right = np.cross([0.0, 1.0, 0.0], forward)
    right = right / np.linalg.norm(right)
    up = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, forward, eye
    return pose


def placeholder_image(size: tuple[int, int] = PLACEHOLDER_SIZE) -> Image.Image:
    """A neutral grey card with a crossed frame: readable on a light and a dark page."""
    image = Image.new("RGB", size, (138, 143, 152))
    draw = ImageDraw.Draw(image)
    w, h = size
    box = (w * 0.38, h * 0.3, w * 0.62, h * 0.7)
    draw.rectangle(box, outline=(225, 228, 233), width=4)
    draw.line((box[0], box[1], box[2], box[3]), fill=(225, 228, 233), width=4)
    draw.line((box[0], box[3], box[2], box[1]), fill=(225, 228, 233), width=4)
    return image


def encode(image: Image.Image) -> Encoded:
    """Scale to PICTURE_WIDTH wide (height by the aspect ratio, capped) and compress."""
    height = max(1, min(PICTURE_MAX_HEIGHT, round(image.height * PICTURE_WIDTH / image.width)))
    if image.size != (PICTURE_WIDTH, height):
        image = image.resize((PICTURE_WIDTH, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if features.check("webp"):
        image.save(out, format="WEBP", quality=80, method=4)
        return Encoded(out.getvalue(), image.width, image.height, "image/webp", "webp")
    image.save(out, format="JPEG", quality=82, optimize=True)  # a Pillow built without libwebp
    return Encoded(out.getvalue(), image.width, image.height, "image/jpeg", "jpg")


def _spool_dir() -> str:
    path = Path(settings.DATA_DIR) / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)
