"""Everything a task row in the list shows, as ready strings.

Rendering a row through template tags (a label lookup, a translation, a URL reverse,
date filters) cost about half a millisecond: 50 rows were most of the page's time.
The row partial now only places these strings; what does not depend on the row
(labels, URL patterns, texts) is computed once per language instead of once per row.
Rows are dicts because the template engine tries `obj[key]` before `getattr`, and an
attribute lookup on an object pays for the exception first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from functools import lru_cache
from typing import TypedDict

from django.urls import get_script_prefix, reverse
from django.utils import timezone
from django.utils.text import Truncator
from django.utils.timesince import timesince
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from .models import ArchiveState, Task, TaskKind, TaskStatus
from .selectors import Access, is_live, row_version
from .templatetags.dashboard import human_duration, run_time

_PK = 987654321  # a stand-in pk, replaced after reversing once


@dataclass(frozen=True)
class RowTexts:
    """What every row of a page shares, in one language."""

    status: dict[str, str]
    kind: dict[str, str]
    archive: dict[str, str]
    detail_url: str
    cancel_url: str
    delete_url: str
    select: str
    copy_id: str
    copy_title: str
    ago: str
    gone: str
    cancel: str
    cancel_confirm: str
    cancelling: str
    delete: str
    delete_confirm: str
    deleting: str
    copy_progress: str
    delete_anyway: str
    keep_it: str


@lru_cache(maxsize=32)
def _texts(language: str | None, script_prefix: str) -> RowTexts:
    def url(name: str) -> str:
        return reverse(name, args=[_PK]).replace(str(_PK), "{pk}")

    return RowTexts(
        status={value: str(label) for value, label in TaskStatus.choices},
        kind={value: str(label) for value, label in TaskKind.choices},
        archive={value: str(label) for value, label in ArchiveState.choices},
        detail_url=url("tasks_app:task_detail"),
        cancel_url=url("tasks_app:task_cancel"),
        delete_url=url("tasks_app:task_delete"),
        select=_("Select %(id)s"),
        copy_id=_("Copy %(id)s"),
        copy_title=_("Copy task id"),
        ago=_("%(ago)s ago"),
        gone=_("gone from Ark"),
        cancel=_("Cancel"),
        cancel_confirm=_("Cancel task %(id)s? Ark will stop it before it starts."),
        cancelling=_("cancelling…"),
        delete=_("Delete record"),
        delete_confirm=_("Delete Ark's record of %(id)s? ArkDash keeps its history."),
        deleting=_("deleting…"),
        copy_progress=_("Copy progress"),
        delete_anyway=_("Delete anyway"),
        keep_it=_("Keep it"),
    )


def row_texts() -> RowTexts:
    return _texts(get_language(), get_script_prefix())


@lru_cache(maxsize=32)
def _texts_for_templates(language: str | None, script_prefix: str) -> dict[str, object]:
    return asdict(_texts(language, script_prefix))


def row_texts_for_templates() -> dict[str, object]:
    return _texts_for_templates(get_language(), get_script_prefix())


class Row(TypedDict):
    pk: int
    ark_id: str
    version: int
    live: bool
    status: str
    status_label: str
    kind_label: str
    model: str
    error_code: str
    error_code_short: str  # at most 40 characters, for the cell (the title has it all)
    gone_at: str  # exact local time, "" while the task exists upstream
    created_iso: str
    created_exact: str
    created_ago: str
    run_time: str
    archive_state: str
    archive_label: str
    archive_percent: int | None
    can_cancel: bool
    can_delete: bool
    detail_url: str
    cancel_url: str
    delete_url: str
    select_label: str
    copy_label: str
    cancel_confirm: str
    delete_confirm: str


def present(tasks: list[Task], *, now: datetime, access: Access) -> list[Row]:
    """Rows for `tasks` in the active language and time zone.

    Tasks come from row_html.list_rows_html or selectors.rows_changed (archive_percent attached).
    `access` hides the cancel and delete buttons on accounts the viewer may only see.
    """
    texts = row_texts()
    zone = timezone.get_current_timezone()
    rows = []
    for task in tasks:
        created = task.ark_created_at.astimezone(zone)
        ids = {"id": task.ark_id}
        pk = str(task.pk)
        rows.append(
            Row(  # noqa: UP013 -- keyword form keeps each field next to its value
                pk=task.pk,
                ark_id=task.ark_id,
                version=row_version(task),
                live=is_live(task),
                status=task.status,
                status_label=texts.status.get(task.status, task.status),
                kind_label=texts.kind.get(task.kind, task.kind),
                model=task.model,
                error_code=task.error_code,
                error_code_short=Truncator(task.error_code).chars(40),
                gone_at=_exact(task.gone_upstream_at, zone) if task.gone_upstream_at else "",
                created_iso=created.isoformat(),
                created_exact=created.strftime("%Y-%m-%d %H:%M:%S %Z"),
                created_ago=texts.ago % {"ago": timesince(task.ark_created_at, now)},
                run_time=human_duration(run_time(task)),
                archive_state=task.archive_state,
                archive_label=texts.archive.get(task.archive_state, task.archive_state),
                archive_percent=getattr(task, "archive_percent", None),
                can_cancel=task.can_cancel and access.can_operate(task.account_id),
                can_delete=task.can_delete and access.can_operate(task.account_id),
                detail_url=texts.detail_url.replace("{pk}", pk),
                cancel_url=texts.cancel_url.replace("{pk}", pk),
                delete_url=texts.delete_url.replace("{pk}", pk),
                select_label=texts.select % ids,
                copy_label=texts.copy_id % ids,
                cancel_confirm=texts.cancel_confirm % ids,
                delete_confirm=texts.delete_confirm % ids,
            )
        )
    return rows


def _exact(value: datetime, zone) -> str:
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
