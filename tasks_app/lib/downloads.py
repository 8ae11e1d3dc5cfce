"""The one way ArkDash downloads an output URL: allowed hosts only, no private networks.

Output URLs come from Ark responses, so they are remote input: a URL pointing at
an internal address must not turn the archive worker into a proxy into our network
(SSRF). Rules:
- http(s) only, no credentials in the URL;
- the host must match ARKDASH_ARCHIVE_ALLOWED_HOSTS (`*.volces.com`, an exact name, or
  `*` for any host), and every address it resolves to must be public: loopback,
  private, link-local, unspecified and other special addresses are refused. The check
  is made again by the connection itself on the addresses it is about to use (a DNS
  answer that changes in between is refused, not connected to), and once more on the
  address really connected to;
- only an explicit opt-in, ARKDASH_ARCHIVE_PRIVATE_HOSTS (`host:port` entries, and the
  simulator of `make run` and the tests, ARKDASH_SIMULATOR_URL), lets a host be non-public;
- redirects are followed by hand, a few hops at most, each hop checked again;
- every request has connect and read timeouts.

Every failure is a FetchError saying whether retrying can help, so the archive
service decides between "failed, will retry" and "lost" without knowing httpx.

`guarded_post` sends a POST under the same rules (no redirects at all): alert webhooks
and the gateway's callback relay use it with their own allowed hosts.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpcore
import httpx
from django.conf import settings

from tasks_app.ark.errors import parse_retry_after

from . import transport as outbound_transport

MAX_REDIRECTS = 3
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
# The source says the URL is dead: retrying cannot help, the output is lost.
GONE_STATUSES = {403, 404, 410}

Resolver = Callable[[str, int], list[str]]


class FetchError(Exception):
    """A download that did not work. `retryable` says whether trying later can help."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


class FetchRefused(FetchError):
    """The URL is not one we may fetch (scheme, host or address): trying again cannot help."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class PeerNotPublic(FetchRefused):
    """The address really connected to is not public, though the host's addresses were (DNS rebinding)."""

    def __init__(self) -> None:
        super().__init__("connected to a non-public address")


class SourceGone(FetchError):
    """The source answered 403/404/410: a presigned output URL that has expired."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message, retryable=False, status=status)


def redact_url(url: str) -> str:
    """The URL without its query: presigned signatures must not reach logs or pages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _normalise_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _host_allowed(host: str, allowed_hosts: list[str]) -> bool:
    host = _normalise_host(host)
    for entry in allowed_hosts:
        entry = _normalise_host(entry)
        if not entry:
            continue
        if entry == "*" or host == entry:
            return True
        if entry.startswith("*.") and host.endswith(entry[1:]) and host != entry[2:]:
            return True
    return False


def _split_host_port(entry: str) -> tuple[str, int | None]:
    """"host", "host:8765", "[::1]:8765" → (host, port or None)."""
    entry = entry.strip()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return _normalise_host(host), int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    host, colon, port = entry.rpartition(":")
    if colon and port.isdigit() and ":" not in host:
        return _normalise_host(host), int(port)
    return _normalise_host(entry), None


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address carried inside an IPv6 one is judged as itself.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            ip = embedded
    return ip.is_global and not ip.is_multicast


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class UrlPolicy:
    allowed_hosts: list[str]
    # Hosts (`host` or `host:port`) explicitly allowed to be loopback or private: the simulator.
    private_hosts: list[str] = field(default_factory=list)

    @classmethod
    def from_settings(cls) -> UrlPolicy:
        return cls(
            allowed_hosts=list(settings.ARKDASH_ARCHIVE_ALLOWED_HOSTS),  # defaults: arkdash/settings.py
            private_hosts=list(getattr(settings, "ARKDASH_ARCHIVE_PRIVATE_HOSTS", [])),
        )

    def is_private_host(self, host: str, port: int) -> bool:
        host = _normalise_host(host)
        for entry in self.private_hosts:
            entry_host, entry_port = _split_host_port(entry)
            if entry_host == host and entry_port in (None, port):
                return True
        return False

    def public_addresses(self, host: str, port: int, *, resolver: Resolver) -> list[str]:
        """The addresses of host, all of them public, or FetchRefused / FetchError (DNS)."""
        try:
            addresses = resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise FetchError(f"cannot resolve {host!r} ({exc})") from None
        if not addresses:
            raise FetchError(f"cannot resolve {host!r}")
        for address in addresses:
            if not is_public(address):
                raise FetchRefused(
                    f"refused host {host!r}: it resolves to the non-public address {address} "
                    "(only hosts listed in ARKDASH_ARCHIVE_PRIVATE_HOSTS may)"
                )
        return addresses

    def check(self, url: str, *, resolver: Resolver = system_resolver) -> bool:
        """Raise FetchRefused unless url may be fetched; True when the peer must be public."""
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise FetchRefused(f"invalid URL ({exc})") from None
        if parts.scheme not in ("http", "https"):
            raise FetchRefused(f"refused URL scheme {parts.scheme!r}: only http and https")
        if parts.username is not None or parts.password is not None:
            raise FetchRefused("refused URL with credentials in it")
        host = parts.hostname or ""
        if not host:
            raise FetchRefused("refused URL without a host")
        if self.is_private_host(host, port):
            return False
        if not _host_allowed(host, self.allowed_hosts):
            raise FetchRefused(f"refused host {host!r}: not in ARKDASH_ARCHIVE_ALLOWED_HOSTS")
        self.public_addresses(host, port, resolver=resolver)
        return True


