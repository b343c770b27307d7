"""Request and response models of ``POST /context``, shared by the server and the client
(no FastAPI import, like :mod:`somafractalmemory.schemas`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from somafractalmemory.errors import InvalidInputError
from somafractalmemory.schemas import MAX_FILTERS, FilterScalar, RequestModel, SearchSignals
from somafractalmemory.scope_schemas import ScopeFields, ScopeId

# The smallest budget: room for a group header and one dated, attributed line of a few words.
MIN_BUDGET_TOKENS = 32
# The largest: beyond a prompt's share of today's context windows, and beyond what the
# candidates of one request (at most MAX_CANDIDATES hits per source and their windows) fill.
MAX_BUDGET_TOKENS = 32_000
MAX_WINDOW = 10
MAX_TURNS = 50
# POST /context's default min_score: core.fusion.CONTEXT_MIN_SCORE (a unit test keeps them
# equal; this module is the client's too and imports nothing of the server).
CONTEXT_MIN_SCORE = 0.3
QUERY_TURNS = 3  # the recent turns whose text is the query when ``messages`` is given

Include = Literal["memories", "messages"]
Role = Literal["user", "assistant", "system", "tool"]


class ContextTurn(RequestModel):
    """A recent turn of the conversation the context is for."""

    role: Role
    content: str = Field(min_length=1, max_length=100_000)
    name: str | None = Field(default=None, max_length=256)

    @field_validator("content")
    @classmethod
    def _content_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class ContextRequest(RequestModel, ScopeFields):
    """What the context is for (a query, or the conversation's recent turns), and its budget.
    ``user_id``, ``agent_id`` and ``session_id`` keep it to the records of those scopes
    (memories and messages alike); ``conversation_id`` keeps messages to one conversation."""

    query: str | None = Field(
        default=None, min_length=1, max_length=10_000, description="What the agent needs to know"
    )
    messages: list[ContextTurn] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TURNS,
        description=f"The conversation's recent turns instead of a query: the text of the "
        f"last {QUERY_TURNS} is the query",
    )
    budget_tokens: int = Field(
        default=1000,
        ge=MIN_BUDGET_TOKENS,
        le=MAX_BUDGET_TOKENS,
        description="The most tokens `context` may hold, counted by `tokenizer`",
    )
    include: list[Include] | None = Field(
        default=None,
        min_length=1,
        max_length=2,
        description="Which records to draw on; default: every kind this server draws from",
    )
    window: int = Field(
        default=1,
        ge=0,
        le=MAX_WINDOW,
        description="Neighbouring turns on each side of a message hit that come with it",
    )
    format: Literal["text", "messages"] = Field(
        default="text",
        description="`text`: one block; `messages`: OpenAI-style chat messages",
    )
    tokenizer: str | None = Field(
        default=None,
        max_length=256,
        description="Which tokenizer counts the budget (default: the embedding model's own; "
        "others as the server's SOMA_CONTEXT_TOKENIZERS names them)",
    )
    filters: dict[str, FilterScalar] | None = Field(
        default=None, description="Top-level payload fields memories must match, as in search"
    )
    conversation_id: ScopeId | None = Field(
        default=None,
        description="Only messages of this conversation (memories are not in conversations)",
    )
    min_score: float | None = Field(
        default=CONTEXT_MIN_SCORE,
        ge=0.0,
        le=1.0,
        description=f"Only records whose relevance score (in [0, 1], as search returns it) is "
        f"at least this; default {CONTEXT_MIN_SCORE}, so an off-topic query packs nothing "
        f'(README, "Scores and min_score"); null: no threshold',
    )

    @field_validator("query")
    @classmethod
    def _query_not_blank(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or "\x00" in value):
            raise ValueError("must not be blank nor contain NUL characters")
        return value

    @field_validator("filters")
    @classmethod
    def _few_filters(cls, value: dict[str, FilterScalar] | None) -> dict[str, FilterScalar] | None:
        if value is not None and len(value) > MAX_FILTERS:
            raise ValueError(f"at most {MAX_FILTERS} filters")
        return value

    def query_text(self) -> str:
        """The text searched for: the query, or the last turns' contents; 422 naming
        ``query`` unless exactly one of the two was given."""
        if (self.query is None) == (self.messages is None):
            raise InvalidInputError("give either query or messages", "query")
        if self.query is not None:
            return self.query
        assert self.messages is not None
        return "\n".join(m.content for m in self.messages[-QUERY_TURNS:])[:10_000]


class ChatMessage(BaseModel):
    """An OpenAI-style chat message of the ``messages`` format."""

    role: Role
    content: str


class ContextSource(BaseModel):
    """A hit the context holds; ``truncated`` when its text was cut to fit."""

    kind: Literal["memory", "message"]
    key: str = Field(description="The memory's coordinate, or the message's id")
    conversation_id: str | None
    score: float
    signals: SearchSignals = Field(
        description="Rank and raw score in each signal that found the hit (memory search's "
        "`signals`: `vector`, `keyword` ranks, `link` depth, `vector_score` cosine, "
        "`keyword_score` ts_rank_cd), for memories and messages alike"
    )
    truncated: bool


class ContextResponse(BaseModel):
    """A prompt-ready block of the most relevant records, within the budget."""

    context: str | list[ChatMessage]
    tokens: int = Field(description="Tokens of `context` as returned (messages: of their content)")
    budget_tokens: int
    tokenizer: str = Field(description="The tokenizer that counted `tokens`")
    sources: list[ContextSource] = Field(description="The hits it holds, best first")
    truncated: bool = Field(
        description="Whether the budget left something out or cut the top hit's text"
    )
