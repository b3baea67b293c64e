"""Revocation: a reviewer stops an approved proposal, or one still in review, before its next step."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

REVOCATION = {"reason": "the council withdrew its consent", "by": "carol"}
ENDED = "an applied policy is changed by a new proposal, not by a revocation"


def approved(api: TestClient, proposal_id: str = "p-1") -> str:
    return api.post("/gov/validate", json={"proposal": {"id": proposal_id}}).json()["decision_id"]


def in_review(api: TestClient, proposal_id: str = "p-big") -> str:
    return api.post("/gov/validate", json={"proposal": {"id": proposal_id, "impact": "high"}}).json()["decision_id"]


def revoke(api: TestClient, decision_id: str, body: dict = REVOCATION, **kwargs):
    return api.post(f"/gov/decisions/{decision_id}/revoke", json=body, **kwargs)


def orchestrated(api: TestClient, proposal_id: str, **fields) -> None:
    """The audit entry the Management Layer writes when a proposal's workflow ends."""
    entry = {"proposalId": proposal_id, "action": "proposal.orchestrated", "outcome": "completed", **fields}
    api.post("/audit/log", json=entry).raise_for_status()


def test_an_approved_decision_is_revoked_with_who_when_and_why(api: TestClient, route_stats):
    decision_id = approved(api)
    before = api.get(f"/gov/decisions/{decision_id}").json()

    answer = revoke(api, decision_id)

    assert answer.status_code == 200
    record = answer.json()
    assert (record["status"], record["revoked_by"], record["revoke_reason"]) == (
        "revoked",
        "carol",
        "the council withdrew its consent",
    )
    assert record["revoked_at"] >= before["created_at"]
    # What governance said before stays readable beside the revocation.
    assert {key: record[key] for key in ("reason", "reviewer", "created_at", "decided_at", "proposal")} == {
        key: before[key] for key in ("reason", "reviewer", "created_at", "decided_at", "proposal")
    }
    assert api.get(f"/gov/decisions/{decision_id}").json() == record
    assert route_stats("POST /gov/decisions/{decision_id}/revoke")["side_effects"] == 1


def test_a_decision_never_revoked_has_null_revocation_fields(api: TestClient):
    decision = api.get(f"/gov/decisions/{approved(api)}").json()

    assert (decision["revoked_by"], decision["revoked_at"], decision["revoke_reason"]) == (None, None, None)


def test_a_review_revoked_never_resumes_as_approved(api: TestClient):
    decision_id = in_review(api)
    revoke(api, decision_id).raise_for_status()

    late_approval = api.post(f"/gov/decisions/{decision_id}", json={"approved": True, "reviewer": "alice"})

    assert late_approval.status_code == 409
    assert late_approval.json()["status"] == "revoked"
    decision = api.get(f"/gov/decisions/{decision_id}").json()
    assert (decision["status"], decision["reviewer"], decision["decided_at"]) == ("revoked", None, None)


def test_a_denied_decision_cannot_be_revoked(api: TestClient):
    decision_id = api.post("/gov/validate", json={"proposal": {"id": "p-1", "day": "Sun"}}).json()["decision_id"]

    answer = revoke(api, decision_id)

    assert answer.status_code == 409
    assert answer.json() == {
        "error": f"decision {decision_id} is already denied: there is nothing to revoke",
        "status": "denied",
        "decision_id": decision_id,
    }
    assert api.get(f"/gov/decisions/{decision_id}").json()["revoked_by"] is None


def test_revoking_twice_is_a_409_that_keeps_the_first_revocation(api: TestClient, route_stats):
    decision_id = approved(api)
    revoke(api, decision_id).raise_for_status()

    again = revoke(api, decision_id, {"reason": "me too", "by": "mallory"})

    assert again.status_code == 409
    assert (again.json()["status"], again.json()["decision_id"]) == ("revoked", decision_id)
    assert api.get(f"/gov/decisions/{decision_id}").json()["revoked_by"] == "carol"
    assert route_stats("POST /gov/decisions/{decision_id}/revoke")["side_effects"] == 1


def test_a_retry_with_the_same_key_gets_the_revocation_not_a_409(api: TestClient):
    decision_id = approved(api)
    key = {"Idempotency-Key": "p-1:revoke"}

    first = revoke(api, decision_id, headers=key)
    retried = revoke(api, decision_id, headers=key)

    assert (retried.status_code, retried.content) == (first.status_code, first.content)
    assert retried.headers["Idempotent-Replayed"] == "true"


def test_a_proposal_whose_workflow_has_ended_cannot_be_revoked(api: TestClient):
    decision_id = approved(api)
    orchestrated(api, "p-1")

    answer = revoke(api, decision_id)

    assert answer.status_code == 409
    assert answer.json()["status"] == "approved"
    assert answer.json()["decision_id"] == decision_id
    assert ENDED in answer.json()["error"]
    assert "p-1" in answer.json()["error"]
    assert api.get(f"/gov/decisions/{decision_id}").json()["status"] == "approved"


