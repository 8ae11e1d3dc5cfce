from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime

import httpx
import pytest
from django.urls import reverse

from tasks_app.lib import file_responses, storage
from tasks_app.models import Artifact, ArtifactState, MembershipRole, Task

from .dashboard_helpers import member_of

BODY = os.urandom(300_000)
pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer_client(client, django_user_model, account):
    user = django_user_model.objects.create_user(username="viewer", password="pw")
    member_of(user, account, MembershipRole.VIEWER)  # viewers may download
    client.force_login(user)
    return client


def archived_artifact(
    account, *, state: str = ArtifactState.ARCHIVED, body: bytes = BODY, store: bool = True
):
    task = Task.objects.create(
        account=account,
        ark_id="cgt-20250331175019-68d9t",
        kind="video",
        status="succeeded",
        ark_created_at=datetime(2025, 3, 31, 9, 50, tzinfo=UTC),
    )
    key = storage.artifact_key(account_id=account.pk, ark_id=task.ark_id, filename="video.mp4")
    if store:
        writer = storage.open_writer(key, content_type="video/mp4")
        writer.write(body)
        writer.publish()
    return Artifact.objects.create(
        task=task,
        output="video",
        state=state,
        storage_key=key,
        filename=f"{task.ark_id}-video.mp4",
        content_type="video/mp4",
        size=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        archived_at=datetime(2025, 3, 31, 10, 0, tzinfo=UTC),
    )


def url_for(artifact: Artifact, query: str = "") -> str:
    return reverse("tasks_app:artifact_download", args=[artifact.pk]) + query


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_it_sends_anonymous_people_to_log_in(client, account, local_archive):
    artifact = archived_artifact(account)

    response = client.get(url_for(artifact))

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_it_answers_404_to_someone_outside_the_tasks_account(
    client, django_user_model, account, local_archive
):
    artifact = archived_artifact(account)
    stranger = django_user_model.objects.create_user(username="stranger", password="pw")
    client.force_login(stranger)

    response = client.get(url_for(artifact))

    assert response.status_code == 404  # not 403: the output's existence is not revealed


def test_it_answers_404_for_an_unknown_output(viewer_client, local_archive):
    assert viewer_client.get(reverse("tasks_app:artifact_download", args=[999999])).status_code == 404


@pytest.mark.parametrize("state", [ArtifactState.PENDING, ArtifactState.COPYING, ArtifactState.LOST])
def test_it_answers_404_until_the_output_is_archived(viewer_client, account, local_archive, state):
    artifact = archived_artifact(account, state=state, store=False)

    assert viewer_client.get(url_for(artifact)).status_code == 404


def test_it_streams_the_whole_file_as_a_named_attachment(viewer_client, account, local_archive):
    artifact = archived_artifact(account)

    response = viewer_client.get(url_for(artifact))

    assert response.status_code == 200
    assert body_of(response) == BODY
    assert response["Content-Length"] == str(len(BODY))
    assert response["Content-Type"] == "video/mp4"
    assert response["Content-Disposition"] == 'attachment; filename="cgt-20250331175019-68d9t-video.mp4"'
    assert response["Accept-Ranges"] == "bytes"
    assert response["ETag"] == f'"{artifact.sha256}"'


def test_it_serves_inline_for_players(viewer_client, account, local_archive):
    artifact = archived_artifact(account)

    response = viewer_client.get(url_for(artifact, "?inline=1"))

    assert response["Content-Disposition"].startswith("inline;")


@pytest.mark.parametrize(
    "header, start, end",
    [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, len(BODY) - 1),
        ("bytes=-500", len(BODY) - 500, len(BODY) - 1),
    ],
)
def test_it_answers_a_range_with_206_and_only_those_bytes(
    viewer_client, account, local_archive, header, start, end
):
    artifact = archived_artifact(account)

    response = viewer_client.get(url_for(artifact), HTTP_RANGE=header)

    assert response.status_code == 206
    assert body_of(response) == BODY[start : end + 1]
    assert response["Content-Range"] == f"bytes {start}-{end}/{len(BODY)}"
    assert response["Content-Length"] == str(end - start + 1)


def test_it_answers_416_for_a_range_past_the_end(viewer_client, account, local_archive):
    artifact = archived_artifact(account)

    response = viewer_client.get(url_for(artifact), HTTP_RANGE=f"bytes={len(BODY)}-")

    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(BODY)}"


