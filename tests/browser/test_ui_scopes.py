"""The memory browser by scope, and its conversations, in headless Chromium at 390 px and at
desktop width.

Memories are filtered by type and by scope (user, agent, session; the inputs suggest the
tenant's values from ``GET /scopes``), for browsing and for search alike; a scope chip on a
row filters by that scope; the filters live in the URL; "More" pages within them.
Conversations are listed by scope, their messages searched within it, and one conversation
shows its messages in conversation order, 50 a page, opened at a message when asked. On a
phone no page scrolls sideways and every cell of a row is on screen (rows become cards).
Screenshots go to tests/artifacts/ui/.
"""

from __future__ import annotations

import random
import uuid

import httpx
from playwright.sync_api import BrowserContext, expect

from somafractalmemory.stack import Stack
from tests.browser.conftest import (
    DESKTOP,
    PHONE,
    Server,
    on_screen,
    overflow,
    shot,
    signed_in_page,
)


def test_memories_filtered_by_type_and_scope(
    server: Server, stack: Stack, browser: BrowserContext
) -> None:
    key, _info = stack.keys.create(f"ui-scopes-{uuid.uuid4().hex[:12]}")
    base = random.randint(1, 10**6)
    ann, bob = f"ann-{base}", f"bob-{base}"
    memories = {
        f"6,{base},1": ("Ann's flight to Lisbon leaves at nine", "episodic", ann, "planner", "s1"),
        f"6,{base},2": ("Ann is vegetarian", "semantic", ann, None, "s2"),
        f"6,{base},3": ("Bob's flight to Oslo was delayed", "episodic", bob, None, None),
        f"6,{base},4": ("The office closes at six", "semantic", None, None, None),
    }
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as sfm:
        for coord, (text, kind, user, agent, session) in memories.items():
            scopes = {"user_id": user, "agent_id": agent, "session_id": session}
            stored = sfm.post(
                "/memories",
                json={
                    "coord": coord,
                    "payload": {"text": text},
                    "memory_type": kind,
                    **{k: v for k, v in scopes.items() if v},
                },
            )
            assert stored.status_code == 201, stored.text

    page, problems = signed_in_page(browser, server, key)
    page.set_viewport_size(PHONE)
    rows = page.locator("#memories tbody tr")
    status = page.locator("#browse-status")
    expect(rows).to_have_count(4)
    # The user input suggests the tenant's users (GET /scopes/user_id).
    suggestions = page.locator("#user_id-values option")
    expect(suggestions).to_have_count(2)
    assert [o.get_attribute("value") for o in suggestions.all()] == [ann, bob]
    # A row's scopes are chips; on a phone the row is a card with every cell on screen.
    first = page.locator(f'#memories tr[data-coord="6,{base},1"]')
    expect(first.locator(".chip.scope")).to_have_text(
        [f"user {ann}", "agent planner", "session s1"]
    )
    on_screen(first.locator("td.text"), page)
    expect(first.locator("td.text")).to_have_text("Ann's flight to Lisbon leaves at nine")
    assert overflow(page) <= 0
    shot(page, "13-filter-phone")

    page.fill("#filter-user_id", ann)
    page.click("#filter-form button[type=submit]")
    expect(rows).to_have_count(2)
    expect(status).to_have_text(f"2 memories of user {ann}")
    assert f"user_id={ann}" in page.url  # the filter is in the URL: reload keeps it
    page.select_option("#filter-type", "episodic")
    expect(rows).to_have_count(1)
    expect(status).to_have_text(f"1 episodic memory of user {ann}")
    expect(rows.first).to_contain_text("Lisbon")
    assert overflow(page) <= 0
    shot(page, "14-filtered-phone")

    page.reload()
    expect(page.locator("#filter-user_id")).to_have_value(ann)
    expect(page.locator("#filter-type")).to_have_value("episodic")
    expect(rows).to_have_count(1)
    page.click("#filter-form .clear")
    expect(rows).to_have_count(4)
    assert "user_id" not in page.url

    # A chip filters by its scope.
    page.locator(f'#memories tr[data-coord="6,{base},2"] .chip.scope.session').click()
    page.wait_for_url("**/ui?session_id=s2")
    expect(page.locator("#filter-session_id")).to_have_value("s2")
    expect(rows).to_have_count(1)
    expect(status).to_have_text("1 memory of session s2")

    # Search takes the same filters.
    page.set_viewport_size(DESKTOP)
    page.goto(f"{server.url}/ui?user_id={bob}")
    page.fill("#query", "flight")
    page.select_option("#mode", "keyword")
    page.click("#search-form button[type=submit]")
    expect(page.locator("#stats")).to_contain_text("memories4")
    results = page.locator("#results tbody tr")
    expect(page.locator("#search-status")).to_contain_text(f"1 result of user {bob} (keyword")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("Oslo")
    expect(rows).to_have_count(1)
    shot(page, "15-filtered-search-desktop")

    # The memory's own page names its scopes.
    page.goto(f"{server.url}/ui/memory?coord=6,{base},1")
    expect(page.locator("#memory-scopes .chip")).to_have_text(
        [f"user {ann}", "agent planner", "session s1"]
    )
    assert problems == [], problems


