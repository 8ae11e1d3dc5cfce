"""arksim: auth, the error envelope, the task object and the status machine (in-process)."""

from __future__ import annotations

import httpx
import pytest

from arksim import SimClock, Simulator

from .support import DAY, KEY, OTHER_KEY, START, TASKS, api_client


def _create(api: httpx.Client, **options: object) -> str:
    body = {
        "model": "doubao-seedance-1-0-pro-250528",
        "content": [{"type": "text", "text": "a cat"}],
        **options,
    }
    response = api.post(TASKS, json=body)
    assert response.status_code == 200, response.text
    return response.json()["id"]


@pytest.mark.parametrize("header", [None, "Bearer wrong-key", "Basic c2ltLWtleQ==", "Bearer ", "sim-key"])
def test_it_rejects_a_missing_or_wrong_key_with_the_401_envelope(ark: Simulator, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    with httpx.Client(transport=ark.transport(), base_url="http://arksim.test/api/v3") as client:
        response = client.get(TASKS, headers=headers)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "AuthenticationError"
    assert error["type"] == "Unauthorized"
    assert f"Request id: {response.headers['x-request-id']}" in error["message"]
    assert "wrong-key" not in response.text


def test_it_sends_a_request_id_on_every_response(ark: Simulator, api: httpx.Client) -> None:
    task_id = ark.add_task(status="succeeded")
    responses = [
        api.get(f"{TASKS}/{task_id}"),
        api.get(TASKS, params={"page_size": 0}),
        api.get("/nowhere"),
        api.get(ark.output_url(task_id, "video")),
        api_client(ark, key=None).get(TASKS),
    ]
    ids = [response.headers.get("x-request-id") for response in responses]
    assert [r.status_code for r in responses] == [200, 400, 404, 200, 401]
    assert all(ids) and len(set(ids)) == len(ids)


def test_it_echoes_the_sdk_client_request_id(api: httpx.Client) -> None:
    response = api.get(TASKS, headers={"X-Client-Request-Id": "abc-123"})
    assert response.headers["X-Client-Request-Id"] == "abc-123"


def test_it_hides_one_keys_tasks_from_another(ark: Simulator, api: httpx.Client) -> None:
    task_id = _create(api)
    with api_client(ark, OTHER_KEY) as other:
        assert other.get(f"{TASKS}/{task_id}").status_code == 404
        assert other.get(TASKS).json() == {"total": 0, "items": []}
        assert other.delete(f"{TASKS}/{task_id}").status_code == 404
    assert api.get(f"{TASKS}/{task_id}").json()["status"] == "queued"


def test_it_moves_a_task_through_queued_running_succeeded_on_the_sim_clock(
    ark: Simulator, api: httpx.Client
) -> None:
    task_id = _create(api)
    seen = []
    for seconds in (4, 1, 19, 1):  # queue_seconds=5, run_seconds=20
        ark.advance(seconds)
        task = api.get(f"{TASKS}/{task_id}").json()
        seen.append((task["status"], task["updated_at"] - START))
    assert seen == [("queued", 0), ("running", 5), ("running", 5), ("succeeded", 25)]


def test_it_applies_due_changes_lazily_on_the_next_request(ark: Simulator, api: httpx.Client) -> None:
    task_id = _create(api)
    ark.clock.advance(100)  # no tick
    assert api.get(f"{TASKS}/{task_id}").json()["status"] == "succeeded"


def test_it_shows_no_content_or_usage_until_a_task_succeeded(ark: Simulator, api: httpx.Client) -> None:
    task_id = _create(api, return_last_frame=True)
    queued = api.get(f"{TASKS}/{task_id}").json()
    ark.advance(5)
    running = api.get(f"{TASKS}/{task_id}").json()
    ark.advance(20)
    done = api.get(f"{TASKS}/{task_id}").json()
    for task in (queued, running):
        assert "content" not in task and "usage" not in task and "error" not in task
    assert set(done["content"]) == {"video_url", "last_frame_url"}
    assert done["usage"]["completion_tokens"] == done["usage"]["total_tokens"] > 0


def test_it_shows_the_video_task_object_fields(ark: Simulator, api: httpx.Client) -> None:
    task_id = _create(api, resolution="720p", ratio="9:16", frames=121, seed=7, generate_audio=True)
    ark.advance(25)
    task = api.get(f"{TASKS}/{task_id}").json()
    assert task["model"] == "doubao-seedance-1-0-pro-250528"
    assert isinstance(task["created_at"], int) and isinstance(task["updated_at"], int)
    assert {k: task[k] for k in ("seed", "resolution", "ratio", "frames", "framespersecond", "generate_audio")} == {
        "seed": 7, "resolution": "720p", "ratio": "9:16", "frames": 121, "framespersecond": 24,
        "generate_audio": True,
    }  # fmt: skip
    assert "duration" not in task
    assert task["service_tier"] == "default" and task["execution_expires_after"] == 172800


def test_it_omits_the_last_frame_unless_asked(ark: Simulator, api: httpx.Client) -> None:
    task_id = _create(api)  # Ark's default: return_last_frame=false
    ark.advance(25)
    assert set(api.get(f"{TASKS}/{task_id}").json()["content"]) == {"video_url"}


def test_it_shows_the_3d_task_object_fields(ark: Simulator, api: httpx.Client) -> None:
    body = {
        "model": "doubao-seed3d-1-0-250928",
        "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}],
        "subdivisionlevel": "low",
        "fileformat": "obj",
    }
    task_id = api.post(TASKS, json=body).json()["id"]
    ark.advance(25)
    task = api.get(f"{TASKS}/{task_id}").json()
    assert task["status"] == "succeeded"
    assert (task["subdivisionlevel"], task["fileformat"]) == ("low", "obj")
    assert set(task["content"]) == {"file_url"}
    assert "resolution" not in task and "execution_expires_after" not in task


@pytest.mark.parametrize(
    ("model", "code"),
    [
        ("doubao-seedance-1-0-pro-250528", "OutputVideoSensitiveContentDetected.PolicyViolation"),
        ("doubao-seed3d-1-0-250928", "InputImageSensitiveContentDetected.PolicyViolation"),
    ],
)
def test_it_fails_tasks_whose_prompt_says_fail(
    ark: Simulator, api: httpx.Client, model: str, code: str
) -> None:
    task_id = api.post(
        TASKS, json={"model": model, "content": [{"type": "text", "text": "x [fail]"}]}
    ).json()["id"]
    ark.advance(25)
    task = api.get(f"{TASKS}/{task_id}").json()
    assert task["status"] == "failed"
    assert task["error"]["code"] == code and task["error"]["message"]
    assert "content" not in task


@pytest.mark.parametrize("status_before", ["queued", "running"])
def test_it_expires_video_tasks_after_execution_expires_after(ark: Simulator, status_before: str) -> None:
    task_id = ark.add_task(
        status=status_before, execution_expires_after=3600, queue_seconds=1e9, run_seconds=1e9
    )
    ark.advance(3599)
    assert ark.task_json(task_id)["status"] == status_before
    ark.advance(1)
    task = ark.task_json(task_id)
    assert task["status"] == "expired"
    assert task["updated_at"] == START + 3600


def test_it_can_quote_timestamps_like_some_docs_show() -> None:
    ark = Simulator(api_keys=(KEY,), clock=SimClock(START), quoted_timestamps=True)
    task = ark.task_json(ark.add_task())
    assert task["created_at"] == str(START) and task["updated_at"] == str(START)


def test_it_shows_tasks_created_in_the_closed_seven_day_window_only(
    ark: Simulator, api: httpx.Client
) -> None:
    old = ark.add_task(status="succeeded", created_at=START - 7 * DAY - 1)
    young = ark.add_task(status="succeeded", created_at=START - 7 * DAY)
    assert api.get(f"{TASKS}/{old}").status_code == 404
    assert api.get(f"{TASKS}/{young}").status_code == 200
    assert [item["id"] for item in api.get(TASKS).json()["items"]] == [young]
    ark.advance(1)
    assert api.get(f"{TASKS}/{young}").status_code == 404


def test_it_answers_unknown_paths_and_methods_with_the_envelope(api: httpx.Client) -> None:
    missing = api.get("/contents/generations/nothing")
    wrong_method = api.put(TASKS)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFound"
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "MethodNotAllowed"
    assert "POST" in wrong_method.headers["Allow"]


def test_it_answers_an_internal_bug_with_a_500_envelope(
    ark: Simulator, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(ark, "get_task", broken)
    response = api.get(f"{TASKS}/cgt-20250101000000-aaaaa")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "InternalServiceError"
    assert "boom" not in response.text and "Traceback" not in response.text


def test_it_brings_states_up_to_date_for_python_callers_too(ark: Simulator) -> None:
    task_id = ark.add_task(status="queued")
    ark.clock.advance(100)  # no tick
    assert ark.list_tasks(KEY)["items"][0]["status"] == "succeeded"
    assert ark.get_task(KEY, task_id)["status"] == "succeeded"


def test_it_forgets_records_a_month_old_so_long_demos_stay_fast(ark: Simulator) -> None:
    ancient = ark.add_task(status="succeeded", created_at=START - 31 * DAY)
    recent = ark.add_task(status="succeeded", created_at=START - 8 * DAY)
    assert ark.task_json(ancient) is not None
    ark.advance(3600)
    assert ark.task_json(ancient) is None
    assert ark.task_json(recent) is not None
