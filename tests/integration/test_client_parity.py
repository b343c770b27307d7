"""Every endpoint of the API is a method of both Python clients: the route list of the app
against the clients' methods, then the methods no other client test covers (delete by
scope, item and memory history, the change feed, webhooks, liveness, metrics, the streamed
export), sync and async, against the session's real server."""

from __future__ import annotations

import inspect
import time
import uuid

import anyio
import pytest

from somafractalmemory.api.app import create_app
from somafractalmemory.client import (
    AsyncSFMClient,
    InvalidInput,
    NotFound,
    SFMClient,
    Unauthorized,
)
from somafractalmemory.stack import Stack
from testkit.server import ServerProcess

# Every operation of the API and the method that calls it (the same in both clients).
METHODS = {
    "POST /memories": "store",
    "POST /memories/batch": "store_batch",
    "GET /memories/{coord}": "get",
    "DELETE /memories/{coord}": "delete",
    "GET /memories": "list",
    "DELETE /memories": "delete_memories",
    "POST /memories/search": "search",
    "GET /memories/{coord}/history": "history",
    "GET /changes": "changes",
    "POST /graph/link": "link",
    "GET /graph/neighbors": "neighbors",
    "GET /graph/path": "path",
    "PUT /items": "put_item",
    "GET /items": "get_item",
    "DELETE /items": "delete_item",
    "POST /items/search": "search_items",
    "GET /namespaces": "list_namespaces",
    "GET /items/history": "item_history",
    "POST /items/sweep": "sweep_items",
    "POST /spaces": "create_space",
    "GET /spaces": "list_spaces",
    "DELETE /spaces/{name}": "delete_space",
    "POST /conversations/{conversation_id}/messages": "add_messages",
    "GET /conversations/{conversation_id}/messages": "list_messages",
    "GET /conversations": "list_conversations",
    "DELETE /conversations/{conversation_id}": "delete_conversation",
    "POST /conversations/search": "search_messages",
    "DELETE /users/{user_id}": "delete_user",
    "GET /scopes/{scope}": "list_scope_values",
    "POST /context": "context",
    "POST /webhooks": "create_webhook",
    "GET /webhooks": "list_webhooks",
    "DELETE /webhooks/{webhook_id}": "delete_webhook",
    "GET /stats": "stats",
    "GET /healthz": "health",
    "GET /readyz": "ready",
    "GET /livez": "live",
    "GET /metrics": "metrics",
    "GET /export": "export",
}
SECRET = "a-secret-of-sixteen-or-more"
# https to a closed loopback port: accepted without the plain-http setting, never delivered.
HOOK_URL = "https://127.0.0.1:9/sfm-client-hook"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def api_key(stack: Stack) -> str:
    key, _info = stack.keys.create(f"parity-{uuid.uuid4().hex[:10]}")
    return key


def test_every_api_operation_is_a_method_of_both_clients() -> None:
    # The OpenAPI lists the API's operations (the pages of /ui and /docs are not in it).
    paths = create_app().openapi()["paths"]
    operations = {f"{method.upper()} {path}" for path, item in paths.items() for method in item}
    assert len(operations) >= 30
    assert sorted(operations) == sorted(METHODS), "operations without a method, or gone"
    for name in METHODS.values():
        assert callable(getattr(SFMClient, name)), name
        assert callable(getattr(AsyncSFMClient, name)), name
    # The async client's calls are coroutines (export: an async iterator).
    client = AsyncSFMClient("http://127.0.0.1:1")
    assert inspect.iscoroutinefunction(client.item_history)
    assert inspect.isasyncgenfunction(client.export)
    assert inspect.isgeneratorfunction(SFMClient("http://127.0.0.1:1").export)


