"""Getting around: admin and password links, the favicon, HEAD on pages, a styled page for a lost output."""

from __future__ import annotations

from django.urls import reverse

from tasks_app.models import Artifact, ArtifactOutput, ArtifactState, TaskStatus

from .dashboard_helpers import make_task, member_of


def _login(client, django_user_model, account, *, staff: bool = False):
    user = django_user_model.objects.create_user("ana", password="pw", is_staff=staff)
    member_of(user, account)
    client.force_login(user)
    return client


def test_it_links_staff_to_the_admin_and_everyone_to_the_password_change(client, django_user_model, account):
    task = make_task(account)
    user_client = _login(client, django_user_model, account)
    html = user_client.get(f"/tasks/{task.pk}/").content.decode()
    assert f'href="{reverse("password_change")}"' in html and 'id="nav-admin"' not in html

    django_user_model.objects.filter(username="ana").update(is_staff=True)
    html = user_client.get(f"/tasks/{task.pk}/").content.decode()
    assert f'href="{reverse("admin:index")}" id="nav-admin"' in html


def test_it_sends_favicon_ico_to_the_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("img/favicon.svg")


def test_it_answers_head_on_pages(client, django_user_model, account):
    task = make_task(account)
    assert client.head(reverse("login")).status_code == 200
    user_client = _login(client, django_user_model, account)
    response = user_client.head(f"/tasks/{task.pk}/")
    assert response.status_code == 200 and response.content == b""
    # The confirm pages stay GET/POST: their view acts on anything but GET.
    assert user_client.head(reverse("tasks_app:task_cancel", args=[task.pk])).status_code == 405


def test_it_explains_a_lost_output_on_a_styled_page(client, django_user_model, account):
    task = make_task(account, status=TaskStatus.SUCCEEDED)
    artifact = Artifact.objects.create(task=task, output=ArtifactOutput.VIDEO, state=ArtifactState.LOST,
                                       last_error="Lost: the output URL expired before a copy succeeded")
    user_client = _login(client, django_user_model, account)
    response = user_client.get(reverse("tasks_app:artifact_download", args=[artifact.pk]))
    html = response.content.decode()
    assert response.status_code == 404
    assert "stopped working before ArkDash could copy it" in html and "the output URL expired" in html
    assert 'class="topbar"' in html and f'href="{reverse("tasks_app:task_detail", args=[task.pk])}"' in html


def test_it_styles_the_404_page(client, django_user_model, account, settings):
    settings.DEBUG = False
    user_client = _login(client, django_user_model, account)
    response = user_client.get("/no/such/page/")
    assert response.status_code == 404 and 'class="topbar"' in response.content.decode()
