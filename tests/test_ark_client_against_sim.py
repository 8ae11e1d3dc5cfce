"""ArkClient against the Ark simulator (arksim), in-process and over real sockets: the
contract between the two, i.e. the real wire format, state table and faults. Scripted
answers, which test the client alone, are in test_ark_client.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from arksim import Simulator
from tasks_app.ark import (
    ArkAuthenticationError,
    ArkBadRequestError,
    ArkClient,
    ArkConnectionError,
    ArkNotFoundError,
    ArkRateLimitedError,
    ArkTimeoutError,
)

from .ark_fakes import RecordingLimiter, without_proxies

BASE_URL = "http://arksim.test/api/v3"
TEXT = [{"type": "text", "text": "a paper boat drifting down a rainy street --ratio 16:9"}]


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def ark_client(sim, waits):
    """An ArkClient on the in-process simulator; its pauses are recorded in `waits`, not slept."""
    with ArkClient(BASE_URL, sim.default_key, transport=sim.transport(), sleep=waits.append) as client:
        yield client


def test_it_reads_a_task_the_way_the_simulator_serves_it(sim, ark_client):
    task_id = sim.add_task(kind="video", status="succeeded", return_last_frame=True)

    task = ark_client.get_task(task_id)

    assert task.id == task_id
    assert task.status == "succeeded"
    assert task.kind == "video"
    assert task.created_at is not None and task.created_at.tzinfo is not None
    assert set(task.output_urls()) == {"video", "last_frame"}
    assert task.total_tokens and task.total_tokens == task.completion_tokens


def test_it_reads_a_3d_task_and_its_model_zip(sim, ark_client):
    task_id = sim.add_task(kind="3d", status="succeeded", file_format="obj")

    task = ark_client.get_task(task_id)

    assert task.kind == "3d"
    assert task.file_format == "obj"
    assert list(task.output_urls()) == ["model_zip"]


def test_it_reads_quoted_timestamps():
    sim = Simulator(api_keys=("k",), list_rate_per_second=None, quoted_timestamps=True)
    created = int(sim.clock.now()) - 60
    task_id = sim.add_task(status="queued", created_at=created)

    with ArkClient(BASE_URL, "k", transport=sim.transport()) as client:
        task = client.get_task(task_id)

    assert task.raw["created_at"] == str(created)
    assert task.created_at == datetime.fromtimestamp(created, tz=UTC)


def test_it_lists_newest_first_with_the_total(sim, ark_client):
    now = int(sim.clock.now())
    ids = [sim.add_task(status="succeeded", created_at=now - 60 * n) for n in range(3)]

    page = ark_client.list_tasks(page_size=2)

    assert page.total == 3
    assert [task.id for task in page.items] == ids[:2]


def test_it_pages_through_every_task_with_one_call_per_page(sim, ark_client):
    now = int(sim.clock.now())
    ids = {sim.add_task(status="succeeded", created_at=now - n) for n in range(7)}
    sim.reset_stats()

    seen = [task.id for task in ark_client.iter_tasks(page_size=3)]

    assert sorted(seen) == sorted(ids)
    assert sim.stats()["list"] == 3


def test_it_filters_by_status_ids_endpoint_and_tier(sim, ark_client):
    queued = sim.add_task(status="queued")
    running = sim.add_task(status="running")
    flex = sim.add_task(status="succeeded", service_tier="flex")
    on_endpoint = sim.add_task(status="succeeded", model="ep-20251015101500-fast1")

    assert [t.id for t in ark_client.list_tasks(status="running").items] == [running]
    assert {t.id for t in ark_client.list_tasks(task_ids=[queued, flex]).items} == {queued, flex}
    assert [t.id for t in ark_client.list_tasks(model="ep-20251015101500-fast1").items] == [on_endpoint]
    assert [t.id for t in ark_client.list_tasks(service_tier="flex").items] == [flex]


def test_it_creates_a_task_that_then_progresses(sim, ark_client):
    task_id = ark_client.create_task(
        model="doubao-seedance-1-0-pro-250528", content=TEXT, return_last_frame=True
    )

    assert ark_client.get_task(task_id).status == "queued"
    sim.advance(3600)
    done = ark_client.get_task(task_id)
    assert done.status == "succeeded"
    assert set(done.output_urls()) == {"video", "last_frame"}


def test_it_raises_a_bad_request_with_code_and_param_for_an_invalid_create(sim, ark_client):
    with pytest.raises(ArkBadRequestError) as caught:
        ark_client.create_task(
            model="doubao-seedance-1-0-pro-250528", content=TEXT, execution_expires_after=5
        )

    assert caught.value.http_status == 400
    assert caught.value.code
    assert caught.value.param == "execution_expires_after"
    assert caught.value.request_id
    assert sim.stats()["create"] == 1


def test_it_raises_authentication_error_for_a_wrong_key_without_retrying(sim):
    with ArkClient(BASE_URL, "wrong-key", transport=sim.transport(), sleep=lambda s: None) as client:
        with pytest.raises(ArkAuthenticationError) as caught:
            client.list_tasks()

    assert caught.value.code == "AuthenticationError"
    assert "wrong-key" not in str(caught.value)
    assert sim.stats()["list"] == 1


def test_it_raises_not_found_for_an_unknown_task(sim, ark_client):
    with pytest.raises(ArkNotFoundError):
        ark_client.get_task("cgt-20250101000000-zzzzz")


@pytest.mark.parametrize(
    ("status", "expected"),
    [("queued", "cancelled"), ("succeeded", None), ("failed", None), ("expired", None)],
)
def test_it_follows_the_delete_state_table_for_allowed_rows(sim, ark_client, status, expected):
    task_id = sim.add_task(kind="video", status=status)

    result = ark_client.delete_task(task_id)

    assert (result.status if result else None) == expected
    if expected is None:
        with pytest.raises(ArkNotFoundError):
            ark_client.get_task(task_id)
    assert sim.stats()["delete"] == 1


@pytest.mark.parametrize("status", ["running", "cancelled"])
def test_it_raises_arks_refusal_for_running_and_cancelled(sim, ark_client, status):
    task_id = sim.add_task(kind="video", status=status)

    with pytest.raises(ArkBadRequestError) as caught:
        ark_client.delete_task(task_id)

    assert caught.value.code == "InvalidParameter.TaskStatus"
    assert status in caught.value.message
    assert ark_client.get_task(task_id).status == status
    assert sim.stats()["delete"] == 1


def test_it_returns_none_when_deleting_a_task_ark_does_not_have(sim, ark_client):
    assert ark_client.delete_task("cgt-20250101000000-zzzzz") is None


def test_it_retries_a_429_after_the_retry_after_and_tells_the_limiter(sim, waits):
    limiter = RecordingLimiter()
    task_id = sim.add_task(status="queued")
    sim.faults.inject("get", "429", retry_after=2)

    with ArkClient(
        BASE_URL, sim.default_key, transport=sim.transport(), rate_limiter=limiter, sleep=waits.append
    ) as client:
        assert client.get_task(task_id).id == task_id

    assert len(waits) == 1 and waits[0] >= 2.0
    assert limiter.penalties == [("get", 2.0)]
    assert limiter.acquired == ["get", "get"]
    assert sim.stats()["get"] == 2


def test_it_gives_up_on_a_429_that_asks_for_too_long_a_pause(sim):
    sim.faults.inject("list", "429", retry_after=120)

    with ArkClient(BASE_URL, sim.default_key, transport=sim.transport(), backoff_max=30.0) as client:
        with pytest.raises(ArkRateLimitedError) as caught:
            client.list_tasks()

    assert caught.value.retry_after == 120.0
    assert sim.stats()["list"] == 1


def test_it_retries_server_errors_of_reads(sim, ark_client, waits):
    sim.add_task(status="queued")
    sim.faults.inject("list", "500", times=2)

    assert ark_client.list_tasks().total == 1
    assert sim.stats()["list"] == 3
    assert len(waits) == 2


@pytest.mark.parametrize("kind", ["drop", "truncate", "bad_length"])
def test_it_retries_reads_through_dropped_and_mangled_answers(sim, ark_client, kind):
    task_id = sim.add_task(status="queued")
    sim.faults.inject("get", kind)

    assert ark_client.get_task(task_id).id == task_id
    assert sim.stats()["get"] == 2


def test_it_sends_a_dropped_delete_again_after_the_re_read_shows_it_did_not_happen(sim, ark_client):
    task_id = sim.add_task(status="queued")
    sim.faults.inject("delete", "drop")

    result = ark_client.delete_task(task_id)

    assert result is not None and result.status == "cancelled"
    assert sim.stats()["delete"] == 2
    assert sim.stats()["get"] == 2


def test_it_re_reads_after_a_delete_500_and_sends_it_once_more_when_nothing_changed(sim, ark_client):
    task_id = sim.add_task(status="queued")
    sim.faults.inject("delete", "500", status=503)
    sim.faults.inject("get", "500")  # the re-read itself needs a retry

    result = ark_client.delete_task(task_id)

    assert result is not None and result.status == "cancelled"
    assert sim.stats()["delete"] == 2
    assert sim.stats()["get"] == 3


def test_it_resolves_a_truncated_delete_answer_by_re_reading(sim, ark_client):
    task_id = sim.add_task(status="succeeded")
    sim.faults.inject("delete", "truncate")

    assert ark_client.delete_task(task_id) is None
    assert sim.stats()["delete"] == 1
    assert sim.stats()["get"] == 1


def test_it_never_repeats_a_create_whose_connection_dropped(sim, ark_client):
    sim.faults.inject("create", "drop")

    with pytest.raises(ArkConnectionError):
        ark_client.create_task(model="doubao-seedance-1-0-pro-250528", content=TEXT)

    assert sim.stats()["create"] == 1


def test_it_times_out_on_a_slow_answer(sim):
    task_id = sim.add_task(status="queued")
    sim.faults.inject("get", "latency", latency=0.2)

    with ArkClient(
        BASE_URL, sim.default_key, transport=sim.transport(), timeout=0.05, max_retries=0
    ) as client:
        with pytest.raises(ArkTimeoutError):
            client.get_task(task_id)


@pytest.fixture
def served(monkeypatch):
    """The simulator as a real HTTP server on 127.0.0.1: real sockets, real drops."""
    without_proxies(monkeypatch)
    sim = Simulator(api_keys=("served-key",), list_rate_per_second=None)
    handle = sim.serve(host="127.0.0.1", port=0, realtime=False)
    try:
        yield handle
    finally:
        handle.shutdown()


@pytest.mark.parametrize("kind", ["drop", "truncate", "bad_length"])
def test_it_survives_real_dropped_and_mangled_connections(served, kind):
    task_id = served.sim.add_task(status="queued")
    served.sim.faults.inject("get", kind)

    with ArkClient(served.base_url, "served-key", timeout=5.0, sleep=lambda s: None) as client:
        assert client.get_task(task_id).id == task_id

    assert served.sim.stats()["get"] == 2


def test_it_resolves_a_really_dropped_delete_by_re_reading(served):
    task_id = served.sim.add_task(status="queued")
    served.sim.faults.inject("delete", "drop")

    with ArkClient(served.base_url, "served-key", timeout=5.0, sleep=lambda s: None) as client:
        result = client.delete_task(task_id)

    assert result is not None and result.status == "cancelled"
    assert served.sim.stats()["delete"] == 2
