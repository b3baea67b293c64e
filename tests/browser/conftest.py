"""The analysts' desk in a real browser: Playwright driving Debian's Chromium (`make chromium`)
against the session's live stack (tests/live_stack.py), signed in through Airflow's own login page.

Every page a test opens is watched: a request to anywhere but 127.0.0.1 fails the test.
Screenshots go to a temporary folder, or to DESK_SCREENSHOTS (e.g. `DESK_SCREENSHOTS=docs`, which
refreshes the README's pictures).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, FrameLocator, Page, Playwright, expect, sync_playwright

from hms_management.client import ManagementClient
from hms_stack.stack import ROOT, Stack

CHROMIUM = "/usr/bin/chromium"
# As the machine's notes have it: headless, and nothing of Chromium's own reaching for the network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Airflow's UI on a busy 2-core machine: pages take seconds, not milliseconds.
UI_TIMEOUT_MS = 60_000
LOCAL_HOSTS = {"127.0.0.1"}
expect.set_options(timeout=UI_TIMEOUT_MS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.browser)


# Package scope, not session: sync Playwright keeps an event loop running in the main thread while
# it is open, and the tests collected after this package call asyncio.run().
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs Debian's Chromium")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # Playwright starts Chromium with a new, empty profile (user-data-dir) of its own each launch.
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield chromium
    chromium.close()


@pytest.fixture
def requests_seen() -> list[str]:
    """Every URL the pages of this test asked for."""
    return []


@pytest.fixture
def new_context(browser: Browser, requests_seen: list[str]) -> Iterator[Callable[[], BrowserContext]]:
    """Browser contexts (each its own cookies) whose every request is recorded, closed at the end,
    and none of which may reach beyond this machine."""
    contexts: list[BrowserContext] = []

    def make() -> BrowserContext:
        context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-GB", timezone_id="UTC")
        context.set_default_timeout(UI_TIMEOUT_MS)
        context.on("request", lambda request: requests_seen.append(request.url))
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
    outside = [url for url in requests_seen
               if urlsplit(url).scheme in ("http", "https", "ws", "wss") and urlsplit(url).hostname not in LOCAL_HOSTS]
    assert not outside, f"the pages reached beyond 127.0.0.1: {outside[:10]}"


@pytest.fixture
def sign_in(stack: Stack, new_context) -> Callable[..., Page]:
    """A page signed in as `user` through Airflow's own login page, at `next` (default the Proposals view)."""

    def login(user: str, next_path: str = "/plugin/proposals") -> Page:
        page = new_context().new_page()
        page.goto(f"{stack.api_url}/auth/login?{urlencode({'next': next_path})}")
        page.get_by_label("Username").fill(user)
        page.get_by_label("Password").fill(stack.credentials()["airflow"][user])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/auth/login" not in url)
        return page

    return login


def desk(page: Page) -> FrameLocator:
    """The Proposals view inside the Airflow UI (its iframe)."""
    return page.frame_locator("iframe[title='Proposals']")


def run_tab(page: Page) -> FrameLocator:
    """A run page's Proposal tab (its iframe)."""
    return page.frame_locator("iframe[title='Proposal']")


@pytest.fixture
def shots(tmp_path: Path) -> Callable[[Page, str], Path]:
    """Save a screenshot of the whole window under `name`."""
    folder = Path(os.environ["DESK_SCREENSHOTS"]) if os.environ.get("DESK_SCREENSHOTS") else tmp_path
    folder = folder if folder.is_absolute() else ROOT / folder

    def save(page: Page, name: str) -> Path:
        # A frame whose stylesheet is still loading is in the DOM but not yet painted.
        for frame in page.frames:
            frame.wait_for_load_state("load")
            frame.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / name))
        return folder / name

    return save


@pytest.fixture(autouse=True)
def no_faults_left(hms: httpx.Client) -> Iterator[None]:
    yield
    hms.delete("/admin/faults")


@pytest.fixture
def tag() -> str:
    """A suffix that makes this test's proposal ids its own."""
    return uuid.uuid4().hex[:6]


@pytest.fixture(scope="session")
def reviewer_api(stack: Stack) -> Iterator[ManagementClient]:
    with ManagementClient(stack.api_url, "reviewer", stack.credentials()["airflow"]["reviewer"]) as client:
        yield client
