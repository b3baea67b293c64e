"""The policy service puts a proposal's rule live and counts versions per proposal."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_each_application_of_a_proposal_is_a_new_version(api: TestClient):
    first = api.post("/svc/policy", json={"id": "p-1", "rule": {"speed_limit": 30}, "title": "Slower"})
    second = api.post("/svc/policy", json={"id": "p-1", "rule": {"speed_limit": 20}})
    other = api.post("/svc/policy", json={"id": "p-2", "rule": "close the bridge"})

    assert first.status_code == second.status_code == other.status_code == 200
    assert (first.json()["version"], second.json()["version"], other.json()["version"]) == (1, 2, 1)
    assert first.json()["policy_id"] != second.json()["policy_id"]


def test_policy_history_lists_versions_with_their_rules(api: TestClient):
    applied = api.post("/svc/policy", json={"id": "p-1", "rule": {"speed_limit": 30}}).json()
    api.post("/svc/policy", json={"id": "p-1", "rule": "no limit"})

    history = api.get("/svc/policy/p-1").json()

    assert history["proposal_id"] == "p-1"
    assert [(v["version"], v["rule"]) for v in history["versions"]] == [(1, {"speed_limit": 30}), (2, "no limit")]
    assert history["versions"][0]["policy_id"] == applied["policy_id"]
    assert history["versions"][0]["applied_at"] == applied["applied_at"]


def test_policy_history_of_an_unknown_proposal_is_404(api: TestClient):
    assert api.get("/svc/policy/never-applied").status_code == 404


def test_policy_needs_an_id_and_a_rule(api: TestClient, route_stats):
    assert api.post("/svc/policy", json={"rule": "r"}).status_code == 422
    assert api.post("/svc/policy", json={"id": "p-1"}).status_code == 422
    assert api.post("/svc/policy", json={"id": "p-1", "rule": 42}).status_code == 422
    assert route_stats("POST /svc/policy")["side_effects"] == 0


def test_body_without_a_json_content_type_is_422_with_a_hint(api: TestClient):
    answer = api.post("/svc/policy", content=b'{"id": "p-1", "rule": "r"}')

    assert answer.status_code == 422
    assert "Content-Type: application/json" in answer.json()["error"]
