"""arksim: POST /contents/generations/tasks validates like Ark and makes Ark-shaped tasks."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from arksim import ArkHttpError, SimClock, Simulator

from .support import KEY, START, TASKS

VIDEO = "doubao-seedance-1-0-pro-250528"
SEED3D = "doubao-seed3d-1-0-250928"
TEXT = [{"type": "text", "text": "a cat"}]


def _post(api: httpx.Client, body: Any) -> httpx.Response:
    return api.post(TASKS, json=body)


def test_it_returns_an_id_made_of_beijing_creation_time_and_five_chars(api: httpx.Client) -> None:
    response = _post(api, {"model": VIDEO, "content": TEXT})
    assert response.status_code == 200
    task_id = response.json()["id"]
    beijing = datetime.fromtimestamp(START, UTC) + timedelta(hours=8)
    assert re.fullmatch(rf"cgt-{beijing:%Y%m%d%H%M%S}-[a-z0-9]{{5}}", task_id)
    assert beijing.strftime("%H%M%S") == "165320"


def test_it_fills_defaults_for_unset_options(ark: Simulator, api: httpx.Client) -> None:
    task = ark.task_json(_post(api, {"model": VIDEO, "content": TEXT}).json()["id"])
    assert task["status"] == "queued"
    assert (task["resolution"], task["ratio"], task["duration"], task["framespersecond"]) == (
        "1080p",
        "16:9",
        5,
        24,
    )
    assert task["service_tier"] == "default"
    assert task["execution_expires_after"] == 172800
    assert 0 <= task["seed"] < 2**32


def test_it_treats_json_null_as_absent_like_the_sdk_sends(ark: Simulator, api: httpx.Client) -> None:
    nulls = dict.fromkeys(
        ["callback_url", "return_last_frame", "service_tier", "execution_expires_after", "priority",
         "generate_audio", "draft", "camera_fixed", "watermark", "seed", "resolution", "ratio",
         "duration", "frames", "tools", "safety_identifier", "output_format"]
    )  # fmt: skip
    response = _post(api, {"model": VIDEO, "content": TEXT, **nulls})
    assert response.status_code == 200, response.text
    assert ark.task_json(response.json()["id"])["duration"] == 5


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"content": TEXT}, 400, "MissingParameter", "model"),
        ({"model": None, "content": TEXT}, 400, "MissingParameter", "model"),
        ({"model": "", "content": TEXT}, 400, "InvalidParameter", "model"),
        ({"model": 12, "content": TEXT}, 400, "InvalidParameter", "model"),
        ({"model": "no-such-model", "content": TEXT}, 404, "InvalidEndpointOrModel.NotFound", "model"),
        ({"model": VIDEO}, 400, "MissingParameter", "content"),
        ({"model": VIDEO, "content": []}, 400, "InvalidParameter", "content"),
        ({"model": VIDEO, "content": "a cat"}, 400, "InvalidParameter", "content"),
        ({"model": VIDEO, "content": ["a cat"]}, 400, "InvalidParameter", "content[0]"),
        ({"model": VIDEO, "content": [{"type": "poem"}]}, 400, "InvalidParameter", "content[0].type"),
        ({"model": VIDEO, "content": [{"type": []}]}, 400, "InvalidParameter", "content[0].type"),
        ({"model": VIDEO, "content": [{"type": {"text": 1}}]}, 400, "InvalidParameter", "content[0].type"),
        ({"model": VIDEO, "content": [{"type": "text", "text": 3}]}, 400, "InvalidParameter", "content[0].text"),
        ({"model": VIDEO, "content": [*TEXT, {"type": "image_url", "image_url": {}}]}, 400, "InvalidParameter",
         "content[1].image_url"),
        ({"model": VIDEO, "content": TEXT, "execution_expires_after": 3599}, 400, "InvalidParameter",
         "execution_expires_after"),
        ({"model": VIDEO, "content": TEXT, "execution_expires_after": 259201}, 400, "InvalidParameter",
         "execution_expires_after"),
        ({"model": VIDEO, "content": TEXT, "execution_expires_after": "3600"}, 400, "InvalidParameter",
         "execution_expires_after"),
        ({"model": VIDEO, "content": TEXT, "service_tier": "gold"}, 400, "InvalidParameter", "service_tier"),
        ({"model": VIDEO, "content": TEXT, "resolution": "4k"}, 400, "InvalidParameter", "resolution"),
        ({"model": VIDEO, "content": TEXT, "ratio": "2:1"}, 400, "InvalidParameter", "ratio"),
        ({"model": VIDEO, "content": TEXT, "duration": 1}, 400, "InvalidParameter", "duration"),
        ({"model": VIDEO, "content": TEXT, "duration": 13}, 400, "InvalidParameter", "duration"),
        ({"model": VIDEO, "content": TEXT, "duration": True}, 400, "InvalidParameter", "duration"),
        ({"model": VIDEO, "content": TEXT, "frames": 30}, 400, "InvalidParameter", "frames"),
        ({"model": VIDEO, "content": TEXT, "frames": 29, "duration": 5}, 400, "InvalidParameter", "frames"),
        ({"model": VIDEO, "content": TEXT, "seed": -2}, 400, "InvalidParameter", "seed"),
        ({"model": VIDEO, "content": TEXT, "return_last_frame": "yes"}, 400, "InvalidParameter",
         "return_last_frame"),
        ({"model": VIDEO, "content": TEXT, "callback_url": "ftp://x/y"}, 400, "InvalidParameter", "callback_url"),
        ({"model": VIDEO, "content": TEXT, "fileformat": "glb"}, 400, "InvalidParameter.UnsupportedParameter",
         "fileformat"),
        ({"model": SEED3D, "content": TEXT, "resolution": "720p"}, 400, "InvalidParameter.UnsupportedParameter",
         "resolution"),
        ({"model": SEED3D, "content": TEXT, "fileformat": "fbx"}, 400, "InvalidParameter", "fileformat"),
        ({"model": SEED3D, "content": TEXT, "subdivisionlevel": "ultra"}, 400, "InvalidParameter",
         "subdivisionlevel"),
        ({"model": VIDEO, "content": [{"type": "text", "text": "--rs 4k"}]}, 400, "InvalidParameter", "resolution"),
        ([{"model": VIDEO}], 400, "InvalidParameter", ""),
    ],
)  # fmt: skip
def test_it_rejects_bad_bodies_with_the_envelope_naming_the_param(
    ark: Simulator, api: httpx.Client, body: Any, status: int, code: str, param: str
) -> None:
    response = _post(api, body)
    assert response.status_code == status
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (code, param)
    assert error["message"].endswith(f"Request id: {response.headers['x-request-id']}")
    assert ark.stats()["create"] == 1 and api.get(TASKS).json()["total"] == 0


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe"])
def test_it_rejects_malformed_json_with_400(api: httpx.Client, raw: bytes) -> None:
    response = api.post(TASKS, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidParameter"


@pytest.mark.parametrize(
    ("requested", "model", "kind_field"),
    [
        ("ep-20250928090000-s3d01", SEED3D, "fileformat"),
        ("ep-20250428120000-lite1", "doubao-seedance-1-0-lite-t2v-250428", "resolution"),
        ("doubao-seedance-1-0-pro", VIDEO, "resolution"),  # name without version: newest version
    ],
)
def test_it_resolves_endpoint_ids_and_aliases_to_a_model(
    ark: Simulator, api: httpx.Client, requested: str, model: str, kind_field: str
) -> None:
    task = ark.task_json(_post(api, {"model": requested, "content": TEXT}).json()["id"])
    assert task["model"] == model
    assert kind_field in task


def test_it_answers_404_to_an_endpoint_id_it_does_not_know(ark: Simulator, api: httpx.Client) -> None:
    response = _post(api, {"model": "ep-20991231000000-zzzzz", "content": TEXT})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "InvalidEndpointOrModel.NotFound"
    assert ark.list_tasks(ark.default_key)["total"] == 0


def test_it_reads_options_written_as_prompt_commands(ark: Simulator, api: httpx.Client) -> None:
    video = ark.task_json(_post(api, {"model": VIDEO, "content": [{"type": "text", "text": "cat --rs 480p --dur 10"}]})
                          .json()["id"])  # fmt: skip
    body_wins = ark.task_json(
        _post(api, {"model": VIDEO, "content": [{"type": "text", "text": "cat --rs 480p"}], "resolution": "720p"})
        .json()["id"]
    )  # fmt: skip
    model = ark.task_json(
        _post(api, {"model": SEED3D, "content": [{"type": "text", "text": "--subdivisionlevel low --fileformat usdz"}]})
        .json()["id"]
    )  # fmt: skip
    assert (video["resolution"], video["duration"]) == ("480p", 10)
    assert body_wins["resolution"] == "720p"
    assert (model["subdivisionlevel"], model["fileformat"]) == ("low", "usdz")


def test_it_validates_the_same_way_from_python(ark: Simulator) -> None:
    with pytest.raises(ArkHttpError) as raised:
        ark.create_task({"model": VIDEO, "content": TEXT, "duration": 99})
    assert (raised.value.status, raised.value.param) == (400, "duration")
    assert ark.task_json(ark.create_task({"model": VIDEO, "content": TEXT}))["status"] == "queued"


def test_it_refuses_more_queued_tasks_than_the_account_may_have() -> None:
    ark = Simulator(api_keys=(KEY,), clock=SimClock(START), max_queued_per_key=2)
    for _ in range(2):
        ark.create_task({"model": VIDEO, "content": TEXT})
    with pytest.raises(ArkHttpError) as raised:
        ark.create_task({"model": VIDEO, "content": TEXT})
    assert (raised.value.status, raised.value.code) == (429, "QuotaExceeded")
    ark.advance(5)  # both start running: room again
    ark.create_task({"model": VIDEO, "content": TEXT})
