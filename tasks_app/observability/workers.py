"""Which Celery workers are alive: each worker process writes a heartbeat row now and then.

Written from Celery signals (celery_signals.py): when a worker is ready, after the tasks
it runs, and on Celery's own heartbeat. At most once per HEARTBEAT_EVERY_SECONDS per
process, so a busy worker does not spend its time on these writes. A worker runs beat's
sweeps every minute, so a live worker is seen at least that often even when idle.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime

from django.db import DatabaseError, connection
from django.utils import timezone

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY_SECONDS = 30.0
_lock = threading.Lock()
_last_written: dict[str, float] = {}


def worker_heartbeat_record(*, hostname: str, pid: int | None = None, now: datetime | None = None) -> None:
    """Say that `hostname` is alive now (creates its row the first time)."""
    from ..models import WorkerHeartbeat

    now = now or timezone.now()
    updated = WorkerHeartbeat.objects.filter(hostname=hostname[:255]).update(last_seen_at=now, pid=pid)
    if not updated:
        WorkerHeartbeat.objects.get_or_create(
            hostname=hostname[:255], defaults={"pid": pid, "started_at": now, "last_seen_at": now}
        )


def worker_seen(hostname: str | None) -> None:
    """Record a heartbeat unless this process wrote one for `hostname` recently; never raises."""
    if not hostname:
        return
    with _lock:
        moment = time.monotonic()
        if moment - _last_written.get(hostname, -HEARTBEAT_EVERY_SECONDS) < HEARTBEAT_EVERY_SECONDS:
            return
        _last_written[hostname] = moment
    try:
        worker_heartbeat_record(hostname=hostname, pid=os.getpid())
    except DatabaseError:
        # The dashboard only loses a "last seen"; the worker must go on. Closing the
        # connection makes the next heartbeat open a fresh one (the database restarted).
        logger.warning("could not record the heartbeat of worker %s", hostname, exc_info=True)
        if not connection.in_atomic_block:
            connection.close()
