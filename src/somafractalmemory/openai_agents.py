"""The OpenAI Agents SDK's ``Session`` on SomaFractalMemory's conversations: ``SFMSession``.

    pip install "somafractalmemory[openai-agents]"

    from agents import Agent, Runner
    from somafractalmemory.openai_agents import SFMSession

    session = SFMSession("chat-1", user_id="ann", base_url=url, api_key=key)
    await Runner.run(agent, "Hello", session=session)

A client-side adapter over the conversations API; the session id is the conversation id
(1 to 256 characters, no ``.``). Each input item is one conversation message, added in order:
an item that is exactly ``{"role": "user"|"assistant"|"system", "content": <plain text>}`` is
that turn (recalled by ``POST /conversations/search`` and packed by ``POST /context`` like any
turn); every other item (output messages, function calls and their outputs, reasoning, ...)
is stored whole as JSON (see :mod:`somafractalmemory.message_envelope`) and read back equal.
Every item gets a fresh message id (a uuid4 hex): adding an item twice stores it twice, as the
SDK's own sessions do.

``pop_item`` deletes the newest message as the record it is (``DELETE /items`` in the
namespace ``["conversations", session_id]``); ``get_items(limit)`` reads the conversation in
order and answers its last ``limit`` items.

Given ``base_url`` (and ``api_key``), the session makes one
:class:`~somafractalmemory.client.AsyncSFMClient` per event loop, so ``Runner.run_sync``
(which runs a loop of its own) and ``Runner.run`` can share it; a ``client`` given instead is
used as it is, on the loop it was made for.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from typing import Any, cast

from agents.items import TResponseInputItem
from agents.memory.session_settings import (
    SessionSettings,
    coerce_session_settings,
    resolve_session_limit,
)

from somafractalmemory.client import AsyncSFMClient, NotFound
from somafractalmemory.message_envelope import (
    all_messages_async,
    batches,
    plain_text,
    unwrap,
    wrap,
)
from somafractalmemory.message_schemas import MessagePublic

__all__ = ["SFMSession"]

TAG = "openai_agents_item"
TURN_ROLES = {"user", "assistant", "system"}


def to_wire(item: TResponseInputItem) -> dict[str, Any]:
    """The conversation message (with a fresh id) that stores ``item``."""
    fields = cast(dict[str, Any], item)
    role = fields.get("role")
    message_id = uuid.uuid4().hex
    if set(fields) == {"role", "content"} and role in TURN_ROLES and plain_text(fields["content"]):
        return {"id": message_id, "role": role, "content": fields["content"]}
    if role == "developer":
        role = "system"
    elif role not in TURN_ROLES:
        kind = str(fields.get("type", ""))
        role = "tool" if kind.endswith("_output") else "assistant"
    return {"id": message_id, "role": role, "content": wrap(TAG, fields)}


def from_wire(stored: MessagePublic) -> TResponseInputItem:
    """The input item a stored conversation message holds (a turn posted by other means
    reads as ``{"role", "content"}``; a tool turn as a user one)."""
    whole = unwrap(TAG, stored.content)
    if whole is not None:
        return cast(TResponseInputItem, whole)
    role = stored.role if stored.role in TURN_ROLES else "user"
    return cast(TResponseInputItem, {"role": role, "content": stored.content})


class SFMSession:
    """One SFM conversation as an Agents SDK session, its messages of the scopes
    ``user_id``, ``agent_id`` and ``scope_session_id`` (SFM's own session scope)."""

    def __init__(
        self,
        session_id: str,
        *,
        client: AsyncSFMClient | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        scope_session_id: str | None = None,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> None:
        if not session_id:
            raise ValueError("session_id: must not be empty")
        self.session_id = session_id
        self.session_settings = (
            SessionSettings()
            if session_settings is None
            else coerce_session_settings(session_settings)
        )
        if client is None and base_url is None:
            raise ValueError("give an AsyncSFMClient (client=) or base_url=")
        self._client = client
        self._connection = (base_url or "", api_key)
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncSFMClient]
        self._per_loop = weakref.WeakKeyDictionary()
        self.scopes = {"user_id": user_id, "agent_id": agent_id, "session_id": scope_session_id}

    @property
    def client(self) -> AsyncSFMClient:
        """The client given, or this event loop's own client to ``base_url``."""
        if self._client is not None:
            return self._client
        loop = asyncio.get_running_loop()
        client = self._per_loop.get(loop)
        if client is None:
            client = self._per_loop[loop] = AsyncSFMClient(*self._connection)
        return client

    async def aclose(self) -> None:
        """Close this event loop's client (not one given to the session) and forget those of
        other loops (a client can only be closed on its own loop; a closed loop's is gone)."""
        mine = self._per_loop.pop(asyncio.get_running_loop(), None)
        self._per_loop.clear()
        if mine is not None:
            await mine.aclose()

    async def _stored(self) -> list[MessagePublic]:
        return await all_messages_async(self.client, self.session_id)

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The items in order; with ``limit`` (or the settings' limit), the latest ``limit``."""
        limit = resolve_session_limit(limit, self.session_settings)
        stored = await self._stored()
        if limit is not None:
            stored = stored[-limit:] if limit > 0 else []
        return [from_wire(m) for m in stored]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append ``items`` in order, up to 500 per request (not atomic across requests)."""
        for batch in batches([to_wire(item) for item in items]):
            await self.client.add_messages(self.session_id, batch, **self.scopes)

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and answer the newest item; None when the session is empty. Two
        concurrent pops remove two items (one that lost the race tries the next)."""
        while True:
            stored = await self._stored()
            if not stored:
                return None
            newest = stored[-1]
            if await self.client.delete_item(("conversations", self.session_id), newest.id):
                return from_wire(newest)

    async def clear_session(self) -> None:
        """Delete every item of the session (an empty one is no error)."""
        with contextlib.suppress(NotFound):  # nothing to clear
            await self.client.delete_conversation(self.session_id)
