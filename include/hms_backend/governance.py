"""The rules of the HMS Governance Layer, as pure functions over a proposal and its decision.

A proposal is denied when it asks for processing on a weekend, sent to a human reviewer when its
impact is high, and approved otherwise. The denial comes first: no one should review a proposal
that no reviewer may approve.

Before each step that calls an HMS service, the Management Layer asks again (step_check): an
approval may have been revoked since, or the service suspended (the kill switch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

APPROVED = "approved"
DENIED = "denied"
REVIEW = "review"
REVOKED = "revoked"
Status = Literal["approved", "denied", "review"]
DecisionStatus = Literal["approved", "denied", "review", "revoked"]

# What a revocation may still stop: a decision that lets, or may yet let, the proposal go on.
REVOCABLE = (APPROVED, REVIEW)
# The audit entry the Management Layer writes when a proposal's workflow ends, whatever the outcome.
PROPOSAL_ENDED = "proposal.orchestrated"

SUSPENDED = "suspended"
EVERY_SERVICE = "all"
SUSPENDABLE = ("policy", "notifications", EVERY_SERVICE)

WEEKEND = ("Sat", "Sun")


@dataclass(frozen=True)
class Verdict:
    status: Status
    reason: str


def judge(proposal: Mapping[str, Any]) -> Verdict:
    """What governance says about a proposal before any human looks at it."""
    day = proposal.get("day")
    if day in WEEKEND:
        return Verdict(DENIED, f"processing is not allowed on weekends (day: {day})")
    if proposal.get("impact") == "high":
        return Verdict(REVIEW, "high-impact proposal: waiting for a human reviewer")
    return Verdict(APPROVED, "no governance rule objects")


def reviewed(*, approved: bool, reviewer: str, reason: str | None) -> Verdict:
    """A reviewer's decision on a proposal in review; without a reason, the reason names them."""
    status: Status = APPROVED if approved else DENIED
    return Verdict(status, reason or f"{status} by {reviewer}")


def step_check(decision: Mapping[str, Any], suspension: Mapping[str, Any] | None) -> dict[str, Any]:
    """Whether a proposal may take a step now, given its decision and a suspension of the step's service.

    A revocation comes first: it is final, and says who stopped the proposal and why. A denial or an
    open review is the decision's own answer. A suspension holds back only what would otherwise go
    on, so it matters to an approved decision alone: lifted, the same check says approved again.
    """
    decision_id = decision["decision_id"]
    if decision["status"] == REVOKED:
        return {
            "status": REVOKED,
            "reason": decision["revoke_reason"],
            "by": decision["revoked_by"],
            "at": decision["revoked_at"],
            "decision_id": decision_id,
        }
    if decision["status"] != APPROVED:
        return {"status": decision["status"], "reason": decision["reason"], "decision_id": decision_id}
    if suspension is not None:
        return {
            "status": SUSPENDED,
            "service": suspension["service"],
            "reason": suspension["reason"],
            "by": suspension["by"],
            "at": suspension["since"],
            "decision_id": decision_id,
        }
    return {"status": APPROVED, "decision_id": decision_id}
