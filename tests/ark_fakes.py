"""Test doubles of the ArkClient tests: a scripted Ark, a recording rate limiter, and the
answers they script (the simulator, `sim` in conftest.py, is the other way to meet Ark)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tasks_app.ark import ArkClient

KEY = "sk-very-secret-key-0123456789"
BASE = "https://ark.example/api/v3"
TASKS = "/api/v3/contents/generations/tasks"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")

Step = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class FakeArk:
    """Answers requests with scripted steps, in order, and records every request.

    A step is a response, an exception to raise, or a function of the request. With
    `only_path`, a request to any other path fails the test.
    """

    def __init__(self, *steps: Step, only_path: str | None = None) -> None:
        self.steps = list(steps)
        self.only_path = only_path
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.only_path is not None:
            assert request.url.path == self.only_path
        if not self.steps:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return step
        return step(request)

    @property
    def calls(self) -> list[str]:
        """The methods of the requests, in order."""
        return [request.method for request in self.requests]


class RecordingLimiter:
    """A rate limiter that lets every call through and records what the client asked of it."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def acquire(self, *, endpoint: str) -> None:
        self.calls.append(("acquire", endpoint))

    def penalize(self, *, endpoint: str, retry_after: float) -> None:
        self.calls.append(("penalize", endpoint, retry_after))

    @property
    def acquired(self) -> list[str]:
        return [call[1] for call in self.calls if call[0] == "acquire"]

    @property
    def penalties(self) -> list[tuple[str, float]]:
        return [(call[1], call[2]) for call in self.calls if call[0] == "penalize"]


def make_client(fake: FakeArk, waits: list[float] | None = None, **kwargs) -> ArkClient:
    """An ArkClient on `fake` whose pauses between attempts are recorded in `waits`, not slept."""
    sink = waits if waits is not None else []
    return ArkClient(BASE, KEY, transport=httpx.MockTransport(fake), sleep=sink.append, **kwargs)


def task_json(task_id: str = "cgt-1", status: str = "queued", **extra) -> dict:
    return {
        "id": task_id,
        "model": "doubao-seedance-1-0-pro-250528",
        "status": status,
        "created_at": 1,
        **extra,
    }


def task_answer(task_id: str = "cgt-1", status: str = "queued", **extra) -> httpx.Response:
    return httpx.Response(200, json=task_json(task_id, status, **extra))


def page_json(ids: list[str], total: int) -> dict:
    return {"total": total, "items": [task_json(task_id) for task_id in ids]}


def error_answer(
    http_status: int, code: str = "Err", message: str | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    """An answer in Ark's error format."""
    body = {"error": {"code": code, "message": message or f"status {http_status}"}}
    return httpx.Response(http_status, headers=headers, json=body)


def not_found(task_id: str = "cgt-1") -> httpx.Response:
    return error_answer(404, "NotFound", f"task {task_id} not found")


def without_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real sockets to 127.0.0.1 must not go through a proxy set in the environment."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
