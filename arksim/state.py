"""Keep the simulator's tasks in a file, so a restarted server continues where it stopped.

Without it, restarting `make run` started an empty simulator: the mirror's running tasks
vanished upstream at once and nothing else they did could be shown. The file holds the
tasks, their outputs and the URL-signing secret (so archived-but-not-yet-copied URLs stay
valid); it is written atomically (temporary name, then rename) every few seconds and at exit.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .outputs import OutputSpec
from .tasks import SimTask

if TYPE_CHECKING:
    from .simulator import Simulator

log = logging.getLogger("arksim")
VERSION = 1


def save(sim: Simulator, path: Path) -> None:
    with sim._lock:
        data = {
            "version": VERSION,
            "url_secret": base64.b64encode(sim._url_secret).decode(),
            "tasks": [asdict(task) for task in sim._tasks.values()],
            "outputs": [asdict(spec) for spec in sim._outputs.values()],
        }
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(data))
    os.replace(partial, path)


def load(sim: Simulator, path: Path) -> bool:
    """Restore a saved state into a fresh simulator; False when there is none or it is unreadable."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        if data.get("version") != VERSION:
            raise ValueError(f"unknown state version {data.get('version')!r}")
        tasks = [SimTask(**task) for task in data["tasks"]]
        specs = [OutputSpec(**spec) for spec in data["outputs"]]
        secret = base64.b64decode(data["url_secret"])
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("arksim: ignoring unreadable state file %s: %s", path, error)
        return False
    with sim._lock:
        sim._url_secret = secret
        for task in tasks:
            sim._store(task)
        sim._outputs.update({spec.task_id: spec for spec in specs})
    log.info("arksim: restored %d tasks from %s", len(tasks), path)
    return True


class Saver:
    """Saves the state every `every_seconds` in a background thread, and once more at stop()."""

    def __init__(self, sim: Simulator, path: Path, every_seconds: float = 5.0) -> None:
        self._sim, self._path, self._every = sim, path, every_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="arksim-state", daemon=True)

    def start(self) -> Saver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        save(self._sim, self._path)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                save(self._sim, self._path)
            except OSError as error:
                log.warning("arksim: could not save state to %s: %s", self._path, error)