def test_conversations_by_scope_and_in_order(
    server: Server, stack: Stack, browser: BrowserContext
) -> None:
    key, _info = stack.keys.create(f"ui-conv-{uuid.uuid4().hex[:12]}")
    tag = uuid.uuid4().hex[:6]
    trip, other = f"trip-{tag}", f"chat-{tag}"
    long_word = "y" * 90  # a word wider than the phone's screen
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as sfm:
        posted = sfm.post(
            f"/conversations/{trip}/messages",
            json={
                "user_id": "ann",
                "agent_id": "travel-agent",
                "session_id": "s-9",
                "messages": [
                    # posted out of order: the conversation's order is the time said
                    {
                        "id": "m3",
                        "role": "user",
                        "content": f"And a window seat, please {long_word}",
                        "created_at": "2026-05-01T10:02:00Z",
                    },
                    {
                        "id": "m1",
                        "role": "user",
                        "name": "Ann",
                        "content": "Book me a flight to Lisbon",
                        "created_at": "2026-05-01T10:00:00Z",
                    },
                    {
                        "id": "m2",
                        "role": "assistant",
                        "content": "Which day would you like to fly?\nMornings are cheaper.",
                        "created_at": "2026-05-01T10:01:00Z",
                    },
                ],
            },
        )
        assert posted.status_code == 201, posted.text
        posted = sfm.post(
            f"/conversations/{other}/messages",
            json={"user_id": "bob", "messages": [{"role": "user", "content": "Hello"}]},
        )
        assert posted.status_code == 201, posted.text

    page, problems = signed_in_page(browser, server, key)
    page.set_viewport_size(PHONE)
    page.click("#nav-conversations")
    page.wait_for_url("**/ui/conversations")
    rows = page.locator("#conversations tbody tr")
    expect(rows).to_have_count(2)
    page.fill("#conversation-user_id", "ann")
    page.click("#conversation-filter button[type=submit]")
    expect(rows).to_have_count(1)
    row = page.locator(f'#conversations tr[data-conversation="{trip}"]')
    expect(row).to_contain_text("3")
    expect(row.locator(".chip.scope")).to_have_text(["user ann", "agent travel-agent"])
    assert overflow(page) <= 0
    shot(page, "16-conversations-phone")

    # Messages are searched within the chosen scopes; a hit opens its conversation there.
    page.fill("#message-query", "window seat")
    page.select_option("#message-mode", "keyword")
    page.click("#message-search button[type=submit]")
    hits = page.locator("#message-hits tbody tr")
    expect(hits).to_have_count(1)
    expect(hits.first).to_have_attribute("data-id", "m3")
    expect(hits.first).to_contain_text("And a window seat")
    page.fill("#conversation-user_id", "bob")
    page.click("#conversation-filter button[type=submit]")
    expect(page.locator("#message-search-status")).to_contain_text("0 messages")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-conversation", other)
    page.fill("#conversation-user_id", "ann")
    page.click("#conversation-filter button[type=submit]")
    expect(hits).to_have_count(1)
    shot(page, "16b-message-search-phone")
    hits.first.get_by_role("link", name=trip).click()
    page.wait_for_url("**/ui/conversation?id=*&message=m3")
    expect(page.locator("#messages li.wanted")).to_have_attribute("data-id", "m3")

    page.go_back()
    page.wait_for_url("**/ui/conversations?user_id=ann")
    row.get_by_role("link", name=trip).click()
    page.wait_for_url("**/ui/conversation?id=*")
    messages = page.locator("#messages li")
    expect(messages).to_have_count(3)
    assert [m.get_attribute("data-id") for m in messages.all()] == ["m1", "m2", "m3"]
    expect(messages.nth(0)).to_have_attribute("data-role", "user")
    expect(messages.nth(0).locator(".name")).to_have_text("Ann")
    expect(messages.nth(1)).to_have_attribute("data-role", "assistant")
    expect(messages.nth(1).locator(".content")).to_have_text(
        "Which day would you like to fly?\nMornings are cheaper."
    )
    expect(messages.nth(2).locator(".chip.scope.session")).to_have_text("session s-9")
    expect(page.locator("#messages-status")).to_have_text("3 messages, in conversation order")
    on_screen(messages.nth(2).locator(".content"), page)
    assert overflow(page) <= 0
    shot(page, "17-conversation-phone")
    page.set_viewport_size(DESKTOP)
    shot(page, "18-conversation-desktop")

    # The messages are items too: their namespace leads back to the conversation.
    page.click("#nav-items")
    page.wait_for_url("**/ui/items")
    entry = page.locator("#namespaces li", has_text=f"conversations/{trip}")
    entry.get_by_role("link", name="as a conversation").click()
    page.wait_for_url("**/ui/conversation?id=*")
    expect(page.locator("#conversation-id")).to_have_text(trip)
    expect(messages).to_have_count(3)
    assert problems == [], problems


