"""The agents' clients against a stand-in api-server: what they send, and what they make of its answers."""

from __future__ import annotations

import pytest

from hms_management.client import AirflowClient, ApiError, ManagementClient
from hms_management.domain.proposal import DAG_ID

TOKEN = "/auth/token"
RUNS = f"/api/v2/dags/{DAG_ID}/dagRuns"


def run_body(proposal_id: str, state: str, note: str | None = None) -> dict:
    """A run as Airflow's REST API answers it (the fields its schema requires, and the proposal)."""
    return {"dag_id": DAG_ID, "dag_display_name": DAG_ID, "dag_run_id": f"proposal__{proposal_id}",
            "dag_versions": [], "run_after": "2026-12-01T10:00:00Z", "run_type": "manual", "state": state,
            "note": note, "conf": {"id": proposal_id, "rule": "r"}}


def test_a_submit_resent_after_a_token_refresh_keeps_its_content_type(airflow_api):
    airflow_api.answer("POST", TOKEN, 201, {"access_token": "expired"})
    airflow_api.answer("POST", TOKEN, 201, {"access_token": "fresh"})
    airflow_api.answer("POST", "/management/proposals", 401, {"detail": "token expired"})
    airflow_api.answer("POST", "/management/proposals", 202, {"id": "p-1", "status": "queued"})

    with ManagementClient(airflow_api.url, "agent", "pw") as client:
        answer = client.submit({"id": "p-1", "rule": "r"})

    assert answer["status"] == "queued"
    sent = [(r.headers["Authorization"], r.headers["Content-Type"])
            for r in airflow_api.to("POST", "/management/proposals")]
    assert sent == [("Bearer expired", "application/json"), ("Bearer fresh", "application/json")]


def test_submit_starts_the_run_named_for_the_proposal_with_the_proposal_as_its_conf(airflow_api):
    airflow_api.answer("POST", TOKEN, 201, {"access_token": "t"})
    airflow_api.answer("POST", RUNS, 200, run_body("p-1", "queued"))

    with AirflowClient(airflow_api.url, "agent", "pw") as client:
        run = client.submit({"id": "p-1", "rule": "r"})

    assert (run.run_id, run.state, run.conf["id"]) == ("proposal__p-1", "queued", "p-1")
    [sent] = airflow_api.to("POST", RUNS)
    assert sent.body == {"dag_run_id": "proposal__p-1", "logical_date": None, "conf": {"id": "p-1", "rule": "r"}}
    assert sent.headers["Authorization"] == "Bearer t"


def test_submit_of_a_refused_proposal_raises_with_airflows_answer(airflow_api):
    airflow_api.answer("POST", TOKEN, 201, {"access_token": "t"})
    airflow_api.answer("POST", RUNS, 409, {"detail": "run exists"})

    with AirflowClient(airflow_api.url, "agent", "pw") as client, pytest.raises(ApiError) as refused:
        client.submit({"id": "p-1", "rule": "r"})

    assert (refused.value.status, refused.value.body) == (409, {"detail": "run exists"})


def test_trigger_hands_back_a_refusal_as_it_came_and_leaves_the_run_id_to_airflow(airflow_api):
    airflow_api.answer("POST", TOKEN, 201, {"access_token": "t"})
    airflow_api.answer("POST", RUNS, 400, {"detail": "invalid", "errors": [{"field": "conf.rule"}]})

    with AirflowClient(airflow_api.url, "agent", "pw") as client:
        answer = client.trigger({"id": "p-1"})

    assert answer.status_code == 400
    assert answer.json()["errors"] == [{"field": "conf.rule"}]
    assert "dag_run_id" not in airflow_api.to("POST", RUNS)[0].body


def test_wait_reads_the_run_until_it_ends(airflow_api):
    airflow_api.answer("POST", TOKEN, 201, {"access_token": "t"})
    airflow_api.answer("GET", f"{RUNS}/proposal__p-1", 200, run_body("p-1", "running"))
    airflow_api.answer("GET", f"{RUNS}/proposal__p-1", 200, run_body("p-1", "success", "Outcome: COMPLETED"))

    with AirflowClient(airflow_api.url, "agent", "pw") as client:
        run = client.wait("p-1", timeout=10)

    assert (run.state, run.note) == ("success", "Outcome: COMPLETED")
    assert len(airflow_api.to("GET", f"{RUNS}/proposal__p-1")) == 2


def test_request_sends_repeated_query_values_and_a_json_body_through_the_official_clients_transport(airflow_api):
    airflow_api.answer("POST", TOKEN, 201, {"access_token": "t"})
    airflow_api.answer("PATCH", f"{RUNS}/proposal__p-1", 200, {"note": "n"})
    airflow_api.answer("GET", RUNS, 200, {"dag_runs": [], "total_entries": 0})

    with AirflowClient(airflow_api.url, "agent", "pw") as client:
        patched = client.request("PATCH", f"{RUNS}/proposal__p-1", json={"note": "n"})
        listed = client.request("GET", RUNS, params={"state": ["queued", "running"], "limit": 1})

    assert patched.raise_for_status().json() == {"note": "n"}
    assert listed.json()["total_entries"] == 0
    [patch] = airflow_api.to("PATCH", f"{RUNS}/proposal__p-1")
    assert (patch.body, patch.headers["Content-Type"]) == ({"note": "n"}, "application/json")
    assert airflow_api.to("GET", RUNS)[0].query == "state=queued&state=running&limit=1"
