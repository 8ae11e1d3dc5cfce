"""arksim: DELETE follows Ark's state table row by row, and cancelled tasks vanish after 24 h."""

from __future__ import annotations

import httpx
import pytest

from arksim import Simulator

from .support import DAY, START, TASKS


def test_it_cancels_a_queued_task(ark: Simulator, api: httpx.Client) -> None:
    task_id = ark.add_task(status="queued", created_at=START - 2)
    response = api.delete(f"{TASKS}/{task_id}")
    assert (response.status_code, response.json()) == (200, {})
    task = api.get(f"{TASKS}/{task_id}").json()
    assert (task["status"], task["updated_at"]) == ("cancelled", START)
    ark.advance(3600)  # a cancelled task never starts running
    assert ark.task_json(task_id)["status"] == "cancelled"


@pytest.mark.parametrize("status", ["succeeded", "failed", "expired"])
def test_it_deletes_the_record_of_a_finished_task(ark: Simulator, api: httpx.Client, status: str) -> None:
    task_id = ark.add_task(status=status)
    response = api.delete(f"{TASKS}/{task_id}")
    assert (response.status_code, response.json()) == (200, {})
    assert api.get(f"{TASKS}/{task_id}").status_code == 404
    assert api.get(TASKS).json()["total"] == 0
    assert api.delete(f"{TASKS}/{task_id}").status_code == 404


def test_it_refuses_to_delete_a_running_task_and_says_why(ark: Simulator, api: httpx.Client) -> None:
    task_id = ark.add_task(status="running")
    response = api.delete(f"{TASKS}/{task_id}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "InvalidParameter.TaskStatus"
    assert "running" in error["message"]
    assert ark.task_json(task_id)["status"] == "running"


def test_it_refuses_to_delete_a_cancelled_task_and_says_why(ark: Simulator, api: httpx.Client) -> None:
    task_id = ark.add_task(status="cancelled")
    response = api.delete(f"{TASKS}/{task_id}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "InvalidParameter.TaskStatus"
    assert "cancelled" in error["message"] and "24 hours" in error["message"]
    assert ark.task_json(task_id)["status"] == "cancelled"


def test_it_answers_404_for_an_unknown_task(api: httpx.Client) -> None:
    response = api.delete(f"{TASKS}/cgt-20250101000000-abcde")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFound.Task"


def test_it_answers_404_for_a_task_older_than_the_window(ark: Simulator, api: httpx.Client) -> None:
    task_id = ark.add_task(status="succeeded", created_at=START - 7 * DAY - 1)
    assert api.delete(f"{TASKS}/{task_id}").status_code == 404


def test_it_forgets_a_cancelled_task_24_hours_after_the_cancel(ark: Simulator, api: httpx.Client) -> None:
    task_id = ark.add_task(status="queued")
    ark.advance(1)
    api.delete(f"{TASKS}/{task_id}")
    ark.advance(DAY - 1)
    assert api.get(f"{TASKS}/{task_id}").json()["status"] == "cancelled"
    assert api.get(TASKS, params={"filter.status": "cancelled"}).json()["total"] == 1
    ark.advance(1)
    assert api.get(f"{TASKS}/{task_id}").status_code == 404
    assert api.get(TASKS, params={"filter.status": "cancelled"}).json()["total"] == 0
