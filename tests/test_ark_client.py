"""ArkClient (tasks_app/ark/client.py) against scripted answers: requests, parsing, paging,
errors, secrets, delete_task's state table, and how each call uses the retries and the
shared rate limiter. The retry rules themselves (retry.py) are in test_ark_retry.py; the
client against the Ark simulator in test_ark_client_against_sim.py."""

from __future__ import annotations

import json
import logging
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tasks_app.ark import (
    ArkAuthenticationError,
    ArkBadRequestError,
    ArkClient,
    ArkConnectionError,
    ArkDeleteRefusedError,
    ArkError,
    ArkNotFoundError,
    ArkPermissionError,
    ArkProtocolError,
    ArkRateLimitedError,
    ArkServerError,
    ArkTask,
    ArkTimeoutError,
    TaskPage,
)
from tasks_app.ark import client as client_module

from .ark_fakes import (
    BASE,
    KEY,
    TASKS,
    FakeArk,
    RecordingLimiter,
    error_answer,
    make_client,
    not_found,
    page_json,
    task_answer,
    task_json,
    without_proxies,
)

TASK_PATH = f"{TASKS}/cgt-1"


def on_task_path(*steps) -> FakeArk:
    """A FakeArk for delete_task("cgt-1"): its DELETE and re-reads all go to one path."""
    return FakeArk(*steps, only_path=TASK_PATH)


def test_it_sends_auth_content_type_user_agent_and_a_fresh_client_request_id():
    fake = FakeArk(task_answer(), task_answer())
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
    fake = FakeArk(task_answer())
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
    fake = FakeArk(task_answer("cgt-1", "succeeded", content={"video_url": "https://o/v.mp4"}))

    task = make_client(fake).get_task("cgt-1")

    assert isinstance(task, ArkTask)
    assert task.status == "succeeded"
    assert task.output_urls() == {"video": "https://o/v.mp4"}


