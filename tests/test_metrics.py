"""/metrics: access rules, counters summed across processes, gauges read from the mirror."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tasks_app.models import Account, Artifact, ArtifactState
from tasks_app.observability import counters, metrics
from tasks_app.services.accounts import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_counters(settings, tmp_path):
    """Each test counts into its own SQLite file, with the outage breaker reset."""
    settings.ARKDASH_METRICS_SQLITE_PATH = str(tmp_path / "metrics.sqlite3")
    settings.ARK_RETRY_BACKOFF_SECONDS = 0.0
    counters.reset_breaker()
    yield
    counters.reset_breaker()


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


# --- access ---------------------------------------------------------------------------------


def test_it_serves_loopback_without_a_token(client):
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200


def test_it_refuses_other_addresses_without_a_token(client):
    response = client.get("/metrics", REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 403
    assert "ARKDASH_METRICS_TOKEN" in response.content.decode()


def test_it_requires_the_bearer_token_when_one_is_set(client, settings):
    settings.ARKDASH_METRICS_TOKEN = "scrape-me-" + uuid.uuid4().hex

    assert client.get("/metrics").status_code == 401  # loopback is not enough any more
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401
    assert wrong["WWW-Authenticate"].startswith("Bearer")
    assert settings.ARKDASH_METRICS_TOKEN not in wrong.content.decode()
    ok = client.get(
        "/metrics", HTTP_AUTHORIZATION=f"Bearer {settings.ARKDASH_METRICS_TOKEN}", REMOTE_ADDR="10.1.2.3"
    )
    assert ok.status_code == 200


# --- counters from the Ark client -----------------------------------------------------------------


def test_it_counts_upstream_attempts_by_endpoint_and_outcome(client, sim, account):
    task_id = sim.add_task(kind="video", status="running")
    sim.faults.inject("get", "500", times=1)
    sim.faults.inject("list", "429", times=1, retry_after=0)

    with client_for(account) as ark:
        ark.get_task(task_id)  # a 500, then the retry succeeds
        ark.list_tasks(page_size=10)  # a 429, then the retry succeeds
        with pytest.raises(Exception):  # noqa: B017 - any ArkError: unknown ids are 404
            ark.get_task("cgt-20250101000000-nope0")

    samples = scrape(client)
    assert value(samples, "arkdash_upstream_calls_total", endpoint="get", outcome="server_error") == 1
    assert value(samples, "arkdash_upstream_calls_total", endpoint="get", outcome="ok") == 1
    assert value(samples, "arkdash_upstream_calls_total", endpoint="get", outcome="not_found") == 1
    assert value(samples, "arkdash_upstream_calls_total", endpoint="list", outcome="rate_limited") == 1
    assert value(samples, "arkdash_upstream_calls_total", endpoint="list", outcome="ok") == 1
    assert value(samples, "arkdash_upstream_call_seconds_total", endpoint="get") > 0
    assert sim.stats()["get"] == 3 and sim.stats()["list"] == 2


def test_it_counts_waits_for_the_shared_rate_budget(client, sim, account, settings):
    settings.ARK_LIST_RATE_PER_SECOND = 20.0  # two calls in a row: the second waits ~50 ms

    with client_for(account) as ark:
        for _ in range(3):
            ark.list_tasks(page_size=1)

    samples = scrape(client)
    waits = value(samples, "arkdash_rate_limit_waits_total", endpoint="list")
    waited = value(samples, "arkdash_rate_limit_wait_seconds_total", endpoint="list")
    assert waits is not None and waits >= 1
    assert waited is not None and 0.02 < waited < 1.0


# --- counters from the archive ------------------------------------------------------------------


def test_it_counts_archived_bytes_and_failures_by_reason(client, sim, mirror, local_archive):
    from tasks_app.services.archive import artifacts_create_for_task
    from tasks_app.tasks import archive_artifact

    sim_id = sim.add_task(kind="video", status="succeeded", return_last_frame=False)
    task = mirror(sim_id)
    sim.faults.inject("output", "500", times=1)
    (video,) = artifacts_create_for_task(task=task)
    archive_artifact.delay(video.pk)  # eager Celery: the first copy runs, and fails
    video.refresh_from_db()
    assert video.state == ArtifactState.FAILED

    Artifact.objects.filter(pk=video.pk).update(next_attempt_at=timezone.now())
    archive_artifact.delay(video.pk)  # the retry copies it
    archive_artifact.delay(video.pk)  # already archived: a no-op, not counted
    video.refresh_from_db()
    assert video.state == ArtifactState.ARCHIVED

    samples = scrape(client)
    assert value(samples, "arkdash_archive_copies_total", output="video", outcome="failed") == 1
    assert value(samples, "arkdash_archive_copies_total", output="video", outcome="archived") == 1
    assert value(samples, "arkdash_archive_failures_total", reason="upstream_5xx") == 1
    assert value(samples, "arkdash_archive_copied_bytes_total", output="video") == sim.output_size(
        sim_id, "video"
    )
    assert value(samples, "arkdash_archive_stored_bytes") == video.size


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("the output host answered 503 (http://x/y)", "upstream_5xx"),
        ("the output host is rate limiting (429) (http://x/y)", "rate_limited"),
        ("the download stopped at 10 of 20 bytes", "truncated"),
        ("connection broke while reading http://x/y (peer closed)", "connection"),
        ("timed out reading http://x/y (ReadTimeout)", "timeout"),
        ("Lost: the output URL answered 403: it has expired or was removed (http://x)", "expired"),
        ("S3 upload_part failed for outputs/1/x (boom)", "storage"),
        ("the downloaded zip is broken: bad CRC", "bad_zip"),
        ("something new", "other"),
    ],
)
def test_it_names_failure_reasons_from_the_archive_messages(message, reason):
    assert metrics.failure_reason(message) == reason


# --- gauges from the database -------------------------------------------------------------------------


def test_it_reports_tasks_by_status_and_sync_lag_per_account(client, sim, account, mirror):
    for status in ("queued", "queued", "running", "failed"):
        mirror(sim.add_task(kind="video", status=status))
    Account.objects.filter(pk=account.pk).update(last_sync_ok_at=timezone.now() - timedelta(seconds=30))
    idle = Account(name="idle", base_url="http://arksim.test/api/v3")
    idle.set_api_key("other-key")
    idle.save()

    samples = scrape(client)

    assert value(samples, "arkdash_tasks", account="team", status="queued") == 2
    assert value(samples, "arkdash_tasks", account="team", status="running") == 1
    assert value(samples, "arkdash_tasks", account="team", status="failed") == 1
    assert value(samples, "arkdash_tasks", account="team", status="succeeded") == 0
    assert value(samples, "arkdash_tasks", account="idle", status="queued") == 0
    assert 29 <= value(samples, "arkdash_sync_lag_seconds", account="team") < 60
    assert value(samples, "arkdash_sync_last_success_timestamp_seconds", account="idle") == 0
    assert value(samples, "arkdash_metrics_database_up") == 1
    assert value(samples, "arkdash_metrics_store_up") == 1


def test_it_reports_archive_lag_and_outputs_by_state(client, sim, mirror):
    from tasks_app.services.archive import artifacts_create_for_task

    sim_id = sim.add_task(kind="video", status="succeeded", return_last_frame=True)
    task = mirror(sim_id, ark_updated_at=timezone.now() - timedelta(minutes=5))
    artifacts_create_for_task(task=task)  # copies are queued on commit, which a test never reaches
    task.artifacts.update(created=timezone.now() - timedelta(minutes=5))  # learnt of 5 minutes ago

    samples = scrape(client)

    assert value(samples, "arkdash_artifacts", state="pending") == 2
    assert value(samples, "arkdash_artifacts", state="archived") == 0
    assert 290 <= value(samples, "arkdash_archive_lag_seconds") < 400
    assert value(samples, "arkdash_archive_next_deadline_seconds") > 3600


# --- responses, and a store that is down ---------------------------------------------------------------


def test_it_counts_responses_by_status_class_including_500s(client, monkeypatch):
    from tasks_app import views_health

    client.get("/accounts/login/")
    client.get("/no-such-page/")
    monkeypatch.setattr(views_health, "health_report", lambda: 1 / 0)
    client.raise_request_exception = False
    assert client.get("/healthz").status_code == 500

    samples = scrape(client)

    assert value(samples, "arkdash_http_responses_total", status_class="2xx") >= 1
    assert value(samples, "arkdash_http_responses_total", status_class="4xx") == 1
    assert value(samples, "arkdash_http_responses_total", status_class="5xx") == 1


def test_it_still_scrapes_when_the_counter_store_is_down(client, settings, sim, account):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there

    metrics.record_http_response(200)  # swallowed, not raised
    samples = scrape(client)

    assert value(samples, "arkdash_metrics_store_up") == 0
    assert value(samples, "arkdash_metrics_database_up") == 1
    assert value(samples, "arkdash_tasks", account="team", status="queued") == 0
