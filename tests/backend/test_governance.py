"""The HMS Governance Layer: weekend denial, human review for high impact, approval otherwise."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from hms_backend import governance


@pytest.mark.parametrize("day", ["Sat", "Sun"])
def test_weekend_proposal_is_denied_with_400_and_a_stored_denial(api: TestClient, day: str):
    answer = api.post("/gov/validate", json={"proposal": {"id": "p-weekend", "day": day, "rule": "r"}})

    assert answer.status_code == 400
    body = answer.json()
    assert "not allowed on weekends" in body["error"]
    assert day in body["error"]
    decision = api.get(f"/gov/decisions/{body['decision_id']}").json()
    assert decision["status"] == "denied"
    assert decision["proposal_id"] == "p-weekend"
    assert decision["reason"] == body["error"]


def test_weekday_proposal_is_approved(api: TestClient):
    answer = api.post("/gov/validate", json={"proposal": {"id": "p-1", "day": "Tue", "impact": "normal"}})

    assert answer.status_code == 200
    assert answer.json()["status"] == "approved"
    assert api.get(f"/gov/decisions/{answer.json()['decision_id']}").json()["status"] == "approved"


def test_high_impact_waits_for_a_reviewer_who_approves_it(api: TestClient):
    answer = api.post("/gov/validate", json={"proposal": {"id": "p-big", "impact": "high"}})
    assert answer.status_code == 202
    assert answer.json()["status"] == "review"
    decision_id = answer.json()["decision_id"]
    assert api.get(f"/gov/decisions/{decision_id}").json()["status"] == "review"

    reviewed = api.post(f"/gov/decisions/{decision_id}", json={"approved": True, "reviewer": "alice", "reason": "ok"})

    assert reviewed.status_code == 200
    decision = api.get(f"/gov/decisions/{decision_id}").json()
    assert (decision["status"], decision["reviewer"], decision["reason"]) == ("approved", "alice", "ok")
    assert decision["decided_at"] is not None


def test_reviewer_denial_without_a_reason_names_the_reviewer(api: TestClient):
    decision_id = api.post("/gov/validate", json={"proposal": {"id": "p-big", "impact": "high"}}).json()["decision_id"]

    api.post(f"/gov/decisions/{decision_id}", json={"approved": False, "reviewer": "bob"})

    decision = api.get(f"/gov/decisions/{decision_id}").json()
    assert (decision["status"], decision["reason"]) == ("denied", "denied by bob")


def test_deciding_twice_is_a_409_that_keeps_the_first_decision(api: TestClient):
    decision_id = api.post("/gov/validate", json={"proposal": {"id": "p-big", "impact": "high"}}).json()["decision_id"]
    api.post(f"/gov/decisions/{decision_id}", json={"approved": True, "reviewer": "alice"})

    again = api.post(f"/gov/decisions/{decision_id}", json={"approved": False, "reviewer": "mallory"})

    assert again.status_code == 409
    assert again.json()["status"] == "approved"
    assert api.get(f"/gov/decisions/{decision_id}").json()["reviewer"] == "alice"


def test_unknown_decision_is_404(api: TestClient):
    assert api.get("/gov/decisions/nope").status_code == 404
    assert api.post("/gov/decisions/nope", json={"approved": True, "reviewer": "alice"}).status_code == 404


def test_reviewers_list_the_decisions_waiting_for_them(api: TestClient):
    api.post("/gov/validate", json={"proposal": {"id": "p-1", "impact": "high"}})
    api.post("/gov/validate", json={"proposal": {"id": "p-2", "impact": "high"}})
    api.post("/gov/validate", json={"proposal": {"id": "p-3"}})

    waiting = api.get("/gov/decisions", params={"status": "review"}).json()["items"]
    of_p2 = api.get("/gov/decisions", params={"proposalId": "p-2"}).json()["items"]

    assert [d["proposal_id"] for d in waiting] == ["p-1", "p-2"]
    assert waiting[0]["proposal"] == {"id": "p-1", "impact": "high"}
    assert [d["status"] for d in of_p2] == ["review"]


def test_proposal_without_an_id_or_with_an_unknown_day_is_422(api: TestClient):
    assert api.post("/gov/validate", json={"proposal": {"day": "Mon"}}).status_code == 422
    answer = api.post("/gov/validate", json={"proposal": {"id": "p-1", "day": "Funday"}})
    assert answer.status_code == 422
    assert "proposal.day" in answer.json()["error"]


@pytest.mark.parametrize(
    ("proposal", "status"),
    [
        ({"id": "a"}, governance.APPROVED),
        ({"id": "a", "day": "Fri", "impact": "low"}, governance.APPROVED),
        ({"id": "a", "impact": "high"}, governance.REVIEW),
        ({"id": "a", "day": "Sun"}, governance.DENIED),
        # No reviewer may approve weekend processing, so it is not sent for review.
        ({"id": "a", "day": "Sat", "impact": "high"}, governance.DENIED),
    ],
)
def test_governance_rules(proposal: dict, status: str):
    assert governance.judge(proposal).status == status
