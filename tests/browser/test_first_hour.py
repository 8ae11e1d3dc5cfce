"""The first hour (issue 15) as a person sees it: the demo offers something to cancel at once,
every 3D format shows a rendered model, and the Chinese pages hold no English from the project."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from tasks_app.models import Artifact, ArtifactState, Task, TaskStatus
from tasks_app.services.sync import sync_account

from .conftest import PASSWORD, log_in, open_context, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def demo(sim, account) -> None:
    sim.seed_demo(count=60)
    sync_account(account=account, full_sweep=True)  # archive copies run inline (eager Celery)


def test_it_offers_a_cancellable_queued_task_of_the_demo_within_30_seconds(sim, account, dashboard_user, page,
                                                                            live_server):
    started = time.monotonic()
    demo(sim, account)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/?status=queued")
    cancel = page.locator("tr.row").get_by_role("link", name="Cancel")
    expect(cancel.first).to_be_visible()
    assert time.monotonic() - started < 30

    # Five minutes on, some demo tasks are still waiting: cancel really can be tried.
    sim.advance(300)
    sync_account(account=account)
    page.goto(f"{live_server.url}/?status=queued")
    first = page.locator("tr.row", has=page.get_by_role("link", name="Cancel")).first
    pk = int(first.get_attribute("id").removeprefix("task-"))
    page.once("dialog", lambda dialog: dialog.accept())
    first.get_by_role("link", name="Cancel").click()
    expect(page.locator(f"#task-{pk} .badge").first).to_have_text("cancelled")
    assert Task.objects.get(pk=pk).status == TaskStatus.CANCELLED


@pytest.mark.parametrize("fileformat", ["obj", "usdz", "glb"])
def test_it_shows_a_rendered_model_for_each_3d_format(sim, account, dashboard_user, page, live_server, fileformat):
    ark_id = sim.add_task(kind="3d", status="succeeded", file_format=fileformat, subdivisionlevel="low")
    sync_account(account=account, full_sweep=True)
    task = Task.objects.get(account=account, ark_id=ark_id)
    assert Artifact.objects.get(task=task, output="model_file").state == ArtifactState.ARCHIVED
    log_in(page, live_server)
    page.goto(f"{live_server.url}/tasks/{task.pk}/")
    page.wait_for_function(
        "() => document.querySelector('#output-model') && document.querySelector('#output-model').loaded === true",
        timeout=30_000,
    )
    page.wait_for_function("() => document.querySelector('#output-model').modelIsVisible === true", timeout=15_000)
    screenshot(page, f"task-detail-3d-{fileformat}")


# --- zh-Hans: no English msgid of the project on the page ---------------------------------

_ENTRY = re.compile(r'^msgid "(.*)"\nmsgstr "(.*)"', re.M)


def english_msgids() -> set[str]:
    """The project's English strings that zh-Hans translates differently (single-line entries)."""
    po = Path(settings.BASE_DIR, "locale/zh_Hans/LC_MESSAGES/django.po").read_text(encoding="utf-8")
    found = set()
    for msgid, msgstr in _ENTRY.findall(po):
        text = msgid.replace('\\"', '"')
        if not text or msgstr == msgid or "%(" in text or "{" in text or not re.search(r"[A-Za-z]{3}", text):
            continue
        found.add(text)
    return found


# Visible text nodes and the attributes people read (tooltips, labels, alt, placeholders), minus
# data: task ids and JSON in <code>/<pre>, and the language menu's "English" (marked lang="en").
_PAGE_TEXTS = """() => {
  const skip = (el) => el.closest('code, pre, script, style, :not(html)[lang="en"]');
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const text = node.textContent.trim();
    if (text && !skip(node.parentElement)) texts.push(text);
  }
  for (const el of document.querySelectorAll('[title], [aria-label], [alt], [placeholder]')) {
    if (skip(el)) continue;
    for (const name of ['title', 'aria-label', 'alt', 'placeholder']) {
      const value = el.getAttribute(name);
      if (value) texts.push(value.trim());
    }
  }
  texts.push(document.title);
  return texts;
}"""


def english_on(page, msgids: set[str]) -> list[str]:
    texts = page.evaluate(_PAGE_TEXTS)
    whole = "\n".join(texts)
    found = {text for text in texts if text.rstrip(":…").strip() in msgids or text in msgids}
    # A sentence can sit inside a longer text node; short words only count as a whole node.
    found |= {msgid for msgid in msgids if len(msgid) >= 24 and msgid in whole}
    return sorted(found)


def test_it_shows_no_english_project_strings_in_simplified_chinese(sim, account, dashboard_user, chromium,
                                                                    live_server):
    demo(sim, account)
    video = Task.objects.filter(account=account, kind="video", status="succeeded", archive_state="archived").first()
    model = Task.objects.filter(account=account, kind="3d", status="succeeded", archive_state="archived").first()
    failed = Task.objects.filter(account=account, status="failed").first()
    lost = Artifact.objects.filter(task__account=account, state=ArtifactState.LOST).exclude(output="model_file").first()
    assert video and model and failed and lost, "the demo shows every state"
    msgids = english_msgids()
    assert len(msgids) > 150

    english = open_context(chromium, locale="en-US")
    try:
        en = english.new_page()
        en.goto(f"{live_server.url}/accounts/login/")
        assert english_on(en, msgids), "the check finds the project's English where it is expected"
    finally:
        english.close()

    context = open_context(chromium, locale="zh-CN")
    zh = context.new_page()
    try:
        zh.goto(f"{live_server.url}/accounts/login/")
        problems = {"login": english_on(zh, msgids)}
        zh.get_by_label("用户名").fill("ana")
        zh.get_by_label("密码").fill(PASSWORD)
        zh.get_by_role("button", name="登录").click()
        zh.wait_for_url(f"{live_server.url}/")
        pages = {
            "list": "/",
            "list-queued": "/?status=queued",
            "video": f"/tasks/{video.pk}/",
            "3d": f"/tasks/{model.pk}/",
            "failed": f"/tasks/{failed.pk}/",
            "lost-task": f"/tasks/{lost.task_id}/",
            "lost-output": f"/outputs/{lost.pk}/download/",
            "not-found": "/tasks/999999/",
        }
        for name, path in pages.items():
            zh.goto(f"{live_server.url}{path}")
            zh.wait_for_load_state("networkidle")
            problems[name] = english_on(zh, msgids)
        screenshot(zh, "task-lost-output-zh-hans")
    finally:
        context.close()

    locked = open_context(chromium, locale="zh-CN")
    page = locked.new_page()
    try:
        for _ in range(settings.AXES_FAILURE_LIMIT):
            page.goto(f"{live_server.url}/accounts/login/")
            page.get_by_label("用户名").fill("ana")
            page.get_by_label("密码").fill("wrong")
            page.get_by_role("button", name="登录").click()
        expect(page.get_by_role("heading", name="登录失败次数过多")).to_be_visible()
        problems["locked-out"] = english_on(page, msgids)
    finally:
        locked.close()
    assert {name: found for name, found in problems.items() if found} == {}
