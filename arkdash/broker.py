"""The embedded Celery broker of `make run`: kombu's filesystem transport, made safe.

kombu's filesystem transport as shipped creates a message file, then locks and writes it.
A reader polling the folder can take the file in between and find it empty; its
JSONDecodeError escapes the consumer and Celery stops the worker ("Unrecoverable error",
kombu issue #1551). Two changes close that:

- a message is written under a temporary name that readers skip, then renamed into
  place (rename is atomic on one filesystem): a reader sees a whole file or none;
- a reader takes a file by renaming it into the processing folder (only one reader can
  win a rename), and a file that still does not decode (written by hand, a full disk,
  an older ArkDash) is logged and set aside in `rejected/` instead of stopping the worker.

Why not another broker: the SQLAlchemy transport needs SQLAlchemy and polls a table that
web, worker and beat would lock in the same SQLite file the dashboard writes to; this
keeps the embedded run at Python alone with no database contention. Production uses Redis.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic
from typing import Any

from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

log = logging.getLogger("arkdash.broker")

# Readers only look at names ending in ".<queue>.msg"; a file being written ends in ".part".
PARTIAL_SUFFIX = ".part"


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PARTIAL_SUFFIX
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue: str) -> Any:
        wanted = f"{queue}.msg"
        processing = Path(self.data_folder_in).parent / "processing"
        processing.mkdir(exist_ok=True)
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            taken = processing / name
            try:
                os.rename(os.path.join(self.data_folder_in, name), taken)
            except OSError:
                continue  # another reader took it first
            try:
                payload = taken.read_bytes()
                message = loads(bytes_to_str(payload))
                if not isinstance(message, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError, UnicodeDecodeError) as error:
                _reject(taken, error)
                continue
            taken.unlink(missing_ok=True)
            return message
        raise Empty()

    def get_table(self, exchange: str) -> list:
        # The exchange table (broadcasts: remote control) has the same create-then-write
        # race; a table read mid-write means "no bound queues" for this one broadcast.
        try:
            return super().get_table(exchange)
        except json.JSONDecodeError:
            log.warning("broker: exchange table %r was being written; skipped one broadcast", exchange)
            return []


def _reject(path: Path, error: Exception) -> None:
    rejected = path.parent.parent / "rejected"
    rejected.mkdir(exist_ok=True)
    size = path.stat().st_size if path.exists() else 0
    log.error("broker: set aside an unreadable message %s (%d bytes): %s", path.name, size, error)
    try:
        os.replace(path, rejected / path.name)
    except OSError:
        path.unlink(missing_ok=True)


class Transport(filesystem.Transport):
    Channel = Channel
    # How often an idle worker looks for a message (kombu's default is 1 s): listing a
    # folder is cheap, and a second's wait before each archive copy adds up.
    polling_interval = 0.2
