"""The memory browser without a query, and on a phone-sized screen, in headless Chromium.

The overview lists the tenant's memories a page at a time and filters them by type; a
memory's page shows each neighbour's text and which way its link goes; at 390 px wide no page
scrolls sideways (wide tables scroll inside their card). Screenshots go to tests/artifacts/ui/.
"""

from __future__ import annotations

import random
import uuid

import httpx
from playwright.sync_api import BrowserContext, Page, expect

from somafractalmemory.stack import Stack
from tests.browser.conftest import Server, shot

PHONE = {"width": 390, "height": 844}


def signed_in_page(browser: BrowserContext, server: Server, key: str) -> tuple[Page, list[str]]:
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


def test_browse_filter_neighbours_and_a_narrow_screen(
    server: Server, stack: Stack, browser: BrowserContext
) -> None:
    key, _info = stack.keys.create(f"ui-browse-{uuid.uuid4().hex[:12]}")
    base = random.randint(1, 10**6)
    centre, target, source = f"7,{base},1", f"7,{base},2", f"7,{base},3"
    long_word = "x" * 120  # a payload word wider than the phone's screen
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as sfm:
        for coord, text, kind in (
            (centre, f"The harbour master keeps a logbook {long_word}", "semantic"),
            (target, "The logbook is kept in a blue tin", "episodic"),
            (source, "Met the harbour master on Tuesday", "episodic"),
        ):
            stored = sfm.post(
                "/memories",
                json={"coord": coord, "payload": {"text": text}, "memory_type": kind},
            )
            assert stored.status_code == 201, stored.text
        for start, end, kind in ((centre, target, "mentions"), (source, centre, "met")):
            linked = sfm.post(
                "/graph/link", json={"from_coord": start, "to_coord": end, "link_type": kind}
            )
            assert linked.status_code == 201, linked.text

    page, problems = signed_in_page(browser, server, key)
    page.set_viewport_size(PHONE)
    rows = page.locator("#memories tbody tr")
    expect(rows).to_have_count(3)  # no query typed: the tenant's memories are listed
    expect(page.locator("#browse-status")).to_have_text("3 memories")
    page.select_option("#browse-type", "episodic")
    expect(rows).to_have_count(2)
    expect(page.locator("#browse-status")).to_have_text("2 episodic memories")
    expect(page.locator(f'#memories tr[data-coord="{centre}"]')).to_have_count(0)
    page.select_option("#browse-type", "semantic")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("harbour master keeps a logbook")
    assert overflow(page) <= 0
    shot(page, "10-browse-phone")

    rows.first.get_by_role("link", name=centre).click()
    page.wait_for_url("**/ui/memory?coord=*")
    neighbours = page.locator("#neighbors tbody")
    outgoing = neighbours.locator(f'tr[data-coord="{target}"]')
    incoming = neighbours.locator(f'tr[data-coord="{source}"]')
    expect(outgoing).to_have_attribute("data-direction", "out")
    expect(outgoing).to_contain_text("→ links to")
    expect(outgoing).to_contain_text("mentions")
    expect(outgoing).to_contain_text("The logbook is kept in a blue tin")
    expect(incoming).to_have_attribute("data-direction", "in")
    expect(incoming).to_contain_text("← linked from")
    expect(incoming).to_contain_text("Met the harbour master on Tuesday")
    assert overflow(page) <= 0
    shot(page, "11-memory-phone")

    page.click("#nav-items")
    page.wait_for_url("**/ui/items")
    expect(page.locator("#items-form")).to_be_visible()
    assert overflow(page) <= 0
    shot(page, "12-items-phone")
    assert problems == [], problems
