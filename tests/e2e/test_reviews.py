"""Human review end to end: a proposal in review is a finished, parked run that holds nothing; the
review watcher resumes that same run when a reviewer decides or the review times out.

Reviewers decide through /management (the Proposals view calls the same endpoint); the decision
reaches the reference governance service under the reviewer's Airflow user name.
"""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import pytest

from hms_management.client import ManagementClient
from hms_management.domain.proposal import DAG_ID, run_id_for
from hms_stack.stack import Stack
from tests.live_stack import REVIEW_TIMEOUT_SECONDS, wait_for_status

RULE = {"queue": "foia", "strategy": "oldest-first"}


@pytest.fixture(scope="module")
def reviewer(stack: Stack):
    with ManagementClient(stack.api_url, "reviewer", stack.credentials()["airflow"]["reviewer"]) as client:
        yield client


def parked(management: ManagementClient, proposal_id: str, **fields) -> dict:
    management.submit({"id": proposal_id, "rule": RULE, "impact": "high", **fields})
    return wait_for_status(management, proposal_id, "awaiting_governance")


def steps_of(status: dict) -> dict[str, tuple[str, int]]:
    return {step["task_id"]: (step["state"], step["tries"]) for step in status["steps"]}


def policies(hms: httpx.Client, proposal_id: str) -> list[dict]:
    response = hms.get(f"/svc/policy/{proposal_id}")
    return response.json()["versions"] if response.status_code == 200 else []


def outcome_records(hms: httpx.Client, proposal_id: str) -> list[dict]:
    items = hms.get("/audit/log", params={"proposalId": proposal_id}).json()["items"]
    return [item for item in items if item["action"] == "proposal.orchestrated"]


def test_a_proposal_in_review_is_a_finished_run_holding_nothing_until_a_reviewer_approves_it(
        management, reviewer, agent, hms, proposal_id):
    status = parked(management, proposal_id, title="Reorder the FOIA queue")

    run = agent.run(proposal_id)
    assert run.state == "success" and run.note.startswith("IN REVIEW: decision ")
    assert steps_of(status) == {"governance_gate": ("success", 1), "apply_policy": ("skipped", 0),
                                "notify_officers": ("skipped", 0), "record_audit": ("skipped", 0),
                                "fail_run_if_a_step_failed": ("skipped", 0)}
    deferred = agent.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/~/taskInstances",
                             params={"state": "deferred"}).json()["total_entries"]
    assert deferred == 0  # no trigger of its own, no worker, no pool slot, no scheduler turn
    review = status["governance"]
    deadline = datetime.fromisoformat(review["deadline"]) - datetime.fromisoformat(review["created_at"])
    assert deadline.total_seconds() == REVIEW_TIMEOUT_SECONDS

    decided = reviewer.decide(proposal_id, approved=True, reason="matches the FOIA plan")
    assert decided.status_code == 200, decided.text
    final = management.wait(proposal_id)

    assert final["status"] == "completed"
    assert agent.run(proposal_id).run_id == run_id_for(proposal_id)  # the same run, resumed
    assert steps_of(management.status(proposal_id))["governance_gate"] == ("success", 2)
    assert len(policies(hms, proposal_id)) == 1
    [record] = outcome_records(hms, proposal_id)
    assert (record["outcome"], record["reviewer"], record["decisionId"]) == ("completed", "reviewer",
                                                                             review["decision_id"])


def test_a_reviewer_denies_with_a_reason_and_nothing_is_applied(management, reviewer, hms, proposal_id):
    parked(management, proposal_id)

    assert reviewer.decide(proposal_id, approved=False, reason="conflicts with rule 12").status_code == 200
    final = management.wait(proposal_id)

    assert (final["status"], final["reason"]) == ("denied", "conflicts with rule 12")
    assert policies(hms, proposal_id) == []
    assert [r["outcome"] for r in outcome_records(hms, proposal_id)] == ["denied"]


def test_nobody_decides_the_review_times_out_after_one_reminder(management, hms, proposal_id):
    parked(management, proposal_id)

    final = management.wait(proposal_id, timeout=REVIEW_TIMEOUT_SECONDS + 60)

    assert final["status"] == "review_timeout"
    assert [r["outcome"] for r in outcome_records(hms, proposal_id)] == ["review_timeout"]
    reminders = [n for n in hms.get("/notifications", params={"proposalId": proposal_id}).json()["items"]
                 if n.get("kind") == "review_reminder"]
    assert len(reminders) == 1 and "times out at" in reminders[0]["message"]


