"""The gallery as a person sees it: a picture for every kind of output, a video playing on hover."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tasks_app.models import ArchiveState, ArtifactOutput, Picture, PictureState, Task
from tasks_app.services.sync import sync_account

from .conftest import log_in, set_tab_visibility, watch
from .test_dashboard import log_in_zh

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Arrow functions only: Playwright would eval() a bare expression, which the CSP blocks.
PICTURE_LOADED = """(selector) => { const img = document.querySelector(selector);
  return img !== null && img.complete && img.naturalWidth === 480; }"""
VIDEO_PLAYING = "(selector) => { const v = document.querySelector(selector); return v !== null && !v.paused; }"


def mirror(sim, account, *specs: dict) -> list[Task]:
    """Seed tasks in the simulator; the real sync mirrors them and the archive (eager) copies them."""
    ids = [sim.add_task(**spec) for spec in specs]
    sync_account(account=account, full_sweep=True)
    return [Task.objects.get(account=account, ark_id=ark_id) for ark_id in ids]


def expect_picture(page, task: Task) -> None:
    selector = f"#card-{task.pk} img.gallery-picture"
    # Lazy: loaded once near the screen. Scrolled by script: Playwright's own scrolling first
    # waits for the element to hold still over two animation frames, which a loaded machine delays.
    page.evaluate("(s) => document.querySelector(s).scrollIntoView({block: 'center'})", selector)
    page.wait_for_function(PICTURE_LOADED, arg=selector, timeout=15_000)


def test_it_shows_a_picture_of_every_kind_of_output_and_plays_a_video_on_hover(
    sim, account, dashboard_user, page, live_server, chromium, tmp_path
):
    with_frame, without_frame, glb, obj, usdz = mirror(
        sim, account,
        {"status": "succeeded", "kind": "video"},
        {"status": "succeeded", "kind": "video", "return_last_frame": False},
        {"status": "succeeded", "kind": "3d", "file_format": "glb"},
        {"status": "succeeded", "kind": "3d", "file_format": "obj"},
        {"status": "succeeded", "kind": "3d", "file_format": "usdz"},
    )
    [queued] = mirror(sim, account, {"status": "queued"})
    expected_sources = {
        with_frame: ArtifactOutput.LAST_FRAME, without_frame: ArtifactOutput.VIDEO,
        glb: ArtifactOutput.MODEL_ZIP, obj: ArtifactOutput.MODEL_ZIP, usdz: ArtifactOutput.MODEL_ZIP,
    }  # fmt: skip
    for task, source in expected_sources.items():
        task.refresh_from_db()
        assert task.archive_state == ArchiveState.ARCHIVED
        picture = Picture.objects.get(task=task)
        assert (picture.state, picture.source_output) == (PictureState.READY, source), picture.reason

    log_in(page, live_server)
    page.goto(f"{live_server.url}/?kind=video")
    page.get_by_role("link", name="Gallery").click()
    page.wait_for_url(re.compile(r"/gallery/\?kind=video$"))  # the toggle keeps the filter
    expect(page.locator(".gallery-card")).to_have_count(3)  # two videos and the queued one
    page.get_by_role("link", name="List").click()
    page.wait_for_url(re.compile(r"/\?kind=video$"))

    page.goto(f"{live_server.url}/gallery/")
    expect(page.get_by_role("heading", name="Gallery")).to_be_visible()
    expect(page.locator(".gallery-card")).to_have_count(6)
    for task in expected_sources:
        expect_picture(page, task)
    # A task without outputs shows its status, not an empty box.
    status_box = page.locator(f"#card-{queued.pk} .gallery-status-box")
    expect(status_box).to_contain_text("queued")
    expect(page.locator(f"#card-{queued.pk} img")).to_have_count(0)
    expect(page.locator(f"#card-{glb.pk}")).to_contain_text(glb.model)

    # Hovering a video card plays the archived video, muted; leaving pauses it.
    video = f"#card-{without_frame.pk} video"
    assert page.evaluate("(s) => document.querySelector(s).paused", video) is True
    page.locator(f"#card-{without_frame.pk}").hover()
    page.wait_for_function(VIDEO_PLAYING, arg=video, timeout=15_000)
    assert page.evaluate("(s) => document.querySelector(s).muted", video) is True
    page.locator("h1").hover()
    page.wait_for_function("(s) => document.querySelector(s).paused", arg=video, timeout=15_000)
    page.screenshot(path=str(tmp_path / "gallery-en-light.png"), full_page=True)

    # The grid follows a card that changes without a reload (its poll every 5 s).
    Task.objects.filter(pk=queued.pk).update(status="running", changed_at=timezone.now())
    expect(page.locator(f"#card-{queued.pk} .gallery-status-box")).to_contain_text("running", timeout=20_000)
    expect_picture(page, glb)  # the cards swapped in still show their pictures
    # Not from a background tab; back in the tab, at once.
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if request.headers.get("x-gallery-seen") else None)
    set_tab_visibility(page, "hidden")
    page.wait_for_timeout(500)  # a poll already on its way may still go
    hidden_from = len(polls)
    page.wait_for_timeout(7_000)
    assert len(polls) == hidden_from, "the gallery polled from a background tab"
    set_tab_visibility(page, "visible")
    page.wait_for_timeout(3_000)
    assert len(polls) > hidden_from, "coming back to the tab did not refresh the gallery at once"

    # A click opens the task's page.
    page.locator(f"#card-{usdz.pk} a").click()
    page.wait_for_url(f"{live_server.url}/tasks/{usdz.pk}/")

    # In Simplified Chinese, dark, on a phone. (One page at a time: the machine is shared.)
    page.close()
    context = watch(chromium.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", color_scheme="dark",
                                         viewport={"width": 390, "height": 844}))
    context.set_default_timeout(15_000)
    zh = context.new_page()
    try:
        log_in_zh(zh, live_server)
        zh.goto(f"{live_server.url}/gallery/")
        expect(zh.get_by_role("heading", name="画廊")).to_be_visible()
        expect(zh.locator(f"#card-{queued.pk} .gallery-status-box")).to_contain_text("运行中")  # running by now
        for task in expected_sources:
            expect_picture(zh, task)
        # Two cards side by side at a phone's width, none wider than the screen.
        widths = zh.evaluate("() => [...document.querySelectorAll('.gallery-card')].map(c => c.getBoundingClientRect().right)")
        assert max(widths) <= 390
        assert zh.evaluate("() => document.documentElement.scrollWidth") <= 390
        zh.screenshot(path=str(tmp_path / "gallery-zh-hans-dark-phone.png"), full_page=True)
    finally:
        context.close()
