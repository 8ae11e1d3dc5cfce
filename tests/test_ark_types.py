from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tasks_app.ark import ArkProtocolError, ArkTask, TaskPage

VIDEO_SUCCEEDED = {
    "id": "cgt-20250331175019-68d9t",
    "model": "doubao-seedance-1-0-pro-250528",
    "status": "succeeded",
    "created_at": 1743414619,
    "updated_at": 1743414679,
    "content": {"video_url": "https://out.example/v.mp4", "last_frame_url": "https://out.example/f.png"},
    "usage": {"completion_tokens": 108900, "total_tokens": 108900},
    "seed": 42,
    "resolution": "1080p",
    "ratio": "16:9",
    "duration": 5,
    "framespersecond": 24,
    "service_tier": "default",
    "execution_expires_after": 172800,
    "generate_audio": False,
    "draft": True,
}


def test_it_reads_every_field_of_a_succeeded_video_task():
    task = ArkTask.from_json(VIDEO_SUCCEEDED)

    assert task.id == "cgt-20250331175019-68d9t"
    assert task.kind == "video"
    assert task.status == "succeeded"
    assert task.created_at == datetime(2025, 3, 31, 9, 50, 19, tzinfo=UTC)
    assert task.updated_at == datetime(2025, 3, 31, 9, 51, 19, tzinfo=UTC)
    assert task.video_url == "https://out.example/v.mp4"
    assert task.last_frame_url == "https://out.example/f.png"
    assert (task.completion_tokens, task.total_tokens) == (108900, 108900)
    assert (task.seed, task.resolution, task.ratio, task.duration, task.framespersecond) == (
        42,
        "1080p",
        "16:9",
        5,
        24,
    )
    assert (task.service_tier, task.execution_expires_after) == ("default", 172800)
    assert (task.generate_audio, task.draft) == (False, True)
    assert task.output_urls() == {
        "video": "https://out.example/v.mp4",
        "last_frame": "https://out.example/f.png",
    }


def test_it_accepts_numeric_string_and_float_timestamps():
    task = ArkTask.from_json({"id": "cgt-1", "created_at": "1718049470", "updated_at": 1718049470.5})

    assert task.created_at == datetime(2024, 6, 10, 19, 57, 50, tzinfo=UTC)
    assert task.updated_at == datetime(2024, 6, 10, 19, 57, 50, 500000, tzinfo=UTC)
    assert task.created_at.tzinfo is UTC


@pytest.mark.parametrize("bad", ["abc", "", True, [1], {"s": 1}, "1e400", 10**30, float("nan")])
def test_it_turns_a_bad_timestamp_into_none(bad):
    task = ArkTask.from_json({"id": "cgt-1", "created_at": bad})

    assert task.created_at is None


def test_it_keeps_unknown_fields_in_raw_untouched():
    data = {**VIDEO_SUCCEEDED, "brand_new_field": {"nested": [1, 2]}, "tools": [{"type": "web_search"}]}

    task = ArkTask.from_json(data)

    assert task.raw is data
    assert task.raw["brand_new_field"] == {"nested": [1, 2]}
    assert data == {
        **VIDEO_SUCCEEDED,
        "brand_new_field": {"nested": [1, 2]},
        "tools": [{"type": "web_search"}],
    }


def test_it_reads_a_queued_task_without_content_or_usage():
    task = ArkTask.from_json(
        {"id": "cgt-q", "model": "doubao-seedance-1-0-pro-250528", "status": "queued", "created_at": 1}
    )

    assert task.status == "queued"
    assert task.kind == "video"
    assert task.output_urls() == {}
    assert task.completion_tokens is None
    assert task.error_code is None


def test_it_treats_null_values_as_absent():
    data = {key: None for key in VIDEO_SUCCEEDED}
    data["id"] = "cgt-n"

    task = ArkTask.from_json(data)

    assert task.model == ""
    assert task.status == ""
    assert task.created_at is None
    assert task.video_url is None
    assert task.seed is None
    assert task.output_urls() == {}


