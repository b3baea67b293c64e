"""Deciding a review from the api-server: who may, on what, and what happens.

Only the users named in `[hms_management] reviewers` may decide (Airflow's roles are fixed; this is
the Management Layer's own check on top), never on a proposal they submitted (four-eyes), and only
while the proposal awaits review and its deadline has not passed. The decision goes to the HMS
governance service under the reviewer's Airflow user name; the review watcher then resumes the
proposal, and its audit record names the reviewer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hms_management.api import proposals
from hms_management.api.proposals import ProposalView
from hms_management.domain.outcome import AWAITING_GOVERNANCE
from hms_management.domain.services import DECISIONS_ENDPOINT, GOVERNANCE, ServiceError, TransientServiceError
from hms_management.orchestration.config import settings
from hms_management.orchestration.hook import HmsHook


class ReviewRefused(Exception):
    """A decision that is not taken; `status` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def may_review(user_name: str) -> bool:
    return user_name in settings().reviewer_names


def decide(proposal_id: str, *, approved: bool, reason: str, reviewer: str,
           now: datetime | None = None) -> tuple[ProposalView, dict[str, Any]]:
    """Record a reviewer's decision on governance; (the proposal as it stands, the decision)."""
    if not may_review(reviewer):
        raise ReviewRefused(403, f"{reviewer!r} is not a reviewer (see [hms_management] reviewers)")
    view = proposals.get(proposal_id)
    if view is None:
        raise ReviewRefused(404, f"no proposal {proposal_id!r}")
    if reviewer in view.submitters:
        raise ReviewRefused(403, f"{reviewer!r} submitted proposal {proposal_id!r}: someone else must review it "
                                 "(four-eyes rule)")
    if view.status != AWAITING_GOVERNANCE:
        raise ReviewRefused(409, f"proposal {proposal_id!r} is not awaiting review: it is {view.status}")
    if proposals.review_deadline_passed(view, now=now or datetime.now(UTC)):
        raise ReviewRefused(409, f"the review of proposal {proposal_id!r} timed out at {view.decision['deadline']}; "
                                 "it is no longer open")
    decision_id = view.decision["decision_id"]
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
    return view, answer.body
