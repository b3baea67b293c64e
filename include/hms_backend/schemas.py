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
Name = Annotated[str, Field(min_length=1, max_length=200)]  # who did something; a step, a service, a group
Reason = Annotated[str, Field(min_length=1, max_length=1000)]

DEFAULT_SCOPE = "default"  # the scope of a policy that names none: the seed's single rule


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
    reviewer: Name
    reason: str | None = None


class Revocation(BaseModel):
    reason: Reason
    by: Name


class StepCheck(BaseModel):
    decision_id: Text
    proposal_id: ProposalId
    step: Name  # the Management Layer's step, e.g. apply_policy
    service: Name  # the HMS service the step is about to call; suspensions match on it


class Suspension(BaseModel):
    reason: Reason
    by: Name


class PolicyProposal(OpenRecord):
    id: ProposalId
    rule: dict[str, Any] | str
    # Absent: DEFAULT_SCOPE. Not null: a policy always lands in one scope.
    scope: Name = DEFAULT_SCOPE

    @field_validator("scope")
    @classmethod
    def addressable(cls, value: str) -> str:
        # Read back through GET /svc/policy/scopes/{scope}: clients drop "." and ".." segments from
        # a URL, so such a scope could be written but never read.
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("must have no control characters")
        if any(segment in (".", "..") for segment in value.split("/")):
            raise ValueError("must have no '.' or '..' between slashes: a URL could not name it")
        return value


class Notification(OpenRecord):
    message: Text
    proposalId: ProposalId | None = None
    group: Name | None = None  # the officer group told, for GET /notifications?group=


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
MAX_LIMIT_PER_SECOND = 100_000
DEFAULT_RETRY_AFTER_S = 1.0
MAX_RETRY_AFTER_S = 3600


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
    limit_per_second: Annotated[int, Field(ge=1, le=MAX_LIMIT_PER_SECOND)] | None = None
    retry_after_s: Annotated[float, Field(gt=0, le=MAX_RETRY_AFTER_S)] | None = None
    # Only the calls for this policy scope (a body's `scope`; `default` when it names none).
    scope: Annotated[str, Field(min_length=1, max_length=200)] | None = None

    @model_validator(mode="after")
    def asks_for_something(self) -> FaultSpec:
        if self.times == 0:
            raise ValueError(f"times must be at least 1, or {UNTIL_CLEARED} for every call until cleared")
        if self.limit_per_second is not None:
            return self._checked_rate_limit()
        if self.retry_after_s is not None:
            raise ValueError("retry_after_s is what a rate limit's 429 says: it needs a limit_per_second")
        if self.status is None and self.body is None and self.latency_ms == 0 and self.hold_answer_ms == 0:
            raise ValueError("a fault needs a status, a body, a latency_ms, a hold_answer_ms or a limit_per_second")
        if self.hold_answer_ms and (self.status is not None or self.body is not None):
            raise ValueError(
                "hold_answer_ms holds the real answer, so it cannot come with a status or a body that answer instead"
            )
        if self.body is not None and self.status in NO_BODY_STATUSES:
            raise ValueError(f"a {self.status} answer has no body")
        if self.body is not None and self.status is None:
            self.status = 200  # a body alone: a success that says something unexpected
        return self

    def _checked_rate_limit(self) -> FaultSpec:
        if self.status is not None or self.body is not None or self.hold_answer_ms:
            raise ValueError(
                "limit_per_second answers the calls beyond the limit with 429 and lets the others through to the"
                " handler, so it cannot come with a status, a body or a hold_answer_ms (a latency_ms it can)"
            )
        if "times" in self.model_fields_set and self.times != UNTIL_CLEARED:
            raise ValueError("times does not apply to a rate limit: it holds for every call until DELETE /admin/faults")
        if self.rate != 1.0:
            raise ValueError("rate does not apply to a rate limit: every call counts towards it")
        self.times = UNTIL_CLEARED
        if self.retry_after_s is None:
            self.retry_after_s = DEFAULT_RETRY_AFTER_S
        return self
