"""Archive control: "Retry now" on one output and "retry all failed" for a filter (service and views)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tasks_app.models import (
    ArchiveState,
    Artifact,
    ArtifactState,
    AuditAction,
    AuditEntry,
    AuditResult,
    MembershipRole,
    Task,
)
from tasks_app.services.archive import artifact_archive, artifacts_create_for_task
from tasks_app.services.archive_control import artifact_retry, artifacts_retry_failed

from .dashboard_helpers import member_of

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true", "HX-Target": "output-1"}


@pytest.fixture
def stranger(django_user_model, rival):
    """An operator of another account only."""
    user = django_user_model.objects.create_user("sam", password="pw")
    member_of(user, rival, MembershipRole.OPERATOR)
    return user


def failed_video(sim, mirror) -> Artifact:
    """A video output whose copy failed once (a 500 from Ark's file server), backoff pending."""
    task = mirror(sim.add_task(kind="video", status="succeeded"))
    artifact = artifacts_create_for_task(task=task)[0]
    sim.faults.inject("output", "500")
    failed = artifact_archive(artifact_id=artifact.pk)
    assert failed.state == ArtifactState.FAILED and failed.next_attempt_at > timezone.now()
    return failed


def test_it_puts_a_failed_output_back_to_pending_now_keeping_its_attempts(
    sim, mirror, local_archive, operator, django_capture_on_commit_callbacks
):
    artifact = failed_video(sim, mirror)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = artifact_retry(artifact=artifact, user=operator)

    assert result.ok and result.code == "queued"
    # The copy is queued once the reset commits (the archived copy then queues its picture).
    assert callbacks[0].__qualname__ == "artifacts_enqueue.<locals>.send"
    artifact.refresh_from_db()
    # The eager worker took it at commit and copied it.
    assert artifact.state == ArtifactState.ARCHIVED
    assert artifact.attempts == 2  # attempts kept, one more for the retry
    assert Task.objects.get(pk=artifact.task_id).archive_state in (ArchiveState.ARCHIVED, ArchiveState.PENDING)
    entry = AuditEntry.objects.get(action=AuditAction.ARCHIVE_RETRY)
    assert (entry.result, entry.code, entry.username, entry.ark_id) == (
        AuditResult.DONE, "queued", "op", artifact.task.ark_id
    )


def test_it_resets_without_copying_until_the_transaction_commits(sim, mirror, local_archive, operator):
    artifact = failed_video(sim, mirror)
    before = timezone.now()

    artifact_retry(artifact=artifact, user=operator)  # on_commit never runs in this test's transaction

    artifact.refresh_from_db()
    assert artifact.state == ArtifactState.PENDING
    assert artifact.attempts == 1
    assert before <= artifact.next_attempt_at <= timezone.now()
    assert artifact.enqueued_at is not None


def test_it_retries_a_lost_output_whose_url_has_not_expired(sim, mirror, local_archive, operator):
    artifact = failed_video(sim, mirror)
    Artifact.objects.filter(pk=artifact.pk).update(state=ArtifactState.LOST, last_error="Lost: 404")

    assert artifact_retry(artifact=artifact, user=operator).ok
    artifact.refresh_from_db()
    assert artifact.state == ArtifactState.PENDING


@pytest.mark.parametrize(
    ("state", "deadline_hours", "reason"),
    [
        (ArtifactState.LOST, -1, "expired"),
        (ArtifactState.ARCHIVED, 5, "already archived"),
        (ArtifactState.PENDING, 5, "already waiting"),
        (ArtifactState.COPYING, 5, "already waiting"),
    ],
)
def test_it_refuses_an_output_in_the_wrong_state_and_audits_it(
    sim, mirror, local_archive, operator, state, deadline_hours, reason
):
    artifact = failed_video(sim, mirror)
    Artifact.objects.filter(pk=artifact.pk).update(
        state=state, deadline=timezone.now() + timedelta(hours=deadline_hours)
    )
    artifact.refresh_from_db()

    result = artifact_retry(artifact=artifact, user=operator)

    assert not result.ok and result.code == "refused"
    assert reason in result.message
    artifact.refresh_from_db()
    assert artifact.state == state  # untouched
    entry = AuditEntry.objects.get(action=AuditAction.ARCHIVE_RETRY)
    assert (entry.result, entry.code) == (AuditResult.REFUSED, "refused")


def test_it_refuses_a_viewer_and_audits_it(sim, mirror, local_archive, viewer):
    artifact = failed_video(sim, mirror)

    result = artifact_retry(artifact=artifact, user=viewer)

    assert result.code == "forbidden"
    artifact.refresh_from_db()
    assert artifact.state == ArtifactState.FAILED
    assert AuditEntry.objects.get(action=AuditAction.ARCHIVE_RETRY).result == AuditResult.REFUSED


def test_it_retries_every_failed_output_of_the_filter_and_only_those(sim, mirror, local_archive, operator):
    first, second = failed_video(sim, mirror), failed_video(sim, mirror)
    archived = Artifact.objects.get(task_id=first.task_id, output="last_frame")
    artifact_archive(artifact_id=archived.pk)

    report = artifacts_retry_failed(tasks=Task.objects.all(), user=operator)

    assert (report.queued, report.refused) == (2, 0)
    states = dict(Artifact.objects.filter(pk__in=[first.pk, second.pk]).values_list("pk", "state"))
    assert set(states.values()) == {ArtifactState.PENDING}
    assert Artifact.objects.get(pk=archived.pk).state == ArtifactState.ARCHIVED
    entries = AuditEntry.objects.filter(action=AuditAction.ARCHIVE_RETRY)
    assert sorted(entries.values_list("code", flat=True)) == ["queued", "queued", "summary"]


# --- views ---------------------------------------------------------------------------------


def test_it_shows_retry_now_to_an_operator_only(sim, mirror, local_archive, operator, viewer, client):
    artifact = failed_video(sim, mirror)
    url = f"/tasks/{artifact.task_id}/"
    client.force_login(operator)
    assert f'action="/outputs/{artifact.pk}/retry/"' in client.get(url).content.decode()
    client.force_login(viewer)
    assert f'action="/outputs/{artifact.pk}/retry/"' not in client.get(url).content.decode()


def test_it_answers_htmx_with_the_output_line(sim, mirror, local_archive, operator, client):
    artifact = failed_video(sim, mirror)
    client.force_login(operator)

    response = client.post(f"/outputs/{artifact.pk}/retry/", headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith(f'<li id="output-{artifact.pk}"')
    assert "Queued for another copy." in html


def test_it_answers_409_with_the_reason_for_the_wrong_state(sim, mirror, local_archive, operator, client):
    artifact = failed_video(sim, mirror)
    Artifact.objects.filter(pk=artifact.pk).update(state=ArtifactState.ARCHIVED)
    client.force_login(operator)

    htmx = client.post(f"/outputs/{artifact.pk}/retry/", headers=HTMX)
    plain = client.post(f"/outputs/{artifact.pk}/retry/")

    assert htmx.status_code == 409 and "already archived" in htmx.content.decode()
    assert plain.status_code == 409 and "already archived" in plain.content.decode()


def test_it_answers_403_to_a_viewer_and_404_to_another_account(
    sim, mirror, local_archive, viewer, stranger, client
):
    artifact = failed_video(sim, mirror)
    client.force_login(viewer)
    assert client.post(f"/outputs/{artifact.pk}/retry/").status_code == 403
    assert client.get(f"/outputs/{artifact.pk}/retry/").status_code == 405
    client.force_login(stranger)
    assert client.post(f"/outputs/{artifact.pk}/retry/").status_code == 404
    assert client.get(f"/outputs/{artifact.pk}/retry/").status_code == 404  # as for an id that does not exist
    artifact.refresh_from_db()
    assert artifact.state == ArtifactState.FAILED


def test_it_redirects_back_to_the_task_with_a_message_without_javascript(
    sim, mirror, local_archive, operator, client
):
    artifact = failed_video(sim, mirror)
    client.force_login(operator)

    response = client.post(f"/outputs/{artifact.pk}/retry/", follow=True)

    assert response.redirect_chain[-1][0] == f"/tasks/{artifact.task_id}/"
    assert "Queued for another copy." in response.content.decode()


def test_it_retries_all_failed_of_the_filter_from_the_list(sim, mirror, local_archive, operator, client):
    artifact = failed_video(sim, mirror)
    other = failed_video(sim, mirror)
    client.force_login(operator)

    response = client.post(f"/archive/retry-failed/?ids={artifact.task.ark_id}", follow=True)

    assert response.redirect_chain[-1][0] == f"/?ids={artifact.task.ark_id}"
    assert "1 output queued for another copy." in response.content.decode()
    assert Artifact.objects.get(pk=artifact.pk).state == ArtifactState.PENDING
    assert Artifact.objects.get(pk=other.pk).state == ArtifactState.FAILED


def test_it_refuses_retry_all_to_a_viewer_and_a_bad_filter(sim, mirror, local_archive, operator, viewer, client):
    artifact = failed_video(sim, mirror)
    client.force_login(viewer)
    assert client.post("/archive/retry-failed/").status_code == 403
    client.force_login(operator)
    response = client.post("/archive/retry-failed/?status=bogus")
    assert response.status_code == 400 and "Fix the filter" in response.content.decode()
    assert Artifact.objects.get(pk=artifact.pk).state == ArtifactState.FAILED


def test_the_output_line_polls_while_pending_and_stops_once_archived(sim, mirror, local_archive, operator, viewer,
                                                                      stranger, client):
    artifact = failed_video(sim, mirror)
    Artifact.objects.filter(pk=artifact.pk).update(state=ArtifactState.PENDING)
    client.force_login(operator)

    pending = client.get(f"/outputs/{artifact.pk}/").content.decode()
    assert f'hx-get="/outputs/{artifact.pk}/"' in pending and 'hx-trigger="every 3s"' in pending
    artifact_archive(artifact_id=artifact.pk)
    archived = client.get(f"/outputs/{artifact.pk}/").content.decode()
    assert "hx-trigger" not in archived and f"/outputs/{artifact.pk}/download/" in archived
    client.force_login(viewer)
    assert client.get(f"/outputs/{artifact.pk}/").status_code == 200
    client.force_login(stranger)
    assert client.get(f"/outputs/{artifact.pk}/").status_code == 404
