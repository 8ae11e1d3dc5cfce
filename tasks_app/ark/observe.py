"""An optional hook to watch every attempt the Ark client makes (for metrics).

The client stays a plain library: it knows nothing about Prometheus or Redis. Whoever
wants to count calls registers a callback here; it receives one CallEvent per attempt
(a retried call is several attempts). A failing observer never fails the call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from .errors import (
    ArkAuthenticationError,
    ArkBadRequestError,
    ArkConnectionError,
    ArkError,
    ArkNotFoundError,
    ArkPermissionError,
    ArkProtocolError,
    ArkRateLimitedError,
    ArkServerError,
    ArkTimeoutError,
)

logger = logging.getLogger(__name__)

OK = "ok"
# The rate limiter refused to wait that long (a web request): no request was sent.
LIMITER_REFUSED = "limiter_refused"


@dataclass(frozen=True)
class CallEvent:
    endpoint: str  # "list", "get", "create", "delete"
    method: str
    outcome: str  # OK, LIMITER_REFUSED or one of outcome_of()'s values
    seconds: float  # from sending the request to reading the whole answer
    rate_wait_seconds: float  # time spent waiting for the shared rate limiter first


CallObserver = Callable[[CallEvent], None]
_observers: list[CallObserver] = []


def add_call_observer(observer: CallObserver) -> None:
    if observer not in _observers:
        _observers.append(observer)


def notify(event: CallEvent) -> None:
    for observer in list(_observers):
        try:
            observer(event)
        except Exception:  # noqa: BLE001 - watching a call must never break it
            logger.debug("ark call observer %r failed", observer, exc_info=True)


# Most specific first: ArkTimeoutError is an ArkConnectionError, for example.
_OUTCOMES: tuple[tuple[type[ArkError], str], ...] = (
    (ArkRateLimitedError, "rate_limited"),
    (ArkTimeoutError, "timeout"),
    (ArkConnectionError, "connection_error"),
    (ArkProtocolError, "protocol_error"),
    (ArkServerError, "server_error"),
    (ArkAuthenticationError, "auth_error"),
    (ArkPermissionError, "auth_error"),
    (ArkNotFoundError, "not_found"),
    (ArkBadRequestError, "bad_request"),
)


def outcome_of(error: BaseException) -> str:
    """A short, bounded label for a failed attempt (metrics labels must not explode)."""
    for error_type, label in _OUTCOMES:
        if isinstance(error, error_type):
            return label
    return "error"
