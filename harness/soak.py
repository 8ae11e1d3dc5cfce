"""Soak `make run`: the embedded setup from a fresh clone, the demo's trickle plus a burst of tasks.

    .venv/bin/python -m harness.soak [--minutes 30] [--tasks 300] [--keep]

Clones the repository's committed HEAD into a temporary folder and runs its `bin/run.py`
(web, worker, beat and the simulator under ArkDash's own supervisor, SQLite and the
filesystem broker, exactly what `make run` starts) with this interpreter's packages.
After a short warm-up it creates `--tasks` tasks in the simulator (60 % video, 40 % 3D in
every format), paced so the queue stays under Ark's cap of about 120, and keeps the
whole thing running for `--minutes`. Then it checks, and prints as a table
(docs/reliability.md records a run):

- within 30 s of the start, the dashboard offers a queued task to cancel;
- no process died (the supervisor logs every exit);
- no CRITICAL line and no traceback in any process's output;
- every output of every succeeded task is archived with the simulator's sha256 (re-read
  from disk), except outputs whose URL had died before ArkDash first saw them (the demo's
  deliberate "lost" examples), which must be marked lost.

Exit status 0 when all hold. tests/e2e/test_soak.py runs a short variant in the suite.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .clients import Dashboard

ROOT = Path(__file__).resolve().parent.parent
SIM_KEY = "sim-demo-key"  # bin/run.py's
TIMEOUT = httpx.Timeout(10.0)
MAX_QUEUED = 100  # below Ark's ~120 per account, leaving room for the demo's own
FORMATS_3D = ("glb", "obj", "usd", "usdz")
# Outputs of a task that succeeded less than this long before the check may still be copying.
SETTLE_SECONDS = 90.0
CANCELLABLE_WITHIN = 30.0
CANCEL_LINK = re.compile(r'href="/tasks/(\d+)/cancel/')


@dataclass
class SoakResult:
    minutes: float
    burst_created: int = 0
    first_cancellable_seconds: float | None = None
    process_deaths: list[str] = field(default_factory=list)
    bad_lines: list[str] = field(default_factory=list)
    outputs: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    log_path: str = ""

    @property
    def passed(self) -> bool:
        offered = self.first_cancellable_seconds is not None and self.first_cancellable_seconds <= CANCELLABLE_WITHIN
        return offered and not (self.process_deaths or self.bad_lines or self.problems) and self.outputs["archived"] > 0

    def table(self) -> str:
        rows = [
            ("minutes run", f"{self.minutes:g}"),
            ("seconds from start to a queued task offered for cancel",
             "never" if self.first_cancellable_seconds is None else f"{self.first_cancellable_seconds:.0f}"),
            ("burst tasks created", self.burst_created),
            ("processes that died", len(self.process_deaths)),
            ("CRITICAL or traceback lines", len(self.bad_lines)),
            ("outputs archived with the simulator's sha256", self.outputs["archived"]),
            ("outputs lost (URL dead before ArkDash saw it)", self.outputs["lost_expected"]),
            ("3D previews converted to glb", self.outputs["previews_converted"]),
            ("3D previews that failed", self.outputs["previews_failed"]),
            ("problems", len(self.problems)),
            ("verdict", "PASS" if self.passed else "FAIL"),
        ]
        return "\n".join(["| | |", "|---|---:|", *(f"| {name} | {value} |" for name, value in rows)])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, probe, timeout: float, every: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except httpx.HTTPError:
            pass
        time.sleep(every)
    raise RuntimeError(f"soak: timed out waiting for {what}")


class Run:
    """`bin/run.py` of a fresh clone, in its own process group, its output in a file."""

    def __init__(self, workdir: Path) -> None:
        self.clone = workdir / "arkdash"
        self.data = workdir / "var"
        self.log_path = workdir / "run.log"
        self.port, self.sim_port = free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> None:
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(self.clone)], check=True)
        env = {k: v for k, v in os.environ.items() if k not in ("ARK_API_KEY", "REDIS_URL", "DATABASE_URL")}
        env.update(ARKDASH_DATA_DIR=str(self.data), ARKDASH_PORT=str(self.port), ARKSIM_PORT=str(self.sim_port),
                   DJANGO_SETTINGS_MODULE="arkdash.settings")  # fmt: skip
        env.pop("PYTHONPATH", None)
        self.started_at = time.monotonic()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "bin/run.py"], cwd=self.clone, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        wait_for("the dashboard", lambda: httpx.get(f"{self.web_url}/healthz", timeout=TIMEOUT).status_code
                 in (200, 503), timeout=180)  # fmt: skip
        wait_for("the simulator", lambda: httpx.get(f"{self.sim_url}/_sim/stats", timeout=TIMEOUT).is_success,
                 timeout=60)  # fmt: skip

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # the supervisor stops its processes
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()


def first_cancellable(run: Run) -> float | None:
    """Seconds from `make run`'s start until the task list offers a queued task to cancel."""
    password = (run.data / "admin-password.txt").read_text().strip()
    with Dashboard(run.web_url, username="admin", password=password) as dashboard:
        dashboard.login()
        while time.monotonic() - run.started_at < 4 * CANCELLABLE_WITHIN:
            page = dashboard.task_page(status="queued")
            if page.status_code == 200 and CANCEL_LINK.search(page.text):
                return time.monotonic() - run.started_at
            time.sleep(1)
    return None


