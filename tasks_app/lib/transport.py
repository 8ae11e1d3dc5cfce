"""Where outbound HTTP (Ark API calls, output downloads, the gateway's callback relays) is sent.

In production this is the network. Tests route it to the in-process simulator with
`routed_to(sim.transport())`, so the code under test is the code that runs for real.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

_override: httpx.BaseTransport | None = None


def current() -> httpx.BaseTransport | None:
    """The transport to hand to httpx.Client(transport=...): None means the real network."""
    return _override


@contextmanager
def routed_to(test_transport: httpx.BaseTransport) -> Iterator[None]:
    global _override
    previous, _override = _override, test_transport
    try:
        yield
    finally:
        _override = previous