def test_it_reads_the_error_of_a_failed_task():
    task = ArkTask.from_json(
        {
            "id": "cgt-f",
            "status": "failed",
            "error": {
                "code": "OutputVideoSensitiveContentDetected.PolicyViolation",
                "message": "The output video may contain sensitive content.",
            },
        }
    )

    assert task.error_code == "OutputVideoSensitiveContentDetected.PolicyViolation"
    assert task.error_message == "The output video may contain sensitive content."


def test_it_detects_3d_from_the_model_name():
    task = ArkTask.from_json({"id": "cgt-3", "model": "doubao-Seed3D-1-0-250928", "status": "queued"})

    assert task.kind == "3d"


@pytest.mark.parametrize(
    "extra",
    [
        {"content": {"file_url": "https://out.example/m.zip"}},
        {"fileformat": "obj"},
        {"subdivisionlevel": "low"},
    ],
)
def test_it_detects_3d_from_3d_only_fields(extra):
    task = ArkTask.from_json({"id": "cgt-3", "model": "some-endpoint-id", **extra})

    assert task.kind == "3d"


def test_it_reads_a_succeeded_3d_task_in_the_documented_shape():
    task = ArkTask.from_json(
        {
            "id": "cgt-2025-",
            "model": "doubao-seed3d-1-0-250928",
            "status": "succeeded",
            "created_at": "1718049470",
            "updated_at": "1718049470",
            "content": {"file_url": "https://out.example/m.zip"},
            "subdivisionlevel": "medium",
            "fileformat": "glb",
            "usage": {"total_tokens": 30000, "completion_tokens": 30000},
        }
    )

    assert task.kind == "3d"
    assert (task.subdivision_level, task.file_format) == ("medium", "glb")
    assert task.output_urls() == {"model_zip": "https://out.example/m.zip"}
    assert task.total_tokens == 30000


def test_it_reads_numeric_strings_and_rejects_non_integers_for_counts():
    task = ArkTask.from_json(
        {"id": "cgt-1", "duration": "10", "frames": 12.5, "seed": True, "total_tokens": "x"}
    )

    assert task.duration == 10
    assert task.frames is None
    assert task.seed is None
    assert task.total_tokens is None


def test_it_keeps_a_callback_url_when_echoed():
    task = ArkTask.from_json({"id": "cgt-1", "callback_url": "https://dash.example/hooks/ark/s/"})

    assert task.callback_url == "https://dash.example/hooks/ark/s/"


@pytest.mark.parametrize("bad", [None, "cgt-1", ["cgt-1"], {}, {"id": ""}, {"id": 12}, {"status": "queued"}])
def test_it_raises_a_protocol_error_for_a_malformed_task(bad):
    with pytest.raises(ArkProtocolError) as caught:
        ArkTask.from_json(bad)

    assert caught.value.retryable is False


def test_it_can_hash_and_compare_tasks_despite_the_raw_dict():
    first = ArkTask.from_json(dict(VIDEO_SUCCEEDED))
    second = ArkTask.from_json(dict(VIDEO_SUCCEEDED))

    assert first == second
    assert len({first, second}) == 1


def test_it_builds_a_page_and_falls_back_to_the_item_count_for_total():
    page = TaskPage.from_json({"items": [{"id": "cgt-a"}, {"id": "cgt-b"}]})

    assert page.total == 2
    assert [task.id for task in page.items] == ["cgt-a", "cgt-b"]


def test_it_reads_an_empty_page():
    page = TaskPage.from_json({"total": 0, "items": None})

    assert page == TaskPage(total=0, items=[])


@pytest.mark.parametrize("bad", [[], "x", {"items": "nope"}, {"items": [{"id": "ok"}, 7]}])
def test_it_raises_a_protocol_error_for_a_malformed_page(bad):
    with pytest.raises(ArkProtocolError):
        TaskPage.from_json(bad)
