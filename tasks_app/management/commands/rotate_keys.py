"""`manage.py rotate_keys`: re-encrypt every account's API key with the newest encryption key.

Rotation (README "Security"): prepend a new Fernet key to ARKDASH_ENCRYPTION_KEYS,
restart, run this, then drop the old key. Until this has run, the old key must stay.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from tasks_app.lib.crypto import SecretDecryptError, rotate_secret
from tasks_app.models import Account


class Command(BaseCommand):
    help = "Re-encrypt every account's Ark API key with the first key of ARKDASH_ENCRYPTION_KEYS."

    def handle(self, *args, **options) -> None:
        rotated, unreadable = 0, []
        for pk in Account.objects.order_by("pk").values_list("pk", flat=True):
            # One account at a time, locked: a concurrent admin edit is not overwritten.
            with transaction.atomic():
                account = Account.objects.select_for_update().get(pk=pk)
                try:
                    account.api_key_encrypted = rotate_secret(account.api_key_encrypted)
                except SecretDecryptError:
                    unreadable.append(account.name)
                    continue
                account.save(update_fields=["api_key_encrypted"])
                rotated += 1
        self.stdout.write(f"Re-encrypted the API key of {rotated} account(s) with the newest key.")
        if unreadable:
            raise CommandError(
                "Cannot decrypt the API key of: " + ", ".join(unreadable) + ". Its key is not in "
                "ARKDASH_ENCRYPTION_KEYS any more: put the old key back (after the new one) and run "
                "this again, or type the account's API key again in the admin."
            )
