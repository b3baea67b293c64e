"""Durability: the backend keeps everything across a restart on the same data dir."""

from __future__ import annotations

import sqlite3

from fastapi.testclient import TestClient

from hms_backend import Settings, create_app


def test_data_survives_a_restart(settings: Settings, token: str):
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings), headers=auth) as before:
        policy = {"id": "p-1", "rule": "r"}
        applied = before.post("/svc/policy", json=policy, headers={"Idempotency-Key": "k"}).json()
        review = before.post("/gov/validate", json={"proposal": {"id": "p-1", "impact": "high"}}).json()
        before.post("/notifications", json={"message": "m", "proposalId": "p-1"})
        before.post("/audit/log", json={"proposalId": "p-1", "action": "a", "outcome": "completed"})
        before.post("/backlog/proposals", json={"id": "p-2", "rule": "r"})

    with TestClient(create_app(settings), headers=auth) as after:
        replay = after.post("/svc/policy", json=policy, headers={"Idempotency-Key": "k"})
        assert replay.json() == applied
        assert after.post("/svc/policy", json={"id": "p-1", "rule": "r2"}).json()["version"] == 2
        assert after.get(f"/gov/decisions/{review['decision_id']}").json()["status"] == "review"
        assert len(after.get("/notifications", params={"proposalId": "p-1"}).json()["items"]) == 1
        assert len(after.get("/audit/log", params={"proposalId": "p-1"}).json()["items"]) == 1
        assert [e["id"] for e in after.get("/backlog/proposals").json()["items"]] == ["p-2"]


def test_storage_is_one_sqlite_file_in_wal_mode(api: TestClient, settings: Settings):
    with sqlite3.connect(settings.database_path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
