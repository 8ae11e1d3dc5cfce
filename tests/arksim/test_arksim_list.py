"""arksim: GET /contents/generations/tasks paging, filters and parameter errors."""

from __future__ import annotations

import httpx
import pytest

from arksim import Simulator

from .support import START, TASKS


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def _seed(ark: Simulator, count: int) -> list[str]:
    """`count` tasks one minute apart, newest last."""
    return [ark.add_task(status="succeeded", created_at=START - 3600 + 60 * n) for n in range(count)]


def test_it_lists_newest_first_ten_per_page_by_default(ark: Simulator, api: httpx.Client) -> None:
    ids = _seed(ark, 12)
    response = api.get(TASKS)
    assert response.json()["total"] == 12
    assert _ids(response) == ids[::-1][:10]


def test_it_pages_without_gaps_or_repeats(ark: Simulator, api: httpx.Client) -> None:
    ids = _seed(ark, 25)
    pages = [api.get(TASKS, params={"page_num": n, "page_size": 10}) for n in (1, 2, 3, 4)]
    assert [len(_ids(page)) for page in pages] == [10, 10, 5, 0]
    assert {page.json()["total"] for page in pages} == {25}
    assert sum((_ids(page) for page in pages), []) == ids[::-1]


@pytest.mark.parametrize("size", [1, 500])
def test_it_accepts_page_sizes_from_1_to_500(ark: Simulator, api: httpx.Client, size: int) -> None:
    _seed(ark, 3)
    assert len(_ids(api.get(TASKS, params={"page_size": size}))) == min(size, 3)


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"page_size": 0}, "page_size"),
        ({"page_size": 501}, "page_size"),
        ({"page_size": "abc"}, "page_size"),
        ({"page_size": "-1"}, "page_size"),
        ({"page_size": "2.5"}, "page_size"),
        ({"page_num": 0}, "page_num"),
        ({"page_num": "x"}, "page_num"),
        ({"filter.status": "done"}, "filter.status"),
        ({"filter.service_tier": "gold"}, "filter.service_tier"),
    ],
)
def test_it_rejects_bad_parameters_with_400_naming_them(
    api: httpx.Client, params: dict[str, object], param: str
) -> None:
    response = api.get(TASKS, params=params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"], error["type"]) == ("InvalidParameter", param, "BadRequest")


@pytest.mark.parametrize("status", ["queued", "running", "cancelled", "succeeded", "failed", "expired"])
def test_it_filters_by_status(ark: Simulator, api: httpx.Client, status: str) -> None:
    by_status = {
        s: ark.add_task(status=s)
        for s in ("queued", "running", "cancelled", "succeeded", "failed", "expired")
    }
    response = api.get(TASKS, params={"filter.status": status})
    assert _ids(response) == [by_status[status]]
    assert response.json()["items"][0]["status"] == status


def test_it_filters_by_repeated_task_ids(ark: Simulator, api: httpx.Client) -> None:
    ids = _seed(ark, 5)
    wanted = [ids[0], ids[3], "cgt-20200101000000-nope0"]
    response = api.get(TASKS, params=[("filter.task_ids", task_id) for task_id in wanted])
    assert response.json()["total"] == 2
    assert _ids(response) == [ids[3], ids[0]]
    assert _ids(api.get(TASKS, params={"filter.task_ids": ids[1]})) == [ids[1]]


def test_it_filters_by_the_endpoint_the_task_was_created_with(ark: Simulator, api: httpx.Client) -> None:
    body = {"content": [{"type": "text", "text": "a cat"}]}
    via_endpoint = ark.create_task({**body, "model": "ep-20250528154802-pro01"})
    via_name = ark.create_task({**body, "model": "doubao-seedance-1-0-pro-250528"})
    assert _ids(api.get(TASKS, params={"filter.model": "ep-20250528154802-pro01"})) == [via_endpoint]
    assert ark.task_json(via_endpoint)["model"] == ark.task_json(via_name)["model"]


@pytest.mark.parametrize("model", ["doubao-seedance-1-0-pro-250528", "ep-20991231000000-zzzzz"])
def test_it_takes_only_a_known_endpoint_id_as_filter_model(ark: Simulator, api: httpx.Client, model: str) -> None:
    ark.create_task({"content": [{"type": "text", "text": "a cat"}], "model": "doubao-seedance-1-0-pro-250528"})
    response = api.get(TASKS, params={"filter.model": model})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "InvalidEndpointOrModel.NotFound"


def test_it_filters_by_service_tier_and_combines_filters(ark: Simulator, api: httpx.Client) -> None:
    flex_done = ark.add_task(status="succeeded", service_tier="flex")
    ark.add_task(status="queued", service_tier="flex")
    ark.add_task(status="succeeded")
    assert len(_ids(api.get(TASKS, params={"filter.service_tier": "flex"}))) == 2
    both = api.get(TASKS, params={"filter.service_tier": "flex", "filter.status": "succeeded"})
    assert _ids(both) == [flex_done]


def test_it_counts_total_over_all_pages_of_the_filter(ark: Simulator, api: httpx.Client) -> None:
    _seed(ark, 7)
    ark.add_task(status="failed")
    response = api.get(TASKS, params={"filter.status": "succeeded", "page_size": 2, "page_num": 2})
    assert response.json()["total"] == 7 and len(_ids(response)) == 2
