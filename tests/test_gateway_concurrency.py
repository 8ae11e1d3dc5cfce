"""Many scripts listing at once through the gateway spend nothing of the account's list budget."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.core.handlers.wsgi import WSGIHandler
from volcenginesdkarkruntime import Ark

from tasks_app.models import Membership, MembershipRole

from .gateway_support import GATEWAY, make_token

# Threads use their own database connections: the data must be committed.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

CLIENTS = 100
# In flight at once: the test database is shared with other runs (max_connections 100).
IN_FLIGHT = 16


def test_100_sdk_clients_listing_cost_0_upstream_list_calls(sim, mirror, account, django_user_model):
    user = django_user_model.objects.create_user("script")
    Membership.objects.create(user=user, account=account, role=MembershipRole.OPERATOR)
    start = int(sim.clock.now())
    ids = [sim.add_task(status="succeeded", created_at=start - 100 - n) for n in range(30)]
    for task_id in ids:
        mirror(task_id)
    token = make_token(user, [account], requests_per_minute=100_000)
    app = WSGIHandler()
    sim.reset_stats()
    seen: list[list[str]] = []
    lock = threading.Lock()

    def one_script(_n: int) -> None:
        http = httpx.Client(transport=httpx.WSGITransport(app=app))
        client = Ark(base_url=GATEWAY, api_key=token, max_retries=0, timeout=30, http_client=http)
        got = []
        for page_num in (1, 2, 3):
            page = client.content_generation.tasks.list(page_num=page_num, page_size=10, status="succeeded")
            assert page.total == 30
            got += [item.id for item in page.items]
        with lock:
            seen.append(got)

    with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
        list(pool.map(one_script, range(CLIENTS)))

    assert len(seen) == CLIENTS and all(got == ids for got in seen)
    assert sim.stats()["list"] == 0 and sim.stats()["get"] == 0
