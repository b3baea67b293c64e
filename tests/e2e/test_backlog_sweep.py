"""The backlog sweep against the live stack: queued proposals become runs, nothing twice, nothing lost.

Sweeps are triggered by hand through the REST API, as an operator would, and waited on. Assertions
read what users read: the sweep run's state and note, its summary XCom, the backlog entries, the
proposal runs, and what the HMS backend recorded (policies, audit log).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import urllib3

from hms_management.client import AirflowClient
from hms_management.domain.proposal import DAG_ID, run_id_for
from hms_management.sweep.plan import REDRIVEN_ACTION, START_QUEUED, SUMMARIZE, SWEEP_DAG_ID
from hms_stack.stack import Stack

RULE = {"queue": "foia", "strategy": "oldest-first"}
BULK = 50


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Iterator[AirflowClient]:
    """Airflow's REST API as an operator (role admin): triggers and reads sweeps."""
    client = AirflowClient(stack.api_url, "admin", stack.credentials()["airflow"]["admin"])
    yield client
    client.close()


def trigger_sweep(admin: AirflowClient) -> str:
    response = admin.request("POST", f"/api/v2/dags/{SWEEP_DAG_ID}/dagRuns", json={"logical_date": None})
    assert response.status_code == 200, response.text
    return response.json()["dag_run_id"]


def answer(admin: AirflowClient, path: str, **params: Any) -> dict[str, Any] | None:
    """A GET's body, or None when the api-server is too busy to answer (it has been, here, while
    dozens of runs started at once on two cores): pollers ask again rather than fail."""
    try:
        response = admin.request("GET", path, params=params)
    except (urllib3.exceptions.HTTPError, httpx.TransportError):  # the client's transport, or its login's
        return None
    return response.json() if response.status_code == 200 else None


def wait_for_sweeps(admin: AirflowClient, *run_ids: str, timeout: float = 600) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        runs = [answer(admin, f"/api/v2/dags/{SWEEP_DAG_ID}/dagRuns/{r}") or {"state": "?"} for r in run_ids]
        if all(run["state"] in ("success", "failed") for run in runs):
            return runs
        if time.monotonic() > deadline:
            raise TimeoutError(f"sweeps {run_ids} not finished after {timeout:.0f} s: {[r['state'] for r in runs]}")
        time.sleep(0.5)


