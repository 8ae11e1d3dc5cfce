"""The chaos run: many tasks, faults on every side, and nothing may be lost.

    .venv/bin/python -m harness.chaos [--tasks 500] [--fault-ratio 0.12]

Against the harness (gunicorn, two workers, beat, PostgreSQL, Redis, S3, simulator):
- tasks of both kinds are created in the simulator while it runs;
- at least `fault_ratio` of the upstream API calls and of the output downloads fail
  (429 with Retry-After, 500, dropped connection, truncated body), injected through
  the simulator's control plane as the run goes;
- one worker is killed with SIGKILL while it is copying (and restarted, as a
  supervisor would), Redis is restarted once (SHUTDOWN NOSAVE: the queue is lost), and
  every database connection is terminated once;
- a few viewers use the dashboard throughout;
- a few tasks succeeded 26 h ago, so their outputs' URLs are dead before ArkDash sees
  them: those outputs are lost for real;
- alerts are on: a signed webhook channel (harness/alert_receiver.py, which answers 500
  now and then) with rules for failed tasks and lost outputs.

Then it waits for everything to settle and prints the figures: tasks seen, outputs
archived, outputs lost (0 expected unless their URL truly expired), partial objects
visible in the bucket (0 expected), HTTP 500s served (0 expected), failed tasks and lost
outputs notified (each exactly once: 0 missing, 0 duplicates expected).

NOTE: the Redis restart affects the machine's shared Redis (as .ci/run starts it).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import random
import re
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from .alert_receiver import AlertReceiver
from .clients import Dashboard
from .services import redis_restart
from .topology import BUCKET, Harness, HarnessConfig

API_ENDPOINTS = ("list", "get", "delete")
FAULT_KINDS = ("429", "500", "drop", "truncate")
# gunicorn's access line: ... "GET /path HTTP/1.1" 200 1234 ...
_ACCESS_LINE = re.compile(r'"[A-Z]+ \S+ HTTP/[\d.]+" (\d{3}) ')


@dataclass
class ChaosPlan:
    tasks: int = 500
    fault_ratio: float = 0.12
    # Bigger videos make copies last long enough to be killed mid-way.
    output_bytes: int = 1_500_000
    creation_seconds: float = 20.0
    # When each disruption happens: the share of the expected outputs already archived.
    kill_worker_at: float = 0.2
    restart_redis_at: float = 0.4
    drop_database_at: float = 0.6
    viewers: int = 3
    settle_timeout: float = 900.0
    seed: int = 2025
    # How long alerts may take to arrive once everything has settled.
    alerts_timeout: float = 180.0
    # Succeeded tasks whose output URLs died before ArkDash could see them (created 26 h
    # ago): their outputs are truly lost, and each loss must be told once.
    expired_tasks: int = 5


@dataclass
class ChaosFigures:
    tasks_created: int = 0
    tasks_seen: int = 0
    statuses_matching_ark: int = 0
    outputs_expected: int = 0
    outputs_archived: int = 0
    outputs_archived_sha256_ok: int = 0
    outputs_lost: int = 0
    outputs_lost_url_expired: int = 0
    outputs_unsettled: int = 0
    partial_objects_visible: int = 0
    multipart_uploads_left: int = 0
    http_requests_served: int = 0
    http_500s_served: int = 0
    viewer_requests: int = 0
    viewer_errors: int = 0
    api_calls: int = 0
    api_faults: int = 0
    downloads: int = 0
    download_faults: int = 0
    faults_by_kind: dict[str, int] = field(default_factory=dict)
    worker_killed_copies_in_flight: int = 0
    redis_down_seconds: float = 0.0
    database_connections_dropped: int = 0
    settle_seconds: float = 0.0
    total_seconds: float = 0.0
    alerts_expected: int = 0  # failed tasks and lost outputs of the run
    alerts_notified_once: int = 0
    alerts_missing: int = 0
    alert_duplicates: int = 0  # events told more than once, and messages accepted twice
    alert_messages: int = 0
    alert_requests: int = 0
    alert_receiver_500s: int = 0
    alert_bad_signatures: int = 0

    @property
    def api_fault_ratio(self) -> float:
        return self.api_faults / self.api_calls if self.api_calls else 0.0

    @property
    def download_fault_ratio(self) -> float:
        return self.download_faults / self.downloads if self.downloads else 0.0

    def table(self) -> str:
        rows = [
            ("tasks created", self.tasks_created),
            ("tasks seen in the dashboard's mirror", self.tasks_seen),
            ("  with Ark's final status", self.statuses_matching_ark),
            ("outputs expected (succeeded tasks)", self.outputs_expected),
            ("outputs archived", self.outputs_archived),
            ("  with the simulator's sha256 (re-read from S3)", self.outputs_archived_sha256_ok),
            ("outputs lost (expected: only those whose URL truly expired)", self.outputs_lost),
            ("  of which the URL truly expired", self.outputs_lost_url_expired),
            ("outputs not settled at the end", self.outputs_unsettled),
            ("partial objects visible (expected 0)", self.partial_objects_visible),
            ("multipart uploads left open", self.multipart_uploads_left),
            ("HTTP requests served by the web", self.http_requests_served),
            ("HTTP 500s served (expected 0)", self.http_500s_served),
            ("viewer requests / errors", f"{self.viewer_requests} / {self.viewer_errors}"),
            (
                "upstream API calls / faulted",
                f"{self.api_calls} / {self.api_faults} ({self.api_fault_ratio:.1%})",
            ),
            (
                "output downloads / faulted",
                f"{self.downloads} / {self.download_faults} ({self.download_fault_ratio:.1%})",
            ),
            ("faults by kind", ", ".join(f"{kind} {n}" for kind, n in sorted(self.faults_by_kind.items()))),
            ("copies in flight on the SIGKILLed worker", self.worker_killed_copies_in_flight),
            ("Redis down (restart), seconds", f"{self.redis_down_seconds:.1f}"),
            ("database connections terminated", self.database_connections_dropped),
            ("settle time after the last disruption, s", f"{self.settle_seconds:.0f}"),
            ("alerts expected (failed tasks, lost outputs)", self.alerts_expected),
            ("  notified exactly once", self.alerts_notified_once),
            ("  missing (expected 0)", self.alerts_missing),
            ("  duplicates (expected 0)", self.alert_duplicates),
            (
                "alert messages accepted / requests / answered 500",
                f"{self.alert_messages} / {self.alert_requests} / {self.alert_receiver_500s}",
            ),
            ("alert signatures that did not verify (expected 0)", self.alert_bad_signatures),
            ("total run time, s", f"{self.total_seconds:.0f}"),
        ]
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)

    def as_json(self) -> dict:
        return {
            **asdict(self),
            "api_fault_ratio": self.api_fault_ratio,
            "download_fault_ratio": self.download_fault_ratio,
        }


# --- faults ---------------------------------------------------------------------------------


class FaultInjector(threading.Thread):
    """Keeps the share of faulted calls at `ratio`, per group (API calls, downloads).

    Faults are injected a few at a time, on the endpoints being called right now, so
    they hit real traffic instead of queueing on an idle endpoint.
    """

    def __init__(self, harness: Harness, *, ratio: float, seed: int) -> None:
        super().__init__(name="chaos-faults", daemon=True)
        self.sim = harness.sim
        self.ratio = ratio
        self.stop_event = threading.Event()
        self.injected: Counter[str] = Counter()  # by endpoint
        self.kinds: Counter[str] = Counter()
        self._kind_cycle = itertools.cycle(FAULT_KINDS)
        self._rng = random.Random(seed)
        self.error: BaseException | None = None

    def run(self) -> None:
        previous: dict[str, int] = {}
        try:
            while not self.stop_event.wait(0.25):
                stats = self.sim.stats()
                pending = Counter(
                    fault["endpoint"] for fault in self.sim.pending_faults() if fault["kind"] in FAULT_KINDS
                )
                recent = {name: stats[name] - previous.get(name, 0) for name in (*API_ENDPOINTS, "output")}
                previous = {name: stats[name] for name in (*API_ENDPOINTS, "output")}
                self._top_up(("output",), stats, pending, recent)
                self._top_up(API_ENDPOINTS, stats, pending, recent)
        except BaseException as error:  # noqa: BLE001 - reported by the run
            self.error = error

    def _top_up(self, endpoints: tuple[str, ...], stats: dict, pending: Counter, recent: dict) -> None:
        calls = sum(stats[name] for name in endpoints)
        injected = sum(self.injected[name] for name in endpoints)
        waiting = sum(pending[name] for name in endpoints)
        # Aim a little above the ratio: some faults land after the run's last call.
        missing = int(self.ratio * 1.3 * (calls + 4)) - injected
        if missing <= 0 or waiting >= 3:
            return
        weights = [recent.get(name, 0) for name in endpoints]
        if not any(weights):
            weights = [1] + [0] * (len(endpoints) - 1)  # nothing called just now: the main endpoint
        for _ in range(min(missing, 3 - waiting)):
            endpoint = self._rng.choices(endpoints, weights=weights)[0]
            kind = next(self._kind_cycle)
            self.sim.inject(endpoint, kind, retry_after=1)
            self.injected[endpoint] += 1
            self.kinds[kind] += 1

    def stop(self) -> tuple[dict[str, int], dict[str, int]]:
        """Stop injecting and withdraw what is still pending.

        Returns the faults that landed by endpoint, and the calls made until now (the
        harness's own reads of Ark, which come later, are not ArkDash's calls).
        """
        self.stop_event.set()
        self.join(10)
        # Only ours: the latency faults that keep copies running for the worker kill are not failures.
        left = Counter(
            fault["endpoint"] for fault in self.sim.pending_faults() if fault["kind"] in FAULT_KINDS
        )
        self.sim.clear_faults()
        calls = self.sim.stats()
        return {endpoint: count - left[endpoint] for endpoint, count in self.injected.items()}, calls


# --- viewers --------------------------------------------------------------------------------


class Viewer(threading.Thread):
    """A person keeping the task list open: the page now and then, the live poll in between."""

    def __init__(self, harness: Harness, number: int) -> None:
        super().__init__(name=f"chaos-viewer-{number}", daemon=True)
        self.harness = harness
        self.stop_event = threading.Event()
        self.requests = 0
        self.errors: Counter[str] = Counter()

    def run(self) -> None:
        dashboard: Dashboard | None = None
        while not self.stop_event.is_set():
            try:
                if dashboard is None:
                    dashboard = self.harness.dashboard()
                    self.requests += 2
                page = dashboard.task_page(page_size=50)
                self.requests += 1
                self._count(page.status_code)
                rows = [row for row in _rows(page.text) if row.live][:50]
                for _ in range(3):
                    if self.stop_event.wait(1.0):
                        break
                    status, _changed = dashboard.poll(rows)
                    self.requests += 1
                    self._count(status)
            except Exception as error:  # noqa: BLE001 - counted (httpx errors included), the run goes on
                self.errors[type(error).__name__] += 1
                dashboard = None
                self.stop_event.wait(1.0)
        if dashboard is not None:
            dashboard.close()

    def _count(self, status: int) -> None:
        if status >= 500:
            self.errors[f"HTTP {status}"] += 1


def _rows(page: str):
    from .clients import parse_rows

    return parse_rows(page)


# --- the run --------------------------------------------------------------------------------


ALERT_SECRET = "chaos-alert-secret"


def chaos_config(plan: ChaosPlan, *, alert_port: int | None = None) -> HarnessConfig:
    alerts = {} if alert_port is None else {
        "ARKDASH_ALERT_PRIVATE_HOSTS": f"127.0.0.1:{alert_port}",
        "ARKDASH_ALERT_SCAN_SECONDS": "5",
        "ARKDASH_ALERT_BATCH_SECONDS": "5",
        "ARKDASH_ALERT_BACKOFF_SECONDS": "1",
        "ARKDASH_ALERT_MAX_BACKOFF_SECONDS": "5",
        "ARKDASH_ALERT_CLAIM_TIMEOUT_SECONDS": "15",
        "ARKDASH_ALERT_MAX_ATTEMPTS": "20",
    }
    return HarnessConfig(
        workers=2,
        sim_queue_seconds=10,
        sim_run_seconds=20,
        sim_output_bytes=plan.output_bytes,
        sync_interval_seconds=2,
        env={
            # Recovery on the scale of a test run, not of a production night.
            "ARKDASH_ARCHIVE_CLAIM_TIMEOUT_SECONDS": "15",
            "ARKDASH_ARCHIVE_REQUEUE_AFTER_SECONDS": "15",
            "ARKDASH_ARCHIVE_MAX_BACKOFF_SECONDS": "10",
            "ARKDASH_ARCHIVE_SWEEP_SECONDS": "10",
            "ARKDASH_HANDOFF_SWEEP_SECONDS": "10",
            # A picture job lost with the killed worker is made again by the sweep.
            "ARKDASH_PICTURE_SWEEP_SECONDS": "10",
            "ARKDASH_PICTURE_SWEEP_GRACE_SECONDS": "20",
            "ARK_RETRY_BACKOFF_SECONDS": "0.2",
            # A worker SIGKILLed mid-cycle holds its account's sync lease until it expires
            # (300 s by default): shorter here, with shorter calls to fit inside it.
            "ARKDASH_SYNC_LEASE_SECONDS": "30",
            "ARK_TIMEOUT_SECONDS": "10",
            # The tasks that succeeded 26 h ago are found by the full sweep of Ark's window.
            "ARKDASH_FULL_SWEEP_SECONDS": "30",
            **alerts,
        },
    )


_ALERT_SETUP = """
from tasks_app.alerts import services
from tasks_app.alerts.models import AlertRule, ChannelKind, EventKind
from tasks_app.services.accounts import account_ensure_default

