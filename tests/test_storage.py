from __future__ import annotations

import hashlib
import os

import pytest

from tasks_app.lib import storage
from tasks_app.lib.storage import (
    StorageError,
    artifact_key,
    open_read,
    open_writer,
    safe_key_part,
)

MiB = 1024 * 1024


def chunks(total: int, size: int = MiB) -> list[bytes]:
    data = os.urandom(min(total, 3 * MiB))
    out, written = [], 0
    while written < total:
        piece = data[: min(size, total - written)]
        out.append(piece)
        written += len(piece)
    return out


def test_it_builds_keys_that_cannot_leave_the_task_folder():
    key = artifact_key(account_id=3, ark_id="../../etc/cgt-1", filename="video.mp4")

    assert key == "outputs/3/etc_cgt-1/video.mp4"
    assert safe_key_part("..") == "_"
    assert safe_key_part("a/b\\c d") == "a_b_c_d"


def test_it_publishes_a_small_file_atomically(archive_backend):
    writer = open_writer("outputs/1/t/last_frame.png", content_type="image/png")
    writer.write(b"png-bytes")

    assert "outputs/1/t/last_frame.png" not in archive_backend.visible_keys()
    writer.publish()

    assert archive_backend.visible_keys() == ["outputs/1/t/last_frame.png"]
    assert archive_backend.read("outputs/1/t/last_frame.png") == b"png-bytes"
    assert archive_backend.uploads_in_progress() == []


def test_it_publishes_a_multipart_file_only_when_told(archive_backend, settings):
    settings.ARKDASH_ARCHIVE_S3_PART_MB = 5
    parts = chunks(12 * MiB + 123)
    expected = hashlib.sha256(b"".join(parts)).hexdigest()
    writer = open_writer("outputs/1/t/video.mp4", content_type="video/mp4")
    for part in parts:
        writer.write(part)

    # Everything is written but nothing is published: no reader can see the key.
    assert "outputs/1/t/video.mp4" not in archive_backend.visible_keys()
    writer.publish()

    assert archive_backend.visible_keys() == ["outputs/1/t/video.mp4"]
    assert hashlib.sha256(archive_backend.read("outputs/1/t/video.mp4")).hexdigest() == expected
    assert archive_backend.uploads_in_progress() == []
    assert writer.bytes_written == 12 * MiB + 123


def test_it_leaves_nothing_behind_when_discarded(archive_backend, settings):
    settings.ARKDASH_ARCHIVE_S3_PART_MB = 5
    writer = open_writer("outputs/1/t/video.mp4")
    for part in chunks(11 * MiB):
        writer.write(part)

    writer.discard()
    writer.discard()  # twice is harmless

    assert archive_backend.visible_keys() == []
    assert archive_backend.uploads_in_progress() == []


def test_it_keeps_the_previous_object_when_a_rewrite_is_discarded(archive_backend):
    first = open_writer("outputs/1/t/video.mp4")
    first.write(b"complete and verified")
    first.publish()

    second = open_writer("outputs/1/t/video.mp4")
    second.write(b"half")
    second.discard()

    assert archive_backend.visible_keys() == ["outputs/1/t/video.mp4"]
    assert archive_backend.read("outputs/1/t/video.mp4") == b"complete and verified"


def test_it_clears_what_a_dead_writer_left_for_the_same_key(archive_backend, settings):
    settings.ARKDASH_ARCHIVE_S3_PART_MB = 5
    dead = open_writer("outputs/1/t/video.mp4")
    for part in chunks(6 * MiB):
        dead.write(part)  # the process "dies" here: no publish, no discard

    fresh = open_writer("outputs/1/t/video.mp4")
    fresh.write(b"redone")
    fresh.publish()

    assert archive_backend.visible_keys() == ["outputs/1/t/video.mp4"]
    assert archive_backend.read("outputs/1/t/video.mp4") == b"redone"
    assert archive_backend.uploads_in_progress() == []


