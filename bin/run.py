"""`make run`: the whole dashboard on one machine, with Python alone.

Starts the web server, a Celery worker and beat (and, when ARK_API_KEY is not set, the
built-in Ark simulator seeded with demo tasks) under one supervisor
(arkdash/supervisor.py: a process that dies is restarted, the others go on), after
preparing the database and static files. Ctrl-C stops everything. The simulator keeps
its tasks in var/arksim-state.json, so a restart continues where it stopped.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

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

    data_dir = Path(env["ARKDASH_DATA_DIR"])
    processes = {
        "web": f"{PYTHON} -m gunicorn arkdash.wsgi -b {host}:{port} --workers 2 --threads 4 "
        "--access-logfile - --logger-class arkdash.access_log.Logger --graceful-timeout 5",
        "worker": f"{PYTHON} -m celery -A arkdash worker -l info --concurrency 2",
        "beat": f"{PYTHON} -m celery -A arkdash beat -l info",
    }
    if use_simulator:
        # Trickled tasks wait a minute in the queue and run for one (the demo holds a few
        # queued much longer, to be cancelled).
        processes["arksim"] = (
            f"{PYTHON} manage.py arksim --port {sim_port} --api-key {SIM_KEY} --seed-demo --demo-trickle 30 "
            f"--queue-seconds 60 --run-seconds 60 --state-file {shlex.quote(str(data_dir / 'arksim-state.json'))}"
        )

    sys.path.insert(0, str(ROOT))
    from arkdash.supervisor import Supervisor

    supervisor = Supervisor({name: shlex.split(command) for name, command in processes.items()}, cwd=str(ROOT), env=env)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