account = account_ensure_default()
channel = services.channel_create(account=account, name="chaos", kind=ChannelKind.WEBHOOK, target={url!r},
                                  secret={secret!r})
for event in (EventKind.TASK_FAILED, EventKind.OUTPUT_LOST):
    AlertRule.objects.create(account=account, channel=channel, event=event)
"""


def _alerts_on(harness: Harness, receiver: AlertReceiver) -> None:
    """A signed webhook channel with rules for failed tasks and lost outputs, before any task exists."""
    harness._manage("shell", "-c", _ALERT_SETUP.format(url=receiver.url, secret=ALERT_SECRET))


def _expected_alerts(harness: Harness, ids: list[str]) -> set[str]:
    """The run's failed tasks and lost outputs (not the 3D preview), as the events' keys."""
    failed = harness.db.query("SELECT id FROM tasks_app_task WHERE status = 'failed' AND ark_id = ANY(%s)", (ids,))
    lost = harness.db.query(
        "SELECT a.id FROM tasks_app_artifact a JOIN tasks_app_task t ON t.id = a.task_id"
        " WHERE a.state = 'lost' AND a.output <> 'model_file' AND t.ark_id = ANY(%s)",
        (ids,),
    )
    return {f"task_failed:{pk}" for (pk,) in failed} | {f"output_lost:{pk}" for (pk,) in lost}


def _count_alerts(harness: Harness, receiver: AlertReceiver, ids: list[str], figures: ChaosFigures, *,
                  timeout: float, say) -> None:
    """Wait until every expected event was told (or the timeout), then count."""
    deadline = time.monotonic() + timeout
    expected = _expected_alerts(harness, ids)
    while time.monotonic() < deadline:
        with receiver.lock:
            told = set(receiver.events)
        if expected <= told:
            break
        time.sleep(2)
    else:
        say(f"alerts timeout: {len(expected - told)} of {len(expected)} events not told")
    time.sleep(10)  # a duplicate would come within a scan or two: give it the chance to show
    with receiver.lock:
        events = Counter(receiver.events)
        figures.alert_requests = receiver.requests
        figures.alert_messages = receiver.messages_accepted
        figures.alert_receiver_500s = receiver.answered_500
        figures.alert_bad_signatures = receiver.bad_signatures
        twice = sum(count - 1 for count in receiver.notifications.values() if count > 1)
    figures.alerts_expected = len(expected)
    figures.alerts_notified_once = sum(events[key] == 1 for key in expected)
    figures.alerts_missing = sum(events[key] == 0 for key in expected)
    figures.alert_duplicates = sum(count - 1 for count in events.values() if count > 1) + twice


def _create_tasks(harness: Harness, plan: ChaosPlan) -> dict[str, str]:
    rng = random.Random(plan.seed)
    kinds: dict[str, str] = {}
    pause = plan.creation_seconds / max(plan.tasks, 1)
    for number in range(plan.tasks):
        kind = "video" if number % 5 < 3 else "3d"
        fields: dict = {
            "kind": kind,
            "queue_seconds": rng.uniform(2, 20),
            "run_seconds": rng.uniform(5, 30),
            "return_last_frame": number % 3 != 0,
        }
        if kind == "3d":
            fields["file_format"] = rng.choice(["glb", "obj", "usdz"])
        if number % 13 == 0:
            fields["error_code"] = "InternalServiceError"
        kinds[harness.sim.add_task(**fields)] = kind
        time.sleep(pause)
    return kinds


def _create_expired_tasks(harness: Harness, plan: ChaosPlan) -> dict[str, str]:
    """Tasks that succeeded 26 h ago: Ark's links to their outputs died 2 h ago."""
    long_ago = time.time() - 26 * 3600
    return {
        harness.sim.add_task(kind="video", status="succeeded", created_at=long_ago - 60, updated_at=long_ago,
                              return_last_frame=True): "video"
        for _ in range(plan.expired_tasks)
    }


