"""The memory browser (``/ui``) in a real headless Chromium, against a real SFM server.

The server is the session's ``uvicorn somafractalmemory.http_api:app`` on the test stack
(``sfm_server``, a subprocess with its access log on; each test reads only the output written
since it began); the browser is Debian's ``chromium`` driven by Playwright
(never a browser build of Playwright's own: ``make test`` installs ``chromium`` with apt).
The test signs in, searches, opens a memory, deletes it, and checks that the API key never
appears in a URL the browser requested, in a cookie, or in the server's log. A screenshot
of every page goes to ``tests/artifacts/ui/``.
"""

from __future__ import annotations

import random
import re
import uuid

import httpx
from playwright.sync_api import BrowserContext, Request, expect

from somafractalmemory.api.ui.routes import CONTENT_SECURITY_POLICY
from somafractalmemory.stack import Stack
from tests.browser.conftest import DESKTOP, PHONE, Server, on_screen, overflow, shot


def api(server: Server, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30.0
    )


def test_sign_in_search_open_and_delete_a_memory(
    server: Server, stack: Stack, browser: BrowserContext
) -> None:
    key, _info = stack.keys.create(f"ui-{uuid.uuid4().hex[:12]}")
    word = f"quokka{uuid.uuid4().hex[:8]}"
    base = random.randint(1, 10**6)
    coord, linked_to, linked_from = f"9,{base},1", f"9,{base},2", f"9,{base},3"
    text = f"The lighthouse keeper's cat is called Marmalade ({word}) and hates the fog horn"
    with api(server, key) as sfm:
        for at, body in (
            (coord, {"text": text, "topic": "pets", "tags": ["cat", "lighthouse"]}),
            (linked_to, {"text": "The fog horn sounds every thirty seconds"}),
            (linked_from, {"text": "Visited the lighthouse in June"}),
        ):
            stored = sfm.post(
                "/memories",
                json={"coord": at, "payload": body, "memory_type": "semantic", "importance": 0.7},
            )
            assert stored.status_code == 201, stored.text
        for start, end, kind in ((coord, linked_to, "mentions"), (linked_from, coord, "related")):
            linked = sfm.post(
                "/graph/link",
                json={"from_coord": start, "to_coord": end, "link_type": kind, "strength": 0.8},
            )
            assert linked.status_code == 201, linked.text

    requested: list[Request] = []
    browser.on("request", lambda r: requested.append(r))
    problems: list[str] = []
    page = browser.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))

    # Not signed in: the overview sends the browser to the sign-in page.
    response = page.goto(f"{server.url}/ui")
    assert response is not None
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    page.wait_for_url("**/ui/signin")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(page, "1-signin")

    page.fill("#api-key", key)
    page.click("#signin-button")
    page.wait_for_url("**/ui")
    assert page.evaluate("sessionStorage.getItem('sfm.apiKey')") == key
    assert page.evaluate("localStorage.length") == 0
    # At a glance: this tenant's stats and the stack's health.
    expect(page.locator("#stats")).to_contain_text("memories3")
    expect(page.locator("#stats")).to_contain_text("links2")
    expect(page.locator("#health-status")).to_have_text("ok")
    expect(page.locator("#health")).to_contain_text("milvus")
    shot(page, "2-overview")

    page.fill("#query", f"{word} lighthouse cat")
    page.select_option("#mode", "hybrid")
    page.click("#search-form button[type=submit]")
    row = page.locator(f'#results tr[data-coord="{coord}"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text("keyword #1")
    expect(row).to_contain_text("vector #")
    expect(row).to_contain_text("Marmalade")
    expect(page.locator("#search-status")).to_contain_text("hybrid")
    shot(page, "3-search-results")

    row.get_by_role("link", name=coord).click()
    page.wait_for_url("**/ui/memory?coord=*")
    expect(page.locator("#payload")).to_contain_text(f'"text": "{text}"')
    expect(page.locator("#payload")).to_contain_text('"topic": "pets"')
    expect(page.locator("#memory-type")).to_have_text("semantic")
    expect(page.locator("#memory-importance")).to_have_text("0.70")
    expect(page.locator("#memory-created time")).to_have_attribute(
        "datetime", re.compile(r"^\d{4}-\d\d-\d\dT")
    )
    neighbors = page.locator("#neighbors tbody")
    expect(neighbors.locator(f'tr[data-coord="{linked_to}"]')).to_contain_text("mentions")
    expect(neighbors.locator(f'tr[data-coord="{linked_from}"]')).to_contain_text("related")
    shot(page, "4-memory-detail")

    # Delete takes a second click: the first one only asks.
    page.click("#delete")
    expect(page.locator("#delete-confirm")).to_be_visible()
    with api(server, key) as sfm:
        assert sfm.get(f"/memories/{coord}").status_code == 200
    shot(page, "5-delete-confirm")
    page.click("#delete-yes")
    expect(page.locator("#memory-status")).to_contain_text(f"Deleted {coord}")
    shot(page, "6-deleted")

    with api(server, key) as sfm:
        gone = sfm.get(f"/memories/{coord}")
        assert gone.status_code == 404, gone.text
        found = sfm.post("/memories/search", json={"query": word, "mode": "keyword"})
        assert found.status_code == 200
        assert coord not in [hit["coord"] for hit in found.json()["results"]]
        assert sfm.get(f"/memories/{linked_to}").status_code == 200

    assert not problems, problems
    # The key travelled only in Authorization headers: never in a URL, a cookie or a log line.
    urls = [r.url for r in requested]
    assert any("/memories/search" in u for u in urls)
    assert not [u for u in urls if key in u]
    assert not [r for r in requested if key in (r.post_data or "")]
    assert not [c for c in browser.cookies() if key in c["value"]]
    assert key not in page.content()
    log = server.output()
    assert "POST /memories/search HTTP/1.1" in log  # the access log is really captured
    assert "DELETE /memories/" in log
    assert key not in log


def test_a_refused_key_is_not_kept(server: Server, browser: BrowserContext) -> None:
    page = browser.new_page()
    page.goto(f"{server.url}/ui/signin")
    wrong = f"sfm_{uuid.uuid4().hex}"
    page.fill("#api-key", wrong)
    page.click("#signin-button")
    expect(page.locator("#error")).to_contain_text("UnauthorizedError (401)")
    assert page.evaluate("sessionStorage.length") == 0
    assert page.url.endswith("/ui/signin")
    shot(page, "7-signin-refused")
    assert wrong not in server.output()


def test_browse_and_search_items(server: Server, stack: Stack, browser: BrowserContext) -> None:
    """The items page lists the tenant's namespaces; picking one lists its items, newest
    first; a query under a prefix ranks by meaning or by keyword; the overview counts them."""
    key, _info = stack.keys.create(f"ui-items-{uuid.uuid4().hex[:12]}")
    word = f"wombat{uuid.uuid4().hex[:8]}"
    with api(server, key) as sfm:
        for namespace, item_key, text in (
            (["users", "ann"], "prefs", f"Ann drinks green tea every morning ({word})"),
            (["users", "ann"], "trip", "Ann flies to Lisbon in May"),
            (["users", "bob"], "prefs", "Bob prefers black coffee"),
        ):
            stored = sfm.put(
                "/items", json={"namespace": namespace, "key": item_key, "value": {"text": text}}
            )
            assert stored.status_code == 201, stored.text
    problems: list[str] = []
    page = browser.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto(f"{server.url}/ui/signin")
    page.fill("#api-key", key)
    page.click("#signin-button")
    page.wait_for_url("**/ui")
    expect(page.locator("#stats")).to_contain_text("items3")
    page.click("#nav-items")
    page.wait_for_url("**/ui/items")
    expect(page.locator("#namespaces")).to_contain_text("users/ann")
    expect(page.locator("#namespaces")).to_contain_text("users/bob")
    rows = page.locator("#items tbody tr")
    expect(rows).to_have_count(3)  # no query, no namespace: every item, newest first
    expect(page.locator("#items-status")).to_contain_text("3 items (newest first")
    page.get_by_role("button", name="users/ann").click()
    expect(rows).to_have_count(2)
    expect(page.locator("#items-status")).to_contain_text("newest first")
    shot(page, "7-items")
    page.set_viewport_size(PHONE)
    on_screen(rows.first.locator("td.text"), page)
    assert overflow(page) <= 0
    shot(page, "7b-items-phone")
    page.set_viewport_size(DESKTOP)

    page.fill("#prefix", "users")
    page.fill("#item-query", "what does Ann drink?")
    page.click("#items-form button[type=submit]")
    expect(page.locator("#items-status")).to_contain_text("vector")
    expect(rows.first).to_contain_text("green tea")
    page.fill("#item-query", word)
    page.select_option("#item-mode", "keyword")
    page.click("#items-form button[type=submit]")
    expect(page.locator("#items-status")).to_contain_text("1 item under users (keyword")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("prefs")
    shot(page, "8-items-search")

    # A key opens the item: its namespace (each label a link to its items) and whole value.
    rows.first.get_by_role("link", name="prefs").click()
    page.wait_for_url("**/ui/item?namespace=users&namespace=ann&key=prefs")
    expect(page.locator("#item-key")).to_have_text("prefs")
    expect(page.locator("#item-namespace")).to_have_text("users/ann")
    expect(page.locator("#value")).to_contain_text(
        f'"text": "Ann drinks green tea every morning ({word})"'
    )
    expect(page.locator("#item-ttl")).to_have_text("none")
    shot(page, "8b-item")
    page.locator("#item-namespace").get_by_role("link", name="ann").click()
    page.wait_for_url("**/ui/items?prefix=users%2Fann")
    expect(page.locator("#prefix")).to_have_value("users/ann")
    expect(rows).to_have_count(2)
    assert not problems, problems


def test_a_memory_shows_its_versions_and_successor(
    server: Server, stack: Stack, browser: BrowserContext
) -> None:
    """A superseded memory's page names its successor (a link to it) and lists its versions,
    newest first; the successor's page shows its validity."""
    key, _info = stack.keys.create(f"ui-history-{uuid.uuid4().hex[:12]}")
    base = random.randint(1, 10**6)
    old, new = f"8,{base},1", f"8,{base},2"
    with api(server, key) as sfm:
        for body in (
            {"coord": old, "payload": {"text": "Maya lives in Paris"}},
            {"coord": old, "payload": {"text": "Maya lives in Paris, in Montmartre"}},
            {
                "coord": new,
                "payload": {"text": "Maya moved to Berlin"},
                "supersedes": [old],
                "valid_from": "2024-03-01T00:00:00Z",
            },
        ):
            stored = sfm.post("/memories", json=body)
            assert stored.is_success, stored.text
    problems: list[str] = []
    page = browser.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto(f"{server.url}/ui/signin")
    page.fill("#api-key", key)
    page.click("#signin-button")
    page.wait_for_url("**/ui")
    page.goto(f"{server.url}/ui/memory?coord={old}")
    expect(page.locator("#superseded")).to_be_visible()
    expect(page.locator("#successor")).to_have_text(new)
    versions = page.locator("#versions tbody tr")
    expect(versions).to_have_count(3)
    expect(versions.nth(0)).to_contain_text("superseded")
    expect(versions.nth(1)).to_contain_text("replaced")
    expect(versions.nth(2)).to_contain_text("created")
    expect(versions.nth(2)).to_contain_text("Maya lives in Paris")
    expect(page.locator("#versions-status")).to_have_text("3 versions")
    shot(page, "9-versions")
    page.locator("#successor a").click()
    page.wait_for_url(f"**/ui/memory?coord={new.replace(',', '%2C')}")
    expect(page.locator("#memory-valid")).to_contain_text("→")
    expect(page.locator("#superseded")).to_be_hidden()
    expect(page.locator("#versions tbody tr")).to_have_count(1)
    assert problems == []
