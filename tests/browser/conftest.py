"""The browser tests' fixtures: the session's real SFM server and a headless Debian Chromium.

The server is the session's ``uvicorn somafractalmemory.http_api:app`` on the test stack
(``sfm_server``, a subprocess with its access log on; each test reads only the output written
since it began); the browser is Debian's ``chromium`` driven by Playwright (never a browser
build of Playwright's own: ``make test`` installs ``chromium`` with apt). Screenshots go to
``tests/artifacts/ui/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import (
    BrowserContext,
    Locator,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from testkit.server import ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
# Actions wait up to 30 s (the context's default timeout below); so do assertions, whose own
# default is 5 s: Swagger UI fetching and rendering /openapi.json took longer than that on CI's
# two cores under the suite's load ("loading" when the 5 s ran out).
expect.set_options(timeout=30_000)
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "ui"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Server:
    """The session's SFM server, and where its output stood when the test began."""

    process: ServerProcess
    log_start: int

    @property
    def url(self) -> str:
        return self.process.url

    def output(self) -> str:
        """What the server wrote since the test began (its access log included)."""
        return self.process.output(since=self.log_start)


@pytest.fixture
def server(sfm_server: ServerProcess) -> Server:
    """The session's real SFM server on the test stack (uvicorn's access log on): only its
    output from this test on is looked at."""
    return Server(sfm_server, sfm_server.log_size())


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    """Headless Debian Chromium with a fresh profile directory."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `apt-get install chromium` (make test does it); "
            "Playwright's own browser downloads are not used"
        )
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1200, "height": 800},
        )
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


def shot(page: Page, name: str) -> None:
    """Save the whole page as tests/artifacts/ui/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


PHONE = ViewportSize(width=390, height=844)  # a phone's window (CSS pixels)
DESKTOP = ViewportSize(width=1280, height=900)


def signed_in_page(browser: BrowserContext, server: Server, key: str) -> tuple[Page, list[str]]:
    """A new page signed in with ``key`` at the overview, and the list its console errors and
    uncaught exceptions are collected in."""
    problems: list[str] = []
    page = browser.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto(f"{server.url}/ui/signin")
    page.fill("#api-key", key)
    page.click("#signin-button")
    page.wait_for_url("**/ui")
    return page, problems


def overflow(page: Page) -> int:
    """How many pixels the page is wider than the window (0: no sideways scrolling)."""
    width: int = page.evaluate(
        "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " - window.innerWidth"
    )
    return width


def on_screen(locator: Locator, page: Page) -> None:
    """The element is shown and lies within the window's width (not cut off at the side)."""
    expect(locator).to_be_visible()
    box = locator.bounding_box()
    assert box is not None
    width = page.viewport_size["width"] if page.viewport_size else 0
    assert box["x"] >= 0, box
    assert box["x"] + box["width"] <= width + 0.5, (box, width)
