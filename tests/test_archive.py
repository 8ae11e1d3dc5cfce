"""tasks_app/services/archive.py: the hand-off from sync, the copy itself (verified, atomic, one
worker at a time, against local disk and a real S3 server), and the sweeper that re-queues
what no worker took."""

from __future__ import annotations

import errno
import hashlib
import io
import tracemalloc
import zipfile
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from tasks_app import tasks as celery_tasks
from tasks_app.lib import downloads, storage, transport
from tasks_app.models import ArchiveState, Artifact, ArtifactState, Task
from tasks_app.services import archive
from tasks_app.services.archive import (
    archive_handoff_sweep,
    artifact_archive,
    artifacts_create_for_task,
    artifacts_sweep,
)
from tasks_app.services.sync import sync_account

from .dashboard_helpers import succeeded_video

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("unthrottled")]
MiB = 1024 * 1024
BIG = 20 * MiB  # several S3 parts, so multipart uploads are exercised


@pytest.fixture(autouse=True)
def small_parts(settings):
    settings.ARKDASH_ARCHIVE_S3_PART_MB = 5


def video_task(sim, mirror, **kwargs) -> Task:
    return mirror(sim.add_task(kind="video", status="succeeded", **kwargs))


def artifact_of(task: Task, output: str = "video") -> Artifact:
    return Artifact.objects.get(task=task, output=output)


def assert_nothing_visible(backend) -> None:
    assert backend.visible_keys() == []
    assert backend.uploads_in_progress() == []


def test_it_creates_one_artifact_per_output_once(sim, mirror, local_archive):
    task = video_task(sim, mirror)

    first = artifacts_create_for_task(task=task)
    again = artifacts_create_for_task(task=task)

    assert [a.output for a in first] == ["video", "last_frame"]
    assert [a.pk for a in again] == [a.pk for a in first]
    video = first[0]
    assert video.state == ArtifactState.PENDING
    assert video.filename == f"{task.ark_id}-video.mp4"
    # The deadline is when the presigned URL dies: 24 h after success.
    assert video.deadline == task.ark_updated_at + timedelta(hours=24)
    task.refresh_from_db()
    assert task.archive_state == ArchiveState.PENDING


def test_it_creates_nothing_for_a_task_that_did_not_succeed(sim, mirror, local_archive):
    task = mirror(sim.add_task(kind="video", status="failed"))

    assert artifacts_create_for_task(task=task) == []
    task.refresh_from_db()
    assert task.archive_state == ArchiveState.NONE


def test_it_takes_a_freshly_signed_url_for_an_output_not_copied_yet(sim, mirror, local_archive):
    task = video_task(sim, mirror)
    artifacts_create_for_task(task=task)
    task.video_url = task.video_url.replace("sig=", "sig=fresh")
    task.save()

    artifacts_create_for_task(task=task)

    assert "sig=fresh" in artifact_of(task).source_url


def test_it_archives_a_video_and_its_last_frame_byte_for_byte(sim, mirror, archive_backend):
    task = video_task(sim, mirror, output_bytes=BIG)
    artifacts_create_for_task(task=task)

    for artifact in Artifact.objects.filter(task=task):
        done = artifact_archive(artifact_id=artifact.pk)
        assert done.state == ArtifactState.ARCHIVED
        assert done.sha256 == sim.output_sha256(task.ark_id, artifact.output)
        assert done.size == done.bytes_copied == sim.output_size(task.ark_id, artifact.output)
        assert done.attempts == 1 and done.archived_at is not None and done.claim_token == ""
        stored = archive_backend.read(done.storage_key)
        assert hashlib.sha256(stored).hexdigest() == done.sha256

    assert archive_backend.visible_keys() == sorted(
        [
            f"outputs/{task.account_id}/{task.ark_id}/video.mp4",
            f"outputs/{task.account_id}/{task.ark_id}/last-frame.png",
        ]
    )
    assert archive_backend.uploads_in_progress() == []
    task.refresh_from_db()
    assert task.archive_state == ArchiveState.ARCHIVED