def _archived_count(harness: Harness) -> int:
    (count,) = harness.db.query("SELECT count(*) FROM tasks_app_artifact WHERE state = 'archived'")[0]
    return count


def _expected_outputs(plan: ChaosPlan) -> int:
    """About how many outputs the run makes (see _create_tasks): where the disruptions go."""
    video, three_d = plan.tasks * 3 / 5, plan.tasks * 2 / 5
    return int((video * (1 + 2 / 3) + three_d) * 12 / 13)


def _kill_worker_mid_copy(harness: Harness, victim: str, other: str, timeout: float = 90.0) -> int:
    """SIGKILL `victim` while it holds copies; returns how many it held.

    The other worker is frozen (SIGSTOP) for those few seconds, so every copy claimed
    meanwhile is surely the victim's, and a few downloads are slowed down (latency
    faults, not counted as failures) so that the copies are still running when it dies.
    """
    frozen_at = datetime.now(UTC)
    harness.signal_process(other, signal.SIGSTOP)
    try:
        for _ in range(4):
            harness.sim.inject("output", "latency", latency=4.0)
        deadline = time.monotonic() + timeout
        held = 0
        while time.monotonic() < deadline and not held:
            (held,) = harness.db.query(
                "SELECT count(*) FROM tasks_app_artifact WHERE state = 'copying' AND claimed_at > %s",
                (frozen_at,),
            )[0]
            time.sleep(0.05)
        harness.kill_worker(victim)
    finally:
        harness.signal_process(other, signal.SIGCONT)
    return held


