"""Archive control in a real browser: an output made to fail by the simulator, "Retry now", archived."""

from __future__ import annotations

import hashlib

import pytest
from playwright.sync_api import expect

from tasks_app.models import Artifact, ArtifactState, AuditAction, AuditEntry, Task
from tasks_app.services.sync import sync_account

from .conftest import log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_archives_a_failed_output_after_retry_now_once_the_fault_is_cleared(
    sim, account, dashboard_user, page, live_server, local_archive
):
    # Ark's file server answers 500 to every download: the copy made at hand-off fails.
    sim.faults.inject("output", "500", times=1000)
    ark_id = sim.add_task(kind="video", status="succeeded")
    sync_account(account=account, full_sweep=True)
    task = Task.objects.get(account=account, ark_id=ark_id)
    video = Artifact.objects.get(task=task, output="video")
    assert video.state == ArtifactState.FAILED, video.last_error

    log_in(page, live_server)
    page.goto(f"{live_server.url}/tasks/{task.pk}/")
    line = page.locator(f"#output-{video.pk}")
    expect(line.locator(".archive")).to_have_text("failed, will retry")
    expect(line).to_contain_text("500")

    sim.faults.clear()  # the file server is back
    line.get_by_role("button", name="Retry now").click()

    line = page.locator(f"#output-{video.pk}")
    expect(line.locator(".archive")).to_have_text("archived", timeout=60_000)
    expect(line).to_contain_text("Queued for another copy.")
    download = line.get_by_role("link", name="Download")
    expect(download).to_be_visible()
    expect(line.get_by_role("button", name="Retry now")).to_have_count(0)
    screenshot(page, "archive-retry-now")

    video.refresh_from_db()
    assert video.state == ArtifactState.ARCHIVED and video.attempts == 2
    assert hashlib.sha256(local_archive.read(video.storage_key)).hexdigest() == sim.output_sha256(ark_id, "video")
    assert AuditEntry.objects.get(action=AuditAction.ARCHIVE_RETRY).username == "ana"

    # The archive page counts it in the last hour and no longer lists it as waiting; the last
    # frame, not retried, still waits there.
    last_frame = Artifact.objects.get(task=task, output="last_frame")
    page.get_by_role("link", name="Archive", exact=True).click()
    expect(page.get_by_role("heading", name="Archive", exact=True)).to_be_visible()
    expect(page.locator("#archive-throughput")).to_contain_text("1 output archived")
    expect(page.locator(f"#queued-{video.pk}")).to_have_count(0)
    expect(page.locator(f"#queued-{last_frame.pk}")).to_contain_text("failed, will retry")
