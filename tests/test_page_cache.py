"""The list page is reused while the mirror is unchanged, and never shows anything stale that matters."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from tasks_app import page_cache, views
from tasks_app.models import Account, MembershipRole, Task, TaskStatus

from .dashboard_helpers import make_task, member_of, uncommitted_write

pytestmark = pytest.mark.django_db


@pytest.fixture
def ana(account):
    user = get_user_model().objects.create_user("ana", password="pw")
    member_of(user, account)
    return user


@pytest.fixture
def renders(monkeypatch) -> list[str]:
    """The paths whose page was rendered (not reused)."""
    seen: list[str] = []
    real = views._list_parts

    def spy(request, *args, **kwargs):
        seen.append(request.get_full_path())
        return real(request, *args, **kwargs)

    monkeypatch.setattr(views, "_list_parts", spy)
    return seen


def signed_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def csrf_tokens(html: str) -> set[str]:
    hidden = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    header = re.findall(r'"X-CSRFToken": "([^"]+)"', html)
    return set(hidden) | set(header)


def test_an_unchanged_mirror_serves_the_stored_page(ana, account, renders, django_assert_num_queries):
    make_task(account, status=TaskStatus.QUEUED)
    client = signed_in(ana)
    first = client.get("/?status=queued")

    with django_assert_num_queries(3):  # session, user, and memberships + sync health + mirror version
        second = client.get("/?status=queued")

    assert renders == ["/?status=queued"]
    assert second.status_code == 200
    without_tokens = [re.sub(r'(value="|"X-CSRFToken": ")[A-Za-z0-9]{32,}', "TOKEN", r.content.decode())
                      for r in (first, second)]  # fmt: skip
    assert without_tokens[0] == without_tokens[1]
    client.get("/?status=running")  # another query is another page
    assert renders == ["/?status=queued", "/?status=running"]


def test_a_stored_page_carries_this_answers_csrf_token_and_it_works(ana, account, renders):
    make_task(account, status=TaskStatus.QUEUED)
    client = signed_in(ana, enforce_csrf_checks=True)
    client.get("/")
    html = client.get("/").content.decode()

    assert len(renders) == 1
    assert page_cache.CSRF_SLOT not in html and page_cache.LIVE_STATUS_SLOT not in html
    [token] = csrf_tokens(html)
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/"}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 302  # a stale or placeholder token would be a 403


def test_any_change_to_a_task_shows_on_the_next_view(ana, account, renders):
    task = make_task(account, status=TaskStatus.QUEUED)
    client = signed_in(ana)
    assert 'class="badge badge-queued"' in client.get("/").content.decode()

    task.status = TaskStatus.RUNNING
    task.save()

    html = client.get("/").content.decode()
    assert 'class="badge badge-running"' in html and "badge-queued" not in html
    assert len(renders) == 2


def test_a_task_removed_from_arkdash_disappears_on_the_next_view(sim, ana, account, renders):
    from tasks_app.services import actions

    task = make_task(account, status=TaskStatus.FAILED)
    client = signed_in(ana)
    assert f'id="task-{task.pk}"' in client.get("/").content.decode()

    actions._remove_local(task, ana)

    assert f'id="task-{task.pk}"' not in client.get("/").content.decode()


def test_the_sync_banner_is_fresh_on_a_stored_page(ana, account, renders):
    make_task(account)
    client = signed_in(ana)
    Account.objects.filter(pk=account.pk).update(last_sync_ok_at=timezone.now() - timedelta(hours=3))
    client.get("/")
    synced = timezone.now().replace(microsecond=0)
    Account.objects.filter(pk=account.pk).update(last_sync_ok_at=synced)

    html = client.get("/").content.decode()

    assert len(renders) == 1
    local = timezone.localtime(synced)
    assert f'data-synced-at="{int(synced.timestamp())}"' in html
    assert f"{local:%H:%M:%S}" in html


def test_a_new_membership_shows_the_other_accounts_tasks_at_once(ana, account, renders):
    other = Account.objects.create(name="other", base_url="http://arksim.test/api/v3")
    theirs = make_task(other, status=TaskStatus.QUEUED)
    client = signed_in(ana)
    assert f'id="task-{theirs.pk}"' not in client.get("/").content.decode()

    member_of(ana, other, role=MembershipRole.VIEWER)

    assert f'id="task-{theirs.pk}"' in client.get("/").content.decode()


def test_people_never_get_each_others_page(ana, account, renders):
    make_task(account)
    bob = get_user_model().objects.create_user("bob", password="pw")
    member_of(bob, account)

    signed_in(ana).get("/")
    html = signed_in(bob).get("/").content.decode()

    assert len(renders) == 2
    assert '<span class="user">bob</span>' in html


def test_a_viewer_and_an_operator_see_their_own_buttons(ana, account, renders):
    task = make_task(account, status=TaskStatus.QUEUED)
    viewer = get_user_model().objects.create_user("vic", password="pw")
    member_of(viewer, account, role=MembershipRole.VIEWER)

    assert f"/tasks/{task.pk}/cancel/" in signed_in(ana).get("/").content.decode()
    assert f"/tasks/{task.pk}/cancel/" not in signed_in(viewer).get("/").content.decode()


def test_a_flash_message_is_shown_once_and_never_stored(sim, ana, account, renders):
    from .test_views_task_actions import mirror

    [task] = mirror(sim, account, {"status": "queued"})
    client = signed_in(ana)
    client.get("/")  # stored without a message

    response = client.post(f"/tasks/{task.pk}/cancel/", {"next": "/"}, follow=True)

    assert "Cancelled." in response.content.decode()
    assert "Cancelled." not in client.get("/").content.decode()


def test_the_page_follows_the_language(ana, account, renders):
    make_task(account)
    client = signed_in(ana)
    assert '<html lang="en"' in client.get("/").content.decode()
    html = client.get("/", headers={"Accept-Language": "zh-CN"}).content.decode()
    assert '<html lang="zh-hans"' in html


def test_relative_times_are_rendered_again_after_a_while(ana, account, renders, monkeypatch):
    make_task(account)
    client = signed_in(ana)
    client.get("/")
    client.get("/")
    assert len(renders) == 1

    later = page_cache.time.time() + page_cache.PAGE_BUCKET_SECONDS
    monkeypatch.setattr(page_cache.time, "time", lambda: later)
    client.get("/")

    assert len(renders) == 2


def test_a_page_with_rejected_parameters_is_not_stored(ana, account, renders):
    client = signed_in(ana)
    assert client.get("/?status=bogus").status_code == 400
    assert client.get("/?status=bogus").status_code == 400
    assert len(renders) == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_page_rendered_while_a_change_was_uncommitted_is_not_served_after_the_commit(ana, account, renders):
    """What the end-to-end run caught when pages were kept under MAX(changed_at): a cancel
    committing while the page rendered left "queued" on screen for good."""
    task = make_task(account, status=TaskStatus.QUEUED)
    client = signed_in(ana)
    with uncommitted_write(lambda: Task.objects.filter(pk=task.pk).update(status=TaskStatus.CANCELLED)):
        assert 'class="badge badge-queued"' in client.get("/").content.decode()  # not committed yet

    html = client.get("/").content.decode()
    assert 'class="badge badge-cancelled"' in html and "badge-queued" not in html
    assert len(renders) == 2