def run_chaos(plan: ChaosPlan, *, out=sys.stdout) -> ChaosFigures:
    figures = ChaosFigures(tasks_created=plan.tasks)
    started = time.monotonic()
    receiver = AlertReceiver(secret=ALERT_SECRET)
    receiver.start()
    harness = Harness(chaos_config(plan, alert_port=receiver.port))
    failed = True
    try:
        harness.start()
        say = lambda text: print(f"[{time.monotonic() - started:6.1f}s] {text}", file=out, flush=True)  # noqa: E731
        say(f"harness up: {harness.web_url} (database {harness.db.name}, Redis {harness.redis.url})")
        _alerts_on(harness, receiver)
        say(f"alerts on: webhook {receiver.url}, rules for failed tasks and lost outputs")
        expired = _create_expired_tasks(harness, plan)
        figures.tasks_created += len(expired)
        harness.sim.reset_stats()
        injector = FaultInjector(harness, ratio=plan.fault_ratio, seed=plan.seed)
        injector.start()
        viewers = [Viewer(harness, number) for number in range(plan.viewers)]
        for viewer in viewers:
            viewer.start()

        kinds: dict[str, str] = {}
        creator = threading.Thread(target=lambda: kinds.update(_create_tasks(harness, plan)), daemon=True)
        creator.start()
        target = _expected_outputs(plan)

        def wait_progress(share: float) -> None:
            deadline = time.monotonic() + plan.settle_timeout
            while _archived_count(harness) < share * target and time.monotonic() < deadline:
                time.sleep(0.2)

        wait_progress(plan.kill_worker_at)
        figures.worker_killed_copies_in_flight = _kill_worker_mid_copy(harness, "w1", "w2")
        say(f"w1 killed with SIGKILL ({figures.worker_killed_copies_in_flight} copies in flight)")
        restart_w1 = threading.Timer(10.0, lambda: harness.restart_worker("w1"))
        restart_w1.start()

        wait_progress(plan.restart_redis_at)
        figures.redis_down_seconds = redis_restart(down_seconds=1.0)
        say(f"Redis restarted (down {figures.redis_down_seconds:.1f}s, its data gone)")

        wait_progress(plan.drop_database_at)
        figures.database_connections_dropped = harness.db.drop_connections()
        say(f"database: {figures.database_connections_dropped} connections terminated")
        last_disruption = time.monotonic()

        creator.join()
        restart_w1.join()
        kinds.update(expired)
        say(f"{len(kinds)} tasks created; waiting for every task to finish and every output to settle")
        stopped: list[tuple[dict[str, int], dict[str, int]]] = []
        _wait_settled(
            harness,
            kinds,
            timeout=plan.settle_timeout,
            say=say,
            before_ark_check=lambda: stopped.append(injector.stop()),
        )
        landed, stats = stopped[0]
        figures.settle_seconds = time.monotonic() - last_disruption
        for viewer in viewers:
            viewer.stop_event.set()
        for viewer in viewers:
            viewer.join(10)
        if injector.error is not None:
            raise RuntimeError(f"the fault injector failed: {injector.error!r}")

        figures.api_calls = sum(stats[name] for name in API_ENDPOINTS)
        figures.api_faults = sum(landed.get(name, 0) for name in API_ENDPOINTS)
        figures.downloads = stats["output"]
        figures.download_faults = landed.get("output", 0)
        figures.faults_by_kind = dict(injector.kinds)
        figures.viewer_requests = sum(viewer.requests for viewer in viewers)
        figures.viewer_errors = sum(sum(viewer.errors.values()) for viewer in viewers)
        _count_outcomes(harness, kinds, figures)
        _count_http(harness, figures)
        _count_alerts(harness, receiver, list(kinds), figures, timeout=plan.alerts_timeout, say=say)
        failed = False
    finally:
        figures.total_seconds = time.monotonic() - started
        harness.stop(keep_logs=failed)
        receiver.stop()
    return figures


