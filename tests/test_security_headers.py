"""Security headers on every answer, and pages that the Content-Security-Policy lets run whole."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.utils import timezone

from tasks_app.models import ArchiveState, Artifact, ArtifactOutput, ArtifactState, TaskKind, TaskStatus
from tasks_app.selectors import row_version

from .dashboard_helpers import make_task


def csp_directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = {}
    for part in filter(None, (p.strip() for p in header.split(";"))):
        name, *sources = part.split()
        directives[name] = sources
    return directives


class InlineCodeFinder(HTMLParser):
    """Everything a strict CSP would block: inline scripts and styles, handlers, eval'd htmx."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and not names.get("src"):
            self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("<style> element")
        for name, value in attrs:
            if name == "style":
                self.problems.append(f"style attribute on <{tag}>")
            if name.startswith("on"):
                self.problems.append(f"{name} handler on <{tag}>")
            if name.startswith(("hx-on", "data-hx-on")):
                self.problems.append(f"{name} (evaluated by htmx) on <{tag}>")
            if name == "hx-trigger" and value and "[" in value:
                self.problems.append("hx-trigger filter (evaluated by htmx)")
            if name in ("hx-vals", "hx-headers") and value and value.lstrip().startswith(("js:", "javascript:")):
                self.problems.append(f"{name} with code")
            if name in ("href", "src", "action") and value and value.strip().lower().startswith("javascript:"):
                self.problems.append("javascript: URL")


def inline_code(html: str) -> list[str]:
    finder = InlineCodeFinder()
    finder.feed(html)
    return finder.problems


@pytest.fixture
def root_client(django_user_model) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    return client


def test_it_sends_a_strict_content_security_policy(client):
    response = client.get("/accounts/login/")
    directives = csp_directives(response)
    for name in ("script-src", "style-src", "font-src"):
        assert directives[name] == ["'self'"], name
    assert directives["frame-ancestors"] == ["'none'"] and directives["object-src"] == ["'none'"]
    assert directives["default-src"] == ["'self'"] and directives["form-action"] == ["'self'"]
    assert "blob:" in directives["worker-src"]  # the 3D viewer's decoders
    everything = response["Content-Security-Policy"]
    assert "unsafe-inline" not in everything and "unsafe-eval" not in everything


def test_it_allows_media_only_from_us_arks_output_hosts_and_the_archive(client):
    media = csp_directives(client.get("/accounts/login/"))["media-src"]
    assert media[0] == "'self'"
    assert "*.volces.com" in media and "*.bytepluses.com" in media
    assert "arksim.test:80" in media  # the tests' simulator (ARKDASH_SIMULATOR_URL), on its port only
    assert "*" not in media and "https:" not in media
    assert not [source for source in media if "127.0.0.1" in source or "localhost" in source]


def test_it_sends_the_other_security_headers(client):
    response = client.get("/accounts/login/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_it_renders_no_page_with_inline_code(root_client, account):
    queued = make_task(account, status=TaskStatus.QUEUED)
    running = make_task(account, status=TaskStatus.RUNNING)
    video = make_task(account, status=TaskStatus.SUCCEEDED, archive_state=ArchiveState.ARCHIVED,
                      video_url="https://ark.example/v.mp4", outputs_expire_at=timezone.now())
    model = make_task(account, kind=TaskKind.MODEL_3D, status=TaskStatus.SUCCEEDED,
                      archive_state=ArchiveState.ARCHIVED, file_format="glb")
    for task, output, name in ((video, ArtifactOutput.VIDEO, "video.mp4"), (video, ArtifactOutput.LAST_FRAME, "f.png"),
                               (model, ArtifactOutput.MODEL_ZIP, "m.zip"), (model, ArtifactOutput.MODEL_FILE, "m.glb")):
        Artifact.objects.create(task=task, output=output, state=ArtifactState.ARCHIVED, storage_key=f"k/{name}",
                                filename=name, size=10, archived_at=timezone.now())
    pages = {
        "/": root_client.get("/"),
        "/?status=bogus": root_client.get("/?status=bogus"),
        "poll": root_client.get(f"/tasks/rows/?rows={running.pk}.1"),
        "video": root_client.get(f"/tasks/{video.pk}/"),
        "3d": root_client.get(f"/tasks/{model.pk}/"),
        "confirm": root_client.get(f"/tasks/{queued.pk}/cancel/"),
        "bulk": root_client.post("/tasks/cancel/", {"scope": "matching"}),
        "admin": root_client.get("/admin/"),
        "admin accounts": root_client.get("/admin/tasks_app/account/"),
        "admin account": root_client.get(f"/admin/tasks_app/account/{account.pk}/change/"),
        "admin audit": root_client.get("/admin/tasks_app/auditentry/"),
        "login": Client().get("/accounts/login/"),
    }
    for name, response in pages.items():
        assert response.status_code in (200, 400), name
        assert inline_code(response.content.decode()) == [], name
    assert b'<model-viewer id="output-model"' in pages["3d"].content  # the scan saw the viewer

    # The 3D viewer's page alone lets the vendored viewer style its shadow DOM and compile
    # WebAssembly; scripts stay our own files everywhere, without eval.
    viewer = csp_directives(pages["3d"])
    assert viewer["script-src"] == ["'self'", "'wasm-unsafe-eval'"]
    assert viewer["style-src"] == ["'self'", "'unsafe-inline'"]
    for name in ("/", "video", "confirm", "admin account", "login"):
        directives = csp_directives(pages[name])
        assert (directives["script-src"], directives["style-src"]) == (["'self'"], ["'self'"]), name


def test_it_finds_inline_code_when_there_is_some():
    assert inline_code('<div style="x"></div><script>1</script><a onclick="x">') == [
        "style attribute on <div>", "inline <script>", "onclick handler on <a>"]
    assert inline_code('<div hx-trigger="every 3s [ok()]"></div>') == ["hx-trigger filter (evaluated by htmx)"]


def test_it_sends_no_policy_on_an_idle_polls_empty_answer(root_client, account):
    running = make_task(account, status=TaskStatus.RUNNING)
    page = root_client.get("/").content.decode()
    seen = re.search(r'data-seen="(\d+)"', page)[1]
    newest = re.search(r'data-newest="([^"]+)"', page)[1]
    counts = re.search(r'data-counts="([^"]+)"', page)[1]
    state = f"&seen={seen}&newest={newest}&counts={counts}"
    idle = root_client.get(f"/tasks/rows/?rows={running.pk}.{row_version(running)}&health=never{state}")
    assert idle.status_code == 204 and "Content-Security-Policy" not in idle
    assert idle["X-Frame-Options"] == "DENY"
    changed = root_client.get(f"/tasks/rows/?rows={running.pk}.1&health=never{state}")
    assert changed.status_code == 200 and "Content-Security-Policy" in changed


def test_it_tells_browsers_and_proxies_not_to_store_signed_in_pages(root_client, account):
    task = make_task(account)

    for url in ("/", f"/tasks/{task.pk}/", f"/tasks/{task.pk}/cancel/", "/accounts/password_change/"):
        response = root_client.get(url)
        assert response.status_code == 200, url
        directives = {part.strip() for part in response["Cache-Control"].split(",")}
        assert {"private", "no-store"} <= directives, (url, response["Cache-Control"])

