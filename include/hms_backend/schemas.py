"""Request bodies of the HMS routes.

The services are lenient the way the real HMS services are: each names the fields it needs and
keeps any other field as sent (extra="allow"), so callers can add context without a new release.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from hms_backend.faults import NO_BODY_STATUSES, UNTIL_CLEARED

Weekday = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
Level = Literal["low", "normal", "high"]
ProposalId = Annotated[str, Field(min_length=1, max_length=64)]
Text = Annotated[str, Field(min_length=1)]


class OpenRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    def as_sent(self) -> dict[str, Any]:
        """The body as the caller sent it: no defaults added."""
        return self.model_dump(mode="json", exclude_unset=True)


class GovernedProposal(OpenRecord):
    id: ProposalId
    day: Weekday | None = None
    impact: Level | None = None


class ValidationRequest(BaseModel):
    proposal: GovernedProposal


class ReviewDecision(BaseModel):
    approved: StrictBool
    reviewer: Annotated[str, Field(min_length=1, max_length=200)]
    reason: str | None = None


class PolicyProposal(OpenRecord):
    id: ProposalId
    rule: dict[str, Any] | str


class Notification(OpenRecord):
    message: Text
    proposalId: ProposalId | None = None


class AuditEntry(OpenRecord):
    proposalId: ProposalId
    action: Text
    outcome: Text


class BacklogProposal(OpenRecord):
    id: ProposalId

    @field_validator("id")
    @classmethod
    def addressable(cls, value: str) -> str:
        # Its entry is marked through /backlog/proposals/{id}/…: an id no such path can name would
        # stay pending for ever.
        if "/" in value or value in (".", "..") or any(ord(c) < 32 for c in value):
            raise ValueError("must be usable as one URL path segment: no '/', no control characters, not '.' or '..'")
        return value


class TakenMark(BaseModel):
    run_id: str | None = None


class RejectedMark(BaseModel):
    reason: Text
    # Where the queued proposal holds values that must not be kept (credential-like keys, as dotted
    # paths with [n] for list items, e.g. `metadata.auth.api_key`): replaced by "[redacted]".
    redact: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(default_factory=list, max_length=1000)


# A media type and its parameters, in printable ASCII: the value becomes a header as it is.
MEDIA_TYPE = r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(;[ -~]*)?$"


class FaultSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    route: Annotated[str, Field(pattern=r"^/")]
    method: Literal["GET", "POST", "PUT", "DELETE"] = "POST"
    status: Annotated[int, Field(ge=200, le=599)] | None = None
    times: Annotated[int, Field(ge=UNTIL_CLEARED)] = 1
    latency_ms: Annotated[int, Field(ge=0, le=60_000)] = 0
    rate: Annotated[float, Field(gt=0, le=1)] = 1.0
    body: Annotated[str, Field(max_length=1_048_576)] | None = None
    content_type: Annotated[str, Field(max_length=200, pattern=MEDIA_TYPE)] = "application/json"
    hold_answer_ms: Annotated[int, Field(ge=0, le=60_000)] = 0

    @model_validator(mode="after")
    def asks_for_something(self) -> FaultSpec:
        if self.times == 0:
            raise ValueError(f"times must be at least 1, or {UNTIL_CLEARED} for every call until cleared")
        if self.status is None and self.body is None and self.latency_ms == 0 and self.hold_answer_ms == 0:
            raise ValueError("a fault needs a status, a body, a latency_ms or a hold_answer_ms")
        if self.hold_answer_ms and (self.status is not None or self.body is not None):
            raise ValueError(
                "hold_answer_ms holds the real answer, so it cannot come with a status or a body that answer instead"
            )
        if self.body is not None and self.status in NO_BODY_STATUSES:
            raise ValueError(f"a {self.status} answer has no body")
        if self.body is not None and self.status is None:
            self.status = 200  # a body alone: a success that says something unexpected
        return self
