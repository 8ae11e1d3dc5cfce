"""Archive benchmark: throughput against curl and rclone, worker memory, and 500 tasks at once.

    .venv/bin/python bench/bench_archive.py            # everything (a few minutes)
    .venv/bin/python bench/bench_archive.py --only throughput --throughput-size 1G

What it starts (all on loopback, all stopped at the end): the simulator (`python -m
arksim`) in its own process, moto's S3 server in its own process, Celery workers
(`--pool=solo`, Redis DB 12 as broker), and a fresh PostgreSQL database that is
dropped afterwards. Measurements:

1. throughput: the same simulator URL copied to the same disk by `curl -o` and by
   ArkDash's copy (`artifact_archive`, timed around the call in a fresh process), and
   to the same moto bucket by `rclone copyurl` and by ArkDash; median of --repeat runs.
   ArkDash also hashes, verifies and fsyncs; curl does none of that.
2. worker peak RSS (VmHWM of a real Celery worker, fresh per size) for each --sizes.
3. --tasks video tasks that succeed at once, synced with `manage.py sync --once
   --full-sweep`, archived by --workers Celery workers: time from each task's success
   to its last output archived (p50/p99/max).

Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make the project importable

from bench.support import free_port, wait_for_port  # noqa: E402

PYTHON = sys.executable
POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
SIM_KEY = "bench-key"
MiB = 1024 * 1024
SIZE_UNITS = {"K": 1024, "M": MiB, "G": 1024 * MiB}


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+)([KMG]?)", text.strip().upper())
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 100M, 1G)")
    return int(match.group(1)) * SIZE_UNITS.get(match.group(2), 1)


def human(size: int) -> str:
    for unit, factor in (("GiB", 1024 * MiB), ("MiB", MiB)):
        if size >= factor:
            return f"{size / factor:g} {unit}"
    return f"{size} B"


@dataclass
class Env:
    workdir: Path
    db_name: str
    sim_url: str
    s3_url: str
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def child_env(self, *, s3_bucket: str = "", **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "arkdash.settings",
            "DATABASE_URL": f"{POSTGRES}/{self.db_name}",
            "ARKDASH_DATA_DIR": str(self.data_dir),
            "REDIS_URL": REDIS_URL,
            "ARK_API_KEY": SIM_KEY,
            "ARK_BASE_URL": f"{self.sim_url}/api/v3",
            "ARKDASH_SIMULATOR_URL": self.sim_url,
            "ARKDASH_LOG_LEVEL": "WARNING",
            **extra,
        }
        env.pop("ARKDASH_S3_BUCKET", None)
        if s3_bucket:
            env.update(
                ARKDASH_S3_BUCKET=s3_bucket,
                ARKDASH_S3_ENDPOINT_URL=self.s3_url,
                ARKDASH_S3_REGION="us-east-1",
                AWS_ACCESS_KEY_ID="bench",
                AWS_SECRET_ACCESS_KEY="bench",
            )
        return env

    def start(self, args: list[str], **kwargs) -> subprocess.Popen:
        process = subprocess.Popen(args, cwd=ROOT, start_new_session=True, **kwargs)
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        if process in self.processes:
            self.processes.remove(process)


def _psql(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
        conn.execute(sql)


@contextmanager
def environment(workdir: Path | None) -> Iterator[Env]:
    own_workdir = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="arkdash-bench-archive-")) if own_workdir else workdir
    workdir.mkdir(parents=True, exist_ok=True)
    db_name = f"arkdash_bench_archive_{os.getpid()}"
    sim_port, s3_port = free_port(), free_port()
    env = Env(
        workdir=workdir,
        db_name=db_name,
        sim_url=f"http://127.0.0.1:{sim_port}",
        s3_url=f"http://127.0.0.1:{s3_port}",
    )
    _psql(f'CREATE DATABASE "{db_name}"')
    try:
        env.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(workdir / "services.log", "ab")  # noqa: SIM115 - closed below
        env.start(
            [PYTHON, "-m", "arksim", "--port", str(sim_port), "--api-key", SIM_KEY, "--list-rate", "0",
             "--get-rate", "0", "--delete-rate", "0", "--queue-seconds", "0", "--run-seconds", "0"],
            stdout=log, stderr=log,
        )  # fmt: skip
        env.start(
            [str(Path(PYTHON).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)],
            stdout=log,
            stderr=log,
        )
        wait_for_port(sim_port)
        wait_for_port(s3_port)
        subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env.child_env(), check=True)
        subprocess.run(
            [str(Path(PYTHON).parent / "celery"), "-A", "arkdash", "purge", "-f"],
            cwd=ROOT, env=env.child_env(), check=True, capture_output=True,
        )  # fmt: skip
        _django_setup(env)
        yield env
    finally:
        for process in list(env.processes):
            env.stop(process)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - best effort before dropping the database
            pass
        _psql(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def _django_setup(env: Env) -> None:
    os.environ.update(env.child_env())
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


# --- Simulator control plane -----------------------------------------------------


def sim_task(env: Env, *, output_bytes: int, last_frame: bool = False) -> str:
    body = {
        "kind": "video",
        "status": "succeeded",
        "output_bytes": output_bytes,
        "return_last_frame": last_frame,
    }
    response = httpx.post(f"{env.sim_url}/_sim/tasks", json=body, timeout=30)
    response.raise_for_status()
    return response.json()["id"]


def sim_outputs(env: Env, task_id: str) -> dict:
    response = httpx.get(f"{env.sim_url}/_sim/tasks/{task_id}/outputs", timeout=120)
    response.raise_for_status()
    return response.json()


def sim_delete_all(env: Env) -> None:
    headers = {"Authorization": f"Bearer {SIM_KEY}"}
    with httpx.Client(base_url=f"{env.sim_url}/api/v3", headers=headers, timeout=30) as client:
        while items := client.get("/contents/generations/tasks", params={"page_size": 500}).json()["items"]:
            for item in items:
                client.delete(f"/contents/generations/tasks/{item['id']}").raise_for_status()


def s3_client(env: Env):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env.s3_url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )


def mirror_artifact(env: Env, sim_id: str, url: str):
    """A Task and its video Artifact in the bench database, pending."""
    from django.utils import timezone

    from tasks_app.lib.storage import artifact_key
    from tasks_app.models import Artifact, Task
    from tasks_app.services.accounts import account_ensure_default

    # The default account (ARK_API_KEY): a second account with the same key would be synced twice.
    account = account_ensure_default()
    task = Task.objects.create(
        account=account, ark_id=sim_id, kind="video", status="succeeded",
        ark_created_at=timezone.now(), ark_updated_at=timezone.now(), video_url=url,
    )  # fmt: skip
    return Artifact.objects.create(
        task=task, output="video", source_url=url, content_type="video/mp4", filename=f"{sim_id}-video.mp4",
        storage_key=artifact_key(account_id=account.pk, ark_id=sim_id, filename="video.mp4"),
    )  # fmt: skip


def reset_artifact(artifact_id: int) -> None:
    """Pending again, and its archived object removed (as curl's target is between runs)."""
    from tasks_app.lib import storage
    from tasks_app.models import Artifact

    key = Artifact.objects.values_list("storage_key", flat=True).get(pk=artifact_id)
    archive = storage.archive_storage()
    if not storage.is_s3(archive) and archive.exists(key):
        archive.delete(key)
    Artifact.objects.filter(pk=artifact_id).update(
        state="pending",
        claim_token="",
        claimed_at=None,
        attempts=0,
        sha256="",
        bytes_copied=0,
        archived_at=None,
    )


# --- 1. Throughput ------------------------------------------------------------------


def copy_in_child(env: Env, artifact_id: int, *, s3_bucket: str = "") -> dict:
    """ArkDash's copy in a fresh process, timed around artifact_archive only."""
    result = subprocess.run(
        [PYTHON, __file__, "_copy", str(artifact_id)],
        cwd=ROOT, env=env.child_env(s3_bucket=s3_bucket), capture_output=True, text=True, check=True,
    )  # fmt: skip
    if os.environ.get("BENCH_PROFILE"):
        print(result.stderr, file=sys.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_curl(url: str, target: Path) -> float:
    result = subprocess.run(
        ["curl", "-sS", "--fail", "-o", str(target), "-w", "%{time_total}", url],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout)


def run_rclone(env: Env, url: str, bucket: str, key: str) -> float:
    rclone_env = {
        # rclone refuses a custom CA bundle on a plain-http endpoint; loopback needs none.
        **{k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"},
        "RCLONE_CONFIG_BENCH_TYPE": "s3",
        "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
        "RCLONE_CONFIG_BENCH_ENDPOINT": env.s3_url,
        "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": "bench",
        "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": "bench",
        "RCLONE_CONFIG_BENCH_REGION": "us-east-1",
        "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
    }
    started = time.monotonic()
    result = subprocess.run(
        # --s3-no-head: rclone 1.60 checks the upload with HEAD ?versionId=null, which moto refuses.
        ["rclone", "--config", "/dev/null", "copyurl", "--s3-no-head", url, f"bench:{bucket}/{key}"],
        env=rclone_env, capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"rclone failed: {result.stderr.strip()[-2000:]}")
    return time.monotonic() - started


def bench_throughput(env: Env, *, size: int, s3_size: int, repeat: int) -> list[str]:
    lines = ["### Throughput", ""]
    # Local disk: curl -o and ArkDash into the same data folder.
    sim_id = sim_task(env, output_bytes=size)
    info = sim_outputs(env, sim_id)["video"]
    artifact = mirror_artifact(env, sim_id, info["url"])
    target = env.data_dir / "curl-copy.mp4"
    curl_times, ours_times = [], []
    for _ in range(repeat):
        # Each run starts with no dirty pages left by the one before (curl does not fsync; we do).
        os.sync()
        curl_times.append(run_curl(info["url"], target))
        target.unlink()
        reset_artifact(artifact.pk)
        os.sync()
        result = copy_in_child(env, artifact.pk)
        if not result["sha_ok"]:
            raise RuntimeError(f"ArkDash's copy is wrong: {result}")
        ours_times.append(result["seconds"])
    curl_s, ours_s = statistics.median(curl_times), statistics.median(ours_times)
    hash_s = statistics.median(sha256_seconds(size) for _ in range(repeat))

    def rate(nbytes: int, seconds: float) -> str:
        return f"{nbytes / seconds / 1e6:,.0f} MB/s"

    lines += [
        f"Median of {repeat} runs; the same simulator URL each time.",
        "",
        "| target | size | tool | time | throughput | ArkDash ÷ tool |",
        "|---|---|---|---|---|---|",
        f"| local disk | {human(size)} | `curl -o` | {curl_s:.2f} s | {rate(size, curl_s)} | |",
        f"| local disk | {human(size)} | ArkDash | {ours_s:.2f} s | {rate(size, ours_s)} | **{curl_s / ours_s:.2f}×** |",
        f"| (ceiling) | {human(size)} | sha256 of the bytes in memory, nothing else | {hash_s:.2f} s | {rate(size, hash_s)} | {curl_s / hash_s:.2f}× |",
    ]
    raw = f"Raw runs (s): curl {fmt(curl_times)}; ArkDash local {fmt(ours_times)}"
    if s3_size:
        # S3: rclone copyurl and ArkDash into the same moto bucket.
        bucket = "bench-throughput"
        s3_client(env).create_bucket(Bucket=bucket)
        s3_id = sim_task(env, output_bytes=s3_size)
        s3_info = sim_outputs(env, s3_id)["video"]
        s3_artifact = mirror_artifact(env, s3_id, s3_info["url"])
        rclone_times, ours_s3_times = [], []
        for run in range(repeat):
            rclone_times.append(run_rclone(env, s3_info["url"], bucket, f"rclone/{run}.mp4"))
            reset_artifact(s3_artifact.pk)
            result = copy_in_child(env, s3_artifact.pk, s3_bucket=bucket)
            if not result["sha_ok"]:
                raise RuntimeError(f"ArkDash's S3 copy is wrong: {result}")
            ours_s3_times.append(result["seconds"])
        rclone_s, ours_s3_s = statistics.median(rclone_times), statistics.median(ours_s3_times)
        lines += [
            f"| moto S3 | {human(s3_size)} | `rclone copyurl` | {rclone_s:.2f} s | {rate(s3_size, rclone_s)} | |",
            f"| moto S3 | {human(s3_size)} | ArkDash | {ours_s3_s:.2f} s | {rate(s3_size, ours_s3_s)} | **{rclone_s / ours_s3_s:.2f}×** |",
        ]
        raw += f"; rclone {fmt(rclone_times)}; ArkDash S3 {fmt(ours_s3_times)}"
    lines += ["", raw + ".", ""]
    return lines


def sha256_seconds(size: int) -> float:
    """The issue asks for sha256 while streaming: no copy can beat hashing its bytes on one core."""
    import hashlib

    block = os.urandom(MiB)
    digest = hashlib.sha256()
    started = time.perf_counter()
    for _ in range(size // MiB):
        digest.update(block)
    digest.update(block[: size % MiB])
    return time.perf_counter() - started


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


# --- 2. Worker memory ------------------------------------------------------------------


def start_worker(env: Env, name: str, *, s3_bucket: str = "") -> subprocess.Popen:
    log = open(env.workdir / f"worker-{name}.log", "ab")  # noqa: SIM115 - owned by the process
    process = env.start(
        [str(Path(PYTHON).parent / "celery"), "-A", "arkdash", "worker", "--pool=solo", "-n", f"{name}@bench",
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "WARNING"],
        env=env.child_env(s3_bucket=s3_bucket), stdout=log, stderr=log,
    )  # fmt: skip
    return process


def vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def wait_archived(artifact_ids: list[int], *, timeout: float) -> None:
    from tasks_app.models import Artifact

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = list(Artifact.objects.filter(pk__in=artifact_ids).values_list("state", flat=True))
        if len(states) == len(artifact_ids) and all(state == "archived" for state in states):
            return
        bad = [s for s in states if s in ("failed", "lost")]
        if bad:
            errors = list(
                Artifact.objects.filter(pk__in=artifact_ids, state__in=bad).values_list(
                    "last_error", flat=True
                )
            )
            raise RuntimeError(f"archive failed: {errors[:3]}")
        time.sleep(0.2)
    raise RuntimeError(f"not archived after {timeout} s")


def vm_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def archive_through_worker(env: Env, size: int) -> tuple[int, str, float]:
    """Queue one output of `size` bytes; wait until a worker archived it. (artifact id, sha, seconds)."""
    from tasks_app.tasks import archive_artifact

    sim_id = sim_task(env, output_bytes=size)
    info = sim_outputs(env, sim_id)["video"]
    artifact = mirror_artifact(env, sim_id, info["url"])
    started = time.monotonic()
    archive_artifact.delay(artifact.pk)
    wait_archived([artifact.pk], timeout=900)
    artifact.refresh_from_db()
    if artifact.sha256 != info["sha256"]:
        raise RuntimeError("the worker's copy is wrong")
    return artifact.pk, artifact.sha256, time.monotonic() - started


def bench_memory(env: Env, *, sizes: list[int], s3_sizes: list[int]) -> list[str]:
    rows = []
    bucket = "bench-memory"
    s3_client(env).create_bucket(Bucket=bucket)
    for target, target_sizes, s3 in (("local disk", sizes, ""), ("moto S3", s3_sizes, bucket)):
        for size in target_sizes:
            worker = start_worker(env, f"mem{size}", s3_bucket=s3)
            time.sleep(3)  # let it finish starting before taking its idle size
            idle = vm_hwm_kb(worker.pid)
            archive_through_worker(env, 1 * MiB)  # warm: first task, S3 client created
            warm = vm_rss_kb(worker.pid)
            _, _, seconds = archive_through_worker(env, size)
            peak = vm_hwm_kb(worker.pid)
            env.stop(worker)
            rows.append(
                f"| {target} | {human(size)} | {idle / 1024:.0f} MiB | {warm / 1024:.0f} MiB "
                f"| **{peak / 1024:.0f} MiB** | {seconds:.1f} s |"
            )
    return [
        "### Worker peak RSS",
        "",
        "A real Celery worker (`--pool=solo`, so the copy runs in the measured process), fresh for",
        "each size. Idle: VmHWM once started. Warm: VmRSS after a first 1 MiB copy (Django, the",
        "task code and, on S3, the boto3 client are loaded). Peak: VmHWM after the big copy.",
        "",
        "| target | output | idle RSS | warm RSS | peak RSS | wall time incl. queueing |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]


# --- 3. Many tasks at once ------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def bench_many(env: Env, *, count: int, task_bytes: int, workers: int) -> list[str]:
    from datetime import UTC, datetime

    from django.db.models import Count, Max

    from tasks_app.models import Artifact, Task

    # The sync mirrors every task in the simulator: remove what the other parts left.
    sim_delete_all(env)
    os.sync()
    workers_up = [start_worker(env, f"many{n}") for n in range(workers)]
    time.sleep(3)
    sim_ids: list[str] = []
    with httpx.Client(timeout=30) as client:
        for _ in range(count):
            body = {
                "kind": "video",
                "status": "succeeded",
                "output_bytes": task_bytes,
                "return_last_frame": True,
            }
            response = client.post(f"{env.sim_url}/_sim/tasks", json=body)
            response.raise_for_status()
            sim_ids.append(response.json()["id"])
    succeeded_by = datetime.now(UTC)
    sync_started = time.monotonic()
    synced = subprocess.run(
        [PYTHON, "manage.py", "sync", "--once", "--full-sweep"], cwd=ROOT, env=env.child_env(), check=True,
        capture_output=True, text=True,
    )  # fmt: skip
    sync_seconds = time.monotonic() - sync_started
    # The sync queues the hand-off; a worker creates the artifacts and queues their copies.
    ours = Artifact.objects.filter(task__ark_id__in=sim_ids)
    deadline = time.monotonic() + 600
    while ours.count() < 2 * count:
        if time.monotonic() > deadline:
            pending = Task.objects.filter(archive_handoff_pending=True).count()
            raise RuntimeError(
                f"only {ours.count()} of {2 * count} artifacts exist ({pending} hand-offs pending)"
                f"\n{synced.stdout}\n{synced.stderr[-3000:]}"
            )
        time.sleep(0.2)
    ids = list(ours.values_list("pk", flat=True))
    wait_archived(ids, timeout=1800)
    total_seconds = time.monotonic() - sync_started
    for worker in workers_up:
        env.stop(worker)
    done = (
        Task.objects.filter(ark_id__in=sim_ids)
        .annotate(last=Max("artifacts__archived_at"))
        .values_list("ark_updated_at", "last")
    )
    if any(last is None for _, last in done):
        rows = list(
            Task.objects.filter(ark_id__in=sim_ids)
            .annotate(n=Count("artifacts"), last=Max("artifacts__archived_at"))
            .filter(last__isnull=True)
            .values("ark_id", "account__name", "status", "n")
        )
        raise RuntimeError(f"tasks without an archived output: {rows[:5]}")
    latencies = [(last - succeeded).total_seconds() for succeeded, last in done]
    archived_bytes = sum(ours.values_list("size", flat=True))
    return [
        f"### {count} tasks succeeding at once, {workers} workers",
        "",
        f"{count} video tasks (a {human(task_bytes)} video and a png last frame each, {2 * count} outputs,",
        f"{archived_bytes / 1e9:.1f} GB) added to the simulator as succeeded by {succeeded_by:%H:%M:%S} UTC; then",
        f"`manage.py sync --once --full-sweep` mirrors them ({sync_seconds:.1f} s) and queues their hand-off;",
        f"{workers} Celery workers (`--pool=solo`, Redis broker) copy them to local disk.",
        "",
        "| from a task's success to its last output archived | seconds |",
        "|---|---|",
        f"| p50 | {percentile(latencies, 50):.1f} |",
        f"| p99 | **{percentile(latencies, 99):.1f}** |",
        f"| max | {max(latencies):.1f} |",
        f"| sync start → everything archived | {total_seconds:.1f} |",
        "",
    ]


# --- Entry points ------------------------------------------------------------------


def child_copy(artifact_id: int) -> None:
    """`_copy <id>`: one artifact_archive call in this fresh process, as JSON."""
    import resource

    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from tasks_app.lib import storage
    from tasks_app.services.archive import artifact_archive

    # A running worker already holds its S3 client: do not time creating it.
    archive = storage.archive_storage()
    if storage.is_s3(archive):
        s3_client, _bucket, _key = storage.s3_object(archive, "")
        s3_client.list_buckets()

    profiler = None
    if os.environ.get("BENCH_PROFILE"):  # where the time goes, on stderr
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    artifact = artifact_archive(artifact_id=artifact_id)
    seconds = time.perf_counter() - started
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(15)
    expected = httpx.get(
        f"{os.environ['ARK_BASE_URL'].removesuffix('/api/v3')}/_sim/tasks/{artifact.task.ark_id}/outputs",
        timeout=120,
    ).json()["video"]
    print(
        json.dumps(
            {
                "state": artifact.state,
                "error": artifact.last_error,
                "seconds": seconds,
                "bytes": artifact.size,
                "sha_ok": artifact.sha256 == expected["sha256"] and artifact.size == expected["size"],
                "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        )
    )


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "_copy":
        child_copy(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["throughput", "memory", "many"], action="append")
    parser.add_argument("--throughput-size", type=parse_size, default=parse_size("1G"))
    parser.add_argument(
        "--s3-size",
        type=parse_size,
        default=parse_size("512M"),
        help="above rclone's 200 MiB multipart cutoff; 0 skips the S3 comparison",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="100M,1G,2G", help="worker RSS on local disk")
    parser.add_argument("--s3-sizes", default="100M,1G", help="worker RSS on S3")
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--task-bytes", type=parse_size, default=parse_size("8M"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, help="keep files here (default: a temporary folder, removed)")
    args = parser.parse_args()
    wanted = set(args.only or ["throughput", "memory", "many"])
    for tool in ("curl", "rclone") if args.s3_size else ("curl",):
        if "throughput" in wanted and shutil.which(tool) is None:
            sys.exit(f"{tool} is needed for the throughput comparison (apt-get install {tool})")
    sizes = [parse_size(s) for s in args.sizes.split(",") if s]
    s3_sizes = [parse_size(s) for s in args.s3_sizes.split(",") if s]

    def section(lines: list[str]) -> None:
        print("\n".join(lines), flush=True)  # each part as soon as it is measured

    section(
        [
            f"## Archive ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, "
            f"`{' '.join(sys.argv[1:]) or 'defaults'}`)",
            "",
        ]
    )
    with environment(args.workdir) as env:
        print(
            f"simulator {env.sim_url}, moto {env.s3_url}, database {env.db_name}, data {env.data_dir}",
            file=sys.stderr,
        )
        if "throughput" in wanted:
            section(
                bench_throughput(env, size=args.throughput_size, s3_size=args.s3_size, repeat=args.repeat)
            )
        if "memory" in wanted:
            section(bench_memory(env, sizes=sizes, s3_sizes=s3_sizes))
        if "many" in wanted:
            section(bench_many(env, count=args.tasks, task_bytes=args.task_bytes, workers=args.workers))


if __name__ == "__main__":
    main()
