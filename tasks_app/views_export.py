"""The list's export: CSV (with a UTF-8 byte order mark, for Excel) or JSON Lines, streamed.

On PostgreSQL the database writes the CSV's rows (exports_pg); elsewhere, and for JSON
Lines, Python writes them from exports.export_rows. Both CSVs have the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import tzinfo

from django.contrib.auth.decorators import login_required
from django.db import connections
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from . import exports_pg, selectors
from .exports import OUTPUTS, ExportRow, export_rows
from .filters import TaskFilter

FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
COLUMNS = [
    "task_id", "account", "kind", "model", "status", "created", "updated", "run_time_seconds", "tokens",
    "error_code", "archive_state",
    *(f"{output}_{part}" for output in OUTPUTS for part in ("size", "sha256", "url")),
]
# Rows written per piece of the answer: fewer, larger writes to the socket.
ROWS_PER_PIECE = 500


@login_required
@require_safe
def task_export(request: HttpRequest, fmt: str) -> HttpResponse | StreamingHttpResponse:
    access = selectors.access_for(request.user)
    filterset = TaskFilter(data=request.GET, queryset=access.tasks())
    if not filterset.is_valid():
        message = _("The filter is not valid, so nothing was exported:") + "\n" + "\n".join(filterset.error_messages())
        return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")
    # The download view's URL, resolved once: reverse() for each of a million outputs would
    # cost more than writing their rows.
    head, tail = request.build_absolute_uri(reverse("tasks_app:artifact_download", args=[1])).rsplit("/1/", 1)
    account_names = dict(access.accounts().values_list("pk", "name"))
    # The viewer's zone, read now: the rows are written after this view has returned, when the
    # time zone middleware has already deactivated it.
    zone = timezone.get_current_timezone()
    using = filterset.qs.db
    if fmt == "csv" and database_writes_csv(using, zone):
        export = exports_pg.CopyExport(
            filterset=filterset, account_names=account_names, url_head=head, url_tail=tail,
            zone_name=exports_pg.zone_name(zone, using=using), now=timezone.now(),
        )
        pieces = _header_then(exports_pg.copy_pieces(export, using=using))
    else:
        rows = export_rows(
            filterset=filterset, account_names=account_names, download_url=lambda pk: f"{head}/{pk}/{tail}"
        )
        pieces = _csv(rows, zone) if fmt == "csv" else _jsonl(rows, zone)
    response = StreamingHttpResponse(pieces, content_type=FORMATS[fmt])
    response["Content-Disposition"] = f'attachment; filename="arkdash-tasks-{timezone.localdate():%Y-%m-%d}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response


def database_writes_csv(using: str, zone: tzinfo) -> bool:
    """Does the database format the CSV (PostgreSQL, a zone it knows by name)? Else Python does,
    with the same bytes."""
    return connections[using].vendor == "postgresql" and exports_pg.zone_name(zone, using=using) is not None


def _fields(row: ExportRow, zone: tzinfo) -> dict:
    task = row.task
    run_time = row.run_time
    return {
        "task_id": task.ark_id,
        "account": row.account,
        "kind": task.kind,
        "model": task.model,
        "status": task.status,
        "created": task.ark_created_at.astimezone(zone).isoformat(),
        "updated": task.ark_updated_at.astimezone(zone).isoformat() if task.ark_updated_at else None,
        "run_time_seconds": round(run_time.total_seconds()) if run_time is not None else None,
        "tokens": task.total_tokens,
        "error_code": task.error_code,
        "archive_state": task.archive_state,
    }


def _header() -> str:
    """The BOM (Excel then reads the file as UTF-8, Chinese names intact) and the column names."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    csv.writer(buffer).writerow(COLUMNS)
    return buffer.getvalue()


def _header_then(rows: Iterator[bytes]) -> Iterator[bytes]:
    yield _header().encode()
    yield from rows


def _csv(rows: Iterator[ExportRow], zone: tzinfo) -> Iterator[bytes]:
    buffer = io.StringIO()
    buffer.write(_header())
    writer = csv.writer(buffer)
    for n, row in enumerate(rows, start=1):
        values = list(_fields(row, zone).values())
        for output in OUTPUTS:
            item = row.outputs.get(output)
            values += [item.size, item.sha256, item.url] if item else [None, "", ""]
        writer.writerow(values)
        if n % ROWS_PER_PIECE == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _jsonl(rows: Iterator[ExportRow], zone: tzinfo) -> Iterator[bytes]:
    lines: list[str] = []
    for row in rows:
        record = _fields(row, zone)
        record["outputs"] = [
            {"output": item.output, "state": item.state, "size": item.size, "sha256": item.sha256,
             "url": item.url or None}
            for item in sorted(row.outputs.values(), key=lambda item: OUTPUTS.index(item.output))
        ]  # fmt: skip
        lines.append(json.dumps(record, ensure_ascii=False))
        if len(lines) >= ROWS_PER_PIECE:
            yield ("\n".join(lines) + "\n").encode()
            lines = []
    if lines:
        yield ("\n".join(lines) + "\n").encode()
