"""Which real services the tests can reach.

Tests that need PostgreSQL or Redis are marked; without the service they skip on a
laptop but FAIL under CI=true (a missing service in CI is a broken build, not a skip).
"""

from __future__ import annotations

import os
import socket
from functools import cache

POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@cache
def postgres_available() -> bool:
    from urllib.parse import urlparse

    url = urlparse(POSTGRES_URL)
    return _port_open(url.hostname or "127.0.0.1", url.port or 5432)


@cache
def redis_available() -> bool:
    from urllib.parse import urlparse

    url = urlparse(REDIS_URL)
    return _port_open(url.hostname or "127.0.0.1", url.port or 6379)
