from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation

from tasks_app.models import TaskStatus

from .dashboard_helpers import make_task


@pytest.fixture(autouse=True)
def _english_afterwards():
    # LocaleMiddleware leaves the request's language active in this thread: reset it so
    # later tests calling services directly are not in Chinese.
    yield
    translation.deactivate()


def test_it_renders_the_list_in_simplified_chinese_when_asked(user_client, account):
    make_task(account, status=TaskStatus.QUEUED)
    html = user_client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).content.decode()
    assert '<html lang="zh-hans"' in html
    for text in ("任务", "排队中", "应用筛选", "正在取消…", "前</time>"):
        assert text in html
    for text in ("实时", "共 1 个任务", "筛选条件", "连接已断开", "取消所选", "取消符合此筛选条件的全部 1 个排队中任务"):
        assert text in html


def test_it_switches_language_with_the_language_form(user_client, account):
    make_task(account)
    response = user_client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/?status=queued"})
    assert response["Location"] == "/?status=queued"
    assert "筛选任务" in user_client.get("/").content.decode()
    user_client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert "Filter tasks" in user_client.get("/").content.decode()


def test_it_translates_validation_messages(user_client, account):
    html = user_client.get("/?after=0", headers={"Accept-Language": "zh-hans"}).content.decode()
    assert "此链接中的翻页位置无效" in html


def _po_entries(text: str) -> list[tuple[str, str]]:
    """(msgid, first msgstr) of each entry, continuation lines joined."""
    entries = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            match = re.match(r'^(msgid_plural|msgid|msgstr(?:\[0\])?|msgstr\[\d\]) "(.*)"$', line)
            if match:
                key = match[1]
                fields[key] = match[2]
            elif line.startswith('"') and key:
                fields[key] += line[1:-1]
        if fields.get("msgid"):
            entries.append((fields["msgid"], fields.get("msgstr", fields.get("msgstr[0]", ""))))
    return entries


def test_it_ships_a_compiled_catalogue_with_every_message_translated():
    po = Path(settings.BASE_DIR, "locale/zh_Hans/LC_MESSAGES/django.po")
    entries = _po_entries(po.read_text(encoding="utf-8"))
    assert len(entries) > 150
    assert [msgid for msgid, msgstr in entries if not msgstr] == []
    with po.with_suffix(".mo").open("rb") as compiled:
        catalogue = gettext.GNUTranslations(compiled)
    unescape = lambda text: text.replace('\\"', '"').replace("\\n", "\n")  # noqa: E731
    stale = [msgid for msgid, msgstr in entries if catalogue.gettext(unescape(msgid)) != unescape(msgstr)]
    assert stale == []  # the .mo was compiled from this .po
    with translation.override("zh-hans"):
        assert translation.gettext("Delete record") == "删除记录"
        assert translation.ngettext("%(n)d task cancelled.", "%(n)d tasks cancelled.", 3) % {"n": 3} == "已取消 3 个任务。"


def test_it_shows_the_login_page_in_chinese(client, db):
    html = client.get("/accounts/login/", headers={"Accept-Language": "zh-hans"}).content.decode()
    assert "登录 ArkDash" in html and "用户名" in html
