"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) in a real headless Chromium, with no network.

Every request to another host than the server's is aborted and recorded; the pages must render
the API's operations from the application's own files, under their Content-Security-Policy,
with no request blocked and no script error (the one policy violation, ReDoc's attribution
logo, is named in its test).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect

from somafractalmemory.api.docs.routes import CONTENT_SECURITY_POLICY
from tests.browser.conftest import Server, shot


def offline_page(browser: BrowserContext, server: Server) -> tuple[Page, list[str], list[str]]:
    """A page whose requests off the server's host are aborted (listed in the first list);
    console errors and page errors go to the second."""
    host = urlsplit(server.url).hostname
    blocked: list[str] = []
    problems: list[str] = []

    def only_local(route: Route) -> None:
        if urlsplit(route.request.url).hostname in (host, "localhost", "127.0.0.1"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    browser.route("**/*", only_local)
    page = browser.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return page, blocked, problems


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_docs_pages_carry_their_policy_and_load_nothing_from_elsewhere(
    server: Server, path: str
) -> None:
    page = httpx.get(f"{server.url}{path}", timeout=30)
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script>" not in page.text  # no inline script: the policy would refuse it
    assert "http://" not in page.text
    assert "https://" not in page.text
    for asset in ("/docs/vendor/swagger-ui-bundle.js", "/docs/static/redoc-init.js"):
        served = httpx.get(f"{server.url}{asset}", timeout=30)
        assert served.status_code == 200, asset
        assert served.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_swagger_ui_lists_the_operations_offline(server: Server, browser: BrowserContext) -> None:
    page, blocked, problems = offline_page(browser, server)
    page.goto(f"{server.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("SomaFractalMemory")
    search = page.locator('.opblock[id^="operations-"]').filter(has_text="/memories/search")
    expect(search.first).to_be_visible()
    assert page.locator(".opblock").count() >= 20  # every endpoint, not a fragment
    # An operation opens: its parameters and responses come from /openapi.json.
    search.first.locator(".opblock-summary").click()
    expect(search.first.locator(".responses-wrapper")).to_contain_text("200")
    shot(page, "docs-swagger")
    assert blocked == [], blocked
    assert problems == [], problems


def test_redoc_renders_the_operations_offline(server: Server, browser: BrowserContext) -> None:
    page, blocked, problems = offline_page(browser, server)
    page.goto(f"{server.url}/redoc")
    expect(page.locator(".api-info h1")).to_contain_text("SomaFractalMemory")
    operations = page.locator('[data-section-id^="operation/"]')
    expect(operations.first).to_be_visible()
    assert operations.count() >= 20
    expect(page.locator(".menu-content")).to_contain_text("Search")
    shot(page, "docs-redoc")
    assert blocked == [], blocked
    # ReDoc's sidebar always tries Redocly's logo from their CDN (it hides the image when that
    # fails); the policy refuses it before any request is made, and that is the one error.
    logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    refused = [m for m in problems if logo in m and "Content Security Policy" in m]
    assert len(refused) == 1, problems
    assert [m for m in problems if m not in refused] == []
