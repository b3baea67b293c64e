"""The workflow's operators alone, against a scripted HMS service on 127.0.0.1 and a real records
database (no Airflow process).

What each HMS step sends (path, body, Idempotency-Key, the connection's token) and what it makes of
each answer, as the proposal's record keeps it; the governance gate on every answer governance may
give, failing closed on anything that is not a decision of the contract.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, DownstreamTasksSkipped

from hms_management.domain.services import TransientServiceError
from hms_management.domain.steps import APPLY_POLICY, GOVERNANCE_GATE, NOTIFY_OFFICERS, RECORD_AUDIT
from hms_management.orchestration.operators import (
    ApplyPolicyOperator,
    GovernanceGateOperator,
    NotifyOfficersOperator,
    RecordAuditOperator,
)
from hms_management.orchestration.records import records
from hms_management.records.store import Admission
from tests.scripted_hms import TOKEN
from tests.unit.conftest import context_for

pytestmark = pytest.mark.usefixtures("proposal_records")

PROPOSAL = {"id": "p-1", "rule": {"queue": "foia"}, "title": "FOIA", "submitted_by": "hms-a2a"}
APPROVED = {"status": "approved", "decision_id": "d-1", "reason": "no governance rule objects"}


def recorded(proposal_id: str = "p-1"):
    """The proposal's record, as /management would read it."""
    return records().get(proposal_id)


def earlier(proposal_id: str = "p-1", **facts) -> None:
    """What the earlier steps of the run left in the record."""
    records().change(proposal_id, admission=Admission.of(PROPOSAL, run_id=f"proposal__{proposal_id}",
                                                         triggered_by="agent", submitted_at=datetime.now(UTC)),
                     **facts)


def run(operator, context):
    """What Airflow does with a task: render its templates, then execute it."""
    operator.render_template_fields(context)
    return operator.execute(context)


# -- the HMS steps ---------------------------------------------------------------------------------


@pytest.fixture
def approved(hms):
    """A proposal the gate approved, which governance lets take every step (tests/unit/orchestration/
    test_governance_checks.py covers every other answer)."""
    earlier(decision=APPROVED, steps={GOVERNANCE_GATE: {"state": "success"}})
    hms.answer("POST", "/gov/check", 200, {"status": "approved", "decision_id": "d-1"})


def test_apply_policy_posts_the_seeds_rule_once_in_the_default_scope_with_the_token_and_renders_what_it_sends(
        hms, approved):
    hms.answer("POST", "/svc/policy", 200, {"policy_id": "pol-1", "version": 1})
    operator = ApplyPolicyOperator(task_id=APPLY_POLICY)

    result = run(operator, context_for(APPLY_POLICY, PROPOSAL))

    [sent] = hms.to("POST", "/svc/policy")
    assert sent.headers["Idempotency-Key"] == "p-1:policy:default"
    assert sent.headers["Authorization"] == TOKEN
    assert sent.body == {**PROPOSAL, "scope": "default", "priority": "normal", "impact": "normal"}
    assert result == {"default": {"policy_id": "pol-1", "version": 1}}
    # What the UI's Rendered tab shows for this try.
    assert operator.requests == [{"target": "default", "idempotency_key": "p-1:policy:default", "body": sent.body}]
    step = recorded().steps[APPLY_POLICY]
    assert (step["state"], step["tries"], step["result"]) == ("success", 1, result)
    assert step["targets"]["default"] == {"state": "applied", "tries": 1, "result": result["default"],
                                          "key": "p-1:policy:default"}
    assert recorded().status == "running"


def test_notify_officers_tells_the_default_group_which_policy_went_live(hms, approved):
    hms.answer("POST", "/notifications", 200, {"notification_id": "n-1"})
    earlier(steps={APPLY_POLICY: {"state": "success", "result": {"default": {"policy_id": "pol-1"}}}})
    context = context_for(NOTIFY_OFFICERS, PROPOSAL)

    assert run(NotifyOfficersOperator(task_id=NOTIFY_OFFICERS), context) == {"foia-officers": {"notification_id":
                                                                                              "n-1"}}

    [sent] = hms.to("POST", "/notifications")
    assert sent.headers["Idempotency-Key"] == "p-1:notify:foia-officers"
    assert sent.body["message"] == "Policy #p-1 live: FOIA" and sent.body["group"] == "foia-officers"
    assert sent.body["policies"] == {"default": {"policy_id": "pol-1"}}


