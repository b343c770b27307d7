"""Framework messages that a conversation message cannot hold as plain role and text.

The conversations API stores ``role``, ``name`` and ``content`` (non-blank text). A chat
framework's message may carry more (tool calls, a list of content parts, metadata) or be no
chat message at all (a function call of an agent run). Such a message is stored with its whole
serialised form as the content: ``{"<tag>": <the framework's dict>}`` as JSON, where the tag
names the framework (``"langchain_message"``, ``"openai_agents_item"``). Reading decodes a
content that is exactly such a JSON object; any other content is plain text.

Also here: how those adapters (``langchain_history``, ``openai_agents``) read a whole
conversation page by page and post messages in batches the API takes.
"""

from __future__ import annotations

import json
from typing import Any

from somafractalmemory.client import AsyncSFMClient, SFMClient
from somafractalmemory.message_schemas import MAX_CONTENT, MAX_MESSAGES, MessagePublic

PAGE = 1000  # messages per GET (the API's largest page)


def wrap(tag: str, value: dict[str, Any]) -> str:
    """The content that holds ``value`` under ``tag``."""
    return json.dumps({tag: value}, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def unwrap(tag: str, content: str) -> dict[str, Any] | None:
    """The value ``content`` holds under ``tag``, or None for plain text."""
    if not content.startswith("{"):
        return None
    try:
        decoded = json.loads(content)
    except json.JSONDecodeError:
        return None
    if isinstance(decoded, dict) and len(decoded) == 1 and isinstance(decoded.get(tag), dict):
        value: dict[str, Any] = decoded[tag]
        return value
    return None


def plain_text(value: Any) -> bool:
    """Whether ``value`` can be a message's content as it is (text the API accepts)."""
    return (
        isinstance(value, str)
        and bool(value.strip())
        and "\x00" not in value
        and len(value) <= MAX_CONTENT
        and not value.startswith("{")
    )


def all_messages(client: SFMClient, conversation_id: str) -> list[MessagePublic]:
    """Every message of the conversation, in conversation order."""
    found: list[MessagePublic] = []
    cursor: str | None = None
    while True:
        page = client.list_messages(conversation_id, PAGE, cursor)
        found.extend(page.messages)
        cursor = page.next_cursor
        if cursor is None:
            return found


async def all_messages_async(client: AsyncSFMClient, conversation_id: str) -> list[MessagePublic]:
    """:func:`all_messages` through the async client."""
    found: list[MessagePublic] = []
    cursor: str | None = None
    while True:
        page = await client.list_messages(conversation_id, PAGE, cursor)
        found.extend(page.messages)
        cursor = page.next_cursor
        if cursor is None:
            return found


def batches(wire: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``wire`` messages in order, cut into requests of at most ``MAX_MESSAGES``."""
    return [wire[i : i + MAX_MESSAGES] for i in range(0, len(wire), MAX_MESSAGES)]
