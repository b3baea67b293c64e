"""The triggers against the reference backend, served over real HTTP on 127.0.0.1.

`ReviewFeedTrigger` (the review watcher's one wait) fires when a reviewer decides, or when a
deadline falls due, and keeps waiting through a governance outage.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from hms_backend import Settings, create_app
from hms_backend.auth import generate_secret, mint_token
from hms_management.orchestration.triggers import ReviewFeedTrigger
from hms_stack.stack import free_port


@pytest.fixture(scope="module")
def backend(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """The reference backend in a uvicorn thread: its base URL and a valid token."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("hms"), jwt_secret=generate_secret())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", mint_token(settings.jwt_secret, "tests", 600)
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def hms(backend, monkeypatch) -> Iterator[httpx.Client]:
    """A client of the backend, and the hms_governance connection the triggers resolve."""
    url, token = backend
    monkeypatch.setenv("AIRFLOW_CONN_HMS_GOVERNANCE", json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": int(url.rsplit(":", 1)[1]),
         "extra": {"Authorization": f"Bearer {token}"}}))
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client
        client.delete("/admin/faults")


def first_event(trigger, timeout: float = 30) -> dict:
    async def run() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(run(), timeout))


def in_review(hms: httpx.Client, proposal_id: str) -> str:
    answer = hms.post("/gov/validate", json={"proposal": {"id": proposal_id, "rule": "r", "impact": "high"}})
    assert answer.status_code == 202
    return answer.json()["decision_id"]


def feed_cursor(hms: httpx.Client) -> str:
    return hms.get("/gov/decisions", params={"decidedSince": "", "limit": 1000}).json()["next"]


def decide_soon(hms: httpx.Client, decision_id: str, *, after: float = 0.5, **decision) -> threading.Thread:
    def decide() -> None:
        time.sleep(after)  # the trigger is waiting by then; the test's result does not depend on it
        hms.post(f"/gov/decisions/{decision_id}", json={"approved": True, "reviewer": "rita", **decision})

    thread = threading.Thread(target=decide)
    thread.start()
    return thread


# -- the review watcher's feed -----------------------------------------------------------------------


def test_serialize_round_trips_through_the_classpath():
    trigger = ReviewFeedTrigger(cursor="abc", due_at=123.5, poll_seconds=2.0)
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)

    assert getattr(importlib.import_module(module), name)(**kwargs).serialize() == (classpath, kwargs)
    assert json.loads(json.dumps(kwargs)) == kwargs


def test_the_feed_fires_when_a_reviewer_decides(hms):
    decision_id = in_review(hms, "feed-decided")
    cursor = feed_cursor(hms)
    reviewer = decide_soon(hms, decision_id)

    event = first_event(ReviewFeedTrigger(cursor=cursor, due_at=time.time() + 60, poll_seconds=0.1))
    reviewer.join()

    assert event == {"reason": "decided"}


def test_the_feed_fires_when_a_deadline_falls_due_without_decisions(hms):
    cursor = feed_cursor(hms)
    started = time.time()

    event = first_event(ReviewFeedTrigger(cursor=cursor, due_at=started + 0.5, poll_seconds=0.1))

    assert event == {"reason": "due"} and time.time() >= started + 0.5


def test_decisions_taken_before_the_cursor_do_not_fire_it_again(hms):
    decision_id = in_review(hms, "feed-old")
    hms.post(f"/gov/decisions/{decision_id}", json={"approved": False, "reviewer": "rita"}).raise_for_status()

    event = first_event(ReviewFeedTrigger(cursor=feed_cursor(hms), due_at=time.time() + 0.5, poll_seconds=0.1))

    assert event == {"reason": "due"}


def test_governance_down_the_feed_keeps_waiting_and_fires_once_it_is_back(hms):
    decision_id = in_review(hms, "feed-outage")
    cursor = feed_cursor(hms)
    hms.put("/admin/faults", json={"route": "/gov/decisions", "method": "GET", "status": 503, "times": 3})
    reviewer = decide_soon(hms, decision_id)

    event = first_event(ReviewFeedTrigger(cursor=cursor, due_at=time.time() + 60, poll_seconds=0.1))
    reviewer.join()

    assert event == {"reason": "decided"}
    assert hms.get("/stats").json()["routes"]["GET /gov/decisions"]["faults_served"] == 3
