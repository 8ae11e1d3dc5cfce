"""Every log line of a Celery task names the task that emitted it (name and id); workers
record that they are alive (observability/workers.py) for the archive page."""

from __future__ import annotations

from typing import Any

from celery.signals import heartbeat_sent, task_postrun, task_prerun, worker_ready

from .logging import bind_context, unbind_context
from .workers import worker_seen

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
    request = getattr(task, "request", None)
    if request is not None and not getattr(request, "is_eager", False):  # eager: no worker ran it
        worker_seen(getattr(request, "hostname", None))


def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    worker_seen(getattr(sender, "hostname", None))


def _on_heartbeat(sender: Any = None, **_: Any) -> None:
    worker_seen(getattr(getattr(sender, "eventer", None), "hostname", None))


def connect() -> None:
    # weak=False: the receivers are module functions, but be explicit; dispatch_uid: once only.
    task_prerun.connect(_on_prerun, weak=False, dispatch_uid="arkdash-log-context-prerun")
    task_postrun.connect(_on_postrun, weak=False, dispatch_uid="arkdash-log-context-postrun")
    worker_ready.connect(_on_worker_ready, weak=False, dispatch_uid="arkdash-worker-ready")
    heartbeat_sent.connect(_on_heartbeat, weak=False, dispatch_uid="arkdash-worker-heartbeat")
