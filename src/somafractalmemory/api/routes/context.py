"""The context endpoint: a prompt-ready block of the most relevant records in a token budget."""

from __future__ import annotations

from fastapi import APIRouter, Response

from somafractalmemory.api.deps import CallerDep
from somafractalmemory.api.responses import json_response
from somafractalmemory.api.strict import StrictQueryRoute
from somafractalmemory.context_schemas import (
    ChatMessage,
    ContextRequest,
    ContextResponse,
    ContextSource,
)
from somafractalmemory.core.context import Packed
from somafractalmemory.observability.timing import collect_timings, server_timing_header
from somafractalmemory.schemas import ErrorResponse, SearchSignals

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 413, 422, 503)
}
router = APIRouter(
    prefix="/context", tags=["context"], responses=ERRORS, route_class=StrictQueryRoute
)


def to_public(packed: Packed) -> ContextResponse:
    """The API view of a packed context."""
    context = (
        packed.context
        if isinstance(packed.context, str)
        else [ChatMessage.model_validate(m) for m in packed.context]
    )
    return ContextResponse(
        context=context,
        tokens=packed.tokens,
        budget_tokens=packed.budget_tokens,
        tokenizer=packed.tokenizer,
        sources=[
            ContextSource(
                kind=s.kind,
                key=s.key,
                conversation_id=s.conversation_id,
                score=s.score,
                signals=SearchSignals.model_validate(dict(s.signals)),
                truncated=s.truncated,
            )
            for s in packed.sources
        ],
        truncated=packed.truncated,
    )


@router.post("", response_model=ContextResponse)
def build_context(body: ContextRequest, caller: CallerDep) -> Response:
    """Pack the most relevant current records into a prompt-ready block within budget_tokens."""
    tenant = caller.tenant()
    text = body.query_text()
    with collect_timings() as timings:
        packed = caller.stack.context.build(
            tenant,
            text,
            body.budget_tokens,
            include=body.include,
            window=body.window,
            fmt=body.format,
            tokenizer=body.tokenizer,
            filters=body.filters,
            scopes=body.scopes(),
            conversation_id=body.conversation_id,
            min_score=body.min_score,
        )
    return json_response(
        to_public(packed), headers={"Server-Timing": server_timing_header(timings)}
    )
