"""The backlog: proposals queued for the next sweep, then taken (a run started) or rejected."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


def queue(api: TestClient, proposal_id: str, **fields):
    return api.post("/backlog/proposals", json={"id": proposal_id, "rule": "r", **fields})


def pending(api: TestClient, **params) -> list[dict]:
    return api.get("/backlog/proposals", params=params).json()["items"]


def test_queued_proposal_is_pending(api: TestClient):
    answer = queue(api, "p-1", title="First")

    assert answer.status_code == 202
    assert answer.json()["id"] == "p-1"
    assert answer.json()["status"] == "pending"
    [entry] = pending(api)
    assert entry["proposal"] == {"id": "p-1", "rule": "r", "title": "First"}
    assert (entry["status"], entry["reason"]) == ("pending", None)


def test_queuing_the_same_id_again_keeps_one_entry_with_the_first_content(api: TestClient, route_stats):
    queue(api, "p-1", title="First")

    again = queue(api, "p-1", title="Second")

    assert again.status_code == 202
    assert [e["proposal"]["title"] for e in pending(api)] == ["First"]
    assert route_stats("POST /backlog/proposals")["side_effects"] == 1


def test_pending_proposals_come_oldest_first_up_to_the_limit(api: TestClient):
    for proposal_id in ["p-c", "p-a", "p-b"]:
        queue(api, proposal_id)

    assert [e["id"] for e in pending(api)] == ["p-c", "p-a", "p-b"]
    assert [e["id"] for e in pending(api, status="pending", limit=2)] == ["p-c", "p-a"]


def test_limit_out_of_bounds_is_422(api: TestClient):
    assert api.get("/backlog/proposals", params={"limit": 0}).status_code == 422
    assert api.get("/backlog/proposals", params={"limit": 10_001}).status_code == 422


def test_backlog_entry_needs_an_object_with_a_string_id(api: TestClient):
    assert api.post("/backlog/proposals", json={"rule": "r"}).status_code == 422
    assert api.post("/backlog/proposals", json={"id": 7}).status_code == 422
    assert api.post("/backlog/proposals", json=["p-1"]).status_code == 422


def test_taken_entry_leaves_the_pending_list_and_marking_it_again_is_fine(api: TestClient):
    queue(api, "p-1")

    taken = api.post("/backlog/proposals/p-1/taken", json={"run_id": "proposal__p-1"})
    again = api.post("/backlog/proposals/p-1/taken")

    assert taken.status_code == again.status_code == 200
    assert (again.json()["status"], again.json()["run_id"]) == ("taken", "proposal__p-1")
    assert pending(api) == []
    assert [e["id"] for e in pending(api, status="taken")] == ["p-1"]


def test_queuing_a_taken_proposal_again_queues_nothing(api: TestClient):
    queue(api, "p-1")
    api.post("/backlog/proposals/p-1/taken")

    again = queue(api, "p-1")

    assert again.status_code == 200
    assert again.json()["status"] == "taken"
    assert pending(api) == []


def test_rejected_entry_keeps_its_reason(api: TestClient):
    queue(api, "p-1")

    rejected = api.post("/backlog/proposals/p-1/rejected", json={"reason": "rule: field required"})

    assert rejected.status_code == 200
    [entry] = pending(api, status="rejected")
    assert (entry["status"], entry["reason"]) == ("rejected", "rule: field required")


def test_a_rejected_proposal_queued_again_is_pending_with_its_new_content(api: TestClient):
    queue(api, "p-1", title="broken")
    api.post("/backlog/proposals/p-1/rejected", json={"reason": "broken"})

    again = queue(api, "p-1", title="fixed")

    assert again.status_code == 202
    [entry] = pending(api)
    assert (entry["proposal"]["title"], entry["reason"]) == ("fixed", None)


def test_taken_and_rejected_do_not_overwrite_each_other(api: TestClient):
    queue(api, "p-taken")
    queue(api, "p-rejected")
    api.post("/backlog/proposals/p-taken/taken")
    api.post("/backlog/proposals/p-rejected/rejected", json={"reason": "invalid"})

    reject_taken = api.post("/backlog/proposals/p-taken/rejected", json={"reason": "late"})
    take_rejected = api.post("/backlog/proposals/p-rejected/taken")

    assert (reject_taken.status_code, reject_taken.json()["status"]) == (409, "taken")
    assert (take_rejected.status_code, take_rejected.json()["status"]) == (409, "rejected")


def test_marking_an_unknown_entry_is_404(api: TestClient):
    assert api.post("/backlog/proposals/nope/taken").status_code == 404
    assert api.post("/backlog/proposals/nope/rejected", json={"reason": "x"}).status_code == 404


def test_rejection_needs_a_reason(api: TestClient):
    queue(api, "p-1")

    assert api.post("/backlog/proposals/p-1/rejected", json={}).status_code == 422


@pytest.mark.parametrize("proposal_id", ["a/b", "..", ".", "tab\there"])
def test_an_id_its_routes_cannot_address_is_refused_when_queued_not_left_pending(api: TestClient, proposal_id):
    answer = queue(api, proposal_id)

    assert answer.status_code == 422
    assert "body.id" in answer.json()["error"] and "one URL path segment" in answer.json()["error"]
    assert pending(api) == []


def test_a_rejection_keeps_no_value_it_is_told_to_redact(api: TestClient):
    queue(api, "leaky", token="eyJsecret", metadata={"auth": {"api_key": "k-123"}, "team": "foia"})

    answer = api.post("/backlog/proposals/leaky/rejected",
                      json={"reason": "credentials", "redact": ["token", "metadata.auth.api_key", "no.such.key"]})

    assert answer.status_code == 200
    [entry] = pending(api, status="rejected")
    assert entry["proposal"] == {"id": "leaky", "rule": "r", "token": "[redacted]",
                                 "metadata": {"auth": {"api_key": "[redacted]"}, "team": "foia"}}
    assert "eyJsecret" not in answer.text and "k-123" not in answer.text
