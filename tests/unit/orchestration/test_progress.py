"""What a run's steps read of it: the proposal from its conf, the outcome from what the steps left
in the proposal's record, and the failure flag that makes the run's state tell the truth."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from airflow.sdk.exceptions import AirflowFailException

from hms_management.domain.steps import APPLY_POLICY, GOVERNANCE_GATE, NOTIFY_OFFICERS
from hms_management.orchestration.progress import outcome_of, proposal_of, raise_failure
from hms_management.orchestration.records import records
from hms_management.records.store import Admission
from tests.unit.conftest import context_for

PROPOSAL = {"id": "p-1", "rule": "r"}
APPROVED = {"status": "approved", "decision_id": "d-1"}
DONE = {"state": "success"}


def recorded(**facts):
    return records().change("p-1", admission=Admission.of(PROPOSAL, run_id="proposal__p-1", triggered_by="agent",
                                                          submitted_at=datetime.now(UTC)), **facts)


def test_later_steps_read_the_proposal_with_its_defaults_from_the_conf():
    assert proposal_of(context_for("x", PROPOSAL)).priority == "normal"
    assert proposal_of(context_for("x", {"rule": "r"}, run_id="proposal__x")) is None  # the gate failed it


def test_the_outcome_names_the_first_step_that_did_not_succeed_with_its_error(proposal_records):
    record = recorded(decision=APPROVED, steps={
        GOVERNANCE_GATE: DONE,
        APPLY_POLICY: {"state": "failed", "error": "TransientServiceError: 503", "transient": True}})

    outcome = outcome_of(record)

    assert (outcome.outcome, outcome.failed_step, outcome.transient) == ("failed", APPLY_POLICY, True)


def test_the_failure_flag_fails_naming_the_step_that_failed(proposal_records):
    recorded(decision=APPROVED, steps={GOVERNANCE_GATE: DONE, APPLY_POLICY: DONE, NOTIFY_OFFICERS: {
        "state": "failed", "error": "PermanentServiceError: 400", "transient": False}})

    with pytest.raises(AirflowFailException, match="failed at notify_officers: PermanentServiceError: 400"):
        raise_failure(context_for("fail_run_if_a_step_failed", PROPOSAL))


def test_the_failure_flag_fails_even_when_every_step_completed_but_the_audit_record_was_not_written(
        proposal_records):
    recorded(decision=APPROVED, steps={GOVERNANCE_GATE: DONE, APPLY_POLICY: DONE, NOTIFY_OFFICERS: DONE})

    with pytest.raises(AirflowFailException, match="audit record could not be written"):
        raise_failure(context_for("fail_run_if_a_step_failed", PROPOSAL))
