"""Request and response models of conversations, messages and end users.

No FastAPI import here: the light client uses these models too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, field_validator

from somafractalmemory.schemas import MAX_TOP_K, FilterScalar, RequestModel, SearchSignals
from somafractalmemory.scope_schemas import ScopeFields, ScopeId, ScopePublic

MAX_MESSAGES = 500  # messages in one request
MAX_CONTENT = 50_000  # characters of one message
Role = Literal["user", "assistant", "system", "tool"]
CONVERSATION_ID = (
    "The conversation: 1 to 256 characters, no '.' (its messages are the records of the "
    "namespace ['conversations', conversation_id])"
)


class MessageIn(RequestModel):
    """One message of a conversation."""

    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        pattern=r"^[^#\x00][^\x00]*$",
        description="Your id of the message (idempotence: posting it again stores nothing); "
        "none: the service assigns '#<sequence>'. Must not start with '#'.",
    )
    role: Role = Field(description="Who spoke")
    name: str | None = Field(
        default=None, min_length=1, max_length=256, description="The speaker's name, if any"
    )
    content: str = Field(
        min_length=1,
        max_length=MAX_CONTENT,
        description="The text; embedded in overlapping chunks of 160 words when longer, "
        "and found as one message",
    )
    created_at: AwareDatetime | None = Field(
        default=None,
        description="When it was said (RFC 3339); conversation order is this time, then "
        "posting order. None: when it was stored.",
    )

    @field_validator("content")
    @classmethod
    def _content_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class MessagesPost(RequestModel, ScopeFields):
    """Messages to add to a conversation, with the scopes they all belong to."""

    messages: list[MessageIn] = Field(
        min_length=1, max_length=MAX_MESSAGES, description=f"1 to {MAX_MESSAGES} messages"
    )


class MessageStatus(BaseModel):
    """What posting did to one message: ``created``, or ``unchanged`` (stored before)."""

    id: str
    status: Literal["created", "unchanged"]


class MessagesPosted(BaseModel):
    """One status per posted message, in the request's order."""

    conversation_id: str
    messages: list[MessageStatus]


class MessagePublic(ScopePublic):
    """A stored message."""

    id: str
    conversation_id: str
    role: str
    name: str | None = None
    content: str
    created_at: datetime


class MessagePage(BaseModel):
    """A page of a conversation's messages in conversation order."""

    messages: list[MessagePublic]
    next_cursor: str | None = None


class ConversationPublic(BaseModel):
    """A conversation: how many messages, when the first and the last were said."""

    conversation_id: str
    messages: int
    first_at: datetime
    last_at: datetime
    user_id: str | None = None
    agent_id: str | None = None


class ConversationList(BaseModel):
    """Conversations, newest (last message) first."""

    conversations: list[ConversationPublic]
    next_cursor: str | None = None


class ConversationDeleted(BaseModel):
    """How many messages a conversation delete removed."""

    deleted: int


class MessageSearchRequest(RequestModel, ScopeFields):
    """Recall messages by meaning, keywords or both (the memory search's modes and fusion);
    one hit per message."""

    query: str = Field(min_length=1, max_length=10_000)
    mode: Literal["vector", "keyword", "hybrid"] = "hybrid"
    top_k: int = Field(default=10, ge=1, le=MAX_TOP_K)
    conversation_id: ScopeId | None = Field(
        default=None, description="Only this conversation's messages"
    )
    filters: dict[str, FilterScalar] | None = Field(
        default=None,
        max_length=16,
        description="Fields of the message's value that must equal these (e.g. role)",
    )
    min_score: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Only messages at least this relevant on memory search's calibrated "
        "scale (0 to 1; off by default): in keyword and hybrid mode the score itself, in "
        'vector mode the calibrated cosine of the score (README, "Scores and min_score").',
    )

    @field_validator("query")
    @classmethod
    def _query_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class MessageHit(MessagePublic):
    """A recalled message, its score (higher is more relevant) and the signals that found
    it (rank and raw score in each: cosine, ``ts_rank_cd``)."""

    score: float
    signals: SearchSignals = Field(default_factory=SearchSignals)


class MessageSearchResponse(BaseModel):
    """Recalled messages, best first."""

    results: list[MessageHit]


class UserErased(BaseModel):
    """What erasing an end user removed from the tenant."""

    user_id: str
    memories: int
    messages: int
    items: int
    versions: int = Field(description="History versions erased")


def message_public(record: Any, conversation_id: str) -> MessagePublic:
    """The API view of a message's record (a stored message, an item a search found): the
    role, name and content of its value, its key as the id, its time and scopes."""
    value = record.value
    return MessagePublic(
        role=str(value.get("role")),
        name=value.get("name"),
        content=str(value.get("content")),
        id=record.key,
        conversation_id=conversation_id,
        created_at=record.created_at,
        user_id=record.user_id,
        agent_id=record.agent_id,
        session_id=record.session_id,
    )
