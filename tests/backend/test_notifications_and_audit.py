"""Notifications to officers and the append-only audit log, readable per proposal."""

from __future__ import annotations

import sqlite3

import pytest
from fastapi.testclient import TestClient

from hms_backend import Settings


def test_notification_is_kept_with_its_extra_fields(api: TestClient):
    sent = api.post("/notifications", json={"message": "Policy #p-1 live", "proposalId": "p-1", "priority": "high"})
    api.post("/notifications", json={"message": "Policy #p-2 live", "proposalId": "p-2"})

    items = api.get("/notifications", params={"proposalId": "p-1"}).json()["items"]

    assert sent.status_code == 200
    assert items == [
        {
            "message": "Policy #p-1 live",
            "proposalId": "p-1",
            "priority": "high",
            "notification_id": sent.json()["notification_id"],
            "sent_at": items[0]["sent_at"],
        }
    ]
    assert len(api.get("/notifications").json()["items"]) == 2


def test_notification_needs_a_message(api: TestClient):
    assert api.post("/notifications", json={"proposalId": "p-1"}).status_code == 422


def test_notifications_are_listed_by_officer_group(api: TestClient):
    for proposal_id, group in [("p-1", "foia-officers"), ("p-1", "privacy-office"), ("p-2", "foia-officers")]:
        notification = {"message": f"Policy #{proposal_id} live", "proposalId": proposal_id, "group": group}
        api.post("/notifications", json=notification).raise_for_status()
    api.post("/notifications", json={"message": "Policy #p-1 live", "proposalId": "p-1"})  # no group named

    foia = api.get("/notifications", params={"group": "foia-officers"}).json()["items"]
    privacy_p1 = api.get("/notifications", params={"group": "privacy-office", "proposalId": "p-1"}).json()["items"]
    of_p1 = api.get("/notifications", params={"proposalId": "p-1"}).json()["items"]

    assert [(n["proposalId"], n["group"]) for n in foia] == [("p-1", "foia-officers"), ("p-2", "foia-officers")]
    assert [(n["proposalId"], n["group"]) for n in privacy_p1] == [("p-1", "privacy-office")]
    assert [n.get("group") for n in of_p1] == ["foia-officers", "privacy-office", None]
    assert api.get("/notifications", params={"group": "nobody"}).json() == {"items": []}


@pytest.mark.parametrize("group", ["", "g" * 201, 5, ["foia-officers"]], ids=["empty", "too-long", "number", "list"])
def test_a_group_is_a_name(api: TestClient, group):
    answer = api.post("/notifications", json={"message": "m", "group": group})

    assert answer.status_code == 422
    assert "group" in answer.json()["error"]
    assert api.get("/notifications").json() == {"items": []}


def test_audit_log_lists_entries_oldest_first_with_all_fields(api: TestClient):
    first = api.post(
        "/audit/log", json={"proposalId": "p-1", "action": "proposal.orchestrated", "outcome": "failed", "runId": "r1"}
    ).json()
    api.post("/audit/log", json={"proposalId": "p-2", "action": "proposal.orchestrated", "outcome": "denied"})
    second = api.post(
        "/audit/log", json={"proposalId": "p-1", "action": "proposal.orchestrated", "outcome": "completed"}
    )

    items = api.get("/audit/log", params={"proposalId": "p-1"}).json()["items"]

    assert [i["outcome"] for i in items] == ["failed", "completed"]
    assert [i["audit_id"] for i in items] == [first["audit_id"], second.json()["audit_id"]]
    assert items[0]["runId"] == "r1"
    assert items[0]["recorded_at"] == first["recorded_at"]


def test_audit_entry_needs_proposal_action_and_outcome(api: TestClient):
    assert api.post("/audit/log", json={"proposalId": "p-1", "action": "x"}).status_code == 422


def test_audit_log_cannot_be_rewritten_even_in_the_database(api: TestClient, settings: Settings):
    api.post("/audit/log", json={"proposalId": "p-1", "action": "a", "outcome": "completed"})

    with sqlite3.connect(settings.database_path) as db, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE audit_log SET entry = '{}'")
    with sqlite3.connect(settings.database_path) as db, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM audit_log")