class _GuardedNetwork(httpcore.NetworkBackend):
    """Opens connections only to addresses the policy allows, resolved right here.

    httpcore hands the backend the host name; resolving it here, checking every answer
    and connecting to the checked address leaves no gap in which DNS could answer
    differently (rebinding). A refused address is never connected to.
    """

    def __init__(self, policy: UrlPolicy, resolver: Resolver) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if self._policy.is_private_host(host, port):
            addresses = [host]
        else:
            addresses = self._policy.public_addresses(host, port, resolver=self._resolver)
        error: Exception | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise FetchRefused("refused: no unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def guarded_transport(policy: UrlPolicy, resolver: Resolver) -> httpx.HTTPTransport:
    transport = httpx.HTTPTransport(verify=_tls_context())
    # httpx has no argument for a network backend; httpcore's pool has one, so the pool
    # httpx built is replaced by the same pool with ours.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=_tls_context(), network_backend=_GuardedNetwork(policy, resolver)
    )
    return transport


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle is slow: once per process, not once per download.
    return httpx.create_ssl_context()


def _timeout() -> httpx.Timeout:
    return httpx.Timeout(
        connect=float(getattr(settings, "ARKDASH_ARCHIVE_CONNECT_TIMEOUT_SECONDS", 10.0)),
        read=float(getattr(settings, "ARKDASH_ARCHIVE_READ_TIMEOUT_SECONDS", 60.0)),
        write=30.0,
        pool=10.0,
    )


# Body bytes asked of the socket per read on the bulk path (see Source.iter_chunks).
BULK_READ = 1024 * 1024


@dataclass
class Source:
    """An open download: its declared length and type, and its body in pieces."""

    url: str
    content_length: int | None
    content_type: str
    _response: httpx.Response
    read_timeout: float = 60.0

    def iter_chunks(self) -> Iterator[bytes]:
        """The body as it arrives, raw (we ask for identity encoding and refuse others)."""
        if self._response.is_stream_consumed:  # in-memory responses (test transports)
            yield self._response.content
            return
        try:
            yield from self._iter_body()
        except (httpx.TimeoutException, httpcore.TimeoutException) as exc:
            raise FetchError(f"timed out reading {redact_url(self.url)} ({type(exc).__name__})") from None
        except (httpx.HTTPError, httpcore.NetworkError, httpcore.ProtocolError) as exc:
            raise FetchError(f"connection broke while reading {redact_url(self.url)} ({exc})") from None

    def _iter_body(self) -> Iterator[bytes]:
        # h11 parses a body 64 KiB at a time through several layers of Python, costing
        # about as much CPU as the sha256 of those bytes (docs/benchmarks.md compares it
        # with this read). A plain HTTP/1.1 body
        # with a Content-Length has no framing to parse, so once h11 has handed over what
        # it buffered with the headers, the rest is read straight off the connection
        # (httpcore's public network_stream) in 1 MiB reads. The connection is closed
        # afterwards, never reused, so h11 not seeing those bytes does no harm.
        raw = self._response.iter_raw()
        stream = self._response.extensions.get("network_stream")
        framed = "transfer-encoding" in self._response.headers or self._response.http_version != "HTTP/1.1"
        if stream is None or self.content_length is None or framed:
            yield from raw
            return
        received = 0
        for buffered in raw:  # one piece: everything h11 holds after the headers
            received += len(buffered)
            yield buffered
            break
        while received < self.content_length:
            chunk = stream.read(min(BULK_READ, self.content_length - received), timeout=self.read_timeout)
            if not chunk:
                return  # closed early: the caller compares what it got with Content-Length
            received += len(chunk)
            yield chunk


def peer_address(response: httpx.Response) -> str | None:
    stream = response.extensions.get("network_stream")
    if stream is None:  # in-process transports (tests) have no socket
        return None
    peer = stream.get_extra_info("server_addr")
    return str(peer[0]) if peer else None


