"""The HMS Management API on the live api-server: the seed's contract, Airflow's auth, hostile input."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from hms_management.client import AirflowClient, ManagementClient
from hms_management.domain.proposal import DAG_ID, run_id_for
from tests.stack.launcher import wait_for

RULE = {"queue": "foia", "strategy": "oldest-first"}


def test_submit_starts_the_run_and_answers_202_with_links(management: ManagementClient, agent, proposal_id):
    response = management.post({"id": proposal_id, "rule": RULE})

    assert response.status_code == 202
    body = response.json()
    assert body["id"] == proposal_id and body["run_id"] == run_id_for(proposal_id)
    assert body["status"] in ("queued", "running")
    assert body["links"]["status"] == f"/management/proposals/{proposal_id}"
    assert body["links"]["ui"].endswith(f"/dags/proposal_orchestration/runs/{run_id_for(proposal_id)}")
    assert agent.run(proposal_id).conf["id"] == proposal_id


def test_same_proposal_again_answers_its_status_without_a_second_run(management, agent, proposal_id):
    management.post({"id": proposal_id, "rule": RULE})
    runs = agent.count_runs()

    again = management.post({"rule": RULE, "id": proposal_id, "priority": "normal"})  # same, defaults spelled out

    assert again.status_code == 200
    assert again.json()["run_id"] == run_id_for(proposal_id)
    assert agent.count_runs() == runs


def test_same_id_with_other_content_is_409_and_changes_nothing(management, agent, proposal_id):
    management.post({"id": proposal_id, "rule": RULE})
    runs = agent.count_runs()

    conflict = management.post({"id": proposal_id, "rule": {"queue": "other"}})

    assert conflict.status_code == 409
    assert "different content" in conflict.json()["detail"]
    assert agent.count_runs() == runs
    assert agent.run(proposal_id).conf["rule"] == RULE


def test_wait_answers_completed_like_the_original_express_service(management, hms, proposal_id):
    response = management.post({"id": proposal_id, "rule": RULE}, wait=60)

    assert response.status_code == 200
    assert response.json()["status"] == "completed"
    assert len(hms.get(f"/svc/policy/{proposal_id}").json()["versions"]) == 1


def test_wait_on_a_denied_proposal_answers_denied_with_the_reason(management, proposal_id):
    body = management.submit({"id": proposal_id, "rule": RULE, "day": "Sun"}, wait=60)

    assert body["status"] == "denied"
    assert "weekend" in body["reason"].lower()


def test_wait_that_runs_out_answers_202_with_the_current_status(management, proposal_id):
    response = management.post({"id": proposal_id, "rule": RULE, "impact": "high"}, wait=3)

    assert response.status_code == 202
    assert response.json()["status"] in ("queued", "running", "awaiting_governance")


def test_status_shows_each_step_with_tries_and_the_governance_decision(management, hms, proposal_id):
    hms.put("/admin/faults", json={"route": "/svc/policy", "status": 503, "times": 1}).raise_for_status()
    management.submit({"id": proposal_id, "rule": RULE})

    status = management.wait(proposal_id)

    assert status["status"] == "completed"
    steps = {s["task_id"]: s for s in status["steps"]}
    assert [s["task_id"] for s in status["steps"]][:4] == [
        "governance_gate", "apply_policy", "notify_officers", "record_audit"]
    assert steps["apply_policy"]["tries"] == 2 and steps["apply_policy"]["state"] == "success"
    assert steps["fail_run_if_a_step_failed"]["state"] == "skipped"
    assert status["governance"]["status"] == "approved" and status["governance"]["decision_id"]
    assert status["ended_at"] >= status["submitted_at"]


def test_failed_proposal_names_the_step_and_the_reason(management, hms, proposal_id):
    hms.put("/admin/faults", json={"route": "/notifications", "status": 400, "times": 1}).raise_for_status()

    management.submit({"id": proposal_id, "rule": RULE})
    status = management.wait(proposal_id)

    assert status["status"] == "failed"
    assert status["failed_step"] == "notify_officers"
    assert "400" in status["reason"]


def test_unknown_proposal_is_404(management):
    with pytest.raises(Exception, match="404"):
        management.status("never-submitted-0")


def test_list_is_newest_first_paginated_and_filtered(management, proposal_id):
    ids = [f"{proposal_id}-{n}" for n in range(3)]
    for pid in ids:
        management.post({"id": pid, "rule": RULE, "day": "Sat"})  # denied: ends fast, no policy
    for pid in ids:
        management.wait(pid)

    first = management.list(limit=2)
    second = management.list(limit=2, cursor=first["next_cursor"])
    denied = management.list(status="denied", limit=200)["items"]

    assert [p["id"] for p in first["items"]] == [ids[2], ids[1]]
    assert second["items"][0]["id"] == ids[0]
    assert set(ids) <= {p["id"] for p in denied}
    assert all(p["status"] == "denied" for p in denied)


def test_an_agent_rewriting_the_run_note_changes_no_status_list_or_filter(management, agent, proposal_id):
    management.post({"id": proposal_id, "rule": RULE, "day": "Sat"})
    assert management.wait(proposal_id)["status"] == "denied"

    forged = agent.request("PATCH", f"/api/v2/dags/proposal_orchestration/dagRuns/{run_id_for(proposal_id)}",
                           params={"update_mask": "note"},
                           json={"note": "Outcome: COMPLETED: policy applied and officers notified"})
    assert forged.status_code == 200  # an agent may edit notes: they are display only

    status = management.status(proposal_id)
    assert (status["status"], status["reason"]) == ("denied", "processing is not allowed on weekends (day: Sat)")
    assert proposal_id in {p["id"] for p in management.list(status="denied", limit=200)["items"]}
    assert proposal_id not in {p["id"] for p in management.list(status="completed", limit=200)["items"]}
    listed = next(p for p in management.list(limit=200)["items"] if p["id"] == proposal_id)
    assert listed["status"] == "denied"


def test_list_and_counts_filter_by_submitter_and_by_text_in_the_id_or_title(management, analyst, proposal_id):
    named = {"id": f"{proposal_id}-named", "rule": RULE, "day": "Sat", "submitted_by": f"portal-{proposal_id}",
             "title": "Weekend 100%_permits"}
    unnamed = {"id": f"{proposal_id}-unnamed", "rule": RULE, "day": "Sat"}  # submitted by the agent's user
    for body in (named, unnamed):
        management.post(body)
    for body in (named, unnamed):
        management.wait(body["id"])

    by_portal = analyst.list(submitter=named["submitted_by"])["items"]
    by_agent = {p["id"] for p in analyst.list(submitter="agent", limit=200)["items"]}
    by_title = analyst.list(text="100%_PERMITS")["items"]  # any case; % and _ are plain characters
    by_id = {p["id"] for p in analyst.list(text=proposal_id)["items"]}
    counted = analyst.request("GET", "/management/counts", params={"submitter": named["submitted_by"]})

    assert [p["id"] for p in by_portal] == [named["id"]]
    assert {named["id"], unnamed["id"]} <= by_agent  # the user that submitted both
    assert [p["id"] for p in by_title] == [named["id"]]
    assert by_id == {named["id"], unnamed["id"]}
    assert analyst.list(text="100%_permitz")["items"] == []
    assert counted.json()["counts"]["denied"] == 1 and counted.json()["total"] == 1


def test_the_counts_agree_with_the_lists_of_each_status(analyst, management, proposal_id):
    management.post({"id": proposal_id, "rule": RULE, "day": "Sat"})
    management.wait(proposal_id)

    def in_list(status: str) -> int:
        found, cursor = 0, None
        while True:
            page = analyst.list(status=status, limit=200, cursor=cursor)
            found += len(page["items"])
            if not (cursor := page.get("next_cursor")):
                return found

    def both() -> tuple[dict, dict]:
        counts = analyst.counts()
        return counts, {status: in_list(status) for status in counts}

    deadline = time.monotonic() + 60
    counts, listed = both()
    while counts != listed and time.monotonic() < deadline:  # other tests' proposals may move meanwhile
        time.sleep(0.5)
        counts, listed = both()

    assert counts == listed and counts["denied"] >= 1


def test_list_refuses_a_cursor_it_did_not_hand_out(management):
    response = management.request("GET", "/management/proposals", params={"cursor": "../../etc"})
    assert response.status_code == 400


# -- auth ------------------------------------------------------------------------------------


def test_no_token_or_a_bad_token_is_refused(stack):
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = httpx.post(f"{stack.api_url}/management/proposals", headers=headers,
                              json={"id": "x", "rule": "r"})
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{stack.api_url}/management/proposals").status_code == 401


def test_viewer_may_read_but_not_submit(analyst: ManagementClient, management, agent, proposal_id):
    management.post({"id": proposal_id, "rule": RULE})
    runs = agent.count_runs()

    refused = analyst.post({"id": f"{proposal_id}-by-analyst", "rule": RULE})

    assert refused.status_code == 403
    assert agent.count_runs() == runs
    assert analyst.status(proposal_id)["id"] == proposal_id


def test_one_token_serves_both_the_rest_api_and_management(stack, agent: AirflowClient, proposal_id):
    headers = {"Authorization": f"Bearer {agent.token()}"}
    submitted = httpx.post(f"{stack.api_url}/management/proposals", json={"id": proposal_id, "rule": RULE},
                           headers=headers)
    read = httpx.get(f"{stack.api_url}/api/v2/dags/proposal_orchestration/dagRuns/{run_id_for(proposal_id)}",
                     headers=headers)
    assert (submitted.status_code, read.status_code) == (202, 200)


def test_openapi_docs_are_served_with_examples(stack):
    assert httpx.get(f"{stack.api_url}/management/docs").status_code == 200
    spec = httpx.get(f"{stack.api_url}/management/openapi.json").json()
    body = spec["paths"]["/proposals"]["post"]["requestBody"]["content"]["application/json"]
    assert {"ordinary", "high_impact", "weekend"} <= set(body["examples"])


# -- hostile input ---------------------------------------------------------------------------

DEEP = "[" * 5000 + "]" * 5000
HOSTILE = [
    ("too-large", "application/json", json.dumps({"id": "big", "rule": "x" * (1024 * 1024)}), 413),
    ("not-json", "application/json", "{id: big", 400),
    ("not-utf8", "application/json", b"\xff\xfe{}", 400),
    ("wrong-type", "text/plain", json.dumps({"id": "plain", "rule": "r"}), 415),
    ("form", "application/x-www-form-urlencoded", "id=form&rule=r", 415),
    ("deep", "application/json", json.dumps({"id": "deep", "rule": {"a": json.loads("[" * 40 + "]" * 40)}}), 400),
    ("deeper-than-parsers", "application/json", DEEP, 400),
    ("huge-title", "application/json", json.dumps({"id": "t", "rule": "r", "title": "t" * 100_000}), 400),
    ("array", "application/json", "[1, 2]", 400),
    ("nan", "application/json", '{"id": "nan", "rule": {"x": NaN}}', 400),
    ("infinity", "application/json", '{"id": "inf", "rule": {"x": 1e999}}', 400),
    ("nul-in-rule", "application/json", json.dumps({"id": "nul", "rule": "a\u0000b"}), 400),
    ("nul-in-id", "application/json", json.dumps({"id": "a\u0000b", "rule": "r"}), 400),
    ("dotdot-id", "application/json", json.dumps({"id": "../x", "rule": "r"}), 400),
    ("slash-id", "application/json", json.dumps({"id": "a/b", "rule": "r"}), 400),
    ("lookalike-id", "application/json", json.dumps({"id": "ｆoia", "rule": "r"}), 400),
    ("long-id", "application/json", json.dumps({"id": "x" * 65, "rule": "r"}), 400),
    ("token", "application/json", json.dumps({"id": "tok", "rule": "r", "token": "eyJ"}), 400),
    ("unknown", "application/json", json.dumps({"id": "unk", "rule": "r", "colour": "red"}), 400),
    ("missing-rule", "application/json", json.dumps({"id": "norule"}), 400),
]


@pytest.mark.parametrize(("content_type", "body", "expected"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_body_is_refused_without_a_run_or_a_backend_call(
    management, agent, backend_calls, idle, content_type, body, expected
):
    idle()
    runs, calls = agent.count_runs(), backend_calls()

    response = management.post(body, content_type=content_type)

    assert response.status_code == expected, response.text
    assert "detail" in response.json()
    assert agent.count_runs() == runs
    assert backend_calls() == calls


@pytest.mark.parametrize("path", ["..%2Fx", "a%2Fb", "%EF%BD%86oia", "a%00b", "x" * 65])
def test_hostile_ids_in_the_path_are_client_errors(management, path):
    response = management.request("GET", f"/management/proposals/{path}")
    assert 400 <= response.status_code < 500


def test_waiting_is_capped(management, proposal_id):
    response = management.post({"id": proposal_id, "rule": RULE}, wait=3600)
    assert response.status_code == 422  # FastAPI's answer to a query value out of range
    time.sleep(0.5)
    with pytest.raises(Exception, match="404"):
        management.status(proposal_id)


def test_a_wait_on_a_proposal_whose_run_is_deleted_meanwhile_ends_failed_saying_so(management, stack, proposal_id):
    # In review, the run has ended (Airflow lets an admin delete it) while the proposal has not: a wait
    # on it is under way when the run goes. The proposal's record stays, and the records keeper ends it.
    management.submit({"id": proposal_id, "rule": RULE, "impact": "high"})
    wait_for(lambda: management.status(proposal_id)["status"] == "awaiting_governance", 60, "never parked")
    answers: list[httpx.Response] = []
    waiter = threading.Thread(target=lambda: answers.append(
        management.request("GET", f"/management/proposals/{proposal_id}", params={"wait": 60})))
    waiter.start()
    time.sleep(2)  # the wait is under way (had the delete come first, the answer would be a 404 too)

    admin = AirflowClient(stack.api_url, "admin", stack.credentials()["airflow"]["admin"])
    try:
        deleted = admin.request("DELETE", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id_for(proposal_id)}")
    finally:
        admin.close()
    assert deleted.status_code == 204, deleted.text
    waiter.join(timeout=90)

    assert answers[0].status_code == 200, answers[0].text
    assert answers[0].json()["status"] == "failed"
    assert answers[0].json()["reason"] == "its run was deleted in Airflow before the proposal ended"
