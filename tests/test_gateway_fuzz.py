"""Property-based fuzzing of the gateway's parameters, paths, headers and bodies: Ark-shaped 4xx, no 500.

The Django test client re-raises any exception a view lets through, so "no exception" is
checked as well as "no 5xx"; every refusal must be Ark's error envelope.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from tasks_app.models import Membership, MembershipRole

from .gateway_support import make_token
from .test_fuzz_views import HOSTILE, encode, fuzz, params, raw_query, values

pytestmark = pytest.mark.django_db

LIST_PARAMS = ["page_num", "page_size", "filter.status", "filter.task_ids", "filter.model", "filter.service_tier"]
TASKS = "/api/v3/contents/generations/tasks"

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.sampled_from(HOSTILE),
              st.text(max_size=30)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=12), children, max_size=4)),
    max_leaves=12,
)
content_items = st.one_of(
    st.just([{"type": "text", "text": "a cat"}]),
    st.lists(st.dictionaries(st.sampled_from(["type", "text", "image_url", "role"]), json_values, max_size=3),
             max_size=3),
    json_values,
)
bodies = st.one_of(
    st.fixed_dictionaries(
        {"model": st.one_of(st.sampled_from(["doubao-seedance-1-0-pro-250528", "ep-20250528154802-pro01",
                                             "doubao-seed3d-1-0-250928"]), values, json_values),
         "content": content_items},
        optional={"callback_url": st.one_of(values, json_values), "ratio": json_values,
                  "duration": json_values, "fileformat": json_values, "return_last_frame": json_values,
                  "service_tier": json_values, "execution_expires_after": json_values},
    ).map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
)


@pytest.fixture
def caller(sim, mirror, account, django_user_model, settings) -> Client:
    settings.ARKDASH_GATEWAY_CALLBACK_ALLOWED_HOSTS = ["hooks.example"]
    # A made-up name no DNS knows: opted in like the simulator's host, so it is not resolved.
    settings.ARKDASH_GATEWAY_CALLBACK_PRIVATE_HOSTS = ["hooks.example"]
    user = django_user_model.objects.create_user("fuzzer")
    Membership.objects.create(user=user, account=account, role=MembershipRole.OPERATOR)
    for status in ("queued", "running", "succeeded", "failed"):
        mirror(sim.add_task(status=status))
    token = make_token(user, [account], requests_per_minute=100_000)
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def assert_ark_answer(response) -> None:
    assert response.status_code < 500, response.content[:300]
    if response.status_code >= 400:
        error = json.loads(response.content)["error"]
        assert set(error) == {"code", "message", "param", "type"}


@fuzz(300)
@given(pairs=params(LIST_PARAMS))
def test_it_answers_any_list_parameters_without_a_500(caller, pairs):
    assert_ark_answer(caller.get(f"{TASKS}?{encode(pairs)}"))


@fuzz(100)
@given(query=raw_query)
def test_it_answers_raw_query_bytes_without_a_500(caller, query):
    assert_ark_answer(caller.get(f"{TASKS}?{query}"))


@fuzz(200)
@given(task_id=st.one_of(st.sampled_from(HOSTILE), st.text(max_size=80)), method=st.sampled_from(["get", "delete"]))
def test_it_answers_any_task_id_without_a_500(caller, task_id, method):
    path = f"{TASKS}/{quote(task_id, safe='')}"
    response = getattr(caller, method)(path)
    if response.status_code == 404 and not response.content.startswith(b"{"):
        return  # the path itself did not route (an empty or slash-only id): Django's 404
    assert_ark_answer(response)


@fuzz(300)
@given(body=bodies, account_header=st.one_of(st.none(), values))
def test_it_answers_any_create_body_without_a_500(caller, body, account_header):
    headers = {} if account_header is None else {"HTTP_X_ARKDASH_ACCOUNT": account_header}
    assert_ark_answer(caller.post(TASKS, data=body, content_type="application/json", **headers))


@fuzz(100)
@given(authorization=st.one_of(st.sampled_from(HOSTILE), st.text(max_size=80), values.map("Bearer adk-{}".format)))
def test_it_answers_any_authorization_header_with_401(db, authorization):
    response = Client().get(TASKS, HTTP_AUTHORIZATION=authorization)
    assert response.status_code == 401
    assert_ark_answer(response)


@fuzz(200)
@given(signed=st.one_of(st.sampled_from(HOSTILE), st.text(max_size=120), st.from_regex(r"\A[0-9]{1,12}\.[0-9]{1,12}~[A-Za-z0-9_-]{0,50}\Z")))
def test_it_refuses_any_made_up_output_link_without_a_500(db, signed):
    response = Client().get(f"/gateway/outputs/{quote(signed, safe='')}")
    assert response.status_code in (403, 404), response.status_code
