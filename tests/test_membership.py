"""Membership: people see and act only on the tasks of their accounts, with their role."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from django.utils import timezone

from tasks_app import selectors
from tasks_app.models import (
    Artifact,
    ArtifactOutput,
    ArtifactState,
    Membership,
    MembershipRole,
    Task,
)
from tasks_app.models import TaskStatus as S
from tasks_app.services import actions
from tasks_app.services.sync import sync_account

from .dashboard_helpers import make_task, member_of

HTMX = {"HX-Request": "true", "HX-Current-URL": "http://testserver/"}


@pytest.fixture
def people(django_user_model, account, rival):
    make = django_user_model.objects.create_user
    operator, viewer, outsider = make("op", password="pw"), make("viewer", password="pw"), make("out", password="pw")
    member_of(operator, account, MembershipRole.OPERATOR)
    member_of(viewer, account, MembershipRole.VIEWER)
    member_of(outsider, rival, MembershipRole.OPERATOR)
    return {
        "operator": operator,
        "viewer": viewer,
        "outsider": outsider,
        "superuser": make("root", password="pw", is_superuser=True, is_staff=True),
        "staff": make("staff", password="pw", is_staff=True),  # manages the admin, no membership
    }


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def mirror(sim, account, *specs: dict) -> list[Task]:
    ids = [sim.add_task(**spec) for spec in specs]
    sync_account(account=account, full_sweep=True)
    sim.reset_stats()
    return [Task.objects.get(account=account, ark_id=ark_id) for ark_id in ids]


# --- the selectors --------------------------------------------------------------------


def test_it_shows_each_person_the_tasks_of_their_accounts_only(account, rival, people):
    ours, theirs = make_task(account), make_task(rival)
    visible = {name: set(selectors.tasks_visible_to(user)) for name, user in people.items()}
    assert visible["operator"] == visible["viewer"] == {ours}
    assert visible["outsider"] == {theirs}
    assert visible["superuser"] == {ours, theirs}
    assert visible["staff"] == set()  # staff is not a membership
    assert set(selectors.tasks_visible_to(AnonymousUser())) == set()


def test_it_lets_only_operators_and_superusers_act(account, rival, people):
    ours, theirs = make_task(account), make_task(rival)
    operable = {name: set(selectors.tasks_operable_by(user)) for name, user in people.items()}
    assert operable["operator"] == {ours}
    assert operable["superuser"] == {ours, theirs}
    assert operable["outsider"] == {theirs}
    assert operable["viewer"] == operable["staff"] == set()
    assert selectors.can_operate(user=people["operator"], account_id=account.pk)
    assert not selectors.can_operate(user=people["viewer"], account_id=account.pk)
    assert not selectors.can_operate(user=people["outsider"], account_id=account.pk)
    assert selectors.can_operate(user=people["superuser"], account_id=rival.pk)
    assert not selectors.can_operate(user=AnonymousUser(), account_id=account.pk)


def test_it_shows_nothing_to_a_deactivated_member(account, people):
    make_task(account)
    people["operator"].is_active = False
    assert not selectors.tasks_visible_to(people["operator"]).exists()
    assert not selectors.can_operate(user=people["operator"], account_id=account.pk)


def test_it_reads_the_membership_at_query_time(account, people):
    task = make_task(account)
    viewer = people["viewer"]
    assert selectors.task_for_user(user=viewer, pk=task.pk) == task
    Membership.objects.filter(user=viewer).delete()
    assert not selectors.tasks_visible_to(viewer).exists()


def test_it_scopes_sync_health_and_model_suggestions(account, rival, people):
    make_task(account, model="our-model")
    make_task(rival, model="their-model")
    rival.failing_since = timezone.now()
    rival.last_sync_error = "rival is down"
    rival.save()
    assert selectors.known_models(access=selectors.access_for(people["viewer"])) == ["our-model"]
    assert selectors.known_models(access=selectors.access_for(people["outsider"])) == ["their-model"]
    assert selectors.sync_health(user=people["viewer"]).state == "never"
    assert selectors.sync_health(user=people["outsider"]).failing_accounts == ("rival",)


def test_it_polls_only_visible_rows(account, rival, people):
    theirs = make_task(rival, status=S.RUNNING)
    versions = {theirs.pk: 0}  # a version that differs: it would be sent if it were visible
    assert selectors.rows_changed(access=selectors.access_for(people["viewer"]), versions=versions) == []
    assert [t.pk for t in selectors.rows_changed(access=selectors.access_for(people["outsider"]), versions=versions)] == [theirs.pk]


# --- the services -----------------------------------------------------------------------


def test_it_refuses_a_viewer_without_calling_ark(sim, account, people):
    [task] = mirror(sim, account, {"status": "queued"})
    result = actions.task_cancel(task=task, user=people["viewer"])
    assert (result.ok, result.code) == (False, "forbidden")
    assert "operator" in result.message
    [done] = mirror(sim, account, {"status": "succeeded"})
    result = actions.task_delete(task=done, user=people["viewer"], confirm_unarchived=True, remove_local=True)
    assert (result.ok, result.code) == (False, "forbidden")
    assert sim.stats().get("delete", 0) == 0
    assert Task.objects.get(pk=task.pk).status == S.QUEUED and Task.objects.filter(pk=done.pk).exists()


def test_it_refuses_an_outsider_even_when_handed_the_task(sim, account, people):
    [task] = mirror(sim, account, {"status": "queued"})
    assert actions.task_cancel(task=task, user=people["outsider"]).code == "forbidden"
    assert sim.stats().get("delete", 0) == 0


def test_it_lets_an_operator_and_a_superuser_cancel(sim, account, people):
    first, second = mirror(sim, account, {"status": "queued"}, {"status": "queued"})
    assert actions.task_cancel(task=first, user=people["operator"]).code == "cancelled"
    assert actions.task_cancel(task=second, user=people["superuser"]).code == "cancelled"


def test_it_refuses_the_bulk_rows_of_accounts_the_person_only_sees(sim, account, rival, people, django_user_model):
    mixed = django_user_model.objects.create_user("mixed", password="pw")
    member_of(mixed, account, MembershipRole.OPERATOR)
    member_of(mixed, rival, MembershipRole.VIEWER)
    [ours] = mirror(sim, account, {"status": "queued"})
    [theirs] = mirror(sim, rival, {"status": "queued"})
    report = actions.tasks_cancel_bulk(tasks=[ours, theirs], user=mixed)
    assert (report.cancelled, report.refused, report.failed) == (1, 1, 0)
    assert Task.objects.get(pk=theirs.pk).status == S.QUEUED
    assert sim.stats()["delete"] == 1


# --- the views ---------------------------------------------------------------------------


def test_it_answers_404_for_another_accounts_task_and_artifact(account, rival, people):
    theirs = make_task(rival, status=S.SUCCEEDED, model="secret-model-x")
    artifact = Artifact.objects.create(task=theirs, output=ArtifactOutput.VIDEO, state=ArtifactState.ARCHIVED,
                                       storage_key="tasks/x/video.mp4", filename="video.mp4")
    client = client_for(people["viewer"])
    for url in (f"/tasks/{theirs.pk}/", f"/tasks/{theirs.pk}/cancel/", f"/tasks/{theirs.pk}/delete/",
                f"/outputs/{artifact.pk}/download/"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert theirs.ark_id.encode() not in response.content and b"secret-model-x" not in response.content
    for url in (f"/tasks/{theirs.pk}/cancel/", f"/tasks/{theirs.pk}/delete/"):
        assert client.post(url).status_code == 404
    # The same answer as for an id that does not exist at all.
    assert client.get("/tasks/987654321/").status_code == 404


def test_it_answers_a_viewer_403_with_a_plain_message_and_shows_no_buttons(sim, account, people):
    [queued] = mirror(sim, account, {"status": "queued"})
    [done] = mirror(sim, account, {"status": "succeeded"})
    viewer = client_for(people["viewer"])
    for url in (f"/tasks/{queued.pk}/cancel/", f"/tasks/{done.pk}/delete/"):
        for response in (viewer.get(url), viewer.post(url), viewer.post(url, headers=HTMX)):
            assert response.status_code == 403, url
            assert b"operator" in response.content
    assert sim.stats().get("delete", 0) == 0

    listing = viewer.get("/").content.decode()
    assert queued.ark_id in listing
    assert f"/tasks/{queued.pk}/cancel/" not in listing and f"/tasks/{done.pk}/delete/" not in listing
    assert 'name="scope"' not in listing  # no bulk buttons
    detail = viewer.get(f"/tasks/{queued.pk}/").content.decode()
    assert "detail-actions" not in detail and f"/tasks/{queued.pk}/cancel/" not in detail

    operator = client_for(people["operator"]).get("/").content.decode()
    assert f"/tasks/{queued.pk}/cancel/" in operator and 'value="matching"' in operator


def test_it_bulk_cancels_everything_matching_only_in_operated_accounts(sim, account, rival, people,
                                                                        django_user_model):
    mixed = django_user_model.objects.create_user("mixed", password="pw")
    member_of(mixed, account, MembershipRole.OPERATOR)
    member_of(mixed, rival, MembershipRole.VIEWER)
    ours = mirror(sim, account, {"status": "queued"}, {"status": "queued"})
    [theirs] = mirror(sim, rival, {"status": "queued"})
    client = client_for(mixed)
    listing = client.get("/").content.decode()
    assert "Cancel all 2 queued tasks matching this filter" in listing  # not 3: one is only visible
    response = client.post("/tasks/cancel/", {"scope": "matching", "confirmed": "1"})
    assert response.status_code == 302
    assert {t.status for t in Task.objects.filter(pk__in=[t.pk for t in ours])} == {S.CANCELLED}
    assert Task.objects.get(pk=theirs.pk).status == S.QUEUED


def test_it_keeps_a_callback_for_one_account_away_from_anothers_task_with_the_same_id(sim, account, rival):
    ark_id = sim.add_task(kind="video", status="succeeded")
    theirs = make_task(rival, status=S.QUEUED, ark_id=ark_id)
    before = Task.objects.get(pk=theirs.pk).changed_at
    response = Client().post(f"/hooks/ark/{account.callback_secret}/", data=json.dumps({"id": ark_id}),
                             content_type="application/json")
    assert response.status_code == 200
    assert Task.objects.get(account=account, ark_id=ark_id).status == S.SUCCEEDED
    untouched = Task.objects.get(pk=theirs.pk)
    assert (untouched.status, untouched.changed_at) == (S.QUEUED, before)


def test_it_tells_a_person_without_membership_to_ask_for_one(account, django_user_model):
    make_task(account)
    client = client_for(django_user_model.objects.create_user("new", password="pw"))
    html = client.get("/").content.decode()
    assert "not a member of any Ark account" in html and "set ARK_API_KEY" not in html
    assert selectors.sync_health(user=AnonymousUser()).state == "none"


def test_it_shows_the_archive_lag_of_the_persons_own_accounts(account, rival, people):
    from datetime import timedelta

    from django.core.cache import cache

    late = make_task(rival, status=S.SUCCEEDED, ark_updated_at=timezone.now() - timedelta(hours=2))
    artifact = Artifact.objects.create(task=late, output=ArtifactOutput.VIDEO, state=ArtifactState.PENDING)
    Artifact.objects.filter(pk=artifact.pk).update(created=late.ark_updated_at)  # found 2 h ago, still waiting
    cache.clear()
    assert "Archive lag" not in client_for(people["viewer"]).get("/").content.decode()
    assert "Archive lag: 2 h" in client_for(people["outsider"]).get("/").content.decode()
    assert "Archive lag: 2 h" in client_for(people["superuser"]).get("/").content.decode()
