"""End to end against the production-like harness: gunicorn, two Celery workers, beat,
PostgreSQL, Redis, an S3 server and the simulator, each its own process.

200 tasks of both kinds are created in the simulator; they appear in the dashboard,
update live through its poll endpoint, the queued ones are cancelled through its
Cancel button, and every succeeded output ends up in S3 with the simulator's sha256.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

import pytest

from harness import Harness, HarnessConfig

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(420)]

T = TypeVar("T")
TOTAL = 200
STAY_QUEUED = 12  # queued for an hour: these are the ones a person cancels
VIDEO_OUTPUTS_WITH_FRAME = {"video", "last_frame"}


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    every: float = 1.0,
    explain: Callable[[], str] = str,
) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}: {explain()}")


@pytest.fixture(scope="module")
def harness(request):
    config = HarnessConfig(workers=2, sim_queue_seconds=20, sim_run_seconds=20, sync_interval_seconds=2)
    failures_before = request.session.testsfailed
    running = Harness(config)
    running.start()
    yield running
    # A failed run keeps every process's log under test-artifacts/ for the post-mortem.
    running.stop(keep_logs=request.session.testsfailed > failures_before)


def create_tasks(harness: Harness) -> tuple[dict[str, str], list[str]]:
    """200 tasks, half video half 3D: 20 through Ark's API, the rest seeded with varied timing."""
    sim = harness.sim
    rng = random.Random(20250101)
    kinds: dict[str, str] = {}
    for number in range(20):
        kind = "video" if number % 2 == 0 else "3d"
        prompt = "a paper boat in the rain" + (" [fail]" if number in (4, 14) else "")
        kinds[sim.create_task(kind=kind, prompt=prompt)] = kind
    stay_queued = []
    for number in range(TOTAL - 20):
        kind = "video" if number % 2 == 0 else "3d"
        fields = {
            "kind": kind,
            "queue_seconds": rng.uniform(5, 60),
            "run_seconds": rng.uniform(10, 40),
            "return_last_frame": number % 4 != 0,
        }
        if kind == "3d":
            fields["file_format"] = rng.choice(["glb", "obj", "usdz"])
        if number % 17 == 0:
            fields["error_code"] = "InternalServiceError"  # will fail when it finishes running
        if number < STAY_QUEUED:
            fields.update(queue_seconds=3600, error_code=None)
        task_id = sim.add_task(**{key: value for key, value in fields.items() if value is not None})
        kinds[task_id] = kind
        if number < STAY_QUEUED:
            stay_queued.append(task_id)
    assert len(kinds) == TOTAL
    return kinds, stay_queued


def test_it_mirrors_updates_cancels_and_archives_200_tasks(harness):
    kinds, stay_queued = create_tasks(harness)
    dashboard = harness.dashboard()

    # 1. Every task appears in the dashboard.
    def all_listed():
        rows = {row.ark_id: row for row in dashboard.rows()}
        return rows if set(kinds) <= set(rows) else None

    rows = wait_for("all 200 tasks in the dashboard", all_listed, timeout=60)
    assert len(rows) == TOTAL

    # 2. Rows update live: the page's poll returns the rows that changed, with new versions.
    live = [row for row in rows.values() if row.live]
    assert live, "fresh tasks are queued or running: their rows must be live"
    harness.sim.advance(30)  # the simulator's clock moves on: some tasks start or finish

    def changed_rows():
        status, changed = dashboard.poll(live)
        return changed if status == 200 and changed else None

    changed = wait_for("the live poll to return changed rows", changed_rows, timeout=45)
    before = {row.pk: row for row in live}
    for row in changed:
        assert row.version > before[row.pk].version
        assert (row.status, row.archive_state) != (before[row.pk].status, before[row.pk].archive_state) or (
            row.version != before[row.pk].version
        )
    assert any(row.status != before[row.pk].status for row in changed)

    # 3. Queued tasks are cancelled with the dashboard's Cancel button (POST + CSRF).
    current = {row.ark_id: row for row in dashboard.rows()}
    for ark_id in stay_queued:
        assert current[ark_id].status == "queued"
        answer = dashboard.cancel(current[ark_id].pk)
        assert answer.status_code == 302, answer.text[:300]
    assert set(harness.sim.statuses(stay_queued).values()) == {"cancelled"}
    after_cancel = {row.ark_id: row for row in dashboard.rows()}
    assert {after_cancel[ark_id].status for ark_id in stay_queued} == {"cancelled"}

    # 4. Everything else finishes (the clock jumps past every run) and is archived.
    harness.sim.advance(120)

    def all_settled():
        rows = {row.ark_id: row for row in dashboard.rows()}
        return rows if rows and not any(row.live for row in rows.values()) else None

    def still_live() -> str:
        live = Counter((row.status, row.archive_state) for row in dashboard.rows() if row.live)
        return f"live rows by (status, archive state): {dict(live)}"

    settled = wait_for(
        "every task finished and archived", all_settled, timeout=150, every=2, explain=still_live
    )
    upstream = harness.sim.statuses(list(kinds))
    assert {ark_id: row.status for ark_id, row in settled.items() if ark_id in kinds} == upstream
    succeeded = [ark_id for ark_id, status in upstream.items() if status == "succeeded"]
    assert len(succeeded) > TOTAL * 0.8
    assert {status for status in upstream.values()} == {"succeeded", "failed", "cancelled"}

    # 5. Every output of every succeeded task is in S3, with the simulator's sha256.
    artifacts = {
        (ark_id, output): (state, sha256, size, key)
        for ark_id, output, state, sha256, size, key in harness.db.query(
            "SELECT t.ark_id, a.output, a.state, a.sha256, a.size, a.storage_key "
            "FROM tasks_app_artifact a JOIN tasks_app_task t ON t.id = a.task_id"
        )
    }
    s3 = harness.s3()
    checked = 0
    for ark_id in succeeded:
        expected = harness.sim.outputs(ark_id)
        if kinds[ark_id] == "3d":
            assert set(expected) == {"model_zip"}
        else:
            assert set(expected) <= VIDEO_OUTPUTS_WITH_FRAME and "video" in expected
        for output, info in expected.items():
            state, sha256, size, key = artifacts[(ark_id, output)]
            assert (state, sha256, size) == ("archived", info["sha256"], info["size"]), (ark_id, output)
            stored = s3.get_object(Bucket="arkdash-harness", Key=key)["Body"].read()
            assert hashlib.sha256(stored).hexdigest() == info["sha256"]
            checked += 1
    assert checked >= len(succeeded)
    unfinished = [key for key, (state, *_rest) in artifacts.items() if state != "archived"]
    assert unfinished == []
    # Nothing was archived for tasks that did not succeed.
    assert {ark_id for ark_id, _output in artifacts} == set(succeeded)

    # 6. No request the dashboard served failed.
    assert 'arkdash_http_responses_total{status_class="5xx"}' not in harness.metrics()
    dashboard.close()