@pytest.mark.parametrize(("clear_number", "key"), [(0, "p-1:record_audit"), (2, "p-1:record_audit:rerun2")])
def test_record_audit_writes_the_outcome_under_a_key_of_its_own_per_redrive(hms, clear_number, key):
    hms.answer("POST", "/audit/log", 200, {"audit_id": "a-1"})
    earlier(decision={**APPROVED, "reviewer": "rita"}, steps={
        GOVERNANCE_GATE: {"state": "success"},
        APPLY_POLICY: {"state": "success", "targets": {"default": {"state": "applied", "tries": 1, "result": {
            "policy_id": "pol-1", "version": 3}}}},
        NOTIFY_OFFICERS: {"state": "success", "targets": {"foia-officers": {"state": "applied", "tries": 1,
                                                                            "result": {"notification_id": "n-1"}}}}})
    context = context_for(RECORD_AUDIT, PROPOSAL, clear_number=clear_number)

    result = run(RecordAuditOperator(task_id=RECORD_AUDIT), context)

    [sent] = hms.to("POST", "/audit/log")
    assert sent.headers["Idempotency-Key"] == key
    assert sent.body == {**sent.body, "proposalId": "p-1", "outcome": "completed", "decisionId": "d-1",
                         "reviewer": "rita", "runId": "proposal__p-1"}
    assert [(t["scope"], t["policyVersion"]) for t in sent.body["targets"]] == [("default", 3)]
    assert [(n["group"], n["notificationId"]) for n in sent.body["notified"]] == [("foia-officers", "n-1")]
    assert result == {**result, "outcome": "completed", "audit_id": "a-1"}
    assert recorded().outcome == result  # the run's end settles the status from it


def test_record_audit_of_a_run_whose_conf_is_not_a_proposal_names_the_run_id_without_its_prefix(hms):
    hms.answer("POST", "/audit/log", 200, {"audit_id": "a-2"})
    gate = context_for(GOVERNANCE_GATE, {"id": "bad id!", "rule": "r"}, run_id="proposal__bad")
    with pytest.raises(AirflowFailException):
        gate_with_downstream().execute(gate)
    context = context_for(RECORD_AUDIT, {"id": "bad id!", "rule": "r"}, run_id="proposal__bad")

    run(RecordAuditOperator(task_id=RECORD_AUDIT), context)

    [sent] = hms.to("POST", "/audit/log")
    assert sent.body["proposalId"] == "bad" and sent.headers["Idempotency-Key"] == "bad:record_audit"
    assert (sent.body["outcome"], sent.body["failedStep"]) == ("failed", GOVERNANCE_GATE)
    assert sent.body["reason"].startswith("invalid proposal: id")


def test_a_503_is_raised_for_airflow_to_retry_and_kept_as_a_transient_error(hms, approved):
    hms.answer("POST", "/svc/policy", 503, {"error": "injected fault"})
    context = context_for(APPLY_POLICY, PROPOSAL)

    with pytest.raises(TransientServiceError, match="503"):
        run(ApplyPolicyOperator(task_id=APPLY_POLICY), context)
    step = recorded().steps[APPLY_POLICY]
    assert (step["state"], step["transient"]) == ("up_for_retry", True) and "503" in step["error"]


def test_a_503_on_the_last_try_is_the_steps_failure(hms, approved):
    hms.answer("POST", "/svc/policy", 503, {"error": "injected fault"})

    with pytest.raises(TransientServiceError):
        run(ApplyPolicyOperator(task_id=APPLY_POLICY), context_for(APPLY_POLICY, PROPOSAL, try_number=4))
    assert recorded().steps[APPLY_POLICY]["state"] == "failed"


@pytest.mark.parametrize(("status", "body", "words"), [
    (422, {"error": "rule is not valid"}, "answered 422"),
    (200, "<html><body>proxy login</body></html>", "not a JSON object"),
])
def test_a_refusal_or_an_answer_that_is_not_json_fails_at_once_and_is_kept(hms, approved, status, body, words):
    hms.answer("POST", "/svc/policy", status, body, content_type="text/html" if isinstance(body, str) else
               "application/json")
    context = context_for(APPLY_POLICY, PROPOSAL)

    with pytest.raises(AirflowFailException, match=words):
        run(ApplyPolicyOperator(task_id=APPLY_POLICY), context)
    step = recorded().steps[APPLY_POLICY]
    assert (step["state"], step["transient"]) == ("failed", False)