def test_a_review_that_timed_out_has_ended_too(api: TestClient):
    decision_id = in_review(api)
    orchestrated(api, "p-big", outcome="review_timeout")

    answer = revoke(api, decision_id)

    assert (answer.status_code, answer.json()["status"]) == (409, "review")
    assert ENDED in answer.json()["error"]


@pytest.mark.parametrize(
    "earlier_entry",
    [
        {"proposalId": "p-1", "action": "policy.applied", "outcome": "completed"},  # not the end of the workflow
        {"proposalId": "p-other", "action": "proposal.orchestrated", "outcome": "completed"},  # another proposal
    ],
    ids=["another-action", "another-proposal"],
)
def test_other_audit_entries_do_not_end_a_proposal(api: TestClient, earlier_entry: dict):
    decision_id = approved(api)
    api.post("/audit/log", json=earlier_entry).raise_for_status()

    assert revoke(api, decision_id).status_code == 200


def test_the_end_of_an_earlier_run_does_not_end_the_proposal_decided_again(api: TestClient):
    orchestrated(api, "p-1", outcome="failed")  # the first run ended; the proposal is re-driven
    decision_id = approved(api)

    assert revoke(api, decision_id).status_code == 200


def test_revoking_an_unknown_decision_is_404(api: TestClient, route_stats):
    answer = revoke(api, "nope")

    assert answer.status_code == 404
    assert answer.json() == {"error": "no decision nope"}


@pytest.mark.parametrize(
    "body",
    [
        {"by": "carol"},
        {"reason": "why"},
        {"reason": "", "by": "carol"},
        {"reason": "why", "by": ""},
        {"reason": "x" * 1001, "by": "carol"},
        {"reason": "why", "by": "x" * 201},
    ],
    ids=["no-reason", "no-by", "empty-reason", "empty-by", "long-reason", "long-by"],
)
def test_a_revocation_needs_a_reason_and_who(api: TestClient, body: dict):
    decision_id = approved(api)

    answer = revoke(api, decision_id, body)

    assert answer.status_code == 422
    assert "error" in answer.json()
    assert api.get(f"/gov/decisions/{decision_id}").json()["status"] == "approved"


def test_a_reason_of_1000_characters_is_enough(api: TestClient):
    assert revoke(api, approved(api), {"reason": "x" * 1000, "by": "c" * 200}).status_code == 200


def test_revoked_decisions_are_listed_by_status(api: TestClient):
    first, second = approved(api, "p-1"), in_review(api, "p-2")
    approved(api, "p-3")
    revoke(api, first)
    revoke(api, second)

    revoked = api.get("/gov/decisions", params={"status": "revoked"}).json()["items"]

    assert [d["decision_id"] for d in revoked] == [first, second]
    assert api.get("/gov/decisions", params={"status": "bogus"}).status_code == 422


# The feed of decided reviews: a watcher of parked reviews learns of revocations as of decisions.


def test_a_revoked_review_comes_in_the_feed_after_the_decisions_before_it(api: TestClient):
    decided, revoked = in_review(api, "p-1"), in_review(api, "p-2")
    api.post(f"/gov/decisions/{decided}", json={"approved": True, "reviewer": "alice"})
    cursor = api.get("/gov/decisions", params={"decidedSince": ""}).json()["next"]

    revoke(api, revoked)
    news = api.get("/gov/decisions", params={"decidedSince": cursor}).json()

    assert [(d["decision_id"], d["status"], d["revoked_by"]) for d in news["items"]] == [(revoked, "revoked", "carol")]


def test_a_decision_is_in_the_feed_once_at_its_latest_change(api: TestClient):
    reviewed, other = in_review(api, "p-1"), in_review(api, "p-2")
    plain = approved(api, "p-3")  # approved by governance: in the feed only once revoked
    api.post(f"/gov/decisions/{reviewed}", json={"approved": True, "reviewer": "alice"})
    api.post(f"/gov/decisions/{other}", json={"approved": False, "reviewer": "bob"})
    cursor = api.get("/gov/decisions", params={"decidedSince": ""}).json()["next"]

    revoke(api, reviewed)
    revoke(api, plain)
    everything = api.get("/gov/decisions", params={"decidedSince": ""}).json()["items"]
    since = api.get("/gov/decisions", params={"decidedSince": cursor}).json()["items"]

    assert [(d["decision_id"], d["status"]) for d in everything] == [
        (other, "denied"),
        (reviewed, "revoked"),
        (plain, "revoked"),
    ]
    assert [d["decision_id"] for d in since] == [reviewed, plain]
