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
REVOKED = "revoked"
FAILED = "failed"
OUTCOMES = (COMPLETED, DENIED, REVIEW_TIMEOUT, REVOKED, FAILED)  # how a proposal can end
# Governance said no (at the gate, in review, or by revoking its approval before a later step):
# not a fault, nothing to retry.
BUSINESS_OUTCOMES = (DENIED, REVIEW_TIMEOUT, REVOKED)
# How each outcome opens the run note (display only: nothing reads a status back from a note).
HEADLINE_LABELS = {COMPLETED: "COMPLETED", DENIED: "DENIED", REVIEW_TIMEOUT: "REVIEW TIMED OUT", REVOKED: "REVOKED",
                   FAILED: "FAILED"}

# Where a proposal stands before it has an outcome.
QUEUED = "queued"
RUNNING = "running"
AWAITING_GOVERNANCE = "awaiting_governance"  # parked in human review
STATUSES = (QUEUED, RUNNING, AWAITING_GOVERNANCE, *OUTCOMES)
# Not a state of Airflow's: the proposal's run is gone (an admin deleted it), its record stays.
RUN_DELETED = "deleted"
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
    targets: dict[str, dict[str, Any]],
    notified: dict[str, dict[str, Any]],
    proposal: dict[str, Any] | None,
    checks: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The body of POST /audit/log: enough for an auditor to follow the proposal without Airflow —
    governance's decision (a reviewer's name and own reason, a revocation's who, when and why), what
    each policy scope and each officer group came to, and every check governance answered before a
    step (the decision log)."""
    proposal, decision = proposal or {}, decision or {}
    return {
        "proposalId": proposal_id,
        "action": "proposal.orchestrated",
        "outcome": outcome.outcome,
        "reason": outcome.reason,
        "failedStep": outcome.failed_step,
        "transient": outcome.transient,
        "runId": run_id,
        "decisionId": decision.get("decision_id"),
        "reviewer": decision.get("reviewer"),
        "reviewReason": decision.get("review_reason"),
        "reviewedAt": decision.get("decided_at") if decision.get("reviewer") else None,
        "revokedBy": decision.get("revoked_by"),
        "revokedAt": decision.get("revoked_at"),
        "targets": [_target("scope", scope, entry, policyId="policy_id", policyVersion="version",
                            scopeVersion="scope_version") for scope, entry in targets.items()],
        "notified": [_target("group", group, entry, notificationId="notification_id")
                     for group, entry in notified.items()],
        "title": proposal.get("title"),
        "submittedBy": proposal.get("submitted_by"),
        "checks": checks or [],
    }


def _target(kind: str, name: str, entry: dict[str, Any], **fields: str) -> dict[str, Any]:
    """One target's line in the audit record: its name, what it came to, and the ids its answer gave."""
    result = entry.get("result") or {}
    return {kind: name, "state": entry.get("state"), "tries": entry.get("tries", 0),
            **{shown: result.get(key) for shown, key in fields.items()},
            **({"error": entry["error"]} if entry.get("error") else {})}


def is_parked(run_state: str, decision: dict[str, Any] | None) -> bool:
    """A proposal in human review: its run ended with the gate's decision still `review`."""
    return run_state == "success" and isinstance(decision, dict) and decision.get("status") == "review"


@dataclass(frozen=True)
class Standing:
    """Where a proposal stands, and why: what /management, the Proposals view and the counts show."""

    status: str
    reason: str | None = None
    failed_step: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in OUTCOMES


def standing(run_state: str, outcome: dict[str, Any] | None, decision: dict[str, Any] | None) -> Standing:
    """The one rule that turns what a proposal's workflow recorded into its status: the run's state
    (Airflow's), the outcome its audit step recorded and the decision its governance gate kept.
    Never the run note, which anyone who may edit notes can rewrite.

    A run at work is queued or running, whatever an earlier attempt recorded (a re-driven or resumed
    run keeps its last outcome until its audit step records the next). A green run parked on a
    review awaits governance. A green run ends as its recorded outcome; any other end — a red run, a
    green one without an outcome, a run deleted before the proposal ended — is `failed`."""
    if run_state in (QUEUED, RUNNING):
        return Standing(run_state)
    if run_state == RUN_DELETED:
        return Standing(FAILED, "its run was deleted in Airflow before the proposal ended")
    recorded = outcome.get("outcome") if isinstance(outcome, dict) else None
    if is_parked(run_state, decision) and not recorded:
        return Standing(AWAITING_GOVERNANCE, decision.get("reason"))
    if run_state == "success" and recorded in OUTCOMES:
        return Standing(recorded, outcome.get("reason"), outcome.get("failed_step"))
    if recorded:
        return Standing(FAILED, outcome.get("reason"), outcome.get("failed_step"))
    return Standing(FAILED, NO_AUDIT_RECORD)
