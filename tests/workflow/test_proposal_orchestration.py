"""Whole proposal runs of the real DAG in `dag.test()`: what the run, each task, the HMS services,
the proposal's record and the audit record come to for each outcome — approved, denied, a review
parked or timed out, revoked before a step, held by a suspension, a retry, a refused step and a
step failing for good.

Each HMS service is the scripted one (tests/scripted_hms.py), so a test reads every call the
workflow made: its order, its Idempotency-Key and its body. What only a live stack shows (pools,
the REST trigger's 400s and 409s, the scheduler, the run note, real timeouts) stays in tests/e2e.
"""

from __future__ import annotations

import re
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hms_management.domain.proposal import run_id_for
from hms_management.domain.steps import APPLY_POLICY, FLAG_FAILURE, GOVERNANCE_GATE, NOTIFY_OFFICERS, RECORD_AUDIT
from tests.scripted_hms import TOKEN, ScriptedHms

RULE = {"queue": "foia", "strategy": "oldest-first"}
DECISION = "d-1"
APPROVED = {"status": "approved", "decision_id": DECISION, "reason": "no governance rule objects"}
WEEKEND = "processing is not allowed on weekends (day: Sat)"
REVOKED = {"status": "revoked", "decision_id": DECISION, "reason": "the rule breaks the FOIA statute", "by": "rita",
           "at": "2026-12-04T10:00:00+00:00"}
POLICY = {"policy_id": "pol-1", "version": 3}
AUDIT_ID = "a-1"


@pytest.fixture
def proposal_id(request: pytest.FixtureRequest) -> str:
    """The proposal's id, from the test's name (readable in a log) and unique to the test."""
    name = request.node.name.removeprefix("test_")
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '-', name)[:40]}-{zlib.crc32(name.encode()):08x}"


def approving(hms: ScriptedHms) -> None:
    """Governance approves the proposal at the gate and lets it take every step."""
    hms.answer("POST", "/gov/validate", 200, APPROVED)
    hms.answer("POST", "/gov/check", 200, {"status": "approved", "decision_id": DECISION})


def services_answering(hms: ScriptedHms, *, but: str | None = None) -> None:
    """The policy service, notifications and the audit log (all `but` one) apply what they get."""
    applied = {"/svc/policy": POLICY, "/notifications": {"notification_id": "n-1"},
               "/audit/log": {"audit_id": AUDIT_ID}}
    for route, answer in applied.items():
        if route != but:
            hms.answer("POST", route, 200, answer)


def calls(hms: ScriptedHms) -> list[str]:
    return [request.path for request in hms.requests]


def checked_steps(hms: ScriptedHms) -> list[str]:
    """The steps governance was asked about right before their calls, in order."""
    return [request.body["step"] for request in hms.to("POST", "/gov/check")]


def audited(hms: ScriptedHms, record: Any, proposal_id: str) -> dict[str, Any]:
    """The one audit record the run wrote, which says what the proposal's record says; its body."""
    [sent] = hms.to("POST", "/audit/log")
    assert sent.headers["Idempotency-Key"] == f"{proposal_id}:record_audit"
    assert sent.headers["Authorization"] == TOKEN
    body = sent.body
    assert (body["proposalId"], body["runId"], body["action"]) == (proposal_id, run_id_for(proposal_id),
                                                                  "proposal.orchestrated")
    assert (body["outcome"], body["failedStep"], body["reason"]) == (record.status, record.failed_step,
                                                                     record.reason)
    assert body["checks"] == record.checks  # the decision log, as the proposal's record keeps it
    assert record.outcome["audit_id"] == AUDIT_ID
    return body


# -- approved, denied, in review ---------------------------------------------------------------------


