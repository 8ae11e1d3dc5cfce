"""Two real worker processes syncing one account at once never exceed Ark's list budget.

The simulator runs as a real server on loopback and enforces 1 list call/s per key like
Ark: any pair of list calls closer than that is answered 429 and counted. Each process
is `manage.py sync --once` against the test's PostgreSQL database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection

from arksim import Simulator
from tasks_app.models import Account, Task

from .services import POSTGRES_URL, REDIS_URL

ROOT = Path(__file__).resolve().parent.parent
ACTIVE_TASKS = 1000


def _database_url() -> str:
    parts = urlsplit(POSTGRES_URL)
    return urlunsplit((parts.scheme, parts.netloc, "/" + connection.settings_dict["NAME"], "", ""))


def _run_two_syncs(env: dict[str, str]) -> list[subprocess.CompletedProcess]:
    command = [sys.executable, "manage.py", "sync", "--once", "--account", "shared", "--wait", "60"]
    processes = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return results


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("limiter", "lease"),
    [
        # One cycle per account at a time: the second process waits for the first, and
        # the shared limiter spaces its first call from the first process's last one.
        pytest.param("embedded", "on", id="embedded-limiter-with-lease"),
        # No lease at all: both cycles really run at the same time; only Redis keeps them apart.
        pytest.param("redis", "off", id="redis-limiter-without-lease", marks=pytest.mark.redis),
    ],
)
def test_it_never_exceeds_the_list_budget_with_two_processes(tmp_path, limiter, lease):
    sim = Simulator(api_keys=("proc-key",), list_rate_per_second=1.0, get_rate_per_second=20.0)
    for _ in range(ACTIVE_TASKS):
        sim.add_task(kind="video", status="running", run_seconds=10**6)
    with sim.serve() as server:
        account = Account(name="shared", base_url=server.base_url)
        account.set_api_key("proc-key")
        account.save()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "arkdash.settings",
            "DATABASE_URL": _database_url(),
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,  # decrypts the account's key
            "ARKDASH_DATA_DIR": str(tmp_path),  # the embedded limiter's file, shared by both
            "ARKDASH_SIMULATOR_URL": server.url,  # plain http on loopback: the simulator's alone
            "ARK_API_KEY": "",
            "ARK_RETRY_BACKOFF_SECONDS": "0.05",
            # The limiter spaces calls as they leave; on a loaded machine one can reach the
            # simulator a few hundred ms late and land within a second of the next. A budget
            # a little under the simulator's 1/s (as one would keep under Ark's) absorbs that.
            "ARK_LIST_RATE_PER_SECOND": "0.8",
            "ARKDASH_LOG_LEVEL": "WARNING",
            "ARK_RATE_LIMIT_KEY_PREFIX": f"test:{uuid.uuid4()}",
            "REDIS_URL": REDIS_URL if limiter == "redis" else "",
            "ARKDASH_SYNC_LEASE_SECONDS": "300" if lease == "on" else "0",
        }
        started = time.monotonic()
        results = _run_two_syncs(env)
        elapsed = time.monotonic() - started
        stats = sim.stats()

    for result in results:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "shared:" in result.stdout and "FAILED" not in result.stdout
    assert stats["list_429"] == 0, f"the list budget was exceeded: {stats}"
    assert stats["list"] >= 4  # both processes did real work
    assert stats["list"] <= elapsed + 1  # at most one call per second, plus the first
    assert Task.objects.filter(account=account).count() == ACTIVE_TASKS
