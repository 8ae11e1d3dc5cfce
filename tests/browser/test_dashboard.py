"""What a person sees: Chromium against the live dashboard, the simulator behind it."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tasks_app.models import ArchiveState, Artifact, ArtifactOutput, ArtifactState, Task, TaskStatus
from tasks_app.services.sync import sync_account

from .conftest import log_in, open_context, screenshot

# wait_for_function takes arrow functions here: Playwright evaluates a bare expression with
# eval() inside the page, which the Content-Security-Policy (rightly) blocks.

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def mirror(sim, account, *specs: dict) -> list[Task]:
    """Seed tasks in the simulator and mirror them with the real sync."""
    ids = [sim.add_task(**spec) for spec in specs]
    sync_account(account=account, full_sweep=True)
    return [Task.objects.get(account=account, ark_id=ark_id) for ark_id in ids]


def row(page, task: Task):
    return page.locator(f"#task-{task.pk}")


def test_it_logs_in_and_filters_by_status_and_by_several_ids(sim, account, dashboard_user, page, live_server):
    queued = mirror(sim, account, *[{"status": "queued"}] * 2)
    failed = mirror(sim, account, {"status": "failed", "error_code": "InternalServiceError"},
                    {"status": "failed"})
    succeeded = mirror(sim, account, {"status": "succeeded"}, {"status": "succeeded", "kind": "3d"})
    log_in(page, live_server)
    expect(page.get_by_role("heading", name="Tasks")).to_be_visible()
    expect(page.locator("tbody tr")).to_have_count(6)
    expect(page.locator("footer")).to_contain_text("Asia/Shanghai")  # the browser's zone, not the server's
    # Nothing runs off the side of a laptop's screen (the export buttons once did at 1280 px).
    page.set_viewport_size({"width": 1280, "height": 900})
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1280
    page.set_viewport_size({"width": 1400, "height": 900})

    # The copy button puts the id on the clipboard.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    row(page, failed[0]).locator("button.copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == failed[0].ark_id

    # A status chip is a plain link: the URL is the state.
    page.locator(".chip-failed").click()
    page.wait_for_url(re.compile(r"status=failed"))
    expect(page.locator("tbody tr")).to_have_count(2)
    for task in failed:
        expect(row(page, task).locator(".badge")).to_have_text("failed")

    # Another status on top, through the form's checkboxes.
    page.get_by_label("queued", exact=True).check()
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("tbody tr")).to_have_count(4)
    page.go_back()  # the back button returns to the previous filter
    expect(page.locator("tbody tr")).to_have_count(2)

    # Several ids pasted on separate lines, with a stray comma.
    page.goto(f"{live_server.url}/")
    page.get_by_label("Task ids").fill(f"{queued[0].ark_id}\n{succeeded[1].ark_id},")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("tbody tr")).to_have_count(2)
    expect(row(page, queued[0])).to_be_visible()
    expect(row(page, succeeded[1])).to_be_visible()

    # Bad input is explained on the page.
    page.goto(f"{live_server.url}/?status=bogus&after=0")
    expect(page.locator("#filter-errors")).to_contain_text("page position is not valid")
    expect(page.locator("#filter-errors")).to_contain_text("bogus")


def test_it_shows_a_row_go_queued_running_succeeded_without_reloading(sim, account, dashboard_user, page,
                                                                         live_server):
    [task] = mirror(sim, account, {"status": "queued"})
    done = mirror(sim, account, {"status": "succeeded"}, {"status": "failed"})
    log_in(page, live_server)
    page.evaluate("window.__sameDocument = true")
    expect(row(page, task).locator(".badge")).to_have_text("queued")
    expect(page.locator("#live-poller")).to_have_count(1)

    sim.advance(sim.queue_seconds + 1)
    sync_account(account=account)
    expect(row(page, task).locator(".badge")).to_have_text("running", timeout=15_000)

    sim.advance(sim.run_seconds + 1)
    sync_account(account=account)
    expect(row(page, task).locator(".badge")).to_have_text("succeeded", timeout=15_000)
    expect(row(page, task).locator(".archive")).to_have_text("archived", timeout=15_000)
    assert page.evaluate("window.__sameDocument") is True  # swapped in place, never reloaded
    assert row(page, task).get_attribute("data-live") is None  # finished: no longer polled
    expect(row(page, done[0]).locator(".badge")).to_have_text("succeeded")
    screenshot(page, "task-list-en")


def test_it_cancels_a_queued_task_with_a_confirmation(sim, account, dashboard_user, page, live_server):
    [task] = mirror(sim, account, {"status": "queued"})
    log_in(page, live_server)
    sim.faults.inject("delete", "latency", latency=1.5)  # long enough to see "cancelling…"
    dialogs: list[str] = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    row(page, task).get_by_role("link", name="Cancel").click()
    expect(row(page, task).locator(".busy-cancel")).to_be_visible()
    expect(row(page, task).locator(".row-message")).to_have_text("Cancelled.")
    expect(row(page, task).locator(".row-message")).to_be_focused()  # keyboard users land on the outcome
    expect(row(page, task).locator(".badge")).to_have_text("cancelled")
    assert dialogs and task.ark_id in dialogs[0]
    assert Task.objects.get(pk=task.pk).status == TaskStatus.CANCELLED


def test_it_explains_a_refused_cancel_on_the_row(sim, account, dashboard_user, page, live_server):
    [task] = mirror(sim, account, {"status": "queued"})
    log_in(page, live_server)
    sim.advance(sim.queue_seconds + 1)  # it starts upstream; the page still offers Cancel
    page.once("dialog", lambda dialog: dialog.accept())
    row(page, task).get_by_role("link", name="Cancel").click()
    message = row(page, task).locator(".row-message")
    expect(message).to_contain_text("Ark refused to cancel")
    expect(message).to_contain_text("already running")
    expect(row(page, task).locator(".badge")).to_have_text("running")


def test_it_plays_the_video_renders_the_3d_model_and_downloads_an_archived_output(sim, account, dashboard_user,
                                                                                  page, live_server, chromium):
    video, model = mirror(sim, account, {"status": "succeeded", "kind": "video"},
                          {"status": "succeeded", "kind": "3d", "file_format": "glb"})
    for task in (video, model):
        task.refresh_from_db()
        assert task.archive_state == ArchiveState.ARCHIVED, list(task.artifacts.values("output", "state", "last_error"))
    log_in(page, live_server)

    page.goto(f"{live_server.url}/tasks/{video.pk}/")
    page.wait_for_function("() => document.querySelector('#output-video').readyState >= 1")
    page.evaluate("() => { const v = document.querySelector('#output-video'); v.muted = true; return v.play(); }")
    page.wait_for_function("() => document.querySelector('#output-video').currentTime > 0", timeout=15_000)
    expect(page.locator("#output-last-frame")).to_be_visible()
    assert page.evaluate("document.querySelector('#output-last-frame').naturalWidth") > 0
    screenshot(page, "task-detail-video-en")

    archived_video = Artifact.objects.get(task=video, output=ArtifactOutput.VIDEO, state=ArtifactState.ARCHIVED)
    link = page.locator(".downloads li", has_text="video (mp4)").get_by_role("link", name="Download")
    with page.expect_download() as info:
        link.click()
    path = Path(info.value.path())
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sim.output_sha256(video.ark_id, "video")
    assert info.value.suggested_filename == archived_video.filename

    page.goto(f"{live_server.url}/tasks/{model.pk}/")
    page.wait_for_function("() => document.querySelector('#output-model') && document.querySelector('#output-model').loaded === true",
                           timeout=30_000)
    # Visible once the first frame with the model is drawn, a moment after 'loaded' on a
    # busy machine: wait for it (a model that never shows fails here after 15 s).
    page.wait_for_function("() => document.querySelector('#output-model').modelIsVisible === true", timeout=15_000)
    screenshot(page, "task-detail-3d-en")

    # The same pages in Simplified Chinese.
    context = open_context(chromium, locale="zh-CN")
    zh = context.new_page()
    try:
        log_in_zh(zh, live_server)
        expect(zh.get_by_role("heading", name="任务")).to_be_visible()
        screenshot(zh, "task-list-zh-hans")
        zh.goto(f"{live_server.url}/tasks/{model.pk}/")
        zh.wait_for_function("() => document.querySelector('#output-model').loaded === true", timeout=30_000)
        expect(zh.get_by_role("heading", name="产物")).to_be_visible()
        screenshot(zh, "task-detail-3d-zh-hans")
        zh.goto(f"{live_server.url}/tasks/{video.pk}/")
        screenshot(zh, "task-detail-video-zh-hans")
    finally:
        context.close()


def log_in_zh(page, live_server) -> None:
    from .conftest import PASSWORD

    page.goto(f"{live_server.url}/")
    page.wait_for_url("**/accounts/login/**")
    page.get_by_label("用户名").fill("ana")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(f"{live_server.url}/")


def test_it_works_without_javascript(sim, account, dashboard_user, chromium, live_server):
    queued, other = mirror(sim, account, {"status": "queued"}, {"status": "queued"})
    context = open_context(chromium, java_script_enabled=False)
    page = context.new_page()
    try:
        log_in(page, live_server)
        page.locator(".chip-queued").click()
        expect(page.locator("tbody tr")).to_have_count(2)
        row(page, queued).get_by_role("link", name="Cancel").click()  # the plain href: a confirmation page
        expect(page.get_by_role("heading")).to_contain_text(f"Cancel {queued.ark_id}?")
        page.get_by_role("button", name="Cancel the task").click()
        page.wait_for_url(re.compile(r"/\?status=queued$"))
        expect(page.locator(".messages")).to_contain_text("Cancelled.")
        expect(row(page, queued)).to_have_count(0)  # no longer queued: out of this filter
        assert Task.objects.get(pk=queued.pk).status == TaskStatus.CANCELLED
        # Bulk cancel asks on a page with the count when no dialog can.
        page.get_by_role("button", name=re.compile("Cancel the 1 queued task")).click()
        expect(page.locator("main")).to_contain_text("1 queued task matches this filter")
        page.get_by_role("button", name="Cancel 1 task").click()
        expect(page.locator(".messages")).to_contain_text("1 task cancelled.")
        assert Task.objects.get(pk=other.pk).status == TaskStatus.CANCELLED
    finally:
        context.close()
