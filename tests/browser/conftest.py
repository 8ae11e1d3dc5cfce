"""Browser tests: Debian's chromium driven by Playwright against pytest-django's live_server.

The simulator is routed in-process (tasks_app.lib.transport is a module global, so the
live_server thread sees it too); the tests move its clock and run the real sync.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..services import IN_CI

# Playwright's sync API keeps an asyncio loop in this thread; Django's ORM guard would
# then refuse every query the test makes. Only the test process is concerned.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    # Software WebGL for the 3D viewer once the GPU is off (Chromium wants this said explicitly).
    "--enable-unsafe-swiftshader",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "a-long-test-password-9"


@pytest.fixture(scope="session")
def chromium():
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium"
        if IN_CI:
            pytest.fail(message)  # a browser test must never pass by skipping in CI
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def dashboard_user(django_user_model, account):
    from tasks_app.models import Membership, MembershipRole

    user = django_user_model.objects.create_user("ana", password=PASSWORD)
    Membership.objects.create(user=user, account=account, role=MembershipRole.OPERATOR)
    return user


# Every page of every browser context reports what the Content-Security-Policy blocked
# (inline code, eval, a foreign origin) and any console error or uncaught exception; the
# test fails when anything was reported. The init script runs outside the page's CSP.
_REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline code"}`
                + ` in ${event.sourceFile || event.documentURI}:${event.lineNumber}`);
});
"""
_browser_problems: list[str] = []


def _console(message) -> None:
    if message.type != "error":
        return
    # A page answered with an error status on purpose (a bad filter's 400) is no problem; a
    # static file that fails to load is.
    url = message.location.get("url", "")
    if message.text.startswith("Failed to load resource") and "/static/" not in url:
        return
    _browser_problems.append(f"console error: {message.text} ({url})")


def watch(context):
    """Collect CSP violations, console errors and page errors of every page in `context`."""
    context.add_init_script(_REPORT_CSP_VIOLATIONS)
    context.on("console", _console)
    context.on("weberror", lambda error: _browser_problems.append(f"page error: {error.error}"))
    return context


@pytest.fixture(autouse=True)
def no_browser_problems() -> Iterator[None]:
    _browser_problems.clear()
    yield
    assert not _browser_problems, "the browser reported problems:\n" + "\n".join(_browser_problems)


def open_context(chromium, *, locale: str = "en-US", timezone_id: str = "Asia/Shanghai", **options):
    return watch(chromium.new_context(
        locale=locale, timezone_id=timezone_id, viewport={"width": 1400, "height": 900}, accept_downloads=True,
        **options,
    ))


@pytest.fixture
def page(chromium, live_server) -> Iterator:
    context = open_context(chromium)
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def log_in(page, live_server, username: str = "ana", password: str = PASSWORD) -> None:
    page.goto(f"{live_server.url}/")
    page.wait_for_url("**/accounts/login/**")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/")
    page.wait_for_load_state("networkidle")


def set_tab_visibility(page, state: str) -> None:
    """Make the page believe its tab went to the background ("hidden") or came back ("visible")."""
    page.evaluate("""(state) => {
        Object.defineProperty(document, "visibilityState", {configurable: true, get: () => state});
        document.dispatchEvent(new Event("visibilitychange"));
    }""", state)


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
