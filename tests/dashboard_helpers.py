"""Helpers for the dashboard tests: mirror rows made directly, and a signed-in client."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.db import connections, transaction
from django.utils import timezone

from tasks_app.models import Account, Artifact, Membership, MembershipRole, Task, TaskKind, TaskStatus

# The password of the `ana` fixture (conftest.py), for the login tests.
ANA_PASSWORD = "the-right-password-7"
_serial = itertools.count(1)


def member_of(user, account: Account, role: str = MembershipRole.OPERATOR) -> Membership:
    """Give `user` a role on `account`: people see only the tasks of their accounts."""
    return Membership.objects.create(user=user, account=account, role=role)


def ark_id_for(created: datetime, serial: int) -> str:
    return f"cgt-{created:%Y%m%d%H%M%S}-{serial:05d}"


def make_task(account: Account, *, status: str = TaskStatus.QUEUED, kind: str = TaskKind.VIDEO,
              created: datetime | None = None, ark_id: str | None = None, **fields) -> Task:
    created = created or timezone.now() - timedelta(minutes=next(_serial) % 50 + 1)
    serial = next(_serial)
    defaults = {
        "model": "doubao-seedance-1-0-pro-250528" if kind == TaskKind.VIDEO else "doubao-seed3d-1-0-250928",
        "ark_updated_at": created,
        "raw": {"id": ark_id or ark_id_for(created, serial), "status": status},
    }
    defaults.update(fields)
    return Task.objects.create(
        account=account, ark_id=ark_id or ark_id_for(created, serial), kind=kind, status=status,
        ark_created_at=created, **defaults,
    )


@contextmanager
def uncommitted_write(write: Callable[[], object]) -> Iterator[None]:
    """Run `write` in a transaction on another connection, held open for the block, then commit.

    Needs django_db(transaction=True): the two connections see only committed rows.
    """
    written, may_commit = threading.Event(), threading.Event()

    def writer() -> None:
        try:
            with transaction.atomic():
                write()
                written.set()
                assert may_commit.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert written.wait(10), "the write did not happen"
        yield
    finally:
        may_commit.set()
        thread.join(10)


def succeeded_video(sim, mirror, **kwargs) -> tuple[Task, Artifact]:
    """A succeeded simulator video mirrored, with its video Artifact created (queued)."""
    from tasks_app.services.archive import artifacts_create_for_task

    task = mirror(sim.add_task(kind="video", status="succeeded", return_last_frame=False, **kwargs))
    return task, artifacts_create_for_task(task=task)[0]
