"""`manage.py archive [--task ID]`: copy pending outputs now, in the foreground, saying what it did."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from django.db.models import F, Q, QuerySet

from tasks_app import selectors
from tasks_app.models import Artifact, ArtifactState, Task, TaskStatus
from tasks_app.services import archive


def _megabytes(size: int | None) -> str:
    return "?" if size is None else f"{size / 1_000_000:.1f} MB"


class Command(BaseCommand):
    help = (
        "Archive the outputs that are not archived yet (pending, failed, or held by a worker "
        "that stopped), earliest deadline first, in the foreground. Exit status 1 when some "
        "output could not be archived. --status prints the archive's health only."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--task", metavar="ID", help="Only this task: its Ark id (cgt-…) or its ArkDash number."
        )
        parser.add_argument(
            "--status", action="store_true", help="Print counts, lag and next deadline; copy nothing."
        )

    def handle(self, *args, task: str | None, status: bool, **options) -> None:
        if status:
            self._print_health()
            return
        tasks = self._tasks(task)
        for one in tasks.filter(status=TaskStatus.SUCCEEDED, archive_handoff_pending=True):
            archive.artifacts_create_for_task(task=one)
            Task.objects.filter(pk=one.pk).update(archive_handoff_pending=False)
        if task is not None:
            for one in tasks.filter(status=TaskStatus.SUCCEEDED, artifacts__isnull=True):
                archive.artifacts_create_for_task(task=one)
        artifacts = self._artifacts(tasks if task is not None else None)
        if not artifacts:
            self.stdout.write("Nothing to archive.")
            return
        outcome: dict[str, int] = {}
        for artifact_id in artifacts:
            started = time.monotonic()
            result = archive.artifact_archive(artifact_id=artifact_id, force=True)
            outcome[result.state] = outcome.get(result.state, 0) + 1
            self.stdout.write(self._describe(result, seconds=time.monotonic() - started))
            if result.state == ArtifactState.ARCHIVED:
                # A 3D zip brings its extracted model along: report it too.
                for extra in Artifact.objects.filter(
                    task_id=result.task_id, output="model_file", state=ArtifactState.ARCHIVED
                ).exclude(pk__in=artifacts):
                    self.stdout.write(self._describe(extra, seconds=None))
        summary = ", ".join(f"{count} {state}" for state, count in sorted(outcome.items()))
        self.stdout.write(f"Done: {summary}. Archive lag now {selectors.archive_lag_seconds():.0f} s.")
        if outcome.get(ArtifactState.FAILED) or outcome.get(ArtifactState.LOST):
            raise SystemExit(1)

    def _tasks(self, ident: str | None) -> QuerySet[Task]:
        if ident is None:
            return Task.objects.all()
        ident = ident.strip()
        matches = Task.objects.filter(
            Q(ark_id=ident) | Q(pk=int(ident)) if ident.isdigit() else Q(ark_id=ident)
        )
        if not matches.exists():
            raise CommandError(f"No task {ident!r} in the mirror (sync first, or check the id).")
        return matches

    def _artifacts(self, tasks: QuerySet[Task] | None) -> list[int]:
        queryset = Artifact.objects.exclude(state__in=[ArtifactState.ARCHIVED, ArtifactState.LOST])
        if tasks is not None:
            queryset = queryset.filter(task__in=tasks)
        return list(queryset.order_by(F("deadline").asc(nulls_last=True), "pk").values_list("pk", flat=True))

    def _describe(self, artifact: Artifact, *, seconds: float | None) -> str:
        name = f"{artifact.task.ark_id} {artifact.output}"
        if artifact.state == ArtifactState.ARCHIVED:
            took = f" in {seconds:.1f} s" if seconds is not None else ""
            return f"{name}: archived {_megabytes(artifact.size)}{took} (sha256 {artifact.sha256[:12]}…)"
        if artifact.state == ArtifactState.FAILED:
            when = artifact.next_attempt_at.strftime("%H:%M:%S") if artifact.next_attempt_at else "later"
            return f"{name}: failed, will retry at {when}: {artifact.last_error}"
        if artifact.state == ArtifactState.LOST:
            return f"{name}: {artifact.last_error or 'lost'}"
        return f"{name}: skipped, another worker is copying it"

    def _print_health(self) -> None:
        health = selectors.archive_health()
        counts = ", ".join(f"{count} {state}" for state, count in health.counts.items())
        self.stdout.write(f"Outputs: {counts}.")
        self.stdout.write(f"Archive lag: {health.lag_seconds:.0f} s.")
        deadline = health.next_deadline.isoformat() if health.next_deadline else "none"
        self.stdout.write(f"Next deadline: {deadline}.")
