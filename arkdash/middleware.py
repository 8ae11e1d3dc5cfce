"""Project-wide middleware: who the client is behind a proxy, what browsers may keep, and a
read answered again when its database connection died under it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import patch_cache_control

from .security import FORWARDED_HEADERS, PEER_ADDR, client_address, is_trusted_proxy

logger = logging.getLogger(__name__)


class TrustedProxyMiddleware:
    """Believe X-Forwarded-For / X-Forwarded-Proto only from ARKDASH_TRUSTED_PROXIES.

    From anyone else the forwarded headers are dropped before any other code sees them,
    so a client that reaches gunicorn directly can neither pick the address the login
    throttle counts nor claim https. Behind a trusted proxy REMOTE_ADDR becomes the
    client's address (the proxy's own stays in META[PEER_ADDR]), so the throttle,
    /healthz, /metrics and the logs all see the same client.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        meta = request.META
        proxies = settings.ARKDASH_TRUSTED_PROXY_NETWORKS
        peer = meta.get("REMOTE_ADDR", "")
        meta[PEER_ADDR] = peer
        if proxies and is_trusted_proxy(peer, proxies):
            meta["REMOTE_ADDR"] = client_address(peer, meta.get("HTTP_X_FORWARDED_FOR", ""), proxies)
        else:
            for name in FORWARDED_HEADERS:
                meta.pop(name, None)
        return self.get_response(request)


class PrivateCacheMiddleware:
    """Pages for a signed-in person are theirs alone: `Cache-Control: private, no-store`,
    so neither a shared cache nor the browser's history keeps them after logout.

    A response that already says how to cache it (a download's Range-friendly rule, an
    S3 redirect) keeps its own rule.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if response.has_header("Cache-Control"):
            return response
        # No session cookie, nobody signed in: skip loading the session for anonymous callers.
        if settings.SESSION_COOKIE_NAME in request.COOKIES and getattr(request, "user", None) is not None:
            if request.user.is_authenticated:
                patch_cache_control(response, private=True, no_store=True)
        return response


class RetryReadOnLostDatabaseMiddleware:
    """A GET or HEAD whose database connection died under it (a failover, a restarted
    pooler, an administrator's pg_terminate_backend) is answered once more, on a fresh
    connection, instead of with a 500. Django checks a persistent connection only when a request
    starts; this covers one that dies during it. Writes are never repeated.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        if request.method not in ("GET", "HEAD") or not isinstance(exception, OperationalError | InterfaceError):
            return None
        if getattr(request, "_arkdash_retried_read", False) or request.resolver_match is None:
            return None
        request._arkdash_retried_read = True
        for connection in connections.all(initialized_only=True):
            if connection.connection is not None and not connection.is_usable():
                connection.close()  # the retry opens a new one
        logger.warning("database connection lost during GET %s; answering it once more", request.path)
        match = request.resolver_match
        return match.func(request, *match.args, **match.kwargs)
