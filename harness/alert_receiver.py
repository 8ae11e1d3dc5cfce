"""The chaos run's alert webhook: a local receiver that checks every signature and counts
which events it was told about, so the run can say "each failed task and lost output
notified exactly once".

It answers 500 to the first request and then to one in `fail_every` (a receiver having a
bad moment): those messages are not delivered and must come again; only 2xx-answered
messages count.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# What the signature's timestamp may differ from the receiver's clock (replay window).
REPLAY_WINDOW_SECONDS = 300


class AlertReceiver:
    def __init__(self, *, secret: str, fail_every: int = 3) -> None:
        self.secret = secret
        self.fail_every = fail_every
        self.lock = threading.Lock()
        self.requests = 0
        self.answered_500 = 0
        self.bad_signatures = 0
        self.messages_accepted = 0
        self.notifications: Counter[str] = Counter()  # X-ArkDash-Notification of accepted messages
        self.events: Counter[str] = Counter()  # event keys of accepted messages
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="alert-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/arkdash-alerts"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def signature_ok(self, headers, body: bytes) -> bool:
        timestamp = headers.get("X-ArkDash-Timestamp", "")
        if not timestamp.isdigit() or abs(int(timestamp) - time.time()) > REPLAY_WINDOW_SECONDS:
            return False
        expected = hmac.new(self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(headers.get("X-ArkDash-Signature", ""), f"sha256={expected}")

    def _receive(self, headers, body: bytes) -> int:
        with self.lock:
            self.requests += 1
            if not self.signature_ok(headers, body):
                self.bad_signatures += 1
                return 401
            if self.requests % self.fail_every == 1:
                self.answered_500 += 1
                return 500
            self.messages_accepted += 1
            self.notifications[headers.get("X-ArkDash-Notification", "")] += 1
            for event in json.loads(body).get("events", []):
                self.events[event["key"]] += 1
            return 200

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver._receive(self.headers, body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        return Handler
