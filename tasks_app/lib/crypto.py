"""Encryption of Ark API keys at rest.

ARKDASH_ENCRYPTION_KEYS holds Fernet keys, newest first: the first encrypts, every
one decrypts, so a key can be rotated by prepending a new one and running
`manage.py rotate_keys` (re-encrypts every account) before dropping the old one.
Without the variable a key is derived from SECRET_KEY (fine for a laptop).
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver


class SecretDecryptError(Exception):
    """The stored secret was encrypted with a key that is no longer configured."""


@cache
def _fernet() -> MultiFernet:
    keys = list(settings.ARKDASH_ENCRYPTION_KEYS)
    if not keys:
        digest = hashlib.sha256(("arkdash-api-key:" + settings.SECRET_KEY).encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(key.encode()) for key in keys])


def encrypt_secret(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode()


def decrypt_secret(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptError("the API key cannot be decrypted with the configured keys") from exc


def rotate_secret(token: str) -> str:
    """Re-encrypt with the newest key."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptError("the API key cannot be decrypted with the configured keys") from exc


def reset_cache() -> None:
    _fernet.cache_clear()


@receiver(setting_changed)
def _forget_keys(*, setting: str, **kwargs) -> None:
    # Tests (and override_settings) change the keys: the next call must use the new ones.
    if setting in ("ARKDASH_ENCRYPTION_KEYS", "SECRET_KEY"):
        reset_cache()
