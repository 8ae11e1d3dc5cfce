"""obj and USD models get a glb preview at archive time (tasks_app/model_convert.py); the zip stays the download."""

from __future__ import annotations

import io
import zipfile

import httpx
import pytest
import trimesh
from django.utils import timezone

from tasks_app.lib import transport
from tasks_app.models import ArchiveState, Artifact, ArtifactState, Task
from tasks_app.services.archive import artifact_archive, artifacts_create_for_task


def _preview(task: Task) -> Artifact:
    return Artifact.objects.get(task=task, output="model_file")


@pytest.mark.parametrize("fileformat", ["obj", "usd", "usdz"])
def test_it_previews_an_obj_or_usd_model_as_a_glb_and_keeps_the_zip(sim, mirror, local_archive, fileformat):
    task = mirror(sim.add_task(kind="3d", status="succeeded", file_format=fileformat, subdivisionlevel="low"))
    zip_artifact = artifacts_create_for_task(task=task)[0]

    done = artifact_archive(artifact_id=zip_artifact.pk)

    assert done.state == ArtifactState.ARCHIVED
    assert done.sha256 == sim.output_sha256(task.ark_id, "model_zip")  # the download is Ark's own zip
    preview = _preview(task)
    assert preview.state == ArtifactState.ARCHIVED
    assert preview.filename == f"{task.ark_id}-model.glb" and preview.content_type == "model/gltf-binary"
    glb = local_archive.read(preview.storage_key)
    scene = trimesh.load(io.BytesIO(glb), file_type="glb")
    assert sum(len(mesh.faces) for mesh in scene.geometry.values()) == 320  # the simulator's low sphere
    task.refresh_from_db()
    assert task.archive_state == ArchiveState.ARCHIVED


def test_it_says_why_when_a_model_cannot_be_converted(account, local_archive):
    task = Task.objects.create(account=account, ark_id="cgt-bad-usd", kind="3d", status="succeeded",
                               file_format="usd", ark_created_at=timezone.now(),
                               file_url="http://arksim.test/model.zip")
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w") as z:
        z.writestr("model.usd", b"#usda 1.0\nthis is not USD at all {")
    zip_artifact = artifacts_create_for_task(task=task)[0]

    with transport.routed_to(httpx.MockTransport(lambda request: httpx.Response(200, content=body.getvalue()))):
        done = artifact_archive(artifact_id=zip_artifact.pk)

    assert done.state == ArtifactState.ARCHIVED
    preview = _preview(task)
    assert preview.state == ArtifactState.LOST
    assert "could not convert the .usd model" in preview.last_error or "USD file could not be opened" in preview.last_error
    task.refresh_from_db()
    assert task.archive_state == ArchiveState.ARCHIVED
