"""`make run`: the whole dashboard on one machine, with Python alone.

Starts the web server, a Celery worker and beat (and, when ARK_API_KEY is not set, the
built-in Ark simulator seeded with demo tasks) under one supervisor, after preparing
the database and static files. Ctrl-C stops everything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from honcho.manager import Manager

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SIM_KEY = "sim-demo-key"


def manage(*args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, check=True)


def main() -> int:
    env = dict(os.environ)
    env.setdefault("ARKDASH_DATA_DIR", str(ROOT / "var"))
    env.setdefault("PYTHONUNBUFFERED", "1")
    host = env.get("ARKDASH_HOST", "127.0.0.1")
    port = env.get("ARKDASH_PORT", "8000")
    sim_port = env.get("ARKSIM_PORT", "8765")
    use_simulator = not env.get("ARK_API_KEY")
    if use_simulator:
        env["ARK_API_KEY"] = SIM_KEY
        env["ARK_BASE_URL"] = f"http://127.0.0.1:{sim_port}/api/v3"
        # Only the simulator may be plain http and on loopback (README, Security).
        env["ARKDASH_SIMULATOR_URL"] = f"http://127.0.0.1:{sim_port}"
    os.environ.update(env)

    manage("migrate", "--noinput", "-v", "0")
    manage("collectstatic", "--noinput", "-v", "0")
    manage("bootstrap", f"--url=http://{host}:{port}/")

    processes = {
        "web": f"{PYTHON} -m gunicorn arkdash.wsgi -b {host}:{port} --workers 2 --threads 4 "
        "--access-logfile - --logger-class arkdash.access_log.Logger --graceful-timeout 5",
        "worker": f"{PYTHON} -m celery -A arkdash worker -l info --concurrency 2",
        "beat": f"{PYTHON} -m celery -A arkdash beat -l info",
    }
    if use_simulator:
        processes["arksim"] = (
            f"{PYTHON} manage.py arksim --port {sim_port} --api-key {SIM_KEY} --seed-demo --demo-trickle 30"
        )

    manager = Manager()
    for name, command in processes.items():
        manager.add_process(name, command, cwd=str(ROOT), env=env)
    manager.loop()
    return manager.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
