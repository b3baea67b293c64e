"""A crash of the real backend process never makes a retry with the same Idempotency-Key apply a
side effect twice: SIGKILL inside the write, or after it while the answer is on its way."""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

POLICY = {"id": "p-1", "rule": {"speed_limit": 30}}
KEY = {"Idempotency-Key": "p-1:apply_policy"}

# Keeps the backend inside the write that applies the policy, after the policy row and before the
# answer kept for the key: SQLite runs the endless query within the INSERT of the answer.
STALL_BEFORE_KEEPING_ANSWERS = """
CREATE VIEW endless AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n;
CREATE TRIGGER stall_before_keeping_answers BEFORE INSERT ON idempotent_responses
BEGIN SELECT count(*) FROM endless; END;
"""
UNSTALL = "DROP TRIGGER stall_before_keeping_answers; DROP VIEW endless;"


def apply_policy(backend) -> httpx.Response:
    with backend.client(timeout=60) as hms:
        return hms.post("/svc/policy", json=POLICY, headers=KEY)


def wait_until_writing(database: Path) -> None:
    """Return once the backend holds SQLite's write lock, i.e. is inside a write transaction."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        probe = sqlite3.connect(database, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
        except sqlite3.OperationalError as err:
            if "locked" in str(err):
                return
            raise
        finally:
            probe.close()
        time.sleep(0.01)
    raise AssertionError("the backend did not start writing within 15 s")


def test_killed_inside_the_write_the_retry_applies_the_policy_once(live_backend):
    with sqlite3.connect(live_backend.database_path) as db:
        db.executescript(STALL_BEFORE_KEEPING_ANSWERS)

    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(apply_policy, live_backend)
        # The only write this POST opens stays open for ever: whenever the kill lands, it is inside.
        wait_until_writing(live_backend.database_path)
        live_backend.kill()
        with pytest.raises(httpx.TransportError):
            first.result()
    with sqlite3.connect(live_backend.database_path) as db:
        db.executescript(UNSTALL)
    live_backend.start()

    with live_backend.client() as hms:
        after_crash = hms.get("/svc/policy/p-1")
        retried = hms.post("/svc/policy", json=POLICY, headers=KEY)
        again = hms.post("/svc/policy", json=POLICY, headers=KEY)
        versions = hms.get("/svc/policy/p-1").json()["versions"]

    assert after_crash.status_code == 404  # the policy went with the answer it had not kept
    assert retried.status_code == 200
    assert "Idempotent-Replayed" not in retried.headers
    assert (again.content, again.headers["Idempotent-Replayed"]) == (retried.content, "true")
    assert [v["version"] for v in versions] == [1]


def test_killed_after_the_write_before_the_answer_went_out_the_retry_gets_the_kept_answer(live_backend):
    with live_backend.client() as hms:
        hms.put("/admin/faults", json={"route": "/svc/policy", "hold_answer_ms": 60_000}).raise_for_status()

    with ThreadPoolExecutor(max_workers=1) as pool, live_backend.client() as hms:
        first = pool.submit(apply_policy, live_backend)
        # Applied and committed, and the answer still held: the worst moment a crash can come.
        while hms.get("/svc/policy/p-1").status_code == 404:
            assert not first.done(), first.result()
            time.sleep(0.01)
        live_backend.kill()
        with pytest.raises(httpx.TransportError):
            first.result()
    live_backend.start()

    with live_backend.client() as hms:
        retried = hms.post("/svc/policy", json=POLICY, headers=KEY)
        versions = hms.get("/svc/policy/p-1").json()["versions"]
        side_effects = hms.get("/stats").json()["routes"]["POST /svc/policy"]["side_effects"]

    assert (retried.status_code, retried.headers["Idempotent-Replayed"]) == (200, "true")
    assert retried.json()["policy_id"] == versions[0]["policy_id"]
    assert [v["version"] for v in versions] == [1]
    assert side_effects == 0
