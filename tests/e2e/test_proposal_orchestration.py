"""A proposal through Airflow's REST API against the live stack, as an agent and an analyst see it."""

from __future__ import annotations

import time

import httpx
import pytest

from hms_management.client import AirflowClient
from hms_management.domain.proposal import DAG_ID, run_id_for
from tests.live_stack import REQUEST_TIMEOUT_SECONDS

RULE = {"queue": "foia", "strategy": "oldest-first"}


def policies(hms: httpx.Client, proposal_id: str) -> list[dict]:
    response = hms.get(f"/svc/policy/{proposal_id}")
    return response.json()["versions"] if response.status_code == 200 else []


def notifications(hms: httpx.Client, proposal_id: str) -> list[dict]:
    return hms.get("/notifications", params={"proposalId": proposal_id}).json()["items"]


def audit(hms: httpx.Client, proposal_id: str) -> list[dict]:
    return hms.get("/audit/log", params={"proposalId": proposal_id}).json()["items"]


def test_approved_proposal_completes_with_one_policy_notification_and_audit(agent: AirflowClient, hms, proposal_id):
    agent.submit({"id": proposal_id, "rule": RULE, "title": "Optimise the FOIA backlog", "day": "Tue"})

    run = agent.wait(proposal_id)

    assert run.state == "success"
    assert run.note.startswith("Outcome: COMPLETED")
    assert len(policies(hms, proposal_id)) == 1
    assert [n["message"] for n in notifications(hms, proposal_id)] == [
        f"Policy #{proposal_id} live: Optimise the FOIA backlog"
    ]
    [record] = audit(hms, proposal_id)
    assert record["outcome"] == "completed"
    assert record["runId"] == run_id_for(proposal_id)
    states = {task: ti["state"] for task, ti in agent.task_instances(proposal_id).items()}
    assert states == {
        "governance_gate": "success",
        "apply_policy": "success",
        "notify_officers": "success",
        "record_audit": "success",
        "fail_run_if_a_step_failed": "skipped",
    }


def test_same_proposal_twice_is_one_run(agent, hms, proposal_id):
    proposal = {"id": proposal_id, "rule": RULE}
    first = agent.trigger(proposal)
    runs_before = agent.count_runs()

    second = agent.trigger(proposal)

    assert first.status_code == 200
    assert first.json()["dag_run_id"] == run_id_for(proposal_id)  # derived from the id when left out
    assert second.status_code == 409
    assert agent.count_runs() == runs_before
    assert agent.wait(proposal_id).state == "success"
    assert len(policies(hms, proposal_id)) == 1


@pytest.mark.parametrize(
    ("conf", "field", "words"),
    [
        ({"rule": RULE}, "conf.id", "required"),
        ({"id": "{id}"}, "conf.rule", "required"),
        ({"id": "{id}", "rule": RULE, "colour": "red"}, "conf.colour", "unknown field"),
        ({"id": "{id}", "rule": RULE, "token": "eyJhbGciOi"}, "conf.token", "plain text"),
        ({"id": "{id}", "rule": RULE, "day": "Funday"}, "conf.day", ""),
        ({"id": "../x", "rule": RULE}, "conf.id", "pattern"),
    ],
    ids=["missing-id", "missing-rule", "unknown-key", "token-key", "bad-day", "path-trick-id"],
)
def test_invalid_proposal_is_refused_before_any_run_or_call(agent, backend_calls, idle, proposal_id, conf, field,
                                                            words):
    conf = {k: (proposal_id if v == "{id}" else v) for k, v in conf.items()}
    idle()
    runs_before, calls_before = agent.count_runs(), backend_calls()

    response = agent.trigger(conf)

    assert response.status_code == 400
    body = response.json()
    assert field in [e["field"] for e in body["errors"]], body
    assert words in body["detail"]
    time.sleep(1)  # had a run been created, the scheduler would have started it by now
    assert agent.count_runs() == runs_before
    assert backend_calls() == calls_before


