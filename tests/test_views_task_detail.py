from __future__ import annotations

from datetime import timedelta

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tasks_app.models import ArchiveState, Artifact, ArtifactOutput, ArtifactState, TaskKind, TaskStatus

from .dashboard_helpers import make_task


def archived(task, output, filename):
    return Artifact.objects.create(task=task, output=output, state=ArtifactState.ARCHIVED, size=10,
                                   storage_key=f"tasks/{task.ark_id}/{filename}", filename=filename,
                                   archived_at=timezone.now())


def test_it_requires_login_and_answers_404_for_unknown_tasks(user_client, account):
    task = make_task(account)
    assert Client().get(f"/tasks/{task.pk}/").status_code == 302
    assert user_client.get("/tasks/999999/").status_code == 404


def test_it_answers_only_the_canonical_id_of_a_task(user_client, account):
    task = make_task(account)

    assert user_client.get(f"/tasks/{task.pk}/").status_code == 200
    for alias in (f"0{task.pk}", f"000{task.pk}", f"{task.pk:08d}"):
        assert user_client.get(f"/tasks/{alias}/").status_code == 404, alias
        assert user_client.post(f"/tasks/{alias}/cancel/").status_code == 404, alias
    assert user_client.get("/tasks/0/").status_code == 404
    assert user_client.get("/tasks/" + "9" * 40 + "/").status_code == 404  # no overflow on the way


def test_it_shows_every_field_the_error_usage_parameters_and_raw_json(user_client, account):
    task = make_task(
        account, status=TaskStatus.FAILED, error_code="OutputVideoSensitiveContentDetected.PolicyViolation",
        error_message="The output video may contain sensitive content.", completion_tokens=108900,
        total_tokens=108900, resolution="720p", ratio="16:9", duration=5, seed=42, service_tier="flex",
        raw={"id": "x", "note": "<script>alert(1)</script>", "extra_field": "kept"},
    )
    html = user_client.get(f"/tasks/{task.pk}/").content.decode()
    for text in ("OutputVideoSensitiveContentDetected.PolicyViolation", "may contain sensitive content",
                 "108900", "720p", "16:9", "flex", "extra_field", task.ark_id, "team"):
        assert text in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "test-key" not in html


def test_it_draws_the_timeline_from_created_to_archived(user_client, account):
    created = timezone.now() - timedelta(minutes=10)
    task = make_task(account, status=TaskStatus.SUCCEEDED, created=created, archive_state=ArchiveState.ARCHIVED,
                     started_at=created + timedelta(minutes=1), finished_at=created + timedelta(minutes=3))
    archived(task, ArtifactOutput.VIDEO, "video.mp4")
    response = user_client.get(f"/tasks/{task.pk}/")
    steps = dict(response.context["timeline"])
    assert steps["created"] == created and steps["running"] == created + timedelta(minutes=1)
    assert steps["finished"] == created + timedelta(minutes=3) and steps["archived"] is not None


def test_it_plays_the_archived_video_and_shows_the_last_frame(user_client, account):
    task = make_task(account, status=TaskStatus.SUCCEEDED, archive_state=ArchiveState.ARCHIVED,
                     video_url="https://ark.example/v.mp4?sig=1")
    video = archived(task, ArtifactOutput.VIDEO, "video.mp4")
    frame = archived(task, ArtifactOutput.LAST_FRAME, "last_frame.png")
    html = user_client.get(f"/tasks/{task.pk}/").content.decode()
    video_url = reverse("tasks_app:artifact_download", args=[video.pk])
    assert f'<video id="output-video" controls preload="metadata" playsinline src="{video_url}?inline=1"' in html
    assert f'src="{reverse("tasks_app:artifact_download", args=[frame.pk])}?inline=1"' in html
    assert f'href="{video_url}" download' in html


