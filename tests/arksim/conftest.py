from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from arksim import SimClock, Simulator
from arksim.server import ServerHandle

from .support import KEY, OTHER_KEY, START, api_client


@pytest.fixture
def ark() -> Simulator:
    """A simulator on a frozen clock at START, two keys, no list budget."""
    return Simulator(api_keys=(KEY, OTHER_KEY), list_rate_per_second=None, clock=SimClock(START))


@pytest.fixture
def api(ark: Simulator) -> Iterator[httpx.Client]:
    with api_client(ark) as client:
        yield client


@pytest.fixture
def server(ark: Simulator) -> Iterator[ServerHandle]:
    handle = ark.serve(realtime=False)  # tests move the clock through /_sim/clock
    yield handle
    handle.shutdown()
