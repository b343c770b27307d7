"""Where ``POST /context`` gets its candidates, and the builder that packs them.

A :class:`CandidateSource` turns a :class:`ContextQuery` into ranked :class:`Candidate` hits
of one kind of record (``include`` names the kind). :class:`MemoryCandidates` is the source
of memories: a hybrid search of the tenant's current memories (superseded ones left out, as
memory search does by default), of the request's scopes.
:class:`somafractalmemory.core.context_messages.MessageCandidates` is the source of
conversation messages: ``kind="message"`` hits with their neighbouring turns (``window`` on
each side). Both are registered in :func:`somafractalmemory.stack.create_stack`.

Scores of all sources must be comparable (SFM's calibrated hybrid scores, in [0, 1]: core/
fusion.py): the packer orders every hit of every source by score, and ``min_score`` (default
:data:`CONTEXT_MIN_SCORE`) drops the hits of every source below it, so an off-topic query
gets an empty context rather than the least unrelated records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from somafractalmemory.core import fusion
from somafractalmemory.core.context import Candidate, Format, Packed, Turn, check_budget, pack
from somafractalmemory.core.messages import check_conversation_id
from somafractalmemory.core.search import MAX_CANDIDATES as SEARCH_CANDIDATES
from somafractalmemory.core.service import MemoryService
from somafractalmemory.core.tokens import Tokenizers
from somafractalmemory.errors import InvalidInputError
from somafractalmemory.models import Scopes, SearchQuery, SearchScope, Tenant

Include = Literal["memories", "messages"]
MIN_CANDIDATES = 10
# What one signal of a search contributes at most (core.search.MAX_CANDIDATES): more hits
# than a search request may ask for, since short lines fill a large budget.
MAX_CANDIDATES = SEARCH_CANDIDATES
TOKENS_PER_CANDIDATE = 20  # a short dated line; a larger budget asks each source for more
CONTEXT_MIN_SCORE = fusion.CONTEXT_MIN_SCORE


def candidate_limit(budget_tokens: int) -> int:
    """How many hits each source is asked for: enough to fill the budget with short lines."""
    return min(MAX_CANDIDATES, max(MIN_CANDIDATES, budget_tokens // TOKENS_PER_CANDIDATE))


@dataclass(frozen=True)
class ContextQuery:
    """What a source searches for, in which scope, and how many hits it returns.

    ``scopes`` apply to every source (a scope left out matches every record);
    ``conversation_id`` to messages only, ``filters`` (payload fields) to memories only.
    """

    text: str
    limit: int
    window: int = 1
    filters: dict[str, str | int | float | bool] = field(default_factory=dict)
    scopes: Scopes = field(default_factory=Scopes)
    conversation_id: str | None = None
    min_score: float | None = CONTEXT_MIN_SCORE


class CandidateSource(Protocol):
    """Ranked hits of one kind of record for a context query, best first."""

    @property
    def include(self) -> Include:
        """The ``include`` name of the records this source draws on."""
        ...

    def candidates(self, tenant: Tenant, query: ContextQuery) -> list[Candidate]:
        """At most ``query.limit`` hits of the tenant's records, best first; a message hit
        carries up to ``query.window`` neighbouring turns on each side."""
        ...


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


class MemoryCandidates:
    """The tenant's current memories, by a hybrid search of the query."""

    include: Include = "memories"

    def __init__(self, memories: MemoryService) -> None:
        self.memories = memories

    def candidates(self, tenant: Tenant, query: ContextQuery) -> list[Candidate]:
        """Hybrid search hits of ``query.scopes`` as memory candidates: the text is
        ``payload.text`` (else the text the memory was embedded from), the speaker
        ``payload.speaker`` or ``name``, the role ``payload.role``, the date its
        ``created_at``."""
        search = SearchQuery(
            text=query.text,
            vector=None,
            mode="hybrid",
            top_k=query.limit,
            scope=SearchScope(filters=dict(query.filters), scopes=query.scopes),
            min_score=query.min_score,
        )
        found = []
        for hit in self.memories.search(tenant, search):
            payload = hit.memory.payload
            turn = Turn(
                key=hit.memory.coord,
                text=_text(payload.get("text")) or hit.memory.text,
                created_at=hit.memory.created_at,
                speaker=_text(payload.get("speaker")) or _text(payload.get("name")),
                role=_text(payload.get("role")),
            )
            found.append(Candidate("memory", turn, hit.score, asdict(hit.signals)))
        return found


class ContextBuilder:
    """Gathers candidates from its sources and packs them (``POST /context``)."""

    def __init__(self, sources: Sequence[CandidateSource], tokenizers: Tokenizers) -> None:
        self.sources = {source.include: source for source in sources}
        self.tokenizers = tokenizers

    @property
    def includes(self) -> list[Include]:
        """The kinds of records this server draws on (the default ``include``)."""
        return list(self.sources)

    def build(
        self,
        tenant: Tenant,
        text: str,
        budget_tokens: int,
        *,
        include: Sequence[Include] | None = None,
        window: int = 1,
        fmt: Format = "text",
        tokenizer: str | None = None,
        filters: dict[str, str | int | float | bool] | None = None,
        scopes: Scopes | None = None,
        conversation_id: str | None = None,
        min_score: float | None = CONTEXT_MIN_SCORE,
    ) -> Packed:
        """The packed context for ``text``; 422 naming the field for a budget out of range,
        an unknown tokenizer, a malformed ``conversation_id`` or a kind of record this server
        has no source of (checked before anything is searched)."""
        check_budget(budget_tokens)
        if conversation_id is not None:
            check_conversation_id(conversation_id)
        counter = self.tokenizers.get(tokenizer)
        chosen = list(dict.fromkeys(include or self.includes))
        missing = [kind for kind in chosen if kind not in self.sources]
        if missing:
            raise InvalidInputError(
                f"this server draws on {', '.join(self.includes)}, not {', '.join(missing)}",
                "include",
            )
        query = ContextQuery(
            text,
            candidate_limit(budget_tokens),
            window,
            dict(filters or {}),
            scopes or Scopes(),
            conversation_id,
            min_score,
        )
        found = [c for kind in chosen for c in self.sources[kind].candidates(tenant, query)]
        return pack(found, budget_tokens, counter, fmt)
