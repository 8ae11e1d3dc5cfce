"""Prepare a fresh install: the default Ark account and an admin login, then say how to log in.

The admin is a superuser (sees every account) and also an operator of the default
account, so taking superuser away later does not lock it out of the dashboard.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from tasks_app.models import Membership, MembershipRole
from tasks_app.services.accounts import account_ensure_default


class Command(BaseCommand):
    help = "Create the default account from ARK_API_KEY and an admin user; print the login."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="Where the dashboard listens.")
        parser.add_argument("--username", default="admin")

    def handle(self, *args, url: str, username: str, **options) -> None:
        account = account_ensure_default()
        password = self._ensure_admin(username)
        if account is not None:
            admin = get_user_model().objects.get(username=username)
            Membership.objects.get_or_create(user=admin, account=account,
                                             defaults={"role": MembershipRole.OPERATOR})
        where = f"account '{account.name}' at {account.base_url}" if account else "no Ark account (set ARK_API_KEY)"
        self.stdout.write(
            "\n"
            f"  ArkDash is starting at {url}\n"
            f"  Log in as '{username}' with password '{password}'\n"
            f"  (stored in {self._password_file()}; change it in the admin)\n"
            f"  Syncing {where}\n"
        )

    def _password_file(self) -> Path:
        return Path(settings.DATA_DIR) / "admin-password.txt"

    def _ensure_admin(self, username: str) -> str:
        """The first run creates the admin with a random password stored in the data folder."""
        path = self._password_file()
        user_model = get_user_model()
        if user_model.objects.filter(username=username).exists() and path.exists():
            return path.read_text().strip()
        password = secrets.token_urlsafe(12)
        user, _ = user_model.objects.get_or_create(username=username, defaults={"is_staff": True, "is_superuser": True})
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        path.write_text(password + "\n")
        path.chmod(0o600)
        return password