def test_it_does_nothing_when_asked_to_copy_an_archived_artifact_again(sim, mirror, local_archive):
    task = video_task(sim, mirror)
    artifact = artifacts_create_for_task(task=task)[0]
    artifact_archive(artifact_id=artifact.pk)
    sim.reset_stats()

    again = artifact_archive(artifact_id=artifact.pk, force=True)

    assert again.state == ArtifactState.ARCHIVED
    assert again.attempts == 1
    assert sim.stats().get("output", 0) == 0


@pytest.mark.parametrize(
    "fault, message",
    [
        ("truncate", "stopped at"),
        ("bad_length", "stopped at"),
        ("drop", "could not connect"),
        ("500", "answered 500"),
        ("429", "rate limiting"),
    ],
)
def test_it_leaves_no_partial_object_after_a_fault_and_retries_later(
    sim, mirror, archive_backend, fault, message
):
    task = video_task(sim, mirror, output_bytes=BIG)
    artifact = artifacts_create_for_task(task=task)[0]
    sim.faults.inject("output", fault)
    before = timezone.now()

    failed = artifact_archive(artifact_id=artifact.pk)

    assert failed.state == ArtifactState.FAILED
    assert message in failed.last_error
    assert failed.attempts == 1
    assert failed.next_attempt_at > before
    assert failed.claim_token == ""
    assert_nothing_visible(archive_backend)
    task.refresh_from_db()
    assert task.archive_state == ArchiveState.FAILED

    # Not before its backoff is over...
    assert artifact_archive(artifact_id=artifact.pk).state == ArtifactState.FAILED
    # ...and then the retry produces exactly one correct object.
    Artifact.objects.filter(pk=artifact.pk).update(next_attempt_at=timezone.now())
    done = artifact_archive(artifact_id=artifact.pk)
    assert done.state == ArtifactState.ARCHIVED
    assert done.attempts == 2 and done.last_error == ""
    assert archive_backend.visible_keys() == [done.storage_key]
    assert hashlib.sha256(archive_backend.read(done.storage_key)).hexdigest() == sim.output_sha256(
        task.ark_id, "video"
    )
    assert archive_backend.uploads_in_progress() == []


def test_it_waits_at_least_as_long_as_retry_after_says(sim, mirror, local_archive):
    task = video_task(sim, mirror)
    artifact = artifacts_create_for_task(task=task)[0]
    sim.faults.inject("output", "429", retry_after=600)
    before = timezone.now()

    failed = artifact_archive(artifact_id=artifact.pk)

    assert failed.next_attempt_at >= before + timedelta(seconds=600)


def test_it_backs_off_exponentially_with_jitter_up_to_a_cap(settings):
    settings.ARKDASH_ARCHIVE_MAX_BACKOFF_SECONDS = 300
    delays = [archive.retry_delay(attempts=n) for n in range(1, 12)]

    assert 2.5 <= delays[0] <= 5
    assert 20 <= delays[3] <= 40
    assert all(delay <= 300 for delay in delays)
    assert len({round(archive.retry_delay(attempts=4), 6) for _ in range(10)}) > 1  # jitter


def test_it_marks_an_expired_url_lost_with_the_reason(sim, mirror, archive_backend):
    task = video_task(sim, mirror)
    artifact = artifacts_create_for_task(task=task)[0]
    sim.advance(25 * 3600)

    lost = artifact_archive(artifact_id=artifact.pk)

    assert lost.state == ArtifactState.LOST
    assert lost.last_error.startswith("Lost: the output URL answered 403")
    assert "sig=" not in lost.last_error  # the presigned signature stays secret
    assert_nothing_visible(archive_backend)
    task.refresh_from_db()
    assert task.archive_state == ArchiveState.LOST
    # Lost is final: it is not retried.
    assert artifact_archive(artifact_id=artifact.pk, force=True).attempts == 1