# Tasks with an archived output a picture is made from, and no picture yet.
PICTURES_MISSING = (
    "SELECT count(DISTINCT a.task_id) FROM tasks_app_artifact a"
    " LEFT JOIN tasks_app_picture p ON p.task_id = a.task_id"
    " WHERE a.state = 'archived' AND a.output IN ('last_frame', 'video', 'model_zip') AND p.id IS NULL"
)


def _wait_settled(harness: Harness, kinds: dict[str, str], *, timeout: float, say, before_ark_check) -> None:
    """Until every task has Ark's final status in the mirror, no output is still on its way and
    every archived task has its gallery picture.

    While faults are being injected only the database is read (the harness's own calls
    to Ark must not eat the faults meant for ArkDash); Ark is asked once the mirror looks
    settled, after `before_ark_check()` stopped the faults.
    """
    deadline = time.monotonic() + timeout
    ids = list(kinds)
    last_report = 0.0
    faults_stopped = False
    while time.monotonic() < deadline:
        mirrored = dict(
            harness.db.query("SELECT ark_id, status FROM tasks_app_task WHERE ark_id = ANY(%s)", (ids,))
        )
        (unsettled, handoffs, pictures) = harness.db.query(
            "SELECT (SELECT count(*) FROM tasks_app_artifact WHERE state IN ('pending', 'copying', 'failed')),"
            " (SELECT count(*) FROM tasks_app_task WHERE archive_handoff_pending),"
            f" ({PICTURES_MISSING})"
        )[0]
        active = sum(status in ("queued", "running") for status in mirrored.values())
        if len(mirrored) == len(ids) and not active and not unsettled and not handoffs and not pictures:
            if not faults_stopped:
                before_ark_check()
                faults_stopped = True
            if harness.sim.statuses(ids) == mirrored:
                return
        if time.monotonic() - last_report > 15:
            last_report = time.monotonic()
            say(
                f"settling: {len(mirrored)}/{len(ids)} tasks mirrored, {active} active, "
                f"{unsettled} outputs on their way, {handoffs} hand-offs pending, {pictures} pictures to make"
            )
        time.sleep(2)
    if not faults_stopped:
        before_ark_check()
    say("settle timeout: counting what there is")


