"""Injected failures: the next N calls of an endpoint go wrong in a chosen way."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

FAULT_ENDPOINTS = ("create", "get", "list", "delete", "output", "*")
FAULT_KINDS = ("latency", "429", "500", "drop", "truncate", "bad_length")
DEFAULT_LATENCY = 1.0


class ConnectionDropped(Exception):
    """Raised by the app for a `drop` fault when it cannot close a real socket itself."""


@dataclass
class Fault:
    endpoint: str
    kind: str
    remaining: int
    retry_after: int = 1
    latency: float = 0.0
    status: int | None = None

    @property
    def delay(self) -> float:
        """Seconds to stall first: `latency` for any kind, a default for a bare latency fault."""
        if self.latency:
            return self.latency
        return DEFAULT_LATENCY if self.kind == "latency" else 0.0


class Faults:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def inject(
        self,
        endpoint: str,
        kind: str,
        *,
        times: int = 1,
        retry_after: int = 1,
        latency: float = 0.0,
        status: int | None = None,
    ) -> None:
        """Make the next `times` calls of `endpoint` fail with `kind`.

        kinds: latency (stall `latency` s, then answer normally), 429 (with Retry-After),
        500 (or `status`, e.g. 503), drop (connection closed without an answer),
        truncate (body cut half-way, full Content-Length announced), bad_length
        (whole body sent, Content-Length announcing more).
        """
        if endpoint not in FAULT_ENDPOINTS:
            raise ValueError(f"endpoint must be one of {', '.join(FAULT_ENDPOINTS)}; got {endpoint!r}")
        kind = str(kind)
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}; got {kind!r}")
        if not isinstance(times, int) or isinstance(times, bool) or times < 1:
            raise ValueError("times must be a positive integer")
        if not isinstance(retry_after, int | float) or retry_after < 0:
            raise ValueError("retry_after must be a number of seconds >= 0")
        if not isinstance(latency, int | float) or latency < 0:
            raise ValueError("latency must be a number of seconds >= 0")
        if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
            raise ValueError("status must be an HTTP error status (400-599)")
        with self._lock:
            self._faults.append(Fault(endpoint, kind, times, int(retry_after), float(latency), status))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, endpoint: str) -> Fault | None:
        """Consume one use of the oldest fault that applies to `endpoint`."""
        with self._lock:
            for fault in self._faults:
                if fault.endpoint in (endpoint, "*"):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[dict]:
        with self._lock:
            return [asdict(fault) for fault in self._faults]
