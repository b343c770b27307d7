"""LangChain's ``BaseChatMessageHistory`` on SomaFractalMemory's conversations:
``SFMChatMessageHistory``.

    pip install "somafractalmemory[langchain]"

    from somafractalmemory.langchain_history import SFMChatMessageHistory

    history = SFMChatMessageHistory("chat-1", user_id="ann", client=SFMClient(url, key))
    history.add_messages([HumanMessage("I drink tea"), AIMessage("Noted.")])
    history.messages  # in conversation order

A client-side adapter over ``POST/GET /conversations/{id}/messages`` and
``DELETE /conversations/{id}`` (see docs/langchain.md). A message maps to a conversation
message: ``human``/``ai``/``system`` messages with plain text become ``user``/``assistant``/
``system`` turns with that text and name, so they are recalled by ``POST
/conversations/search`` and packed by ``POST /context`` like any turn; every other message
(tool messages, tool calls, content parts, metadata, other types) is stored whole, as
:mod:`somafractalmemory.message_envelope` describes, and read back equal.

Ids: a message's ``id`` is its message id; a message without one gets a uuid4 hex, written
into the message object, so adding the same messages again is idempotent (the server answers
``unchanged``). The same id with other content raises the client's ``Conflict``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    message_to_dict,
    messages_from_dict,
)

from somafractalmemory.client import AsyncSFMClient, NotFound, SFMClient
from somafractalmemory.message_envelope import (
    all_messages,
    all_messages_async,
    batches,
    plain_text,
    unwrap,
    wrap,
)
from somafractalmemory.message_schemas import MessagePublic

__all__ = ["SFMChatMessageHistory"]

TAG = "langchain_message"
PLAIN: dict[str, type[BaseMessage]] = {
    "user": HumanMessage,
    "assistant": AIMessage,
    "system": SystemMessage,
}
ROLES = {cls.model_fields["type"].default: role for role, cls in PLAIN.items()}


def _plain(message: BaseMessage, role: str) -> BaseMessage:
    return PLAIN[role](content=message.content, name=message.name, id=message.id)


def to_wire(message: BaseMessage) -> dict[str, Any]:
    """The conversation message that stores ``message`` (which must have an id)."""
    role = ROLES.get(message.type)
    if (
        role is not None
        and plain_text(message.content)
        and message_to_dict(_plain(message, role)) == message_to_dict(message)
    ):
        body: dict[str, Any] = {"id": message.id, "role": role, "content": message.content}
        if message.name:
            body["name"] = message.name
        return body
    wire_role = role or ("tool" if message.type == "tool" else "user")
    return {"id": message.id, "role": wire_role, "content": wrap(TAG, message_to_dict(message))}


def from_wire(stored: MessagePublic) -> BaseMessage:
    """The LangChain message a stored conversation message holds."""
    whole = unwrap(TAG, stored.content)
    if whole is not None:
        return messages_from_dict([whole])[0]
    cls = PLAIN.get(stored.role)
    if cls is None:  # a tool turn posted by other means: no tool call id to give it
        return HumanMessage(content=stored.content, id=stored.id, name=stored.name)
    return cls(content=stored.content, name=stored.name, id=stored.id)


class SFMChatMessageHistory(BaseChatMessageHistory):
    """The messages of one SFM conversation, of the scopes ``user_id``, ``agent_id`` and
    ``session_id`` (attached to every message added; reading lists the whole
    conversation). Give ``client`` for the blocking methods, ``async_client`` for the async
    ones, or both."""

    def __init__(
        self,
        conversation_id: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        client: SFMClient | None = None,
        async_client: AsyncSFMClient | None = None,
    ) -> None:
        if client is None and async_client is None:
            raise ValueError("give an SFMClient (client=) or an AsyncSFMClient (async_client=)")
        if not conversation_id:
            raise ValueError("conversation_id: must not be empty")
        self.conversation_id = conversation_id
        self.scopes = {"user_id": user_id, "agent_id": agent_id, "session_id": session_id}
        self._client = client
        self._async_client = async_client

    @property
    def client(self) -> SFMClient:
        if self._client is None:
            raise ValueError("this history has no SFMClient: give client=")
        return self._client

    @property
    def async_client(self) -> AsyncSFMClient:
        if self._async_client is None:
            raise ValueError("this history has no AsyncSFMClient: give async_client=")
        return self._async_client

    @staticmethod
    def _batches(messages: Sequence[BaseMessage]) -> list[list[dict[str, Any]]]:
        for message in messages:
            if message.id is None:
                message.id = uuid.uuid4().hex
        return batches([to_wire(m) for m in messages])

    # -- blocking ---------------------------------------------------------------------------
    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """Every message of the conversation, in conversation order."""
        return [from_wire(m) for m in all_messages(self.client, self.conversation_id)]

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Store ``messages`` in order, up to 500 per request (not atomic across requests:
        adding again after an error stores only what is missing)."""
        for batch in self._batches(messages):
            self.client.add_messages(self.conversation_id, batch, **self.scopes)

    def clear(self) -> None:
        """Delete every message of the conversation (an empty one is no error)."""
        with contextlib.suppress(NotFound):  # nothing to clear
            self.client.delete_conversation(self.conversation_id)

    # -- async ------------------------------------------------------------------------------
    async def aget_messages(self) -> list[BaseMessage]:
        """Every message of the conversation, in conversation order."""
        stored = await all_messages_async(self.async_client, self.conversation_id)
        return [from_wire(m) for m in stored]

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """As :meth:`add_messages`."""
        for batch in self._batches(messages):
            await self.async_client.add_messages(self.conversation_id, batch, **self.scopes)

    async def aclear(self) -> None:
        """As :meth:`clear`."""
        with contextlib.suppress(NotFound):  # nothing to clear
            await self.async_client.delete_conversation(self.conversation_id)