def test_it_marks_an_output_lost_when_a_copy_fails_after_its_deadline(sim, mirror, local_archive):
    task = video_task(sim, mirror)
    artifact = artifacts_create_for_task(task=task)[0]
    Artifact.objects.filter(pk=artifact.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    sim.faults.inject("output", "500")

    lost = artifact_archive(artifact_id=artifact.pk)

    assert lost.state == ArtifactState.LOST
    assert "expired before a copy succeeded" in lost.last_error
    assert "500" in lost.last_error


def test_it_schedules_the_last_retry_no_later_than_the_deadline(sim, mirror, local_archive):
    task = video_task(sim, mirror)
    artifact = artifacts_create_for_task(task=task)[0]
    deadline = timezone.now() + timedelta(seconds=30)
    Artifact.objects.filter(pk=artifact.pk).update(deadline=deadline)
    sim.faults.inject("output", "429", retry_after=3600)

    failed = artifact_archive(artifact_id=artifact.pk)

    assert failed.state == ArtifactState.FAILED
    assert failed.next_attempt_at == deadline


def test_it_refuses_a_url_from_a_host_that_is_not_allowed_once_and_for_all(sim, mirror, local_archive, settings):
    settings.ARKDASH_ARCHIVE_ALLOWED_HOSTS = ["*.volces.com"]
    settings.ARKDASH_ARCHIVE_PRIVATE_HOSTS = []
    task = video_task(sim, mirror)
    artifact = artifacts_create_for_task(task=task)[0]
    sim.reset_stats()

    refused = artifact_archive(artifact_id=artifact.pk)

    # Configuration, not time, could change that: a final state with the reason, no retry.
    assert refused.state == ArtifactState.LOST
    assert refused.attempts == 1 and refused.next_attempt_at is None
    assert "will not retry" in refused.last_error and "not in ARKDASH_ARCHIVE_ALLOWED_HOSTS" in refused.last_error
    assert sim.stats().get("output", 0) == 0
    assert artifact_archive(artifact_id=artifact.pk).attempts == 1


def test_it_does_not_copy_an_artifact_another_worker_holds(sim, mirror, local_archive):
    task = video_task(sim, mirror)
    artifact = artifacts_create_for_task(task=task)[0]
    Artifact.objects.filter(pk=artifact.pk).update(
        state=ArtifactState.COPYING, claim_token="other", claimed_at=timezone.now()
    )
    sim.reset_stats()

    result = artifact_archive(artifact_id=artifact.pk, force=True)

    assert result.state == ArtifactState.COPYING and result.claim_token == "other"
    assert sim.stats().get("output", 0) == 0


def test_it_takes_over_a_copy_whose_worker_stopped_reporting(sim, mirror, local_archive, settings):
    settings.ARKDASH_ARCHIVE_CLAIM_TIMEOUT_SECONDS = 60
    task = video_task(sim, mirror)
    artifact = artifacts_create_for_task(task=task)[0]
    Artifact.objects.filter(pk=artifact.pk).update(
        state=ArtifactState.COPYING,
        claim_token="dead",
        claimed_at=timezone.now() - timedelta(seconds=61),
        attempts=1,
    )

    done = artifact_archive(artifact_id=artifact.pk)

    assert done.state == ArtifactState.ARCHIVED
    assert done.attempts == 2


def test_it_publishes_nothing_when_its_claim_is_taken_over_mid_copy(
    sim, mirror, archive_backend, monkeypatch
):
    task = video_task(sim, mirror, output_bytes=BIG)
    artifact = artifacts_create_for_task(task=task)[0]
    real_chunks = downloads.Source.iter_chunks

    def chunks_then_lose_claim(self):
        for number, chunk in enumerate(real_chunks(self)):
            if number == 3:
                # Another worker decides this one is dead and takes the artifact over.
                Artifact.objects.filter(pk=artifact.pk).update(
                    claim_token="usurper", claimed_at=timezone.now()
                )
            yield chunk

    monkeypatch.setattr(downloads.Source, "iter_chunks", chunks_then_lose_claim)

    result = artifact_archive(artifact_id=artifact.pk)

    assert result.state == ArtifactState.COPYING
    assert result.claim_token == "usurper"  # the loser wrote nothing to the row...
    assert result.sha256 == ""
    assert_nothing_visible(archive_backend)  # ...nor to storage


def test_it_fails_cleanly_when_the_disk_fills_up(sim, mirror, local_archive, monkeypatch):
    task = video_task(sim, mirror, output_bytes=BIG)
    artifact = artifacts_create_for_task(task=task)[0]
    real_write = storage.LocalWriter.write
    calls = {"n": 0}

    def fill_up(self, chunk):
        calls["n"] += 1
        if calls["n"] == 3:
            self._file.write = lambda data: (_ for _ in ()).throw(
                OSError(errno.ENOSPC, "No space left on device")
            )
        real_write(self, chunk)

    monkeypatch.setattr(storage.LocalWriter, "write", fill_up)

    failed = artifact_archive(artifact_id=artifact.pk)

    assert failed.state == ArtifactState.FAILED
    assert "No space left on device" in failed.last_error
    assert_nothing_visible(local_archive)


def test_it_reports_progress_while_copying(sim, mirror, local_archive, monkeypatch, settings):
    settings.ARKDASH_ARCHIVE_PROGRESS_SECONDS = 0  # every chunk: this copy takes well under a second
    task = video_task(sim, mirror, output_bytes=BIG)
    artifact = artifacts_create_for_task(task=task)[0]
    seen: list[tuple[int, int | None]] = []
    real_chunks = downloads.Source.iter_chunks

    def spy(self):
        for chunk in real_chunks(self):
            seen.append(Artifact.objects.values_list("bytes_copied", "size").get(pk=artifact.pk))
            yield chunk

    monkeypatch.setattr(downloads.Source, "iter_chunks", spy)

    artifact_archive(artifact_id=artifact.pk)

    assert all(size == BIG for _, size in seen)  # the size is known from the start
    progress = sorted({copied for copied, _ in seen})
    assert progress[0] == 0 and len(progress) >= 2 and progress[-1] < BIG


@pytest.mark.parametrize(
    "sibling_state, shown_while_copying",
    [
        (ArtifactState.PENDING, ArchiveState.COPYING),
        (ArtifactState.ARCHIVED, ArchiveState.COPYING),
        (ArtifactState.FAILED, ArchiveState.FAILED),  # failed and lost outrank copying
        (ArtifactState.LOST, ArchiveState.LOST),
    ],
)
def test_the_task_shows_copying_while_an_output_copies_unless_another_did_worse(
    sim, mirror, local_archive, monkeypatch, sibling_state, shown_while_copying
):
    task = video_task(sim, mirror, return_last_frame=True)
    artifacts = {a.output: a for a in artifacts_create_for_task(task=task)}
    Artifact.objects.filter(pk=artifacts["last_frame"].pk).update(state=sibling_state)
    archive.task_archive_state_refresh(task_id=task.pk)
    seen: list[str] = []
    real_chunks = downloads.Source.iter_chunks

    def spy(self):
        seen.append(Task.objects.values_list("archive_state", flat=True).get(pk=task.pk))
        yield from real_chunks(self)

    monkeypatch.setattr(downloads.Source, "iter_chunks", spy)

    artifact_archive(artifact_id=artifacts["video"].pk)

    assert seen == [shown_while_copying]


def test_it_copies_in_constant_memory(sim, mirror, local_archive):
    task = video_task(sim, mirror, output_bytes=96 * MiB)
    artifact = artifacts_create_for_task(task=task)[0]

    tracemalloc.start()
    try:
        done = artifact_archive(artifact_id=artifact.pk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert done.state == ArtifactState.ARCHIVED
    assert peak < 12 * MiB, f"peak Python allocation {peak / MiB:.1f} MiB for a 96 MiB copy"


def test_it_refuses_a_body_longer_than_its_content_length(account, local_archive):
    task = Task.objects.create(
        account=account,
        ark_id="cgt-1",
        kind="video",
        status="succeeded",
        ark_created_at=timezone.now(),
        video_url="http://arksim.test/v.mp4",
    )
    artifact = artifacts_create_for_task(task=task)[0]

    def liar(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": "4"}, content=iter([b"abcd", b"efgh"]))

    with transport.routed_to(httpx.MockTransport(liar)):
        failed = artifact_archive(artifact_id=artifact.pk)

    assert failed.state == ArtifactState.FAILED
    assert "more than its Content-Length" in failed.last_error
    assert local_archive.visible_keys() == []


def _hand_made_3d_task(account) -> Task:
    """A succeeded 3D task whose zip a test serves itself (through a MockTransport)."""
    return Task.objects.create(
        account=account,
        ark_id="cgt-3d",
        kind="3d",
        status="succeeded",
        file_format="glb",
        ark_created_at=timezone.now(),
        file_url="http://arksim.test/model.zip",
    )

def test_it_refuses_a_corrupt_zip_and_publishes_nothing(account, archive_backend):
    task = _hand_made_3d_task(account)
    good = io.BytesIO()
    with zipfile.ZipFile(good, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("model.glb", b"glTF" + b"x" * 5000)
    broken = bytearray(good.getvalue())
    broken[100] ^= 0xFF  # right length, wrong bytes: only the zip check can tell
    artifact = artifacts_create_for_task(task=task)[0]

    with transport.routed_to(httpx.MockTransport(lambda request: httpx.Response(200, content=bytes(broken)))):
        failed = artifact_archive(artifact_id=artifact.pk)

    assert failed.state == ArtifactState.FAILED
    assert "zip is broken" in failed.last_error
    assert_nothing_visible(archive_backend)


def _zip_of(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def _encrypted_zip() -> bytes:
    data = bytearray(_zip_of({"model.glb": b"glTF" + b"x" * 100}, compression=zipfile.ZIP_STORED))
    # Set the "encrypted" flag bit in the local header and the central directory entry.
    data[6] |= 0x1
    central = data.rfind(b"PK\x01\x02")
    data[central + 8] |= 0x1
    return bytes(data)


@pytest.mark.parametrize(
    "body, reason",
    [
        (_zip_of({"model.glb": b"\0" * 5_000_000}), "compression ratio above"),  # a small zip bomb
        (_zip_of({f"part{n}.bin": b"x" for n in range(1001)}, compression=zipfile.ZIP_STORED), "members"),
        (_encrypted_zip(), "encrypted"),
        (b"<html>an error page, not a zip</html>", "not a valid zip"),
    ],
    ids=["bomb", "too-many-members", "encrypted", "not-a-zip"],
)
def test_it_stops_retrying_a_zip_that_can_never_be_archived(account, local_archive, body, reason):
    task = _hand_made_3d_task(account)
    artifact = artifacts_create_for_task(task=task)[0]
    downloads = []

    def serve(request: httpx.Request) -> httpx.Response:
        downloads.append(request.url)
        return httpx.Response(200, content=body)

    with transport.routed_to(httpx.MockTransport(serve)):
        final = artifact_archive(artifact_id=artifact.pk)
        again = artifact_archive(artifact_id=artifact.pk, force=True)

    assert final.state == ArtifactState.LOST and final.next_attempt_at is None
    assert reason in final.last_error and "will not retry" in final.last_error
    assert again.attempts == 1 and len(downloads) == 1  # downloaded once, never again
    assert local_archive.visible_keys() == []


def test_it_archives_a_3d_zip_and_extracts_its_model_for_preview(sim, mirror, archive_backend):
    task = mirror(sim.add_task(kind="3d", status="succeeded", file_format="glb"))
    artifact = artifacts_create_for_task(task=task)[0]

    done = artifact_archive(artifact_id=artifact.pk)

    assert done.state == ArtifactState.ARCHIVED
    assert done.sha256 == sim.output_sha256(task.ark_id, "model_zip")
    preview = artifact_of(task, "model_file")
    assert preview.state == ArtifactState.ARCHIVED
    assert preview.filename == f"{task.ark_id}-model.glb"
    with zipfile.ZipFile(io.BytesIO(archive_backend.read(done.storage_key))) as z:
        glb_name = next(name for name in z.namelist() if name.endswith(".glb"))
        expected = z.read(glb_name)
    assert archive_backend.read(preview.storage_key) == expected
    assert preview.sha256 == hashlib.sha256(expected).hexdigest()
    assert expected[:4] == b"glTF"
    assert archive_backend.uploads_in_progress() == []
    task.refresh_from_db()
    assert task.archive_state == ArchiveState.ARCHIVED


def test_it_keeps_the_zip_when_its_model_cannot_be_extracted(account, local_archive):
    task = _hand_made_3d_task(account)
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../../model.glb", b"glTF" + b"x" * 100)
    artifact = artifacts_create_for_task(task=task)[0]

    with transport.routed_to(
        httpx.MockTransport(lambda request: httpx.Response(200, content=evil.getvalue()))
    ):
        done = artifact_archive(artifact_id=artifact.pk)

    assert done.state == ArtifactState.ARCHIVED  # Ark's output itself is safe in the archive
    preview = artifact_of(task, "model_file")
    assert preview.state == ArtifactState.LOST
    assert "'..' in path" in preview.last_error
    assert local_archive.visible_keys() == [done.storage_key]
    task.refresh_from_db()
    assert task.archive_state == ArchiveState.ARCHIVED


# The hand-off: a task that turns succeeded reaches the archive, even if the process dies in between.


def _flagged_minutes_ago(minutes: int) -> None:
    """As if the status change had committed that long ago (the sweep leaves fresh flags alone)."""
    Task.objects.filter(archive_handoff_pending=True).update(
        changed_at=timezone.now() - timedelta(minutes=minutes)
    )


@pytest.fixture
def no_copies(monkeypatch):
    """Count queued copies instead of running them: these tests are about the hand-off."""
    queued: list[int] = []
    monkeypatch.setattr(
        celery_tasks.archive_artifact, "apply_async", lambda args, **kw: queued.append(args[0])
    )
    return queued


def test_it_hands_a_succeeded_task_to_the_archive_once_committed(
    sim, account, no_copies, django_capture_on_commit_callbacks
):
    ark_id = sim.add_task(kind="video", status="running", run_seconds=10, return_last_frame=True)
    assert sync_account(account=account).ok
    sim.advance(30)
    with django_capture_on_commit_callbacks(execute=True):
        assert sync_account(account=account).ok
    task = Task.objects.get(ark_id=ark_id)
    assert not task.archive_handoff_pending
    outputs = set(Artifact.objects.filter(task=task).values_list("output", flat=True))
    assert outputs == {"video", "last_frame"}
    assert sorted(no_copies) == sorted(Artifact.objects.filter(task=task).values_list("pk", flat=True))


def test_it_redoes_a_hand_off_lost_in_a_crash(sim, account, no_copies, django_capture_on_commit_callbacks):
    ark_id = sim.add_task(kind="3d", status="succeeded")
    # The status change commits, then the process "dies": the after-commit hand-off never runs.
    with django_capture_on_commit_callbacks(execute=False) as pending_callbacks:
        assert sync_account(account=account).ok
    assert pending_callbacks  # there was a hand-off to do
    task = Task.objects.get(ark_id=ark_id)
    assert task.status == "succeeded" and task.archive_handoff_pending
    assert not Artifact.objects.filter(task=task).exists()

    # Minutes later, the periodic sweep (Celery beat) finds the flag and finishes the job.
    _flagged_minutes_ago(5)
    with django_capture_on_commit_callbacks(execute=True):
        assert celery_tasks.archive_handoff_sweep.delay() is not None
    task.refresh_from_db()
    assert not task.archive_handoff_pending
    assert list(Artifact.objects.filter(task=task).values_list("output", flat=True)) == ["model_zip"]
    assert len(no_copies) == 1


def test_it_keeps_the_flag_while_the_archive_fails(sim, account, no_copies, monkeypatch):
    ark_id = sim.add_task(kind="video", status="succeeded")
    assert sync_account(account=account).ok

    def broken(*, task):
        raise RuntimeError("storage unavailable")

    monkeypatch.setattr(archive, "artifacts_create_for_task", broken)
    _flagged_minutes_ago(5)
    assert archive_handoff_sweep() == 0
    assert Task.objects.get(ark_id=ark_id).archive_handoff_pending

    monkeypatch.undo()
    assert archive_handoff_sweep() == 1
    assert not Task.objects.get(ark_id=ark_id).archive_handoff_pending


def test_it_hands_off_once_however_often_it_is_retried(sim, account, no_copies):
    ark_id = sim.add_task(kind="video", status="succeeded")
    assert sync_account(account=account).ok
    for _ in range(2):
        Task.objects.filter(ark_id=ark_id).update(archive_handoff_pending=True)
        _flagged_minutes_ago(5)
        assert archive_handoff_sweep() == 1
    assert Artifact.objects.filter(task__ark_id=ark_id).count() == 2  # video and last frame, once each


def test_it_does_not_hand_off_failed_tasks(sim, account, django_capture_on_commit_callbacks):
    sim.add_task(kind="video", status="failed")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert sync_account(account=account).ok
    # Nothing to queue: at most the mirror version's after-commit bump (PostgreSQL only).
    assert [callback for callback in callbacks if not getattr(callback, "is_mirror_bump", False)] == []
    assert not Task.objects.filter(archive_handoff_pending=True).exists()
    assert not Artifact.objects.exists()


def test_it_leaves_fresh_flags_to_the_queued_hand_off(sim, account, no_copies):
    sim.add_task(kind="video", status="succeeded")
    assert sync_account(account=account).ok
    assert archive_handoff_sweep() == 0
    assert not Artifact.objects.exists()


def test_it_queues_one_hand_off_per_batch(sim, account, monkeypatch, django_capture_on_commit_callbacks):
    for _ in range(600):
        sim.add_task(kind="video", status="succeeded")
    queued = []
    monkeypatch.setattr(celery_tasks.archive_handoff, "delay", lambda *args: queued.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        assert sync_account(account=account).ok
    assert [len(ark_ids) for _, ark_ids in queued] == [500, 100]
    assert Task.objects.filter(archive_handoff_pending=True).count() == 600  # until the worker runs


def test_it_leaves_the_flag_for_the_sweep_when_the_broker_is_down(
    sim, account, monkeypatch, django_capture_on_commit_callbacks
):
    def broker_down(*args):
        raise ConnectionError("broker down")

    monkeypatch.setattr(celery_tasks.archive_handoff, "delay", broker_down)
    sim.add_task(kind="video", status="succeeded")
    with django_capture_on_commit_callbacks(execute=True):
        assert sync_account(account=account).ok  # the sync itself is not failed by it
    assert Task.objects.get().archive_handoff_pending


# The safety net: the sweeper re-queues what no worker took.


@pytest.fixture
def queued(monkeypatch) -> list[int]:
    """Artifact ids sent to the broker (recorded instead of run)."""
    sent: list[int] = []
    monkeypatch.setattr(
        celery_tasks.archive_artifact, "apply_async", lambda args, countdown=None: sent.append(args[0])
    )
    return sent


def test_it_queues_new_artifacts_once_the_transaction_commits(
    sim, mirror, local_archive, queued, django_capture_on_commit_callbacks
):
    task = mirror(sim.add_task(kind="video", status="succeeded"))

    with django_capture_on_commit_callbacks(execute=True):
        artifacts = artifacts_create_for_task(task=task)
        assert queued == []  # nothing is sent before the rows are visible to workers

    assert queued == [a.pk for a in artifacts]
    assert all(a.enqueued_at is not None for a in Artifact.objects.filter(task=task))


def test_it_requeues_what_was_never_taken_earliest_deadline_first(
    sim, mirror, local_archive, queued, settings, django_capture_on_commit_callbacks
):
    settings.ARKDASH_ARCHIVE_REQUEUE_AFTER_SECONDS = 300
    _, late = succeeded_video(sim, mirror)
    _, early = succeeded_video(sim, mirror)
    now = timezone.now()
    Artifact.objects.filter(pk=late.pk).update(
        deadline=now + timedelta(hours=20), enqueued_at=now - timedelta(hours=1)
    )
    Artifact.objects.filter(pk=early.pk).update(deadline=now + timedelta(hours=2), enqueued_at=None)

    with django_capture_on_commit_callbacks(execute=True):
        report = artifacts_sweep()

    assert report.queued == [early.pk, late.pk]
    assert queued == [early.pk, late.pk]


def test_it_does_not_requeue_what_was_queued_a_moment_ago(
    sim, mirror, local_archive, queued, django_capture_on_commit_callbacks
):
    _, artifact = succeeded_video(sim, mirror)  # artifacts_create_for_task stamped enqueued_at just now

    with django_capture_on_commit_callbacks(execute=True):
        report = artifacts_sweep()

    assert report.queued == []
    assert queued == []
    assert Artifact.objects.get(pk=artifact.pk).state == ArtifactState.PENDING


def test_it_requeues_a_copy_whose_worker_died(
    sim, mirror, local_archive, queued, settings, django_capture_on_commit_callbacks
):
    settings.ARKDASH_ARCHIVE_CLAIM_TIMEOUT_SECONDS = 60
    _, dead = succeeded_video(sim, mirror)
    _, alive = succeeded_video(sim, mirror)
    long_ago = timezone.now() - timedelta(minutes=30)
    Artifact.objects.filter(pk=dead.pk).update(
        state=ArtifactState.COPYING,
        claim_token="x",
        claimed_at=timezone.now() - timedelta(seconds=61),
        enqueued_at=long_ago,
    )
    Artifact.objects.filter(pk=alive.pk).update(
        state=ArtifactState.COPYING, claim_token="y", claimed_at=timezone.now(), enqueued_at=long_ago
    )

    with django_capture_on_commit_callbacks(execute=True):
        report = artifacts_sweep()

    assert report.queued == [dead.pk]


def test_it_requeues_a_failed_copy_only_once_its_retry_is_overdue(
    sim, mirror, local_archive, queued, settings, django_capture_on_commit_callbacks
):
    settings.ARKDASH_ARCHIVE_REQUEUE_AFTER_SECONDS = 300
    _, overdue = succeeded_video(sim, mirror)
    _, waiting = succeeded_video(sim, mirror)
    now = timezone.now()
    for artifact, due in ((overdue, now - timedelta(minutes=10)), (waiting, now + timedelta(minutes=1))):
        Artifact.objects.filter(pk=artifact.pk).update(
            state=ArtifactState.FAILED, next_attempt_at=due, enqueued_at=due
        )

    with django_capture_on_commit_callbacks(execute=True):
        report = artifacts_sweep()

    assert report.queued == [overdue.pk]


def test_it_never_requeues_archived_or_lost_outputs(
    sim, mirror, local_archive, queued, django_capture_on_commit_callbacks
):
    _, done = succeeded_video(sim, mirror)
    _, lost = succeeded_video(sim, mirror)
    Artifact.objects.filter(pk=done.pk).update(state=ArtifactState.ARCHIVED, enqueued_at=None)
    Artifact.objects.filter(pk=lost.pk).update(state=ArtifactState.LOST, enqueued_at=None)

    with django_capture_on_commit_callbacks(execute=True):
        assert artifacts_sweep().queued == []


def test_a_task_turning_succeeded_in_sync_gets_its_outputs_archived(
    sim, account, local_archive, django_capture_on_commit_callbacks
):
    from tasks_app.services.accounts import client_for
    from tasks_app.services.sync import task_upsert_from_ark

    sim_id = sim.add_task(kind="video", status="succeeded")
    client = client_for(account)
    try:
        ark_task = client.get_task(sim_id)
    finally:
        client.close()

    with django_capture_on_commit_callbacks(execute=True):
        task, _changed = task_upsert_from_ark(account=account, ark_task=ark_task)

    states = dict(Artifact.objects.filter(task=task).values_list("output", "state"))
    assert states == {"video": ArtifactState.ARCHIVED, "last_frame": ArtifactState.ARCHIVED}
    task.refresh_from_db()
    assert task.archive_state == "archived"
    assert task.archive_handoff_pending is False
