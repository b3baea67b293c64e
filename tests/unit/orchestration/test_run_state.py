"""What a run's steps read of it: the proposal from its conf, the outcome from what the steps left,
and the failure flag that makes the run's state tell the truth."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from hms_management.domain.steps import APPLY_POLICY, DECISION_KEY, ERROR_KEY, GOVERNANCE_GATE, NOTIFY_OFFICERS
from hms_management.orchestration.run_state import outcome_of_run, raise_failure, validated_proposal
from tests.unit.conftest import context_for

PROPOSAL = {"id": "p-1", "rule": "r"}
APPROVED = {"status": "approved", "decision_id": "d-1"}


def test_later_steps_read_the_proposal_with_its_defaults_from_the_conf():
    assert validated_proposal(context_for("x", PROPOSAL))["priority"] == "normal"
    assert validated_proposal(context_for("x", {"rule": "r"}, run_id="proposal__x")) is None  # the gate failed it


def test_the_outcome_names_the_first_step_that_left_no_result_with_its_error():
    xcoms = {(GOVERNANCE_GATE, "return_value"): APPROVED, (GOVERNANCE_GATE, DECISION_KEY): APPROVED,
             (APPLY_POLICY, ERROR_KEY): {"error": "TransientServiceError: 503", "transient": True}}
    outcome = outcome_of_run(context_for("record_audit", PROPOSAL, xcoms=xcoms))
    assert (outcome.outcome, outcome.failed_step, outcome.transient) == ("failed", APPLY_POLICY, True)


def test_the_failure_flag_fails_naming_the_step_that_failed():
    xcoms = {(GOVERNANCE_GATE, "return_value"): APPROVED, (APPLY_POLICY, "return_value"): {"policy_id": "p"},
             (NOTIFY_OFFICERS, ERROR_KEY): {"error": "PermanentServiceError: 400", "transient": False}}
    with pytest.raises(AirflowFailException, match="failed at notify_officers: PermanentServiceError: 400"):
        raise_failure(context_for("fail_run_if_a_step_failed", PROPOSAL, xcoms=xcoms))


def test_the_failure_flag_fails_even_when_every_step_completed_but_the_audit_record_was_not_written():
    xcoms = {(GOVERNANCE_GATE, "return_value"): APPROVED, (APPLY_POLICY, "return_value"): {"policy_id": "p"},
             (NOTIFY_OFFICERS, "return_value"): {"notification_id": "n"}}
    with pytest.raises(AirflowFailException, match="audit record could not be written"):
        raise_failure(context_for("fail_run_if_a_step_failed", PROPOSAL, xcoms=xcoms))
