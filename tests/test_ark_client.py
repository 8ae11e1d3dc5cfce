"""ArkClient against scripted answers (httpx.MockTransport): requests, parsing, errors, secrets."""

from __future__ import annotations

import json
import logging
import threading
import types
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tasks_app.ark import (
    ArkAuthenticationError,
    ArkClient,
    ArkConnectionError,
    ArkError,
    ArkNotFoundError,
    ArkProtocolError,
    ArkServerError,
    ArkTask,
    ArkTimeoutError,
    TaskPage,
)
from tasks_app.ark import client as client_module

KEY = "sk-very-secret-key-0123456789"
BASE = "https://ark.example/api/v3"
TASKS = "/api/v3/contents/generations/tasks"

Step = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class FakeArk:
    """Answers requests with scripted steps, in order, and records every request."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.steps:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return step
        return step(request)


def make_client(fake: FakeArk, **kwargs) -> ArkClient:
    kwargs.setdefault("sleep", lambda seconds: None)
    return ArkClient(BASE, KEY, transport=httpx.MockTransport(fake), **kwargs)


def task_json(task_id: str, status: str = "queued", **extra) -> dict:
    return {
        "id": task_id,
        "model": "doubao-seedance-1-0-pro-250528",
        "status": status,
        "created_at": 1,
        **extra,
    }


def page_json(ids: list[str], total: int) -> dict:
    return {"total": total, "items": [task_json(task_id) for task_id in ids]}


def test_it_sends_auth_content_type_user_agent_and_a_fresh_client_request_id():
    fake = FakeArk(httpx.Response(200, json=task_json("cgt-1")), httpx.Response(200, json=task_json("cgt-1")))
    client = make_client(fake)

    client.get_task("cgt-1")
    client.get_task("cgt-1")

    first, second = fake.requests
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert first.headers["content-type"] == "application/json"
    assert first.headers["user-agent"].startswith("arkdash/")
    assert first.headers["x-client-request-id"] != second.headers["x-client-request-id"]
    assert first.url == f"{BASE}/contents/generations/tasks/cgt-1"


def test_it_sets_a_timeout_with_a_shorter_connect_on_every_request():
    fake = FakeArk(httpx.Response(200, json=task_json("cgt-1")))
    client = make_client(fake, timeout=12.0)

    client.get_task("cgt-1")

    timeout = fake.requests[0].extensions["timeout"]
    assert timeout["read"] == 12.0
    assert timeout["write"] == 12.0
    assert 0 < timeout["connect"] < 12.0


def test_it_sends_list_filters_with_task_ids_as_a_repeated_key():
    fake = FakeArk(httpx.Response(200, json=page_json(["cgt-a", "cgt-b"], total=2)))
    client = make_client(fake)

    page = client.list_tasks(
        page_num=2,
        page_size=50,
        status="running",
        task_ids=["cgt-a", "cgt-b", "cgt-a"],
        model="ep-20250101-abcde",
        service_tier="flex",
    )

    params = fake.requests[0].url.params
    assert fake.requests[0].url.path == TASKS
    assert params["page_num"] == "2"
    assert params["page_size"] == "50"
    assert params["filter.status"] == "running"
    assert params.get_list("filter.task_ids") == ["cgt-a", "cgt-b"]
    assert params["filter.model"] == "ep-20250101-abcde"
    assert params["filter.service_tier"] == "flex"
    assert page.total == 2
    assert [task.id for task in page.items] == ["cgt-a", "cgt-b"]


def test_it_omits_filters_that_are_not_given():
    fake = FakeArk(httpx.Response(200, json=page_json([], total=0)))

    make_client(fake).list_tasks()

    assert dict(fake.requests[0].url.params) == {"page_num": "1", "page_size": "100"}


def test_it_answers_an_empty_id_filter_with_an_empty_page_without_calling_ark():
    fake = FakeArk()

    page = make_client(fake).list_tasks(task_ids=[])

    assert page == TaskPage(total=0, items=[])
    assert fake.requests == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"page_size": 0},
        {"page_size": 501},
        {"page_size": "100"},
        {"page_num": 0},
        {"page_num": True},
        {"status": "done"},
        {"task_ids": "cgt-1"},
        {"task_ids": ["../etc"]},
        {"model": ""},
        {"service_tier": 3},
    ],
)
def test_it_rejects_bad_list_arguments_before_calling(kwargs):
    fake = FakeArk()

    with pytest.raises(ValueError):
        make_client(fake).list_tasks(**kwargs)

    assert fake.requests == []


def test_it_rejects_bad_paging_arguments_when_iter_tasks_is_called():
    fake = FakeArk()

    with pytest.raises(ValueError, match="page_size"):
        make_client(fake).iter_tasks(page_size=1000)

    assert fake.requests == []


@pytest.mark.parametrize(
    "bad_id", ["", "a/b", "..", "../../admin", "cgt 1", "cgt-1?x=1", "cgt-1#f", "é", None, 7]
)
def test_it_rejects_task_ids_that_could_change_the_url(bad_id):
    fake = FakeArk()
    client = make_client(fake)

    with pytest.raises(ValueError, match="invalid task id"):
        client.get_task(bad_id)
    with pytest.raises(ValueError, match="invalid task id"):
        client.delete_task(bad_id)

    assert fake.requests == []


def test_it_returns_the_parsed_task_from_get():
    fake = FakeArk(
        httpx.Response(200, json=task_json("cgt-1", "succeeded", content={"video_url": "https://o/v.mp4"}))
    )

    task = make_client(fake).get_task("cgt-1")

    assert isinstance(task, ArkTask)
    assert task.status == "succeeded"
    assert task.output_urls() == {"video": "https://o/v.mp4"}


def test_it_raises_not_found_for_an_unknown_task():
    fake = FakeArk(
        httpx.Response(404, json={"error": {"code": "NotFound.Task", "message": "task not found"}}),
    )

    with pytest.raises(ArkNotFoundError) as caught:
        make_client(fake).get_task("cgt-gone")

    assert caught.value.code == "NotFound.Task"
    assert len(fake.requests) == 1


def test_it_pages_through_every_task_until_a_short_page():
    fake = FakeArk(
        httpx.Response(200, json=page_json(["a1", "a2"], total=5)),
        httpx.Response(200, json=page_json(["a3", "a4"], total=5)),
        httpx.Response(200, json=page_json(["a5"], total=5)),
    )

    ids = [task.id for task in make_client(fake).iter_tasks(page_size=2, status="succeeded")]

    assert ids == ["a1", "a2", "a3", "a4", "a5"]
    assert [r.url.params["page_num"] for r in fake.requests] == ["1", "2", "3"]
    assert {r.url.params["filter.status"] for r in fake.requests} == {"succeeded"}


def test_it_stops_paging_once_total_is_reached_without_an_extra_call():
    fake = FakeArk(
        httpx.Response(200, json=page_json(["a1", "a2"], total=4)),
        httpx.Response(200, json=page_json(["a3", "a4"], total=4)),
    )

    ids = [task.id for task in make_client(fake).iter_tasks(page_size=2)]

    assert ids == ["a1", "a2", "a3", "a4"]
    assert len(fake.requests) == 2


def test_it_yields_each_task_once_when_new_tasks_shift_the_pages():
    fake = FakeArk(
        httpx.Response(200, json=page_json(["a1", "a2"], total=3)),
        # a new task arrived: a2 slides onto page 2
        httpx.Response(200, json=page_json(["a2", "a3"], total=4)),
        httpx.Response(200, json=page_json([], total=4)),
    )

    ids = [task.id for task in make_client(fake).iter_tasks(page_size=2)]

    assert ids == ["a1", "a2", "a3"]


def test_it_stops_paging_when_a_server_keeps_reporting_more():
    counter = iter(range(10_000))

    def endless(request: httpx.Request) -> httpx.Response:
        n = next(counter)
        return httpx.Response(200, json=page_json([f"x{2 * n}", f"x{2 * n + 1}"], total=4 + 2 * n))

    fake = FakeArk(*[endless] * 100)

    ids = list(make_client(fake).iter_tasks(page_size=2))

    # The first answer promised 2 pages; slack of 2 more, then stop.
    assert len(fake.requests) == 4
    assert len(ids) == 8


def test_it_sends_create_options_and_drops_the_ones_set_to_none():
    fake = FakeArk(httpx.Response(200, json={"id": "cgt-new"}))
    content = [{"type": "text", "text": "a cat surfing --ratio 16:9"}]

    task_id = make_client(fake).create_task(
        model="doubao-seedance-1-0-pro-250528", content=content, return_last_frame=True, seed=None
    )

    assert task_id == "cgt-new"
    request = fake.requests[0]
    assert request.method == "POST"
    assert request.url.path == TASKS
    assert json.loads(request.content) == {
        "model": "doubao-seedance-1-0-pro-250528",
        "content": content,
        "return_last_frame": True,
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"model": "", "content": [{"type": "text"}]},
        {"model": "m", "content": []},
        {"model": "m", "content": "x"},
    ],
)
def test_it_rejects_a_create_without_model_or_content(kwargs):
    fake = FakeArk()

    with pytest.raises(ValueError):
        make_client(fake).create_task(**kwargs)

    assert fake.requests == []


def test_it_raises_a_protocol_error_when_create_answers_without_an_id():
    fake = FakeArk(httpx.Response(200, json={"status": "ok"}))

    with pytest.raises(ArkProtocolError) as caught:
        make_client(fake).create_task(model="m", content=[{"type": "text", "text": "x"}])

    assert caught.value.retryable is False
    assert "may exist" in str(caught.value)


def test_it_raises_a_protocol_error_for_a_garbled_body():
    fake = FakeArk(*[httpx.Response(200, content=b"<html>oops</html>")] * 2)

    with pytest.raises(ArkProtocolError, match="not JSON"):
        make_client(fake, max_retries=1).get_task("cgt-1")

    assert len(fake.requests) == 2


def test_it_detects_a_body_shorter_than_its_content_length():
    truncated = json.dumps(task_json("cgt-1")).encode()[:20]
    fake = FakeArk(
        httpx.Response(200, content=truncated, headers={"content-length": "400"}),
        httpx.Response(200, json=task_json("cgt-1")),
    )

    task = make_client(fake).get_task("cgt-1")

    assert task.id == "cgt-1"
    assert len(fake.requests) == 2


def test_it_maps_a_read_timeout_to_a_retryable_timeout_error():
    fake = FakeArk(httpx.ReadTimeout("timed out"))

    with pytest.raises(ArkTimeoutError) as caught:
        make_client(fake, max_retries=0).get_task("cgt-1")

    assert caught.value.retryable is True
    assert caught.value.request_sent is True
    assert isinstance(caught.value, ArkConnectionError)


def test_it_knows_a_connect_timeout_never_reached_ark():
    fake = FakeArk(httpx.ConnectTimeout("timed out"))

    with pytest.raises(ArkTimeoutError) as caught:
        make_client(fake, max_retries=0).get_task("cgt-1")

    assert caught.value.request_sent is False


def test_it_maps_a_connect_error_to_a_connection_error():
    fake = FakeArk(httpx.ConnectError("[Errno 111] Connection refused"))

    with pytest.raises(ArkConnectionError) as caught:
        make_client(fake, max_retries=0).list_tasks()

    assert not isinstance(caught.value, ArkTimeoutError)
    assert caught.value.request_sent is False
    assert "Connection refused" in str(caught.value)


def test_it_maps_a_body_cut_off_mid_stream_to_a_protocol_error():
    def cut(request: httpx.Request) -> httpx.Response:
        def chunks():
            yield b'{"id": "cgt'
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")

        return httpx.Response(200, content=chunks())

    fake = FakeArk(cut)

    with pytest.raises(ArkProtocolError) as caught:
        make_client(fake, max_retries=0).get_task("cgt-1")

    assert caught.value.retryable is True


def test_it_gives_up_on_a_body_that_dribbles_past_the_deadline(monkeypatch):
    clock = {"now": 100.0}
    monkeypatch.setattr(client_module, "time", types.SimpleNamespace(monotonic=lambda: clock["now"]))

    def slow(request: httpx.Request) -> httpx.Response:
        def chunks():
            yield b'{"id": '
            clock["now"] += 31.0  # more than the 30 s budget passes between chunks
            yield b'"cgt-1"}'

        return httpx.Response(200, content=chunks())

    fake = FakeArk(slow)

    with pytest.raises(ArkTimeoutError, match="within 30s"):
        make_client(fake, max_retries=0, timeout=30.0).get_task("cgt-1")


def test_it_keeps_the_key_out_of_errors_reprs_and_logs(caplog):
    caplog.set_level(logging.DEBUG)
    fake = FakeArk(
        httpx.Response(401, json={"error": {"code": "AuthenticationError", "message": f"bad key {KEY}"}}),
        httpx.ConnectError(f"cannot connect with Bearer {KEY}"),
        httpx.Response(500, json={"error": {"message": f"echo Authorization: Bearer {KEY}"}}),
        httpx.Response(200, json=task_json("cgt-1")),
    )
    client = make_client(fake, max_retries=2)
    seen = []

    with pytest.raises(ArkAuthenticationError) as auth:
        client.get_task("cgt-1")
    seen += [str(auth.value), repr(auth.value), auth.value.message]
    assert client.get_task("cgt-1").id == "cgt-1"  # after a connect error and a 500
    seen += [repr(client)]

    assert KEY not in " ".join(seen)
    assert caplog.records, "the client should log its calls"
    assert KEY not in caplog.text
    assert all(KEY not in str(record.args) for record in caplog.records)


def test_it_refuses_bad_constructor_arguments_without_echoing_the_key():
    with pytest.raises(ValueError, match="base_url"):
        ArkClient("ftp://ark.example", KEY)
    with pytest.raises(ValueError, match="base_url"):
        ArkClient("not a url", KEY)
    with pytest.raises(ValueError, match="api_key"):
        ArkClient(BASE, "")
    with pytest.raises(ValueError, match="api_key") as caught:
        ArkClient(BASE, f"{KEY}\r\nX-Evil: 1")
    assert KEY not in str(caught.value)
    with pytest.raises(ValueError, match="timeout"):
        ArkClient(BASE, KEY, timeout=0)
    with pytest.raises(ValueError, match="max_retries"):
        ArkClient(BASE, KEY, max_retries=-1)


def test_it_does_not_follow_redirects_that_would_carry_the_key_elsewhere():
    fake = FakeArk(httpx.Response(302, headers={"location": "https://evil.example/steal"}))

    with pytest.raises(ArkError) as caught:
        make_client(fake).get_task("cgt-1")

    assert len(fake.requests) == 1
    assert caught.value.http_status == 302


def test_it_raises_server_errors_with_their_status_after_retries():
    fake = FakeArk(*[httpx.Response(503, text="busy")] * 2)

    with pytest.raises(ArkServerError) as caught:
        make_client(fake, max_retries=1).get_task("cgt-1")

    assert caught.value.http_status == 503
    assert len(fake.requests) == 2


class _CountingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so a reused connection is visible
    peers: list[tuple[str, int]] = []

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
        type(self).peers.append(self.client_address)
        body = json.dumps(task_json("cgt-1")).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_it_reuses_one_connection_across_calls(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    _CountingHandler.peers = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CountingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with ArkClient(f"http://127.0.0.1:{server.server_port}/api/v3", KEY, timeout=5.0) as client:
            for _ in range(3):
                assert client.get_task("cgt-1").id == "cgt-1"
    finally:
        server.shutdown()
        server.server_close()

    assert len(_CountingHandler.peers) == 3
    assert len(set(_CountingHandler.peers)) == 1
