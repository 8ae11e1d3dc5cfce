from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tasks_app.lib.downloads import (
    FetchError,
    FetchRefused,
    PeerNotPublic,
    SourceGone,
    UrlPolicy,
    guarded_post,
    open_source,
    redact_url,
)

ARK_HOSTS = ["*.volces.com"]
SIM_HOSTS = ["arksim.test"]  # the in-process simulator: opted in, like ARKDASH_SIMULATOR_URL does
GLOBAL_IP = "93.184.216.34"


def public_resolver(host: str, port: int) -> list[str]:
    return [GLOBAL_IP]


def private_resolver(host: str, port: int) -> list[str]:
    return [GLOBAL_IP, "10.1.2.3"]


def failing_resolver(host: str, port: int) -> list[str]:
    raise AssertionError("exact hosts must not need DNS")


def body_of(url: str, *, transport: httpx.BaseTransport, policy: UrlPolicy | None = None, **kwargs) -> bytes:
    policy = policy or UrlPolicy(allowed_hosts=ARK_HOSTS, private_hosts=SIM_HOSTS)
    with open_source(url, policy=policy, transport=transport, resolver=public_resolver, **kwargs) as source:
        return b"".join(source.iter_chunks())


def answer(status: int = 200, body: bytes = b"data", headers: dict | None = None) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, content=body, headers=headers or {}))


