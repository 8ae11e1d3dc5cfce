"""`manage.py insights_rollup`: refresh the insights page's hourly rollup, or rebuild it whole."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from tasks_app.services.insights_rollup import rollup_rebuild, rollup_refresh


class Command(BaseCommand):
    help = (
        "Recompute the insights rollup's hours changed since the last refresh (what the beat job "
        "does every minute); with --rebuild, rewrite the whole rollup from the tasks and outputs."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--rebuild", action="store_true", help="rewrite every hour from the raw rows")

    def handle(self, *args, **options) -> None:
        started = time.monotonic()
        if options["rebuild"]:
            rollup_rebuild()
            self.stdout.write(f"insights rollup rebuilt in {time.monotonic() - started:.1f} s")
            return
        report = rollup_refresh()
        what = "rebuilt (first refresh)" if report.rebuilt else f"{report.hours} hours recomputed"
        self.stdout.write(f"insights rollup: {what} in {time.monotonic() - started:.1f} s")
