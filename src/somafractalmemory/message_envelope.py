"""Framework messages that a conversation message cannot hold as plain role and text.

The conversations API stores ``role``, ``name`` and ``content`` (non-blank text). A chat
framework's message may carry more (tool calls, a list of content parts, metadata) or be no
chat message at all (a function call of an agent run). Such a message is stored with its whole
serialised form as the content: ``{"<tag>": <the framework's dict>}`` as JSON, where the tag
names the framework (``"langchain_message"``, ``"openai_agents_item"``). Reading decodes a
content that is exactly such a JSON object; any other content is plain text.
"""

from __future__ import annotations

import json
from typing import Any

from somafractalmemory.message_schemas import MAX_CONTENT


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
