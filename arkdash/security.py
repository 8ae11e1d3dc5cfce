"""Pieces of the security settings that need a little logic (outside settings.py).

Mostly pure functions of their arguments: settings.py calls them at import time.
"""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest


def output_media_sources(allowed_hosts: list[str]) -> list[str]:
    """CSP sources for Ark's output URLs, which the detail page plays until they are archived.

    The same hosts the archive may fetch from (ARKDASH_ARCHIVE_ALLOWED_HOSTS and the opted-in
    ARKDASH_ARCHIVE_PRIVATE_HOSTS): "*.volces.com" stays a wildcard source, "host:port"
    stays as it is, a bare exact name is allowed on any port, and "*" means any https origin.
    """
    sources: list[str] = []
    for host in allowed_hosts:
        host = host.strip().lower()
        if not host:
            continue
        if host == "*":
            source = "https:"
        elif host.startswith("*.") or _has_port(host):
            source = host
        else:
            source = f"{host}:*"
        if source not in sources:
            sources.append(source)
    return sources


def _has_port(host: str) -> bool:
    name, colon, port = host.rpartition(":")
    return bool(colon) and port.isdigit() and (":" not in name or name.endswith("]"))


def simulator_host(url: str) -> str:
    """ARKDASH_SIMULATOR_URL's `host:port`, the one entry its outputs need."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImproperlyConfigured(f"ARKDASH_SIMULATOR_URL must be an http(s) URL, not {url!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def s3_media_sources(*, bucket: str, endpoint_url: str, region: str) -> list[str]:
    """Origins of the presigned URLs the download view redirects to when the archive is on S3.

    `<video src>` and the 3D viewer's fetch follow that redirect, and CSP checks the target.
    """
    if not bucket:
        return []
    if endpoint_url:
        parts = urlsplit(endpoint_url)
        if not parts.scheme or not parts.netloc:
            return []
        # Path style (endpoint/bucket/key) and virtual-hosted style (bucket.endpoint/key).
        return [f"{parts.scheme}://{parts.netloc}", f"{parts.scheme}://{bucket}.{parts.netloc}"]
    sources = [f"https://{bucket}.s3.amazonaws.com", "https://s3.amazonaws.com"]
    if region:
        sources += [f"https://{bucket}.s3.{region}.amazonaws.com", f"https://s3.{region}.amazonaws.com"]
    return sources


# --- Reverse proxies (ARKDASH_TRUSTED_PROXIES) -------------------------------------------
# Headers a client could set to pass for someone else; believed only from a trusted proxy.
FORWARDED_HEADERS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_REAL_IP",
    "HTTP_FORWARDED",
)
# Where TrustedProxyMiddleware keeps the address of the peer that really connected.
PEER_ADDR = "arkdash.peer_addr"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(entries: list[str]) -> list[Network]:
    """ARKDASH_TRUSTED_PROXIES: addresses or networks ("10.0.0.5", "172.28.0.0/24")."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"ARKDASH_TRUSTED_PROXIES: {entry!r} is not an IP address or network"
            ) from None
    return networks


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(value.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def is_trusted_proxy(value: str, proxies: list[Network]) -> bool:
    address = _address(value)
    return address is not None and any(address in network for network in proxies)


def client_address(peer: str, forwarded_for: str, proxies: list[Network]) -> str:
    """The client's address when `peer` is a trusted proxy: the right-most X-Forwarded-For
    entry that is not itself a trusted proxy. Entries further left were written by
    whoever sent the request to the first proxy, so they prove nothing."""
    client = peer
    for entry in reversed([part.strip() for part in forwarded_for.split(",")]):
        if _address(entry) is None:
            break  # garbage where a proxy should have written an address: stop believing
        client = entry
        if not is_trusted_proxy(entry, proxies):
            break
    return client


def is_direct_loopback(request: HttpRequest) -> bool:
    """A caller on this machine that did not come through a proxy (probes, `make run`).

    Behind a proxy on the same host every request arrives from loopback: those do not count.
    """
    peer = request.META.get(PEER_ADDR, request.META.get("REMOTE_ADDR", ""))
    address = _address(peer)
    if address is None or not address.is_loopback:
        return False
    proxies = getattr(settings, "ARKDASH_TRUSTED_PROXY_NETWORKS", [])
    return not is_trusted_proxy(peer, proxies)


def client_ip(request: HttpRequest) -> str | None:
    """The client address for the login throttle (django-axes): REMOTE_ADDR, which
    TrustedProxyMiddleware has already set to the client behind a trusted proxy."""
    return request.META.get("REMOTE_ADDR") or None


# --- Files under the data folder (ARKDASH_FILE_MODE) -------------------------------------
_FILE_MODES = {"0600": 0o600, "600": 0o600, "0640": 0o640, "640": 0o640}


def file_mode(value: str) -> int:
    try:
        return _FILE_MODES[value.strip()]
    except KeyError:
        raise ImproperlyConfigured(f"ARKDASH_FILE_MODE must be 0600 or 0640, not {value!r}") from None


def private_sqlite_file(sender: Any, connection: Any, **kwargs: Any) -> None:
    """connection_created: the SQLite database file (and so the journals SQLite creates
    beside it, which copy its mode) is no more open than ARKDASH_FILE_MODE."""
    if connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict.get("NAME") or "")
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    mode = getattr(settings, "ARKDASH_FILE_MODE", 0o600)
    path = Path(name)
    try:
        if stat.S_IMODE(path.stat().st_mode) & ~mode:
            path.chmod(mode)
    except FileNotFoundError:
        pass
