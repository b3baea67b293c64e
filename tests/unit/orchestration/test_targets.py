"""A proposal with several targets, one step alone against a scripted HMS service and a real records
database: one call per scope (and per group), each under its own Idempotency-Key; a scope that
fails is named, and the retry sends only what did not apply."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hms_management.domain.services import PermanentServiceError, TransientServiceError
from hms_management.domain.steps import APPLY_POLICY, GOVERNANCE_GATE, NOTIFY_OFFICERS
from hms_management.orchestration.operators import ApplyPolicyOperator, NotifyOfficersOperator
from hms_management.orchestration.records import records
from hms_management.records.store import Admission
from tests.unit.conftest import context_for

SCOPES = ["foia/dhs", "foia/doj", "foia/state"]
PROPOSAL = {"id": "p-1", "targets": [{"scope": scope, "rule": {"max_days": 10 + n}} for n, scope in enumerate(SCOPES)],
            "notify": ["foia-officers", "privacy-office", "records-management", "permits-office"]}


@pytest.fixture(autouse=True)
def approved(proposal_records, hms, monkeypatch):
    monkeypatch.setenv("AIRFLOW__HMS_MANAGEMENT__GOVERNANCE_CHECKS", "false")  # tested on their own
    proposal_records.change("p-1", admission=Admission.of(PROPOSAL, run_id="proposal__p-1", triggered_by="agent",
                                                          submitted_at=datetime.now(UTC)),
                            decision={"status": "approved", "decision_id": "d-1"},
                            steps={GOVERNANCE_GATE: {"state": "success"}})


def run(operator_class, task_id, try_number=1):
    operator = operator_class(task_id=task_id)
    context = context_for(task_id, PROPOSAL, try_number=try_number)
    operator.render_template_fields(context)
    return operator.execute(context)


def test_each_scope_gets_its_own_rule_under_its_own_key(hms):
    hms.answer("POST", "/svc/policy", 200, {"policy_id": "pol", "version": 1})

    answers = run(ApplyPolicyOperator, APPLY_POLICY)

    sent = {r.body["scope"]: r for r in hms.to("POST", "/svc/policy")}
    assert set(sent) == set(SCOPES) == set(answers)
    assert {scope: r.headers["Idempotency-Key"] for scope, r in sent.items()} == {
        scope: f"p-1:policy:{scope}" for scope in SCOPES}
    assert sent["foia/doj"].body["rule"] == {"max_days": 11} and "targets" not in sent["foia/doj"].body


def test_each_group_is_told_once_under_its_own_key_with_every_scopes_answer(hms):
    hms.answer("POST", "/notifications", 200, {"notification_id": "n"})
    records().change("p-1", steps={APPLY_POLICY: {"state": "success", "result": {s: {"version": 1} for s in SCOPES}}})

    run(NotifyOfficersOperator, NOTIFY_OFFICERS)

    sent = hms.to("POST", "/notifications")
    assert sorted(r.headers["Idempotency-Key"] for r in sent) == sorted(f"p-1:notify:{g}" for g in PROPOSAL["notify"])
    assert all(set(r.body["policies"]) == set(SCOPES) for r in sent)


def test_one_scope_failing_is_named_and_the_retry_sends_only_it(hms, monkeypatch):
    monkeypatch.setenv("AIRFLOW__HMS_MANAGEMENT__MAX_PARALLEL_CALLS", "1")  # in order: the second scope fails
    hms.answer("POST", "/svc/policy", 200, {"policy_id": "pol", "version": 1})
    hms.answer("POST", "/svc/policy", 503, {"error": "injected fault"})
    hms.answer("POST", "/svc/policy", 200, {"policy_id": "pol", "version": 1})

    with pytest.raises(TransientServiceError, match="apply_policy failed for 1 of its targets — foia/doj: "):
        run(ApplyPolicyOperator, APPLY_POLICY)
    step = records().get("p-1").steps[APPLY_POLICY]
    assert {scope: entry["state"] for scope, entry in step["targets"].items()} == {
        "foia/dhs": "applied", "foia/doj": "failed", "foia/state": "applied"}
    assert step["state"] == "up_for_retry" and "foia/doj" in step["error"]

    hms.requests.clear()
    run(ApplyPolicyOperator, APPLY_POLICY, try_number=2)

    assert [r.body["scope"] for r in hms.requests] == ["foia/doj"]
    targets = records().get("p-1").steps[APPLY_POLICY]["targets"]
    assert all(entry["state"] == "applied" for entry in targets.values())
    assert (targets["foia/doj"]["tries"], targets["foia/dhs"]["tries"]) == (2, 1)


def test_a_refused_scope_fails_the_step_for_good_naming_it(hms, monkeypatch):
    monkeypatch.setenv("AIRFLOW__HMS_MANAGEMENT__MAX_PARALLEL_CALLS", "1")
    hms.answer("POST", "/svc/policy", 422, {"error": "rule conflicts with rule 12"})
    hms.answer("POST", "/svc/policy", 200, {"policy_id": "pol", "version": 1})

    with pytest.raises(Exception, match="foia/dhs: POST /svc/policy answered 422") as failed:
        run(ApplyPolicyOperator, APPLY_POLICY)

    assert not isinstance(failed.value, TransientServiceError | PermanentServiceError)  # AirflowFailException
    assert records().get("p-1").steps[APPLY_POLICY]["state"] == "failed"