def test_no_answer_at_all_is_transient(monkeypatch, hms, approved):
    monkeypatch.setenv("AIRFLOW_CONN_HMS_POLICY", '{"conn_type": "http", "host": "127.0.0.1", "port": 9}')
    context = context_for(APPLY_POLICY, PROPOSAL)

    with pytest.raises(TransientServiceError, match="no answer"):
        run(ApplyPolicyOperator(task_id=APPLY_POLICY), context)


# -- the governance gate ---------------------------------------------------------------------------


def gate_with_downstream() -> GovernanceGateOperator:
    with DAG("gate_alone", schedule=None):
        gate = GovernanceGateOperator(task_id=GOVERNANCE_GATE)
        gate >> ApplyPolicyOperator(task_id=APPLY_POLICY) >> NotifyOfficersOperator(task_id=NOTIFY_OFFICERS)
    return gate


def review_record(*, status: str = "review", created: datetime, decided: datetime | None = None, **extra) -> dict:
    return {"decision_id": "d-9", "status": status, "reason": extra.pop("reason", "high-impact proposal"),
            "created_at": created.isoformat(), "decided_at": decided.isoformat() if decided else None,
            "reviewer": extra.pop("reviewer", None), **extra}


def test_approved_returns_the_decision_and_keeps_it(hms):
    hms.answer("POST", "/gov/validate", 200, APPROVED)
    context = context_for(GOVERNANCE_GATE, PROPOSAL)

    assert gate_with_downstream().execute(context)["status"] == "approved"

    [asked] = hms.to("POST", "/gov/validate")
    assert asked.body == {"proposal": {**PROPOSAL, "priority": "normal", "impact": "normal"}}
    assert asked.headers["Idempotency-Key"] == "p-1:governance_gate"
    assert recorded().decision["decision_id"] == "d-1"
    assert recorded().steps[GOVERNANCE_GATE]["state"] == "success"


def test_denied_skips_the_hms_steps_and_keeps_the_reason(hms):
    hms.answer("POST", "/gov/validate", 400, {"error": "processing is not allowed on weekends", "decision_id": "d-2"})
    context = context_for(GOVERNANCE_GATE, PROPOSAL)

    with pytest.raises(AirflowSkipException, match="denied"):
        gate_with_downstream().execute(context)
    decision = recorded().decision
    assert (decision["status"], decision["reason"]) == ("denied", "processing is not allowed on weekends")
    assert {step: entry["state"] for step, entry in recorded().steps.items()} == {
        GOVERNANCE_GATE: "skipped", APPLY_POLICY: "skipped", NOTIFY_OFFICERS: "skipped"}


def test_in_review_parks_the_run_skipping_every_later_step_and_keeps_the_deadline(hms):
    created = datetime.now(UTC) - timedelta(minutes=5)
    hms.answer("POST", "/gov/validate", 202, {"status": "review", "decision_id": "d-9", "reason": "high impact"})
    hms.answer("GET", "/gov/decisions/d-9", 200, review_record(created=created))
    context = context_for(GOVERNANCE_GATE, PROPOSAL)

    with pytest.raises(DownstreamTasksSkipped) as skipped:  # the task succeeds; the later steps are skipped
        gate_with_downstream().execute(context)

    assert sorted(skipped.value.tasks) == [APPLY_POLICY, NOTIFY_OFFICERS]
    decision = recorded().decision
    assert decision["status"] == "review"
    assert datetime.fromisoformat(decision["deadline"]) == created + timedelta(hours=72)  # airflow.cfg's 3 days


def test_a_review_past_its_deadline_is_review_timeout_whenever_the_gate_runs_again(hms):
    hms.answer("POST", "/gov/validate", 202, {"status": "review", "decision_id": "d-9"})
    hms.answer("GET", "/gov/decisions/d-9", 200, review_record(created=datetime.now(UTC) - timedelta(days=4)))
    context = context_for(GOVERNANCE_GATE, PROPOSAL)

    with pytest.raises(AirflowSkipException, match="review_timeout"):
        gate_with_downstream().execute(context)
    assert recorded().decision["status"] == "review_timeout"


def test_a_decision_taken_after_the_deadline_is_a_timeout_not_an_approval(hms):
    created = datetime.now(UTC) - timedelta(days=4)
    hms.answer("POST", "/gov/validate", 202, {"status": "review", "decision_id": "d-9"})
    hms.answer("GET", "/gov/decisions/d-9", 200, review_record(
        status="approved", created=created, decided=created + timedelta(days=3, hours=1), reviewer="rita"))
    context = context_for(GOVERNANCE_GATE, PROPOSAL)

    with pytest.raises(AirflowSkipException, match="after the review deadline"):
        gate_with_downstream().execute(context)


