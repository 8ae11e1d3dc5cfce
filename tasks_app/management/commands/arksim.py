"""`python manage.py arksim --port 8765 ...`: run the Ark simulator (a thin wrapper over arksim's CLI)."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from arksim import cli


class Command(BaseCommand):
    help = "Run the Ark API simulator as an HTTP server until Ctrl-C / SIGTERM."
    # The simulator is a separate program: no database, no system checks needed.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: ArgumentParser) -> None:
        cli.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        code = cli.run(options)
        if code:
            raise SystemExit(code)
