"""Per-key token buckets on the sim clock, like Ark's per-account RPM limits."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`rates` maps an endpoint to requests per second (None = unlimited).

    The burst equals one second's worth (at least one request), so 1/s allows exactly
    one call per second and a second call within it gets 429.
    """

    def __init__(self, rates: dict[str, float | None]) -> None:
        for endpoint, rate in rates.items():
            if rate is not None and rate <= 0:
                raise ValueError(f"{endpoint} rate must be positive or None, got {rate}")
        self._rates = dict(rates)
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def check(self, *, key: str, endpoint: str, now: float) -> int | None:
        """Take a token; None when allowed, else the whole seconds to wait (Retry-After, >= 1)."""
        rate = self._rates.get(endpoint)
        if rate is None:
            return None
        capacity = max(1.0, rate)
        with self._lock:
            bucket = self._buckets.setdefault((key, endpoint), _Bucket(capacity, now))
            elapsed = max(0.0, now - bucket.updated)  # the clock may be set backwards
            bucket.tokens = min(capacity, bucket.tokens + elapsed * rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return max(1, math.ceil((1.0 - bucket.tokens) / rate))

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
