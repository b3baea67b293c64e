"""An HMS step within its service's rate budget, against a scripted service and a real records
database: it sends at its slot (waiting a moment in its task), gives its worker slot back for a
slot further off (a reschedule, keeping the reservation), and after a 429 holds every caller back
for the Retry-After and sends again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from airflow.sdk.exceptions import AirflowRescheduleException
from sqlalchemy import text

from hms_management.domain.services import TransientServiceError
from hms_management.domain.steps import APPLY_POLICY, GOVERNANCE_GATE
from hms_management.orchestration.budget import THROTTLED_AGAIN
from hms_management.orchestration.operators import ApplyPolicyOperator
from hms_management.orchestration.records import budgets, records
from hms_management.records.store import Admission
from tests.unit.conftest import context_for

PROPOSAL = {"id": "p-1", "rule": {"queue": "foia"}}


@pytest.fixture(autouse=True)
def approved(proposal_records, hms, monkeypatch):
    monkeypatch.setenv("AIRFLOW__HMS_MANAGEMENT__GOVERNANCE_CHECKS", "false")  # tested on their own
    with proposal_records.engine.begin() as db:
        db.execute(text("TRUNCATE rate_budgets"))
    proposal_records.change("p-1", admission=Admission.of(PROPOSAL, run_id="proposal__p-1", triggered_by="agent",
                                                          submitted_at=datetime.now(UTC)),
                            decision={"status": "approved", "decision_id": "d-1"},
                            steps={GOVERNANCE_GATE: {"state": "success"}})
    hms.answer("POST", "/svc/policy", 200, {"policy_id": "pol-1", "version": 1})
    yield
    with proposal_records.engine.begin() as db:  # the next module's steps find no budget of ours
        db.execute(text("TRUNCATE rate_budgets"))


def budget(per_second: float, burst: int = 1) -> None:
    budgets().seed({"policy": (per_second, burst)}, by="test")


def apply_policy(proposal=PROPOSAL):
    operator = ApplyPolicyOperator(task_id=APPLY_POLICY)
    context = context_for(APPLY_POLICY, proposal)
    operator.render_template_fields(context)
    return operator, context


def test_a_call_within_a_free_budget_goes_at_once(hms):
    budget(10)
    operator, context = apply_policy()

    assert operator.execute(context) == {"default": {"policy_id": "pol-1", "version": 1}}
    assert len(hms.to("POST", "/svc/policy")) == 1


def test_a_slot_further_off_than_a_moment_gives_the_worker_slot_back_keeping_the_reservation(hms):
    budget(0.1)  # one call every ~10 s
    budgets().reserve("policy")  # someone else took the slot that was free
    operator, context = apply_policy()

    with pytest.raises(AirflowRescheduleException) as rescheduled:
        operator.execute(context)

    step = records().get("p-1").steps[APPLY_POLICY]
    slot = datetime.fromisoformat(step["targets"]["default"]["reserved_slot"])
    assert step["state"] == "waiting" and "rate budget of policy" in step["waiting_for"]
    assert (slot - rescheduled.value.reschedule_date).total_seconds() == pytest.approx(2.0, abs=0.3)
    assert hms.to("POST", "/svc/policy") == []


def test_back_from_its_reschedule_the_step_sends_at_its_reserved_slot(hms):
    budget(0.1)
    slot = budgets().reserve("policy").slots[0] + timedelta(seconds=1)  # as a reschedule left it, 1 s ahead
    records().change("p-1", steps={APPLY_POLICY: {"state": "waiting", "targets": {
        "default": {"state": "waiting", "reserved_slot": slot.isoformat()}}}})
    operator, context = apply_policy()

    operator.execute(context)

    assert datetime.now(UTC) >= slot and len(hms.to("POST", "/svc/policy")) == 1


def test_back_too_late_for_its_slot_the_step_reserves_again(hms):
    budget(0.1)
    budgets().reserve("policy")
    late = datetime.now(UTC) - timedelta(seconds=5)
    records().change("p-1", steps={APPLY_POLICY: {"state": "waiting", "targets": {
        "default": {"state": "waiting", "reserved_slot": late.isoformat()}}}})
    operator, context = apply_policy()

    with pytest.raises(AirflowRescheduleException):
        operator.execute(context)  # its new slot is ~10 s off: back to the triggerer-free wait
    slot = records().get("p-1").steps[APPLY_POLICY]["targets"]["default"]["reserved_slot"]
    assert datetime.fromisoformat(slot) > datetime.now(UTC)


def test_a_429_holds_every_caller_back_for_its_retry_after_and_the_call_goes_again(hms):
    budget(100, 5)
    hms.answers.pop(("POST", "/svc/policy"))
    hms.answer("POST", "/svc/policy", 429, {"error": "rate limit exceeded", "retry_after_s": 1})
    hms.answer("POST", "/svc/policy", 200, {"policy_id": "pol-1", "version": 1})
    operator, context = apply_policy()

    started = datetime.now(UTC)
    assert operator.execute(context)["default"]["policy_id"] == "pol-1"

    sent = hms.to("POST", "/svc/policy")
    assert [r.headers["Idempotency-Key"] for r in sent] == ["p-1:policy:default"] * 2
    assert (datetime.now(UTC) - started).total_seconds() >= 1.0  # held back a second (no Retry-After: 1 s)
    assert budgets().get("policy").throttled == 1
    assert records().get("p-1").steps[APPLY_POLICY]["tries"] == 1  # the wait used no retry


def test_a_service_that_keeps_answering_429_fails_the_try_as_transient(hms, monkeypatch):
    monkeypatch.setattr("hms_management.orchestration.budget.DEFAULT_RETRY_AFTER_SECONDS", 0.01)
    budget(1000, 10)
    hms.answers.pop(("POST", "/svc/policy"))
    hms.answer("POST", "/svc/policy", 429, {"error": "rate limit exceeded"})
    operator, context = apply_policy()

    with pytest.raises(TransientServiceError, match="default: POST /svc/policy answered 429"):
        operator.execute(context)
    assert len(hms.to("POST", "/svc/policy")) == THROTTLED_AGAIN + 1


def test_several_scopes_those_due_now_go_the_one_due_later_waits_keeping_its_slot_and_none_is_wasted(hms):
    budget(0.1, burst=2)  # two calls may go now, the next ~10 s later
    several = {"id": "p-1", "targets": [{"scope": scope, "rule": {"queue": scope}} for scope in ("a", "b", "c")]}
    records().change("p-1", admission=Admission.of(several, run_id="proposal__p-1", triggered_by="agent",
                                                   submitted_at=datetime.now(UTC)))
    operator, context = apply_policy(several)

    with pytest.raises(AirflowRescheduleException):
        operator.execute(context)

    targets = records().get("p-1").steps[APPLY_POLICY]["targets"]
    waiting = [scope for scope, entry in targets.items() if entry["state"] == "waiting"]
    assert len(hms.to("POST", "/svc/policy")) == 2 and len(waiting) == 1
    kept = datetime.fromisoformat(targets[waiting[0]]["reserved_slot"])
    assert 8 < (kept - datetime.now(UTC)).total_seconds() < 11
    # Three slots were taken, no more: the next caller's comes one spacing after the kept one.
    assert (budgets().reserve("policy").slots[0] - kept).total_seconds() == pytest.approx(10, abs=0.5)