@pytest.mark.parametrize(
    "url, reason",
    [
        ("ftp://arksim.test/a.mp4", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("http://user:pw@arksim.test/a.mp4", "credentials"),
        ("http://evil.example/a.mp4", "not in ARKDASH_ARCHIVE_ALLOWED_HOSTS"),
        ("http://volces.com.evil.example/a.mp4", "not in ARKDASH_ARCHIVE_ALLOWED_HOSTS"),
        ("http://10.0.0.1/a.mp4", "not in ARKDASH_ARCHIVE_ALLOWED_HOSTS"),
        ("http://[::1/a.mp4", "invalid URL"),
    ],
)
def test_it_refuses_urls_outside_the_policy(url, reason):
    with pytest.raises(FetchRefused, match=reason):
        body_of(url, transport=answer())


def test_it_fetches_an_opted_in_simulator_host_without_resolving_it():
    policy = UrlPolicy(allowed_hosts=[], private_hosts=["arksim.test"])

    with open_source(
        "http://arksim.test/x.mp4", policy=policy, transport=answer(body=b"video"), resolver=failing_resolver
    ) as source:
        assert b"".join(source.iter_chunks()) == b"video"
        assert source.content_length == 5


def test_it_fetches_a_wildcard_host_that_resolves_to_public_addresses():
    assert body_of("https://a.b.tos-cn-beijing.volces.com/x.mp4?sig=1", transport=answer(body=b"ok")) == b"ok"


def test_it_refuses_a_wildcard_host_that_resolves_to_a_private_address():
    policy = UrlPolicy(allowed_hosts=["*.volces.com"])

    with pytest.raises(FetchRefused, match="non-public address 10.1.2.3"):
        with open_source(
            "https://x.volces.com/a", policy=policy, transport=answer(), resolver=private_resolver
        ):
            pass


def test_it_lets_private_addresses_through_when_explicitly_allowed():
    policy = UrlPolicy(allowed_hosts=["*.volces.com"], private_hosts=["x.volces.com:443"])

    with open_source(
        "https://x.volces.com/a", policy=policy, transport=answer(), resolver=private_resolver
    ) as s:
        assert b"".join(s.iter_chunks()) == b"data"


def test_it_reads_the_policy_from_settings(settings):
    settings.ARKDASH_ARCHIVE_ALLOWED_HOSTS = ["only.example"]
    settings.ARKDASH_ARCHIVE_PRIVATE_HOSTS = []

    with pytest.raises(FetchRefused):
        with open_source("http://arksim.test/a", transport=answer()):
            pass


@pytest.mark.parametrize("status", [403, 404, 410])
def test_it_reports_an_expired_url_as_gone(status):
    with pytest.raises(SourceGone) as caught:
        body_of("http://arksim.test/a.mp4?sig=secret", transport=answer(status))

    assert caught.value.retryable is False
    assert caught.value.status == status
    assert "secret" not in str(caught.value)


def test_it_reports_429_as_retryable_with_its_retry_after():
    with pytest.raises(FetchError) as caught:
        body_of("http://arksim.test/a", transport=answer(429, headers={"Retry-After": "7"}))

    assert caught.value.retryable is True
    assert caught.value.retry_after == 7.0


def test_it_reports_500_as_retryable():
    with pytest.raises(FetchError) as caught:
        body_of("http://arksim.test/a", transport=answer(500))

    assert caught.value.retryable is True
    assert not isinstance(caught.value, SourceGone)


def test_it_turns_transport_errors_into_fetch_errors():
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(FetchError, match="could not connect"):
        body_of("http://arksim.test/a", transport=httpx.MockTransport(broken))


def test_it_refuses_content_encoding_it_did_not_ask_for():
    gzipped = httpx.MockTransport(
        lambda request: httpx.Response(
            200, content=iter([b"\x1f\x8b..."]), headers={"Content-Encoding": "gzip"}
        )
    )

    with pytest.raises(FetchError, match="Content-Encoding"):
        body_of("http://arksim.test/a", transport=gzipped)


def test_it_follows_redirects_and_checks_every_hop():
    def redirect(request: httpx.Request) -> httpx.Response:
        if request.url.host == "arksim.test":
            return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/meta-data"})
        return httpx.Response(200, content=b"metadata")

    with pytest.raises(FetchRefused, match="169.254.169.254"):
        body_of("http://arksim.test/a", transport=httpx.MockTransport(redirect))


def test_it_follows_a_redirect_within_allowed_hosts():
    def redirect(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/a":
            return httpx.Response(307, headers={"Location": "/b"})
        return httpx.Response(200, content=b"moved")

    assert body_of("http://arksim.test/a", transport=httpx.MockTransport(redirect)) == b"moved"


def test_it_stops_after_a_few_redirects():
    loop = httpx.MockTransport(lambda request: httpx.Response(302, headers={"Location": "/again"}))

    with pytest.raises(FetchError, match="too many redirects"):
        body_of("http://arksim.test/a", transport=loop)


def test_it_asks_for_the_identity_encoding():
    seen = {}

    def record(request: httpx.Request) -> httpx.Response:
        seen.update(request.headers)
        return httpx.Response(200, content=b"x")

    body_of("http://arksim.test/a", transport=httpx.MockTransport(record))

    assert seen["accept-encoding"] == "identity"


def test_it_redacts_the_query_of_presigned_urls():
    assert (
        redact_url("https://b.volces.com:8443/o/v.mp4?X-Tos-Signature=abc")
        == "https://b.volces.com:8443/o/v.mp4"
    )


class _Handler(BaseHTTPRequestHandler):
    delay = 0.0
    seen: list[str]

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.seen.append(self.path)
        time.sleep(self.delay)
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    do_POST = do_GET  # noqa: N815 - guarded_post's tests

    def log_message(self, *args) -> None:
        pass


@contextmanager
def local_server(delay: float = 0.0, seen: list[str] | None = None) -> Iterator[int]:
    handler = type("Handler", (_Handler,), {"delay": delay, "seen": [] if seen is None else seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_it_refuses_when_the_connected_address_is_private_despite_dns():
    # DNS said public (rebinding), the socket went to loopback: refused before the body is read.
    policy = UrlPolicy(allowed_hosts=["*"])
    with local_server() as port:
        with pytest.raises(FetchRefused, match="connected to the non-public address 127.0.0.1"):
            with open_source(
                f"http://127.0.0.1:{port}/a",
                policy=policy,
                resolver=public_resolver,
                transport=httpx.HTTPTransport(),
            ):
                pass


def test_it_downloads_from_a_loopback_server_opted_in_with_its_port():
    with local_server() as port:
        policy = UrlPolicy(allowed_hosts=[], private_hosts=[f"127.0.0.1:{port}"])
        with open_source(f"http://127.0.0.1:{port}/a", policy=policy) as source:
            assert b"".join(source.iter_chunks()) == b"hello"


def test_it_gives_up_on_a_server_that_does_not_answer_in_time(settings):
    settings.ARKDASH_ARCHIVE_READ_TIMEOUT_SECONDS = 0.2
    with local_server(delay=2.0) as port:
        policy = UrlPolicy(allowed_hosts=[], private_hosts=[f"127.0.0.1:{port}"])
        started = time.monotonic()
        with pytest.raises(FetchError, match="timed out"):
            with open_source(f"http://127.0.0.1:{port}/a", policy=policy):
                pass
        assert time.monotonic() - started < 1.5


# --- Loopback and private networks (issue: SSRF through loopback) -------------------------


def test_it_refuses_loopback_with_the_default_settings_and_never_connects():
    seen: list[str] = []
    with local_server(seen=seen) as port:
        for url in (f"http://127.0.0.1:{port}/healthz", f"http://localhost:{port}/healthz"):
            with pytest.raises(FetchRefused):
                with open_source(url):
                    pass
    assert seen == []


def test_it_refuses_a_redirect_from_an_allowed_host_to_loopback_with_the_default_settings():
    def redirect(request: httpx.Request) -> httpx.Response:
        if request.url.host.endswith(".volces.com"):
            return httpx.Response(302, headers={"Location": "http://127.0.0.1:8000/healthz"})
        return httpx.Response(200, content=b'{"accounts": ["secret project"]}')

    with pytest.raises(FetchRefused, match="127.0.0.1"):
        with open_source("https://out.tos-cn-beijing.volces.com/v.mp4", transport=httpx.MockTransport(redirect),
                         resolver=public_resolver):
            pass


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.8.9.10", "::1", "10.0.0.7", "172.16.3.4", "192.168.1.1", "169.254.169.254", "fe80::1",
     "0.0.0.0", "::", "::ffff:127.0.0.1", "fc00::1", "100.64.0.1", "2002:7f00:1::1"],
)
def test_it_refuses_a_host_that_resolves_to_a_non_public_address(address):
    policy = UrlPolicy(allowed_hosts=["*"])

    with pytest.raises(FetchRefused, match="non-public address"):
        policy.check("https://cdn.example/v.mp4", resolver=lambda host, port: [address])


def test_it_refuses_a_listed_address_literal_that_is_not_opted_in():
    # An exact entry was trusted wherever it pointed, on any port: no longer.
    policy = UrlPolicy(allowed_hosts=["127.0.0.1", "localhost"])

    for url in ("http://127.0.0.1:22/", "http://localhost:8000/healthz"):
        with pytest.raises(FetchRefused, match="non-public address"):
            policy.check(url)


def test_it_opts_in_a_private_host_on_its_port_only():
    policy = UrlPolicy(allowed_hosts=[], private_hosts=["127.0.0.1:8765"])

    assert policy.check("http://127.0.0.1:8765/_outputs/x.mp4") is False
    with pytest.raises(FetchRefused):
        policy.check("http://127.0.0.1:22/")


def test_it_refuses_when_dns_changes_its_answer_before_the_connection():
    # Public to the check, loopback to the connection (rebinding): never connected to.
    answers = iter([[GLOBAL_IP]])
    seen: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        return next(answers, ["127.0.0.1"])

    with local_server(seen=seen) as port:
        with pytest.raises(FetchRefused, match="non-public address 127.0.0.1"):
            with open_source(f"http://cdn.volces.com:{port}/a", policy=UrlPolicy(allowed_hosts=ARK_HOSTS),
                             resolver=rebinding):
                pass
    assert seen == []


def test_it_counts_a_refused_url_as_final():
    with pytest.raises(FetchRefused) as caught:
        UrlPolicy(allowed_hosts=ARK_HOSTS).check("https://evil.example/")
    assert caught.value.retryable is False


# --- guarded_post: alert webhooks and the gateway's callback relay ---------------------------------
HOOKS = UrlPolicy(allowed_hosts=["hooks.example.com"])


def test_a_guarded_post_refuses_a_url_before_sending_anything():
    def must_not_send(request: httpx.Request) -> httpx.Response:
        raise AssertionError("sent a request to a refused URL")

    with pytest.raises(FetchRefused, match="not in ARKDASH_ARCHIVE_ALLOWED_HOSTS"):
        guarded_post("https://elsewhere.example/hook", policy=HOOKS, timeout=5, headers={},
                     resolver=public_resolver, transport=httpx.MockTransport(must_not_send))


def test_a_guarded_post_keeps_the_urls_query_and_follows_no_redirect():
    seen = []

    def hook(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.content, request.headers["user-agent"]))
        return httpx.Response(302, headers={"location": "http://10.0.0.1/"})

    with guarded_post("https://hooks.example.com/send?access_token=t", policy=HOOKS, timeout=5,
                      headers={"User-Agent": "test/1"}, content=b"{}", params={"sign": "s"},
                      resolver=public_resolver, transport=httpx.MockTransport(hook)) as response:
        assert response.status_code == 302
    assert seen == [("https://hooks.example.com/send?access_token=t&sign=s", b"{}", "test/1")]


def test_a_guarded_post_refuses_when_the_connected_address_is_private_despite_dns():
    with local_server() as port:
        posting = guarded_post(f"http://127.0.0.1:{port}/hook", policy=UrlPolicy(allowed_hosts=["*"]),
                               timeout=5, headers={}, content=b"{}", resolver=public_resolver,
                               transport=httpx.HTTPTransport())
        with pytest.raises(PeerNotPublic, match="connected to a non-public address"), posting:
            pass
