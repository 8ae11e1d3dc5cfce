"""Output links and callbacks of gateway tasks: ArkDash's signed archive links, relays to the caller."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from arksim import Simulator
from tasks_app.gateway import outputs
from tasks_app.gateway.models import GatewayTask
from tasks_app.lib import transport
from tasks_app.models import Artifact, Task

from .gateway_support import make_token, sdk

# Fixtures shared by the gateway tests.

pytestmark = pytest.mark.django_db

TEXT = [{"type": "text", "text": "a lighthouse at dawn"}]
DAY = 86400


class Receiver:
    """The caller's own callback endpoint: records what ArkDash relays."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        return httpx.Response(200)


@pytest.fixture
def world(settings, account, local_archive, in_process_django):
    """Ark (the simulator) calls back into ArkDash; ArkDash's outbound calls reach Ark or the caller."""
    settings.ARKDASH_GATEWAY_CALLBACK_ALLOWED_HOSTS = ["hooks.example"]
    # A made-up name no DNS knows: opted in like the simulator's host, so it is not resolved.
    settings.ARKDASH_GATEWAY_CALLBACK_PRIVATE_HOSTS = ["hooks.example"]
    sim = Simulator(api_keys=("test-key",), public_base_url="http://arksim.test", list_rate_per_second=None,
                    get_rate_per_second=None, delete_rate_per_second=None, callback_transport=in_process_django)
    receiver = Receiver()
    ark, caller = sim.transport(), httpx.MockTransport(receiver)

    def route(request: httpx.Request) -> httpx.Response:
        transport = caller if request.url.host == "hooks.example" else ark
        return transport.handle_request(request)

    with transport.routed_to(httpx.MockTransport(route)):
        yield sim, receiver


def test_an_output_url_works_25_hours_after_success_without_a_session(
    world, account, operator, in_process_django, django_capture_on_commit_callbacks
):
    sim, _receiver = world
    client = sdk(in_process_django, make_token(operator, [account]))
    task_id = client.content_generation.tasks.create(model="doubao-seedance-1-0-pro-250528", content=TEXT,
                                                     return_last_frame=True).id
    with django_capture_on_commit_callbacks(execute=True):
        sim.advance(60)  # queued, running, succeeded: each a callback into ArkDash, then the archive copy
    assert set(Artifact.objects.filter(task__ark_id=task_id).values_list("state", flat=True)) == {"archived"}
    ark_url = sim.output_url(task_id, "video")

    sim.advance(25 * 3600)
    task = client.content_generation.tasks.get(task_id=task_id)
    assert task.content.video_url.startswith("http://testserver/gateway/outputs/")
    assert task.content.last_frame_url.startswith("http://testserver/gateway/outputs/")
    with httpx.Client(transport=in_process_django) as anonymous:  # no cookie, no token
        video = anonymous.get(task.content.video_url)
    assert video.status_code == 200
    assert hashlib.sha256(video.content).hexdigest() == sim.output_sha256(task_id, "video")
    with httpx.Client(transport=sim.transport()) as ark:
        assert ark.get(ark_url).status_code >= 400  # Ark's own link died after 24 h


def test_it_refuses_an_expired_or_altered_output_link(account, mirror, sim, local_archive, in_process_django,
                                                      monkeypatch, settings):
    settings.ARKDASH_GATEWAY_OUTPUT_URL_SECONDS = DAY
    task = mirror(sim.add_task(status="succeeded"))
    (local_archive.root / "x").mkdir(parents=True)
    (local_archive.root / "x" / "video.mp4").write_bytes(b"mp4")
    artifact = Artifact.objects.create(task=task, output="video", state="archived", storage_key="x/video.mp4")
    signed = outputs.sign(artifact.pk)
    with httpx.Client(transport=in_process_django, base_url="http://testserver") as anonymous:
        assert anonymous.get(f"/gateway/outputs/{signed}").content == b"mp4"
        altered = signed[:-2] + ("AA" if not signed.endswith("AA") else "BB")
        assert anonymous.get(f"/gateway/outputs/{altered}").status_code == 403
        real_now = outputs.now()
        monkeypatch.setattr(outputs, "now", lambda: real_now + 2 * DAY + 1)
        assert anonymous.get(f"/gateway/outputs/{signed}").status_code == 403


def test_it_relays_each_callback_to_the_caller_after_re_reading_the_task(
    world, account, operator, in_process_django, django_capture_on_commit_callbacks
):
    sim, receiver = world
    client = sdk(in_process_django, make_token(operator, [account]))
    task_id = client.content_generation.tasks.create(
        model="doubao-seedance-1-0-pro-250528", content=TEXT, callback_url="http://hooks.example/done"
    ).id
    for seconds in (6, 60):  # to running, then to succeeded
        with django_capture_on_commit_callbacks(execute=True):
            sim.advance(seconds)
    assert [body["status"] for body in receiver.bodies] == ["running", "succeeded"]
    last = receiver.bodies[-1]
    assert last["id"] == task_id and "callback_url" not in last
    assert account.callback_secret not in json.dumps(receiver.bodies)
    assert Task.objects.get(ark_id=task_id).status == "succeeded"


def test_it_refuses_a_callback_url_the_address_guard_refuses(world, account, operator, in_process_django,
                                                             settings):
    settings.ARKDASH_GATEWAY_CALLBACK_ALLOWED_HOSTS = ["*"]
    sim, _receiver = world
    client = httpx.Client(transport=in_process_django, base_url="http://testserver/api/v3",
                          headers={"Authorization": f"Bearer {make_token(operator, [account])}"})
    for url in ("http://127.0.0.1:6379/", "http://[::1]/x", "file:///etc/passwd", "http://user:pw@hooks.example/"):
        answer = client.post("/contents/generations/tasks", json={
            "model": "doubao-seedance-1-0-pro-250528", "content": TEXT, "callback_url": url})
        assert answer.status_code == 400, url
        assert answer.json()["error"]["param"] == "callback_url"
    assert sim.stats()["create"] == 0


def test_it_relays_to_a_real_endpoint_that_closes_the_connection_after_answering(account, settings):
    # Python's http.server closes the socket once it has answered: the peer check must run
    # while the connection is still open, not after the answer was read.
    from tasks_app.gateway.relay import relay_callback

    from .alerts_support import failed_task, running_receiver

    with running_receiver(settings) as receiver:
        settings.ARKDASH_GATEWAY_CALLBACK_ALLOWED_HOSTS = ["*"]
        settings.ARKDASH_GATEWAY_CALLBACK_PRIVATE_HOSTS = [f"127.0.0.1:{receiver.port}"]
        task = failed_task(account, 1)
        GatewayTask.objects.create(task=task, endpoint="", callback_url=receiver.url("/done"),
                                   site_url="http://dash.example")
        assert relay_callback(task=task) == 200
    [request] = receiver.received
    assert request.json()["id"] == task.ark_id and request.json()["status"] == "failed"
