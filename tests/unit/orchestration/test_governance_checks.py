"""Governance before every step (design.md §9), one step alone against a scripted governance service
and a real records database: only an explicit `approved` lets a step's call go; a revocation ends
the proposal there, a suspension holds the step in the triggerer, and anything else fails closed,
quoted. Every answer goes into the decision log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, TaskDeferred
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hms_management.domain.governance import GovernanceAnswerError, read_check
from hms_management.domain.services import TransientServiceError
from hms_management.domain.steps import APPLY_POLICY, GOVERNANCE_GATE, NOTIFY_OFFICERS, RECORD_AUDIT
from hms_management.orchestration.operators import ApplyPolicyOperator, NotifyOfficersOperator, RecordAuditOperator
from hms_management.orchestration.records import records
from hms_management.orchestration.triggers import SuspensionLiftedTrigger
from hms_management.records.store import Admission
from tests.unit.conftest import context_for

pytestmark = pytest.mark.usefixtures("proposal_records")

PROPOSAL = {"id": "p-1", "rule": {"queue": "foia"}}
APPROVED = {"status": "approved", "decision_id": "d-1", "reason": "no governance rule objects"}
REVOKED = {"status": "revoked", "decision_id": "d-1", "reason": "the rule breaks the FOIA statute", "by": "rita",
           "at": "2026-12-04T10:00:00.000+00:00"}


def suspended(since: datetime) -> dict:
    return {"status": "suspended", "decision_id": "d-1", "service": "policy", "reason": "incident 42", "by": "ops",
            "at": since.isoformat()}


@pytest.fixture(autouse=True)
def approved_at_the_gate(proposal_records):
    records().change("p-1", admission=Admission.of(PROPOSAL, run_id="proposal__p-1", triggered_by="agent",
                                                   submitted_at=datetime.now(UTC)),
                     decision=APPROVED, steps={GOVERNANCE_GATE: {"state": "success"}})


def apply_policy(context=None):
    operator = ApplyPolicyOperator(task_id=APPLY_POLICY)
    context = context or context_for(APPLY_POLICY, PROPOSAL)
    operator.render_template_fields(context)
    return operator, context


def test_the_check_names_the_decision_the_proposal_the_step_and_its_service_before_the_call(hms):
    hms.answer("POST", "/gov/check", 200, {"status": "approved", "decision_id": "d-1"})
    hms.answer("POST", "/svc/policy", 200, {"policy_id": "pol-1", "version": 1})
    operator, context = apply_policy()

    operator.execute(context)

    assert [r.path for r in hms.requests] == ["/gov/check", "/svc/policy"]
    assert hms.to("POST", "/gov/check")[0].body == {"decision_id": "d-1", "proposal_id": "p-1",
                                                     "step": "apply_policy", "service": "policy"}
    [logged] = records().get("p-1").checks
    assert (logged["step"], logged["service"], logged["answer"]) == ("apply_policy", "policy", "approved")


def test_a_revocation_stops_the_step_before_its_call_and_ends_the_proposal_revoked(hms):
    hms.answer("POST", "/gov/check", 200, REVOKED)
    operator = NotifyOfficersOperator(task_id=NOTIFY_OFFICERS)
    context = context_for(NOTIFY_OFFICERS, PROPOSAL)
    operator.render_template_fields(context)

    with pytest.raises(AirflowSkipException, match="revoked the proposal before notify_officers"):
        operator.execute(context)

    assert hms.to("POST", "/notifications") == []
    record = records().get("p-1")
    assert record.decision["status"] == "revoked" and record.decision["revoked_by"] == "rita"
    assert record.decision["reason"] == ("revoked by rita at 2026-12-04T10:00:00.000+00:00: "
                                         "the rule breaks the FOIA statute")
    assert record.steps[NOTIFY_OFFICERS]["state"] == "skipped"
    assert record.checks[-1]["answer"] == "revoked"


def test_the_audit_step_after_a_revocation_records_who_revoked_when_and_why(hms):
    hms.answer("POST", "/gov/check", 200, REVOKED)
    hms.answer("POST", "/audit/log", 200, {"audit_id": "a-1"})
    operator, context = apply_policy()
    with pytest.raises(AirflowSkipException):
        operator.execute(context)
    audit = RecordAuditOperator(task_id=RECORD_AUDIT)
    audit_context = context_for(RECORD_AUDIT, PROPOSAL)
    audit.render_template_fields(audit_context)

    outcome = audit.execute(audit_context)

    [sent] = hms.to("POST", "/audit/log")
    assert outcome["outcome"] == "revoked" and outcome["failed_step"] is None
    assert (sent.body["outcome"], sent.body["revokedBy"], sent.body["revokedAt"]) == (
        "revoked", "rita", "2026-12-04T10:00:00.000+00:00")
    assert "the rule breaks the FOIA statute" in sent.body["reason"]
    assert [c["answer"] for c in sent.body["checks"]] == ["revoked"]
    assert hms.to("POST", "/gov/check") and all(r.path != "/svc/policy" for r in hms.requests)


def test_a_suspension_holds_the_step_in_the_triggerer_without_calling_the_service(hms):
    since = datetime.now(UTC) - timedelta(minutes=5)
    hms.answer("POST", "/gov/check", 200, suspended(since))
    operator, context = apply_policy()

    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)

    trigger = deferred.value.trigger
    assert isinstance(trigger, SuspensionLiftedTrigger) and trigger.service == "policy"
    assert trigger.give_up_at == pytest.approx(since.timestamp() + 86400)  # suspension_wait_seconds' default
    assert deferred.value.method_name == "resume_after_suspension"
    assert hms.to("POST", "/svc/policy") == []
    step = records().get("p-1").steps[APPLY_POLICY]
    assert step["state"] == "waiting" and "policy suspended by ops" in step["waiting_for"]


def test_a_suspension_of_all_services_is_logged_under_the_steps_own_service(hms):
    hms.answer("POST", "/gov/check", 200, {**suspended(datetime.now(UTC)), "service": "all"})
    operator, context = apply_policy()

    with pytest.raises(TaskDeferred):
        operator.execute(context)

    [logged] = records().get("p-1").checks
    assert (logged["step"], logged["service"], logged["answer"], logged["suspended"]) == \
        ("apply_policy", "policy", "suspended", "all")


def test_after_the_lift_the_step_asks_again_then_calls(hms):
    hms.answer("POST", "/gov/check", 200, {"status": "approved", "decision_id": "d-1"})
    hms.answer("POST", "/svc/policy", 200, {"policy_id": "pol-1", "version": 1})
    operator, context = apply_policy()

    operator.resume_after_suspension(context, {"lifted": True}, waiting="policy suspended")

    assert [r.path for r in hms.requests] == ["/gov/check", "/svc/policy"]


def test_a_suspension_that_lasts_too_long_fails_the_step_saying_so(hms):
    operator, context = apply_policy()

    with pytest.raises(AirflowFailException, match="waited longer than suspension_wait_seconds"):
        operator.resume_after_suspension(context, {"lifted": False}, waiting="policy suspended by ops since x: y")
    assert records().get("p-1").steps[APPLY_POLICY]["state"] == "failed"


def test_a_suspension_already_older_than_the_wait_fails_at_once(hms):
    hms.answer("POST", "/gov/check", 200, suspended(datetime.now(UTC) - timedelta(days=2)))
    operator, context = apply_policy()

    with pytest.raises(AirflowFailException, match="policy suspended by ops"):
        operator.execute(context)
    assert hms.to("POST", "/svc/policy") == []


def test_governance_unavailable_at_the_check_is_retried_like_any_call_never_taken_for_a_yes(hms):
    hms.answer("POST", "/gov/check", 503, {"error": "down"})
    operator, context = apply_policy()

    with pytest.raises(TransientServiceError):
        operator.execute(context)
    assert hms.to("POST", "/svc/policy") == []
    assert records().get("p-1").steps[APPLY_POLICY]["state"] == "up_for_retry"


def test_a_proposal_without_a_recorded_decision_is_never_let_through(hms):
    records().change("p-1", decision=None)
    operator, context = apply_policy()

    with pytest.raises(AirflowFailException, match="no governance decision is recorded"):
        operator.execute(context)
    assert hms.requests == []


def test_the_audit_step_is_never_held_back(hms):
    hms.answer("POST", "/gov/check", 200, REVOKED)
    hms.answer("POST", "/audit/log", 200, {"audit_id": "a-1"})
    audit = RecordAuditOperator(task_id=RECORD_AUDIT)
    context = context_for(RECORD_AUDIT, PROPOSAL)
    audit.render_template_fields(context)

    audit.execute(context)

    assert [r.path for r in hms.requests] == ["/audit/log"]


def test_with_the_checks_switched_off_the_step_calls_at_once(hms, monkeypatch):
    monkeypatch.setenv("AIRFLOW__HMS_MANAGEMENT__GOVERNANCE_CHECKS", "false")
    hms.answer("POST", "/svc/policy", 200, {"policy_id": "pol-1", "version": 1})
    operator, context = apply_policy()

    operator.execute(context)

    assert [r.path for r in hms.requests] == ["/svc/policy"]


UNKNOWN_CHECK_ANSWERS = {
    "denied-now": (200, {"status": "denied", "reason": "weekend", "decision_id": "d-1"}),
    "review-now": (200, {"status": "review", "reason": "high impact", "decision_id": "d-1"}),
    "escalated": (200, {"status": "escalated", "decision_id": "d-1"}),
    "no-status": (200, {"decision_id": "d-1"}),
    "null-status": (200, {"status": None}),
    "revoked-without-who": (200, {"status": "revoked", "reason": "r", "at": "t"}),
    "suspended-without-service": (200, {"status": "suspended", "reason": "r", "by": "b", "at": "t"}),
    "approved-with-201": (201, {"status": "approved"}),
    "approved-with-202": (202, {"status": "approved"}),
    "not-json": (200, "approved"),
    "html-page": (200, "<html><body>Welcome</body></html>"),
    "json-list": (200, ["approved"]),
    "unknown-decision": (404, {"error": "no decision d-1"}),
    "another-proposals-decision": (409, {"error": "decision d-1 belongs to proposal p-9, not p-1"}),
}


@pytest.mark.parametrize("answer", list(UNKNOWN_CHECK_ANSWERS.values()), ids=list(UNKNOWN_CHECK_ANSWERS))
def test_anything_but_a_check_answer_of_the_contract_fails_the_step_closed_quoting_it(hms, answer):
    status, body = answer
    hms.answer("POST", "/gov/check", status, body,
               content_type="text/html" if isinstance(body, str) else "application/json")
    operator, context = apply_policy()

    with pytest.raises(AirflowFailException, match=f"answered {status}"):
        operator.execute(context)

    assert hms.to("POST", "/svc/policy") == []
    step = records().get("p-1").steps[APPLY_POLICY]
    assert (step["state"], step["transient"]) == ("failed", False)
    assert records().get("p-1").checks[-1]["answer"] == "error"


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                                max_size=4), max_leaves=10)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(status=st.sampled_from([200, 201, 202, 204, 400, 404, 409, 500]), body=JSON)
def test_no_check_answer_but_the_contracts_lets_a_step_go_on(status, body):
    try:
        check = read_check(status, body, text=json.dumps(body))
    except GovernanceAnswerError:
        return
    assert status == 200 and isinstance(body, dict)
    assert check.status in ("approved", "revoked", "suspended")
    assert check.status == body["status"]
