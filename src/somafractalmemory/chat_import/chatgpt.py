"""ChatGPT's data export: ``conversations.json``, a list of conversations whose messages are a
tree (``mapping``: node id -> ``{"message", "parent", "children"}``), each edit or regeneration
a branch.

A conversation is read along the branch the user last saw: from ``current_node`` up through
the parents to the root, then in reverse (other branches are left out; with no
``current_node``, the branch ending at the newest leaf). Nodes without a message, messages
hidden from the conversation (``metadata.is_visually_hidden_from_conversation``) and messages
with no text (the empty system root, an image alone) are not messages of the conversation.
A message's text is the string parts of its ``content.parts`` (else ``content.text``), joined
by blank lines.
"""

from __future__ import annotations

from typing import Any

from somafractalmemory.chat_import.model import (
    ROLES,
    ChatMessage,
    Conversation,
    Parsed,
    Problem,
    epoch_time,
    parse_export,
    required_text,
    text_of,
)


def parse(data: Any) -> Parsed:
    """The conversations of a ChatGPT export (its parsed ``conversations.json``)."""
    return parse_export(data, "ChatGPT", _conversation)


def _conversation(item: Any, where: str, problems: list[Problem]) -> Conversation:
    if not isinstance(item, dict):
        raise ValueError("not an object")
    conversation_id = text_of(item.get("conversation_id")) or text_of(item.get("id"))
    if conversation_id is None:
        raise ValueError("no conversation_id")
    mapping = item.get("mapping")
    if not isinstance(mapping, dict) or not mapping:
        raise ValueError("no mapping of messages")
    messages = []
    for node_id in _branch(mapping, item.get("current_node")):
        node = mapping[node_id]
        try:
            message = _message(node.get("message"))
        except ValueError as exc:
            problems.append(Problem(f"{where}.mapping[{node_id}]", str(exc)))
            continue
        if message is not None:
            messages.append(message)
    return Conversation(conversation_id, messages, text_of(item.get("title")))


def _branch(mapping: dict[str, Any], current: Any) -> list[str]:
    """The node ids from the root to ``current`` (or to the newest leaf), in order."""
    if not isinstance(current, str) or current not in mapping:
        leaves = [k for k, n in mapping.items() if isinstance(n, dict) and not n.get("children")]
        if not leaves:
            raise ValueError("the mapping has no leaf")
        current = max(leaves, key=lambda k: (_created(mapping[k]), k))
    path: list[str] = []
    seen: set[str] = set()
    node_id: Any = current
    while isinstance(node_id, str) and node_id in mapping:
        if node_id in seen:
            raise ValueError(f"the mapping has a cycle through {node_id}")
        seen.add(node_id)
        node = mapping[node_id]
        if not isinstance(node, dict):
            raise ValueError(f"mapping[{node_id}] is not an object")
        path.append(node_id)
        node_id = node.get("parent")
    return path[::-1]


def _created(node: dict[str, Any]) -> float:
    message = node.get("message")
    created = message.get("create_time") if isinstance(message, dict) else None
    return float(created) if isinstance(created, int | float) else 0.0


def _message(message: Any) -> ChatMessage | None:
    """The node's message, None when it is not one of the conversation's; ValueError when it
    cannot be read."""
    if message is None:
        return None
    if not isinstance(message, dict):
        raise ValueError("message is not an object")
    metadata = message.get("metadata")
    if isinstance(metadata, dict) and metadata.get("is_visually_hidden_from_conversation"):
        return None
    author = message.get("author")
    if not isinstance(author, dict):
        raise ValueError("message has no author")
    role = author.get("role")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    message_id = required_text(message.get("id"), "message has no id")
    content = _text(message.get("content"))
    if content is None:
        return None
    return ChatMessage(
        id=message_id,
        role=str(role),
        content=content,
        name=text_of(author.get("name")),
        created_at=epoch_time(message.get("create_time")),
    )


def _text(content: Any) -> str | None:
    if not isinstance(content, dict):
        return None
    parts = content.get("parts")
    if isinstance(parts, list):
        texts = [p for p in parts if text_of(p)]
        return "\n\n".join(texts) if texts else None
    return text_of(content.get("text"))