def test_a_reviewers_approval_in_time_lets_the_proposal_go_on_naming_the_reviewer(hms):
    created = datetime.now(UTC) - timedelta(hours=2)
    hms.answer("POST", "/gov/validate", 202, {"status": "review", "decision_id": "d-9"})
    hms.answer("GET", "/gov/decisions/d-9", 200, review_record(
        status="approved", created=created, decided=created + timedelta(hours=1), reviewer="rita", reason="ok"))
    context = context_for(GOVERNANCE_GATE, PROPOSAL)

    decision = gate_with_downstream().execute(context)

    assert (decision["status"], decision["reviewer"]) == ("approved", "rita")


UNKNOWN_ANSWERS = {
    "escalated": (200, {"status": "escalated", "decision_id": "d"}),
    "cancelled": (200, {"status": "cancelled", "decision_id": "d"}),
    "empty-status": (200, {"status": "", "decision_id": "d"}),
    "null-status": (200, {"status": None, "decision_id": "d"}),
    "no-status": (200, {"decision_id": "d"}),
    "not-json": (200, "approved"),
    "html-page": (200, "<html><body><h1>Welcome</h1></body></html>"),
    "json-list": (200, ["approved"]),
    "approved-with-202": (202, {"status": "approved", "decision_id": "d"}),
    "review-without-id": (202, {"status": "review"}),
    "denial-without-reason": (400, {"decision_id": "d"}),
    "201": (201, {"status": "approved", "decision_id": "d"}),
}


@pytest.mark.parametrize("answer", list(UNKNOWN_ANSWERS.values()), ids=list(UNKNOWN_ANSWERS))
def test_anything_but_a_decision_fails_the_gate_closed_naming_what_was_answered(hms, answer):
    status, body = answer
    hms.answer("POST", "/gov/validate", status, body, content_type="text/html" if isinstance(body, str) else
               "application/json")
    context = context_for(GOVERNANCE_GATE, PROPOSAL)

    with pytest.raises(AirflowFailException, match=f"answered {status}") as failed:
        gate_with_downstream().execute(context)

    shown = body if isinstance(body, str) else (body.get("status") if isinstance(body, dict) else "approved")
    assert str(shown or "") in str(failed.value)
    assert (recorded().steps[GOVERNANCE_GATE]["state"], recorded().steps[GOVERNANCE_GATE]["transient"]) == (
        "failed", False)
    assert recorded().decision is None  # nothing the HMS steps could take for a decision
    assert [r.path for r in hms.requests] == ["/gov/validate"]


@pytest.mark.parametrize("record_status", ["escalated", None, "approved-ish"])
def test_a_decision_record_with_an_unknown_status_fails_closed(hms, record_status):
    hms.answer("POST", "/gov/validate", 202, {"status": "review", "decision_id": "d-9"})
    hms.answer("GET", "/gov/decisions/d-9", 200, review_record(status=record_status, created=datetime.now(UTC)))
    context = context_for(GOVERNANCE_GATE, PROPOSAL)

    with pytest.raises(AirflowFailException, match="no status of the contract"):
        gate_with_downstream().execute(context)


def test_governance_unavailable_is_retried_by_airflow(hms):
    hms.answer("POST", "/gov/validate", 503, {"error": "down"})
    with pytest.raises(TransientServiceError):
        gate_with_downstream().execute(context_for(GOVERNANCE_GATE, PROPOSAL))


def test_invalid_conf_fails_the_gate_with_the_field_and_asks_nobody(hms):
    context = context_for(GOVERNANCE_GATE, {"id": "bad id!", "rule": "r"})

    with pytest.raises(AirflowFailException, match="invalid proposal: id"):
        gate_with_downstream().execute(context)

    step = recorded("bad id!").steps[GOVERNANCE_GATE]
    assert step["error"].startswith("invalid proposal: id") and step["transient"] is False
    assert hms.requests == []


def test_a_run_id_that_is_not_the_proposals_fails_the_gate(hms):
    with pytest.raises(AirflowFailException, match="one run per proposal"):
        gate_with_downstream().execute(context_for(GOVERNANCE_GATE, PROPOSAL, run_id="manual__2026-11-27"))
    assert hms.requests == []