def _count_outcomes(harness: Harness, kinds: dict[str, str], figures: ChaosFigures) -> None:
    ids = list(kinds)
    upstream = harness.sim.statuses(ids)
    mirrored = dict(
        harness.db.query("SELECT ark_id, status FROM tasks_app_task WHERE ark_id = ANY(%s)", (ids,))
    )
    figures.tasks_seen = len(mirrored)
    figures.statuses_matching_ark = sum(mirrored.get(ark_id) == status for ark_id, status in upstream.items())
    artifacts = {
        (ark_id, output): (state, sha256, size, key, last_error, expired)
        for ark_id, output, state, sha256, size, key, last_error, expired in harness.db.query(
            "SELECT t.ark_id, a.output, a.state, a.sha256, a.size, a.storage_key, a.last_error,"
            " a.deadline IS NOT NULL AND a.deadline <= now()"
            " FROM tasks_app_artifact a JOIN tasks_app_task t ON t.id = a.task_id WHERE t.ark_id = ANY(%s)",
            (ids,),
        )
    }
    s3 = harness.s3()
    archived_keys: dict[str, tuple[int, str]] = {}
    for ark_id, status in upstream.items():
        if status != "succeeded":
            continue
        for output, info in harness.sim.outputs(ark_id).items():
            figures.outputs_expected += 1
            state, sha256, size, key, _error, expired = artifacts.get((ark_id, output), (None,) * 6)
            if state == "archived":
                figures.outputs_archived += 1
                body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
                if sha256 == info["sha256"] == hashlib.sha256(body).hexdigest() and size == info["size"]:
                    figures.outputs_archived_sha256_ok += 1
            elif state == "lost":
                figures.outputs_lost += 1
                figures.outputs_lost_url_expired += int(bool(expired))
            else:
                figures.outputs_unsettled += 1
    for (_ark_id, _output), (state, sha256, size, key, *_rest) in artifacts.items():
        if state == "archived":
            archived_keys[key] = (size, sha256)
    # Visible objects that are not a complete, verified output: partial or stray writes.
    # The gallery's pictures are expected objects too; a picture is stored before its row
    # is written, so one made at this very moment gets a few seconds to be recorded.
    deadline = time.monotonic() + 30
    while True:
        pictures = {key: (size, sha256) for key, size, sha256 in harness.db.query(
            "SELECT storage_key, size, sha256 FROM tasks_app_picture")}
        unexpected = [
            (item["Key"], item["Size"])
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
            for item in page.get("Contents", [])
            if not item["Key"].startswith("healthz/")
            and ({**archived_keys, **pictures}.get(item["Key"]) or (None,))[0] != item["Size"]
        ]
        if not any("/picture-" in key for key, _size in unexpected) or time.monotonic() > deadline:
            break
        time.sleep(2)
    for key, size in unexpected:
        print(f"unexpected object {key} ({size} bytes)", file=sys.stderr, flush=True)
    figures.partial_objects_visible = len(unexpected)
    figures.multipart_uploads_left = len(s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))