def test_a_long_conversation_pages_and_opens_at_a_message(
    server: Server, stack: Stack, browser: BrowserContext
) -> None:
    """50 messages a page, "More" for the next; opened at a message past the first page, the
    page loads on until it is shown and points at it."""
    key, _info = stack.keys.create(f"ui-long-{uuid.uuid4().hex[:12]}")
    long = f"long-{uuid.uuid4().hex[:6]}"
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as sfm:
        posted = sfm.post(
            f"/conversations/{long}/messages",
            json={
                "messages": [
                    {
                        "id": f"m{n:02d}",
                        "role": "user" if n % 2 else "assistant",
                        "content": f"turn number {n}",
                        "created_at": f"2026-06-01T10:{n // 60:02d}:{n % 60:02d}Z",
                    }
                    for n in range(1, 61)
                ]
            },
        )
        assert posted.status_code == 201, posted.text

    page, problems = signed_in_page(browser, server, key)
    page.goto(f"{server.url}/ui/conversation?id={long}")
    messages = page.locator("#messages li")
    expect(messages).to_have_count(50)
    expect(page.locator("#messages-status")).to_contain_text("more to load")
    page.click("#messages-more")
    expect(messages).to_have_count(60)
    expect(page.locator("#messages-more")).to_be_hidden()
    expect(messages.nth(59)).to_have_attribute("data-id", "m60")

    page.goto(f"{server.url}/ui/conversation?id={long}&message=m55")
    wanted = page.locator("#messages li.wanted")
    expect(wanted).to_have_attribute("data-id", "m55")
    expect(wanted).to_be_in_viewport()
    expect(messages).to_have_count(60)
    assert problems == [], problems


def test_browsing_memories_pages_within_a_filter(
    server: Server, stack: Stack, browser: BrowserContext
) -> None:
    """The overview lists 25 memories at a time; "More" loads the next page of the same
    filter."""
    key, _info = stack.keys.create(f"ui-pages-{uuid.uuid4().hex[:12]}")
    base = random.randint(1, 10**6)
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as sfm:
        batch = sfm.post(
            "/memories/batch",
            json={
                "memories": [
                    {
                        "coord": f"5,{base},{n}",
                        "payload": {"text": f"note {n}"},
                        **({"user_id": "ann"} if n % 3 else {}),
                    }
                    for n in range(45)
                ]
            },
        )
        assert batch.status_code == 201, batch.text

    page, problems = signed_in_page(browser, server, key)
    rows = page.locator("#memories tbody tr")
    expect(rows).to_have_count(25)
    expect(page.locator("#browse-status")).to_have_text("25 memories, more to load")
    page.fill("#filter-user_id", "ann")
    page.click("#filter-form button[type=submit]")
    expect(page.locator("#browse-status")).to_have_text("25 memories of user ann, more to load")
    page.click("#browse-more")
    expect(rows).to_have_count(30)  # 30 of the 45 are Ann's
    expect(page.locator("#browse-status")).to_have_text("30 memories of user ann")
    expect(page.locator("#browse-more")).to_be_hidden()
    expect(page.locator("#memories .chip.scope.user")).to_have_count(30)
    assert problems == [], problems
