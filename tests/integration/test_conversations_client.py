"""The Python client's conversation methods, sync and async, against the session's real
server: add, list (paged), list conversations, search, the scope values, delete, erase a
user."""

from __future__ import annotations

import uuid

import pytest

from somafractalmemory.client import AsyncSFMClient, Conflict, NotFound, SFMClient
from somafractalmemory.message_schemas import MessageIn
from somafractalmemory.stack import Stack
from testkit.server import ServerProcess


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def api_key(stack: Stack) -> str:
    key, _info = stack.keys.create(f"conv-client-{uuid.uuid4().hex[:10]}")
    return key


def test_sync_client_conversations(sfm_server: ServerProcess, api_key: str) -> None:
    with SFMClient(sfm_server.url, api_key) as client:
        posted = client.add_messages(
            "trip",
            [
                MessageIn(id="1", role="user", content="Book a table in Porto for Saturday"),
                {"id": "2", "role": "assistant", "content": "Done: 8 pm at Cantinho"},
            ],
            user_id="ann",
            session_id="s1",
        )
        assert [m.status for m in posted.messages] == ["created", "created"]
        again = client.add_messages(
            "trip",
            [{"id": "1", "role": "user", "content": "Book a table in Porto for Saturday"}],
            user_id="ann",
            session_id="s1",
        )
        assert again.messages[0].status == "unchanged"
        with pytest.raises(Conflict, match="'1'"):
            client.add_messages("trip", [{"id": "1", "role": "user", "content": "changed"}])
        first = client.list_messages("trip", limit=1)
        assert [m.id for m in first.messages] == ["1"]
        rest = client.list_messages("trip", limit=1, cursor=first.next_cursor)
        assert [m.content for m in rest.messages] == ["Done: 8 pm at Cantinho"]
        assert [
            c.conversation_id for c in client.list_conversations(user_id="ann").conversations
        ] == ["trip"]
        hits = client.search_messages("restaurant in Porto", user_id="ann", mode="vector")
        assert hits.results[0].id == "1"
        assert hits.results[0].signals.vector_score is not None  # the raw cosine
        off = "what is the capital of Japan?"
        assert client.search_messages(off, user_id="ann", min_score=0.5).results == []
        client.put_item(["notes"], "n1", {"text": "Porto has a famous bridge"})
        assert client.search_items(["notes"], query="bridge in Porto").items
        assert client.search_items(["notes"], query=off, mode="hybrid", min_score=0.5).items == []
        assert client.search_messages("Porto", user_id="bob").results == []
        client.store("4,4", {"text": "Ann likes port wine"}, user_id="ann")
        client.store("5,5", {"text": "Bob likes port wine"}, user_id="bob")
        assert [m.coord for m in client.list(user_id="ann").memories] == ["4,4"]
        assert [r.coord for r in client.search("port wine", user_id="bob").results] == ["5,5"]
        exported = list(client.export(user_id="bob"))
        assert exported[0]["scopes"] == {"user_id": "bob"}
        assert [r.get("coord") for r in exported[1:] if r["kind"] == "memory"] == ["5,5"]
        users = client.list_scope_values("user_id", limit=1)
        assert users.values == ["ann"]
        rest_users = client.list_scope_values("user_id", cursor=users.next_cursor)
        assert (rest_users.values, rest_users.next_cursor) == (["bob"], None)
        assert client.list_scope_values("session_id").values == ["s1"]
        erased = client.delete_user("ann")
        assert (erased.messages, erased.memories) == (2, 1)
        with pytest.raises(NotFound):
            client.delete_conversation("trip")


@pytest.mark.anyio
async def test_async_client_conversations(sfm_server: ServerProcess, api_key: str) -> None:
    async with AsyncSFMClient(sfm_server.url, api_key) as client:
        await client.add_messages("a b", [{"role": "user", "content": "hello there"}], user_id="u")
        page = await client.list_messages("a b")
        assert page.messages[0].id.startswith("#")
        found = await client.search_messages("hello", conversation_id="a b", mode="keyword")
        assert [m.conversation_id for m in found.results] == ["a b"]
        assert found.results[0].signals.keyword == 1
        strict = await client.search_messages("hello", mode="keyword", min_score=0.99)
        assert strict.results == []
        await client.put_item(["notes"], "n1", {"text": "hello world"})
        items = await client.search_items(["notes"], query="hello", mode="keyword", min_score=0.1)
        assert [i.key for i in items.items] == ["n1"]
        scoped = [r async for r in client.export(user_id="u")]
        assert [r["kind"] for r in scoped[1:]] == ["item", "version"]
        assert (await client.delete_conversation("a b")).deleted == 1
        assert (await client.list_conversations(user_id="u")).conversations == []
        assert (await client.list_scope_values("agent_id")).values == []