def _count_http(harness: Harness, figures: ChaosFigures) -> None:
    """From gunicorn's access log: it survives the Redis restart that wipes the metrics counters."""
    for line in harness.logs_of("web").splitlines():
        match = _ACCESS_LINE.search(line)
        if match:
            figures.http_requests_served += 1
            figures.http_500s_served += match[1].startswith("5")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=ChaosPlan.tasks)
    parser.add_argument("--fault-ratio", type=float, default=ChaosPlan.fault_ratio)
    parser.add_argument("--output-bytes", type=int, default=ChaosPlan.output_bytes)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON as well")
    options = parser.parse_args(argv)
    if options.tasks < 10 or not 0 < options.fault_ratio < 0.5:
        parser.error("use at least 10 tasks and a fault ratio between 0 and 0.5")
    figures = run_chaos(
        ChaosPlan(tasks=options.tasks, fault_ratio=options.fault_ratio, output_bytes=options.output_bytes)
    )
    print("\n" + figures.table())
    if options.json:
        print(json.dumps(figures.as_json(), indent=2))
    ok = (
        figures.tasks_seen == figures.tasks_created
        and figures.outputs_archived_sha256_ok + figures.outputs_lost_url_expired == figures.outputs_expected
        and figures.partial_objects_visible == 0
        and figures.http_500s_served == 0
        and figures.alerts_notified_once == figures.alerts_expected
        and figures.alert_duplicates == 0
        and figures.alert_bad_signatures == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
