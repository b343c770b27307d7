"""Conversation, message, end-user and scope calls: one function per client method, as in
:mod:`._calls`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from somafractalmemory.client._calls import Call, Retry, parse
from somafractalmemory.message_schemas import (
    ConversationDeleted,
    ConversationList,
    MessageIn,
    MessagePage,
    MessageSearchResponse,
    MessagesPosted,
    UserErased,
)
from somafractalmemory.scope_schemas import ScopeDeleted, ScopeValues

MessageArg = MessageIn | Mapping[str, Any]


def _segment(value: str) -> str:
    return quote(value, safe="")


def _scopes(**scopes: str | None) -> dict[str, str]:
    return {k: v for k, v in scopes.items() if v is not None}


def add_messages(
    conversation_id: str,
    messages: Sequence[MessageArg],
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    session_id: str | None = None,
) -> Call[MessagesPosted]:
    """Add messages (``{"id", "role", "content", "name"?, "created_at"?}``) to a
    conversation (``POST /conversations/{id}/messages``). Idempotent by message id: the same
    messages again answer ``unchanged``; the same id with other content raises
    :class:`Conflict`."""
    body: dict[str, Any] = {
        "messages": [
            m.model_dump(mode="json", exclude_none=True) if isinstance(m, MessageIn) else dict(m)
            for m in messages
        ],
        **_scopes(user_id=user_id, agent_id=agent_id, session_id=session_id),
    }
    return Call(
        "POST",
        f"/conversations/{_segment(conversation_id)}/messages",
        lambda r: parse(MessagesPosted, r),
        Retry.WRITE,
        body=body,
    )


def list_messages(
    conversation_id: str, limit: int = 100, cursor: str | None = None
) -> Call[MessagePage]:
    """One page of a conversation's messages in conversation order; pass ``next_cursor``
    back for the next."""
    params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
    return Call(
        "GET",
        f"/conversations/{_segment(conversation_id)}/messages",
        lambda r: parse(MessagePage, r),
        Retry.READ,
        params=params,
    )


def list_conversations(
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    session_id: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Call[ConversationList]:
    """The conversations with messages of these scopes, newest last message first."""
    params: dict[str, Any] = {
        "limit": limit,
        **_scopes(user_id=user_id, agent_id=agent_id, session_id=session_id, cursor=cursor),
    }
    return Call(
        "GET", "/conversations", lambda r: parse(ConversationList, r), Retry.READ, params=params
    )


def delete_conversation(conversation_id: str, purge: bool = False) -> Call[ConversationDeleted]:
    """Delete every message of a conversation (with ``purge`` their history too);
    :class:`NotFound` when it has none."""
    return Call(
        "DELETE",
        f"/conversations/{_segment(conversation_id)}",
        lambda r: parse(ConversationDeleted, r),
        Retry.WRITE,
        params={"purge": "true"} if purge else {},
    )


def search_messages(
    query: str,
    top_k: int = 10,
    *,
    mode: str | None = None,
    conversation_id: str | None = None,
    user_id: str | None = None,
    agent_id: str | None = None,
    session_id: str | None = None,
    filters: Mapping[str, Any] | None = None,
    min_score: float | None = None,
) -> Call[MessageSearchResponse]:
    """Recall messages (one hit per message), best first, of one conversation or all, of
    these scopes; ``mode`` is ``vector``, ``keyword`` or ``hybrid`` (the default);
    ``min_score`` (0 to 1, calibrated scale) keeps only messages at least that relevant."""
    body: dict[str, Any] = {
        "query": query,
        "top_k": top_k,
        **_scopes(
            mode=mode,
            conversation_id=conversation_id,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
        ),
    }
    if filters:
        body["filters"] = dict(filters)
    if min_score is not None:
        body["min_score"] = min_score
    return Call(
        "POST",
        "/conversations/search",
        lambda r: parse(MessageSearchResponse, r),
        Retry.READ,
        body=body,
    )


def delete_user(user_id: str) -> Call[UserErased]:
    """Erase all of one end user's data in your tenant (memories, messages, items, their
    vectors, cache and history); answers what went."""
    return Call(
        "DELETE", f"/users/{_segment(user_id)}", lambda r: parse(UserErased, r), Retry.WRITE
    )


def delete_memories(
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    session_id: str | None = None,
    purge: bool = False,
) -> Call[ScopeDeleted]:
    """Delete every memory of the given scopes (at least one, else :class:`InvalidInput`
    naming ``user_id``) from every store (``DELETE /memories``); with ``purge`` their
    history too. Conversation messages and items stay (:meth:`delete_user` erases all)."""
    params: dict[str, Any] = _scopes(user_id=user_id, agent_id=agent_id, session_id=session_id)
    if purge:
        params["purge"] = "true"
    return Call("DELETE", "/memories", lambda r: parse(ScopeDeleted, r), Retry.WRITE, params=params)


def list_scope_values(
    scope: str, *, limit: int = 100, cursor: str | None = None
) -> Call[ScopeValues]:
    """The distinct values of one scope (``"user_id"``, ``"agent_id"`` or ``"session_id"``)
    that the tenant's records carry, in text order; ``next_cursor`` for the next page."""
    params: dict[str, Any] = {"limit": limit, **_scopes(cursor=cursor)}
    return Call(
        "GET",
        f"/scopes/{_segment(scope)}",
        lambda r: parse(ScopeValues, r),
        Retry.READ,
        params=params,
    )
