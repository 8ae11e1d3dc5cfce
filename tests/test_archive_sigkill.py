"""A worker killed with SIGKILL mid-copy: another one redoes it, leaving exactly one correct object.

Real processes (`manage.py archive`), the simulator on a real socket, the real test
database, local disk and the moto S3 server. A relay in front of the simulator makes
the first download slow, so the kill lands in the middle of the copy.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from django.db import connection

from tasks_app import tasks
from tasks_app.models import Artifact, ArtifactState, Task
from tasks_app.services.archive import artifacts_create_for_task

MiB = 1024 * 1024
OUTPUT_BYTES = 48 * MiB
FIRST_DOWNLOAD_BYTES_PER_SECOND = 6 * MiB
ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def slow_first_relay(upstream: str) -> Iterator[str]:
    """An HTTP relay to `upstream` that throttles only the first download."""
    served = {"count": 0}

    class Relay(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            first = served["count"] == 0
            served["count"] += 1
            with httpx.stream("GET", upstream + self.path, timeout=30) as response:
                self.send_response(response.status_code)
                for name in ("content-length", "content-type"):
                    if name in response.headers:
                        self.send_header(name, response.headers[name])
                self.end_headers()
                try:
                    for chunk in response.iter_raw(256 * 1024):
                        self.wfile.write(chunk)
                        if first:
                            time.sleep(len(chunk) / FIRST_DOWNLOAD_BYTES_PER_SECOND)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the worker was killed

        def log_message(self, *args) -> None:
            pass

    class QuietServer(ThreadingHTTPServer):
        def handle_error(self, request, client_address) -> None:
            pass  # the killed worker's dropped connection is expected here

    server = QuietServer(("127.0.0.1", 0), Relay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def worker_env(backend, data_dir: Path, **extra: str) -> dict[str, str]:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "arkdash.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "ARKDASH_DATA_DIR": str(data_dir),
        "ARKDASH_ARCHIVE_S3_PART_MB": "5",
        # The simulator and its relay listen on loopback: opted in, as `make run` does.
        "ARKDASH_ARCHIVE_PRIVATE_HOSTS": "127.0.0.1",
        **extra,
    }
    env.pop("REDIS_URL", None)
    if backend.kind == "s3":
        env.update(
            ARKDASH_S3_BUCKET=backend.bucket,
            ARKDASH_S3_ENDPOINT_URL=backend.endpoint,
            ARKDASH_S3_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
        )
    return env


def start_worker(ark_id: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "archive", "--task", ark_id],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_redoes_a_copy_whose_worker_was_killed_and_leaves_one_correct_object(
    archive_backend, account, tmp_path, monkeypatch
):
    assert connection.vendor == "postgresql", "the worker subprocesses share the PostgreSQL test database"
    from arksim import Simulator

    # The workers here are the subprocesses: queueing (eager in tests) would copy in-process.
    monkeypatch.setattr(tasks.archive_artifact, "apply_async", lambda *args, **kwargs: None)

    sim = Simulator(api_keys=("test-key",), list_rate_per_second=None)
    with sim.serve() as server, slow_first_relay(server.url) as relay:
        sim_id = sim.add_task(
            kind="video", status="succeeded", return_last_frame=False, output_bytes=OUTPUT_BYTES
        )
        source = sim.output_url(sim_id, "video")
        task = Task.objects.create(
            account=account,
            ark_id=sim_id,
            kind="video",
            status="succeeded",
            ark_created_at=datetime.now(UTC),
            ark_updated_at=datetime.now(UTC),
            video_url=relay + source[len(server.url) :],
        )
        artifact = artifacts_create_for_task(task=task)[0]
        # The local archive lives in <data dir>/archive, as the settings put it.
        data_dir = archive_backend.root.parent if archive_backend.kind == "local" else tmp_path / "data"

        # Killed mid-copy; on S3, only once the multipart upload exists (after a first part
        # of ARKDASH_ARCHIVE_S3_PART_MB was gathered), or there is nothing left behind to see.
        started_after = 5 * MiB if archive_backend.kind == "s3" else 0
        doomed = start_worker(task.ark_id, worker_env(archive_backend, data_dir))
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                copied = Artifact.objects.values_list("bytes_copied", flat=True).get(pk=artifact.pk)
                if copied > started_after or doomed.poll() is not None:
                    break
                time.sleep(0.05)
            assert doomed.poll() is None, f"the worker ended before it was killed:\n{doomed.stdout.read()}"
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait(10)
        finally:
            if doomed.poll() is None:
                doomed.kill()

        killed = Artifact.objects.get(pk=artifact.pk)
        assert killed.state == ArtifactState.COPYING
        assert 0 < killed.bytes_copied < OUTPUT_BYTES
        assert artifact.storage_key not in archive_backend.visible_keys()  # nothing half-written is visible
        # What the dead worker left: a partial file beside the final name, or an open multipart upload.
        if archive_backend.kind == "local":
            [leftover] = archive_backend.visible_keys()
            assert leftover.startswith(artifact.storage_key + ".partial-")
        else:
            assert archive_backend.uploads_in_progress() == [artifact.storage_key]

        # The dead worker's claim goes stale; a second worker takes the artifact over.
        time.sleep(1.2)
        second = subprocess.run(
            [sys.executable, "manage.py", "archive", "--task", task.ark_id],
            cwd=ROOT,
            env=worker_env(archive_backend, data_dir, ARKDASH_ARCHIVE_CLAIM_TIMEOUT_SECONDS="1"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 0, second.stdout + second.stderr
        assert "video: archived" in second.stdout

        done = Artifact.objects.get(pk=artifact.pk)
        assert done.state == ArtifactState.ARCHIVED
        assert done.attempts == 2
        assert done.size == OUTPUT_BYTES
        assert done.sha256 == sim.output_sha256(sim_id, "video")
        assert archive_backend.visible_keys() == [done.storage_key]  # no partial file left either
        assert archive_backend.uploads_in_progress() == []
        assert hashlib.sha256(archive_backend.read(done.storage_key)).hexdigest() == done.sha256
