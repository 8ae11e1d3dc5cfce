from __future__ import annotations

import pytest

from .services import IN_CI, postgres_available, redis_available


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("postgres") and not postgres_available():
            _missing(item, "PostgreSQL at 127.0.0.1:5432")
        if item.get_closest_marker("redis") and not redis_available():
            _missing(item, "Redis at 127.0.0.1:6379")


def _missing(item: pytest.Item, what: str) -> None:
    if IN_CI:
        # Never skip in CI: a missing service must turn the build red.
        item.add_marker(pytest.mark.usefixtures("_fail_missing_service"))
        item.user_properties.append(("missing_service", what))
    else:
        item.add_marker(pytest.mark.skip(reason=f"{what} is not running (would fail under CI=true)"))


@pytest.fixture
def _fail_missing_service(request: pytest.FixtureRequest) -> None:
    missing = dict(request.node.user_properties).get("missing_service")
    pytest.fail(f"{missing} is required under CI=true but is not reachable")


SIM_API_KEY = "test-key"
SIM_BASE_URL = "http://arksim.test"


@pytest.fixture
def sim():
    """The Ark simulator, in-process; every outbound call of the app is routed to it."""
    from arksim import Simulator
    from tasks_app import outbound

    simulator = Simulator(api_keys=(SIM_API_KEY,), public_base_url=SIM_BASE_URL, list_rate_per_second=None)
    with outbound.routed_to(simulator.transport()):
        yield simulator


@pytest.fixture
def account(db):
    """An Account whose key and base URL point at the `sim` fixture."""
    from tasks_app.models import Account

    account = Account(name="team", base_url=f"{SIM_BASE_URL}/api/v3")
    account.set_api_key(SIM_API_KEY)
    account.save()
    return account
