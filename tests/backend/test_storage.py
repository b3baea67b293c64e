"""Durability: the backend keeps everything across a restart on the same data dir, and a side
effect never without the answer kept for its Idempotency-Key."""

from __future__ import annotations

import inspect
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hms_backend import Settings, create_app
from hms_backend.idempotency import UnkeptAnswer, keyed_request
from hms_backend.storage import SCHEMA_VERSION, DatabaseOfAnotherSchema, Storage


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


# No migrations before the first release: a database of another schema is refused, never half-used.

EARLIER_SCHEMA = """
CREATE TABLE decisions (decision_id TEXT PRIMARY KEY, proposal_id TEXT NOT NULL, status TEXT NOT NULL);
INSERT INTO decisions VALUES ('d-1', 'p-1', 'approved');
"""


def test_a_database_of_another_schema_is_refused_and_left_as_it_was(tmp_path: Path):
    path = tmp_path / "hms.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(EARLIER_SCHEMA)

    with pytest.raises(DatabaseOfAnotherSchema, match="start afresh") as refused:
        Storage.open(path)

    assert str(path) in str(refused.value)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM sqlite_schema WHERE type = 'table'").fetchall() == [("decisions",)]
        assert db.execute("SELECT * FROM decisions").fetchall() == [("d-1", "p-1", "approved")]


def test_a_new_database_is_made_with_the_schema_of_this_backend_and_opens_again(tmp_path: Path):
    path = tmp_path / "hms.sqlite3"

    with Storage.open(path) as storage:
        storage.apply_policy({"id": "p-1", "rule": "r"}, scope="default")
    with Storage.open(path) as reopened:
        versions = reopened.policy_versions("p-1")

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert [v["version"] for v in versions] == [1]


# Crash-safe idempotency: a side effect and the answer kept for its Idempotency-Key are one write.


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    with Storage.open(tmp_path / "hms.sqlite3") as opened:
        yield opened


def _in_review(storage: Storage) -> str:
    answered = storage.record_decision(proposal={"id": "p-big", "impact": "high"}, status="review", reason="r")
    return json.loads(answered.answer.body)["decision_id"]


def _queued(storage: Storage) -> str:
    storage.queue_proposal({"id": "p-q", "rule": "r"})
    return "p-q"


def _decisions(storage: Storage) -> list[tuple[str, str]]:
    return [(d["proposal_id"], d["status"]) for d in storage.decisions()]


def _backlog(storage: Storage) -> list[tuple[str, str]]:
    return [
        (e["id"], e["status"])
        for status in ("pending", "taken", "rejected")
        for e in storage.backlog(status=status, limit=10)
    ]


# Each write that applies a side effect: a set-up, the write, and what a reader sees of its effect.
WRITES = {
    "record_decision": (
        lambda storage: None,
        lambda storage, _: storage.record_decision(proposal={"id": "p-1"}, status="approved", reason="ok"),
        _decisions,
    ),
    "settle_review": (
        _in_review,
        lambda storage, decision_id: storage.settle_review(decision_id, status="approved", reason="ok", reviewer="a"),
        _decisions,
    ),
    "revoke_decision": (
        _in_review,
        lambda storage, decision_id: storage.revoke_decision(decision_id, reason="withdrawn", by="carol"),
        _decisions,
    ),
    "suspend": (
        lambda storage: None,
        lambda storage, _: storage.suspend("policy", reason="incident", by="ops"),
        lambda storage: storage.suspensions(),
    ),
    "lift_suspension": (
        lambda storage: storage.suspend("all", reason="incident", by="ops"),
        lambda storage, _: storage.lift_suspension("all"),
        lambda storage: storage.suspensions(),
    ),
    "apply_policy": (
        lambda storage: None,
        lambda storage, _: storage.apply_policy({"id": "p-1", "rule": "r"}, scope="default"),
        lambda storage: [storage.policy_versions("p-1"), storage.live_rule("default")],
    ),
    "record_notification": (
        lambda storage: None,
        lambda storage, _: storage.record_notification({"message": "m", "proposalId": "p-1"}),
        lambda storage: storage.notifications(proposal_id=None),
    ),
    "append_audit": (
        lambda storage: None,
        lambda storage, _: storage.append_audit({"proposalId": "p-1", "action": "a", "outcome": "completed"}),
        lambda storage: storage.audit_entries(proposal_id=None),
    ),
    "queue_proposal": (
        lambda storage: None,
        lambda storage, _: storage.queue_proposal({"id": "p-1", "rule": "r"}),
        _backlog,
    ),
    "settle_backlog_entry": (
        _queued,
        lambda storage, proposal_id: storage.settle_backlog_entry(proposal_id, status="taken"),
        _backlog,
    ),
}


def test_every_write_method_is_checked_below():
    # A write that applies a side effect is the one that takes the route's answer rule.
    writes = {
        name
        for name, _ in inspect.getmembers(Storage, inspect.isfunction)
        if "answer" in inspect.signature(getattr(Storage, name)).parameters
    }

    assert writes == set(WRITES)


@pytest.mark.parametrize("write", sorted(WRITES))
def test_when_keeping_the_answer_fails_the_side_effect_is_rolled_back(storage: Storage, tmp_path: Path, write):
    set_up, apply, effects = WRITES[write]
    target = set_up(storage)
    before = effects(storage)
    # The answer is written after the side effect, in the same transaction: this fails in between.
    with sqlite3.connect(tmp_path / "hms.sqlite3") as db:
        db.execute(
            "CREATE TRIGGER answers_fail BEFORE INSERT ON idempotent_responses"
            " BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )

    with keyed_request("/any", "k"), pytest.raises(sqlite3.IntegrityError, match="disk full"):
        apply(storage, target)

    assert effects(storage) == before
    assert storage.kept_answer("/any", "k") is None


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_keyed_write_keeps_the_answer_it_gives(storage: Storage, write):
    set_up, apply, effects = WRITES[write]
    target = set_up(storage)
    before = effects(storage)

    with keyed_request("/any", "k"):
        answered = apply(storage, target)

    assert effects(storage) != before
    assert storage.kept_answer("/any", "k") == answered.answer


def test_a_keyed_request_gets_one_write(storage: Storage):
    with keyed_request("/svc/policy", "k"):
        storage.apply_policy({"id": "p-1", "rule": "r"}, scope="default")
        with pytest.raises(UnkeptAnswer, match="already answered"):
            storage.apply_policy({"id": "p-1", "rule": "r"}, scope="default")

    assert [v["version"] for v in storage.policy_versions("p-1")] == [1]