def test_sync_client_remaining_endpoints(sfm_server: ServerProcess, api_key: str) -> None:
    with SFMClient(sfm_server.url, api_key) as sfm:
        start = sfm.changes().next_cursor
        sfm.store("1,1", {"text": "Ann likes tea"}, user_id="ann")
        sfm.store("1,1", {"text": "Ann likes green tea"}, user_id="ann")
        sfm.store("2,2", {"text": "Ann's flight is at 9"}, user_id="ann", session_id="trip")
        sfm.store("3,3", {"text": "Bob likes coffee"}, user_id="bob")
        sfm.link("1,1", "3,3")
        sfm.add_messages("c1", [{"id": "1", "role": "user", "content": "hi"}], user_id="ann")

        versions = sfm.history("1,1", limit=1)
        assert [(v.change, v.payload["text"]) for v in versions.versions] == [
            ("replaced", "Ann likes green tea")
        ]
        older = sfm.history("1,1", cursor=versions.next_cursor)
        assert [v.change for v in older.versions] == ["created"]
        deadline = time.monotonic() + 20  # see the async test
        while len(sfm.changes(after=start).changes) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        feed = sfm.changes(after=start, limit=2)
        assert [(c.kind, c.key, c.change) for c in feed.changes] == [
            ("memory", "1,1", "created"),
            ("memory", "1,1", "replaced"),
        ]
        assert [c.key for c in sfm.changes(after=feed.next_cursor).changes][:2] == ["2,2", "3,3"]

        sfm.put_item(["prefs", "ann"], "drink", {"text": "tea"})
        sfm.put_item(["prefs", "ann"], "drink", {"text": "green tea"})
        item_versions = sfm.item_history(["prefs", "ann"], "drink", limit=1)
        assert [v.payload for v in item_versions.versions] == [{"text": "green tea"}]
        rest = sfm.item_history(["prefs", "ann"], "drink", cursor=item_versions.next_cursor)
        assert [v.change for v in rest.versions] == ["created"]
        assert rest.next_cursor is None
        sfm.put_item(["prefs", "ann"], "food", {"text": "vegetarian dishes"})
        by_word = sfm.search_items(["prefs"], query="green", mode="keyword")
        assert [i.key for i in by_word.items] == ["drink"]
        with pytest.raises(NotFound, match="drink"):
            sfm.item_history(["prefs", "bob"], "drink")

        records = list(sfm.export())
        assert records[0]["format"] == "somafractalmemory-export"
        memories = {r["coord"]: r for r in records if r.get("kind") == "memory"}
        assert sorted(memories) == ["1,1", "2,2", "3,3"]
        assert "vector" not in memories["1,1"]
        assert [(r["from_coord"], r["to_coord"]) for r in records if r.get("kind") == "link"] == [
            ("1,1", "3,3")
        ]
        with_vectors = [r for r in sfm.export(with_vectors=True) if r.get("kind") == "memory"]
        assert all(len(r["vector"]) > 100 for r in with_vectors)

        hook = sfm.create_webhook(HOOK_URL, SECRET, after=start)
        assert (hook.url, hook.cursor) == (HOOK_URL, start)
        assert [w.id for w in sfm.list_webhooks().webhooks] == [hook.id]
        assert sfm.delete_webhook(hook.id).deleted is True
        assert sfm.list_webhooks().webhooks == []
        with pytest.raises(NotFound):
            sfm.delete_webhook(hook.id)
        with pytest.raises(InvalidInput, match="secret"):
            sfm.create_webhook(HOOK_URL, "short")

        gone = sfm.delete_memories(user_id="ann", session_id="trip")
        assert (gone.deleted, gone.purged_versions) == (1, None)
        purged = sfm.delete_memories(user_id="ann", purge=True)
        assert purged.deleted == 1
        assert (purged.purged_versions or 0) >= 2
        assert [m.coord for m in sfm.list().memories] == ["3,3"]
        with pytest.raises(NotFound):
            sfm.history("1,1")
        # Messages are not memories: the user's conversation stays.
        assert [m.id for m in sfm.list_messages("c1").messages] == ["1"]
        with pytest.raises(InvalidInput, match="user_id"):
            sfm.delete_memories()

        assert sfm.live() == {"status": "alive"}
        assert "api_requests_total" in sfm.metrics()


@pytest.mark.anyio
async def test_async_client_remaining_endpoints(sfm_server: ServerProcess, api_key: str) -> None:
    async with AsyncSFMClient(sfm_server.url, api_key) as sfm:
        start = (await sfm.changes()).next_cursor
        await sfm.store("5,5", {"text": "one"}, agent_id="a1")
        await sfm.store("6,6", {"text": "two"}, agent_id="a2")
        await sfm.put_item(["ns"], "k", {"text": "v"})
        assert [v.change for v in (await sfm.item_history(["ns"], "k")).versions] == ["created"]
        assert [v.change for v in (await sfm.history("5,5")).versions] == ["created"]
        # A change is listed once every older transaction of the database has ended (the
        # server's background work holds some for a moment): wait for the three.
        feed = await sfm.changes(after=start)
        deadline = time.monotonic() + 20
        while len(feed.changes) < 3 and time.monotonic() < deadline:
            await anyio.sleep(0.2)
            feed = await sfm.changes(after=start)
        assert [(c.kind, c.key) for c in feed.changes] == [
            ("memory", "5,5"),
            ("memory", "6,6"),
            ("item", "k"),
        ]
        kinds = [r.get("kind", "header") async for r in sfm.export()]
        assert kinds[0] == "header"
        assert kinds.count("memory") == 2
        assert kinds.count("item") == 1

        hook = await sfm.create_webhook(HOOK_URL, SECRET)
        assert [w.url for w in (await sfm.list_webhooks()).webhooks] == [HOOK_URL]
        assert (await sfm.delete_webhook(hook.id)).deleted is True

        assert (await sfm.delete_memories(agent_id="a1")).deleted == 1
        assert [m.coord for m in (await sfm.list()).memories] == ["6,6"]
        with pytest.raises(InvalidInput):
            await sfm.delete_memories(purge=True)
        assert await sfm.live() == {"status": "alive"}
        assert "api_requests_total" in await sfm.metrics()


def test_export_errors_are_mapped_before_the_first_line(sfm_server: ServerProcess) -> None:
    with SFMClient(sfm_server.url, "not-a-key", retries=0) as sfm:
        lines = sfm.export()
        with pytest.raises(Unauthorized) as raised:
            next(lines)
        assert raised.value.attempts == 1
