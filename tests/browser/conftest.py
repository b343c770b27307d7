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
from playwright.sync_api import BrowserContext, Page, sync_playwright

from testkit.server import ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
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
