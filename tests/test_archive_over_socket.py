"""The copy over a real socket: the bulk body read (downloads.Source) and every output fault.

test_archive.py drives the simulator in-process, where a response has no socket; here
the simulator is a real HTTP server on loopback, so the body is read the way a worker
reads it in production: h11's buffered start, then 1 MiB reads off the connection.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.utils import timezone

from tasks_app.lib import downloads
from tasks_app.models import Artifact, ArtifactState
from tasks_app.services.archive import artifact_archive, artifacts_create_for_task

from .conftest import SIM_API_KEY

pytestmark = pytest.mark.django_db
MiB = 1024 * 1024
SIZE = 12 * MiB + 12345  # several bulk reads and S3 parts, and an uneven tail


@pytest.fixture
def sim():
    """The simulator served on a real loopback socket; outbound calls use the network."""
    from arksim import Simulator

    simulator = Simulator(
        api_keys=(SIM_API_KEY,),
        list_rate_per_second=None,
        get_rate_per_second=None,
        delete_rate_per_second=None,
    )
    with simulator.serve(realtime=False):
        yield simulator


@pytest.fixture(autouse=True)
def small_parts(settings):
    settings.ARKDASH_ARCHIVE_S3_PART_MB = 5
    # The simulator listens on loopback: opted in, as `make run` does for its own.
    settings.ARKDASH_ARCHIVE_PRIVATE_HOSTS = ["127.0.0.1"]


def video_artifact(sim, mirror, *, output_bytes: int = SIZE):
    task = mirror(sim.add_task(kind="video", status="succeeded", output_bytes=output_bytes))
    return task, artifacts_create_for_task(task=task)[0]


def test_the_bulk_read_returns_every_byte_of_the_body_in_order(sim):
    task_id = sim.add_task(kind="video", status="succeeded", output_bytes=SIZE)
    url = sim.task_json(task_id)["content"]["video_url"]

    with downloads.open_source(url) as source:
        assert source.content_length == SIZE
        chunks = list(source.iter_chunks())

    body = b"".join(chunks)
    assert len(body) == SIZE
    assert hashlib.sha256(body).hexdigest() == sim.output_sha256(task_id, "video")
    # Read in big pieces, not h11's 64 KiB ones.
    assert max(len(chunk) for chunk in chunks) > 64 * 1024


# 40,000: the whole body arrives with the headers; the others straddle read sizes.
@pytest.mark.parametrize("size", [40_000, 64 * 1024, 64 * 1024 + 1, downloads.BULK_READ + 1])
def test_the_bulk_read_handles_bodies_around_its_buffer_sizes(sim, mirror, local_archive, size):
    task, artifact = video_artifact(sim, mirror, output_bytes=size)

    done = artifact_archive(artifact_id=artifact.pk)

    assert done.state == ArtifactState.ARCHIVED
    assert done.size == size
    assert hashlib.sha256(local_archive.read(done.storage_key)).hexdigest() == sim.output_sha256(
        task.ark_id, "video"
    )


def test_it_archives_byte_for_byte_over_a_socket(sim, mirror, archive_backend):
    task, artifact = video_artifact(sim, mirror)

    done = artifact_archive(artifact_id=artifact.pk)

    assert done.state == ArtifactState.ARCHIVED, done.last_error
    assert done.size == SIZE
    assert done.sha256 == sim.output_sha256(task.ark_id, "video")
    assert archive_backend.visible_keys() == [done.storage_key]
    assert hashlib.sha256(archive_backend.read(done.storage_key)).hexdigest() == done.sha256


@pytest.mark.parametrize(
    "fault, message",
    [
        ("truncate", "stopped at"),  # the server closes the connection halfway through the body
        ("bad_length", "stopped at"),  # Content-Length promises more than is sent
        ("drop", "could not connect"),  # the connection closes before any answer
        ("500", "answered 500"),
        ("429", "rate limiting"),
    ],
)
def test_a_fault_over_a_socket_leaves_nothing_and_the_retry_is_exact(
    sim, mirror, archive_backend, fault, message
):
    task, artifact = video_artifact(sim, mirror)
    sim.faults.inject("output", fault)

    failed = artifact_archive(artifact_id=artifact.pk)

    assert failed.state == ArtifactState.FAILED
    assert message in failed.last_error
    assert archive_backend.visible_keys() == []
    assert archive_backend.uploads_in_progress() == []
    Artifact.objects.filter(pk=failed.pk).update(next_attempt_at=timezone.now())
    done = artifact_archive(artifact_id=artifact.pk)
    assert done.state == ArtifactState.ARCHIVED
    assert archive_backend.visible_keys() == [done.storage_key]
    assert done.sha256 == sim.output_sha256(task.ark_id, "video")


@contextmanager
def stalling_server(*, declared: int, sent: bytes) -> Iterator[str]:
    """Answers once with headers and `sent`, then holds the connection open in silence."""
    listener = socket.create_server(("127.0.0.1", 0))
    release = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        head = f"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: {declared}\r\n\r\n"
        conn.sendall(head.encode() + sent)
        release.wait(10)
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/out.mp4"
    finally:
        release.set()
        thread.join(5)
        listener.close()


def test_a_source_that_stalls_mid_body_times_out_with_a_clear_error(settings):
    settings.ARKDASH_ARCHIVE_READ_TIMEOUT_SECONDS = 0.5
    with stalling_server(declared=4 * MiB, sent=b"x" * 100_000) as url:
        with downloads.open_source(url) as source:
            received = 0
            with pytest.raises(downloads.FetchError, match="timed out reading"):
                for chunk in source.iter_chunks():
                    received += len(chunk)
    assert received == 100_000
