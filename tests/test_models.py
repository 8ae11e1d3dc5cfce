from __future__ import annotations

import pytest
from django.utils import timezone

from tasks_app.models import Account, Task, TaskKind, TaskStatus


@pytest.mark.parametrize(
    ("status", "can_cancel", "can_delete"),
    [
        (TaskStatus.QUEUED, True, False),
        (TaskStatus.RUNNING, False, False),
        (TaskStatus.SUCCEEDED, False, True),
        (TaskStatus.FAILED, False, True),
        (TaskStatus.EXPIRED, False, True),
        (TaskStatus.CANCELLED, False, False),
    ],
)
def test_it_follows_arks_delete_state_table(account, status, can_cancel, can_delete):
    task = Task.objects.create(
        account=account, ark_id="cgt-20250331175019-68d9t", kind=TaskKind.VIDEO,
        status=status, ark_created_at=timezone.now(),
    )
    assert (task.can_cancel, task.can_delete) == (can_cancel, can_delete)


def test_it_keeps_the_api_key_encrypted_at_rest(db):
    account = Account(name="other", base_url="http://arksim.test/api/v3")
    account.set_api_key("secret-key-123")
    account.save()
    stored = Account.objects.values_list("api_key_encrypted", flat=True).get(pk=account.pk)
    assert "secret-key-123" not in stored
    assert Account.objects.get(pk=account.pk).api_key == "secret-key-123"


@pytest.mark.postgres
def test_it_runs_on_postgresql_when_available(db):
    from django.db import connection

    assert connection.vendor == "postgresql"
