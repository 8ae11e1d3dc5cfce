"""Reads for the export: the filtered list's tasks, with their outputs, one chunk at a time.

The tasks and their outputs come in the list's own order from one query read through a
database cursor (`.iterator(chunk_size=…)`), so memory holds one chunk whatever the number
of rows, and no query runs per task or per chunk.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .filters import TaskFilter, ordering
from .models import ArtifactOutput, ArtifactState, Task

CHUNK_SIZE = 2000
TASK_FIELDS = (
    "id", "account_id", "ark_id", "kind", "model", "status", "error_code", "ark_created_at", "ark_updated_at",
    "started_at", "finished_at", "gone_upstream_at", "total_tokens", "archive_state",
)
OUTPUTS = tuple(ArtifactOutput.values)
OUTPUT_FIELDS = ("artifacts__id", "artifacts__output", "artifacts__state", "artifacts__size", "artifacts__sha256")
# A task's values, named like the model's fields (Task.run_time reads them by name).
TaskValues = namedtuple("TaskValues", TASK_FIELDS)


@dataclass(frozen=True)
class ExportOutput:
    output: str
    state: str
    size: int | None
    sha256: str
    url: str  # the absolute download link; "" until archived


@dataclass(frozen=True)
class ExportRow:
    task: Any  # TaskValues: no model instance per row
    account: str
    outputs: dict[str, ExportOutput]

    @property
    def run_time(self) -> timedelta | None:
        """The list's run time (Task.run_time), read from the row's values."""
        return Task.run_time.fget(self.task)


def export_rows(
    *, filterset: TaskFilter, account_names: dict[int, str], download_url: Callable[[int], str],
    chunk_size: int | None = None,
) -> Iterator[ExportRow]:
    """Every task the list shows for `filterset` (all pages, in its order), with its outputs.

    One query: the tasks LEFT JOIN their outputs, in the list's order (which ends on the
    primary key, so a task's rows come together), read from a database cursor `chunk_size`
    rows at a time. `download_url(artifact_id)` turns an archived output into its link.
    """
    rows = filterset.qs.order_by(*ordering(filterset.chosen_sort)).values_list(*TASK_FIELDS, *OUTPUT_FIELDS)
    width = len(TASK_FIELDS)
    task, outputs = None, {}
    for row in rows.iterator(chunk_size=chunk_size or CHUNK_SIZE):
        if task is None or row[0] != task.id:
            if task is not None:
                yield ExportRow(task=task, account=account_names.get(task.account_id, ""), outputs=outputs)
            task, outputs = TaskValues._make(row[:width]), {}
        pk, output, state, size, sha256 = row[width:]
        if pk is not None:
            url = download_url(pk) if state == ArtifactState.ARCHIVED else ""
            outputs[output] = ExportOutput(output=output, state=state, size=size, sha256=sha256, url=url)
    if task is not None:
        yield ExportRow(task=task, account=account_names.get(task.account_id, ""), outputs=outputs)
