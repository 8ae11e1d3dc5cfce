"""`manage.py sync --once`: one sync cycle in the foreground, saying what it did."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tasks_app.models import Account
from tasks_app.services.accounts import account_ensure_default
from tasks_app.services.sync import SyncReport, sync_account


class Command(BaseCommand):
    help = (
        "Sync the local mirror with Ark: refresh active tasks, discover new ones, sweep the "
        "7-day window when due. With --once, run one cycle and exit (status 1 if it failed); "
        "without, loop (for debugging; production uses Celery beat)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="Run one cycle and exit.")
        parser.add_argument("--account", metavar="NAME", help="Only this account (default: all).")
        parser.add_argument("--full-sweep", action="store_true", help="Sweep the whole 7-day window now.")
        parser.add_argument(
            "--wait",
            type=float,
            default=60.0,
            metavar="SECONDS",
            help="How long to wait for a cycle of the same account running elsewhere (default 60).",
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            metavar="SECONDS",
            help="Pause between cycles when looping (default ARKDASH_SYNC_INTERVAL_SECONDS).",
        )

    def handle(
        self, *args, once: bool, account: str | None, full_sweep: bool, wait: float, interval, **options
    ):
        if wait < 0:
            raise CommandError("--wait must be 0 or more seconds")
        interval = settings.ARKDASH_SYNC_INTERVAL_SECONDS if interval is None else interval
        if interval <= 0:
            raise CommandError("--interval must be more than 0 seconds")
        account_ensure_default()
        accounts = self._accounts(account)
        if once:
            reports = self._cycle(accounts, full_sweep=full_sweep, wait=wait)
            if any(report.errors for report in reports):
                raise SystemExit(1)
            return
        try:
            while True:
                self._cycle(accounts, full_sweep=full_sweep, wait=wait)
                full_sweep = False
                time.sleep(interval)
        except KeyboardInterrupt:
            self.stdout.write("stopped")

    def _accounts(self, name: str | None) -> list[Account]:
        accounts = Account.objects.all()
        if name is not None:
            accounts = accounts.filter(name=name)
            if not accounts.exists():
                known = ", ".join(Account.objects.values_list("name", flat=True)) or "none"
                raise CommandError(f"no account named {name!r} (accounts: {known})")
        result = list(accounts)
        if not result:
            raise CommandError("no Ark account to sync: set ARK_API_KEY or add an account in the admin")
        return result

    def _cycle(self, accounts: list[Account], *, full_sweep: bool, wait: float) -> list[SyncReport]:
        reports = []
        for account in accounts:
            report = sync_account(account=account, lease_wait=wait, full_sweep=True if full_sweep else None)
            style = self.style.ERROR if report.errors else self.style.SUCCESS
            self.stdout.write(style(str(report)))
            reports.append(report)
        return reports
