"""An Idempotency-Key makes a POST apply its side effect once, however often it is sent."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from hms_backend import Settings, create_app
from hms_backend.faults import route_key
from hms_backend.idempotency import UnkeptAnswer
from hms_backend.routing import ServiceRoute

POLICY = {"id": "p-1", "rule": {"speed_limit": 30}}


def post_policy(api: TestClient, key: str, body: dict = POLICY):
    return api.post("/svc/policy", json=body, headers={"Idempotency-Key": key})


def test_same_key_replays_the_first_answer_and_applies_nothing(api: TestClient, route_stats):
    first = post_policy(api, "p-1:apply_policy")

    replay = post_policy(api, "p-1:apply_policy", {"id": "p-1", "rule": "a different body"})

    assert replay.status_code == first.status_code == 200
    assert replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert len(api.get("/svc/policy/p-1").json()["versions"]) == 1
    assert route_stats("POST /svc/policy") | {"in_flight": 0} == {
        "calls": 2,
        "side_effects": 1,
        "in_flight": 0,
        "max_in_flight": 1,
        "faults_served": 0,
        "max_per_second": 2,
        "rate_limited": 0,
        "held": [],
    }


def test_replay_keeps_the_first_status_code(api: TestClient):
    first = api.post(
        "/gov/validate", json={"proposal": {"id": "p-1", "impact": "high"}}, headers={"Idempotency-Key": "k"}
    )

    replay = api.post("/gov/validate", json={"proposal": {"id": "p-1"}}, headers={"Idempotency-Key": "k"})

    assert (replay.status_code, replay.json()) == (202, first.json())
    assert len(api.get("/gov/decisions").json()["items"]) == 1


def test_a_new_key_applies_again(api: TestClient):
    assert post_policy(api, "p-1:apply_policy").json()["version"] == 1
    assert post_policy(api, "p-1:apply_policy:rerun1").json()["version"] == 2


def test_the_same_key_on_another_route_is_another_request(api: TestClient):
    api.post("/notifications", json={"message": "m", "proposalId": "p-1"}, headers={"Idempotency-Key": "k"})
    api.post("/audit/log", json={"proposalId": "p-1", "action": "a", "outcome": "o"}, headers={"Idempotency-Key": "k"})

    assert len(api.get("/notifications").json()["items"]) == 1
    assert len(api.get("/audit/log").json()["items"]) == 1


def test_retry_after_an_injected_503_does_the_work_once(api: TestClient, route_stats):
    api.put("/admin/faults", json={"route": "/svc/policy", "status": 503, "times": 1})

    failed = post_policy(api, "p-1:apply_policy")
    retried = post_policy(api, "p-1:apply_policy")
    replayed = post_policy(api, "p-1:apply_policy")

    assert failed.status_code == 503
    assert retried.status_code == 200
    assert replayed.json() == retried.json()
    assert [v["version"] for v in api.get("/svc/policy/p-1").json()["versions"]] == [1]
    assert route_stats("POST /svc/policy")["side_effects"] == 1


def test_an_error_answer_is_not_stored(api: TestClient):
    invalid = api.post("/svc/policy", json={"id": "p-1"}, headers={"Idempotency-Key": "k"})

    fixed = post_policy(api, "k")

    assert invalid.status_code == 422
    assert fixed.status_code == 200


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_concurrent_duplicates_apply_the_side_effect_once(settings: Settings, token: str):
    app = create_app(settings)

    async def slowly_sent_policy() -> AsyncIterator[bytes]:
        # Each duplicate is still being read when the others arrive: without the per-key lock,
        # all of them would find no stored answer and apply the policy.
        yield b'{"id": "p-1", '
        await asyncio.sleep(0.05)
        yield b'"rule": "r"}'

    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "p-1:apply_policy"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://hms", headers=headers) as client,
    ):
        answers = await asyncio.gather(
            *(
                client.post("/svc/policy", content=slowly_sent_policy(), headers={"Content-Type": "application/json"})
                for _ in range(8)
            )
        )
        versions = (await client.get("/svc/policy/p-1")).json()["versions"]
        stats = (await client.get("/stats")).json()["routes"]["POST /svc/policy"]

    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    assert len(versions) == 1
    assert (stats["calls"], stats["side_effects"], stats["max_in_flight"]) == (8, 1, 8)


def test_an_empty_or_oversized_key_is_400(api: TestClient):
    assert post_policy(api, "").status_code == 400
    assert post_policy(api, "k" * 256).status_code == 400


def _in_review(api: TestClient) -> str:
    return api.post("/gov/validate", json={"proposal": {"id": "p-big", "impact": "high"}}).json()["decision_id"]


def _queued(api: TestClient) -> str:
    api.post("/backlog/proposals", json={"id": "p-q", "rule": "r"})
    return "p-q"


# Every POST route, with a first call that applies its side effect: (path, body) after any set-up.
POST_CALLS = {
    "POST /gov/validate": lambda api: ("/gov/validate", {"proposal": {"id": "p-1", "impact": "high"}}),
    "POST /gov/decisions/{decision_id}": lambda api: (
        f"/gov/decisions/{_in_review(api)}",
        {"approved": True, "reviewer": "alice"},
    ),
    "POST /gov/decisions/{decision_id}/revoke": lambda api: (
        f"/gov/decisions/{_in_review(api)}/revoke",
        {"reason": "withdrawn by the council", "by": "carol"},
    ),
    "POST /svc/policy": lambda api: ("/svc/policy", POLICY),
    "POST /notifications": lambda api: ("/notifications", {"message": "Policy #p-1 live", "proposalId": "p-1"}),
    "POST /audit/log": lambda api: ("/audit/log", {"proposalId": "p-1", "action": "a", "outcome": "completed"}),
    "POST /backlog/proposals": lambda api: ("/backlog/proposals", {"id": "p-1", "rule": "r"}),
    "POST /backlog/proposals/{proposal_id}/taken": lambda api: (f"/backlog/proposals/{_queued(api)}/taken", {}),
    "POST /backlog/proposals/{proposal_id}/rejected": lambda api: (
        f"/backlog/proposals/{_queued(api)}/rejected",
        {"reason": "invalid"},
    ),
}


def test_every_post_route_is_checked_below(api: TestClient):
    posts = {
        route_key("POST", route.path)
        for route in api.app.routes
        if isinstance(route, ServiceRoute) and "POST" in route.methods and route.keeps_answers
    }

    assert posts == set(POST_CALLS)


@pytest.mark.parametrize("route", sorted(POST_CALLS))
def test_every_post_route_replays_byte_for_byte_what_it_kept(api: TestClient, settings: Settings, route_stats, route):
    path, body = POST_CALLS[route](api)

    first = api.post(path, json=body, headers={"Idempotency-Key": "k"})
    replay = api.post(path, json=body, headers={"Idempotency-Key": "k"})

    assert 200 <= first.status_code < 300
    assert (replay.status_code, replay.content) == (first.status_code, first.content)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert route_stats(route)["side_effects"] == 1
    with sqlite3.connect(settings.database_path) as db:
        assert db.execute("SELECT status_code, body FROM idempotent_responses").fetchall() == [
            (first.status_code, first.content)
        ]


def test_a_denial_is_not_kept_so_a_retry_asks_governance_again(api: TestClient):
    weekend = {"proposal": {"id": "p-1", "day": "Sun"}}

    first = api.post("/gov/validate", json=weekend, headers={"Idempotency-Key": "k"})
    retry = api.post("/gov/validate", json=weekend, headers={"Idempotency-Key": "k"})

    assert first.status_code == retry.status_code == 400
    assert "Idempotent-Replayed" not in retry.headers
    assert [d["status"] for d in api.get("/gov/decisions").json()["items"]] == ["denied", "denied"]


def test_a_handler_that_writes_nothing_cannot_answer_a_keyed_post(settings: Settings, token: str):
    app = create_app(settings)
    forgetful = APIRouter(route_class=ServiceRoute)

    @forgetful.post("/forgetful")
    async def answer_without_a_write() -> dict[str, str]:
        return {"status": "done"}

    app.include_router(forgetful)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.post("/forgetful").status_code == 200
        # A 2xx that no retry could replay would let the retry apply the side effect again: a 500 instead.
        with pytest.raises(UnkeptAnswer, match="/forgetful answered 200"):
            client.post("/forgetful", headers={"Idempotency-Key": "k"})
