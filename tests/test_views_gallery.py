"""The gallery page and the picture download: the list's filters, paging and access rule."""

from __future__ import annotations

import html
import io
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from PIL import Image

from tasks_app.lib import storage
from tasks_app.models import (
    Account,
    Artifact,
    ArtifactOutput,
    ArtifactState,
    Picture,
    PictureState,
    TaskKind,
    TaskStatus,
)
from tasks_app.services import pictures

from .dashboard_helpers import make_task, member_of

pytestmark = pytest.mark.django_db


def card_ids(response) -> list[str]:
    return re.findall(r'<li class="gallery-card[^"]*" id="card-(\d+)"', response.content.decode())


def give_picture(task, *, state: str = PictureState.READY) -> Picture:
    """A real picture stored as the archive would store it."""
    encoded = pictures.encode(pictures.placeholder_image())
    key = storage.artifact_key(account_id=task.account_id, ark_id=task.ark_id, filename="picture.webp")
    writer = storage.open_writer(key, content_type=encoded.content_type)
    writer.write(encoded.data)
    writer.publish()
    return Picture.objects.create(
        task=task, source_output=ArtifactOutput.LAST_FRAME, state=state, storage_key=key,
        content_type=encoded.content_type, size=len(encoded.data), width=encoded.width, height=encoded.height,
        sha256="ab" * 32,
    )


def archived_video(task) -> Artifact:
    return Artifact.objects.create(task=task, output=ArtifactOutput.VIDEO, state=ArtifactState.ARCHIVED,
                                   storage_key=f"outputs/{task.account_id}/{task.ark_id}/video.mp4",
                                   filename="v.mp4", content_type="video/mp4")


