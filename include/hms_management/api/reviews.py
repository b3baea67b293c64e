"""Deciding and revoking from the api-server: who may, on what, and what happens.

Only the users named in `[hms_management] reviewers` may decide or revoke (Airflow's roles are
fixed; this is the Management Layer's own check on top), never on a proposal they submitted
(four-eyes). A review is decided while the proposal awaits it and its deadline has not passed; the
decision goes to the HMS governance service under the reviewer's Airflow user name, the review
watcher then resumes the proposal, and its audit record names the reviewer and their reason.

A revocation withdraws governance's decision on a proposal that has not ended (design.md §9): its
next step's check answers `revoked`, so it takes no further step, and its outcome is `revoked`,
with who, when and why. A proposal parked in review is resumed by the watcher to end so. An applied
policy is changed by a new proposal, not by a revocation: an ended proposal cannot be revoked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hms_management.api import proposals
from hms_management.domain.outcome import AWAITING_GOVERNANCE
from hms_management.domain.services import (
    DECISIONS_ENDPOINT,
    GOVERNANCE,
    REVOKE_ENDPOINT,
    ServiceError,
    TransientServiceError,
)
from hms_management.domain.steps import NOTIFY_OFFICERS
from hms_management.orchestration.config import settings
from hms_management.orchestration.hook import HmsHook
from hms_management.orchestration.progress import SUCCESS
from hms_management.records.store import ProposalRecord


class ReviewRefused(Exception):
    """A decision that is not taken; `status` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def may_review(user_name: str) -> bool:
    return user_name in settings().reviewer_names


def decide(proposal_id: str, *, approved: bool, reason: str, reviewer: str,
           now: datetime | None = None) -> tuple[ProposalRecord, dict[str, Any]]:
    """Record a reviewer's decision on governance; (the proposal as it stands, the decision)."""
    if not may_review(reviewer):
        raise ReviewRefused(403, f"{reviewer!r} is not a reviewer (see [hms_management] reviewers)")
    record = proposals.get(proposal_id)
    if record is None:
        raise ReviewRefused(404, f"no proposal {proposal_id!r}")
    if reviewer in record.submitters:
        raise ReviewRefused(403, f"{reviewer!r} submitted proposal {proposal_id!r}: someone else must review it "
                                 "(four-eyes rule)")
    if record.status != AWAITING_GOVERNANCE:
        raise ReviewRefused(409, f"proposal {proposal_id!r} is not awaiting review: it is {record.status}")
    if proposals.review_deadline_passed(record, now=now or datetime.now(UTC)):
        raise ReviewRefused(409, f"the review of proposal {proposal_id!r} timed out at {record.decision['deadline']}; "
                                 "it is no longer open")
    decision_id = record.decision["decision_id"]
    try:
        answer = HmsHook(GOVERNANCE).call(
            "POST", DECISIONS_ENDPOINT.format(decision_id=decision_id),
            body={"approved": approved, "reviewer": reviewer, "reason": reason}, ok=(200, 409))
    except ServiceError as err:
        status = 503 if isinstance(err, TransientServiceError) else 502
        raise ReviewRefused(status, f"the governance service did not record the decision: {err}") from err
    if answer.status == 409:
        raise ReviewRefused(409, f"decision {decision_id} of proposal {proposal_id!r} is already "
                                 f"{answer.body.get('status')}")
    return record, answer.body


def revoke(proposal_id: str, *, reason: str, reviewer: str) -> tuple[ProposalRecord, dict[str, Any]]:
    """Revoke governance's decision on a proposal that has not ended; (the proposal, the decision)."""
    if not may_review(reviewer):
        raise ReviewRefused(403, f"{reviewer!r} is not a reviewer (see [hms_management] reviewers)")
    record = proposals.get(proposal_id)
    if record is None:
        raise ReviewRefused(404, f"no proposal {proposal_id!r}")
    if reviewer in record.submitters:
        raise ReviewRefused(403, f"{reviewer!r} submitted proposal {proposal_id!r}: someone else must revoke it "
                                 "(four-eyes rule)")
    if record.terminal:
        raise ReviewRefused(409, f"proposal {proposal_id!r} has already ended ({record.status}): an applied policy is "
                                 "changed by a new proposal, not by a revocation")
    if not settings().governance_checks:
        raise ReviewRefused(409, "governance is not asked before each step here ([hms_management] governance_checks "
                                 "is off): a revocation would stop nothing")
    if ((record.steps or {}).get(NOTIFY_OFFICERS) or {}).get("state") == SUCCESS:
        raise ReviewRefused(409, f"proposal {proposal_id!r} has taken its last guarded step (its policy is applied "
                                 "and its officers told): nothing is left to stop; an applied policy is changed by "
                                 "a new proposal")
    decision_id = (record.decision or {}).get("decision_id")
    if not decision_id:
        raise ReviewRefused(409, f"governance has not decided on proposal {proposal_id!r} yet: there is no decision "
                                 "to revoke; try again once it is running")
    try:
        # No Idempotency-Key: a second revocation (a retry, another reviewer) is told it is revoked already.
        answer = HmsHook(GOVERNANCE).call("POST", REVOKE_ENDPOINT.format(decision_id=decision_id),
                                          body={"reason": reason, "by": reviewer}, ok=(200, 409))
    except ServiceError as err:
        status = 503 if isinstance(err, TransientServiceError) else 502
        raise ReviewRefused(status, f"the governance service did not record the revocation: {err}") from err
    if answer.status == 409:
        raise ReviewRefused(409, f"proposal {proposal_id!r} cannot be revoked: {answer.body.get('error')}")
    return record, answer.body
