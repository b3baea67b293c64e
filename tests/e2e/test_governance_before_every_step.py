"""Governance before every step, end to end (design.md §9): a reviewer revokes a proposal between its
policy and its notification, and an operator suspends the policy service during a burst.

What the backend stored durably decides each test: policy versions, notifications and audit records,
and its own count of calls per route. The moments that must hold still are held with the backend's
faults (an answer held until released), never with a sleep.
"""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from hms_management.client import ManagementClient
from hms_management.domain.proposal import DAG_ID
from hms_stack.stack import Stack
from tests.live_stack import wait_for_status

RULE = {"queue": "foia", "strategy": "oldest-first"}
POLICY_CALLS = "POST /svc/policy"


@pytest.fixture(scope="module")
def reviewer(stack: Stack):
    with ManagementClient(stack.api_url, "reviewer", stack.credentials()["airflow"]["reviewer"]) as client:
        yield client


@pytest.fixture(autouse=True)
def nothing_suspended(hms: httpx.Client):
    yield
    for item in hms.get("/gov/suspensions").json()["items"]:
        hms.delete(f"/gov/suspensions/{item['service']}")


def policies(hms: httpx.Client, proposal_id: str) -> list[dict]:
    response = hms.get(f"/svc/policy/{proposal_id}")
    return response.json()["versions"] if response.status_code == 200 else []


def notifications(hms: httpx.Client, proposal_id: str) -> list[dict]:
    return hms.get("/notifications", params={"proposalId": proposal_id}).json()["items"]


def outcome_records(hms: httpx.Client, proposal_id: str) -> list[dict]:
    items = hms.get("/audit/log", params={"proposalId": proposal_id}).json()["items"]
    return [item for item in items if item["action"] == "proposal.orchestrated"]


def until(what: str, condition, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"{what}: not after {timeout:.0f} s"
        time.sleep(0.2)
    return found


def test_a_proposal_revoked_between_its_policy_and_its_notification_tells_nobody(
        management, reviewer, hms, proposal_id):
    # The policy service applies the rule and holds its answer: the proposal is provably between
    # its policy step and its notification while the reviewer revokes it.
    hms.put("/admin/faults", json={"route": "/svc/policy", "hold_answer_ms": 60_000, "times": 1}).raise_for_status()
    management.submit({"id": proposal_id, "rule": RULE, "title": "Reorder the FOIA queue"})
    until("the policy answer held", lambda: hms.get("/stats").json()["routes"][POLICY_CALLS]["held"])

    revoked = reviewer.revoke(proposal_id, reason="the rule breaks the FOIA statute")
    hms.delete("/admin/faults")  # the held answer goes out now

    assert revoked.status_code == 200, revoked.text
    final = management.wait(proposal_id)
    assert final["status"] == "revoked"
    assert final["reason"].startswith("revoked by reviewer at ") and "the rule breaks the FOIA statute" in final[
        "reason"]
    assert len(policies(hms, proposal_id)) == 1  # applied before the revocation; changed by a new proposal
    assert notifications(hms, proposal_id) == []
    [record] = outcome_records(hms, proposal_id)
    assert (record["outcome"], record["revokedBy"]) == ("revoked", "reviewer")
    assert [(c["step"], c["answer"]) for c in record["checks"]] == [("apply_policy", "approved"),
                                                                    ("notify_officers", "revoked")]
    detail = management.status(proposal_id)
    assert [c["answer"] for c in detail["checks"]] == ["approved", "revoked"]
    assert management.counts()["revoked"] >= 1


def test_revoking_a_proposal_in_review_ends_it_revoked_without_a_decision(management, reviewer, hms, proposal_id):
    management.submit({"id": proposal_id, "rule": RULE, "impact": "high"})
    wait_for_status(management, proposal_id, "awaiting_governance")

    assert reviewer.revoke(proposal_id, reason="withdrawn by the office").status_code == 200

    final = management.wait(proposal_id)
    assert final["status"] == "revoked" and policies(hms, proposal_id) == []
    assert outcome_records(hms, proposal_id)[-1]["outcome"] == "revoked"
    assert reviewer.decide(proposal_id, approved=True, reason="too late").status_code == 409


def test_who_may_revoke_and_when(management, reviewer, stack, hms, proposal_id):
    management.submit({"id": proposal_id, "rule": RULE, "impact": "high"})
    wait_for_status(management, proposal_id, "awaiting_governance")
    analyst = ManagementClient(stack.api_url, "analyst", stack.credentials()["airflow"]["analyst"])
    own = f"{proposal_id}-own"
    reviewer.submit({"id": own, "rule": RULE, "impact": "high"})
    wait_for_status(reviewer, own, "awaiting_governance")

    assert management.revoke(proposal_id, reason="agents may not").status_code == 403
    assert analyst.revoke(proposal_id, reason="viewers may not").status_code == 403
    assert reviewer.revoke(own, reason="four eyes").status_code == 403
    assert reviewer.revoke(f"nobody-{uuid.uuid4().hex[:6]}", reason="x").status_code == 404
    assert reviewer.revoke(proposal_id, reason="").status_code == 400
    assert management.status(proposal_id)["status"] == "awaiting_governance"  # nothing changed

    denied = f"{proposal_id}-done"
    management.submit({"id": denied, "rule": RULE, "day": "Sat"}, wait=60)
    ended = reviewer.revoke(denied, reason="too late")
    assert ended.status_code == 409 and "already ended" in ended.json()["detail"]
    analyst.close()


def test_a_suspended_policy_service_gets_no_call_until_the_lift_then_every_proposal_completes_once(
        management, agent, hms, proposal_id):
    hms.put("/gov/suspensions/policy", json={"reason": "incident 42: bad rules went live",
                                             "by": "ops"}).raise_for_status()
    before = hms.get("/stats").json()["routes"][POLICY_CALLS]["calls"]
    burst = [f"{proposal_id}-{n:02d}" for n in range(50)]
    for each in burst:
        management.submit({"id": each, "rule": RULE})

    # Every proposal at work has reached its policy step and waits there, deferred: no worker slot,
    # no pool slot (the rest wait queued behind max_running_proposals).
    def waiting() -> int:
        answer = agent.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/~/taskInstances",
                               params={"state": "deferred", "task_id": "apply_policy"}).json()
        return answer["total_entries"]

    until("the running proposals held at their policy step", lambda: waiting() >= 6)
    pool = agent.request("GET", "/api/v2/pools/hms_policy").json()
    assert (pool["occupied_slots"], pool["deferred_slots"]) == (0, waiting())
    assert hms.get("/stats").json()["routes"][POLICY_CALLS]["calls"] == before  # no call reached it
    held = management.status(burst[0])
    assert held["status"] == "running"

    hms.delete("/gov/suspensions/policy")

    for each in burst:
        assert management.wait(each, timeout=300)["status"] == "completed"
    assert all(len(policies(hms, each)) == 1 for each in burst)
    assert all(len(notifications(hms, each)) == 1 for each in burst)
    assert hms.get("/stats").json()["routes"][POLICY_CALLS]["calls"] == before + 50
