"""The governance trigger against the reference backend, served over real HTTP on 127.0.0.1."""

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
from hms_management.orchestration.triggers import GovernanceDecisionTrigger
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
    """A client of the backend, and the hms_governance connection the trigger resolves."""
    url, token = backend
    port = int(url.rsplit(":", 1)[1])
    monkeypatch.setenv("AIRFLOW_CONN_HMS_GOVERNANCE", json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": port, "extra": {"Authorization": f"Bearer {token}"}}))
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client
        client.delete("/admin/faults")


def trigger_for(proposal: dict, *, review_seconds: float = 30) -> GovernanceDecisionTrigger:
    return GovernanceDecisionTrigger(proposal=proposal, review_deadline=time.time() + review_seconds,
                                     poll_interval=0.1, request_timeout=5)


def first_event(trigger: GovernanceDecisionTrigger) -> dict:
    async def run() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(run())


def test_serialize_round_trips_through_the_classpath():
    trigger = GovernanceDecisionTrigger(proposal={"id": "p", "rule": "r"}, review_deadline=123.0, poll_interval=2.0,
                                        decision_id="d-1")
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)

    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)

    assert rebuilt.serialize() == (classpath, kwargs)
    assert json.loads(json.dumps(kwargs)) == kwargs  # storable as the trigger's kwargs


def test_ordinary_proposal_is_approved(hms):
    event = first_event(trigger_for({"id": "t-ok", "rule": "r", "day": "Tue"}))
    assert event["status"] == "approved" and event["decision_id"]


def test_weekend_proposal_is_denied_with_the_reason(hms):
    event = first_event(trigger_for({"id": "t-weekend", "rule": "r", "day": "Sun"}))
    assert event["status"] == "denied"
    assert "weekend" in event["reason"].lower()


def test_high_impact_waits_for_the_reviewer_and_keeps_their_reason(hms):
    proposal = {"id": "t-review", "rule": "r", "impact": "high"}

    def review_soon() -> None:
        for _ in range(100):
            items = hms.get("/gov/decisions", params={"status": "review", "proposalId": "t-review"}).json()["items"]
            if items:
                hms.post(f"/gov/decisions/{items[0]['decision_id']}",
                         json={"approved": False, "reviewer": "officer-7", "reason": "needs a budget line"})
                return
            time.sleep(0.1)

    reviewer = threading.Thread(target=review_soon)
    reviewer.start()
    event = first_event(trigger_for(proposal))
    reviewer.join()

    assert event == {**event, "status": "denied", "reason": "needs a budget line", "reviewer": "officer-7"}


def test_review_nobody_answers_times_out(hms):
    event = first_event(trigger_for({"id": "t-timeout", "rule": "r", "impact": "high"}, review_seconds=1))
    assert event["status"] == "review_timeout" and event["decision_id"]


def test_a_restarted_trigger_asks_again_under_the_same_key_and_gets_the_same_decision(hms):
    proposal = {"id": "t-restart", "rule": "r"}
    first = first_event(trigger_for(proposal))
    again = first_event(trigger_for(proposal))
    assert again["decision_id"] == first["decision_id"]


def test_transient_governance_errors_are_retried_inside_the_trigger(hms):
    hms.put("/admin/faults", json={"route": "/gov/validate", "status": 503, "times": 2}).raise_for_status()
    event = first_event(trigger_for({"id": "t-flaky", "rule": "r"}))
    assert event["status"] == "approved"


def test_governance_down_for_good_is_a_transient_error_for_the_task_to_retry(hms):
    hms.put("/admin/faults", json={"route": "/gov/validate", "status": 503, "times": -1}).raise_for_status()
    event = first_event(trigger_for({"id": "t-down", "rule": "r"}))
    assert event["status"] == "error" and event["transient"] is True
    assert "503" in event["reason"]


def test_a_refused_token_is_an_error_no_retry_fixes(hms, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_HMS_GOVERNANCE", json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": int(str(hms.base_url).rsplit(":", 1)[1].rstrip("/")),
         "extra": {"Authorization": "Bearer not-a-token"}}))
    event = first_event(trigger_for({"id": "t-401", "rule": "r"}))
    assert event["status"] == "error" and event["transient"] is False
    assert "401" in event["reason"]
