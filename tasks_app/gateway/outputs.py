"""Signed links to archived outputs: usable without a session until an expiry staff set.

ARKDASH_GATEWAY_OUTPUT_URL_SECONDS sets how long a link handed out by the gateway stays
valid. The link names the artifact and its expiry, signed with SECRET_KEY, so it cannot be
altered or extended; rotating SECRET_KEY voids every link.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from django.conf import settings
from django.core import signing

_SALT = "arkdash.gateway.output"
# Expiries are rounded up to this step, so re-reading a task gives the same URL for a while
# (clients and caches see one link, not a new one per read).
_EXPIRY_STEP_SECONDS = 3600


def now() -> float:
    """The clock links are checked against (tests move it)."""
    return time.time()


def _signer() -> signing.Signer:
    return signing.Signer(salt=_SALT, sep="~")


def signer() -> Callable[[int], str]:
    """sign() for many links at once: one expiry and one Signer for all of them."""
    ttl = float(settings.ARKDASH_GATEWAY_OUTPUT_URL_SECONDS)
    expires = math.ceil((now() + ttl) / _EXPIRY_STEP_SECONDS) * _EXPIRY_STEP_SECONDS
    django_signer = _signer()
    return lambda artifact_id: django_signer.sign(f"{artifact_id}.{expires}")


def sign(artifact_id: int) -> str:
    """`<artifact id>.<expiry, Unix s>~<signature>`: safe in a URL path as it is."""
    return signer()(artifact_id)


def unsign(value: str) -> int | None:
    """The artifact id of a valid, unexpired link; None otherwise."""
    if len(value) > 200:
        return None
    try:
        payload = _signer().unsign(value)
    except (signing.BadSignature, ValueError, TypeError, UnicodeError):
        return None
    artifact_id, _, expires = payload.partition(".")
    if not (artifact_id.isascii() and artifact_id.isdigit() and expires.isascii() and expires.isdigit()):
        return None
    if int(expires) <= now():
        return None
    return int(artifact_id)