def test_who_may_decide_and_when(stack, management, reviewer, analyst, proposal_id):
    own = f"{proposal_id}-own"
    reviewer.submit({"id": own, "rule": RULE, "impact": "high"})  # a reviewer raising a proposal of their own
    wait_for_status(management, own, "awaiting_governance")
    parked(management, proposal_id)

    assert reviewer.decide(own, approved=True, reason="mine").status_code == 403  # four-eyes
    assert management.decide(proposal_id, approved=True, reason="I am an agent").status_code == 403
    assert analyst.decide(proposal_id, approved=True, reason="I only read").status_code == 403
    assert reviewer.decide("no-such-proposal", approved=True, reason="?").status_code == 404
    bad = reviewer.decide(proposal_id, approved="yes", reason="")  # type: ignore[arg-type]
    assert bad.status_code == 400 and {e["field"] for e in bad.json()["errors"]} == {"approved", "reason"}
    assert management.status(proposal_id)["status"] == "awaiting_governance"  # none of these changed anything

    assert reviewer.decide(proposal_id, approved=True, reason="fine").status_code == 200
    again = reviewer.decide(proposal_id, approved=False, reason="changed my mind")
    assert again.status_code == 409, again.text
    assert management.wait(proposal_id)["status"] == "completed"
    assert reviewer.decide(proposal_id, approved=False, reason="too late").status_code == 409


def test_deciding_after_the_review_timed_out_is_refused(management, reviewer, proposal_id):
    parked(management, proposal_id)
    assert management.wait(proposal_id, timeout=REVIEW_TIMEOUT_SECONDS + 60)["status"] == "review_timeout"

    late = reviewer.decide(proposal_id, approved=True, reason="sorry, late")

    assert late.status_code == 409 and "not awaiting review" in late.json()["detail"]


def test_a_decision_seen_twice_is_applied_once(stack, management, hms, proposal_id):
    status = parked(management, proposal_id)
    decision_id = status["governance"]["decision_id"]
    hms.post(f"/gov/decisions/{decision_id}", json={"approved": True, "reviewer": "officer-7"}).raise_for_status()
    assert management.wait(proposal_id)["status"] == "completed"
    gate_tries = steps_of(management.status(proposal_id))["governance_gate"][1]

    # The watcher forgets where it stood and reads every decision again.
    admin = httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {stack.token()}"})
    assert admin.delete("/api/v2/variables/hms_review_watch").status_code in (204, 404)
    second = hms.post(f"/gov/decisions/{decision_id}", json={"approved": False, "reviewer": "officer-8"})
    assert second.status_code == 409
    wait_until_watch_caught_up(admin)

    assert steps_of(management.status(proposal_id))["governance_gate"][1] == gate_tries
    assert len(policies(hms, proposal_id)) == 1
    assert [r["outcome"] for r in outcome_records(hms, proposal_id)] == ["completed"]


def wait_until_watch_caught_up(admin: httpx.Client, timeout: float = 60) -> None:
    """Until the watcher has saved its place again (it read the feed from the start meanwhile)."""
    deadline = time.monotonic() + timeout
    while admin.get("/api/v2/variables/hms_review_watch").status_code != 200:
        assert time.monotonic() < deadline, "the review watcher never saved its place again"
        time.sleep(0.5)


def test_the_review_deadline_is_the_decisions_and_survives_a_cleared_gate(stack, management, proposal_id):
    before = parked(management, proposal_id)["governance"]
    admin = httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {stack.token()}"})

    cleared = admin.post(f"/api/v2/dags/{DAG_ID}/clearTaskInstances", json={
        "dag_run_id": run_id_for(proposal_id), "task_ids": ["governance_gate"], "include_downstream": True,
        "only_failed": False, "reset_dag_runs": True, "dry_run": False})
    assert cleared.status_code == 200, cleared.text
    after = wait_until_parked_again(management, proposal_id)

    assert after["governance"]["decision_id"] == before["decision_id"]
    assert after["governance"]["deadline"] == before["deadline"]


def wait_until_parked_again(management: ManagementClient, proposal_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = management.status(proposal_id)
        if status["status"] == "awaiting_governance" and steps_of(status)["governance_gate"][1] == 2:
            return status
        assert time.monotonic() < deadline, f"{proposal_id} did not park again: {status['status']}"
        time.sleep(0.5)
