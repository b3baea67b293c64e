"""How a run's outcome is settled from what each step left behind, and what the audit record says.

Plain functions over plain data, so the audit record, the run note, the failure flag and the
tests all read one definition of "completed", "denied" and "failed at step X".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from hms_management.domain.steps import STEPS

COMPLETED = "completed"
DENIED = "denied"
REVIEW_TIMEOUT = "review_timeout"
FAILED = "failed"
OUTCOMES = (COMPLETED, DENIED, REVIEW_TIMEOUT, FAILED)  # how a proposal can end
BUSINESS_OUTCOMES = (DENIED, REVIEW_TIMEOUT)  # governance said no: not a fault, nothing to retry
# How each outcome opens the run note (display only: nothing reads a status back from a note).
HEADLINE_LABELS = {COMPLETED: "COMPLETED", DENIED: "DENIED", REVIEW_TIMEOUT: "REVIEW TIMED OUT", FAILED: "FAILED"}

# Where a proposal stands before it has an outcome.
QUEUED = "queued"
RUNNING = "running"
AWAITING_GOVERNANCE = "awaiting_governance"  # parked in human review
STATUSES = (QUEUED, RUNNING, AWAITING_GOVERNANCE, *OUTCOMES)
NO_AUDIT_RECORD = "the run ended without an audit record (see record_audit's log)"


@dataclass(frozen=True)
class Outcome:
    outcome: str
    reason: str
    failed_step: str | None = None
    # A failure that may pass (5xx, 429, timeout, no connection): worth re-driving later.
    transient: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def headline(self) -> str:
        """One line for the run note: what happened, then why."""
        label = HEADLINE_LABELS.get(self.outcome, HEADLINE_LABELS[FAILED])
        if self.failed_step:
            label += f" at {self.failed_step}"
        return f"{label}: {self.reason}"


def settle(
    *, completed_steps: set[str], decision: dict[str, Any] | None, errors: dict[str, dict[str, Any]]
) -> Outcome:
    """Decide a run's outcome from the steps that completed, the governance decision and errors."""
    if decision and decision.get("status") in BUSINESS_OUTCOMES:
        return Outcome(decision["status"], decision.get("reason") or "no reason given")
    for step in STEPS:
        if step not in completed_steps:
            error = errors.get(step) or {}
            reason = error.get("error") or f"{step} did not complete (see its log)"
            return Outcome(FAILED, reason, step, transient=bool(error.get("transient")))
    return Outcome(COMPLETED, "policy applied and officers notified")


def audit_record(
    *,
    proposal_id: str,
    run_id: str,
    outcome: Outcome,
    decision: dict[str, Any] | None,
    policy: dict[str, Any] | None,
    notification: dict[str, Any] | None,
    proposal: dict[str, Any] | None,
) -> dict[str, Any]:
    """The body of POST /audit/log: enough for an auditor to follow the proposal without Airflow."""
    proposal = proposal or {}
    return {
        "proposalId": proposal_id,
        "action": "proposal.orchestrated",
        "outcome": outcome.outcome,
        "reason": outcome.reason,
        "failedStep": outcome.failed_step,
        "transient": outcome.transient,
        "runId": run_id,
        "decisionId": (decision or {}).get("decision_id"),
        "reviewer": (decision or {}).get("reviewer"),
        "policyId": (policy or {}).get("policy_id"),
        "policyVersion": (policy or {}).get("version"),
        "notificationId": (notification or {}).get("notification_id"),
        "title": proposal.get("title"),
        "submittedBy": proposal.get("submitted_by"),
    }


def is_parked(run_state: str, decision: dict[str, Any] | None) -> bool:
    """A proposal in human review: its run ended with the gate's decision still `review`."""
    return run_state == "success" and isinstance(decision, dict) and decision.get("status") == "review"


def proposal_status(run_state: str, outcome: dict[str, Any] | None, decision: dict[str, Any] | None) -> str:
    """Where a proposal stands, from what its workflow recorded: the run's state, the outcome its
    audit step returned and the governance decision its gate kept. Never from the run note, which
    anyone who may edit notes can rewrite. A run that ended without an outcome is `failed`."""
    if run_state in (QUEUED, RUNNING):
        return run_state
    if is_parked(run_state, decision) and not outcome:
        return AWAITING_GOVERNANCE
    recorded = outcome.get("outcome") if isinstance(outcome, dict) else None
    if run_state == "success" and recorded in OUTCOMES:
        return recorded
    return FAILED
