"""A known API key through the whole app: it must surface nowhere but as ciphertext.

List, detail, poll, sync (with the simulator, a failing sync included), archive,
downloads, cancel and delete, the callback, error pages (404, 400, a forced 500 with
DEBUG off), the admin, management commands; then every log line at DEBUG level from
every logger (raw stderr and both of the project's formatters), every response header,
every file under ARKDASH_DATA_DIR and the archive, and a full `dumpdata`.
"""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.test import Client

from arksim import Simulator
from tasks_app import views as dashboard_views
from tasks_app.lib import transport
from tasks_app.models import Account, Artifact, ArtifactState, Task
from tasks_app.observability.logging import JsonFormatter, PlainFormatter
from tasks_app.services.sync import sync_account

KEY = "ark-LEAKCANARY-0123456789abcdef"
WRONG_KEY = "ark-LEAKCANARY-wrong-fedcba9876543210"  # a second account's key Ark refuses
TYPED_KEY = "ark-LEAKCANARY-typed-in-the-admin-42"
CANARIES = (KEY, WRONG_KEY, TYPED_KEY)
# The shared part: catches a key cut short or split too.
STEM = "LEAKCANARY"


class Evidence:
    """Everything the app said: response bodies and headers, command output."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []

    def response(self, where: str, response) -> None:
        body = b"".join(response.streaming_content) if response.streaming else response.content
        headers = "\n".join(f"{name}: {value}" for name, value in response.items())
        cookies = "\n".join(str(morsel) for morsel in response.cookies.values())
        self.items.append((f"{where} [{response.status_code}]", body + headers.encode() + cookies.encode()))

    def text(self, where: str, text: str) -> None:
        self.items.append((where, text.encode()))

    def leaks(self) -> list[str]:
        return [where for where, blob in self.items if STEM.encode() in blob]


@pytest.fixture
def leak_sim():
    simulator = Simulator(api_keys=(KEY,), public_base_url="http://arksim.test", list_rate_per_second=None,
                          get_rate_per_second=None, delete_rate_per_second=None)
    with transport.routed_to(simulator.transport()):
        yield simulator


@pytest.fixture
def every_logger_at_debug():
    """DEBUG for every logger (httpx and httpcore included), formatted by both project formatters."""
    manager = logging.root.manager
    saved = {name: logger.level for name, logger in manager.loggerDict.items() if isinstance(logger, logging.Logger)}
    saved_root = logging.root.level
    streams = {"plain": io.StringIO(), "json": io.StringIO()}
    handlers = []
    for name, formatter in (("plain", PlainFormatter()), ("json", JsonFormatter())):
        handler = logging.StreamHandler(streams[name])
        handler.setFormatter(formatter)
        handler.setLevel(logging.DEBUG)
        logging.root.addHandler(handler)
        handlers.append(handler)
    logging.root.setLevel(logging.DEBUG)
    for name in saved:
        manager.loggerDict[name].setLevel(logging.DEBUG)
    yield streams
    for handler in handlers:
        logging.root.removeHandler(handler)
    logging.root.setLevel(saved_root)
    for name, level in saved.items():
        manager.loggerDict[name].setLevel(level)


def test_it_never_reveals_an_api_key(leak_sim, local_archive, every_logger_at_debug, caplog, capfd, settings,
                                     monkeypatch, django_user_model, django_capture_on_commit_callbacks, tmp_path):
    caplog.set_level(logging.DEBUG)
    settings.DEBUG = False
    evidence = Evidence()
    sim = leak_sim

    account = Account(name="team", base_url="http://arksim.test/api/v3")
    account.set_api_key(KEY)
    account.save()
    refused = Account(name="refused", base_url="http://arksim.test/api/v3")
    refused.set_api_key(WRONG_KEY)
    refused.save()

    # --- sync (one account works, one is refused by Ark) and archive ---------------------
    ids = {
        "queued": sim.add_task(kind="video", status="queued"),
        "running": sim.add_task(kind="video", status="running"),
        "video": sim.add_task(kind="video", status="succeeded", return_last_frame=True),
        "model": sim.add_task(kind="3d", status="succeeded", file_format="glb"),
        "failed": sim.add_task(kind="video", status="failed"),
        "old": sim.add_task(kind="video", status="succeeded"),
    }
    with django_capture_on_commit_callbacks(execute=True):
        assert sync_account(account=account, full_sweep=True).ok
        assert not sync_account(account=refused, full_sweep=True).ok
    tasks = {name: Task.objects.get(account=account, ark_id=ark_id) for name, ark_id in ids.items()}
    archived = list(Artifact.objects.filter(state=ArtifactState.ARCHIVED))
    assert {artifact.task_id for artifact in archived} >= {tasks["video"].pk, tasks["model"].pk}
    refused.refresh_from_db()
    assert refused.failing_since is not None  # the banner will show its error

    # --- the dashboard ---------------------------------------------------------------------
    root = django_user_model.objects.create_superuser("root", password="pw")
    client = Client(raise_request_exception=False)
    client.force_login(root)
    htmx = {"HX-Request": "true", "HX-Current-URL": "http://testserver/"}
    get = {
        "list": "/",
        "list filtered": "/?status=queued&status=failed&kind=video&sort=-created&page_size=20",
        "list bad filter": "/?status=bogus&page=0&created_after=yesterday",
        "poll": f"/tasks/rows/?rows={tasks['running'].pk}.1,{tasks['queued'].pk}.1&health=ok",
        "404": "/tasks/987654321/",
        "admin accounts": "/admin/tasks_app/account/",
        "admin account": f"/admin/tasks_app/account/{account.pk}/change/",
        "admin refused account": f"/admin/tasks_app/account/{refused.pk}/change/",
        "admin add account": "/admin/tasks_app/account/add/",
        "admin audit": "/admin/tasks_app/auditentry/",
        "healthz": "/healthz",
        "metrics": "/metrics",
    }
    for name, task in tasks.items():
        get[f"detail {name}"] = f"/tasks/{task.pk}/"
        get[f"cancel page {name}"] = f"/tasks/{task.pk}/cancel/"
        get[f"delete page {name}"] = f"/tasks/{task.pk}/delete/"
    for artifact in archived:
        get[f"download {artifact.output}"] = f"/outputs/{artifact.pk}/download/"
        get[f"inline {artifact.output}"] = f"/outputs/{artifact.pk}/download/?inline=1"
    for where, url in get.items():
        evidence.response(where, client.get(url))
        evidence.response(f"{where} (htmx)", client.get(url, headers=htmx))

    # --- actions, the callback, the admin form -----------------------------------------------
    posts = [
        ("cancel (htmx)", f"/tasks/{tasks['queued'].pk}/cancel/", {}, htmx),
        ("cancel refused", f"/tasks/{tasks['running'].pk}/cancel/", {}, {}),
        ("delete needs confirmation", f"/tasks/{tasks['video'].pk}/delete/", {}, {}),
        ("delete", f"/tasks/{tasks['failed'].pk}/delete/", {}, htmx),
        ("delete and remove", f"/tasks/{tasks['old'].pk}/delete/", {"remove_local": "1"}, {}),
        ("bulk", "/tasks/cancel/", {"scope": "matching", "confirmed": "1"}, {}),
        ("admin form error", "/admin/tasks_app/account/add/",
         {"name": "typed", "base_url": "not a url", "api_key": TYPED_KEY, "memberships-TOTAL_FORMS": "0",
          "memberships-INITIAL_FORMS": "0"}, {}),
    ]
    for where, url, data, headers in posts:
        evidence.response(where, client.post(url, data, headers=headers))
    sim.faults.inject("delete", "500", times=10)
    [another] = [sim.add_task(kind="video", status="queued")]
    sync_account(account=account)
    stuck = Task.objects.get(ark_id=another)
    evidence.response("cancel failing upstream", client.post(f"/tasks/{stuck.pk}/cancel/", headers=htmx))
    sim.faults.clear()
    callback = Client().post(f"/hooks/ark/{account.callback_secret}/", data=json.dumps({"id": ids["running"]}),
                             content_type="application/json")
    evidence.response("callback", callback)
    evidence.response("callback refused", Client().post(f"/hooks/ark/{refused.callback_secret}/",
                                                        data=json.dumps({"id": ids["running"]}),
                                                        content_type="application/json"))

    # --- the Ark-compatible gateway: reads, creates (one refused by Ark), deletes, tokens page ---
    evidence.response("tokens page", client.get("/settings/tokens/"))
    token_page = client.post("/settings/tokens/", {"name": "script", "accounts": [account.pk, refused.pk],
                                                   "requests_per_minute": "6000"})
    evidence.response("token created", token_page)
    token = re.search(r'id="new-token">([^<]+)<', token_page.content.decode()).group(1)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}", raise_request_exception=False)
    tasks_url = "/api/v3/contents/generations/tasks"
    body = json.dumps({"model": "doubao-seedance-1-0-pro-250528", "content": [{"type": "text", "text": "x"}]})
    answers = dict((
        ("gateway list", api.get(f"{tasks_url}?page_size=100")),
        ("gateway get", api.get(f"{tasks_url}/{ids['model']}")),
        ("gateway create", api.post(tasks_url, body, content_type="application/json",
                                    HTTP_X_ARKDASH_ACCOUNT="team")),
        ("gateway create refused by Ark", api.post(tasks_url, body, content_type="application/json",
                                                   HTTP_X_ARKDASH_ACCOUNT="refused")),
        ("gateway delete refused", api.delete(f"{tasks_url}/{ids['running']}")),
        ("gateway wrong token", Client().get(tasks_url, HTTP_AUTHORIZATION=f"Bearer {KEY}")),
    ))
    for where, response in answers.items():
        evidence.response(where, response)
    # Real answers were searched: a read, a create, Ark refusing the other key, a refusal, a 401.
    assert [response.status_code for response in answers.values()] == [200, 200, 200, 502, 400, 401]

    # --- a forced 500, with DEBUG off, right after the key was decrypted -------------------
    def explode(*, task):
        assert task.account.api_key in CANARIES  # the key is in memory, in this very frame
        raise RuntimeError("forced failure while rendering a task")

    monkeypatch.setattr(dashboard_views.selectors, "task_timeline", explode)
    crash = client.get(f"/tasks/{tasks['running'].pk}/")
    assert crash.status_code == 500
    evidence.response("500", crash)
    monkeypatch.undo()

    # --- management commands ----------------------------------------------------------------
    for command in (["sync", "--once"], ["archive", "--status"], ["dumpdata"]):
        out, err = io.StringIO(), io.StringIO()
        try:
            call_command(*command, stdout=out, stderr=err)
        except SystemExit:
            pass  # `sync --once` exits 1: the refused account failed, as it should
        evidence.text(" ".join(command), out.getvalue() + err.getvalue())
        if command == ["dumpdata"]:
            dump = out.getvalue()
            # The dump holds the accounts, keys as ciphertext only: the search above was real.
            assert account.api_key_encrypted in dump and refused.api_key_encrypted in dump

    # --- logs, files --------------------------------------------------------------------------
    captured = capfd.readouterr()
    evidence.text("stderr", captured.err)
    evidence.text("stdout", captured.out)
    evidence.text("caplog", caplog.text + "\n".join(str(record.__dict__) for record in caplog.records))
    for name, stream in every_logger_at_debug.items():
        evidence.text(f"log ({name} formatter)", stream.getvalue())
    assert "forced failure while rendering a task" in caplog.text  # the 500 was logged, with its traceback
    assert "AuthenticationError" in caplog.text or "401" in caplog.text  # so was the refused sync

    roots = [Path(django_settings.DATA_DIR), local_archive.root, tmp_path]
    files = [path for root in roots for path in root.rglob("*") if path.is_file()]
    assert any(path.suffix == ".mp4" for path in files)  # the archive was searched too
    for path in files:
        evidence.text(f"file {path}", path.read_bytes().decode("latin-1"))

    assert len(evidence.items) > 100
    assert evidence.leaks() == []
