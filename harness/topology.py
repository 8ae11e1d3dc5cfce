"""The production topology on one machine, without Docker: the real PostgreSQL and Redis,
an S3-compatible server (moto), the Ark simulator, gunicorn, Celery workers and beat.

    with Harness(HarnessConfig(workers=2)) as harness:
        harness.dashboard()          # a signed-in httpx client for gunicorn
        harness.sim                  # the simulator's Ark API and /_sim/ control plane
        harness.kill_worker("w1")    # SIGKILL a worker and its pool, mid-copy or not
        harness.db.drop_connections()

Every process is started exactly as docker-compose starts it (same commands, settings
from the environment only), each in its own process group with its log in
`<run dir>/logs/<name>.log`. The database and the Redis database number are fresh and
private to this harness, and removed by stop().
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import httpx

from .clients import Dashboard, SimControl
from .services import HarnessDatabase, HarnessRedis, free_port, port_open

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SIM_API_KEY = "harness-sim-key"
BUCKET = "arkdash-harness"
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "harness", "AWS_SECRET_ACCESS_KEY": "harness-secret"}
# Variables of the calling process that must not leak into the system under test
# (pytest sets DJANGO_SETTINGS_MODULE=tests.settings, the test settings pop REDIS_URL...).
_OWN_PREFIXES = ("ARK_", "ARKDASH_", "DJANGO_", "AWS_", "CELERY_")
_OWN_NAMES = ("DATABASE_URL", "REDIS_URL")


class HarnessError(RuntimeError):
    pass


@dataclass
class HarnessConfig:
    workers: int = 2
    worker_concurrency: int = 2
    web_workers: int = 2
    web_threads: int = 4
    # The simulator: how long tasks it creates stay queued / run, and Ark's list rate.
    sim_queue_seconds: float = 5.0
    sim_run_seconds: float = 10.0
    sim_list_rate: float = 1.0
    # Pad every video to this many bytes (copies that take a while: the chaos run kills one).
    sim_output_bytes: int | None = None
    sync_interval_seconds: float = 2.0
    # Extra environment for every ArkDash process (e.g. faster sweeps for the chaos run).
    env: dict[str, str] = field(default_factory=dict)
    start_timeout: float = 120.0


@dataclass
class Process:
    name: str
    command: list[str]
    log_path: Path
    popen: subprocess.Popen | None = None
    log_offset: int = 0  # where this run's lines start in the log (restarts append)

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_since_start(self) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self.log_offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Harness:
    def __init__(self, config: HarnessConfig | None = None) -> None:
        self.config = config or HarnessConfig()
        self.run_dir = Path(tempfile.mkdtemp(prefix="arkdash-harness-"))
        self.logs = self.run_dir / "logs"
        self.logs.mkdir()
        self.data_dir = self.run_dir / "data"
        self.processes: dict[str, Process] = {}
        self.db: HarnessDatabase | None = None
        self.redis: HarnessRedis | None = None
        self.web_port = free_port()
        self.sim_port = free_port()
        self.s3_port = free_port()
        self.admin_password = ""
        self._sim: SimControl | None = None

    # --- addresses -----------------------------------------------------------------------

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def sim(self) -> SimControl:
        if self._sim is None:
            self._sim = SimControl(self.sim_url, api_key=SIM_API_KEY)
        return self._sim

    def dashboard(self, *, login: bool = True) -> Dashboard:
        client = Dashboard(self.web_url, username="admin", password=self.admin_password)
        if login:
            client.login()
        return client

    def s3(self):
        return boto3.client("s3", endpoint_url=self.s3_url, region_name="us-east-1",
                            aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])  # fmt: skip

    # --- the environment every ArkDash process gets ---------------------------------------

    def env(self) -> dict[str, str]:
        assert self.db is not None and self.redis is not None
        base = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(_OWN_PREFIXES) and key not in _OWN_NAMES
        }
        return {
            **base,
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "arkdash.settings",
            "DJANGO_SECRET_KEY": self._secret_key,
            "DATABASE_URL": self.db.url,
            "REDIS_URL": self.redis.url,
            "ARKDASH_DATA_DIR": str(self.data_dir),
            "ARKDASH_LOG_FORMAT": "json",
            "ARK_API_KEY": SIM_API_KEY,
            "ARK_BASE_URL": f"{self.sim_url}/api/v3",
            "ARKDASH_SIMULATOR_URL": self.sim_url,
            "ARKDASH_SYNC_INTERVAL_SECONDS": str(self.config.sync_interval_seconds),
            "ARKDASH_S3_BUCKET": BUCKET,
            "ARKDASH_S3_ENDPOINT_URL": self.s3_url,
            "ARKDASH_S3_REGION": "us-east-1",
            **S3_CREDENTIALS,
            **self.config.env,
        }

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Harness:
        self.start()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.stop(keep_logs=exc_type is not None)

    def start(self) -> None:
        self._secret_key = secrets.token_urlsafe(40)
        try:
            self.db = HarnessDatabase.create()
            self.redis = HarnessRedis.claim()
            self._spawn("arksim", self._sim_command(), env=self.env())
            self._spawn(
                "s3",
                [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.s3_port)],
                env=self.env(),
            )
            self._manage("migrate", "--noinput", "-v", "0")
            self._manage("collectstatic", "--noinput", "-v", "0")
            self._wait_port("s3", self.s3_port)
            self.s3().create_bucket(Bucket=BUCKET)
            self._wait_port("arksim", self.sim_port)
            self._manage("bootstrap", f"--url={self.web_url}/")
            self.admin_password = (self.data_dir / "admin-password.txt").read_text().strip()
            self._spawn("web", self.web_command(), env=self.env())
            for number in range(1, self.config.workers + 1):
                self.start_worker(f"w{number}")
            self._spawn("beat", self.beat_command(), env=self.env())
            self.wait_healthy()
            for name in self.worker_names:
                self.wait_worker_ready(name)
            self._wait_log("beat", "beat: Starting")
        except BaseException:
            self.stop(keep_logs=True)
            raise

    def stop(self, *, keep_logs: bool = False) -> None:
        for name in reversed(list(self.processes)):
            self._terminate(self.processes[name])
        if self._sim is not None:
            self._sim.close()
        if keep_logs:
            self._save_logs()
        if self.db is not None:
            try:
                self.db.drop()
            except Exception as error:  # noqa: BLE001 - best effort; say so
                print(f"harness: could not drop database {self.db.name}: {error}", file=sys.stderr)
            self.db = None
        if self.redis is not None:
            try:
                self.redis.release()
            except Exception as error:  # noqa: BLE001
                print(f"harness: could not flush Redis db {self.redis.db}: {error}", file=sys.stderr)
            self.redis = None
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def _save_logs(self) -> None:
        target = ROOT / "test-artifacts" / f"harness-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        try:
            shutil.copytree(self.logs, target)
            print(f"harness: logs kept in {target}", file=sys.stderr)
        except OSError as error:
            print(f"harness: could not keep logs: {error}", file=sys.stderr)

    # --- commands (the same as docker-compose.yml's) ----------------------------------------

    def _sim_command(self) -> list[str]:
        return [
            PYTHON, "manage.py", "arksim",
            "--host", "127.0.0.1", "--port", str(self.sim_port),
            "--api-key", SIM_API_KEY,
            "--queue-seconds", str(self.config.sim_queue_seconds),
            "--run-seconds", str(self.config.sim_run_seconds),
            "--list-rate", str(self.config.sim_list_rate),
            *(["--output-bytes", str(self.config.sim_output_bytes)] if self.config.sim_output_bytes else []),
        ]  # fmt: skip

    def web_command(self) -> list[str]:
        return [
            PYTHON, "-m", "gunicorn", "arkdash.wsgi",
            "-b", f"127.0.0.1:{self.web_port}",
            "--workers", str(self.config.web_workers), "--threads", str(self.config.web_threads),
            "--access-logfile", "-", "--graceful-timeout", "5", "--timeout", "60",
            # The access log leaves the secret out of callback addresses (arkdash/access_log.py).
            "--logger-class", "arkdash.access_log.Logger",
            # The live poll of a 200-row page sends ~5 KB of row versions in its URL;
            # gunicorn's default request-line limit (4094) would refuse it with a 400.
            "--limit-request-line", "8190",
            # Longer than the page's 3 s poll, so a viewer's connection is reused, not redone.
            "--keep-alive", "5",
        ]  # fmt: skip

    def worker_command(self, name: str) -> list[str]:
        return [
            PYTHON, "-m", "celery", "-A", "arkdash", "worker",
            "-n", f"{name}@%h", "--concurrency", str(self.config.worker_concurrency),
            "-l", "info", "--without-mingle", "--without-gossip",
        ]  # fmt: skip

    def beat_command(self) -> list[str]:
        return [PYTHON, "-m", "celery", "-A", "arkdash", "beat", "-l", "info",
                "--schedule", str(self.data_dir / "celerybeat-schedule")]  # fmt: skip

    @property
    def worker_names(self) -> list[str]:
        return [name for name in self.processes if name.startswith("w") and name[1:].isdigit()]

    # --- processes -------------------------------------------------------------------------------

    def _spawn(self, name: str, command: list[str], *, env: dict[str, str]) -> Process:
        process = self.processes.get(name) or Process(name, command, self.logs / f"{name}.log")
        process.command = command
        process.log_offset = process.log_path.stat().st_size if process.log_path.exists() else 0
        log = open(process.log_path, "ab")  # noqa: SIM115 - the child owns it; closed below
        try:
            process.popen = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: a kill reaches its children too
            )  # fmt: skip
        finally:
            log.close()
        self.processes[name] = process
        return process

    def _manage(self, *args: str, timeout: float = 180.0) -> None:
        log_path = self.logs / f"manage-{args[0]}.log"
        with open(log_path, "ab") as log:
            done = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=self.env(), stdout=log,
                                  stderr=subprocess.STDOUT, timeout=timeout)  # fmt: skip
        if done.returncode != 0:
            raise HarnessError(f"manage.py {args[0]} failed:\n{log_path.read_text(errors='replace')[-3000:]}")

    def _terminate(self, process: Process, *, grace: float = 10.0) -> None:
        if process.popen is None or process.popen.poll() is not None:
            return
        try:
            os.killpg(process.popen.pid, signal.SIGTERM)
            process.popen.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.popen.pid, signal.SIGKILL)
            process.popen.wait(5)
        except ProcessLookupError:
            pass

    def start_worker(self, name: str) -> Process:
        return self._spawn(name, self.worker_command(name), env=self.env())

    def kill_worker(self, name: str) -> None:
        """SIGKILL the worker and its pool processes at once, like a machine dying."""
        process = self.processes[name]
        if process.popen is None:
            raise HarnessError(f"{name} was never started")
        try:
            os.killpg(process.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.popen.wait(10)

    def signal_process(self, name: str, signum: int) -> None:
        """Send a signal to a process and its children (SIGSTOP/SIGCONT to freeze one)."""
        process = self.processes[name]
        if process.popen is not None and process.popen.poll() is None:
            os.killpg(process.popen.pid, signum)

    def restart_worker(self, name: str) -> None:
        if self.processes[name].running:
            self.kill_worker(name)
        self.start_worker(name)
        self.wait_worker_ready(name)

    # --- waiting ----------------------------------------------------------------------------------

    def _wait(
        self, what: str, ready: Callable[[], bool], *, timeout: float | None = None, watch: str = ""
    ) -> None:
        deadline = time.monotonic() + (timeout or self.config.start_timeout)
        while time.monotonic() < deadline:
            if ready():
                return
            if watch and not self.processes[watch].running:
                raise HarnessError(
                    f"{watch} exited while waiting for {what}:\n{self.processes[watch].log_tail()}"
                )
            time.sleep(0.2)
        tail = self.processes[watch].log_tail() if watch else ""
        raise HarnessError(f"timed out waiting for {what}\n{tail}")

    def _wait_port(self, name: str, port: int) -> None:
        self._wait(f"{name} on port {port}", lambda: port_open("127.0.0.1", port), watch=name)

    def _wait_log(self, name: str, text: str) -> None:
        process = self.processes[name]
        self._wait(f"{name} to log {text!r}", lambda: text in process.log_since_start(), watch=name)

    def wait_worker_ready(self, name: str) -> None:
        # Celery logs "<name>@<host> ready." once it consumes from the broker.
        self._wait_log(name, " ready.")

    def healthz(self) -> httpx.Response:
        return httpx.get(f"{self.web_url}/healthz", timeout=10)

    def wait_healthy(self, timeout: float | None = None) -> None:
        def healthy() -> bool:
            try:
                return self.healthz().status_code == 200
            except httpx.HTTPError:
                return False

        self._wait("/healthz to answer 200", healthy, timeout=timeout, watch="web")

    def metrics(self) -> str:
        answer = httpx.get(f"{self.web_url}/metrics", timeout=10)
        answer.raise_for_status()
        return answer.text

    def logs_of(self, name: str) -> str:
        return self.processes[name].log_path.read_text(errors="replace")
