"""arksim demo data: every status, both kinds, a week of history, tasks that move while you watch."""

from __future__ import annotations

import random
import time
from collections import Counter

import httpx

from arksim import SimClock, Simulator
from arksim.demo import Trickle, random_create_body

from .support import DAY, KEY, START


def _all_tasks(ark: Simulator) -> list[dict]:
    with httpx.Client(transport=ark.transport(), headers={"Authorization": f"Bearer {KEY}"}) as client:
        response = client.get(
            "http://arksim.test/api/v3/contents/generations/tasks", params={"page_size": 500}
        )
    assert response.status_code == 200
    return response.json()["items"]


def test_it_seeds_every_status_of_both_kinds_over_the_last_week() -> None:
    ark = Simulator(api_keys=(KEY,), clock=SimClock(START), list_rate_per_second=None)
    ids = ark.seed_demo(count=60)
    tasks = _all_tasks(ark)
    assert len(ids) == 60 and {task["id"] for task in tasks} == set(ids)
    assert set(Counter(task["status"] for task in tasks)) == {
        "queued", "running", "cancelled", "succeeded", "failed", "expired"
    }  # fmt: skip
    assert {"fileformat" in task for task in tasks} == {True, False}  # 3D and video
    assert len({task["model"] for task in tasks}) >= 3
    assert all(START - 6.5 * DAY <= task["created_at"] <= START for task in tasks)
    assert max(START - task["created_at"] for task in tasks) > 3 * DAY
    assert all(task["error"]["code"] for task in tasks if task["status"] == "failed")
    assert all("resolution" in task for task in tasks if task["status"] == "expired")
    assert all(START - task["updated_at"] < DAY for task in tasks if task["status"] == "cancelled")


def test_it_seeds_active_tasks_that_progress() -> None:
    ark = Simulator(api_keys=(KEY,), clock=SimClock(START), list_rate_per_second=None)
    ark.seed_demo(count=30)
    before = {
        task["id"]: task["status"] for task in _all_tasks(ark) if task["status"] in ("queued", "running")
    }
    ark.advance(3600)
    after = {task["id"]: task["status"] for task in _all_tasks(ark)}
    assert before and all(after[task_id] in ("succeeded", "failed") for task_id in before)


def test_it_makes_random_bodies_that_the_api_accepts() -> None:
    ark = Simulator(api_keys=(KEY,), clock=SimClock(START), max_queued_per_key=None)
    rng = random.Random(1)
    ids = [ark.create_task(random_create_body(rng)) for _ in range(80)]
    kinds = Counter("fileformat" in ark.task_json(task_id) for task_id in ids)
    assert kinds[True] and kinds[False]


def test_it_trickles_new_tasks_until_stopped() -> None:
    ark = Simulator(api_keys=(KEY,), clock=SimClock(START))
    trickle = Trickle(ark, 0.02, rng_seed=3).start()
    deadline = time.monotonic() + 5
    while len(_all_tasks_unlimited(ark)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    trickle.stop()
    count = len(_all_tasks_unlimited(ark))
    time.sleep(0.1)
    assert count >= 3 and len(_all_tasks_unlimited(ark)) == count


def _all_tasks_unlimited(ark: Simulator) -> list[dict]:
    return ark.list_tasks(KEY, page_size=500)["items"]


def test_it_seeds_tasks_to_cancel_models_in_every_3d_format_and_mostly_live_outputs() -> None:
    ark = Simulator(api_keys=(KEY,), clock=SimClock(START), list_rate_per_second=None)
    ark.seed_demo(count=60)
    tasks = _all_tasks(ark)
    ark.advance(300)  # five minutes on, some tasks can still be cancelled
    still_queued = [task for task in _all_tasks(ark) if task["status"] == "queued"]
    assert len(still_queued) >= 3
    succeeded_3d = {task["fileformat"] for task in tasks if task["status"] == "succeeded" and "fileformat" in task
                    and START - task["updated_at"] < 20 * 3600}  # fmt: skip
    assert succeeded_3d >= {"glb", "obj", "usd", "usdz"}
    succeeded = [task for task in tasks if task["status"] == "succeeded"]
    live = [task for task in succeeded if START - task["updated_at"] < DAY]
    assert len(live) >= 0.7 * len(succeeded) and len(live) < len(succeeded)  # a few lost, as an example
