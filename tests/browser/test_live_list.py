"""The list stays live in a real browser: new tasks, moving chips, poll pace, lost connections."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from playwright.sync_api import expect

from tasks_app.models import Task
from tasks_app.services.sync import sync_account

from . import conftest
from .conftest import log_in, screenshot, set_tab_visibility

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def polls_of(page) -> list[float]:
    """Record when the page polls (monotonic seconds)."""
    times: list[float] = []
    page.on("request", lambda request: "/tasks/rows/" in request.url and times.append(time.monotonic()))
    return times


def test_it_slides_a_task_created_upstream_in_on_top_and_the_chips_follow(sim, account, dashboard_user, page,
                                                                          live_server):
    sim.add_task(status="succeeded")
    sync_account(account=account, full_sweep=True)
    log_in(page, live_server)
    page.evaluate("window.__sameDocument = true")
    expect(page.locator(".chip-queued .chip-count")).to_have_text("0")
    expect(page.locator("#task-rows tr[id^=task-]")).to_have_count(1)

    sim.advance(2)  # after the first task, in the simulator's clock
    new_id = sim.add_task(status="queued")
    sim.advance(1)  # Ark lists what was created before the second of the request
    sync_account(account=account)
    new = Task.objects.get(ark_id=new_id)
    # Within 10 s, without a reload: on top of the first page, counted in its chip.
    expect(page.locator("#task-rows tr[id^=task-]").first).to_have_id(f"task-{new.pk}", timeout=10_000)
    expect(page.locator(".chip-queued .chip-count")).to_have_text("1", timeout=10_000)
    expect(page.locator(".chips-total")).to_contain_text("2 tasks")
    assert page.evaluate("window.__sameDocument") is True
    screenshot(page, "task-list-new-task")


def test_it_polls_fast_with_live_rows_slowly_without_and_not_while_hidden(sim, account, dashboard_user, page,
                                                                          live_server):
    sim.add_task(status="succeeded")
    sync_account(account=account, full_sweep=True)
    log_in(page, live_server)
    times = polls_of(page)
    page.wait_for_timeout(12_500)
    idle = len(times)
    assert 1 <= idle <= 2, f"{idle} polls in 12.5 s with nothing live (every 10 s expected)"

    sim.add_task(status="running")
    sync_account(account=account)
    page.reload()
    times = polls_of(page)
    page.wait_for_timeout(9_500)
    assert len(times) >= 2, f"{len(times)} polls in 9.5 s with a live row (every 3 s expected)"

    # The tab goes to the background: no poll until it comes back.
    set_tab_visibility(page, "hidden")
    page.wait_for_timeout(500)  # a poll already on its way may still land
    hidden_from = len(times)
    page.wait_for_timeout(7_000)
    assert len(times) == hidden_from, "the page polled while hidden"
    set_tab_visibility(page, "visible")
    page.wait_for_timeout(1_500)
    assert len(times) > hidden_from, "coming back to the tab did not poll at once"


class RestartableServer:
    """The dashboard on a fixed loopback port that a test can stop and start again."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: ThreadedWSGIServer | None = None

    def start(self) -> None:
        server = TrackingServer(("127.0.0.1", self.port), QuietHandler, allow_reuse_address=True)
        server.daemon_threads = True
        server.set_app(StaticFilesHandler(WSGIHandler()))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()  # the browser's kept-alive ones too, as a dead process would
            self._server = None


class TrackingServer(ThreadedWSGIServer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.open_sockets: set[socket.socket] = set()

    def process_request(self, request, client_address) -> None:
        self.open_sockets.add(request)
        super().process_request(request, client_address)

    def close_connections(self) -> None:
        for sock in list(self.open_sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its handler
            sock.close()


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def restartable_server() -> Iterator[RestartableServer]:
    server = RestartableServer()
    server.start()
    yield server
    server.stop()


def test_it_says_connection_lost_when_the_server_stops_and_recovers_when_it_returns(
    sim, account, dashboard_user, page, restartable_server
):
    from django.utils import timezone

    account.last_sync_ok_at = timezone.now()
    account.save()
    sim.add_task(status="succeeded")
    sync_account(account=account, full_sweep=True)
    log_in(page, restartable_server)
    lost = page.locator("#connection-lost")
    expect(lost).to_be_hidden()
    expect(page.locator("#sync-banner .dot")).to_be_visible()

    restartable_server.stop()
    expect(lost).to_be_visible(timeout=15_000)
    assert page.evaluate("document.documentElement.classList.contains('connection-lost')")
    screenshot(page, "task-list-connection-lost")

    restartable_server.start()
    expect(lost).to_be_hidden(timeout=15_000)
    assert not page.evaluate("document.documentElement.classList.contains('connection-lost')")
    # htmx logs each failed poll (htmx:sendError, htmx:afterRequest): expected here, not a
    # problem of the page.
    expected = ("htmx:sendError", "htmx:afterRequest", "ERR_CONNECTION_REFUSED")
    conftest._browser_problems[:] = [
        problem for problem in conftest._browser_problems if not any(text in problem for text in expected)
    ]
