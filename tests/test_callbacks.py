"""POST /hooks/ark/<secret>/: Ark's callbacks only name a task to re-read."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from django.test import Client

from arksim import Simulator
from tasks_app import tasks as celery_tasks
from tasks_app.lib import transport
from tasks_app.models import Account, Task, TaskStatus

pytestmark = pytest.mark.usefixtures("unthrottled")


def _hook(account: Account) -> str:
    return f"/hooks/ark/{account.callback_secret}/"


def _post(client: Client, url: str, body: object) -> object:
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post(url, data=data, content_type="application/json")


def _upstream_calls(sim: Simulator) -> int:
    stats = sim.stats()
    return sum(stats[name] for name in ("list", "get", "create", "delete"))


def test_it_rereads_the_named_task_and_mirrors_it(sim, account, client):
    ark_id = sim.add_task(kind="video", status="running")
    response = _post(client, _hook(account), {"id": ark_id, "status": "running"})
    assert response.status_code == 200
    assert response.json() == {"status": "refreshed"}
    task = Task.objects.get(account=account, ark_id=ark_id)
    assert task.status == TaskStatus.RUNNING
    assert sim.stats()["get"] == 1


def test_it_believes_ark_not_the_body(sim, account, client):
    ark_id = sim.add_task(kind="video", status="queued")
    forged = {
        "id": ark_id,
        "status": "succeeded",
        "content": {"video_url": "https://evil.example/x.mp4"},
        "error": None,
    }
    response = _post(client, _hook(account), forged)
    assert response.status_code == 200
    task = Task.objects.get(ark_id=ark_id)
    assert task.status == TaskStatus.QUEUED
    assert task.video_url == "" and not task.archive_handoff_pending


def test_it_answers_404_for_an_unknown_secret(sim, account, client):
    ark_id = sim.add_task(kind="video", status="running")
    response = _post(client, "/hooks/ark/not-the-secret/", {"id": ark_id})
    assert response.status_code == 404
    assert not Task.objects.exists()
    assert _upstream_calls(sim) == 0


def test_it_answers_404_for_a_task_ark_does_not_know(sim, account, client):
    response = _post(client, _hook(account), {"id": "cgt-20250101000000-forge"})
    assert response.status_code == 404
    assert not Task.objects.exists()


def test_it_does_not_mirror_a_task_of_another_account(account, client):
    sim = Simulator(api_keys=("test-key", "key-b"), list_rate_per_second=None)
    other = Account(name="other", base_url="http://arksim.test/api/v3")
    other.set_api_key("key-b")
    other.save()
    with transport.routed_to(sim.transport()):
        not_theirs = sim.add_task(kind="video", status="running", api_key="test-key")
        response = _post(client, _hook(other), {"id": not_theirs})
    assert response.status_code == 404  # Ark answers per key: key-b has no such task
    assert not Task.objects.exists()


def test_it_answers_502_when_ark_refuses_the_accounts_key(sim, client, db):
    revoked = Account(name="revoked", base_url="http://arksim.test/api/v3")
    revoked.set_api_key("revoked-key")
    revoked.save()
    response = _post(client, _hook(revoked), {"id": sim.add_task(kind="video", status="running")})
    assert response.status_code == 502
    assert not Task.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b"{}",
        {"id": 5},
        {"id": ""},
        {"id": "../../admin"},
        {"id": "cgt-1 2"},
        {"task_id": "cgt-20250101000000-abcde"},
        b"[" * 100_000,
    ],
)
def test_it_rejects_malformed_bodies_without_calling_ark(sim, account, client, body):
    response = _post(client, _hook(account), body)
    assert response.status_code == 400
    assert "error" in response.json()
    assert _upstream_calls(sim) == 0
    assert not Task.objects.exists()


def test_it_accepts_only_post(sim, account, client):
    response = client.get(_hook(account))
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert client.put(_hook(account), data="{}", content_type="application/json").status_code == 405


def test_it_refuses_a_huge_body(sim, account, client):
    body = json.dumps({"id": "cgt-20250101000000-abcde", "padding": "x" * 400_000})
    assert _post(client, _hook(account), body.encode()).status_code == 413
    assert _upstream_calls(sim) == 0


def test_it_needs_no_csrf_token(sim, account):
    ark_id = sim.add_task(kind="video", status="queued")
    strict = Client(enforce_csrf_checks=True)
    assert _post(strict, _hook(account), {"id": ark_id}).status_code == 200


def test_it_hands_the_re_read_to_a_worker_when_ark_fails(sim, account, client):
    ark_id = sim.add_task(kind="video", status="running")
    sim.faults.inject("get", "500", times=1)
    # Celery runs eagerly in tests: the deferred re-read happens right away (and succeeds).
    response = _post(client, _hook(account), {"id": ark_id})
    assert response.status_code == 202
    assert Task.objects.get(ark_id=ark_id).status == TaskStatus.RUNNING


def test_it_answers_503_when_it_can_neither_read_nor_queue(sim, account, client, monkeypatch):
    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(celery_tasks.refresh_ark_task, "delay", broker_down)
    sim.faults.inject("get", "500", times=1)
    response = _post(client, _hook(account), {"id": sim.add_task(kind="video", status="running")})
    assert response.status_code == 503


def test_it_answers_within_arks_deadline_when_ark_is_slow(db, client, settings, monkeypatch):
    settings.ARKDASH_CALLBACK_TIMEOUT_SECONDS = 0.5
    deferred = []
    monkeypatch.setattr(celery_tasks.refresh_ark_task, "delay", lambda *args: deferred.append(args))
    sim = Simulator(api_keys=("slow-key",), list_rate_per_second=None)
    with sim.serve() as server:
        settings.ARKDASH_SIMULATOR_URL = server.url  # a simulator on loopback, as `make run` declares
        account = Account(name="slow", base_url=server.base_url)
        account.set_api_key("slow-key")
        account.save()
        ark_id = sim.add_task(kind="video", status="running")
        sim.faults.inject("get", "latency", latency=5.0)
        started = time.monotonic()
        response = _post(client, _hook(account), {"id": ark_id})
        elapsed = time.monotonic() - started
    assert response.status_code == 202
    assert elapsed < 2.0
    assert deferred == [(account.pk, ark_id)]


def test_it_keeps_the_secret_out_of_the_logs(sim, account, client, caplog):
    sim.faults.inject("get", "500", times=1)
    with caplog.at_level("DEBUG"):
        client.get(_hook(account))
        _post(client, _hook(account), b"junk")
        _post(client, _hook(account), {"id": "cgt-20250101000000-forge"})
        _post(client, _hook(account), {"id": sim.add_task(kind="video", status="running")})
    assert caplog.records  # something was logged (the outcomes, by task id)
    assert account.callback_secret not in caplog.text and "test-key" not in caplog.text


def test_it_never_echoes_secrets(sim, account, client):
    for body in ({"id": sim.add_task(kind="video", status="queued")}, b"junk"):
        text = _post(client, _hook(account), body).content.decode()
        assert account.callback_secret not in text and "test-key" not in text


def test_it_mirrors_a_task_the_moment_ark_calls_back(db, account):
    """End to end: the simulator calls our endpoint on each status change; no sync runs."""
    django_client = Client()

    def deliver(request: httpx.Request) -> httpx.Response:
        response = django_client.post(request.url.path, data=request.content, content_type="application/json")
        return httpx.Response(response.status_code, content=response.content)

    sim = Simulator(
        api_keys=("test-key",), list_rate_per_second=None, callback_transport=httpx.MockTransport(deliver)
    )
    with transport.routed_to(sim.transport()):
        callback_url = f"http://testserver{_hook(account)}"
        ark_id = sim.add_task(
            kind="video", status="queued", queue_seconds=5, run_seconds=10, callback_url=callback_url
        )
        sim.advance(6)
        assert Task.objects.get(ark_id=ark_id).status == TaskStatus.RUNNING
        sim.advance(10)
        task = Task.objects.get(ark_id=ark_id)
    assert task.status == TaskStatus.SUCCEEDED and task.archive_handoff_pending
    stats = sim.stats()
    assert stats["list"] == 0 and stats["callbacks"] == 2 and stats["callback_failures"] == 0


# --- coalescing (issue: 500 callbacks for one id cost 500 upstream GETs) --------------------


@pytest.fixture
def own_keys(settings):
    """Keys of this test's own: a quiet window must not reach into a later test."""
    import uuid

    settings.ARK_RATE_LIMIT_KEY_PREFIX = f"test:{uuid.uuid4()}"


