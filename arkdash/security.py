"""Pieces of the security settings that need a little logic (kept out of settings.py).

Pure functions of their arguments: settings.py calls them at import time.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.http import HttpRequest


def output_media_sources(allowed_hosts: list[str]) -> list[str]:
    """CSP sources for Ark's output URLs, which the detail page plays until they are archived.

    The same hosts the archive may fetch from (ARKDASH_ARCHIVE_ALLOWED_HOSTS): "*.volces.com"
    stays a wildcard source, an exact name ("arksim.test", "127.0.0.1") is allowed on any
    port (the simulator's), and "*" means any https origin.
    """
    sources: list[str] = []
    for host in allowed_hosts:
        host = host.strip().lower()
        if not host:
            continue
        if host == "*":
            source = "https:"
        elif host.startswith("*."):
            source = host
        else:
            source = f"{host}:*"
        if source not in sources:
            sources.append(source)
    return sources


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


def client_ip_behind_proxy(request: HttpRequest) -> str | None:
    """The client address for the login throttle when a trusted reverse proxy is in front.

    The proxy appends the address it saw to X-Forwarded-For; everything before it may
    have been sent by the client itself, so only the last entry is trusted.
    """
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    last = forwarded.rsplit(",", 1)[-1].strip()
    return last or request.META.get("REMOTE_ADDR")
