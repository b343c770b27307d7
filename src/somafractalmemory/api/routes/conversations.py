"""Conversations and their messages (records of ``("conversations", <id>)``), and the
erasure of one end user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Response, status

from somafractalmemory.api.deps import ScopeQuery, StackDep, TenantDep
from somafractalmemory.api.strict import api_router
from somafractalmemory.core.erasure import erase_user
from somafractalmemory.core.messages import NewMessage
from somafractalmemory.message_schemas import (
    CONVERSATION_ID,
    ConversationDeleted,
    ConversationList,
    ConversationPublic,
    MessageHit,
    MessagePage,
    MessageSearchRequest,
    MessageSearchResponse,
    MessagesPost,
    MessagesPosted,
    MessageStatus,
    UserErased,
    message_public,
)
from somafractalmemory.models import Scopes
from somafractalmemory.schemas import ErrorResponse, SearchSignals
from somafractalmemory.scope_schemas import MAX_SCOPE_ID
from somafractalmemory.stores.messages_postgres import StoredMessage

router = api_router("conversations", (400, 401, 404, 409, 413, 422, 503))

ConversationPath = Annotated[
    str, Path(min_length=1, max_length=MAX_SCOPE_ID, description=CONVERSATION_ID)
]
CursorQuery = Annotated[str | None, Query(max_length=400, pattern=r"^[A-Za-z0-9_-]*$")]


def _public(message: StoredMessage) -> dict[str, object]:
    return message_public(message, message.conversation_id).model_dump()


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=MessagesPosted,
    responses={
        200: {"model": MessagesPosted, "description": "Every message was stored before"},
        409: {"model": ErrorResponse, "description": "An id reused with other content"},
    },
)
def post_messages(
    conversation_id: ConversationPath,
    body: MessagesPost,
    tenant: TenantDep,
    stack: StackDep,
    response: Response,
) -> MessagesPosted:
    """Add messages to a conversation (201; 200 when every one was stored before): each one a
    record, embedded and full-text indexed; the same messages again are ``unchanged``."""
    messages = [NewMessage(m.role, m.content, m.id, m.name, m.created_at) for m in body.messages]
    answers = stack.messages.post(tenant, conversation_id, body.scopes(), messages)
    if all(state == "unchanged" for _key, state in answers):
        response.status_code = status.HTTP_200_OK
    return MessagesPosted(
        conversation_id=conversation_id,
        messages=[MessageStatus(id=key, status=state) for key, state in answers],
    )


@router.get("/conversations/{conversation_id}/messages", response_model=MessagePage)
def list_messages(
    conversation_id: ConversationPath,
    tenant: TenantDep,
    stack: StackDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: CursorQuery = None,
) -> MessagePage:
    """A conversation's messages in conversation order (time said, then posting order)."""
    page, next_cursor = stack.messages.page(tenant, conversation_id, cursor, limit)
    return MessagePage.model_validate(
        {"messages": [_public(m) for m in page], "next_cursor": next_cursor}
    )


@router.get("/conversations", response_model=ConversationList)
def list_conversations(
    tenant: TenantDep,
    stack: StackDep,
    user_id: ScopeQuery = None,
    agent_id: ScopeQuery = None,
    session_id: ScopeQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: CursorQuery = None,
) -> ConversationList:
    """The conversations with messages of the given scopes, newest last message first."""
    scopes = Scopes(user_id, agent_id, session_id)
    found, next_cursor = stack.messages.conversations(tenant, scopes, limit, cursor)
    return ConversationList(
        conversations=[ConversationPublic.model_validate(c, from_attributes=True) for c in found],
        next_cursor=next_cursor,
    )


@router.delete("/conversations/{conversation_id}", response_model=ConversationDeleted)
def delete_conversation(
    conversation_id: ConversationPath,
    tenant: TenantDep,
    stack: StackDep,
    purge: Annotated[
        bool, Query(description="Also erase every version of its messages from the history")
    ] = False,
) -> ConversationDeleted:
    """Delete every message of a conversation from every store (404 when it has none)."""
    return ConversationDeleted(
        deleted=stack.messages.delete_conversation(tenant, conversation_id, purge)
    )


@router.post("/conversations/search", response_model=MessageSearchResponse)
def search_messages(
    body: MessageSearchRequest, tenant: TenantDep, stack: StackDep
) -> MessageSearchResponse:
    """Recall messages by meaning, keywords or both, one hit per message, best first."""
    hits = stack.messages.search(
        tenant,
        body.query,
        body.mode,
        body.top_k,
        body.scopes(),
        body.conversation_id,
        dict(body.filters or {}),
        body.min_score,
    )
    results = []
    for hit in hits:
        item = hit.item
        public = message_public(item, item.namespace[1] if len(item.namespace) > 1 else "")
        signals = SearchSignals.model_validate(hit.signals, from_attributes=True)
        results.append(MessageHit(**public.model_dump(), score=hit.score or 0.0, signals=signals))
    return MessageSearchResponse(results=results)


@router.delete("/users/{user_id}", response_model=UserErased)
def erase_end_user(
    user_id: Annotated[str, Path(min_length=1, max_length=MAX_SCOPE_ID)],
    tenant: TenantDep,
    stack: StackDep,
) -> UserErased:
    """Erase all of one end user's data in the tenant: memories, messages and items carrying
    the ``user_id``, their vectors, cached copies and every history version."""
    erased = erase_user(stack.memories, stack.messages, tenant, user_id)
    return UserErased(
        user_id=user_id,
        memories=erased.memories,
        messages=erased.messages,
        items=erased.items,
        versions=erased.versions,
    )
