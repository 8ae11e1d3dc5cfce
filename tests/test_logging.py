"""Structured logs: task id and account on every line emitted while handling one task."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tasks_app.observability.logging import (
    ContextFilter,
    JsonFormatter,
    PlainFormatter,
    bind_context,
    current_context,
    log_context,
    unbind_context,
)

ROOT = Path(__file__).resolve().parent.parent


class Capture:
    """A handler wired like settings.LOGGING's console handler, writing to a buffer."""

    def __init__(self, formatter: logging.Formatter) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.addFilter(ContextFilter())
        self.handler.setFormatter(formatter)

    def lines(self) -> list[str]:
        return [line for line in self.stream.getvalue().splitlines() if line]

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.lines()]


@pytest.fixture
def json_logs():
    capture = Capture(JsonFormatter())
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(capture.handler)
    root.setLevel(logging.DEBUG)
    yield capture
    root.removeHandler(capture.handler)
    root.setLevel(previous_level)


def test_it_puts_task_and_account_on_json_lines_inside_the_block(json_logs):
    log = logging.getLogger("arkdash.test")
    log.info("before")
    with log_context(task="cgt-20250101000000-abcde", account="team"):
        log.info("copying %s", "video")
    log.info("after")

    before, inside, after = json_logs.records()
    assert inside["msg"] == "copying video"
    assert inside["task_id"] == "cgt-20250101000000-abcde"
    assert inside["account"] == "team"
    assert inside["level"] == "INFO" and inside["logger"] == "arkdash.test"
    assert inside["ts"].endswith("Z")
    assert "task_id" not in before and "task_id" not in after


def test_it_merges_nested_contexts_and_restores_the_outer_one(json_logs):
    log = logging.getLogger("arkdash.test")
    with log_context(account="team"):
        with log_context(task="cgt-1", artifact=7):
            log.info("inner")
        log.info("outer")
    inner, outer = json_logs.records()
    assert (inner["account"], inner["task_id"], inner["artifact_id"]) == ("team", "cgt-1", "7")
    assert outer["account"] == "team" and "task_id" not in outer


def test_it_formats_exceptions_into_one_json_line(json_logs):
    log = logging.getLogger("arkdash.test")
    with log_context(task="cgt-2"):
        try:
            raise RuntimeError("disk on fire")
        except RuntimeError:
            log.exception("copy failed")
    (line,) = json_logs.lines()  # the traceback stays inside the one JSON object
    record = json.loads(line)
    assert "RuntimeError: disk on fire" in record["exc"]
    assert record["task_id"] == "cgt-2"


def test_it_appends_the_context_to_plain_lines():
    capture = Capture(PlainFormatter())
    log = logging.getLogger("arkdash.plain")
    log.addHandler(capture.handler)
    log.propagate = False
    try:
        with log_context(account="team", task="cgt-3"):
            log.warning("slow")
        log.warning("no context")
    finally:
        log.removeHandler(capture.handler)
        log.propagate = True
    with_context, without = capture.lines()
    assert with_context.endswith("WARNING arkdash.plain slow [account=team task=cgt-3]")
    assert without.endswith("WARNING arkdash.plain no context")


def test_it_keeps_a_hostile_value_on_one_line(json_logs):
    capture = Capture(PlainFormatter())
    log = logging.getLogger("arkdash.forge")
    log.addHandler(capture.handler)
    log.propagate = False
    try:
        with log_context(task="cgt-4\nCRITICAL forged line"):
            log.info("x")
    finally:
        log.removeHandler(capture.handler)
        log.propagate = True
    assert len(capture.lines()) == 1
    assert "task=cgt-4\\nCRITICAL forged line" in capture.lines()[0]


def test_it_refuses_unknown_context_fields():
    with pytest.raises(ValueError, match="tsak"):
        with log_context(tsak="cgt-5"):
            pass


def test_it_does_not_leak_context_between_threads(json_logs):
    log = logging.getLogger("arkdash.threads")
    ready = threading.Event()
    release = threading.Event()

    def other_thread() -> None:
        ready.wait(5)
        log.info("from the other thread")
        release.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with log_context(task="cgt-6"):
        ready.set()
        release.wait(5)
    thread.join(5)
    (record,) = json_logs.records()
    assert "task_id" not in record


def test_it_binds_and_unbinds_without_a_block():
    token = bind_context(celery_task="tasks_app.tasks.sync_account", celery_task_id="abc")
    assert current_context()["celery_task"] == "tasks_app.tasks.sync_account"
    unbind_context(token)
    assert current_context() == {}


@pytest.mark.django_db
def test_it_tags_the_ark_client_lines_of_a_celery_refresh_with_task_and_account(
    json_logs, sim, account, mirror, settings
):
    from tasks_app.tasks import refresh_task

    settings.ARK_RETRY_BACKOFF_SECONDS = 0.0
    sim_id = sim.add_task(kind="video", status="running")
    task = mirror(sim_id)
    sim.faults.inject("get", "500", times=1)  # the client logs its retry

    refresh_task.delay(task.pk)

    retry_lines = [r for r in json_logs.records() if "retrying" in r["msg"]]
    assert retry_lines, "the client should have logged its retry"
    for record in retry_lines:
        assert record["task_id"] == sim_id
        assert record["account"] == "team"
        assert record["celery_task"] == "tasks_app.tasks.refresh_task"
        assert "test-key" not in json.dumps(record)


def _settings_import(log_format: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ARKDASH_LOG_FORMAT": log_format, "DJANGO_SETTINGS_MODULE": "arkdash.settings"}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); import logging; logging.getLogger('x').warning('hi')",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_logs_json_when_asked_and_refuses_an_unknown_format():
    json_run = _settings_import("json")
    assert json_run.returncode == 0, json_run.stderr
    assert json.loads(json_run.stderr.strip().splitlines()[-1])["msg"] == "hi"

    bad = _settings_import("xml")
    assert bad.returncode != 0
    assert "ARKDASH_LOG_FORMAT must be plain or json" in bad.stderr