def answer_soon(admin: AirflowClient, path: str, **params: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (body := answer(admin, path, **params)) is None:
        assert time.monotonic() < deadline, f"the api-server did not answer GET {path} for a minute"
        time.sleep(1)
    return body


def sweep_runs(admin: AirflowClient) -> list[dict[str, Any]]:
    return answer_soon(admin, f"/api/v2/dags/{SWEEP_DAG_ID}/dagRuns", limit=1000)["dag_runs"]


def sweep_summary(admin: AirflowClient, run_id: str) -> dict[str, Any]:
    path = f"/api/v2/dags/{SWEEP_DAG_ID}/dagRuns/{run_id}/taskInstances/{SUMMARIZE}/xcomEntries/return_value"
    return answer_soon(admin, path)["value"]


def count_proposal_runs(admin: AirflowClient) -> int:
    return answer_soon(admin, f"/api/v2/dags/{DAG_ID}/dagRuns", limit=1)["total_entries"]


def proposal_runs(admin: AirflowClient, marker: str) -> list[dict[str, Any]] | None:
    """Every proposal run whose id contains `marker` (None if the api-server did not answer)."""
    body = answer(admin, f"/api/v2/dags/{DAG_ID}/dagRuns", run_id_pattern=marker, limit=1000)
    return body["dag_runs"] if body else None


def wait_for_proposal_runs(admin: AirflowClient, marker: str, count: int, timeout: float = 600) -> list[dict]:
    """Wait until `count` runs matching `marker` exist and all are finished (polled all at once)."""
    deadline = time.monotonic() + timeout
    while True:
        runs = proposal_runs(admin, marker) or []
        if len(runs) >= count and all(r["state"] in ("success", "failed") for r in runs):
            return runs
        if time.monotonic() > deadline:
            states = sorted(r["state"] for r in runs)
            raise TimeoutError(f"{len(runs)} of {count} runs, states {states}, after {timeout:.0f} s")
        time.sleep(1)


def queue(hms: httpx.Client, proposal: dict[str, Any]) -> None:
    response = hms.post("/backlog/proposals", json=proposal)
    assert response.status_code in (200, 202), response.text


def backlog_entries(hms: httpx.Client, status: str) -> dict[str, dict[str, Any]]:
    items = hms.get("/backlog/proposals", params={"status": status, "limit": 10_000}).json()["items"]
    return {item["id"]: item for item in items}


def policies(hms: httpx.Client, proposal_id: str) -> list[dict]:
    response = hms.get(f"/svc/policy/{proposal_id}")
    return response.json()["versions"] if response.status_code == 200 else []


def audit(hms: httpx.Client, proposal_id: str) -> list[dict]:
    return hms.get("/audit/log", params={"proposalId": proposal_id}).json()["items"]


# -- one backlog, two sweeps triggered at once -----------------------------------------------------


@pytest.fixture(scope="module")
def swept(admin: AirflowClient, hms: httpx.Client, stack: Stack) -> dict[str, Any]:
    """50 queued proposals, one queued twice, one invalid, one that already has a run; then two
    sweeps triggered at once, and every run they started waited on.

    The stack's own schedule may add a sweep meanwhile (one runs when the DAG appears, then every
    15 minutes): every sweep that ran is collected, so that a scheduled one changes no verdict.
    """
    marker = f"bl{uuid.uuid4().hex[:6]}"
    ids = {
        "bulk": [f"{marker}-bulk-{n:02d}" for n in range(BULK)],
        "twice": f"{marker}-twice",
        "invalid": f"{marker}-invalid",
        "direct": f"{marker}-direct",
    }
    earlier = sweep_runs(admin)
    wait_for_sweeps(admin, *(run["dag_run_id"] for run in earlier))
    agent = AirflowClient(stack.api_url, "agent", stack.credentials()["airflow"]["agent"])
    agent.submit({"id": ids["direct"], "rule": RULE})  # an agent raised it live before it was queued
    agent.close()
    for proposal_id in ids["bulk"]:
        queue(hms, {"id": proposal_id, "rule": RULE, "title": "Optimise the FOIA backlog"})
    queue(hms, {"id": ids["twice"], "rule": RULE})
    queue(hms, {"id": ids["twice"], "rule": RULE, "title": "the same proposal again"})
    queue(hms, {"id": ids["invalid"], "rule": RULE, "token": "eyJhbGciOi"})
    queue(hms, {"id": ids["direct"], "rule": RULE})
    runs_before = count_proposal_runs(admin)

    mine = wait_for_sweeps(admin, trigger_sweep(admin), trigger_sweep(admin))
    known = {run["dag_run_id"] for run in earlier}
    every = wait_for_sweeps(admin, *(r["dag_run_id"] for r in sweep_runs(admin) if r["dag_run_id"] not in known))
    runs = wait_for_proposal_runs(admin, marker, BULK + 2)  # the bulk, `twice`, and `direct` from before
    return {
        "ids": ids,
        "mine": mine,
        "every": every,
        "summaries": [sweep_summary(admin, run["dag_run_id"]) for run in every],
        "runs": {run["dag_run_id"]: run for run in runs},
        "new_runs": count_proposal_runs(admin) - runs_before,
    }


def test_fifty_queued_proposals_become_fifty_successful_runs_each_with_one_policy(swept, hms):
    ids = swept["ids"]["bulk"]

    assert any(set(ids) <= set(s["started"]) for s in swept["summaries"])  # one sweep took them all
    assert [swept["runs"][run_id_for(i)]["state"] for i in ids] == ["success"] * BULK
    assert [len(policies(hms, i)) for i in ids] == [1] * BULK
    taken = backlog_entries(hms, "taken")
    assert all(taken[i]["run_id"] == run_id_for(i) for i in ids)


def test_two_sweeps_at_once_start_no_proposal_twice(swept, hms):
    assert [s["state"] for s in swept["every"]] == ["success"] * len(swept["every"])
    notes = {run["dag_run_id"]: run["note"] for run in swept["every"]}
    headlines = {run["dag_run_id"]: s["headline"] for run, s in zip(swept["every"], swept["summaries"], strict=True)}
    assert notes == headlines  # what the analyst reads on each sweep run
    started = [i for s in swept["summaries"] for i in s["started"]]
    assert len(started) == len(set(started)) == BULK + 1  # each started by exactly one sweep
    assert swept["new_runs"] == BULK + 1
    assert len(policies(hms, swept["ids"]["twice"])) == 1


def test_proposal_queued_twice_is_one_run(swept, hms):
    proposal_id = swept["ids"]["twice"]

    assert [r for r in swept["runs"] if r == run_id_for(proposal_id)] == [run_id_for(proposal_id)]
    assert swept["runs"][run_id_for(proposal_id)]["state"] == "success"
    assert len(policies(hms, proposal_id)) == 1
    assert backlog_entries(hms, "taken")[proposal_id]["run_id"] == run_id_for(proposal_id)


def test_proposal_with_a_run_already_counts_as_started_and_runs_once(swept, hms):
    proposal_id = swept["ids"]["direct"]

    assert any(proposal_id in s["already_running"] for s in swept["summaries"])
    assert len(policies(hms, proposal_id)) == 1
    assert backlog_entries(hms, "taken")[proposal_id]["run_id"] == run_id_for(proposal_id)


def test_invalid_queued_proposal_is_rejected_with_the_reason_and_never_triggered(swept, admin, hms):
    proposal_id = swept["ids"]["invalid"]

    entry = backlog_entries(hms, "rejected")[proposal_id]
    assert "token" in entry["reason"] and "plain text" in entry["reason"]
    assert any(proposal_id in s["rejected"] for s in swept["summaries"])
    assert run_id_for(proposal_id) not in swept["runs"]
    assert admin.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id_for(proposal_id)}").status_code == 404


