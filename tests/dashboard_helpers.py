"""Helpers for the dashboard tests: mirror rows made directly, and a signed-in client."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from django.utils import timezone

from tasks_app.models import Account, Membership, MembershipRole, Task, TaskKind, TaskStatus

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