def test_run_id_that_is_not_the_proposals_is_refused(agent, proposal_id):
    response = agent.trigger({"id": proposal_id, "rule": RULE}, run_id="something-else")

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "dag_run_id"


# -- nothing applied twice, even when the answer is lost after the side effect ------------------------

HOLD_MS = (REQUEST_TIMEOUT_SECONDS + 2) * 1000  # past the request timeout: the step gives up and retries


def outcome_records(hms: httpx.Client, proposal_id: str) -> list[dict]:
    return [r for r in audit(hms, proposal_id) if r["action"] == "proposal.orchestrated"]


@pytest.mark.parametrize(("step", "route"), [("apply_policy", "/svc/policy"), ("notify_officers", "/notifications"),
                                             ("record_audit", "/audit/log")])
def test_a_retry_after_the_side_effect_was_applied_applies_nothing_twice(agent, hms, proposal_id, step, route):
    # The service applies the first call, then holds its answer past the step's request timeout.
    hms.put("/admin/faults", json={"route": route, "hold_answer_ms": HOLD_MS, "times": 1}).raise_for_status()

    agent.submit({"id": proposal_id, "rule": RULE, "title": "held"})
    run = agent.wait(proposal_id, timeout=180)

    assert run.state == "success"
    assert agent.task_instances(proposal_id)[step]["try_number"] == 2  # it timed out once and retried
    assert len(policies(hms, proposal_id)) == 1
    assert len(notifications(hms, proposal_id)) == 1
    assert [r["outcome"] for r in outcome_records(hms, proposal_id)] == ["completed"]


def test_a_redriven_run_records_its_outcome_once_more_and_its_retry_nothing_more(agent, hms, proposal_id):
    agent.submit({"id": proposal_id, "rule": RULE})
    assert agent.wait(proposal_id).state == "success"
    hms.put("/admin/faults", json={"route": "/audit/log", "hold_answer_ms": HOLD_MS, "times": 1}).raise_for_status()

    # A re-drive clears the run from a step: here the audit step, as an operator would.
    cleared = agent.request("POST", f"/api/v2/dags/{DAG_ID}/clearTaskInstances", json={
        "dag_run_id": run_id_for(proposal_id), "task_ids": ["record_audit"], "include_downstream": True,
        "only_failed": False, "reset_dag_runs": True, "dry_run": False})
    assert cleared.status_code == 200, cleared.text
    run = wait_until_ended_again(agent, proposal_id)

    assert run.state == "success"
    assert agent.task_instances(proposal_id)["record_audit"]["try_number"] >= 2
    assert len(outcome_records(hms, proposal_id)) == 2  # one per attempt of the run, not one per try
    assert len(policies(hms, proposal_id)) == 1


def wait_until_ended_again(agent: AirflowClient, proposal_id: str, timeout: float = 120):
    """The run after a clear: queued or running first, then ended again."""
    deadline = time.monotonic() + timeout
    while True:
        run = agent.run(proposal_id)
        audit_step = agent.task_instances(proposal_id)["record_audit"]
        if run.state in ("success", "failed") and audit_step["state"] in ("success", "failed"):
            return run
        assert time.monotonic() < deadline, f"{proposal_id} did not end again: {run.state}"
        time.sleep(0.5)


# -- the promises, checked in a live run ------------------------------------------------------------


def test_each_step_ran_in_its_services_pool(agent, proposal_id):
    agent.submit({"id": proposal_id, "rule": RULE})
    agent.wait(proposal_id)

    pools = {task: ti["pool"] for task, ti in agent.task_instances(proposal_id).items()
             if task != "fail_run_if_a_step_failed"}
    assert pools == {"governance_gate": "hms_governance", "apply_policy": "hms_policy",
                     "notify_officers": "hms_notifications", "record_audit": "hms_audit"}
