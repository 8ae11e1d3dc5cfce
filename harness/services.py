"""The machine's PostgreSQL and Redis, as the harness uses them: a fresh database and a
Redis database number of its own, and the two faults the chaos run injects into them
(dropped database connections, a Redis restart).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

POSTGRES_ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_SERVER_URL = os.environ.get("ARKDASH_HARNESS_REDIS_SERVER", "redis://127.0.0.1:6379")
# Database numbers the harness may take. 0 is for `make run`, 15 for the test suite.
REDIS_DB_CHOICES = tuple(range(2, 14))
_CLAIM_KEY = "arkdash:harness:owner"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- PostgreSQL -----------------------------------------------------------------------------


@dataclass
class HarnessDatabase:
    name: str
    admin_url: str = POSTGRES_ADMIN_URL

    @property
    def url(self) -> str:
        parts = urlsplit(self.admin_url)
        return urlunsplit((parts.scheme, parts.netloc, f"/{self.name}", "", ""))

    @classmethod
    def create(cls, *, prefix: str = "arkdash_harness") -> HarnessDatabase:
        database = cls(name=f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}")
        with psycopg.connect(database.admin_url, autocommit=True, connect_timeout=5) as admin:
            _drop_abandoned(admin, prefix)
            admin.execute(f'CREATE DATABASE "{database.name}"')
        return database

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=5)

    def query(self, sql: str, params: tuple | dict | None = None) -> list[tuple]:
        with self.connect() as db:
            return db.execute(sql, params).fetchall()

    def drop_connections(self) -> int:
        """Terminate every server connection to this database (the chaos run's 'DB drop')."""
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as admin:
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.name,),
            ).fetchall()
        return sum(1 for (done,) in rows if done)

    def drop(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def _drop_abandoned(admin: psycopg.Connection, prefix: str) -> None:
    """Databases of harnesses whose process died without cleaning up (kill -9, CI timeout)."""
    pattern = re.compile(rf"^{re.escape(prefix)}_(\d+)_[0-9a-f]{{6}}$")
    names = admin.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{prefix}_%",)
    ).fetchall()
    for (name,) in names:
        match = pattern.match(name)
        if match and not pid_alive(int(match[1])):
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- Redis --------------------------------------------------------------------------------


@dataclass
class HarnessRedis:
    db: int
    server_url: str = REDIS_SERVER_URL

    @property
    def url(self) -> str:
        return f"{self.server_url.rstrip('/')}/{self.db}"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)

    @classmethod
    def claim(cls, *, choices: tuple[int, ...] = REDIS_DB_CHOICES) -> HarnessRedis:
        """An empty database number nobody else uses, marked as ours."""
        forced = os.environ.get("ARKDASH_HARNESS_REDIS_DB")
        for db in [int(forced)] if forced else choices:
            candidate = cls(db=db)
            client = candidate.client()
            try:
                owner = client.get(_CLAIM_KEY)
                if owner is not None and owner.isdigit() and not pid_alive(int(owner)):
                    client.flushdb()  # left behind by a harness that died: ours to reuse
                if client.dbsize() == 0 and client.set(_CLAIM_KEY, str(os.getpid()), nx=True):
                    if client.dbsize() == 1:
                        return candidate
                    client.delete(_CLAIM_KEY)
            finally:
                client.close()
        raise RuntimeError(
            f"no free Redis database among {choices} at {REDIS_SERVER_URL} (set ARKDASH_HARNESS_REDIS_DB)"
        )

    def release(self) -> None:
        client = self.client()
        try:
            client.flushdb()
        finally:
            client.close()


def redis_restart(
    *, server_url: str = REDIS_SERVER_URL, down_seconds: float = 1.0, timeout: float = 30.0
) -> float:
    """Stop the machine's Redis (SHUTDOWN NOSAVE) and start it again with the same settings.

    This is the shared Redis: only the chaos run calls it. Returns the seconds it was down.
    The start command mirrors .ci/run; the settings that matter are read from the server first.
    """
    parts = urlsplit(server_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    client = redis.Redis(host=host, port=port, socket_timeout=5, socket_connect_timeout=5)
    config = {}
    for name in ("bind", "dir", "logfile", "save", "appendonly"):
        config.update(
            {
                key.decode() if isinstance(key, bytes) else key: value
                for key, value in client.config_get(name).items()
            }
        )
    config = {key: value.decode() if isinstance(value, bytes) else value for key, value in config.items()}
    executable = shutil.which("redis-server") or "redis-server"
    command = [
        executable,
        "--daemonize", "yes",
        "--port", str(port),
        "--bind", *(config.get("bind") or host).split(),
        "--save", config.get("save", ""),
        "--appendonly", config.get("appendonly") or "no",
    ]  # fmt: skip
    if config.get("dir"):
        command += ["--dir", config["dir"]]
    if config.get("logfile"):
        command += ["--logfile", config["logfile"]]

    went_down = time.monotonic()
    try:
        client.shutdown(nosave=True)
    except redis.ConnectionError:
        pass  # SHUTDOWN closes the connection under us: that is the success case
    deadline = time.monotonic() + timeout
    while port_open(host, port) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(down_seconds)
    subprocess.run(command, check=True, timeout=timeout)
    while time.monotonic() < deadline:
        try:
            if redis.Redis(host=host, port=port, socket_timeout=1, socket_connect_timeout=1).ping():
                return time.monotonic() - went_down
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"Redis did not come back on {host}:{port} within {timeout}s: {' '.join(command)}")
