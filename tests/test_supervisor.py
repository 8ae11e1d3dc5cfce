"""make run's process runner (arkdash/supervisor.py): a process that dies is restarted, the others go on."""

from __future__ import annotations

import io
import re
import sys
import time
from pathlib import Path

from arkdash.supervisor import Supervisor


def _wait_for(condition, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_it_restarts_a_process_that_died_with_a_log_line_and_leaves_the_others_running(tmp_path: Path) -> None:
    marker = tmp_path / "crashed-once"
    crash_once = (
        "import pathlib, sys, time\n"
        f"m = pathlib.Path({str(marker)!r})\n"
        "if not m.exists():\n"
        "    m.write_text('x'); print('crashing', flush=True); sys.exit(3)\n"
        "print('second life', flush=True); time.sleep(60)\n"
    )
    out = io.StringIO()
    supervisor = Supervisor(
        {"flaky": [sys.executable, "-c", crash_once], "steady": [sys.executable, "-c", "import time; time.sleep(60)"]},
        out=out,
    )
    flaky, steady = supervisor.processes
    for process in supervisor.processes:
        supervisor.start(process)
    steady_pid = steady.popen.pid
    try:
        assert _wait_for(lambda: (supervisor.check(), "second life" in out.getvalue())[1]), out.getvalue()
        assert "flaky exited with code 3" in out.getvalue() and "restarting it in" in out.getvalue()
        assert flaky.restarts == 1 and flaky.popen.poll() is None
        assert steady.popen.pid == steady_pid and steady.popen.poll() is None and steady.restarts == 0
        assert re.search(r"flaky +\| crashing", out.getvalue())  # its output is prefixed with its name
    finally:
        supervisor.stop_all(grace_seconds=5)
    assert flaky.popen.poll() is not None and steady.popen.poll() is not None


def test_it_waits_longer_before_each_restart_of_a_process_that_keeps_dying(tmp_path: Path) -> None:
    now = [1000.0]
    supervisor = Supervisor({"broken": [sys.executable, "-c", "raise SystemExit(1)"]}, out=io.StringIO(),
                            clock=lambda: now[0])
    (broken,) = supervisor.processes
    supervisor.start(broken)
    pauses = []
    for _ in range(4):
        broken.popen.wait(30)
        supervisor.check()  # notes the exit
        pauses.append(broken.pause)
        now[0] = broken.restart_at
        supervisor.check()  # starts it again
    supervisor.stop_all(grace_seconds=5)
    assert pauses == [1.0, 2.0, 4.0, 8.0]
