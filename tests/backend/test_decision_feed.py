"""Watching decisions: the feed of reviewers' decisions since a cursor, and open reviews by age."""

from __future__ import annotations

import sqlite3

import pytest
from fastapi.testclient import TestClient

from hms_backend import Settings


def in_review(api: TestClient, proposal_id: str) -> str:
    return api.post("/gov/validate", json={"proposal": {"id": proposal_id, "impact": "high"}}).json()["decision_id"]


def decide(api: TestClient, decision_id: str, *, approved: bool = True, reviewer: str = "alice"):
    return api.post(f"/gov/decisions/{decision_id}", json={"approved": approved, "reviewer": reviewer})


def feed(api: TestClient, **params) -> dict:
    answer = api.get("/gov/decisions", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_feed_lists_reviewers_decisions_in_the_order_they_were_decided(api: TestClient):
    first, second, third = (in_review(api, f"p-{n}") for n in (1, 2, 3))
    api.post("/gov/validate", json={"proposal": {"id": "p-plain"}})  # approved by governance, no reviewer
    decide(api, third)
    decide(api, first, approved=False, reviewer="bob")

    page = feed(api, decidedSince="")

    assert [d["decision_id"] for d in page["items"]] == [third, first]
    assert [(d["status"], d["reviewer"]) for d in page["items"]] == [("approved", "alice"), ("denied", "bob")]
    assert page["items"][1] == api.get(f"/gov/decisions/{first}").json()
    assert set(page["items"][0]) == {
        "decision_id",
        "proposal_id",
        "status",
        "reason",
        "reviewer",
        "created_at",
        "decided_at",
        "revoked_by",
        "revoked_at",
        "revoke_reason",
        "proposal",
    }
    assert second not in [d["decision_id"] for d in page["items"]]


def test_next_cursor_gives_only_what_was_decided_since(api: TestClient):
    first, second = in_review(api, "p-1"), in_review(api, "p-2")
    decide(api, first)
    cursor = feed(api, decidedSince="")["next"]

    decide(api, second)
    news = feed(api, decidedSince=cursor)
    quiet = feed(api, decidedSince=news["next"])

    assert [d["decision_id"] for d in news["items"]] == [second]
    assert news["next"] != cursor
    assert quiet == {"items": [], "next": news["next"]}


def test_feed_with_nothing_decided_gives_the_start_cursor_back(api: TestClient):
    in_review(api, "p-1")

    start = feed(api, decidedSince="")
    again = feed(api, decidedSince=start["next"])

    assert start["items"] == again["items"] == []
    assert again["next"] == start["next"]
    assert start["next"]  # a cursor to keep, never null


def test_feed_pages_by_limit(api: TestClient):
    decisions = [in_review(api, f"p-{n}") for n in range(5)]
    for decision_id in decisions:
        decide(api, decision_id)

    first = feed(api, limit=2)  # no decidedSince: from the start
    second = feed(api, decidedSince=first["next"], limit=2)
    third = feed(api, decidedSince=second["next"], limit=2)

    pages = [[d["decision_id"] for d in page["items"]] for page in (first, second, third)]
    assert pages == [decisions[:2], decisions[2:4], decisions[4:]]
    assert len(feed(api, decidedSince="")["items"]) == 5  # default limit 100


@pytest.mark.parametrize("cursor", ["nope", "decided:1", "ZGVjaWRlZDp4", "ZGVjaWRlZDotMQ", "x" * 300, "é"])
def test_a_cursor_this_feed_never_gave_out_is_a_400_naming_decidedSince(api: TestClient, cursor: str):
    answer = api.get("/gov/decisions", params={"decidedSince": cursor})

    assert answer.status_code == 400
    assert "decidedSince" in answer.json()["error"]


def test_feed_limit_is_1_to_1000(api: TestClient):
    assert api.get("/gov/decisions", params={"decidedSince": "", "limit": 0}).status_code == 422
    assert api.get("/gov/decisions", params={"decidedSince": "", "limit": 1001}).status_code == 422
    assert api.get("/gov/decisions", params={"decidedSince": "", "limit": 1000}).status_code == 200


def test_feed_and_listing_filters_do_not_mix(api: TestClient):
    answer = api.get("/gov/decisions", params={"decidedSince": "", "status": "review"})

    assert answer.status_code == 400
    assert "decidedSince" in answer.json()["error"]
    assert "status" in answer.json()["error"]


def test_the_listing_stays_a_plain_list_of_every_decision(api: TestClient):
    decision_id = in_review(api, "p-1")
    api.post("/gov/validate", json={"proposal": {"id": "p-2"}})
    decide(api, decision_id)

    everything = api.get("/gov/decisions").json()
    approved = api.get("/gov/decisions", params={"status": "approved", "proposalId": "p-1"}).json()

    assert list(everything) == list(approved) == ["items"]
    assert [d["proposal_id"] for d in everything["items"]] == ["p-1", "p-2"]
    assert [d["decision_id"] for d in approved["items"]] == [decision_id]


def test_validation_answer_says_when_the_review_began(api: TestClient):
    answer = api.post("/gov/validate", json={"proposal": {"id": "p-1", "impact": "high"}}).json()

    decision = api.get(f"/gov/decisions/{answer['decision_id']}").json()
    assert answer == {
        "status": "review",
        "decision_id": decision["decision_id"],
        "reason": decision["reason"],
        "created_at": decision["created_at"],
    }


def test_denial_and_approval_answers_carry_created_at_too(api: TestClient):
    denied = api.post("/gov/validate", json={"proposal": {"id": "p-1", "day": "Sat"}}).json()
    approved = api.post("/gov/validate", json={"proposal": {"id": "p-2"}}).json()

    assert denied["created_at"] == api.get(f"/gov/decisions/{denied['decision_id']}").json()["created_at"]
    assert approved["created_at"] == api.get(f"/gov/decisions/{approved['decision_id']}").json()["created_at"]


# Open reviews by age: what a watcher asks to time out reviews whose deadline has passed.


@pytest.fixture
def reviews_by_minute(api: TestClient, settings: Settings) -> dict[str, str]:
    """Reviews that entered review at 10:00, 10:05, 10:10 and 10:15 UTC; the 10:05 one decided since."""
    created = {}
    for minute in ("00", "05", "10", "15"):
        created[minute] = in_review(api, f"p-{minute}")
    # Set, not waited for: creation times a test can name.
    with sqlite3.connect(settings.database_path) as db:
        for minute, decision_id in created.items():
            db.execute(
                "UPDATE decisions SET created_at = ? WHERE decision_id = ?",
                (f"2026-03-02T10:{minute}:00.000+00:00", decision_id),
            )
    decide(api, created["05"])
    return created


def open_reviews(api: TestClient, **window) -> list[str]:
    answer = api.get("/gov/decisions", params={"status": "review", **window})
    assert answer.status_code == 200, answer.text
    assert list(answer.json()) == ["items"]
    return [d["proposal_id"] for d in answer.json()["items"]]


def test_open_reviews_created_in_a_window_oldest_first(api: TestClient, reviews_by_minute):
    # createdAfter is exclusive, createdBefore inclusive.
    assert open_reviews(api, createdAfter="2026-03-02T10:00:00Z", createdBefore="2026-03-02T10:15:00Z") == [
        "p-10",
        "p-15",
    ]
    assert open_reviews(api, createdBefore="2026-03-02T10:10:00Z") == ["p-00", "p-10"]
    assert open_reviews(api, createdAfter="2026-03-02T10:10:00Z") == ["p-15"]
    assert open_reviews(api, createdBefore="2026-03-02T10:14:59.999Z", limit=1) == ["p-00"]


def test_window_bounds_in_any_time_zone_mean_the_same_moment(api: TestClient, reviews_by_minute):
    assert open_reviews(api, createdBefore="2026-03-02T12:10:00+02:00") == ["p-00", "p-10"]
    assert open_reviews(api, createdBefore="2026-03-02T10:09:59.999999+00:00") == ["p-00"]


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("createdBefore", "yesterday", "ISO-8601"),
        ("createdAfter", "2026-03-02T10:00:00", "time zone"),
        ("createdAfter", "2026-03-02T10:00:00 02:00", "%2B"),  # a + that became a space on the way
    ],
)
def test_a_bad_window_bound_is_a_400_naming_it(api: TestClient, field: str, value: str, says: str):
    answer = api.get("/gov/decisions", params={"status": "review", field: value})

    assert answer.status_code == 400
    assert field in answer.json()["error"]
    assert says in answer.json()["error"]