def test_it_falls_back_to_arks_url_while_it_lives_and_says_when_it_is_gone(user_client, account):
    live = make_task(account, status=TaskStatus.SUCCEEDED, video_url="https://ark.example/v.mp4?sig=1",
                     outputs_expire_at=timezone.now() + timedelta(hours=1))
    assert 'src="https://ark.example/v.mp4?sig=1"' in user_client.get(f"/tasks/{live.pk}/").content.decode()
    dead = make_task(account, status=TaskStatus.SUCCEEDED, video_url="https://ark.example/v.mp4?sig=2",
                     outputs_expire_at=timezone.now() - timedelta(hours=1))
    html = user_client.get(f"/tasks/{dead.pk}/").content.decode()
    assert "<video" not in html and "no longer available from Ark" in html


def test_it_renders_a_3d_viewer_for_an_archived_glb(user_client, account):
    task = make_task(account, kind=TaskKind.MODEL_3D, status=TaskStatus.SUCCEEDED,
                     archive_state=ArchiveState.ARCHIVED, file_format="glb")
    archived(task, ArtifactOutput.MODEL_ZIP, "model.zip")
    model = archived(task, ArtifactOutput.MODEL_FILE, "model.glb")
    html = user_client.get(f"/tasks/{task.pk}/").content.decode()
    assert f'<model-viewer id="output-model" src="{reverse("tasks_app:artifact_download", args=[model.pk])}?inline=1"' in html
    assert 'type="module" src="/static/vendor/model-viewer/model-viewer.min.js"' in html


def test_it_offers_downloads_only_for_archived_outputs_and_shows_copy_progress(user_client, account):
    task = make_task(account, status=TaskStatus.SUCCEEDED, archive_state=ArchiveState.COPYING)
    Artifact.objects.create(task=task, output=ArtifactOutput.VIDEO, state=ArtifactState.COPYING,
                            size=400, bytes_copied=100)
    html = user_client.get(f"/tasks/{task.pk}/").content.decode()
    assert 'value="25"' in html and ">Download<" not in html


def test_it_offers_the_actions_valid_for_the_status(user_client, account):
    queued = make_task(account, status=TaskStatus.QUEUED)
    html = user_client.get(f"/tasks/{queued.pk}/").content.decode()
    assert f"/tasks/{queued.pk}/cancel/" in html and f"/tasks/{queued.pk}/delete/" not in html
    gone = make_task(account, status=TaskStatus.FAILED, gone_upstream_at=timezone.now())
    html = user_client.get(f"/tasks/{gone.pk}/").content.decode()
    assert "gone from Ark" in html and "Remove from ArkDash" in html


def test_it_shows_durations_in_peoples_units_in_both_languages(user_client, account):
    task = make_task(account, status=TaskStatus.SUCCEEDED, duration=5)
    type(task).objects.filter(pk=task.pk).update(execution_expires_after=172800)
    html = user_client.get(f"/tasks/{task.pk}/").content.decode()
    assert "<dd>48 h</dd>" in html and "<dd>5 s</dd>" in html and "172800" not in html.split("raw-json")[0]
    html = user_client.get(f"/tasks/{task.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "<dd>48 小时</dd>" in html and "<dd>5 秒</dd>" in html


def test_it_says_a_task_gone_from_ark_was_last_seen_running(user_client, account):
    task = make_task(account, status=TaskStatus.RUNNING, gone_upstream_at=timezone.now())
    html = user_client.get(f"/tasks/{task.pk}/").content.decode()
    assert "gone from Ark (last seen running)" in html


def test_it_says_truthfully_why_a_3d_model_has_no_preview(user_client, account):
    task = make_task(account, kind=TaskKind.MODEL_3D, status=TaskStatus.SUCCEEDED,
                     archive_state=ArchiveState.ARCHIVED, file_format="usd")
    archived(task, ArtifactOutput.MODEL_ZIP, "model.zip")
    Artifact.objects.create(task=task, output=ArtifactOutput.MODEL_FILE, state=ArtifactState.LOST,
                            filename="model.glb", last_error="Lost: no preview: the USD file holds no mesh")
    html = user_client.get(f"/tasks/{task.pk}/").content.decode()
    assert "No 3D preview: the USD file holds no mesh." in html
    assert "appears once the model is archived" not in html and "<model-viewer" not in html
