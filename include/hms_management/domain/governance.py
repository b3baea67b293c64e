"""What the HMS Governance Layer's answers mean for a proposal, read strictly (fail closed).

Only an explicit `approved` lets a proposal change live policy. Any answer that is not one of the
contract's (design.md §4: 200 approved, 400 denied with a reason, 202 review, and a decision record
whose status is approved, denied, review or revoked) is refused with an error that quotes what was
answered: an unknown status, a missing field, a body that is not a JSON object, an HTML page.

Before each step that calls an HMS service, governance is asked again (design.md §9, `read_check`):
only an explicit `approved` lets that call go; `revoked` ends the proposal (a business outcome, who
and why recorded), `suspended` holds it until the service's suspension is lifted, and anything
else is refused, quoted.

A review has a deadline fixed by the decision itself — its creation time, when governance put the
proposal in review, plus the review timeout — so retries, re-drives and restarts never move it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from hms_management.domain.services import PermanentServiceError

APPROVED = "approved"
DENIED = "denied"
REVIEW = "review"
REVOKED = "revoked"
SUSPENDED = "suspended"
REVIEW_TIMEOUT = "review_timeout"
# What a decision record of the governance service may say; review_timeout is the Management
# Layer's own verdict on a review that outlived its deadline.
RECORDED_STATUSES = (APPROVED, DENIED, REVIEW, REVOKED)


class GovernanceAnswerError(PermanentServiceError):
    """Governance answered something that is not a decision: the proposal goes no further."""


@dataclass(frozen=True)
class Decision:
    status: str  # approved | denied | review | review_timeout
    reason: str
    decision_id: str | None = None
    reviewer: str | None = None
    created_at: str | None = None  # ISO 8601: when governance put the proposal in review
    decided_at: str | None = None
    deadline: str | None = None  # ISO 8601: a review's end, fixed by created_at
    revoked_by: str | None = None
    revoked_at: str | None = None
    # The reviewer's own words, kept apart from `reason` (which a revocation replaces).
    review_reason: str | None = None

    @property
    def in_review(self) -> bool:
        return self.status == REVIEW

    def revoked(self, *, by: str | None, at: str | None, why: str | None) -> Decision:
        """The same decision, revoked: who, when and why become its reason."""
        return replace(self, status=REVOKED, revoked_by=by, revoked_at=at, reason=(
            f"revoked by {by or 'governance'} at {at or 'an unknown time'}: {why or 'no reason given'}"))

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


def read_validation(status: int, body: Any, *, text: str = "") -> Decision:
    """The answer of POST /gov/validate: 200 approved, 400 denied, 202 in review; anything else refused."""
    answer = _object(status, body, text)
    if status == 400:
        reason = answer.get("error")
        if not isinstance(reason, str) or not reason.strip():
            raise _refused(status, answer, "a denial (400) must say why in `error`")
        return Decision(DENIED, reason, _decision_id(answer, status, required=False),
                        created_at=_text(answer, "created_at"))
    expected = {200: APPROVED, 202: REVIEW}.get(status)
    if expected is None:
        raise _refused(status, answer, "not an answer of the governance contract (200, 202 or 400)")
    if answer.get("status") != expected:
        raise _refused(status, answer, f"a {status} must say status {expected!r}")
    return Decision(expected, _reason(answer, expected), _decision_id(answer, status, required=True),
                    created_at=_text(answer, "created_at"))


def read_decision_record(body: Any, *, decision_id: str, text: str = "") -> Decision:
    """A decision record (GET /gov/decisions/{id}): approved, denied or still in review."""
    record = _object(200, body, text)
    status = record.get("status")
    if status not in RECORDED_STATUSES:
        raise _refused(200, record, f"decision {decision_id} has no status of the contract "
                                    f"({', '.join(RECORDED_STATUSES)})")
    reviewer = _text(record, "reviewer")
    reason = _text(record, "reason") or f"{status} by {reviewer or 'a reviewer'}"
    decision = Decision(status, reason, decision_id, reviewer=reviewer, created_at=_text(record, "created_at"),
                        decided_at=_text(record, "decided_at"),
                        review_reason=_text(record, "reason") if reviewer else None)
    if status == REVOKED:
        return replace(decision, status=APPROVED).revoked(by=_text(record, "revoked_by"),
                                                          at=_text(record, "revoked_at"),
                                                          why=_text(record, "revoke_reason"))
    return decision


def review_deadline(decision: Decision, timeout: timedelta) -> datetime:
    """When a review ends: its creation time plus the timeout. No creation time, no deadline: refused."""
    try:
        created = datetime.fromisoformat(decision.created_at or "")
    except ValueError:
        raise GovernanceAnswerError(
            f"governance gave decision {decision.decision_id} no valid creation time "
            f"(created_at {decision.created_at!r}): the review deadline cannot be fixed") from None
    if created.tzinfo is None:
        raise GovernanceAnswerError(
            f"decision {decision.decision_id}: created_at {decision.created_at!r} has no time zone")
    return created + timeout


def within_deadline(decision: Decision, *, now: datetime, timeout: timedelta) -> Decision:
    """A reviewed decision as it stands at `now`: still in review, decided in time, or timed out
    (nobody decided before the deadline, or the decision came after it; a decision without a
    decision time counts as taken now)."""
    deadline = review_deadline(decision, timeout)
    decided = replace(decision, deadline=deadline.isoformat())
    if decision.status == REVOKED:  # revoked while in review: governance withdrew it, whatever the time
        return decided
    if decision.status == REVIEW:
        if now < deadline:
            return decided
        return replace(decided, status=REVIEW_TIMEOUT, reason=f"no reviewer decided on {decision.decision_id} "
                                                              f"before the review deadline {deadline.isoformat()}")
    if (_when(decision.decided_at) or now) > deadline:
        return replace(decided, status=REVIEW_TIMEOUT,
                       reason=f"{decision.status} by {decision.reviewer or 'a reviewer'} at {decision.decided_at}, "
                              f"after the review deadline {deadline.isoformat()}")
    return decided


@dataclass(frozen=True)
class Check:
    """Governance's answer before one step: approved, revoked (by whom, when, why) or suspended (the
    step's service, by whom, since when, why)."""

    status: str
    reason: str | None = None
    by: str | None = None
    at: str | None = None
    service: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