def test_an_approved_proposal_completes_with_one_policy_one_notification_and_one_audit_record(
        run_proposal, hms, proposal_records, proposal_id):
    approving(hms)
    services_answering(hms)
    proposal = {"id": proposal_id, "rule": RULE, "title": "Optimise the FOIA backlog", "day": "Tue"}

    run = run_proposal(proposal)

    assert run.state == "success"
    assert run.states() == {GOVERNANCE_GATE: "success", APPLY_POLICY: "success", NOTIFY_OFFICERS: "success",
                            RECORD_AUDIT: "success", FLAG_FAILURE: "skipped"}
    # Governance first, then each step asks governance again right before its call (design.md §9).
    assert calls(hms) == ["/gov/validate", "/gov/check", "/svc/policy", "/gov/check", "/notifications",
                          "/audit/log"]
    [asked] = hms.to("POST", "/gov/validate")
    assert asked.headers["Idempotency-Key"] == f"{proposal_id}:governance_gate"
    assert asked.body["proposal"]["id"] == proposal_id
    assert [check.body for check in hms.to("POST", "/gov/check")] == [
        {"decision_id": DECISION, "proposal_id": proposal_id, "step": APPLY_POLICY, "service": "policy"},
        {"decision_id": DECISION, "proposal_id": proposal_id, "step": NOTIFY_OFFICERS, "service": "notifications"}]
    [policy] = hms.to("POST", "/svc/policy")
    assert policy.headers["Idempotency-Key"] == f"{proposal_id}:policy:default"
    assert (policy.body["scope"], policy.body["rule"]) == ("default", RULE)
    [notification] = hms.to("POST", "/notifications")
    assert notification.headers["Idempotency-Key"] == f"{proposal_id}:notify:foia-officers"
    assert notification.body["message"] == f"Policy #{proposal_id} live: Optimise the FOIA backlog"
    assert notification.body["policies"] == {"default": POLICY}
    record = proposal_records.get(proposal_id)
    assert (record.status, record.run_state, record.failed_step) == ("completed", "success", None)
    assert [(c["step"], c["service"], c["answer"]) for c in record.checks] == [
        (APPLY_POLICY, "policy", "approved"), (NOTIFY_OFFICERS, "notifications", "approved")]
    audit = audited(hms, record, proposal_id)
    assert (audit["decisionId"], audit["title"]) == (DECISION, "Optimise the FOIA backlog")
    assert [(t["scope"], t["state"], t["policyVersion"]) for t in audit["targets"]] == [("default", "applied", 3)]
    assert [(n["group"], n["notificationId"]) for n in audit["notified"]] == [("foia-officers", "n-1")]


def test_a_proposal_governance_denies_calls_no_service_and_its_denial_is_audited(
        run_proposal, hms, proposal_records, proposal_id):
    hms.answer("POST", "/gov/validate", 400, {"error": WEEKEND, "decision_id": "d-2"})
    services_answering(hms)

    run = run_proposal({"id": proposal_id, "rule": RULE, "day": "Sat"})

    assert run.state == "success"  # a denial is a business outcome, not a fault
    assert run.states() == {GOVERNANCE_GATE: "skipped", APPLY_POLICY: "skipped", NOTIFY_OFFICERS: "skipped",
                            RECORD_AUDIT: "success", FLAG_FAILURE: "skipped"}
    assert calls(hms) == ["/gov/validate", "/audit/log"]  # no check, no policy, no notification
    record = proposal_records.get(proposal_id)
    assert (record.status, record.reason) == ("denied", WEEKEND)
    audit = audited(hms, record, proposal_id)
    assert (audit["decisionId"], audit["targets"], audit["notified"], audit["checks"]) == ("d-2", [], [], [])


def test_a_proposal_sent_to_review_is_parked_with_nothing_sent_or_audited(
        run_proposal, hms, proposal_records, proposal_id):
    created = datetime.now(UTC).isoformat()
    review = {"status": "review", "decision_id": "d-9", "reason": "high-impact proposal", "created_at": created}
    hms.answer("POST", "/gov/validate", 202, review)
    hms.answer("GET", "/gov/decisions/d-9", 200, {**review, "decided_at": None, "reviewer": None})

    run = run_proposal({"id": proposal_id, "rule": RULE, "impact": "high"})

    # Parked: the run ends green at once, holding nothing; the review watcher resumes it (tests/e2e).
    assert run.state == "success"
    assert run.states() == {GOVERNANCE_GATE: "success", APPLY_POLICY: "skipped", NOTIFY_OFFICERS: "skipped",
                            RECORD_AUDIT: "skipped", FLAG_FAILURE: "skipped"}
    assert calls(hms) == ["/gov/validate", "/gov/decisions/d-9"]
    record = proposal_records.get(proposal_id)
    assert (record.status, record.decision["decision_id"]) == ("awaiting_governance", "d-9")
    assert record.decision["deadline"] is not None


