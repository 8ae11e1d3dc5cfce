"""`manage.py pictures`: make the gallery pictures that are missing, in the foreground."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from tasks_app.lib import storage
from tasks_app.models import PictureState
from tasks_app.selectors import artifacts_without_picture
from tasks_app.services import pictures


class Command(BaseCommand):
    help = (
        "Make the gallery picture of every task whose outputs are archived but that has none "
        "(outputs archived before pictures existed, or a picture job that was lost). Exit "
        "status 1 when archive storage could not be read or written for some of them."
    )

    def handle(self, *args, **options) -> None:
        made = placeholders = failed = 0
        for artifact_id in artifacts_without_picture().values_list("pk", flat=True).iterator():
            try:
                picture = pictures.picture_make(artifact_id=artifact_id)
            except storage.StorageError as exc:
                failed += 1
                self.stderr.write(f"artifact {artifact_id}: {exc}")
                continue
            if picture is not None:
                made += 1
                placeholders += picture.state == PictureState.PLACEHOLDER
        self.stdout.write(f"{made} pictures made ({placeholders} placeholders), {failed} failed")
        if failed:
            raise SystemExit(1)
