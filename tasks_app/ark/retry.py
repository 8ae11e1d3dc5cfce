"""How long to wait between attempts, and which failures may be tried again.

Waits use exponential backoff with full jitter (a random wait in [0, base * 2^n],
capped) so that many workers hit by the same outage do not come back in lockstep.
A 429's Retry-After is a floor: we never come back earlier than Ark asked.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import tenacity

from .errors import ArkConnectionError, ArkError, ArkRateLimitedError

RetryPolicy = Callable[[ArkError], bool]


def retry_any_retryable(error: ArkError) -> bool:
    """Reads (list, get) may be repeated for any transient failure."""
    return error.retryable


def retry_if_surely_not_processed(error: ArkError) -> bool:
    """Writes that are not idempotent (create, delete) are repeated only when Ark surely did
    nothing: the connection never opened, or Ark answered 429 (rejected before any work).
    A timeout after sending, a dropped connection or a 5xx may have taken effect."""
    if isinstance(error, ArkRateLimitedError):
        return True
    return isinstance(error, ArkConnectionError) and not error.request_sent


class Backoff:
    """A tenacity wait strategy: full-jitter exponential backoff, Retry-After as a floor."""

    def __init__(self, *, base: float, cap: float, uniform: Callable[[float, float], float] = random.uniform):
        self.base = base
        self.cap = cap
        self._uniform = uniform

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        failures = retry_state.attempt_number
        ceiling = min(self.cap, self.base * 2 ** (failures - 1))
        wait = self._uniform(0.0, ceiling)
        error = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return min(wait, self.cap)

    def allows(self, error: ArkError) -> bool:
        """False when Ark asks for a longer pause than we are willing to sleep in-line."""
        retry_after = getattr(error, "retry_after", None)
        return retry_after is None or retry_after <= self.cap
