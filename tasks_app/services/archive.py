"""Archive: copy every output of a succeeded task to archive storage before its URL dies.

The verbs:
- `archive_handoff`: a task sync flagged as newly succeeded gets its artifacts, and the
  flag is cleared; `archive_handoff_sweep` redoes hand-offs a crash interrupted.
- `artifacts_create_for_task`: one Artifact per output URL (idempotent), queued.
- `artifact_archive`: one copy attempt. A conditional UPDATE claims the artifact so
  only one worker copies it; the copy streams (constant memory), hashes, checks the
  length against Content-Length and, for 3D zips, the zip itself, then publishes
  atomically (see tasks_app/lib/storage.py). Every later write checks the claim token,
  so a worker that lost its claim (it stalled and was taken over) changes nothing.
- `artifacts_sweep`: re-queues what is not archived yet, earliest deadline first.

States: pending → copying → archived | failed (retried with backoff) | lost (the
source said 403/404/410, or an attempt failed after the deadline).
"""

from __future__ import annotations

import hashlib
import logging
import queue
import random
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from tasks_app import model_convert
from tasks_app.ark import OUTPUT_URL_LIFETIME
from tasks_app.lib import downloads, storage, zipsafe
from tasks_app.models import ArchiveState, Artifact, ArtifactOutput, ArtifactState, Task, TaskStatus
from tasks_app.selectors import archive_lag_seconds
from tasks_app.services import insights_rollup, pictures

logger = logging.getLogger(__name__)

BASE_BACKOFF_SECONDS = 5.0
SPOOL_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class OutputSpec:
    url_field: str
    stem: str  # file name part: <ark_id>-<stem>.<ext>
    extension: str
    content_type: str


SOURCE_OUTPUTS: dict[str, OutputSpec] = {
    ArtifactOutput.VIDEO: OutputSpec("video_url", "video", "mp4", "video/mp4"),
    ArtifactOutput.LAST_FRAME: OutputSpec("last_frame_url", "last-frame", "png", "image/png"),
    ArtifactOutput.MODEL_ZIP: OutputSpec("file_url", "model", "zip", "application/zip"),
}
MODEL_CONTENT_TYPES = {
    "glb": "model/gltf-binary",
    "gltf": "model/gltf+json",
    "obj": "model/obj",
    "usdz": "model/vnd.usdz+zip",
}


