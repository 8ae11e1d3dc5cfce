"""Start the production-like topology and keep it running until Ctrl-C.

    .venv/bin/python -m harness.run [--workers 2] [--queue-seconds 5] [--run-seconds 10]

Prints where the dashboard, the simulator and the S3 server listen, and the admin
login. Everything it created (database, Redis database, files) is removed on exit.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .topology import SIM_API_KEY, Harness, HarnessConfig, HarnessError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness.run", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="Celery workers to start (default 2)")
    parser.add_argument(
        "--queue-seconds", type=float, default=5.0, help="how long simulated tasks stay queued"
    )
    parser.add_argument("--run-seconds", type=float, default=10.0, help="how long simulated tasks run")
    options = parser.parse_args(argv)
    if options.workers < 1:
        parser.error("--workers must be at least 1")

    config = HarnessConfig(
        workers=options.workers, sim_queue_seconds=options.queue_seconds, sim_run_seconds=options.run_seconds
    )
    harness = Harness(config)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        print("starting PostgreSQL database, simulator, S3, gunicorn, workers and beat...", flush=True)
        harness.start()
    except HarnessError as error:
        print(f"harness: {error}", file=sys.stderr)
        return 1
    try:
        print(
            f"\n  dashboard  {harness.web_url}/  (admin / {harness.admin_password})"
            f"\n  health     {harness.web_url}/healthz    metrics {harness.web_url}/metrics"
            f"\n  simulator  {harness.sim_url}/api/v3  (key {SIM_API_KEY}; control plane under /_sim/)"
            f"\n  S3         {harness.s3_url}  (bucket arkdash-harness)"
            f"\n  database   {harness.db.name}    Redis {harness.redis.url}"
            f"\n  logs       {harness.logs}\n\nCtrl-C stops everything.",
            flush=True,
        )
        stop.wait()
    finally:
        print("stopping...", flush=True)
        harness.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
