"""Reads for the export: the filtered list's tasks, with their outputs, one chunk at a time.

The tasks come in the list's own order from a database cursor (`.iterator(chunk_size=…)`),
and the outputs of each chunk in one more query, so memory holds one chunk whatever the
number of rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .filters import TaskFilter, ordering
from .models import Artifact, ArtifactOutput, ArtifactState, Task

CHUNK_SIZE = 2000
TASK_FIELDS = (
    "id", "account_id", "ark_id", "kind", "model", "status", "error_code", "ark_created_at", "ark_updated_at",
    "started_at", "finished_at", "gone_upstream_at", "total_tokens", "archive_state",
)
OUTPUTS = tuple(ArtifactOutput.values)


@dataclass(frozen=True)
class ExportOutput:
    output: str
    state: str
    size: int | None
    sha256: str
    url: str  # the absolute download link; "" until archived


@dataclass(frozen=True)
class ExportRow:
    task: Any  # a named row of TASK_FIELDS (values_list(named=True)): no model instance per row
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

    `download_url(artifact_id)` turns an archived output into its absolute download link.
    """
    chunk_size = chunk_size or CHUNK_SIZE
    tasks = filterset.qs.order_by(*ordering(filterset.chosen_sort)).values_list(*TASK_FIELDS, named=True)
    chunk: list[Any] = []
    for task in tasks.iterator(chunk_size=chunk_size):
        chunk.append(task)
        if len(chunk) >= chunk_size:
            yield from _with_outputs(chunk, account_names, download_url)
            chunk = []
    if chunk:
        yield from _with_outputs(chunk, account_names, download_url)


def _with_outputs(chunk: list[Any], account_names: dict[int, str],
                  download_url: Callable[[int], str]) -> Iterator[ExportRow]:
    outputs: dict[int, dict[str, ExportOutput]] = defaultdict(dict)
    artifacts = Artifact.objects.filter(task_id__in=[task.id for task in chunk]).values_list(
        "id", "task_id", "output", "state", "size", "sha256"
    )
    for pk, task_id, output, state, size, sha256 in artifacts:
        archived = state == ArtifactState.ARCHIVED
        outputs[task_id][output] = ExportOutput(output=output, state=state, size=size, sha256=sha256,
                                                url=download_url(pk) if archived else "")  # fmt: skip
    for task in chunk:
        yield ExportRow(task=task, account=account_names.get(task.account_id, ""), outputs=outputs.get(task.id, {}))
