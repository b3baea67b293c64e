"""Faults on demand and per-route stats: what tests and benchmarks use to prove retries and budgets."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor

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
    }


def test_faults_can_be_listed_and_replaced(api: TestClient):
    api.put("/admin/faults", json={"route": "/svc/policy", "status": 503, "times": 2})
    api.put("/admin/faults", json={"route": "/svc/policy", "status": 500, "times": 1, "latency_ms": 5})

    assert api.get("/admin/faults").json() == {
        "faults": [{"route": "/svc/policy", "method": "POST", "status": 500, "times": 1, "latency_ms": 5, "rate": 1.0}]
    }


def test_fault_on_an_unknown_route_is_refused(api: TestClient):
    answer = api.put("/admin/faults", json={"route": "/svc/polcy", "status": 503})

    assert answer.status_code == 400
    assert "POST /svc/polcy" in answer.json()["error"]
    assert (
        api.put("/admin/faults", json={"route": "/admin/faults", "method": "DELETE", "status": 503}).status_code == 400
    )


def test_fault_that_does_nothing_is_refused(api: TestClient):
    assert api.put("/admin/faults", json={"route": "/svc/policy"}).status_code == 422
    assert api.put("/admin/faults", json={"route": "/svc/policy", "status": 503, "times": 0}).status_code == 422
    assert api.put("/admin/faults", json={"route": "/svc/policy", "status": 200}).status_code == 422


def test_fault_rate_hits_about_that_share_of_calls():
    injector = FaultInjector(random.Random(7))
    injector.set(Fault(route="/svc/policy", method="POST", status=503, times=-1, latency_ms=0, rate=0.25))

    hits = sum(injector.draw("POST /svc/policy") is not None for _ in range(2000))

    assert 400 < hits < 600
