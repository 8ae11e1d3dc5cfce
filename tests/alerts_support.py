"""A local HTTP receiver for alert webhooks, started by the tests, and helpers to make tasks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from django.utils import timezone


@dataclass
class Received:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers each POST with the next planned (status, body, delay), then 200 "ok"."""

    port: int = 0
    plan: list[tuple[int, str, float]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, count: int, *, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} requests, got {len(self.received)}")


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            parts = urlsplit(self.path)
            with receiver.lock:
                receiver.received.append(Received(parts.path, parse_qs(parts.query), dict(self.headers.items()), body))
                status, answer, delay = receiver.plan.pop(0) if receiver.plan else (200, "ok", 0.0)
            if delay:
                time.sleep(delay)
            data = answer.encode()
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up (the timeout test)

        def log_message(self, *args) -> None:
            pass

    return Handler


@contextmanager
def running_receiver(settings) -> Iterator[Receiver]:
    """A webhook receiver on loopback, allowed through the address guard by the setting
    (each test file's `receiver` fixture)."""
    state = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.port = server.server_address[1]
    settings.ARKDASH_ALERT_PRIVATE_HOSTS = [f"127.0.0.1:{state.port}"]
    settings.ARKDASH_ALERT_BATCH_SECONDS = 0.0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def failed_task(account, n: int, *, when: datetime | None = None, error_code: str = "InternalServiceError",
                model: str = "doubao-seedance-1-0-pro"):
    from tasks_app.models import Task, TaskKind, TaskStatus

    when = when or timezone.now()
    return Task.objects.create(
        account=account, ark_id=f"cgt-failed-{n:05d}", kind=TaskKind.VIDEO, model=model, status=TaskStatus.FAILED,
        error_code=error_code, error_message="boom", ark_created_at=when, ark_updated_at=when, finished_at=when,
    )