class ArchiveError(Exception):
    """A copy attempt that did not work; the message is shown on the page."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


class ClaimLost(Exception):
    """Another worker took this artifact over: stop without writing anything."""


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


# --- Creating artifacts ---------------------------------------------------------


def output_deadline(*, task: Task, url: str) -> datetime:
    """When an output URL dies: the earliest of what the task and the URL say.

    Ark URLs live 24 h after success; presigned URLs also carry their own expiry
    (TOS `X-Tos-Date`+`X-Tos-Expires`, S3 `X-Amz-*`, the simulator's `expires`).
    """
    candidates = [d for d in (task.outputs_expire_at, _expiry_from_url(url)) if d is not None]
    if candidates:
        return min(candidates)
    succeeded_at = task.ark_updated_at or task.finished_at or timezone.now()
    return succeeded_at + OUTPUT_URL_LIFETIME


def _expiry_from_url(url: str) -> datetime | None:
    try:
        query = {k.lower(): v[0] for k, v in parse_qs(urlsplit(url).query).items() if v}
    except ValueError:
        return None
    try:
        for prefix in ("x-tos-", "x-amz-"):
            if f"{prefix}date" in query and f"{prefix}expires" in query:
                signed = datetime.strptime(query[f"{prefix}date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
                return signed + timedelta(seconds=int(query[f"{prefix}expires"]))
        if "expires" in query:
            return datetime.fromtimestamp(int(float(query["expires"])), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def artifacts_create_for_task(*, task: Task) -> list[Artifact]:
    """One Artifact per output URL of a succeeded task, queued for copying. Idempotent.

    A re-read task may carry freshly signed URLs: an artifact not copied yet takes
    the new URL (and its deadline); archived and lost ones are left alone.

    Two Accounts may mirror the same Ark task (two keys of one Ark account). Its outputs
    are archived once, by the first row handed off: the rows of every Account mirroring
    the id are locked together, so of two concurrent hand-offs the second sees the
    first one's artifacts and creates none.
    """
    if task.status != TaskStatus.SUCCEEDED:
        return list(task.artifacts.order_by("pk"))
    wanted = {
        output: (url, spec)
        for output, spec in SOURCE_OUTPUTS.items()
        if (url := getattr(task, spec.url_field) or "")
    }
    with transaction.atomic():
        list(Task.objects.select_for_update().filter(ark_id=task.ark_id).order_by("pk").values_list("pk"))
        if Artifact.objects.filter(task__ark_id=task.ark_id).exclude(task=task).exists():
            logger.info("outputs of %s are archived by another account's row", task.ark_id)
            return []
        existing = {artifact.output: artifact for artifact in Artifact.objects.filter(task=task)}
        new = [
            Artifact(
                task=task,
                output=output,
                source_url=url,
                deadline=output_deadline(task=task, url=url),
                filename=f"{storage.safe_key_part(task.ark_id)}-{spec.stem}.{spec.extension}",
                content_type=spec.content_type,
                storage_key=storage.artifact_key(
                    account_id=task.account_id, ark_id=task.ark_id, filename=f"{spec.stem}.{spec.extension}"
                ),
            )
            for output, (url, spec) in wanted.items()
            if output not in existing
        ]
        # ignore_conflicts: a concurrent hand-off of the same task may have inserted them first.
        Artifact.objects.bulk_create(new, ignore_conflicts=True)
        for output, (url, _spec) in wanted.items():
            artifact = existing.get(output)
            if (
                artifact
                and artifact.state in (ArtifactState.PENDING, ArtifactState.FAILED)
                and artifact.source_url != url
            ):
                Artifact.objects.filter(
                    pk=artifact.pk, state__in=[ArtifactState.PENDING, ArtifactState.FAILED]
                ).update(source_url=url, deadline=output_deadline(task=task, url=url))
        artifacts = list(Artifact.objects.filter(task=task).order_by("pk"))
        created = {a.output for a in new}
        # Only rows this call inserted are queued here; the others were queued when created.
        artifacts_enqueue([a.pk for a in artifacts if a.output in created and a.enqueued_at is None])
        task_archive_state_refresh(task_id=task.pk)
    return artifacts


def artifacts_enqueue(artifact_ids: Iterable[int], *, countdown: float | None = None) -> None:
    """Queue copies once the surrounding transaction commits (the rows must be visible)."""
    ids = list(artifact_ids)
    if not ids:
        return
    Artifact.objects.filter(pk__in=ids).update(enqueued_at=timezone.now())

    def send() -> None:
        from tasks_app.tasks import archive_artifact

        for artifact_id in ids:
            try:
                archive_artifact.apply_async((artifact_id,), countdown=countdown)
            except Exception:  # noqa: BLE001 - a broker hiccup: the sweeper queues it again
                logger.warning(
                    "could not queue archive of artifact %s; the sweeper will", artifact_id, exc_info=True
                )

    transaction.on_commit(send)


# --- Hand-off from sync ---------------------------------------------------------

# A hand-off normally follows its commit within seconds: the sweep leaves younger flags
# to the queued message instead of doing the same work twice.
HANDOFF_SWEEP_MIN_AGE = timedelta(minutes=2)


def archive_handoff(*, task: Task) -> bool:
    """Give a succeeded task's outputs to the archive, then clear its pending flag.

    Idempotent (the archive creates one Artifact per output and queues its copy).
    Returns False, leaving the flag for `archive_handoff_sweep`, when the archive fails.
    """
    try:
        artifacts_create_for_task(task=task)
    except Exception:
        logger.exception("archive hand-off of %s failed; the sweep will retry it", task.ark_id)
        return False
    # changed_at too: while flagged the row counts as live on the page (Task.is_live), and the
    # page's poll notices a row by its version.
    Task.objects.filter(pk=task.pk, archive_handoff_pending=True).update(
        archive_handoff_pending=False, changed_at=timezone.now()
    )
    return True


def archive_handoff_by_ark_ids(*, account_id: int, ark_ids: Iterable[str]) -> int:
    tasks = Task.objects.filter(account_id=account_id, ark_id__in=list(ark_ids), archive_handoff_pending=True)
    return sum(archive_handoff(task=task) for task in tasks)


def archive_handoff_sweep(*, min_age: timedelta = HANDOFF_SWEEP_MIN_AGE, limit: int = 1000) -> int:
    """Redo every hand-off still pending `min_age` after the task turned succeeded (the
    process died between commit and hand-off, or the broker lost the message)."""
    flagged_before = timezone.now() - min_age
    pending = Task.objects.filter(archive_handoff_pending=True, changed_at__lt=flagged_before).order_by(
        "ark_updated_at", "pk"
    )[:limit]
    return sum(archive_handoff(task=task) for task in pending)


# --- Task summary ---------------------------------------------------------------

# The worst state wins: a lost output matters more than one still copying.
_SUMMARY_ORDER = [
    (ArtifactState.LOST, ArchiveState.LOST),
    (ArtifactState.FAILED, ArchiveState.FAILED),
    (ArtifactState.COPYING, ArchiveState.COPYING),
    (ArtifactState.PENDING, ArchiveState.PENDING),
    (ArtifactState.ARCHIVED, ArchiveState.ARCHIVED),
]


def task_archive_state_refresh(*, task_id: int) -> str:
    """Recompute Task.archive_state from its outputs; writes (and bumps changed_at) only on change.

    The extracted 3D preview is a convenience derived from the archived zip: it does
    not count, so a task whose zip is safe reads "archived" even if no preview exists.
    """
    with transaction.atomic():
        # Two workers finishing two outputs of one task at once: without the row lock the
        # one that read first could write last, leaving a stale summary.
        list(Task.objects.select_for_update().filter(pk=task_id).values_list("pk", flat=True))
        states = set(
            Artifact.objects.filter(task_id=task_id)
            .exclude(output=ArtifactOutput.MODEL_FILE)
            .values_list("state", flat=True)
        )
        summary = next((summary for state, summary in _SUMMARY_ORDER if state in states), ArchiveState.NONE)
        Task.objects.filter(pk=task_id).exclude(archive_state=summary).update(
            archive_state=summary, changed_at=timezone.now()
        )
    return summary


def _task_shows_copying(task_id: int) -> None:
    """An output started copying: what task_archive_state_refresh would conclude, in one UPDATE.

    Copying outranks pending and archived and is outranked by failed and lost, so only
    those two summaries change. One conditional statement, no lock or read: it runs
    for every output, and the full refresh cost a transaction of four queries.
    """
    Task.objects.filter(
        pk=task_id, archive_state__in=[ArchiveState.NONE, ArchiveState.PENDING, ArchiveState.ARCHIVED]
    ).update(archive_state=ArchiveState.COPYING, changed_at=timezone.now())


# --- Copying --------------------------------------------------------------------


def _claim(artifact_id: int, *, force: bool) -> str | None:
    """Take the artifact for this worker, or None when it is not ours to copy.

    Pending ones, failed ones whose retry is due (any failed one with force), and
    copies whose worker stopped reporting progress (it died) can be taken.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=_setting("ARKDASH_ARCHIVE_CLAIM_TIMEOUT_SECONDS", 300))
    failed_due = Q(state=ArtifactState.FAILED)
    if not force:
        failed_due &= Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    takeable = (
        Q(state=ArtifactState.PENDING) | failed_due | Q(state=ArtifactState.COPYING, claimed_at__lt=stale)
    )
    token = secrets.token_hex(16)
    claimed = (
        Artifact.objects.filter(pk=artifact_id)
        .filter(takeable)
        .update(
            state=ArtifactState.COPYING,
            claim_token=token,
            claimed_at=now,
            attempts=F("attempts") + 1,
            bytes_copied=0,
        )
    )
    return token if claimed else None