def read_check(status: int, body: Any, *, text: str = "") -> Check:
    """The answer of POST /gov/check, read strictly: a 200 that says approved, revoked or suspended with
    what the contract says comes with it; anything else (a denial or review at this point, an unknown
    status, a missing field, another status code, a body that is not a JSON object) is refused."""
    answer = _object(status, body, text)
    if status != 200:
        raise _refused(status, answer, "a check before a step answers 200")
    said = answer.get("status")
    if said == APPROVED:
        return Check(APPROVED)
    if said == REVOKED:
        fields = {key: _text(answer, key) for key in ("reason", "by", "at")}
        if None in fields.values():
            raise _refused(status, answer, "a revocation says why (reason), by whom (by) and when (at)")
        return Check(REVOKED, **fields)
    if said == SUSPENDED:
        fields = {key: _text(answer, key) for key in ("service", "reason", "by", "at")}
        if None in fields.values():
            raise _refused(status, answer, "a suspension names its service, reason, by and at")
        return Check(SUSPENDED, **fields)
    raise _refused(status, answer, f"only {APPROVED!r} lets the step go on (or {REVOKED!r} / {SUSPENDED!r} "
                                   "with their details)")


def _object(status: int, body: Any, text: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        shown = text[:200] if text else json.dumps(body)[:200]
        raise GovernanceAnswerError(f"governance answered {status} with a body that is not a JSON object: {shown!r}")
    return body


def _refused(status: int, answer: dict[str, Any], why: str) -> GovernanceAnswerError:
    return GovernanceAnswerError(f"governance answered {status} {json.dumps(answer)[:300]}: {why}; "
                                 "refused (fail closed)")


def _decision_id(answer: dict[str, Any], status: int, *, required: bool) -> str | None:
    value = answer.get("decision_id")
    if isinstance(value, str) and value:
        return value
    if required or value is not None:
        raise _refused(status, answer, "no decision_id")
    return None


def _reason(answer: dict[str, Any], status: str) -> str:
    reason = answer.get("reason")
    return reason if isinstance(reason, str) and reason else f"governance: {status}"


def _text(answer: dict[str, Any], key: str) -> str | None:
    value = answer.get(key)
    return value if isinstance(value, str) and value else None


def _when(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
