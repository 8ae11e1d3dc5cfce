"""Every log line of a Celery task names the task that emitted it (name and id)."""

from __future__ import annotations

from typing import Any

from celery.signals import task_postrun, task_prerun

from .logging import bind_context, unbind_context

_TOKEN_ATTRIBUTE = "_arkdash_log_token"


def _on_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task is None:
        return
    token = bind_context(celery_task=getattr(task, "name", None), celery_task_id=task_id)
    setattr(task.request, _TOKEN_ATTRIBUTE, token)


def _on_postrun(task: Any = None, **_: Any) -> None:
    token = getattr(getattr(task, "request", None), _TOKEN_ATTRIBUTE, None)
    if token is not None:
        unbind_context(token)


def connect() -> None:
    # weak=False: the receivers are module functions, but be explicit; dispatch_uid: once only.
    task_prerun.connect(_on_prerun, weak=False, dispatch_uid="arkdash-log-context-prerun")
    task_postrun.connect(_on_postrun, weak=False, dispatch_uid="arkdash-log-context-postrun")