class _Progress:
    """Writes bytes_copied about once a second; doubles as the claim's heartbeat.

    Time-based, not byte-based: a fast copy must not spend its time on UPDATEs, and
    the page polls every few seconds anyway.
    """

    def __init__(self, artifact_id: int, token: str) -> None:
        self.artifact_id, self.token = artifact_id, token
        self.every = _setting("ARKDASH_ARCHIVE_PROGRESS_SECONDS", 1.0)
        self.reported_at = time.monotonic()

    def update(self, copied: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.reported_at < self.every:
            return
        still_ours = Artifact.objects.filter(pk=self.artifact_id, claim_token=self.token).update(
            bytes_copied=copied, claimed_at=timezone.now()
        )
        if not still_ours:
            raise ClaimLost
        self.reported_at = now


@dataclass
class _Copied:
    size: int
    sha256: str


def _spool_dir() -> str:
    path = Path(settings.DATA_DIR) / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def _zip_limits() -> zipsafe.ZipLimits:
    return zipsafe.ZipLimits(
        max_total_bytes=int(_setting("ARKDASH_ARCHIVE_ZIP_MAX_BYTES", 2 * 1024**3)),
        max_ratio=_setting("ARKDASH_ARCHIVE_ZIP_MAX_RATIO", 200),
    )


class _Stage:
    """One consumer of the copied blocks, on its own thread, behind a short queue."""

    def __init__(self, name: str, consume: Callable[[bytes], object], depth: int) -> None:
        self._consume = consume
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (block := self._queue.get()) is not None and not self._stopping:
                self._consume(block)
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            self.error = exc

    def put(self, block: bytes | None) -> None:
        while True:
            if self.error is not None:
                raise self.error
            if not self._thread.is_alive():
                raise ArchiveError("the archive writer stopped unexpectedly")
            try:
                self._queue.put(block, timeout=0.5)
                return
            except queue.Full:
                continue

    def join(self) -> None:
        self._thread.join()
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        self._stopping = True
        while self._thread.is_alive():
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                try:
                    self._queue.get_nowait()  # make room; the data is being thrown away
                except queue.Empty:
                    pass
            self._thread.join(0.1)


class _HashingWriter:
    """Hashes and writes the copied bytes on two more threads while the caller reads.

    Parsing HTTP holds the GIL; sha256 and file writes release it. Running the three
    side by side (each stage gets the same immutable 1 MiB blocks) is what lets one
    Python worker keep up with curl. The queues are short, so memory stays flat; an
    error in a stage surfaces on the next write() or in finish().
    """

    BLOCK = 1024 * 1024
    DEPTH = 2

    def __init__(self, sink: BinaryIO | storage.ArchiveWriter) -> None:
        self._digest = hashlib.sha256()
        self._pieces: list[bytes] = []
        self._pending_bytes = 0
        self._stages = [
            _Stage("archive-hash", self._digest.update, self.DEPTH),
            _Stage("archive-write", sink.write, self.DEPTH),
        ]

    def write(self, chunk: bytes) -> None:
        self._pieces.append(chunk)
        self._pending_bytes += len(chunk)
        if self._pending_bytes >= self.BLOCK:
            self._send(self._take())

    def _take(self) -> bytes:
        block = b"".join(self._pieces)
        self._pieces, self._pending_bytes = [], 0
        return block

    def _send(self, block: bytes | None) -> None:
        for stage in self._stages:
            stage.put(block)

    def finish(self) -> str:
        """Write what is left, wait for the stages; the sha256 of everything written."""
        if self._pieces:
            self._send(self._take())
        self._send(None)
        for stage in self._stages:
            stage.join()
        return self._digest.hexdigest()

    def abort(self) -> None:
        """Stop the stages without finishing (safe after finish)."""
        for stage in self._stages:
            stage.stop()


def _copy_source(artifact: Artifact, token: str) -> _Copied:
    """Stream the output URL into archive storage; publish only what was verified."""
    spec = SOURCE_OUTPUTS[artifact.output]
    is_zip = artifact.output == ArtifactOutput.MODEL_ZIP
    zip_cap = int(_setting("ARKDASH_ARCHIVE_ZIP_MAX_BYTES", 2 * 1024**3))
    progress = _Progress(artifact.pk, token)
    with downloads.open_source(artifact.source_url) as source:
        expected = source.content_length
        if is_zip and expected is not None and expected > zip_cap:
            raise ArchiveError(
                f"the zip is {expected} bytes, over ARKDASH_ARCHIVE_ZIP_MAX_BYTES", retryable=False
            )
        Artifact.objects.filter(pk=artifact.pk, claim_token=token).update(size=expected)
        # 3D zips (a few MB) are checked before anything is uploaded: spool them locally.
        sink: BinaryIO | storage.ArchiveWriter
        sink = (
            tempfile.TemporaryFile(dir=_spool_dir())
            if is_zip
            else storage.open_writer(artifact.storage_key, content_type=spec.content_type)
        )
        writer = _HashingWriter(sink)
        try:
            copied = 0
            for chunk in source.iter_chunks():
                copied += len(chunk)
                if expected is not None and copied > expected:
                    raise ArchiveError(f"the source sent more than its Content-Length of {expected} bytes")
                if is_zip and copied > zip_cap:
                    raise ArchiveError("the zip is over ARKDASH_ARCHIVE_ZIP_MAX_BYTES", retryable=False)
                writer.write(chunk)
                progress.update(copied)
            if expected is not None and copied != expected:
                raise ArchiveError(f"the download stopped at {copied} of {expected} bytes")
            sha256 = writer.finish()
            if is_zip:
                _publish_zip(sink, artifact=artifact, token=token, progress=progress, copied=copied)
            else:
                progress.update(copied, force=True)  # last claim check before the object appears
                sink.publish()
        finally:
            writer.abort()  # before closing the sink under its feet; no-op after finish
            if is_zip:
                sink.close()
            else:
                sink.discard()  # no-op after publish
    return _Copied(size=copied, sha256=sha256)


def _publish_zip(
    spool: BinaryIO, *, artifact: Artifact, token: str, progress: _Progress, copied: int
) -> None:
    spool.seek(0)
    try:
        zipsafe.verify_zip(spool, limits=_zip_limits())
    except zipsafe.ZipError as exc:
        # A zip bomb was downloaded again and again until the URL died: what cannot
        # change is final now.
        raise ArchiveError(f"the downloaded zip is broken: {exc}", retryable=not exc.final) from None
    spool.seek(0)
    writer = storage.open_writer(artifact.storage_key, content_type="application/zip")
    try:
        while chunk := spool.read(SPOOL_CHUNK):
            writer.write(chunk)
        progress.update(copied, force=True)
        writer.publish()
    finally:
        writer.discard()


def _extract_model_file(artifact: Artifact, token: str) -> _Copied:
    """Take the model out of the task's archived zip, into its own object for preview."""
    zip_artifact = Artifact.objects.filter(
        task_id=artifact.task_id, output=ArtifactOutput.MODEL_ZIP, state=ArtifactState.ARCHIVED
    ).first()
    if zip_artifact is None:
        raise ArchiveError("the model zip is not archived yet")
    file_format = (artifact.task.file_format or "").lower()
    if file_format in model_convert.CONVERTIBLE and artifact.filename.endswith(".glb"):
        return _convert_model_file(artifact, zip_artifact, file_format, token)
    with tempfile.TemporaryFile(dir=_spool_dir()) as spool:
        with storage.open_read(zip_artifact.storage_key) as archived:
            while chunk := archived.read(SPOOL_CHUNK):
                spool.write(chunk)
        spool.seek(0)
        writer = storage.open_writer(artifact.storage_key, content_type=artifact.content_type)
        try:
            member = zipsafe.extract_model(
                spool, file_format=artifact.task.file_format, write=writer.write, limits=_zip_limits()
            )
            _Progress(artifact.pk, token).update(member.size, force=True)
            writer.publish()
        except zipsafe.ZipError as exc:
            raise ArchiveError(f"no preview: {exc}", retryable=False) from None
        finally:
            writer.discard()
    return _Copied(size=member.size, sha256=member.sha256)


def _convert_model_file(artifact: Artifact, zip_artifact: Artifact, file_format: str, token: str) -> _Copied:
    """The preview of an obj or USD model: converted to glb, the one format the viewer reads."""
    with tempfile.TemporaryDirectory(dir=_spool_dir()) as workdir:
        zip_path = Path(workdir) / "model.zip"
        with storage.open_read(zip_artifact.storage_key) as archived, zip_path.open("wb") as spool:
            while chunk := archived.read(SPOOL_CHUNK):
                spool.write(chunk)
        unpacked = Path(workdir) / "model"
        unpacked.mkdir()
        try:
            glb = model_convert.zip_to_glb(zip_path, file_format=file_format, workdir=unpacked, limits=_zip_limits())
        except (zipsafe.ZipError, model_convert.ConversionError) as exc:
            raise ArchiveError(f"no preview: {exc}", retryable=False) from None
    writer = storage.open_writer(artifact.storage_key, content_type=MODEL_CONTENT_TYPES["glb"])
    try:
        writer.write(glb)
        _Progress(artifact.pk, token).update(len(glb), force=True)
        writer.publish()
    finally:
        writer.discard()
    return _Copied(size=len(glb), sha256=hashlib.sha256(glb).hexdigest())


def artifact_archive(*, artifact_id: int, force: bool = False) -> Artifact:
    """One copy attempt of one artifact; returns it as it stands afterwards.

    Archived and lost artifacts, and ones another worker holds, are left alone.
    `force` retries a failed artifact before its backoff is over (the CLI).
    Raises Artifact.DoesNotExist for an unknown id (its task was deleted).
    """
    artifact = Artifact.objects.select_related("task").get(pk=artifact_id)
    if artifact.state in (ArtifactState.ARCHIVED, ArtifactState.LOST):
        return artifact
    token = _claim(artifact_id, force=force)
    if token is None:
        artifact.refresh_from_db()
        return artifact
    # What the claim wrote, without reading the row back (a copy is a few queries).
    artifact.state, artifact.claim_token, artifact.attempts = (
        ArtifactState.COPYING,
        token,
        artifact.attempts + 1,
    )
    if artifact.output != ArtifactOutput.MODEL_FILE:  # the preview does not count (see the refresh)
        _task_shows_copying(artifact.task_id)
    try:
        if artifact.output == ArtifactOutput.MODEL_FILE:
            copied = _extract_model_file(artifact, token)
        else:
            copied = _copy_source(artifact, token)
    except ClaimLost:
        logger.warning("archive of artifact %s was taken over by another worker", artifact_id)
    except downloads.SourceGone as exc:
        _record_outcome(artifact, token, lost=f"Lost: {exc.message}")
    except (downloads.FetchError, ArchiveError, storage.StorageError) as exc:
        _record_failure(artifact, token, exc)
    except Exception as exc:  # noqa: BLE001 - a bug or a dependency failure must not kill the worker silently
        logger.exception("archive of artifact %s failed unexpectedly", artifact_id)
        _record_failure(artifact, token, ArchiveError(f"unexpected error ({type(exc).__name__})"))
    else:
        _record_outcome(artifact, token, copied=copied)
        pictures.picture_enqueue(artifact_id=artifact.pk)  # after commit; never changes the outcome
        if artifact.output == ArtifactOutput.MODEL_ZIP:
            preview = _model_file_artifact(artifact)
            if preview is not None:
                artifact_archive(artifact_id=preview.pk)
    task_archive_state_refresh(task_id=artifact.task_id)
    artifact.refresh_from_db()
    return artifact


def _model_file_artifact(zip_artifact: Artifact) -> Artifact | None:
    task = zip_artifact.task
    extension = (task.file_format or "glb").lower()
    if extension not in zipsafe.MODEL_EXTENSIONS or extension in model_convert.CONVERTIBLE:
        extension = "glb"  # obj and USD models are previewed converted (_convert_model_file)
    artifact, _created = Artifact.objects.get_or_create(
        task=task,
        output=ArtifactOutput.MODEL_FILE,
        defaults={
            "filename": f"{storage.safe_key_part(task.ark_id)}-model.{extension}",
            "content_type": MODEL_CONTENT_TYPES.get(extension, "application/octet-stream"),
            "storage_key": storage.artifact_key(
                account_id=task.account_id, ark_id=task.ark_id, filename=f"model.{extension}"
            ),
        },
    )
    return artifact if artifact.state != ArtifactState.ARCHIVED else None


def _record_outcome(artifact: Artifact, token: str, *, copied: _Copied | None = None, lost: str = "") -> None:
    now = timezone.now()
    if copied is not None:
        values = {
            "state": ArtifactState.ARCHIVED,
            "size": copied.size,
            "bytes_copied": copied.size,
            "sha256": copied.sha256,
            "archived_at": now,
            "last_error": "",
            "next_attempt_at": None,
        }
    else:
        values = {"state": ArtifactState.LOST, "last_error": lost[:2000], "next_attempt_at": None}
    recorded = Artifact.objects.filter(pk=artifact.pk, claim_token=token).update(
        claim_token="", claimed_at=None, **values
    )
    if recorded and copied is not None:  # the insights' bytes archived of this hour changed
        insights_rollup.hours_mark([(artifact.task.account_id, now)])


def retry_delay(*, attempts: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter, capped; never sooner than the source asked."""
    cap = _setting("ARKDASH_ARCHIVE_MAX_BACKOFF_SECONDS", 900)
    ceiling = min(cap, BASE_BACKOFF_SECONDS * 2 ** max(attempts - 1, 0))
    delay = random.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


def _record_failure(artifact: Artifact, token: str, exc: Exception) -> None:
    message = getattr(exc, "message", str(exc))
    retryable = getattr(exc, "retryable", True)
    now = timezone.now()
    attempts = Artifact.objects.filter(pk=artifact.pk).values_list("attempts", flat=True).first() or 1
    max_attempts = int(_setting("ARKDASH_ARCHIVE_MAX_ATTEMPTS", 100))
    is_source = artifact.output != ArtifactOutput.MODEL_FILE
    if not retryable:
        lost = f"Lost (will not retry): {message}"
    elif is_source and artifact.deadline is not None and now >= artifact.deadline:
        lost = f"Lost: the output URL expired before a copy succeeded (last error: {message})"
    elif attempts >= max_attempts:
        lost = f"Lost: gave up after {attempts} attempts (last error: {message})"
    else:
        lost = ""
    if lost:
        _record_outcome(artifact, token, lost=lost)
        return
    next_at = now + timedelta(
        seconds=retry_delay(attempts=attempts, retry_after=getattr(exc, "retry_after", None))
    )
    if is_source and artifact.deadline is not None and now < artifact.deadline < next_at:
        next_at = artifact.deadline  # one last try as the URL dies, rather than none
    Artifact.objects.filter(pk=artifact.pk, claim_token=token).update(
        state=ArtifactState.FAILED,
        last_error=message[:2000],
        next_attempt_at=next_at,
        enqueued_at=next_at,  # the retry is queued for then; the sweeper waits past it
        claim_token="",
        claimed_at=None,
        bytes_copied=0,
    )


# --- Sweeping --------------------------------------------------------


@dataclass
class SweepReport:
    queued: list[int] = field(default_factory=list)
    lag_seconds: float = 0.0


def _due_for_queue(now: datetime) -> Q:
    requeue_before = now - timedelta(seconds=_setting("ARKDASH_ARCHIVE_REQUEUE_AFTER_SECONDS", 300))
    stale = now - timedelta(seconds=_setting("ARKDASH_ARCHIVE_CLAIM_TIMEOUT_SECONDS", 300))
    not_recently_queued = Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=requeue_before)
    failed_due = Q(state=ArtifactState.FAILED) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    return not_recently_queued & (
        Q(state=ArtifactState.PENDING) | failed_due | Q(state=ArtifactState.COPYING, claimed_at__lt=stale)
    )


def artifacts_sweep(*, limit: int = 1000) -> SweepReport:
    """Queue every artifact that should be copying and is not, earliest deadline first.

    Covers lost broker messages, workers killed mid-copy (their claim goes stale) and
    retries whose countdown message vanished.
    """
    now = timezone.now()
    due = list(
        Artifact.objects.filter(_due_for_queue(now))
        .order_by(F("deadline").asc(nulls_last=True), "pk")
        .values_list("pk", flat=True)[:limit]
    )
    with transaction.atomic():
        artifacts_enqueue(due)
    return SweepReport(queued=due, lag_seconds=archive_lag_seconds(now=now))