# -- the backlog service down ---------------------------------------------------------------------


def test_backlog_down_fails_the_sweep_with_a_clear_message_and_leaves_every_proposal_pending(admin, hms):
    marker = f"down{uuid.uuid4().hex[:6]}"
    ids = [f"{marker}-{n}" for n in range(3)]
    hms.put("/admin/faults", json={"route": "/backlog/proposals", "method": "GET", "status": 503, "times": -1}
            ).raise_for_status()
    for proposal_id in ids:
        queue(hms, {"id": proposal_id, "rule": RULE})

    [sweep] = wait_for_sweeps(admin, trigger_sweep(admin))
    hms.delete("/admin/faults").raise_for_status()

    assert sweep["state"] == "failed"
    assert sweep["note"].startswith("Sweep INCOMPLETE")
    assert "HMS backlog service is unavailable" in sweep["note"]
    assert "503" in sweep["note"]
    tis = admin.request("GET", f"/api/v2/dags/{SWEEP_DAG_ID}/dagRuns/{sweep['dag_run_id']}/taskInstances").json()
    assert {ti["task_id"]: ti["state"] for ti in tis["task_instances"]}[START_QUEUED] == "failed"
    pending = backlog_entries(hms, "pending")
    assert all(pending[i]["status"] == "pending" for i in ids)
    assert proposal_runs(admin, marker) == []
    for proposal_id in ids:  # not for later tests' sweeps to take
        hms.post(f"/backlog/proposals/{proposal_id}/rejected", json={"reason": "test fixture, not a proposal"})


# -- re-drives ----------------------------------------------------------------------------------


def test_transient_failure_is_redriven_once_the_fault_clears_and_denials_and_refusals_never_are(admin, agent, hms):
    marker = f"rd{uuid.uuid4().hex[:6]}"
    transient, refused, denied = f"{marker}-503", f"{marker}-422", f"{marker}-weekend"
    # A refusal (4xx) and a denial first: neither is worth a re-drive.
    hms.put("/admin/faults", json={"route": "/svc/policy", "status": 422, "times": 1}).raise_for_status()
    agent.submit({"id": refused, "rule": RULE})
    agent.submit({"id": denied, "rule": RULE, "day": "Sat"})
    assert agent.wait(refused, timeout=300).state == "failed"
    # Then the policy service down for good: the run fails after its retries.
    hms.put("/admin/faults", json={"route": "/svc/policy", "status": 503, "times": -1}).raise_for_status()
    agent.submit({"id": transient, "rule": RULE})
    assert agent.wait(transient, timeout=300).state == "failed"
    assert agent.wait(denied, timeout=300).note.startswith("Outcome: DENIED")
    hms.delete("/admin/faults").raise_for_status()

    [sweep] = wait_for_sweeps(admin, trigger_sweep(admin))
    redriven = agent.wait(transient, timeout=300)

    assert sweep["state"] == "success"
    assert redriven.state == "success"
    assert redriven.note.startswith("Outcome: COMPLETED")
    assert len(policies(hms, transient)) == 1
    records = audit(hms, transient)
    redrives = [r for r in records if r["action"] == REDRIVEN_ACTION]
    # One re-drive, unless the stack's scheduled sweep also came by while the fault was on.
    assert 1 <= len(redrives) <= 3
    assert [r["attempt"] for r in redrives] == list(range(1, len(redrives) + 1))
    assert {r["failedStep"] for r in redrives} == {"apply_policy"}
    assert (records[0]["outcome"], records[-1]["outcome"]) == ("failed", "completed")
    # Never re-driven: the refusal stays failed, the denial stays denied, neither has a re-drive record.
    assert agent.run(refused).state == "failed"
    assert agent.run(denied).state == "success"
    assert [r["action"] for r in audit(hms, refused)] == ["proposal.orchestrated"]
    assert [r["outcome"] for r in audit(hms, denied)] == ["denied"]
    assert policies(hms, refused) == policies(hms, denied) == []