def test_it_requires_login(client, db):
    response = client.get("/gallery/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_shows_the_filtered_tasks_as_cards_newest_first(user_client, account, local_archive):
    old = make_task(account, status=TaskStatus.SUCCEEDED, created=timezone.now() - timedelta(hours=5))
    new = make_task(account, status=TaskStatus.SUCCEEDED, kind=TaskKind.MODEL_3D)
    failed = make_task(account, status=TaskStatus.FAILED, created=timezone.now() - timedelta(hours=1))
    give_picture(old)
    archived_video(old)

    response = user_client.get("/gallery/")

    assert response.status_code == 200
    assert card_ids(response) == [str(new.pk), str(failed.pk), str(old.pk)]
    body = response.content.decode()
    card = body.split(f'id="card-{old.pk}"', 1)[1].split("</li>", 1)[0]
    assert f'src="/tasks/{old.pk}/picture/?v=' in card and 'loading="lazy"' in card
    video = Artifact.objects.get(task=old)
    assert f'<video class="gallery-video" src="/outputs/{video.pk}/download/?inline=1" preload="none" muted' in card
    assert f'href="/tasks/{old.pk}/"' in card and old.model in card
    # No output: the status, not an empty box.
    failed_card = body.split(f'id="card-{failed.pk}"', 1)[1].split("</li>", 1)[0]
    assert "<img" not in failed_card and "gallery-status-box" in failed_card and "No output" in failed_card

    filtered = user_client.get("/gallery/?status=failed")
    assert card_ids(filtered) == [str(failed.pk)]
    threed = user_client.get("/gallery/?kind=3d")
    assert card_ids(threed) == [str(new.pk)]


def test_it_pages_by_cursor_like_the_list(user_client, account):
    tasks = [make_task(account, created=timezone.now() - timedelta(minutes=i)) for i in range(25)]

    first = user_client.get("/gallery/?page_size=10")
    assert card_ids(first) == [str(t.pk) for t in tasks[:10]]
    older = re.search(r'<a class="btn btn-small" href="([^"]*)" rel="next"', first.content.decode())[1]
    second = user_client.get("/gallery/" + html.unescape(older))
    assert card_ids(second) == [str(t.pk) for t in tasks[10:20]]
    # The list shows the same page for the same URL.
    listed = user_client.get("/" + html.unescape(older))
    assert re.findall(r'<tr id="task-(\d+)"', listed.content.decode()) == card_ids(second)


def test_the_toggle_keeps_the_query_string_both_ways(user_client, account):
    make_task(account)
    query = "status=queued&kind=video&page_size=10"

    gallery = user_client.get(f"/gallery/?{query}").content.decode()
    listed = user_client.get(f"/?{query}").content.decode()

    for body in (gallery, listed):
        assert f'href="/?{html.escape(query)}" id="view-list"' in body
        assert f'href="/gallery/?{html.escape(query)}" id="view-gallery"' in body
    assert 'id="view-gallery" aria-current="page"' in gallery
    assert 'id="view-list" aria-current="page"' in listed
    # The filter form of the gallery submits to the gallery.
    assert '<form method="get" action="/gallery/" class="filters"' in gallery
    assert '<form method="get" action="/" class="filters"' in listed


def test_it_explains_a_bad_parameter_with_a_400(user_client, account):
    response = user_client.get("/gallery/?after=garbage&status=bogus")
    assert response.status_code == 400
    assert "page position is not valid" in response.content.decode()


def test_a_user_of_another_account_sees_no_card_and_no_picture(client, django_user_model, account, local_archive):
    task = make_task(account, status=TaskStatus.SUCCEEDED)
    give_picture(task)
    other = Account.objects.create(name="other", base_url="http://other.test/api/v3")
    outsider = django_user_model.objects.create_user("bo", password="pw")
    member_of(outsider, other)
    client.force_login(outsider)

    assert card_ids(client.get("/gallery/")) == []
    assert client.get(f"/tasks/{task.pk}/picture/").status_code == 404


def test_it_serves_the_picture_to_a_member(user_client, account, local_archive):
    task = make_task(account, status=TaskStatus.SUCCEEDED)
    picture = give_picture(task)

    response = user_client.get(f"/tasks/{task.pk}/picture/")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    data = b"".join(response.streaming_content)
    assert len(data) == picture.size
    assert Image.open(io.BytesIO(data)).size == (480, 270)
    assert "attachment" not in response["Content-Disposition"]
    # A task without a picture: 404, not a 500.
    bare = make_task(account, status=TaskStatus.SUCCEEDED)
    assert user_client.get(f"/tasks/{bare.pk}/picture/").status_code == 404


def grid_tag(response) -> str:
    return re.search(r'<ul class="gallery-grid" id="gallery-cards"[^>]*>', response.content.decode())[0]


def test_the_grid_refreshes_itself_while_a_card_can_change_and_answers_204_when_none_moved(
    user_client, account, local_archive
):
    done = make_task(account, status=TaskStatus.FAILED)
    settled = user_client.get("/gallery/")
    assert "hx-trigger" not in grid_tag(settled)  # nothing on the page can change: no poll

    queued = make_task(account, status=TaskStatus.QUEUED)
    page = user_client.get("/gallery/?kind=video")
    tag = grid_tag(page)
    assert 'hx-get="/gallery/?kind=video"' in tag and 'hx-trigger="every 5s, arkdash:refresh"' in tag
    seen = re.search(r'"X-Gallery-Seen": "([0-9a-f]+)"', html.unescape(tag))[1]

    poll = {"HX-Request": "true", "X-Gallery-Seen": seen}
    assert user_client.get("/gallery/?kind=video", headers=poll).status_code == 204  # nothing moved

    queued.status = TaskStatus.RUNNING
    queued.save()
    moved = user_client.get("/gallery/?kind=video", headers=poll)
    assert moved.status_code == 200
    body = moved.content.decode()
    assert body.lstrip().startswith('<ul class="gallery-grid"') and "<html" not in body  # the grid alone
    card = body.split(f'id="card-{queued.pk}"', 1)[1].split("</li>", 1)[0]
    assert "running" in card and f'id="card-{done.pk}"' in body


def test_a_succeeded_task_waits_for_its_picture_then_the_poll_stops(user_client, account, local_archive):
    task = make_task(account, status=TaskStatus.SUCCEEDED, archive_state="archived",
                     finished_at=timezone.now() - timedelta(minutes=2))
    assert "hx-trigger" in grid_tag(user_client.get("/gallery/"))  # its picture job is under way

    give_picture(task)
    assert "hx-trigger" not in grid_tag(user_client.get("/gallery/"))
    # A picture that never came for an old task does not keep the page polling for ever.
    Picture.objects.filter(task=task).delete()
    task.finished_at = timezone.now() - timedelta(days=1)
    task.save()
    assert "hx-trigger" not in grid_tag(user_client.get("/gallery/"))
