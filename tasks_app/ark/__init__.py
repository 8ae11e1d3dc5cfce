"""The Ark API client: the only code in ArkDash that talks to Ark. No Django here."""

from __future__ import annotations

from .client import MAX_PAGE_SIZE, OUTPUT_URL_LIFETIME, TASK_ID, ArkClient
from .errors import (
    ArkAuthenticationError,
    ArkBadRequestError,
    ArkConnectionError,
    ArkDeleteRefusedError,
    ArkError,
    ArkNotFoundError,
    ArkPermissionError,
    ArkProtocolError,
    ArkRateLimitedError,
    ArkServerError,
    ArkTimeoutError,
    ArkTooManyIdsError,
)
from .types import ArkTask, RateLimiter, TaskPage

__all__ = [
    "ArkAuthenticationError",
    "ArkBadRequestError",
    "ArkClient",
    "ArkConnectionError",
    "ArkDeleteRefusedError",
    "ArkError",
    "ArkNotFoundError",
    "ArkPermissionError",
    "ArkProtocolError",
    "ArkRateLimitedError",
    "ArkServerError",
    "ArkTask",
    "ArkTimeoutError",
    "ArkTooManyIdsError",
    "RateLimiter",
    "MAX_PAGE_SIZE",
    "OUTPUT_URL_LIFETIME",
    "TASK_ID",
    "TaskPage",
]