def test_a_review_past_its_deadline_times_out_at_the_gate_and_is_audited(
        run_proposal, hms, proposal_records, proposal_id):
    created = (datetime.now(UTC) - timedelta(hours=73)).isoformat()  # review_timeout_seconds: 72 h
    review = {"status": "review", "decision_id": "d-9", "reason": "high-impact proposal", "created_at": created}
    hms.answer("POST", "/gov/validate", 202, review)
    hms.answer("GET", "/gov/decisions/d-9", 200, {**review, "decided_at": None, "reviewer": None})
    services_answering(hms)

    run = run_proposal({"id": proposal_id, "rule": RULE, "impact": "high"})

    assert run.state == "success"
    assert run.states()[GOVERNANCE_GATE] == run.states()[APPLY_POLICY] == "skipped"
    assert run.states()[RECORD_AUDIT] == "success"
    assert "/svc/policy" not in calls(hms) and "/notifications" not in calls(hms)
    record = proposal_records.get(proposal_id)
    assert record.status == "review_timeout" and "before the review deadline" in record.reason
    assert audited(hms, record, proposal_id)["decisionId"] == "d-9"


# -- governance before every step (design.md §9) -----------------------------------------------------


def test_a_revocation_before_the_policy_step_stops_every_call_and_the_audit_says_who_revoked(
        run_proposal, hms, proposal_records, proposal_id):
    hms.answer("POST", "/gov/validate", 200, APPROVED)
    hms.answer("POST", "/gov/check", 200, REVOKED)
    services_answering(hms)

    run = run_proposal({"id": proposal_id, "rule": RULE})

    assert run.state == "success"  # governance's word, not a fault
    assert run.states() == {GOVERNANCE_GATE: "success", APPLY_POLICY: "skipped", NOTIFY_OFFICERS: "skipped",
                            RECORD_AUDIT: "success", FLAG_FAILURE: "skipped"}
    assert calls(hms) == ["/gov/validate", "/gov/check", "/audit/log"]
    record = proposal_records.get(proposal_id)
    assert record.status == "revoked" and "the rule breaks the FOIA statute" in record.reason
    audit = audited(hms, record, proposal_id)
    assert (audit["revokedBy"], audit["revokedAt"]) == ("rita", REVOKED["at"])
    assert [(c["step"], c["answer"]) for c in audit["checks"]] == [(APPLY_POLICY, "revoked")]


def test_a_step_held_by_a_suspension_waits_in_the_trigger_then_asks_again_and_calls(
        run_proposal, hms, proposal_records, proposal_id):
    hms.answer("POST", "/gov/validate", 200, APPROVED)
    hms.answer("POST", "/gov/check", 200, {"status": "suspended", "decision_id": DECISION, "service": "policy",
                                           "reason": "incident 42", "by": "ops",
                                           "at": datetime.now(UTC).isoformat()})
    hms.answer("POST", "/gov/check", 200, {"status": "approved", "decision_id": DECISION})
    hms.answer("GET", "/gov/suspensions", 200, {"items": []})  # lifted by the time the trigger looks
    services_answering(hms)

    run = run_proposal({"id": proposal_id, "rule": RULE})

    assert run.state == "success"
    assert run.tries(APPLY_POLICY) == 1  # a deferral, not a retry
    assert calls(hms) == ["/gov/validate", "/gov/check", "/gov/suspensions", "/gov/check", "/svc/policy",
                          "/gov/check", "/notifications", "/audit/log"]
    record = proposal_records.get(proposal_id)
    assert record.status == "completed"
    assert [(c["step"], c["answer"]) for c in record.checks] == [
        (APPLY_POLICY, "suspended"), (APPLY_POLICY, "approved"), (NOTIFY_OFFICERS, "approved")]
    audited(hms, record, proposal_id)


