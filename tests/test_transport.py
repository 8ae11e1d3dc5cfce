"""tasks_app/lib/transport.py: where outbound HTTP goes, the network or a transport a test routes it to."""

from __future__ import annotations

import httpx
import pytest

from tasks_app.lib import transport
from tasks_app.lib.downloads import open_source


def _answering(text: str) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(200, text=text))


def _get(url: str = "http://upstream.test/") -> str:
    with httpx.Client(transport=transport.current()) as client:
        return client.get(url).text


def test_it_sends_to_the_network_unless_routed():
    assert transport.current() is None


def test_it_routes_every_client_built_meanwhile_and_restores_the_previous_route():
    outer, inner = _answering("outer"), _answering("inner")
    with transport.routed_to(outer):
        assert _get() == "outer"
        with transport.routed_to(inner):
            assert _get() == "inner"
        assert transport.current() is outer and _get() == "outer"
    assert transport.current() is None


def test_it_restores_the_route_when_the_block_raises():
    with pytest.raises(RuntimeError), transport.routed_to(_answering("routed")):
        raise RuntimeError("the code under test failed")
    assert transport.current() is None


def test_the_downloader_sends_through_the_routed_transport(settings):
    settings.ARKDASH_ARCHIVE_ALLOWED_HOSTS = ["out.example"]
    seen: list[str] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=b"output bytes")

    public = lambda host, port: ["93.184.216.34"]  # noqa: E731
    with transport.routed_to(httpx.MockTransport(upstream)), open_source("https://out.example/v.mp4",
                                                                          resolver=public) as source:
        assert b"".join(source.iter_chunks()) == b"output bytes"
    assert seen == ["https://out.example/v.mp4"]
