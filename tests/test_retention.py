"""Retention: archived outputs older than an account's rule are deleted (files too), recorded and audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tasks_app.models import (
    Account,
    ArchiveUsageSnapshot,
    Artifact,
    ArtifactOutput,
    ArtifactState,
    AuditAction,
    AuditEntry,
    MembershipRole,
    Picture,
    PictureState,
    RemovalReason,
    Task,
)
from tasks_app.services import retention
from tasks_app.services.archive import artifact_archive, artifacts_create_for_task
from tasks_app.tasks import archive_retention

from .dashboard_helpers import member_of

pytestmark = pytest.mark.django_db


def archived_task(sim, mirror, *, age_days: float, account=None) -> Task:
    """A video task whose two outputs were archived `age_days` ago (really copied to storage)."""
    overrides = {"account": account} if account is not None else {}
    task = mirror(sim.add_task(kind="video", status="succeeded"), **overrides)
    for artifact in artifacts_create_for_task(task=task):
        assert artifact_archive(artifact_id=artifact.pk).state == ArtifactState.ARCHIVED
    Artifact.objects.filter(task=task).update(archived_at=timezone.now() - timedelta(days=age_days))
    return task


def test_it_deletes_exactly_the_old_archived_outputs_of_accounts_with_the_rule_on(
    sim, mirror, account, rival, local_archive, django_capture_on_commit_callbacks
):
    Account.objects.filter(pk=account.pk).update(retention_days=30)
    old = archived_task(sim, mirror, age_days=31)
    recent = archived_task(sim, mirror, age_days=29)
    theirs_old = archived_task(sim, mirror, age_days=400, account=rival)  # rule off there
    pending = mirror(sim.add_task(kind="video", status="succeeded"))
    artifacts_create_for_task(task=pending)
    Artifact.objects.filter(task=pending).update(created=timezone.now() - timedelta(days=90))
    old_keys = set(Artifact.objects.filter(task=old).values_list("storage_key", flat=True))
    assert old_keys <= set(local_archive.visible_keys())

    with django_capture_on_commit_callbacks(execute=True):
        report = retention.retention_run()

    assert report.removed == 2 and report.accounts == [account.pk]
    removed = Artifact.objects.filter(removed_at__isnull=False)
    assert set(removed.values_list("task_id", flat=True)) == {old.pk}
    assert set(removed.values_list("removed_reason", flat=True)) == {RemovalReason.RETENTION}
    assert set(removed.values_list("state", flat=True)) == {ArtifactState.ARCHIVED}  # the copy did happen
    remaining = set(local_archive.visible_keys())
    assert not old_keys & remaining
    for kept in (recent, theirs_old):
        assert set(Artifact.objects.filter(task=kept).values_list("storage_key", flat=True)) <= remaining
    assert Artifact.objects.filter(task=pending, removed_at__isnull=True).count() == 2
    entry = AuditEntry.objects.get(action=AuditAction.RETENTION)
    assert entry.ark_id == old.ark_id and "30-day" in entry.message and entry.username == ""


def test_it_removes_each_output_once_when_run_again(
    sim, mirror, account, local_archive, django_capture_on_commit_callbacks
):
    Account.objects.filter(pk=account.pk).update(retention_days=1)
    archived_task(sim, mirror, age_days=2)

    with django_capture_on_commit_callbacks(execute=True):
        first = retention.retention_run()
        second = retention.retention_run()

    assert (first.removed, second.removed) == (2, 0)
    assert AuditEntry.objects.filter(action=AuditAction.RETENTION).count() == 1


def test_it_does_nothing_by_default(sim, mirror, account, local_archive, django_capture_on_commit_callbacks):
    task = archived_task(sim, mirror, age_days=3650)

    with django_capture_on_commit_callbacks(execute=True):
        assert archive_retention() == 0  # the beat task

    assert not Artifact.objects.filter(task=task, removed_at__isnull=False).exists()
    assert len(local_archive.visible_keys()) == 2


def test_it_snapshots_storage_used_per_account_once_a_day(sim, mirror, account, rival, local_archive):
    task = archived_task(sim, mirror, age_days=1)
    size = sum(Artifact.objects.filter(task=task).values_list("size", flat=True))

    retention.archive_usage_snapshot()
    retention.archive_usage_snapshot()  # rewritten, not duplicated

    snapshots = {s.account_id: s for s in ArchiveUsageSnapshot.objects.all()}
    assert snapshots[account.pk].bytes_stored == size and snapshots[account.pk].outputs_stored == 2
    assert snapshots[rival.pk].bytes_stored == 0
    assert ArchiveUsageSnapshot.objects.count() == 2


def test_it_deletes_the_picture_made_from_a_removed_output(
    sim, mirror, account, local_archive, django_capture_on_commit_callbacks
):
    Account.objects.filter(pk=account.pk).update(retention_days=1)
    task = archived_task(sim, mirror, age_days=2)
    video = Artifact.objects.get(task=task, output=ArtifactOutput.VIDEO)
    (local_archive.root / "picture.webp").write_bytes(b"RIFF")
    Picture.objects.create(task=task, source=video, source_output=ArtifactOutput.VIDEO, state=PictureState.READY,
                           storage_key="picture.webp", content_type="image/webp", size=4, width=1, height=1,
                           sha256="0" * 64)

    with django_capture_on_commit_callbacks(execute=True):
        retention.retention_run()

    assert not Picture.objects.filter(task=task).exists()
    assert "picture.webp" not in local_archive.visible_keys()


def test_the_download_of_a_removed_output_says_when_and_why(
    sim, mirror, account, local_archive, client, django_user_model, django_capture_on_commit_callbacks
):
    Account.objects.filter(pk=account.pk).update(retention_days=1)
    task = archived_task(sim, mirror, age_days=2)
    with django_capture_on_commit_callbacks(execute=True):
        retention.retention_run()
    video = Artifact.objects.get(task=task, output="video")
    user = django_user_model.objects.create_user("vic", password="pw")
    member_of(user, account, MembershipRole.VIEWER)
    client.force_login(user)

    response = client.get(f"/outputs/{video.pk}/download/")

    html = response.content.decode()
    assert response.status_code == 410
    assert f"Removed by the retention rule on {timezone.localdate():%Y-%m-%d}" in html
    detail = client.get(f"/tasks/{task.pk}/").content.decode()
    assert "Removed by the retention rule on" in detail
    assert f"/outputs/{video.pk}/download/" not in detail


# --- the rule ------------------------------------------------------------------------------------


def test_an_operator_sets_and_clears_the_rule_audited(account, client, django_user_model):
    user = django_user_model.objects.create_user("olga", password="pw")
    member_of(user, account, MembershipRole.OPERATOR)
    client.force_login(user)

    response = client.post(f"/archive/accounts/{account.pk}/retention/", {"days": "45"}, follow=True)
    assert response.redirect_chain[-1][0] == "/archive/"
    account.refresh_from_db()
    assert account.retention_days == 45
    client.post(f"/archive/accounts/{account.pk}/retention/", {"days": ""})
    account.refresh_from_db()
    assert account.retention_days is None
    messages = list(AuditEntry.objects.filter(action=AuditAction.RETENTION).order_by("pk").values_list("message",
                                                                                                         flat=True))
    assert messages == ["Archived outputs older than 45 days will be deleted.",
                        "Retention turned off: archived outputs are kept forever."]


@pytest.mark.parametrize("days", ["0", "-3", "abc", "99999999", "１２"])
def test_it_refuses_a_bad_number_of_days_with_a_message(account, client, django_user_model, days):
    user = django_user_model.objects.create_user("olga", password="pw")
    member_of(user, account, MembershipRole.OPERATOR)
    client.force_login(user)

    response = client.post(f"/archive/accounts/{account.pk}/retention/", {"days": days})

    assert response.status_code == 400
    assert b"days" in response.content
    account.refresh_from_db()
    assert account.retention_days is None


def test_a_viewer_cannot_set_the_rule_and_anrival_is_invisible(
    account, rival, client, django_user_model
):
    user = django_user_model.objects.create_user("vic", password="pw")
    member_of(user, account, MembershipRole.VIEWER)
    client.force_login(user)

    assert client.post(f"/archive/accounts/{account.pk}/retention/", {"days": "5"}).status_code == 403
    assert client.post(f"/archive/accounts/{rival.pk}/retention/", {"days": "5"}).status_code == 404
    assert set(Account.objects.values_list("retention_days", flat=True)) == {None}
