"""arksim: the answers Ark's documents leave open, each selectable (order, limits, refusals, keys, window)."""

from __future__ import annotations

import httpx
import pytest

from arksim import SimClock, Simulator
from arksim.cli import add_arguments

from .support import KEY, OTHER_KEY, START, TASKS, api_client


def _sim(**options) -> Simulator:
    return Simulator(api_keys=(KEY, OTHER_KEY), list_rate_per_second=None, clock=SimClock(START), **options)


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_it_lists_newest_or_oldest_first_as_configured() -> None:
    for order, expect_reversed in (("newest", True), ("oldest", False)):
        ark = _sim(list_order=order)
        ids = [ark.add_task(status="succeeded", created_at=START - 100 + n) for n in range(3)]
        with api_client(ark) as api:
            assert _ids(api.get(TASKS)) == (ids[::-1] if expect_reversed else ids)


def test_it_shuffles_the_list_on_every_call() -> None:
    ark = _sim(list_order="shuffled")
    ids = {ark.add_task(status="succeeded", created_at=START - 1000 + n) for n in range(30)}
    with api_client(ark) as api:
        orders = {tuple(_ids(api.get(TASKS, params={"page_size": 30}))) for _ in range(5)}
    assert all(set(order) == ids for order in orders)
    assert len(orders) > 1


def test_it_refuses_too_many_task_ids_with_400_invalid_parameter() -> None:
    ark = _sim(max_task_ids=3)
    ids = [ark.add_task(status="running", created_at=START - 10 - n) for n in range(4)]
    with api_client(ark) as api:
        assert len(_ids(api.get(TASKS, params=[("filter.task_ids", i) for i in ids[:3]]))) == 3
        refused = api.get(TASKS, params=[("filter.task_ids", i) for i in ids])
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "InvalidParameter"
    assert refused.json()["error"]["param"] == "filter.task_ids"


def test_it_answers_414_to_a_request_line_longer_than_its_limit() -> None:
    ark = _sim(max_request_line=300)
    ids = [ark.add_task(status="running", created_at=START - 10 - n) for n in range(20)]
    with api_client(ark) as api:
        assert api.get(TASKS, params=[("filter.task_ids", i) for i in ids[:2]]).status_code == 200
        refused = api.get(TASKS, params=[("filter.task_ids", i) for i in ids])
    assert refused.status_code == 414
    assert refused.json()["error"]["type"] == "URITooLong"


@pytest.mark.parametrize("status", [400, 403, 409])
@pytest.mark.parametrize("task_status", ["running", "cancelled"])
def test_it_refuses_a_delete_with_the_configured_status(status: int, task_status: str) -> None:
    ark = _sim(refused_delete_status=status)
    task_id = ark.add_task(status=task_status, created_at=START - 10)
    with api_client(ark) as api:
        response = api.delete(f"{TASKS}/{task_id}")
    assert response.status_code == status
    assert ark.task_json(task_id)["status"] == task_status


def test_it_repeats_a_refusal_to_a_retried_delete_even_once_the_task_finished() -> None:
    ark = _sim(refused_delete_status=409)
    task_id = ark.add_task(status="running", created_at=START - 5, queue_seconds=0, run_seconds=8)
    with api_client(ark) as api:
        assert api.delete(f"{TASKS}/{task_id}").status_code == 409
        ark.advance(5)
        assert ark.task_json(task_id)["status"] == "succeeded"
        # The SDK retries a 409 within seconds: the retry must not delete the record.
        assert api.delete(f"{TASKS}/{task_id}").status_code == 409
        assert ark.task_json(task_id) is not None
        ark.advance(10)
        assert api.delete(f"{TASKS}/{task_id}").status_code == 200
    assert ark.task_json(task_id) is None


def test_it_lets_grouped_keys_see_the_same_tasks() -> None:
    ark = _sim(key_groups=[[KEY, OTHER_KEY]])
    task_id = ark.add_task(status="queued", api_key=KEY, created_at=START - 10)
    with api_client(ark, OTHER_KEY) as other:
        assert _ids(other.get(TASKS)) == [task_id]
        assert other.get(f"{TASKS}/{task_id}").status_code == 200


def test_it_keeps_ungrouped_keys_apart() -> None:
    ark = _sim()
    ark.add_task(status="queued", api_key=KEY, created_at=START - 10)
    with api_client(ark, OTHER_KEY) as other:
        assert _ids(other.get(TASKS)) == []


def test_it_hides_a_task_in_the_second_it_was_created_when_exact() -> None:
    ark = _sim(exact_window=True)
    with api_client(ark) as api:
        task_id = api.post(TASKS, json={"model": "doubao-seedance-1-0-pro-250528",
                                        "content": [{"type": "text", "text": "a cat"}]}).json()["id"]  # fmt: skip
        assert api.get(f"{TASKS}/{task_id}").status_code == 404
        assert _ids(api.get(TASKS)) == []
        ark.advance(1)
        assert api.get(f"{TASKS}/{task_id}").status_code == 200
        assert _ids(api.get(TASKS)) == [task_id]


def test_it_takes_every_contract_option_on_the_command_line() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = vars(parser.parse_args([
        "--list-order", "shuffled", "--max-task-ids", "50", "--max-request-line", "4096",
        "--refused-delete-status", "409", "--key-group", "a,b",
    ]))  # fmt: skip
    assert options["list_order"] == "shuffled"
    assert (options["max_task_ids"], options["max_request_line"]) == (50, 4096)
    assert options["refused_delete_status"] == 409
    assert options["key_groups"] == [["a", "b"]]
    assert options["same_second_visible"] is False
    with pytest.raises(SystemExit):
        parser.parse_args(["--list-order", "random"])