def test_it_coalesces_a_flood_of_callbacks_for_one_task(sim, account, client, settings, own_keys):
    settings.ARKDASH_CALLBACK_COALESCE_SECONDS = 60.0  # the whole flood falls in one window
    ark_id = sim.add_task(kind="video", status="running")
    sim.reset_stats()

    statuses = [_post(client, _hook(account), {"id": ark_id, "status": "running"}).status_code for _ in range(500)]

    # One re-read at once, and one more for all the callbacks that came during the window
    # (run at once here: Celery is eager in the tests).
    assert sim.stats()["get"] == 2
    assert statuses[0] == 200 and set(statuses[1:]) == {202}
    assert Task.objects.get(account=account, ark_id=ark_id).status == TaskStatus.RUNNING


def test_it_rereads_again_once_the_window_has_passed(sim, account, client, settings, own_keys):
    settings.ARKDASH_CALLBACK_COALESCE_SECONDS = 0.2
    ark_id = sim.add_task(kind="video", status="running")
    sim.reset_stats()

    assert _post(client, _hook(account), {"id": ark_id}).status_code == 200
    time.sleep(0.5)
    assert _post(client, _hook(account), {"id": ark_id}).status_code == 200
    assert sim.stats()["get"] == 2


def test_it_keeps_one_task_from_holding_back_another(sim, account, client, settings, own_keys):
    settings.ARKDASH_CALLBACK_COALESCE_SECONDS = 60.0
    first, second = sim.add_task(kind="video", status="running"), sim.add_task(kind="video", status="queued")

    assert _post(client, _hook(account), {"id": first}).status_code == 200
    assert _post(client, _hook(account), {"id": second}).status_code == 200


def test_it_accepts_a_chunked_body(sim, account, client):
    import io

    ark_id = sim.add_task(kind="video", status="running")
    body = json.dumps({"id": ark_id, "status": "running"}).encode()

    # What gunicorn hands Django for `Transfer-Encoding: chunked`: no CONTENT_LENGTH, the
    # de-chunked bytes in wsgi.input.
    response = client.post(_hook(account), data=b"", content_type="application/json", CONTENT_LENGTH="",
                           HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": io.BytesIO(body)})

    assert response.status_code == 200, response.content
    assert Task.objects.get(account=account, ark_id=ark_id).status == TaskStatus.RUNNING


def test_it_refuses_a_chunked_body_over_the_limit(sim, account, client):
    import io

    from tasks_app.services.callbacks import MAX_BODY_BYTES

    response = client.post(_hook(account), data=b"", content_type="application/json", CONTENT_LENGTH="",
                           HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": io.BytesIO(b" " * (MAX_BODY_BYTES + 10))})

    assert response.status_code == 413
