"""The memory browser without a query, and on a phone-sized screen, in headless Chromium.

The overview lists the tenant's memories a page at a time and filters them by type; a
memory's page shows each neighbour's text and which way its link goes; at 390 px wide no page
scrolls sideways (wide tables scroll inside their card). Screenshots go to tests/artifacts/ui/.
"""

from __future__ import annotations

import random
import uuid

import httpx
from playwright.sync_api import BrowserContext, expect

from somafractalmemory.stack import Stack
from tests.browser.conftest import DESKTOP, PHONE, Server, on_screen, overflow, shot, signed_in_page


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
    page.select_option("#filter-type", "episodic")
    expect(rows).to_have_count(2)
    expect(page.locator("#browse-status")).to_have_text("2 episodic memories")
    expect(page.locator(f'#memories tr[data-coord="{centre}"]')).to_have_count(0)
    page.select_option("#filter-type", "semantic")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("harbour master keeps a logbook")
    assert overflow(page) <= 0
    shot(page, "10-browse-phone")
    page.set_viewport_size(DESKTOP)
    expect(page.locator("#stats")).to_contain_text("memories3")
    shot(page, "10b-browse-desktop")
    page.set_viewport_size(PHONE)

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
    # On a phone each neighbour is a card: its text and direction are on screen.
    on_screen(outgoing.locator("td.text"), page)
    on_screen(incoming.locator("td.direction"), page)
    assert overflow(page) <= 0
    shot(page, "11-memory-phone")
    page.set_viewport_size(DESKTOP)
    expect(outgoing.locator("td.text")).to_be_visible()
    shot(page, "11b-memory-desktop")
    page.set_viewport_size(PHONE)

    page.click("#nav-items")
    page.wait_for_url("**/ui/items")
    expect(page.locator("#items-form")).to_be_visible()
    expect(page.locator("#items-status")).to_contain_text("0 items")
    assert overflow(page) <= 0
    shot(page, "12-items-phone")
    assert problems == [], problems
