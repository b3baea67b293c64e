"""Faults on demand and per-route stats: what tests and benchmarks use to prove retries and budgets."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient

from hms_backend.faults import Fault, FaultInjector

POLICY = {"id": "p-1", "rule": "r"}


def test_fault_answers_the_next_calls_then_the_route_recovers(api: TestClient, route_stats):
    api.put("/admin/faults", json={"route": "/svc/policy", "status": 503, "times": 2})

    answers = [api.post("/svc/policy", json=POLICY) for _ in range(3)]

    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].json() == {"error": "injected fault"}
    assert api.get("/admin/faults").json() == {"faults": []}
    stats = route_stats("POST /svc/policy")
    assert (stats["calls"], stats["faults_served"], stats["side_effects"]) == (3, 2, 1)


def test_a_scoped_fault_hits_only_the_calls_for_its_policy_scope(api: TestClient):
    api.put("/admin/faults", json={"route": "/svc/policy", "status": 503, "times": -1, "scope": "foia/doj"})

    answers = {scope: api.post("/svc/policy", json={**POLICY, "scope": scope}).status_code
               for scope in ("foia/dhs", "foia/doj", "foia/state")}
    unscoped = api.post("/svc/policy", json=POLICY).status_code  # the default scope

    assert answers == {"foia/dhs": 200, "foia/doj": 503, "foia/state": 200} and unscoped == 200


def test_fault_without_a_limit_lasts_until_cleared(api: TestClient):
    api.put("/admin/faults", json={"route": "/notifications", "status": 500, "times": -1})

    faulted = [api.post("/notifications", json={"message": "m"}).status_code for _ in range(5)]
    assert api.get("/admin/faults").json()["faults"][0]["times"] == -1
    api.delete("/admin/faults")

    assert faulted == [500] * 5
    assert api.post("/notifications", json={"message": "m"}).status_code == 200
    assert api.get("/notifications").json()["items"][0]["message"] == "m"


def test_fault_applies_to_the_route_and_method_it_names(api: TestClient):
    api.put("/admin/faults", json={"route": "/gov/decisions/{decision_id}", "method": "GET", "status": 429})

    assert api.get("/gov/decisions/anything").status_code == 429
    assert api.post("/gov/decisions/anything", json={"approved": True, "reviewer": "a"}).status_code == 404


def test_unauthenticated_calls_never_reach_a_fault(api: TestClient, route_stats):
    api.put("/admin/faults", json={"route": "/svc/policy", "status": 503, "times": -1})

    answer = api.post("/svc/policy", json=POLICY, headers={"Authorization": "Bearer nope"})

    assert answer.status_code == 401
    assert route_stats("POST /svc/policy")["faults_served"] == 0


def test_latency_only_fault_delays_the_real_answer(api: TestClient):
    api.put("/admin/faults", json={"route": "/svc/policy", "latency_ms": 50, "times": 1})

    started = time.perf_counter()
    answer = api.post("/svc/policy", json=POLICY)

    assert time.perf_counter() - started >= 0.05
    assert answer.status_code == 200


def test_calls_waiting_in_injected_latency_count_as_in_flight(api: TestClient, route_stats):
    api.put("/admin/faults", json={"route": "/audit/log", "latency_ms": 150, "times": -1})
    entry = {"proposalId": "p-1", "action": "a", "outcome": "completed"}

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: api.post("/audit/log", json=entry), range(4)))

    assert {a.status_code for a in answers} == {200}
    stats = route_stats("POST /audit/log")
    assert stats["max_in_flight"] >= 2
    assert (stats["calls"], stats["side_effects"], stats["in_flight"]) == (4, 4, 0)


def test_resetting_stats_starts_the_counts_afresh(api: TestClient, route_stats):
    api.post("/svc/policy", json=POLICY)

    assert api.delete("/stats").status_code == 200

    assert route_stats("POST /svc/policy") == {
        "calls": 0,
        "side_effects": 0,
        "in_flight": 0,
        "max_in_flight": 0,
        "faults_served": 0,
        "max_per_second": 0,
        "rate_limited": 0,
        "held": [],
    }


def test_faults_can_be_listed_and_replaced(api: TestClient):
    api.put("/admin/faults", json={"route": "/svc/policy", "status": 503, "times": 2})
    api.put("/admin/faults", json={"route": "/svc/policy", "status": 500, "times": 1, "latency_ms": 5})

    assert api.get("/admin/faults").json() == {
        "faults": [
            {
                "route": "/svc/policy",
                "method": "POST",
                "status": 500,
                "times": 1,
                "latency_ms": 5,
                "rate": 1.0,
                "body": None,
                "content_type": "application/json",
                "hold_answer_ms": 0,
                "limit_per_second": None,
                "retry_after_s": None,
                "scope": None,
            }
        ]
    }


def test_fault_on_an_unknown_route_is_refused(api: TestClient):
    answer = api.put("/admin/faults", json={"route": "/svc/polcy", "status": 503})

    assert answer.status_code == 400
    assert "POST /svc/polcy" in answer.json()["error"]
    assert (
        api.put("/admin/faults", json={"route": "/admin/faults", "method": "DELETE", "status": 503}).status_code == 400
    )


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({}, "a status, a body, a latency_ms, a hold_answer_ms or a limit_per_second"),
        ({"status": 503, "times": 0}, "times must be at least 1"),
        ({"hold_answer_ms": 100, "status": 503}, "cannot come with a status or a body"),
        ({"hold_answer_ms": 100, "body": "x"}, "cannot come with a status or a body"),
        ({"status": 204, "body": "x"}, "a 204 answer has no body"),
        ({"status": 199}, "status"),
        ({"status": 600}, "status"),
        ({"hold_answer_ms": 60_001}, "hold_answer_ms"),
        ({"status": 200, "content_type": "text/html\r\nSet-Cookie: a=b"}, "content_type"),
    ],
    ids=str,
)
def test_fault_that_asks_for_nothing_or_for_nonsense_is_422_saying_why(api: TestClient, spec: dict, says: str):
    answer = api.put("/admin/faults", json={"route": "/svc/policy", **spec})

    assert answer.status_code == 422
    assert says in answer.json()["error"]
    assert api.get("/admin/faults").json() == {"faults": []}


# Answers no HMS service would give, for clients that must not trust a 200.


@pytest.mark.parametrize(
    ("spec", "content_type", "content"),
    [
        ({"body": '{"status": "escalated"}'}, "application/json", b'{"status": "escalated"}'),
        ({"status": 200, "body": '{"status": null}'}, "application/json", b'{"status": null}'),
        (
            {"status": 200, "body": "<html><body>Gateway login</body></html>", "content_type": "text/html"},
            "text/html",
            b"<html><body>Gateway login</body></html>",
        ),
        ({"status": 200, "body": "approved"}, "application/json", b"approved"),
        ({"status": 502, "body": "", "content_type": "text/plain"}, "text/plain", b""),
        ({"status": 503}, "application/json", b'{"error":"injected fault"}'),
    ],
    ids=["json-unknown-status", "json-null-status", "html-page", "not-json", "empty-502", "default-error"],
)
def test_fault_answers_anything_instead_of_the_handler(api: TestClient, route_stats, spec, content_type, content):
    api.put("/admin/faults", json={"route": "/gov/validate", **spec}).raise_for_status()

    answer = api.post("/gov/validate", json={"proposal": {"id": "p-1"}})

    assert answer.status_code == spec.get("status", 200)
    assert answer.headers["content-type"] == content_type
    assert answer.content == content
    assert api.get("/gov/decisions").json()["items"] == []
    stats = route_stats("POST /gov/validate")
    assert (stats["faults_served"], stats["side_effects"]) == (1, 0)


def test_fault_with_a_204_answers_without_a_body(api: TestClient):
    api.put("/admin/faults", json={"route": "/notifications", "status": 204})

    answer = api.post("/notifications", json={"message": "m"})

    assert (answer.status_code, answer.content) == (204, b"")
    assert api.get("/notifications").json()["items"] == []


def test_an_injected_200_is_not_kept_for_the_idempotency_key(api: TestClient, route_stats):
    api.put("/admin/faults", json={"route": "/svc/policy", "body": '{"policy_id": "fake"}'})

    injected = api.post("/svc/policy", json=POLICY, headers={"Idempotency-Key": "k"})
    retried = api.post("/svc/policy", json=POLICY, headers={"Idempotency-Key": "k"})

    assert injected.json() == {"policy_id": "fake"}
    assert "Idempotent-Replayed" not in retried.headers
    assert retried.json()["version"] == 1
    assert route_stats("POST /svc/policy")["side_effects"] == 1


# Answers held after the side effect, as a network that loses answers would.


def test_held_answer_comes_after_the_side_effect_and_counts_once(api: TestClient, route_stats):
    api.put("/admin/faults", json={"route": "/svc/policy", "hold_answer_ms": 1})

    answer = api.post("/svc/policy", json=POLICY)

    assert (answer.status_code, answer.json()["version"]) == (200, 1)
    stats = route_stats("POST /svc/policy")
    assert (stats["calls"], stats["side_effects"], stats["in_flight"], stats["faults_served"]) == (1, 1, 0, 0)


def test_client_that_gave_up_on_a_held_answer_gets_it_on_retry_without_waiting(live_backend):
    with live_backend.client() as hms:
        hms.put("/admin/faults", json={"route": "/svc/policy", "hold_answer_ms": 60_000}).raise_for_status()
    key = {"Idempotency-Key": "p-1:apply_policy"}

    with live_backend.client(timeout=0.5) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post("/svc/policy", json=POLICY, headers=key)
    # The first call is held for a minute; the retry answers within the client's 5 s all the same.
    with live_backend.client() as hms:
        retried = hms.post("/svc/policy", json=POLICY, headers=key)
        versions = hms.get("/svc/policy/p-1").json()["versions"]
        stats = hms.get("/stats").json()["routes"]["POST /svc/policy"]

    assert (retried.status_code, retried.headers["Idempotent-Replayed"]) == (200, "true")
    assert retried.json()["policy_id"] == versions[0]["policy_id"]
    assert len(versions) == 1
    # The held call is still in flight, holding its answer; it was counted once, as was its side effect.
    assert (stats["calls"], stats["side_effects"], stats["in_flight"]) == (2, 1, 1)


def test_a_held_answer_is_listed_with_its_caller_and_goes_out_when_the_faults_are_cleared(live_backend):
    with live_backend.client() as hms:
        hms.put("/admin/faults", json={"route": "/svc/policy", "hold_answer_ms": 60_000}).raise_for_status()
    key = {"Idempotency-Key": "p-1:apply_policy"}

    with ThreadPoolExecutor(max_workers=1) as pool, live_backend.client() as hms:
        # Its timeout is well inside the minute's hold: only the clearing can answer it in time.
        with live_backend.client(timeout=20) as caller:
            answered = pool.submit(caller.post, "/svc/policy", json=POLICY, headers=key)
            while not (held := hms.get("/stats").json()["routes"]["POST /svc/policy"]["held"]):
                assert not answered.done(), answered.result()
                time.sleep(0.01)
            hms.delete("/admin/faults").raise_for_status()
            answer = answered.result()
        after = hms.get("/stats").json()["routes"]["POST /svc/policy"]

    assert [h["idempotency_key"] for h in held] == ["p-1:apply_policy"]
    assert held[0]["client"].startswith("127.0.0.1:")
    assert (answer.status_code, answer.json()["version"]) == (200, 1)
    assert (after["held"], after["in_flight"], after["side_effects"]) == ([], 0, 1)


def test_fault_rate_hits_about_that_share_of_calls():
    injector = FaultInjector(random.Random(7))
    injector.set(Fault(route="/svc/policy", method="POST", status=503, times=-1, latency_ms=0, rate=0.25))

    hits = sum(injector.draw("POST /svc/policy") is not None for _ in range(2000))

    assert 400 < hits < 600
