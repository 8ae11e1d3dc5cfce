"""arksim's command line: `python -m arksim` and `manage.py arksim` start a server and stop cleanly."""

from __future__ import annotations

import argparse
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.core.management import call_command

from arksim import cli

ROOT = Path(__file__).resolve().parents[2]


def test_it_runs_as_python_m_arksim_until_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "arksim", "--port", "0", "--api-key", "k1", "--seed-demo", "--demo-count", "8"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        match = re.search(r"Ark base URL: (http://127\.0\.0\.1:\d+/api/v3)", line)
        assert match, line + process.stderr.read()
        response = httpx.get(f"{match.group(1)}/contents/generations/tasks", headers={"Authorization": "Bearer k1"},
                             params={"page_size": 100}, timeout=5)  # fmt: skip
        assert response.json()["total"] == 8
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert "arksim stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_it_runs_from_options_and_stops_when_told() -> None:
    out, stop = io.StringIO(), threading.Event()
    options = _options(list_rate=None, demo_trickle=0.05)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(cli.run(options, stop=stop, out=out)))
    thread.start()
    try:
        url = _wait_for_url(out)
        deadline = time.monotonic() + 5
        total = 0
        while total < 2 and time.monotonic() < deadline:  # the trickle keeps creating tasks
            time.sleep(0.05)
            total = httpx.get(
                f"{url}/contents/generations/tasks", headers={"Authorization": "Bearer sim-key"}
            ).json()["total"]
        assert total >= 2
    finally:
        stop.set()
        thread.join(10)
    assert result == [0]


def test_it_refuses_an_impossible_configuration_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(_options(output_bytes=10), out=io.StringIO()) == 2
    assert "output_bytes" in capsys.readouterr().err


def test_it_rejects_bad_arguments_like_any_cli(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        cli.main(["--list-rate", "fast"])
    assert raised.value.code == 2
    assert "not a rate" in capsys.readouterr().err


def test_it_is_wrapped_by_the_manage_py_command(monkeypatch: pytest.MonkeyPatch) -> None:
    received: dict[str, Any] = {}
    monkeypatch.setattr(cli, "run", lambda options: received.update(options) or 0)
    call_command("arksim", "--port", "9999", "--api-key", "a", "--api-key", "b", "--seed-demo",
                 "--demo-trickle", "30", "--list-rate", "none", "--output-bytes", "1048576")  # fmt: skip
    assert received["port"] == 9999 and received["api_keys"] == ["a", "b"]
    assert received["seed_demo"] is True and received["demo_trickle"] == 30.0
    assert received["list_rate"] is None and received["output_bytes"] == 1 << 20


def test_it_answers_help_through_manage_py() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "arksim", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "--demo-trickle" in result.stdout and "--queue-seconds" in result.stdout


def _options(**overrides: Any) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    options = vars(parser.parse_args(["--port", "0"]))
    options.update(overrides)
    return options


def _wait_for_url(out: io.StringIO) -> str:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        match = re.search(r"Ark base URL: (\S+)\)", out.getvalue())
        if match:
            return match.group(1)
        time.sleep(0.02)
    raise AssertionError(f"no URL printed: {out.getvalue()!r}")