# -- retries and failed steps ------------------------------------------------------------------------


def test_a_policy_503_is_retried_under_the_same_key_and_the_proposal_completes(
        run_proposal, hms, proposal_records, proposal_id):
    approving(hms)
    hms.answer("POST", "/svc/policy", 503, {"error": "injected fault"})
    services_answering(hms)  # then 200, as every later try

    run = run_proposal({"id": proposal_id, "rule": RULE})

    assert run.state == "success"
    assert run.tries(APPLY_POLICY) == 2
    assert run.states()[FLAG_FAILURE] == "skipped"
    # The same key on both tries: a service that applied the first never applies it twice.
    assert [r.headers["Idempotency-Key"] for r in hms.to("POST", "/svc/policy")] == [
        f"{proposal_id}:policy:default"] * 2
    assert checked_steps(hms) == [APPLY_POLICY, APPLY_POLICY, NOTIFY_OFFICERS]  # every try asks first
    assert len(hms.to("POST", "/notifications")) == 1
    record = proposal_records.get(proposal_id)
    assert record.status == "completed"
    assert record.steps[APPLY_POLICY]["targets"]["default"]["tries"] == 2
    audit = audited(hms, record, proposal_id)
    assert [(t["scope"], t["state"], t["tries"]) for t in audit["targets"]] == [("default", "applied", 2)]


@pytest.mark.parametrize(("step", "route", "status"), [(APPLY_POLICY, "/svc/policy", 422),
                                                       (NOTIFY_OFFICERS, "/notifications", 400)])
def test_a_refused_step_fails_at_once_the_run_goes_red_and_the_audit_names_the_step(
        run_proposal, hms, proposal_records, proposal_id, step, route, status):
    approving(hms)
    hms.answer("POST", route, status, {"error": "rule is not valid"})
    services_answering(hms, but=route)

    run = run_proposal({"id": proposal_id, "rule": RULE})

    assert run.state == "failed"
    assert run.tasks[step] == ("failed", 1)  # a refusal is not retried
    assert (run.states()[RECORD_AUDIT], run.states()[FLAG_FAILURE]) == ("success", "failed")
    assert len(hms.to("POST", route)) == 1
    if step == APPLY_POLICY:
        assert run.states()[NOTIFY_OFFICERS] == "upstream_failed"
        assert hms.to("POST", "/notifications") == []
    record = proposal_records.get(proposal_id)
    assert (record.status, record.failed_step) == ("failed", step)
    audit = audited(hms, record, proposal_id)
    assert f"answered {status}" in audit["reason"]
    assert audit["transient"] is False  # no re-drive will change a refusal


def test_a_policy_503_on_every_try_fails_the_run_after_its_retries_and_the_audit_says_it_may_pass(
        run_proposal, hms, proposal_records, proposal_id):
    approving(hms)
    hms.answer("POST", "/svc/policy", 503, {"error": "injected fault"})  # the last answer scripted repeats
    services_answering(hms, but="/svc/policy")

    run = run_proposal({"id": proposal_id, "rule": RULE})

    assert run.state == "failed"
    assert run.tasks[APPLY_POLICY] == ("failed", 4)  # the first try and three retries
    assert (run.states()[NOTIFY_OFFICERS], run.states()[RECORD_AUDIT], run.states()[FLAG_FAILURE]) == (
        "upstream_failed", "success", "failed")
    assert checked_steps(hms) == [APPLY_POLICY] * 4
    assert hms.to("POST", "/notifications") == []
    record = proposal_records.get(proposal_id)
    assert (record.status, record.failed_step) == ("failed", APPLY_POLICY)
    audit = audited(hms, record, proposal_id)
    assert "503" in audit["reason"]
    assert audit["transient"] is True  # a later sweep may re-drive it
    assert [(t["scope"], t["state"], t["tries"]) for t in audit["targets"]] == [("default", "failed", 4)]