def test_it_sends_the_whole_file_when_if_range_does_not_match(viewer_client, account, local_archive):
    artifact = archived_artifact(account)

    response = viewer_client.get(url_for(artifact), HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"stale"')

    assert response.status_code == 200
    assert body_of(response) == BODY


def test_it_honours_if_range_when_the_etag_matches(viewer_client, account, local_archive):
    artifact = archived_artifact(account)

    response = viewer_client.get(
        url_for(artifact), HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=f'"{artifact.sha256}"'
    )

    assert response.status_code == 206
    assert body_of(response) == BODY[:10]


def test_it_answers_304_when_the_browser_has_it(viewer_client, account, local_archive):
    artifact = archived_artifact(account)

    response = viewer_client.get(url_for(artifact), HTTP_IF_NONE_MATCH=f'"{artifact.sha256}"')

    assert response.status_code == 304


def test_it_answers_head_with_headers_only(viewer_client, account, local_archive):
    artifact = archived_artifact(account)

    response = viewer_client.head(url_for(artifact), HTTP_RANGE="bytes=0-9")

    assert response.status_code == 206
    assert response["Content-Length"] == "10"
    assert body_of(response) == b""


def test_it_refuses_other_methods(viewer_client, account, local_archive):
    artifact = archived_artifact(account)

    assert viewer_client.post(url_for(artifact)).status_code == 405


def test_it_says_so_when_the_stored_file_is_missing(viewer_client, account, local_archive):
    artifact = archived_artifact(account, store=False)

    response = viewer_client.get(url_for(artifact))

    assert response.status_code == 503
    assert b"cannot be read" in response.content


def test_it_redirects_to_a_short_lived_presigned_url_on_s3(viewer_client, account, s3_archive):
    artifact = archived_artifact(account)

    response = viewer_client.get(url_for(artifact))

    assert response.status_code == 302
    assert response["Cache-Control"] == "private, no-store"
    presigned = response["Location"]
    assert presigned.startswith(s3_archive.endpoint)
    assert "Expires=" in presigned or "X-Amz-Expires=300" in presigned
    fetched = httpx.get(presigned, headers={"Range": "bytes=0-99"})
    assert fetched.status_code == 206
    assert fetched.content == BODY[:100]
    assert (
        fetched.headers["content-disposition"] == 'attachment; filename="cgt-20250331175019-68d9t-video.mp4"'
    )


@pytest.mark.parametrize("header", ["bytes=" + "9" * 5000 + "-", "bytes=0-" + "1" * 4301, "bytes=-" + "7" * 9000])
def test_it_ignores_a_range_with_more_digits_than_python_parses(viewer_client, account, local_archive, header):
    artifact = archived_artifact(account)

    response = viewer_client.get(url_for(artifact), HTTP_RANGE=header)

    assert response.status_code == 200
    assert body_of(response) == BODY


class _OpenedFiles:
    """Every file the download view opens, to see that each one is closed again."""

    def __init__(self) -> None:
        self.files: list = []

    def __call__(self, *args, **kwargs):
        file = open(*args, **kwargs)  # noqa: SIM115 - the point is to watch it being closed
        self.files.append(file)
        return file


@pytest.mark.parametrize(
    "method, headers",
    [
        ("get", {}),
        ("get", {"HTTP_RANGE": "bytes=0-9"}),
        ("get", {"HTTP_RANGE": "bytes=999999999-"}),  # 416
        ("get", {"HTTP_RANGE": "bytes=" + "9" * 5000 + "-"}),
        ("get", {"HTTP_IF_NONE_MATCH": "*"}),  # 304
        ("head", {"HTTP_RANGE": "bytes=0-9"}),
    ],
)
def test_it_closes_the_file_on_every_path(viewer_client, account, local_archive, monkeypatch, method, headers):
    artifact = archived_artifact(account)
    opened = _OpenedFiles()
    monkeypatch.setattr(file_responses, "open", opened, raising=False)

    response = getattr(viewer_client, method)(url_for(artifact), **headers)
    response.close()  # what the server does once the answer is sent, read to the end or not

    assert response.status_code < 500
    assert len(opened.files) == 1
    assert opened.files[0].closed


def test_it_closes_the_file_of_a_range_nobody_started_reading(viewer_client, account, local_archive, monkeypatch):
    artifact = archived_artifact(account)
    opened = _OpenedFiles()
    monkeypatch.setattr(file_responses, "open", opened, raising=False)

    response = viewer_client.get(url_for(artifact), HTTP_RANGE="bytes=0-9")
    response.close()  # the client went away before the first byte

    assert response.status_code == 206
    assert opened.files[0].closed


def test_it_answers_only_the_canonical_id_of_an_output(viewer_client, account, local_archive):
    artifact = archived_artifact(account)

    assert viewer_client.get(f"/outputs/{artifact.pk}/download/").status_code == 200
    assert viewer_client.get(f"/outputs/0{artifact.pk}/download/").status_code == 404


def test_it_keeps_its_own_caching_rule_for_downloads(viewer_client, account, local_archive):
    artifact = archived_artifact(account)

    assert viewer_client.get(url_for(artifact))["Cache-Control"] == "private, max-age=3600"
