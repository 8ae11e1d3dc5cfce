"""arksim in server mode: a real socket, the /_sim control plane, dropped connections, the ticker."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from arksim import Simulator
from arksim.server import ServerHandle

from .support import KEY, START


@pytest.fixture
def http(server: ServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=5.0) as client:
        yield client


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def test_it_serves_the_api_on_a_real_port(ark: Simulator, server: ServerHandle, http: httpx.Client) -> None:
    assert server.url.startswith("http://127.0.0.1:") and server.base_url == f"{server.url}/api/v3"
    body = {"model": "doubao-seedance-1-0-pro-250528", "content": [{"type": "text", "text": "a cat"}]}
    task_id = http.post("/api/v3/contents/generations/tasks", json=body, headers=_auth()).json()["id"]
    assert (
        http.get(f"/api/v3/contents/generations/tasks/{task_id}", headers=_auth()).json()["status"]
        == "queued"
    )
    assert http.get("/api/v3/contents/generations/tasks").status_code == 401


def test_it_moves_the_clock_and_reports_stats_over_http(ark: Simulator, http: httpx.Client) -> None:
    task_id = http.post("/_sim/tasks", json={"status": "queued"}).json()["id"]
    assert http.post("/_sim/clock", json={"advance": 25}).json()["now"] == START + 25
    assert (
        http.get(f"/api/v3/contents/generations/tasks/{task_id}", headers=_auth()).json()["status"]
        == "succeeded"
    )
    assert http.get("/_sim/stats").json()["get"] == 1
    assert http.post("/_sim/stats/reset").json()["get"] == 0
    assert (
        http.post("/_sim/clock", json={"set": START + 7 * 86400 + 1}).json()["now"] == START + 7 * 86400 + 1
    )
    assert http.get(f"/api/v3/contents/generations/tasks/{task_id}", headers=_auth()).status_code == 404


def test_it_serves_outputs_whose_hashes_the_control_plane_announces(
    http: httpx.Client, server: ServerHandle
) -> None:
    task_id = http.post(
        "/_sim/tasks", json={"kind": "3d", "status": "succeeded", "file_format": "usdz"}
    ).json()["id"]
    info = http.get(f"/_sim/tasks/{task_id}/outputs").json()
    assert set(info) == {"model_zip"}
    assert info["model_zip"]["url"].startswith(f"{server.url}/_outputs/")
    data = http.get(info["model_zip"]["url"]).content
    assert (len(data), hashlib.sha256(data).hexdigest()) == (
        info["model_zip"]["size"],
        info["model_zip"]["sha256"],
    )
    ranged = http.get(info["model_zip"]["url"], headers={"Range": "bytes=10-19"})
    assert (ranged.status_code, ranged.content) == (206, data[10:20])


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/_sim/clock", {"advance": -5}, 400),
        ("POST", "/_sim/clock", {"jump": 5}, 400),
        ("POST", "/_sim/faults", {"endpoint": "get"}, 400),
        ("POST", "/_sim/faults", {"endpoint": "get", "kind": "boom"}, 400),
        ("POST", "/_sim/tasks", {"status": "sleeping"}, 400),
        ("POST", "/_sim/tasks", {"colour": "red"}, 400),
        ("GET", "/_sim/tasks/cgt-20250101000000-abcde/outputs", None, 404),
        ("PUT", "/_sim/stats", None, 405),
    ],
)
def test_it_answers_bad_control_requests_with_the_envelope(
    http: httpx.Client, method: str, path: str, body: dict | None, status: int
) -> None:
    response = http.request(method, path, json=body)
    assert response.status_code == status
    assert response.json()["error"]["message"]


def test_it_rejects_a_non_json_control_body(http: httpx.Client) -> None:
    response = http.post("/_sim/clock", content=b"{oops", headers={"Content-Type": "application/json"})
    assert response.status_code == 400


def test_it_injects_and_clears_faults_over_http(http: httpx.Client) -> None:
    pending = http.post("/_sim/faults", json={"endpoint": "list", "kind": "500", "times": 2}).json()["faults"]
    assert pending[0]["remaining"] == 2
    assert http.get("/api/v3/contents/generations/tasks", headers=_auth()).status_code == 500
    assert http.delete("/_sim/faults").json() == {"faults": []}
    assert http.get("/api/v3/contents/generations/tasks", headers=_auth()).status_code == 200


@pytest.mark.parametrize("kind", ["drop", "truncate", "bad_length"])
def test_it_breaks_the_connection_for_transport_faults(ark: Simulator, http: httpx.Client, kind: str) -> None:
    ark.faults.inject("list", kind)
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/api/v3/contents/generations/tasks", headers=_auth())
    assert http.get("/api/v3/contents/generations/tasks", headers=_auth()).status_code == 200


def test_it_closes_the_socket_without_an_answer_on_drop(ark: Simulator, server: ServerHandle) -> None:
    ark.faults.inject("get", "drop")
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /api/v3/contents/generations/tasks/x HTTP/1.1\r\nHost: sim\r\n\r\n")
        assert sock.recv(1024) == b""


def test_it_progresses_in_real_time_and_fires_callbacks_by_itself() -> None:
    received: list[str] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(json.loads(request.content)["status"])
        return httpx.Response(200)

    ark = Simulator(
        api_keys=(KEY,), queue_seconds=0.2, run_seconds=0.2, callback_transport=httpx.MockTransport(receiver)
    )
    with ark.serve() as handle:
        ark.create_task({"model": "doubao-seed3d-1-0-250928", "content": [{"type": "text", "text": "vase"}],
                         "callback_url": "http://hook.test/"})  # fmt: skip
        deadline = time.monotonic() + 5
        while "succeeded" not in received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert handle.url
    assert received == ["queued", "running", "succeeded"]


def test_it_frees_the_port_on_shutdown(ark: Simulator) -> None:
    handle = ark.serve(realtime=False)
    port = int(handle.url.rsplit(":", 1)[1])
    handle.shutdown()
    handle.shutdown()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
