"""Signed links to archived outputs: usable without a session until an expiry staff set.

ARKDASH_GATEWAY_OUTPUT_URL_SECONDS sets how long a link handed out by the gateway stays
valid. The link names the artifact and its expiry, signed with SECRET_KEY, so it cannot be
altered or extended; rotating SECRET_KEY voids every link.
"""

from __future__ import annotations

import math
import time

from django.conf import settings
from django.core import signing

_SALT = "arkdash.gateway.output"
# Expiries are rounded up to this step, so re-reading a task gives the same URL for a while
# (clients and caches see one link, not a new one per read).
_EXPIRY_STEP_SECONDS = 3600


def now() -> float:
    """The clock links are checked against (tests move it)."""
    return time.time()


def sign(artifact_id: int) -> str:
    ttl = float(settings.ARKDASH_GATEWAY_OUTPUT_URL_SECONDS)
    expires = math.ceil((now() + ttl) / _EXPIRY_STEP_SECONDS) * _EXPIRY_STEP_SECONDS
    return signing.Signer(salt=_SALT).sign_object({"a": artifact_id, "e": expires}, compress=False)


def unsign(value: str) -> int | None:
    """The artifact id of a valid, unexpired link; None otherwise."""
    if len(value) > 300:
        return None
    try:
        data = signing.Signer(salt=_SALT).unsign_object(value)
    except (signing.BadSignature, ValueError, TypeError, UnicodeError):
        return None
    if not isinstance(data, dict):
        return None
    artifact_id, expires = data.get("a"), data.get("e")
    if not isinstance(artifact_id, int) or not isinstance(expires, int | float):
        return None
    if expires <= now():
        return None
    return artifact_id
