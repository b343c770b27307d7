"""The scope fields of requests and answers: whose a record is (end user, agent, session).

No FastAPI import here: the light client uses these models too.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from somafractalmemory.models import Scopes

# At most 256 characters: Milvus filters compare them inside the entities' JSON field.
MAX_SCOPE_ID = 256
ScopeId = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_SCOPE_ID, pattern=r"^[^\x00]+$")
]

USER_ID = "The end user the record belongs to (DELETE /users/{user_id} erases all of them)"
AGENT_ID = "The agent that wrote or owns the record"
SESSION_ID = "The session (of a user with an agent) the record came from"


class ScopeFields(BaseModel):
    """Optional scopes: on a write, whose the record is; on a search or listing, only records
    of these scopes (a scope left out matches every record)."""

    user_id: ScopeId | None = Field(default=None, description=USER_ID)
    agent_id: ScopeId | None = Field(default=None, description=AGENT_ID)
    session_id: ScopeId | None = Field(default=None, description=SESSION_ID)

    def scopes(self) -> Scopes:
        """The scopes as the domain takes them."""
        return Scopes(self.user_id, self.agent_id, self.session_id)


class ScopePublic(BaseModel):
    """The scopes a stored record carries (null: none)."""

    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None


class ScopeDeleted(BaseModel):
    """How many records a delete by scope removed (and history versions, with ``purge``)."""

    deleted: int
    purged_versions: int | None = None


class ScopeValues(BaseModel):
    """The distinct values of one scope that the tenant's records carry (memories, items and
    conversation messages), in text order, a page at a time."""

    scope: Literal["user_id", "agent_id", "session_id"]
    values: list[str]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null after the last"
    )