def test_it_raises_not_found_for_an_unknown_task():
    fake = FakeArk(
        error_answer(404, "NotFound.Task", "task not found"),
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
        task_answer(),
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
        task_answer(),
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
    without_proxies(monkeypatch)
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


# --- delete_task: Ark's state table, and never repeating a DELETE blindly


@pytest.mark.parametrize("body", [b"", b"{}"])
def test_it_returns_the_cancelled_task_after_deleting_a_queued_one(body):
    fake = on_task_path(httpx.Response(200, content=body), task_answer(status="cancelled"))

    result = make_client(fake).delete_task("cgt-1")

    assert result is not None
    assert result.status == "cancelled"
    assert fake.calls == ["DELETE", "GET"]


def test_it_returns_none_after_deleting_a_finished_record():
    fake = on_task_path(httpx.Response(200, json={}), not_found())

    assert make_client(fake).delete_task("cgt-1") is None
    assert fake.calls == ["DELETE", "GET"]


def test_it_returns_none_when_the_record_is_already_gone():
    fake = on_task_path(not_found())

    assert make_client(fake).delete_task("cgt-1") is None
    assert fake.calls == ["DELETE"]


@pytest.mark.parametrize("http_status", [400, 403, 409])
@pytest.mark.parametrize("task_status", ["running", "cancelled"])
def test_it_raises_arks_refusal_once_a_re_read_says_why(http_status, task_status):
    fake = on_task_path(
        error_answer(http_status, "SomeUndocumentedCode", "not allowed"), task_answer(status=task_status)
    )

    with pytest.raises(ArkDeleteRefusedError) as caught:
        make_client(fake).delete_task("cgt-1")

    assert caught.value.status == task_status
    assert caught.value.task.status == task_status
    assert caught.value.http_status == http_status
    assert fake.calls == ["DELETE", "GET"]  # never a second DELETE


def test_it_returns_none_when_a_refused_delete_finds_the_record_gone():
    fake = on_task_path(error_answer(409, "Conflict", "conflict"), not_found())

    assert make_client(fake).delete_task("cgt-1") is None
    assert fake.calls == ["DELETE", "GET"]


def test_it_raises_a_refusal_the_re_read_does_not_explain_as_it_came():
    fake = on_task_path(
        error_answer(403, "AccountOverdueError", "account overdue"), task_answer(status="queued")
    )

    with pytest.raises(ArkPermissionError) as caught:
        make_client(fake).delete_task("cgt-1")

    assert not isinstance(caught.value, ArkBadRequestError)
    assert caught.value.code == "AccountOverdueError"
    assert fake.calls == ["DELETE", "GET"]


@pytest.mark.parametrize(
    "unknown",
    [
        httpx.Response(500, json={"error": {"code": "InternalServiceError", "message": "oops"}}),
        httpx.ReadTimeout("sent, no answer"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.Response(200, content=b"{", headers={"content-length": "2"}),
    ],
)
def test_it_re_reads_instead_of_repeating_when_the_outcome_is_unknown(unknown):
    fake = on_task_path(unknown, task_answer(status="cancelled"))

    result = make_client(fake).delete_task("cgt-1")

    assert result is not None and result.status == "cancelled"
    assert fake.calls == ["DELETE", "GET"]


def test_it_returns_none_when_the_re_read_finds_the_record_gone():
    fake = on_task_path(httpx.ReadTimeout("slow"), not_found())

    assert make_client(fake).delete_task("cgt-1") is None
    assert fake.calls == ["DELETE", "GET"]


@pytest.mark.parametrize("unchanged", ["queued", "succeeded"])
def test_it_sends_the_delete_once_more_when_the_re_read_shows_it_did_not_happen(unchanged):
    fake = on_task_path(
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        task_answer(status=unchanged),
        httpx.Response(200, json={}),
        task_answer(status="cancelled") if unchanged == "queued" else not_found(),
    )

    result = make_client(fake).delete_task("cgt-1")

    assert fake.calls == ["DELETE", "GET", "DELETE", "GET"]
    assert (result.status if result else None) == ("cancelled" if unchanged == "queued" else None)


def test_it_gives_up_with_the_original_error_when_the_second_delete_is_also_unknown():
    fake = on_task_path(
        httpx.Response(503, json={"error": {"message": "busy"}}),
        task_answer(status="queued"),
        httpx.Response(503, json={"error": {"message": "still busy"}}),
        task_answer(status="queued"),
    )

    with pytest.raises(ArkServerError, match="still busy"):
        make_client(fake).delete_task("cgt-1")

    assert fake.calls == ["DELETE", "GET", "DELETE", "GET"]


def test_it_reports_a_refusal_when_the_re_read_shows_the_task_running():
    fake = on_task_path(httpx.ReadTimeout("slow"), task_answer(status="running"))

    with pytest.raises(ArkBadRequestError, match="running"):
        make_client(fake).delete_task("cgt-1")

    assert fake.calls == ["DELETE", "GET"]


def test_it_raises_the_delete_error_when_the_re_read_fails_too():
    fake = on_task_path(httpx.ReadTimeout("slow"), *[httpx.ConnectError("refused")] * 4)

    with pytest.raises(ArkTimeoutError):
        make_client(fake).delete_task("cgt-1")

    assert fake.calls == ["DELETE", "GET", "GET", "GET", "GET"]


@pytest.mark.parametrize(
    "not_reached", [httpx.ConnectError("refused"), httpx.Response(429, headers={"Retry-After": "0"})]
)
def test_it_repeats_a_delete_that_surely_did_not_reach_ark(not_reached):
    fake = on_task_path(not_reached, httpx.Response(200, json={}), task_answer(status="cancelled"))

    result = make_client(fake).delete_task("cgt-1")

    assert result is not None and result.status == "cancelled"
    assert fake.calls == ["DELETE", "DELETE", "GET"]


def test_it_raises_rate_limited_when_ark_keeps_refusing_for_load():
    fake = on_task_path(*[httpx.Response(429, headers={"Retry-After": "1"})] * 4)

    with pytest.raises(ArkRateLimitedError):
        make_client(fake).delete_task("cgt-1")

    assert fake.calls == ["DELETE"] * 4


def test_it_propagates_a_failed_re_read_after_a_clean_delete():
    fake = on_task_path(httpx.Response(200, json={}), *[httpx.ReadTimeout("slow")] * 4)

    with pytest.raises(ArkConnectionError):
        make_client(fake).delete_task("cgt-1")

    assert fake.calls == ["DELETE", "GET", "GET", "GET", "GET"]


def test_it_treats_a_garbled_re_read_as_a_protocol_error():
    fake = on_task_path(httpx.Response(200, json={}), *[httpx.Response(200, content=b"not json")] * 4)

    with pytest.raises(ArkProtocolError):
        make_client(fake).delete_task("cgt-1")


# --- retries as the client runs them: attempts, the shared rate limiter, logs


def test_it_stops_after_max_retries_and_raises_the_last_error():
    fake = FakeArk(*[error_answer(500)] * 3)
    waits: list[float] = []

    with pytest.raises(ArkServerError):
        make_client(fake, waits, max_retries=2).get_task("cgt-1")

    assert len(fake.requests) == 3
    assert len(waits) == 2


def test_it_makes_one_attempt_when_retries_are_off():
    fake = FakeArk(error_answer(503))
    waits: list[float] = []

    with pytest.raises(ArkServerError):
        make_client(fake, waits, max_retries=0).get_task("cgt-1")

    assert len(fake.requests) == 1
    assert waits == []


def test_it_raises_a_timeout_error_when_every_attempt_times_out():
    fake = FakeArk(*[httpx.ReadTimeout("slow")] * 4)

    with pytest.raises(ArkTimeoutError):
        make_client(fake).list_tasks()

    assert len(fake.requests) == 4


def test_it_penalizes_a_default_pause_when_a_429_has_no_retry_after():
    limiter = RecordingLimiter()
    fake = FakeArk(error_answer(429), task_answer())

    make_client(fake, rate_limiter=limiter).get_task("cgt-1")

    penalties = [call for call in limiter.calls if call[0] == "penalize"]
    assert penalties == [("penalize", "get", 1.0)]


def test_it_acquires_the_limiter_before_every_attempt_with_the_endpoint_name():
    limiter = RecordingLimiter()
    fake = FakeArk(
        error_answer(500),
        httpx.Response(200, json={"total": 0, "items": []}),
        httpx.Response(200, json={"id": "cgt-9"}),
        task_answer(),
    )
    client = make_client(fake, rate_limiter=limiter)

    client.list_tasks()
    client.create_task(model="m", content=[{"type": "text", "text": "x"}])
    client.get_task("cgt-9")

    assert [call for call in limiter.calls if call[0] == "acquire"] == [
        ("acquire", "list"),
        ("acquire", "list"),
        ("acquire", "create"),
        ("acquire", "get"),
    ]


def test_it_logs_each_retry_without_the_key(caplog):
    caplog.set_level(logging.DEBUG, logger="tasks_app.ark")
    fake = FakeArk(error_answer(500), error_answer(429, headers={"Retry-After": "1"}), task_answer())

    make_client(fake).get_task("cgt-1")

    retries = [record for record in caplog.records if "retrying" in record.getMessage()]
    assert len(retries) == 2
    assert "contents/generations/tasks/cgt-1" in retries[0].getMessage()
    assert KEY not in caplog.text
