"""The process runner of `make run`: starts each process, prefixes its output, restarts it when it dies.

honcho (used before) stops every process as soon as one exits, so one crashed worker took
the web server down with it. Here a process that exits is logged and started again after
a short pause that grows while it keeps dying quickly; the others go on. Ctrl-C or
SIGTERM stops them all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO

# A process that ran this long before dying is restarted at once, not after a growing pause.
STABLE_SECONDS = 30.0
MAX_PAUSE_SECONDS = 30.0


@dataclass
class Process:
    name: str
    command: list[str]
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    pause: float = 0.5  # doubled on each quick death: the first restart waits 1 s
    restart_at: float | None = None
    pumps: list[threading.Thread] = field(default_factory=list)


class Supervisor:
    def __init__(
        self,
        commands: Mapping[str, list[str]],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        out: IO[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.processes = [Process(name, list(command)) for name, command in commands.items()]
        self.cwd, self.env = cwd, dict(env) if env is not None else None
        self.out = out or sys.stdout
        self.clock = clock
        self.width = max(len(name) for name in commands)
        self._stop = threading.Event()
        self._write_lock = threading.Lock()

    def log(self, name: str, line: str) -> None:
        with self._write_lock:
            self.out.write(f"{time.strftime('%H:%M:%S')} {name.ljust(self.width)} | {line}\n")
            self.out.flush()

    def start(self, process: Process) -> None:
        process.popen = subprocess.Popen(
            process.command,
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our own signals only: Ctrl-C reaches the runner, which stops each group
        )
        process.started_at = self.clock()
        process.restart_at = None
        pump = threading.Thread(target=self._pump, args=(process.name, process.popen), daemon=True)
        pump.start()
        process.pumps.append(pump)
        self.log("run", f"{process.name} started (pid {process.popen.pid})")

    def _pump(self, name: str, popen: subprocess.Popen[bytes]) -> None:
        assert popen.stdout is not None
        for raw in popen.stdout:
            self.log(name, raw.decode("utf-8", "replace").rstrip("\n"))

    def check(self) -> None:
        """One round: note processes that died, start those whose pause is over."""
        now = self.clock()
        for process in self.processes:
            if process.popen is not None and process.restart_at is None:
                code = process.popen.poll()
                if code is None:
                    continue
                ran = now - process.started_at
                process.pause = 1.0 if ran >= STABLE_SECONDS else min(process.pause * 2, MAX_PAUSE_SECONDS)
                process.restart_at = now + process.pause
                process.restarts += 1
                self.log(
                    "run",
                    f"{process.name} exited with code {code} after {ran:.0f} s; "
                    f"restarting it in {process.pause:.0f} s (restart #{process.restarts})",
                )
            elif process.restart_at is not None and now >= process.restart_at:
                self.start(process)

    def run(self, *, poll_seconds: float = 0.5) -> int:
        previous = {sig: signal.signal(sig, lambda *_: self._stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for process in self.processes:
                self.start(process)
            while not self._stop.wait(poll_seconds):
                self.check()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stop_all()
        return 0

    def stop(self) -> None:
        self._stop.set()

    def stop_all(self, grace_seconds: float = 20.0) -> None:
        running = [p for p in self.processes if p.popen is not None and p.popen.poll() is None]
        for process in running:
            self.log("run", f"stopping {process.name}")
            # The leader only: gunicorn's master and Celery's main process stop their own children.
            process.popen.terminate()
        deadline = time.monotonic() + grace_seconds
        for process in running:
            assert process.popen is not None
            try:
                process.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log("run", f"{process.name} did not stop in {grace_seconds:.0f} s; killing it")
                _signal_group(process.popen, signal.SIGKILL)
                process.popen.wait()
        for process in self.processes:
            for pump in process.pumps:
                pump.join(2)


def _signal_group(popen: subprocess.Popen[bytes] | None, sig: int) -> None:
    if popen is None:
        return
    try:
        os.killpg(popen.pid, sig)
    except ProcessLookupError:
        pass
