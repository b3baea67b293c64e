"""How a run's outcome is settled from what the steps left behind, and what the audit record says."""

from __future__ import annotations

import pytest

from hms_management.domain.outcome import Outcome, audit_record, settle, standing
from hms_management.domain.steps import APPLY_POLICY, GOVERNANCE_GATE, NOTIFY_OFFICERS, STEPS


def test_all_steps_completed_is_completed():
    outcome = settle(completed_steps=set(STEPS), decision={"status": "approved"}, errors={})
    assert outcome == Outcome("completed", "policy applied and officers notified")
    assert outcome.headline.startswith("COMPLETED")


def test_denial_is_a_business_outcome_with_the_governance_reason():
    outcome = settle(completed_steps=set(), decision={"status": "denied", "reason": "weekend"}, errors={})
    assert (outcome.outcome, outcome.reason, outcome.failed_step) == ("denied", "weekend", None)
    assert outcome.headline == "DENIED: weekend"


def test_review_timeout_is_its_own_outcome():
    outcome = settle(completed_steps=set(), decision={"status": "review_timeout", "reason": "late"}, errors={})
    assert outcome.headline == "REVIEW TIMED OUT: late"


def test_the_first_step_without_a_result_is_where_it_failed_with_its_error():
    outcome = settle(
        completed_steps={GOVERNANCE_GATE},
        decision={"status": "approved"},
        errors={APPLY_POLICY: {"error": "TransientServiceError: 503", "transient": True}},
    )
    assert (outcome.outcome, outcome.failed_step) == ("failed", APPLY_POLICY)
    assert outcome.reason == "TransientServiceError: 503"
    assert outcome.transient
    assert outcome.headline.startswith("FAILED at apply_policy")


def test_a_step_that_left_no_error_still_names_itself():
    outcome = settle(completed_steps={GOVERNANCE_GATE, APPLY_POLICY}, decision=None, errors={})
    assert outcome.failed_step == NOTIFY_OFFICERS
    assert "notify_officers did not complete" in outcome.reason
    assert not outcome.transient  # nothing says a retry would help


def test_audit_record_carries_the_ids_an_auditor_follows_for_each_target():
    record = audit_record(
        proposal_id="p-1",
        run_id="proposal__p-1",
        outcome=Outcome("failed", "foia/doj: 503", "apply_policy", transient=True),
        decision={"decision_id": "d1", "reviewer": "rita", "review_reason": "fine", "decided_at": "t"},
        targets={"foia/dhs": {"state": "applied", "tries": 1,
                              "result": {"policy_id": "pol-1", "version": 1, "scope_version": 4}},
                 "foia/doj": {"state": "failed", "tries": 3, "error": "503"}},
        notified={},
        proposal={"id": "p-1", "title": "T", "submitted_by": "hms-a2a"},
    )
    assert record["proposalId"] == "p-1" and record["outcome"] == "failed" and record["decisionId"] == "d1"
    assert (record["reviewer"], record["reviewReason"], record["reviewedAt"]) == ("rita", "fine", "t")
    assert record["targets"] == [
        {"scope": "foia/dhs", "state": "applied", "tries": 1, "policyId": "pol-1", "policyVersion": 1,
         "scopeVersion": 4},
        {"scope": "foia/doj", "state": "failed", "tries": 3, "policyId": None, "policyVersion": None,
         "scopeVersion": None, "error": "503"}]
    assert record["notified"] == [] and record["submittedBy"] == "hms-a2a"


def test_audit_record_without_a_valid_proposal_still_names_the_run():
    record = audit_record(proposal_id="proposal__x", run_id="proposal__x",
                          outcome=Outcome("failed", "bad", GOVERNANCE_GATE), decision=None, targets={},
                          notified={}, proposal=None)
    assert record["failedStep"] == GOVERNANCE_GATE and record["targets"] == []


COMPLETED_OUTCOME = {"outcome": "completed", "reason": "policy applied and officers notified"}
REVIEW = {"status": "review", "decision_id": "d1", "deadline": "2026-12-05T00:00:00+00:00"}


@pytest.mark.parametrize(
    ("run_state", "outcome", "decision", "status"),
    [
        ("queued", None, None, "queued"),
        ("queued", None, REVIEW, "queued"),  # a parked proposal being resumed
        ("running", None, None, "running"),
        ("success", None, REVIEW, "awaiting_governance"),
        ("success", COMPLETED_OUTCOME, {"status": "approved"}, "completed"),
        ("success", {"outcome": "denied", "reason": "weekend"}, {"status": "denied"}, "denied"),
        ("success", {"outcome": "review_timeout", "reason": "late"}, REVIEW, "review_timeout"),
        ("failed", {"outcome": "failed", "failed_step": "apply_policy", "reason": "503"}, None, "failed"),
        ("failed", COMPLETED_OUTCOME, None, "failed"),  # the run's own state tells the truth
        ("failed", None, None, "failed"),
        ("success", None, {"status": "approved"}, "failed"),  # ended without an audit record
        ("success", {"outcome": "forged"}, None, "failed"),
    ],
)
def test_status_comes_from_the_run_state_the_audit_outcome_and_the_gate_decision(run_state, outcome, decision,
                                                                                   status):
    assert standing(run_state, outcome, decision).status == status


@pytest.mark.parametrize(
    ("run_state", "outcome", "decision", "reason", "failed_step"),
    [
        ("running", {"outcome": "failed", "reason": "503", "failed_step": "apply_policy"}, None, None, None),
        ("success", None, REVIEW | {"reason": "high impact"}, "high impact", None),
        ("success", {"outcome": "denied", "reason": "weekend"}, {"status": "denied"}, "weekend", None),
        ("failed", {"outcome": "failed", "failed_step": "apply_policy", "reason": "503"}, None, "503", "apply_policy"),
        ("failed", None, None, "the run ended without an audit record (see record_audit's log)", None),
    ],
)
def test_the_reason_is_why_it_ended_or_why_it_waits_never_an_earlier_attempts(run_state, outcome, decision, reason,
                                                                                failed_step):
    settled = standing(run_state, outcome, decision)
    assert (settled.reason, settled.failed_step) == (reason, failed_step)
