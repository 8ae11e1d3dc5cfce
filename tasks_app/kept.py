"""Something computed once and kept in Django's cache under everything it depends on.

The list keeps several things this way (status counts, the page's frame, its rows
together, the sync banner); each names what it depends on, and the key is their hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import TypeVar

from django.core.cache import cache

T = TypeVar("T")


def kept(name: str, depends_on: Iterable[str], make: Callable[[], T], *, seconds: int) -> T:
    """make()'s result, made once per `depends_on` and kept for `seconds` (never None)."""
    key = f"arkdash:{name}:" + hashlib.sha256("\x1f".join(depends_on).encode()).hexdigest()
    return cache.get_or_set(key, make, seconds)