def _raise_for_status(response: httpx.Response, url: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    where = redact_url(url)
    if status in GONE_STATUSES:
        raise SourceGone(
            f"the output URL answered {status}: it has expired or was removed ({where})", status=status
        )
    if status == 429:
        raise FetchError(
            f"the output host is rate limiting (429) ({where})",
            status=status,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    raise FetchError(
        f"the output host answered {status} ({where})",
        status=status,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


@contextmanager
def open_source(
    url: str,
    *,
    policy: UrlPolicy | None = None,
    resolver: Resolver = system_resolver,
    transport: httpx.BaseTransport | None = None,
) -> Iterator[Source]:
    """Open url for streaming after checking it; closes the connection on exit."""
    policy = policy or UrlPolicy.from_settings()
    client = httpx.Client(
        transport=transport or outbound_transport.current() or guarded_transport(policy, resolver),
        verify=_tls_context(),
        timeout=_timeout(),
        follow_redirects=False,
        headers={"Accept-Encoding": "identity", "User-Agent": "ArkDash-archive/1"},
    )
    try:
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            must_be_public = policy.check(current, resolver=resolver)
            request = client.build_request("GET", current)
            try:
                response = client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                raise FetchError(
                    f"timed out connecting to {redact_url(current)} ({type(exc).__name__})"
                ) from None
            except httpx.HTTPError as exc:
                raise FetchError(f"could not connect to {redact_url(current)} ({exc})") from None
            try:
                peer = peer_address(response)
                if must_be_public and peer is not None and not is_public(peer):
                    raise FetchRefused(
                        f"refused: {redact_url(current)} connected to the non-public address {peer}"
                    )
                if response.status_code in REDIRECT_STATUSES and "location" in response.headers:
                    current = urljoin(current, response.headers["location"])
                    response.close()
                    continue
                _raise_for_status(response, current)
                encoding = response.headers.get("content-encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    raise FetchError(f"the output host sent Content-Encoding {encoding!r} we did not ask for")
                yield Source(
                    url=current,
                    content_length=_content_length(response),
                    content_type=response.headers.get("content-type", "").split(";", 1)[0].strip(),
                    _response=response,
                    read_timeout=client.timeout.read or 60.0,
                )
                return
            finally:
                response.close()
        raise FetchError(f"too many redirects from {redact_url(url)}", retryable=False)
    finally:
        client.close()


def guarded_post(
    url: str,
    *,
    policy: UrlPolicy,
    timeout: float,
    headers: dict[str, str],
    content: bytes | None = None,
    json: Any = None,
    params: dict[str, str] | None = None,
    resolver: Resolver = system_resolver,
    transport: httpx.BaseTransport | None = None,
) -> AbstractContextManager[httpx.Response]:
    """Check url against policy now, then POST to it on entering the returned context.

    The check raises FetchRefused or FetchError (DNS) at once, before anything is sent.
    Inside the context the answer is streamed and not yet read; the connection closes on
    exit. Sending raises httpx.HTTPError, FetchRefused (an address the guard refuses), or
    PeerNotPublic. Redirects are never followed: one could point anywhere.
    """
    must_be_public = policy.check(url, resolver=resolver)
    return _post(url, policy=policy, must_be_public=must_be_public, timeout=timeout, headers=headers,
                 content=content, json=json, params=params, resolver=resolver, transport=transport)


@contextmanager
def _post(url: str, *, policy: UrlPolicy, must_be_public: bool, timeout: float, headers: dict[str, str],
          content: bytes | None, json: Any, params: dict[str, str] | None, resolver: Resolver,
          transport: httpx.BaseTransport | None) -> Iterator[httpx.Response]:
    with httpx.Client(
        # The guard's transport connects only to the addresses it checked.
        transport=transport or guarded_transport(policy, resolver),
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
    ) as client:
        # Merged into the URL's own query (a token there stays); params= would replace it.
        target = httpx.URL(url).copy_merge_params(params) if params else url
        request = client.build_request("POST", target, content=content, json=json, headers=headers)
        # Streamed: the peer is checked while the connection is open (a server may close it
        # as soon as it has answered), before any of the answer is read.
        response = client.send(request, stream=True)
        try:
            # The address really connected to, checked again as for downloads.
            peer = peer_address(response)
            if must_be_public and peer is not None and not is_public(peer):
                raise PeerNotPublic()
            yield response
        finally:
            response.close()


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length")
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise FetchError(f"the output host sent an invalid Content-Length {value!r}") from None
    if length < 0:
        raise FetchError(f"the output host sent an invalid Content-Length {value!r}")
    return length