def burst(run: Run, count: int, rng: random.Random) -> list[str]:
    """Create `count` tasks through the simulator's control plane, paced under the queued cap."""
    ids: list[str] = []
    created_at: list[tuple[float, float]] = []  # (when, queue seconds) of each
    with httpx.Client(base_url=run.sim_url, timeout=TIMEOUT) as sim:
        while len(ids) < count:
            now = time.monotonic()
            queued = sum(1 for when, queue in created_at if now - when < queue)
            if queued >= MAX_QUEUED:
                time.sleep(0.5)
                continue
            queue_seconds = rng.uniform(5, 30)
            body: dict = {"queue_seconds": queue_seconds, "run_seconds": rng.uniform(10, 40)}
            if rng.random() < 0.4:
                body.update(kind="3d", fileformat=rng.choice(FORMATS_3D), subdivisionlevel="low")
            else:
                body.update(kind="video", return_last_frame=rng.random() < 0.7)
            if rng.random() < 0.08:
                body["status"] = "queued"
                body["error_code"] = "InternalServiceError"  # ends failed: nothing to archive
            answer = sim.post("/_sim/tasks", json=body)
            answer.raise_for_status()
            ids.append(answer.json()["id"])
            created_at.append((now, queue_seconds))
            time.sleep(0.2)
    return ids


def check_outputs(run: Run, result: SoakResult) -> None:
    """Every output of a settled success archived with the simulator's sha256; the rest explained."""
    db = sqlite3.connect(f"file:{run.data / 'arkdash.sqlite3'}?mode=ro", uri=True, timeout=30)
    now = time.time()
    rows = db.execute(
        "SELECT t.ark_id, a.output, a.state, a.sha256, a.storage_key, a.last_error, "
        "strftime('%s', a.deadline), strftime('%s', a.created) "
        "FROM tasks_app_artifact a JOIN tasks_app_task t ON t.id = a.task_id"
    ).fetchall()
    db.close()
    with httpx.Client(base_url=run.sim_url, timeout=TIMEOUT) as sim:
        expected: dict[str, dict] = {}
        for ark_id, output, state, sha256, key, last_error, deadline, created in rows:
            where = f"{ark_id} {output}"
            if output == "model_file":
                result.outputs["previews_converted" if state == "archived" else
                               "previews_failed" if state == "lost" else "previews_pending"] += 1  # fmt: skip
                if state == "lost":
                    result.problems.append(f"{where}: no preview: {last_error[:200]}")
                continue
            if state == "archived":
                if ark_id not in expected:
                    expected[ark_id] = sim.get(f"/_sim/tasks/{ark_id}/outputs").json()
                want = expected[ark_id].get(output, {}).get("sha256")
                on_disk = hashlib.sha256((run.data / "archive" / key).read_bytes()).hexdigest()
                if sha256 != want or on_disk != want:
                    result.problems.append(f"{where}: sha256 {sha256} (disk {on_disk}), simulator {want}")
                else:
                    result.outputs["archived"] += 1
            elif state == "lost":
                # Only the demo's back-dated successes may be lost: their URL died before ArkDash saw it.
                if deadline is not None and created is not None and int(deadline) <= int(created):
                    result.outputs["lost_expected"] += 1
                else:
                    result.problems.append(f"{where}: lost although its URL lived on ({last_error[:200]})")
            elif created is not None and now - int(created) > SETTLE_SECONDS:
                result.problems.append(f"{where}: still {state} {now - int(created):.0f} s after it was found")
            else:
                result.outputs["in_flight"] += 1


def check_log(run: Run, result: SoakResult) -> None:
    for line in run.log_lines():
        if " run " in line[:20] and " exited with code " in line:
            result.process_deaths.append(line)
        if "CRITICAL" in line or "Traceback (most recent call last)" in line:
            result.bad_lines.append(line)


def soak(*, minutes: float, tasks: int, keep: bool = False, rng_seed: int = 15) -> SoakResult:
    result = SoakResult(minutes=minutes)
    workdir = Path(tempfile.mkdtemp(prefix="arkdash-soak-"))
    run = Run(workdir)
    result.log_path = str(run.log_path)
    started = time.monotonic()
    try:
        run.start()
        result.first_cancellable_seconds = first_cancellable(run)
        result.burst_created = len(burst(run, tasks, random.Random(rng_seed)))
        # Let the last successes' copies finish before judging them.
        end = started + minutes * 60 + SETTLE_SECONDS / 2
        while time.monotonic() < end:
            if run.process is not None and run.process.poll() is not None:
                # The runner itself stopped (a signal from outside): say so, judge nothing more.
                result.problems.append(
                    f"make run stopped after {(time.monotonic() - started) / 60:.1f} min "
                    f"(exit status {run.process.returncode})"
                )
                return result
            time.sleep(5)
        check_outputs(run, result)
    finally:
        run.stop()
        check_log(run, result)
        if not keep and result.passed:
            subprocess.run(["rm", "-rf", str(workdir)], check=False)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to keep make run going")
    parser.add_argument("--tasks", type=int, default=300, help="tasks created in the burst")
    parser.add_argument("--keep", action="store_true", help="keep the clone, data and log afterwards")
    options = parser.parse_args(argv)
    result = soak(minutes=options.minutes, tasks=options.tasks, keep=options.keep)
    print(result.table())
    if result.first_cancellable_seconds is None:
        print("   no queued task was offered for cancel")
    for line in (result.process_deaths + result.bad_lines + result.problems)[:50]:
        print("  ", line)
    print(json.dumps({"log": result.log_path, "outputs": dict(result.outputs)}))
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