def test_it_refuses_writes_after_publishing(archive_backend):
    writer = open_writer("outputs/1/t/a.bin")
    writer.write(b"x")
    writer.publish()

    with pytest.raises(StorageError):
        writer.write(b"more")


def test_it_never_gives_a_local_partial_the_final_name(local_archive):
    writer = open_writer("outputs/1/t/video.mp4")
    writer.write(b"abc")

    names = local_archive.visible_keys()
    assert len(names) == 1 and names[0].startswith("outputs/1/t/video.mp4.partial-")
    writer.discard()
    assert local_archive.visible_keys() == []


def test_it_reads_back_what_it_published(archive_backend):
    writer = open_writer("outputs/1/t/model.zip")
    writer.write(b"zip bytes")
    writer.publish()

    with open_read("outputs/1/t/model.zip") as file:
        assert file.read() == b"zip bytes"


def test_it_reports_a_missing_object_clearly(archive_backend):
    with pytest.raises(StorageError, match="missing"):
        open_read("outputs/1/t/nothing.mp4").read()


def test_it_refuses_an_unsupported_storage(settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "archive": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }

    with pytest.raises(StorageError, match="not supported"):
        open_writer("outputs/1/t/a.bin")


def test_it_reads_a_part_made_of_pieces_like_one_file():
    body = storage._PartBody([b"abc", b"", b"defgh", b"ij"])

    assert len(body) == 10
    assert body.read(4) == b"abcd"
    assert body.read() == b"efghij"
    body.seek(0)
    assert body.read() == b"abcdefghij"  # botocore reads once to sign and again to send
    assert body.seek(-3, os.SEEK_END) == 7 and body.read(2) == b"hi"
    assert body.seek(100) == 10 and body.read() == b""


def test_it_detects_s3_storages_by_class():
    from storages.backends.s3 import S3Storage

    assert storage.is_s3(S3Storage(bucket_name="b"))
    assert not storage.is_s3(storage.FileSystemStorage())


def test_part_uploads_carry_no_checksum_or_signed_payload_by_default(s3_archive, settings):
    # The copy hashes every byte itself; boto3 hashing them again per part doubled its CPU.
    settings.ARKDASH_ARCHIVE_S3_PART_MB = 5
    client, _bucket, _key = storage.s3_object(storage.archive_storage(), "outputs/1/t/video.mp4")
    sent: list[dict] = []
    client.meta.events.register("before-send.s3.UploadPart", lambda request, **_: sent.append(dict(request.headers)))
    writer = storage.open_writer("outputs/1/t/video.mp4")
    writer.write(os.urandom(6 * 1024 * 1024))
    writer.publish()

    assert sent, "no part was uploaded"
    for headers in sent:
        assert headers["X-Amz-Content-SHA256"] == b"UNSIGNED-PAYLOAD"
        assert not [name for name in headers if name.lower().startswith("x-amz-checksum")]
    assert s3_archive.visible_keys() == ["outputs/1/t/video.mp4"]


def test_the_s3_client_settings_follow_the_standard_aws_variables(monkeypatch):
    from arkdash.s3 import client_config

    default = client_config()
    assert default.request_checksum_calculation == "when_required"
    assert default.s3["payload_signing_enabled"] is False
    assert default.connect_timeout and default.read_timeout
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_supported")
    monkeypatch.setenv("ARKDASH_S3_SIGN_PAYLOAD", "true")
    changed = client_config(addressing_style="virtual")
    assert changed.request_checksum_calculation == "when_supported"
    assert changed.s3 == {"addressing_style": "virtual", "payload_signing_enabled": True}


def test_it_archives_files_readable_by_the_app_user_only(local_archive):
    import stat

    from tasks_app.lib import storage as archive

    writer = archive.open_writer("outputs/1/cgt-x/video.mp4")
    writer.write(b"private bytes")
    writer.publish()

    path = local_archive.root / "outputs/1/cgt-x/video.mp4"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
