"""Callback delivery: POST the task object to its `callback_url` on each status change.

Delivery never happens while the simulator holds its state lock, so a receiver may call
the simulator back (re-read the task) from the same thread. In-process it is synchronous
(tests see the callback as soon as `advance()` returns); in server mode a worker thread
delivers, so a slow receiver never stalls an API response.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

log = logging.getLogger("arksim.callbacks")

TIMEOUT_SECONDS = 5.0
RETRIED_STATUSES = ("succeeded", "failed")
RETRIES = 3
THREADED_RETRY_DELAY = 1.0


@dataclass(frozen=True)
class CallbackEvent:
    url: str
    status: str
    task_id: str
    payload: dict


def _where(url: str) -> str:
    # The path of a callback URL may hold the receiver's secret: log scheme and host only.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"


class CallbackDispatcher:
    def __init__(self, transport: httpx.BaseTransport | None = None) -> None:
        self._transport = transport
        self._queue: queue.Queue[CallbackEvent | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    @property
    def threaded(self) -> bool:
        return self._thread is not None

    def deliver(self, events: list[CallbackEvent]) -> None:
        for event in events:
            if self._thread is not None:
                self._queue.put(event)
            else:
                self._send_with_retries(event, retry_delay=0.0)

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._stopping.clear()
                self._thread = threading.Thread(target=self._run, name="arksim-callbacks", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            self._queue.put(None)
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            self._send_with_retries(event, retry_delay=THREADED_RETRY_DELAY)

    def _send_with_retries(self, event: CallbackEvent, *, retry_delay: float) -> None:
        attempts = 1 + (RETRIES if event.status in RETRIED_STATUSES else 0)
        for attempt in range(1, attempts + 1):
            if self._send(event):
                return
            if attempt < attempts and retry_delay and self._stopping.wait(retry_delay):
                return
        log.warning("callback for %s (%s) to %s gave up after %d attempt(s)",
                    event.task_id, event.status, _where(event.url), attempts)  # fmt: skip

    def _send(self, event: CallbackEvent) -> bool:
        try:
            with httpx.Client(transport=self._transport, timeout=TIMEOUT_SECONDS) as client:
                response = client.post(event.url, json=event.payload)
            ok = 200 <= response.status_code < 300
            problem = f"HTTP {response.status_code}"
        except Exception as error:  # any failure of the receiver must never crash the simulator
            ok, problem = False, type(error).__name__
        with self._lock:
            self.counts["callbacks" if ok else "callback_failures"] += 1
        if not ok:
            log.info(
                "callback for %s (%s) to %s failed: %s",
                event.task_id,
                event.status,
                _where(event.url),
                problem,
            )
        return ok
